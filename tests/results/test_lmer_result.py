"""LmerResult accessors against lme4 (tests/reference/lmer_reference.json,
made by tests/reference/make_lmer_reference.R)."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pymlm as ml

REF = json.loads((Path(__file__).parents[1] / "reference" / "lmer_reference.json").read_text())


@pytest.fixture(scope="module")
def sleep():
    return ml.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def m_sleep(sleep):
    return ml.lmer("Reaction ~ Days + (Days | Subject)", sleep, data_name="sleepstudy")


@pytest.fixture(scope="module")
def m_pen(reference_fits):
    return reference_fits("penicillin")


@pytest.fixture(scope="module")
def m_pastes(reference_fits):
    return reference_fits("pastes")


def _check_fit(m, ref, fixef_tol=1e-3):
    for name, want in ref["fixef"].items():
        assert abs(m.fixef[name] - want) <= fixef_tol * ref["fixef_se"][name], name
    np.testing.assert_allclose(m.theta, np.atleast_1d(ref["theta"]), atol=1e-3)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    assert m.loglik == pytest.approx(ref["logLik"], abs=1e-3)
    assert m.df_resid == ref["df_resid"]


def _check_ranef(m, ref_ranef, rel=2e-3):
    got = m.get_ranef(cond_var=True)
    for group, rows in ref_ranef.items():
        modes, post = got[group]
        for i, row in enumerate(rows):
            lev = row["level"]
            assert modes.index[i] == lev
            for col, want in row["modes"].items():
                assert modes.loc[lev, col] == pytest.approx(want, rel=rel, abs=1e-3 * m.sigma)
            np.testing.assert_allclose(post[i], np.asarray(row["postVar"]).reshape(post[i].shape), rtol=5e-3)


def test_ranef_and_conditional_variances_single_term(m_sleep):
    _check_ranef(m_sleep, REF["sleepstudy"]["ranef"])


def test_ranef_and_conditional_variances_crossed(m_pen):
    _check_ranef(m_pen, REF["penicillin"]["ranef"])


def test_ranef_and_conditional_variances_nested(m_pastes):
    _check_ranef(m_pastes, REF["pastes"]["ranef"])


def test_coef_is_fixed_plus_random(m_sleep):
    for row in REF["sleepstudy"]["coef"]["Subject"]:
        got = m_sleep.coef["Subject"].loc[row["level"]]
        for col in ("(Intercept)", "Days"):
            assert got[col] == pytest.approx(row[col], rel=1e-4)


def test_predict_with_new_levels_and_re_form(m_sleep):
    ref = REF["sleepstudy"]
    nd = pd.DataFrame(ref["newdata"])
    np.testing.assert_allclose(m_sleep.predict(nd, allow_new_levels=True), ref["predict_all"], rtol=1e-5)
    np.testing.assert_allclose(m_sleep.predict(nd, re_form="~0"), ref["predict_none"], rtol=1e-5)
    with pytest.raises(ml.DataError, match=r"new levels in grouping factor 'Subject': \['999'\]"):
        m_sleep.predict(nd)


def test_predict_with_a_subset_of_terms(m_pen):
    ref = REF["penicillin"]
    nd = pd.DataFrame(ref["newdata"])
    np.testing.assert_allclose(m_pen.predict(nd, re_form="~(1 | plate)"), ref["predict_plate"], rtol=1e-5)
    np.testing.assert_allclose(m_pen.predict(nd), ref["predict_all"], rtol=1e-5)
    with pytest.raises(ml.FormulaError, match="grouping factor 'batch'"):
        m_pen.predict(nd, re_form="~(1 | batch)")


def test_predict_without_newdata_is_fitted(m_sleep):
    np.testing.assert_allclose(m_sleep.predict(), m_sleep.fitted)
    np.testing.assert_allclose(m_sleep.fitted[:10], REF["sleepstudy"]["fit"]["fitted_head"], rtol=1e-5)
    np.testing.assert_allclose(m_sleep.residuals()[:10], REF["sleepstudy"]["fit"]["resid_head"], rtol=1e-4, atol=1e-4)


def test_anova_table_matches_lme4(sleep, m_sleep):
    m0 = ml.lmer("Reaction ~ 1 + (Days | Subject)", sleep)
    a = ml.anova(m0, m_sleep)
    ref = REF["sleepstudy"]["anova"]
    np.testing.assert_allclose(a.table["npar"], ref["npar"])
    np.testing.assert_allclose(a.table["deviance"], ref["deviance"], atol=1e-3)
    np.testing.assert_allclose(a.table["AIC"], ref["AIC"], atol=1e-3)
    assert a.table["Chisq"].iloc[1] == pytest.approx(ref["Chisq"][1], abs=1e-3)
    assert a.table["Pr(>Chisq)"].iloc[1] == pytest.approx(ref["p"][1], rel=1e-3)
    assert a.refitted
    assert "refitting model(s) with ML" in str(a)


def test_anova_rejects_different_data(sleep, m_sleep):
    other = ml.lmer("Reaction ~ Days + (1 | Subject)", sleep.iloc[:170])
    with pytest.raises(ml.DataError, match="same observations"):
        ml.anova(other, m_sleep)
    with pytest.raises(ml.OptionError, match="at least two"):
        ml.anova()
    # one lmer fit gives its F tests (lmerTest's single-model anova)
    assert list(ml.anova(m_sleep).table.index) == ["Days"]


def test_simulate_is_reproducible_by_seed(m_sleep):
    a = m_sleep.simulate(3, seed=42)
    b = m_sleep.simulate(3, seed=42)
    c = m_sleep.simulate(3, seed=43)
    assert a.shape == (180, 3)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.to_numpy(), c.to_numpy())


def test_simulate_has_the_model_variance(m_sleep):
    sims = m_sleep.simulate(2000, seed=1).to_numpy()
    # variance of a simulated observation: sigma^2 + z' Sigma_b z
    vc = m_sleep.varcorr
    s00, s11, s01 = vc.vcov.iloc[0], vc.vcov.iloc[1], vc.vcov.iloc[2]
    days = m_sleep.design.X[:, 1]
    want = m_sleep.sigma ** 2 + s00 + 2 * days * s01 + days ** 2 * s11
    got = sims.var(axis=1)
    assert np.median(got / want) == pytest.approx(1.0, abs=0.05)


def test_refit_with_the_same_response_reproduces_the_fit(m_sleep):
    r = m_sleep.refit(m_sleep.design.y)
    np.testing.assert_allclose(r.theta, m_sleep.theta, atol=1e-6)
    sim = m_sleep.simulate(1, seed=3)["sim_1"].to_numpy()
    r2 = m_sleep.refit(sim)
    assert r2.fixef["Days"] != pytest.approx(m_sleep.fixef["Days"], abs=1e-6)
    with pytest.raises(ml.DataError, match="newresp has 3 values"):
        m_sleep.refit([1.0, 2.0, 3.0])


def test_refit_and_update_use_the_fit_functions_the_api_gave(m_sleep):
    from pymlm.results.lmer import LmerResult

    bare = LmerResult(m_sleep.design, m_sleep.fit, data=None, options=m_sleep.options)
    with pytest.raises(ml.OptionError, match=r"refit\(\) needs the fit function of the API"):
        bare.refit(m_sleep.design.y)
    with pytest.raises(ml.OptionError, match=r"update\(\) needs the fit function of the API"):
        bare.update(REML=False)


def test_update_changes_formula_and_method(m_sleep):
    ml_fit = m_sleep.update(REML=False)
    assert not ml_fit.reml
    assert ml_fit.deviance == pytest.approx(REF["sleepstudy"]["anova"]["deviance"][1], abs=1e-3)
    smaller = m_sleep.update(". ~ . - Days")
    assert list(smaller.fixef.index) == ["(Intercept)"]


def test_precision_weights_as_lme4():
    df = ml.datasets.load("sleepstudy")
    df["w"] = 1 + (df["Days"] % 3)
    _check_fit(ml.lmer("Reaction ~ Days + (Days | Subject)", df, weights="w"), REF["weighted"])
    _check_fit(ml.lmer("Reaction ~ Days + (Days | Subject)", df, weights=df["w"].to_numpy()), REF["weighted"])


def test_offset_as_lme4():
    df = ml.datasets.load("sleepstudy")
    df["off"] = 0.5 * df["Days"]
    m = ml.lmer("Reaction ~ Days + offset(off) + (1 | Subject)", df)
    _check_fit(m, REF["offset"])
    np.testing.assert_allclose(m.fitted[:10], REF["offset"]["fitted_head"], rtol=1e-5)


def test_rank_deficient_columns_are_dropped_with_a_message():
    df = ml.datasets.load("sleepstudy")
    df["Days2"] = 2 * df["Days"]
    with pytest.warns(ml.RankDeficiencyWarning, match="dropping 1 column.*Days2"):
        m = ml.lmer("Reaction ~ Days + Days2 + (1 | Subject)", df)
    assert list(m.fixef.index) == REF["rank_deficient"]["kept"]
    _check_fit(m, REF["rank_deficient"])
    assert "rank deficient" in str(m)


def test_singular_fit_is_flagged():
    with pytest.warns(ml.SingularFitWarning, match="singular"):
        m = ml.lmer("Yield ~ 1 + (1 | Batch)", ml.datasets.load("Dyestuff2"))
    assert m.is_singular
    assert m.theta[0] == 0.0
    assert "boundary (singular) fit" in str(m)


def test_nested_ml_fit(m_pastes):
    _check_fit(m_pastes, REF["pastes"]["fit"])
    _check_fit(m_pastes.update(REML=False), REF["pastes"]["fit_ml"])


def test_summary_layout(m_sleep):
    text = str(m_sleep)
    for piece in ["Linear mixed model fit by REML", "Formula: Reaction ~ Days + (Days | Subject)",
                  "Data: sleepstudy", "REML criterion at convergence: 1743.6", "Scaled residuals:",
                  "Random effects:", "Number of obs: 180, groups:  Subject, 18", "Fixed effects:",
                  "Correlation of Fixed Effects:", "(Intr)"]:
        assert piece in text, piece
    s = m_sleep.summary()
    assert list(s.fixed.columns) == ["Estimate", "Std. Error", "t value"]
    assert s.random["Groups"].tolist() == ["Subject", "", "Residual"]
    assert s.random["Std.Dev."].iloc[2] == pytest.approx(m_sleep.sigma)
    ml_text = str(m_sleep.update(REML=False))
    assert "maximum likelihood" in ml_text and "df.resid" in ml_text and "174" in ml_text


def test_missing_rows_are_dropped_counted_and_reported():
    df = ml.datasets.load("sleepstudy")
    df.loc[[3, 50, 51], "Reaction"] = np.nan
    with pytest.warns(ml.MissingDataWarning, match="3 of 180 rows dropped"):
        m = ml.lmer("Reaction ~ Days + (Days | Subject)", df)
    assert m.nobs == 177 and m.n_dropped == 3
    assert "3 observations deleted due to missingness" in str(m)


def test_no_random_terms_is_an_error(sleep):
    with pytest.raises(ml.FormulaError, match="no random-effects terms"):
        ml.lmer("Reaction ~ Days", sleep)


def test_bad_options_are_named(sleep):
    with pytest.raises(ml.OptionError, match="REML must be True or False; got 'yes'"):
        ml.lmer("Reaction ~ Days + (1 | Subject)", sleep, REML="yes")
    with pytest.raises(ml.OptionError, match="optimizer must be one of"):
        ml.lmer("Reaction ~ Days + (1 | Subject)", sleep, optimizer="newton")
    with pytest.raises(ml.OptionError, match="start has 1 values; this model has 3"):
        ml.lmer("Reaction ~ Days + (Days | Subject)", sleep, start=[1.0])


def test_derivative_free_optimizers_reach_the_same_optimum(sleep, m_sleep):
    for opt in ("bobyqa", "nelder-mead"):
        m = ml.lmer("Reaction ~ Days + (Days | Subject)", sleep, optimizer=opt)
        assert m.reml_criterion == pytest.approx(m_sleep.reml_criterion, abs=1e-6)


def test_lme4_start_reaches_the_same_optimum(sleep, m_sleep):
    m = ml.lmer("Reaction ~ Days + (Days | Subject)", sleep, start="lme4")
    assert m.reml_criterion == pytest.approx(m_sleep.reml_criterion, abs=1e-7)


def test_update_formula_dots_and_subtraction():
    from pymlm.results.lmer import _update_formula

    assert _update_formula("Reaction ~ Days + (Days | Subject)", ". ~ . - Days") == "Reaction ~ (Days | Subject)"
    assert _update_formula("y ~ x + (1|g)", ". ~ . - (1 | g) + (1 | h)") == "y ~ x + (1 | h)"
    assert _update_formula("y ~ x + (1|g)", "log(.) ~ . + x.1") == "log(y) ~ x + (1|g) + x.1"
    with pytest.raises(ml.FormulaError, match="needs a '~'"):
        _update_formula("y ~ x", "x + z")


def test_non_convergence_is_reported(sleep):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = ml.lmer("Reaction ~ Days + (Days | Subject)", sleep, start="lme4", optimizer_options={"maxfev": 3})
    assert any(issubclass(w.category, ml.ConvergenceWarning) and "stopped after" in str(w.message) for w in caught)
    assert not m.converged
    assert "Model failed to converge" in str(m)
    with pytest.raises(ml.OptionError, match="optimizer_options takes 'maxfev' and 'tol'"):
        ml.lmer("Reaction ~ Days + (Days | Subject)", sleep, optimizer_options={"maxit": 3})
