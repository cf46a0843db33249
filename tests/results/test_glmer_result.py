"""GlmerResult against lme4: accessors, predictions, residuals, simulation,
refits, likelihood-ratio tests and the printed fit and summary.

The R values come from tests/reference/make_glmer_reference.R
(glmer_reference.json). Each case's lme4 optimum is rebuilt as a
GlmerResult (tests/results/_glmer_cases.py: pymlm's design of the formula
and data, lme4's theta, beta, b, conditional variances, eta and mu), so what
the result computes from them - variance components, ranef and coef frames,
residuals, predictions on new rows, criteria, every printed line - must equal
lme4's to rounding. One number differs on purpose: with nAGQ > 1 pymlm
reports the log-likelihood on the absolute scale, lme4 without the
saturated model's log-likelihood (its ``loglik_lme4``).
"""

import numpy as np
import pandas as pd
import pytest
from _glmer_cases import CASES, FIT_CASES, reference_result, saturated_m2ll
from _printed import compare_lines

import pymlm as ml
from pymlm.errors import DataError, OptionError
from pymlm.results.glmer import GlmerResult, GlmerSummary

_RESULTS: dict = {}
# deliberate differences: pymlm's optimizer (here the one the rebuilt fits name), its help pointer
SUBSTITUTE = {"optimizer (Nelder_Mead)": "optimizer (COBYQA)", "see help('isSingular')": "see is_singular"}


def r_lines(case: str, kind: str) -> list[str]:
    out = []
    for line in CASES[case][kind]:
        for a, b in SUBSTITUTE.items():
            line = line.replace(a, b)
        out.append(line)
    return out


def result(case: str) -> GlmerResult:
    if case not in _RESULTS:
        _RESULTS[case] = reference_result(case)
    return _RESULTS[case]


def _close(got, want, rtol=1e-9, atol=1e-12):
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=rtol, atol=atol)


def _aic_row(lines: list[str]) -> int:
    return next(k for k, line in enumerate(lines) if line.split()[:2] == ["AIC", "BIC"]) + 1


# ------------------------------------------------------------------ printing
@pytest.mark.parametrize("case", FIT_CASES)
def test_summary_lines_equal_lme4(case):
    m = result(case)
    ours, ref = str(m.summary()).split("\n"), r_lines(case, "summary")
    if m.nAGQ > 1:  # the criteria are on the absolute scale, lme4's are not: checked below
        k = _aic_row(ref)
        ours, ref = ours[:k] + ours[k + 1:], ref[:k] + ref[k + 1:]
    cmp = compare_lines(ours, ref, rel=1e-12)
    assert cmp.ok, cmp.bad


@pytest.mark.parametrize("case", FIT_CASES)
def test_printed_fit_equals_lme4(case):
    m = result(case)
    ours, ref = m.show().split("\n"), r_lines(case, "print")
    if m.nAGQ > 1:
        k = _aic_row(ref)
        ours, ref = ours[:k] + ours[k + 1:], ref[:k] + ref[k + 1:]
    cmp = compare_lines(ours, ref, rel=1e-12)
    assert cmp.ok, cmp.bad


def test_quadrature_criteria_on_the_absolute_scale():
    m = result("cbpp_agq25")
    c = CASES["cbpp_agq25"]
    sat = saturated_m2ll(c)
    assert m.loglik_lme4 == pytest.approx(c["logLik"], rel=1e-12)
    assert m.loglik - m.loglik_lme4 == pytest.approx(-sat / 2, rel=1e-12)
    assert m.aic == pytest.approx(c["AIC"] + sat, rel=1e-12)
    line = str(m.summary()).split("\n")[_aic_row(c["summary"])]
    assert line.split() == [f"{v:.1f}" for v in (m.aic, m.bic, m.loglik, m.deviance)] + ["51"]
    # the Laplace and the quadrature log-likelihoods are now comparable: close, not 42 apart
    assert abs(m.loglik - result("cbpp_laplace").loglik) < 0.1


