"""lme4's prediction, simulation and diagnostic toolkit on lmer fits, against lme4
(tests/reference/lmer_diag.json, made by tests/reference/lmer_diag.R) and,
where the installed lme4 has no value (predict's se.fit), against exact
identities and simulation."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla

import pymlm as ml
from pymlm.errors import DataError, OptionError

REF = json.loads((Path(__file__).parents[1] / "reference" / "lmer_diag.json").read_text())
F1 = "Reaction ~ Days + (Days | Subject)"
F2 = "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"
F3 = "diameter ~ (1 | plate) + (1 | sample)"


@pytest.fixture(scope="module")
def sleep():
    return ml.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def m1(sleep):
    return ml.lmer(F1, sleep)


@pytest.fixture(scope="module")
def m2(sleep):
    return ml.lmer(F2, sleep)


@pytest.fixture(scope="module")
def m3():
    return ml.lmer(F3, ml.datasets.load("Penicillin"))


def _dense_system(m, formula, data):
    """Z Lambda, X and the dense coefficient matrix C of the penalized system (the test's own algebra)."""
    d = ml.lformula(formula, data)
    Z = d.Z.toarray()
    lam = sla.block_diag(*[np.kron(np.eye(t.nlevels), T) for t, T in zip(m.design.re_terms, m._Ts)])
    ZL = Z @ lam
    X = np.asarray(m.design.X)
    A = np.hstack([ZL, X])
    C = A.T @ A
    C[: ZL.shape[1], : ZL.shape[1]] += np.eye(ZL.shape[1])
    return ZL, X, A, C


# ------------------------------------------------------------------ predict
def test_population_se_is_x_v_x(m1, sleep):
    new = sleep.iloc[[0, 5, 17, 99]]
    out = m1.predict(new, re_form="~0", se_fit=True)
    X = m1.design.fixed_matrix(new)
    want = np.sqrt(np.einsum("ij,jk,ik->i", X, m1.vcov.to_numpy(), X))
    np.testing.assert_allclose(out["se_fit"], want, rtol=1e-10)
    np.testing.assert_allclose(out["fit"], m1.predict(new, re_form="~0"), rtol=1e-12)


def test_conditional_se_equals_henderson_pev(m1, sleep):
    """se_fit^2 = sigma^2 a' C^{-1} a, a = (Lambda'z, x): the dense system, formed here."""
    _ZL, _X, A, C = _dense_system(m1, F1, sleep)
    want = m1.sigma * np.sqrt(np.einsum("ij,ji->i", A, np.linalg.solve(C, A.T)))
    got = m1.predict(se_fit=True)["se_fit"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-8)
    # newdata rows give the same as the fitted rows they copy
    new = sleep.iloc[[3, 40, 177]]
    np.testing.assert_allclose(m1.predict(new, se_fit=True)["se_fit"], want[[3, 40, 177]], rtol=1e-8)


def test_conditional_se_matches_simulated_prediction_error(m1, sleep):
    """Draw (u, e) from the fitted model, estimate (beta, u) at the fitted theta, and compare the
    spread of the prediction error with se_fit (4000 draws: 5% on the sd)."""
    ZL, X, A, C = _dense_system(m1, F1, sleep)
    rng = np.random.default_rng(3)
    nsim, s = 4000, m1.sigma
    beta = m1.fixef.to_numpy()
    U = s * rng.standard_normal((ZL.shape[1], nsim))
    Y = (X @ beta)[:, None] + ZL @ U + s * rng.standard_normal((len(sleep), nsim))
    est = np.linalg.solve(C, A.T @ Y)
    truth = np.vstack([U, np.repeat(beta[:, None], nsim, axis=1)])
    err = A @ (est - truth)
    se = m1.predict(se_fit=True)["se_fit"].to_numpy()
    np.testing.assert_allclose(err.std(axis=1), se, rtol=0.05)


@pytest.mark.parametrize("name", ["m1", "m3"])
def test_se_fit_matches_lme4_definition(name, request):
    """R's values: lme4's definition of se.fit (>= 1.1-38) formed from R's own fit by the reference script."""
    m = request.getfixturevalue(name)
    ref = REF[name]["se_fit"]
    rows = np.array(ref["rows"]) - 1
    cond = m.predict(se_fit=True).iloc[rows]
    np.testing.assert_allclose(cond["fit"], ref["fit"], rtol=1e-5)
    np.testing.assert_allclose(cond["se_fit"], ref["se"], rtol=2e-4)
    pop = m.predict(re_form="~0", se_fit=True).iloc[rows]
    np.testing.assert_allclose(pop["fit"], ref["fit0"], rtol=1e-5)
    np.testing.assert_allclose(pop["se_fit"], ref["se0"], rtol=2e-4)


def test_se_new_level_is_population_se(m1, sleep):
    new = sleep.iloc[[2]].assign(Subject="new")
    got = m1.predict(new, se_fit=True, allow_new_levels=True)
    pop = m1.predict(new, re_form="~0", se_fit=True)
    pd.testing.assert_frame_equal(got, pop)
    with pytest.raises(DataError, match="new levels in grouping factor 'Subject'"):
        m1.predict(new, se_fit=True)


def test_se_crossed_terms(m3):
    data = ml.datasets.load("Penicillin")
    _ZL, _X, A, C = _dense_system(m3, F3, data)
    want = m3.sigma * np.sqrt(np.einsum("ij,ji->i", A, np.linalg.solve(C, A.T)))
    np.testing.assert_allclose(m3.predict(se_fit=True)["se_fit"], want, rtol=1e-8)


# ----------------------------------------------------------------- simulate
def test_simulate_use_u_moments(m1):
    sims = m1.simulate(2000, seed=1, use_u=True).to_numpy()
    resid = sims - m1.fitted[:, None]
    assert np.abs(resid.mean(axis=1)).max() < 4 * m1.sigma / np.sqrt(2000)
    np.testing.assert_allclose(resid.var(axis=1, ddof=1).mean(), m1.sigma ** 2, rtol=0.02)


def test_simulate_unconditional_variance(m1):
    sims = m1.simulate(3000, seed=2).to_numpy()
    x = np.column_stack([np.ones(m1.nobs), m1.design.X[:, 1]])
    T = m1._Ts[0]
    want = m1.sigma ** 2 * (np.einsum("ij,jk,ik->i", x, T @ T.T, x) + 1)
    np.testing.assert_allclose(sims.var(axis=1, ddof=1), want, rtol=0.12)
    np.testing.assert_allclose(sims.mean(axis=1), m1.predict(re_form="~0"), atol=5 * np.sqrt(want.max() / 3000))
    # the same seed, the same draws, as before use_u existed
    pd.testing.assert_frame_equal(m1.simulate(3, seed=5), m1.simulate(3, seed=5, use_u=False))


def test_simulate_newdata(m1, sleep):
    new = sleep.iloc[:10]
    sims = m1.simulate(4000, seed=4, newdata=new, use_u=True).to_numpy()
    np.testing.assert_allclose(sims.mean(axis=1), m1.predict(new), atol=4 * m1.sigma / np.sqrt(4000))
    fresh = m1.simulate(4000, seed=4, newdata=new.assign(Subject="x")).to_numpy()
    # one level: rows share the random effect, so they are correlated
    r = np.corrcoef(fresh[0], fresh[9])[0, 1]
    x0, x9 = np.array([1.0, 0.0]), np.array([1.0, 9.0])
    S = m1._Ts[0] @ m1._Ts[0].T
    want = (x0 @ S @ x9) / np.sqrt((x0 @ S @ x0 + 1) * (x9 @ S @ x9 + 1))
    assert r == pytest.approx(want, abs=0.05)
    with pytest.raises(DataError, match="allow_new_levels=True"):
        m1.simulate(2, newdata=new.assign(Subject="x"), use_u=True)
    with pytest.raises(OptionError, match="nsim"):
        m1.simulate(0)


# ---------------------------------------------------------------- bootstrap
def test_bootstrap_replicates_any_statistic(m1):
    b = m1.bootstrap(lambda r: r.fixef, nsim=8, seed=11)
    assert list(b.columns) == ["(Intercept)", "Days"] and b.shape == (8, 2)
    pd.testing.assert_series_equal(b.attrs["t0"], m1.fixef.rename(None), check_names=False)
    # the responses are those of confint(method="boot") with the same seed
    ci = m1.confint("boot", nsim=8, seed=11, progress=False)
    np.testing.assert_allclose(b.to_numpy(), ci.attrs["replicates"][["(Intercept)", "Days"]].to_numpy(),
                               rtol=1e-6)
    assert b.attrs["failed"] == 0 and 0 <= b.attrs["warned"] <= 8
    s = m1.bootstrap(lambda r: {"sigma": r.sigma, "ll": r.loglik}, nsim=3, seed=2)
    assert list(s.columns) == ["sigma", "ll"] and np.isfinite(s.to_numpy()).all()
    with pytest.raises(OptionError, match="picklable"):
        m1.bootstrap(lambda r: r.sigma, nsim=2, n_jobs=2)
    with pytest.raises(OptionError, match="callable"):
        m1.bootstrap("fixef", nsim=2)


# -------------------------------------------------------------- diagnostics
@pytest.mark.parametrize("name", ["m1", "m2", "m3"])
def test_hatvalues_match_lme4(name, request):
    m = request.getfixturevalue(name)
    np.testing.assert_allclose(m.hatvalues(), REF[name]["hat"], atol=2e-5)


def test_weighted_hatvalues_and_cooks_match_lme4(sleep):
    df = sleep.assign(w=1 + (sleep["Days"] % 3))
    m = ml.lmer(F1, df, weights="w")
    np.testing.assert_allclose(m.hatvalues(), REF["weighted"]["hat"], atol=2e-5)
    np.testing.assert_allclose(m.cooks_distance(), REF["weighted"]["cooks"], rtol=2e-3)


def test_hatvalues_are_the_hat_matrix(m1, sleep):
    _ZL, _X, A, C = _dense_system(m1, F1, sleep)
    H = A @ np.linalg.solve(C, A.T)
    np.testing.assert_allclose(m1.hatvalues(), np.diag(H), rtol=1e-9)
    np.testing.assert_allclose(H @ m1.design.y, m1.fitted, rtol=1e-7)


@pytest.mark.parametrize("name", ["m1", "m2"])
def test_cooks_distance_matches_lme4(name, request):
    m = request.getfixturevalue(name)
    np.testing.assert_allclose(m.cooks_distance(), REF[name]["cooks"], rtol=2e-3)


def test_influence_by_group_matches_lme4(m1):
    ref = REF["m1"]
    inf = m1.influence("Subject")
    assert list(inf.fixed_effects_deleted.index) == ref["infl_groups"]
    np.testing.assert_allclose(inf.fixed_effects_deleted, ref["infl_fixef"], rtol=1e-6)
    np.testing.assert_allclose(inf.dfbeta(), ref["infl_dfbeta"], atol=1e-5)
    np.testing.assert_allclose(inf.dfbetas(), ref["infl_dfbetas"], atol=2e-4)
    np.testing.assert_allclose(inf.cooks_distance(), ref["infl_cooks"], rtol=1e-3)
    vc, want = inf.var_cov_comps_deleted.to_numpy(), np.array(ref["infl_varcov"])
    np.testing.assert_allclose(vc[:, [0, 1, 3]], want[:, [0, 1, 3]], rtol=2e-3)
    # the covariance on the correlation scale
    np.testing.assert_allclose(vc[:, 2] / np.sqrt(vc[:, 1] * vc[:, 3]),
                               want[:, 2] / np.sqrt(want[:, 1] * want[:, 3]), atol=5e-3)
    assert list(inf.var_cov_comps.index) == ["sigma^2", "v[(Intercept)]", "C[Days,(Intercept)]", "v[Days]"]
    assert inf.converged.all()


def test_influence_by_case_matches_lme4(m2):
    inf = m2.influence()
    np.testing.assert_allclose(inf.fixed_effects_deleted.to_numpy()[:12], REF["m2"]["infl_obs_fixef"], rtol=1e-5)
    np.testing.assert_allclose(inf.cooks_distance().to_numpy()[:12], REF["m2"]["infl_obs_cooks"], rtol=1e-3)


def test_influence_bad_column(m1):
    with pytest.raises(DataError, match="'Subjct'"):
        m1.influence("Subjct")


# ----------------------------------------------------------- rePCA, isSingular
@pytest.mark.parametrize("name", ["m1", "m2", "m3"])
def test_repca_matches_lme4(name, request):
    m = request.getfixturevalue(name)
    got = m.rePCA()
    assert list(got) == list(REF[name]["rePCA"])
    for g, want in REF[name]["rePCA"].items():
        tab = got[g]
        np.testing.assert_allclose(tab.loc["Standard deviation"], np.atleast_1d(want["sdev"]), rtol=1e-4)
        np.testing.assert_allclose(tab.loc["Proportion of Variance"], np.atleast_1d(want["prop"]), atol=2e-5)
        np.testing.assert_allclose(tab.loc["Cumulative Proportion"], np.atleast_1d(want["cumprop"]), atol=2e-5)


def test_is_singular_tol(m1):
    assert m1.is_singular == REF["m1"]["singular"]
    assert not m1.is_singular
    assert m1.is_singular(tol=0.5) == REF["m1"]["singular_big"] is True
    assert m1.is_singular(tol=1e-4) is False
    with pytest.raises(OptionError, match="tol"):
        m1.is_singular(tol=-1)


# ------------------------------------------------------------------ VarCorr
_NUM = re.compile(r"-?\d+\.\d+|-?\d+")


def _same_text(got: str, want_lines: list[str], rtol=1e-4):
    """The same layout, character for character outside numbers; numbers within rtol (the fits
    differ in the 5th significant digit)."""
    got_lines = got.split("\n")
    assert len(got_lines) == len(want_lines)
    for g, w in zip(got_lines, want_lines):
        assert len(g) == len(w), (g, w)
        assert _NUM.sub("#", g) == _NUM.sub("#", w), (g, w)
        np.testing.assert_allclose([float(x) for x in _NUM.findall(g)], [float(x) for x in _NUM.findall(w)],
                                   rtol=rtol, atol=1e-3)


@pytest.mark.parametrize("name,key,comp", [("m1", "vc_both", ("Variance", "Std.Dev.")), ("m1", "vc_var", "Variance"),
                                           ("m1", "vc_sd", ("Std.Dev.",)), ("m2", "vc_both", ("Variance", "Std.Dev.")),
                                           ("m3", "vc_both", ("Variance", "Std.Dev.")), ("m3", "vc_var", "Variance")])
def test_varcorr_printing_matches_lme4(name, key, comp, request):
    m = request.getfixturevalue(name)
    _same_text(m.format_varcorr(comp=comp), REF[name][key])


def test_varcorr_bad_comp(m1):
    with pytest.raises(OptionError, match="comp must be"):
        m1.format_varcorr(comp="sd")


# ------------------------------------------------------------------ allFit
def test_allfit_rows_equal_single_optimizer_fits(sleep, m1):
    tab = ml.allFit(m1)
    assert list(tab.index) == ["lbfgsb", "bobyqa", "nelder-mead", "powell", "cobyqa"]
    for opt in tab.index:
        single = ml.lmer(F1, sleep, optimizer=opt)
        row = tab.loc[opt]
        assert row["REML criterion"] == pytest.approx(single.reml_criterion, rel=1e-12)
        np.testing.assert_allclose(row[single.theta_names].to_numpy(float), single.theta, rtol=1e-10)
        np.testing.assert_allclose(row[list(single.fixef.index)].to_numpy(float), single.fixef, rtol=1e-10)
        assert row["sigma"] == pytest.approx(single.sigma, rel=1e-10)
        assert bool(row["converged"]) == single.converged
    # every optimizer reaches lme4's optimum here
    assert (tab["REML criterion"] - m1.reml_criterion).abs().max() < 1e-4
    assert (tab["seconds"] > 0).all() and (tab["feval"] > 0).all()


def test_allfit_options(m3):
    tab = ml.allFit(m3, optimizers=["bobyqa"])
    assert list(tab.index) == ["bobyqa"] and "deviance" not in tab.columns
    with pytest.raises(OptionError, match="optimizer"):
        ml.allFit(m3, optimizers=["newton"])
    with pytest.raises(OptionError, match="pymlm.lmer"):
        ml.allFit("m3")


# ------------------------------------------------------------------- reprs
def test_fit_and_profile_reprs_are_short(sleep):
    m = ml.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    r = repr(m.fit)
    assert len(r) < 300 and r.count("\n") <= 3
    assert "REML criterion" in r and f"{m.fit.deviance:.4f}" in r
    p = repr(m.profile(which="beta_"))
    assert len(p) < 300 and "\n" not in p and "(Intercept), Days" in p
    inf = m.influence("Subject")
    assert len(repr(inf)) < 200 and "18 deletions" in repr(inf)


def test_pev_chunks_give_the_same_values(m1, monkeypatch):
    from pymlm.results import _diagnostics

    whole = m1.hatvalues()
    monkeypatch.setattr(_diagnostics, "_CELLS", 36 * 7)  # 7 rows per solve
    np.testing.assert_allclose(m1.hatvalues(), whole, rtol=1e-12)


@pytest.mark.parametrize("formula,data", [(F1, "sleepstudy"), (F3, "Penicillin"),
                                          ("strength ~ (1 | batch/cask)", "Pastes")])
def test_pev_paths_agree_with_dense_algebra(formula, data):
    """The one-chain path and the general sparse solve give the dense system's hat values."""
    from pymlm.results import _diagnostics

    df = ml.datasets.load(data)
    m = ml.lmer(formula, df)
    ZL, X, A, C = _dense_system(m, formula, df)
    want = np.einsum("ij,ji->i", A, np.linalg.solve(C, A.T))
    d = m.design
    args = (m, d.X, list(range(len(d.re_terms))), [t.codes for t in d.re_terms], [t.X for t in d.re_terms])
    np.testing.assert_allclose(_diagnostics._pev_general(*args), want, rtol=1e-8)
    np.testing.assert_allclose(m.hatvalues(), want, rtol=1e-8)
    if len(m.fit.factor.struct.chain) == 1:
        np.testing.assert_allclose(_diagnostics._pev_chain(*args), want, rtol=1e-8)