def test_summary_tables():
    s = result("gamma_log").summary()
    assert isinstance(s, GlmerSummary)
    assert list(s.fixed.columns) == ["Estimate", "Std. Error", "t value", "Pr(>|z|)"]
    assert list(s.random["Groups"]) == ["g", "Residual"]
    s = result("sim_bin_slopes").summary()
    assert list(s.fixed.columns) == ["Estimate", "Std. Error", "z value", "Pr(>|z|)"]
    c = CASES["sim_bin_slopes"]
    _close(s.random["Std.Dev."], [r["sdcor"] for r in c["varcorr"][:2]])
    assert s.random["Corr"].iloc[1] == [pytest.approx(c["varcorr"][2]["sdcor"], rel=1e-12)]
    with pytest.raises(OptionError, match="correlation"):
        result("cbpp_laplace").summary(correlation="yes")
    assert "Correlation of Fixed Effects" not in str(result("cbpp_laplace").summary(correlation=False))


# ----------------------------------------------------------------- accessors
@pytest.mark.parametrize("case", FIT_CASES)
def test_criteria_and_counts(case):
    m, c = result(case), CASES[case]
    assert m.nobs == c["nobs"]
    assert m.ngroups == c["ngroups"]
    assert m.n_params == c["df"]
    assert m.df_resid == c["df_resid"]
    assert list(m.fixef.index) == list(c["fixef"])
    want = c["theta_names"] if isinstance(c["theta_names"], list) else [c["theta_names"]]
    assert m.theta_names == want
    assert m.sigma == pytest.approx(c["sigma"], rel=1e-12)
    assert m.conditional_deviance == pytest.approx(c["deviance"], rel=1e-9)
    if m.nAGQ <= 1:
        assert m.loglik == pytest.approx(c["logLik"], rel=1e-12)
        assert m.aic == pytest.approx(c["AIC"], rel=1e-12)
        assert m.bic == pytest.approx(c["BIC"], rel=1e-12)
        assert m.deviance == pytest.approx(-2 * c["logLik"], rel=1e-12)


@pytest.mark.parametrize("case", FIT_CASES)
def test_varcorr_equals_lme4(case):
    m, c = result(case), CASES[case]
    vc = m.varcorr
    ref = pd.DataFrame(c["varcorr"])
    assert list(vc.grp) == list(ref.grp)
    assert ("Residual" in set(vc.grp)) == (c["family"] in ("Gamma", "inverse.gaussian"))
    assert [v if isinstance(v, str) else None for v in vc.var2] == [v if isinstance(v, str) else None
                                                                    for v in ref.var2]
    _close(vc.vcov, ref.vcov, rtol=1e-10)
    _close(vc.sdcor, ref.sdcor, rtol=1e-10)


@pytest.mark.parametrize("case", FIT_CASES)
def test_ranef_condvar_and_coef_equal_lme4(case):
    m, c = result(case), CASES[case]
    frames = m.get_ranef(cond_var=True)
    assert list(frames) == list(c["ranef"])
    for group, rows in c["ranef"].items():
        df, pv = frames[group]
        assert pv.shape == (len(df), df.shape[1], df.shape[1])
        for k, row in enumerate(rows):
            assert df.index[k] == row["level"]
            _close(df.iloc[k][list(row["modes"])], list(row["modes"].values()), rtol=1e-10)
            _close(pv[k], np.asarray(row["condVar"]).reshape(pv.shape[1:]), rtol=1e-10)
        _close(m.ranef[group].to_numpy(), df.to_numpy())
    for group, rows in c["coef"].items():
        co = m.coef[group]
        for k, row in enumerate(rows):
            names = [n for n in row if n != "level"]
            assert co.index[k] == row["level"]
            _close(co.iloc[k][names], [row[n] for n in names], rtol=1e-10)


@pytest.mark.parametrize("case", FIT_CASES)
def test_fitted_and_residuals_equal_lme4(case):
    m, c = result(case), CASES[case]
    n = len(c["fitted_head"])
    _close(m.fitted[:n], c["fitted_head"], rtol=1e-12)
    for kind, want in c["residuals_head"].items():
        _close(m.residuals(kind)[:n], want, rtol=1e-9, atol=1e-12)
    assert np.sum(m.residuals("pearson") ** 2) == pytest.approx(c["residuals_sumsq"]["pearson"], rel=1e-9)
    _close(m.residuals("pearson", scaled=True), m.residuals("pearson") / c["sigma"])
    with pytest.raises(OptionError, match="deviance"):
        m.residuals("raw")


@pytest.mark.parametrize("case", FIT_CASES)
def test_predict_equals_lme4(case):
    m, c = result(case), CASES[case]
    n = len(c["eta_head"])
    _close(m.predict()[:n], c["eta_head"], rtol=1e-10)
    _close(m.predict(type="response")[:n], c["fitted_head"], rtol=1e-10)
    # without random effects, on the fitted rows: X beta + offset
    X = np.asarray(m.design.X)
    _close(m.predict(re_form="~0"), X @ m.fixef.to_numpy() + np.asarray(c["full"]["offset"]), rtol=1e-12)
    _close(m.predict(re_form=np.nan), m.predict(re_form="NA"))
    if "newdata" not in c:
        return
    nd = pd.DataFrame(c["newdata"])
    p = c["predict"]
    _close(m.predict(nd, allow_new_levels=True), p["link"], rtol=1e-9)
    _close(m.predict(nd, type="response", allow_new_levels=True), p["response"], rtol=1e-9)
    _close(m.predict(nd, re_form="~0"), p["link_fixed"], rtol=1e-9)
    _close(m.predict(nd, type="response", re_form="NA"), p["response_fixed"], rtol=1e-9)


def test_predict_refuses_new_levels_and_unknown_types():
    m = result("cbpp_laplace")
    nd = pd.DataFrame(CASES["cbpp_laplace"]["newdata"])
    with pytest.raises(DataError, match="herd.*99"):
        m.predict(nd)
    with pytest.raises(OptionError, match="link"):
        m.predict(type="mean")
    with pytest.raises(DataError, match=r"column 't'.*offset\(log\(t\)\)"):
        result("poisson_offset").predict(pd.DataFrame({"x": [0.1], "g": ["g01"]}))
    # one term of two: crossed subject and item effects
    mc = result("crossed_binomial")
    both, subj = mc.predict(), mc.predict(re_form="~(1 | subj)")
    item_b = mc.ranef["item"]["(Intercept)"].to_numpy()[mc.design.re_terms[1].codes]
    _close(both - subj, item_b, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- simulation
def test_simulate_is_reproducible_and_on_the_response_scale():
    m = result("cbpp_laplace")
    a, b = m.simulate(3, seed=7), m.simulate(3, seed=7)
    assert a.shape == (56, 3) and list(a.columns) == ["sim_1", "sim_2", "sim_3"]
    pd.testing.assert_frame_equal(a, b)
    trials = np.asarray(CASES["cbpp_laplace"]["full"]["prior_weights"])
    k = a.to_numpy() * trials[:, None]
    assert np.allclose(k, np.rint(k)) and (a.to_numpy() >= 0).all() and (a.to_numpy() <= 1).all()
    assert not m.simulate(1, seed=8).equals(m.simulate(1, seed=9))
    with pytest.raises(OptionError, match="nsim"):
        m.simulate(0)


@pytest.mark.parametrize("case", ["poisson_offset", "gamma_log", "glmer_nb_grouseticks"])
def test_simulated_means_follow_the_model(case):
    """With one random intercept, E[y] = exp(x beta + offset + s^2 / 2) (log link, b ~ N(0, s^2))."""
    m = result(case)
    sd_b = float(m.varcorr.sdcor.iloc[0])
    expected = np.exp(m.predict(re_form="~0") + sd_b ** 2 / 2)
    sims = m.simulate(4000, seed=1).to_numpy()
    assert np.mean(sims) == pytest.approx(np.mean(expected), rel=0.03)
    assert np.all(sims >= 0)


# ------------------------------------------------------------------- anova
def test_anova_likelihood_ratio_equals_lme4():
    a = CASES["cbpp_anova"]
    m0, m1 = result("cbpp_null"), result("cbpp_laplace")
    out = ml.anova(m1, m0, names=["m1_cbpp", "m0_cbpp"])
    t = out.table
    assert list(t.index) == ["m0_cbpp", "m1_cbpp"]
    _close(t["npar"], a["npar"])
    _close(t["logLik"], a["logLik"], rtol=1e-12)
    _close(t["AIC"], a["AIC"], rtol=1e-12)
    _close(t["Chisq"].iloc[1:], a["Chisq"][1:], rtol=1e-9)
    _close(t["Pr(>Chisq)"].iloc[1:], a["p"][1:], rtol=1e-9)
    cmp = compare_lines(str(out).split("\n"), a["print"], rel=1e-12)
    assert cmp.ok, cmp.bad


# ------------------------------------------------------------ refit, update
def test_refit_and_update_go_through_the_api_functions():
    calls = []

    def refit_design(design, **kw):
        calls.append(("design", design, kw))
        return "refitted"

    def refit_formula(formula, data, **kw):
        calls.append(("formula", formula, kw))
        return "updated"

    m = reference_result("cbpp_laplace", refit_design=refit_design, refit_formula=refit_formula)
    c = CASES["cbpp_refit"]
    succ = np.asarray(c["newresp_successes"], dtype=float)
    size = m.design.y.sum(axis=1)
    assert m.refit(np.column_stack([succ, size - succ])) == "refitted"
    _, design, kw = calls[-1]
    _close(design.y[:, 0], succ)
    assert kw["family"] == "binomial" and kw["data_name"] == "cbpp"
    m.refit(succ / size)  # proportions with the fit's numbers of trials
    _close(calls[-1][1].y, np.column_stack([succ, size - succ]))
    with pytest.raises(DataError, match="shape"):
        m.refit(np.ones((3, 2)))
    with pytest.raises(DataError, match="NaN"):
        m.refit(np.full(56, np.nan))
    assert m.update(". ~ . - period", nAGQ=5) == "updated"
    _, formula, kw = calls[-1]
    assert formula.replace(" ", "") == "cbind(incidence,size-incidence)~(1|herd)"
    assert kw["nAGQ"] == 5 and kw["family"] == "binomial"
    bare = result("cbpp_laplace")
    with pytest.raises(OptionError, match="glmer"):
        bare.refit(succ / size)
    with pytest.raises(OptionError, match="glmer"):
        bare.update(". ~ 1 + (1 | herd)")


def test_singular_fit_is_reported():
    m = result("bernoulli_singular")
    assert m.is_singular and m.messages == ["boundary (singular) fit: see is_singular"]
    assert [c.__name__ for _, c in m.fit_warnings()] == ["SingularFitWarning"]
    assert str(m.summary()).split("\n")[-3:] == ["optimizer (COBYQA) convergence code: 0 (OK)",
                                                "boundary (singular) fit: see is_singular", ""]


def test_repr_and_status():
    m = result("cbpp_laplace")
    assert repr(m).startswith("<GlmerResult binomial(logit) nAGQ=1")
    assert not m.is_singular and m.converged and m.messages == []
    assert not m.reml and m.family_name == "binomial" and m.nb_theta is None
    assert result("glmer_nb_grouseticks").nb_theta == pytest.approx(CASES["glmer_nb_grouseticks"]["nb_theta"])
