"""pymlm.glmer's results against lme4's fits of the same models.

The reference values come from tests/reference/make_glmer_reference.R
(glmer_reference.json). pymlm's optimum and lme4's agree to the tolerances
of the reference checker (fixed effects 3e-3 standard errors, theta 1e-3,
-2 log-likelihood at most 1e-3 above lme4's, standard errors 2e-2 of
lme4's finite-difference ones and 2e-3 of glmmTMB's exact-Hessian ones), so
fitted values, residuals and predictions agree to a few 1e-3, and the
printed summary has lme4's lines with numbers that may differ in their last
digits (its text between the numbers, once runs of spaces are collapsed,
is lme4's; the exact layout is tested on lme4's own optima in
test_glmer_result.py).
"""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from _glmer_cases import CASES, data_name, load_data, sm_family

import pymlm as ml

FAST = ["cbpp_laplace", "cbpp_agq25", "cbpp_nagq0", "cbpp_null", "poisson_offset", "bernoulli_factor",
        "gamma_log"]
# seconds each (more terms, more levels, a vector random effect)
SLOW = ["bernoulli_01", "bernoulli_logical", "cbpp_proportion_weights", "crossed_binomial", "nested_poisson",
        "grouseticks_poisson", "sim_bin_slopes", "glmer_nb_grouseticks"]
_FITS: dict = {}


def fit(case: str):
    if case not in _FITS:
        c = CASES[case]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nAGQ = 0's note on its bias
            if c["family"].startswith("Negative Binomial"):
                _FITS[case] = ml.glmer_nb(c["formula"], load_data(c["data"]), data_name=data_name(case))
            else:
                family = c["family"] if c["family"] in ("binomial", "poisson") else sm_family(c)
                _FITS[case] = ml.glmer(c["formula"], load_data(c["data"]), family=family, nAGQ=c["nAGQ"],
                                       weights=c.get("weights"), data_name=data_name(case))
    return _FITS[case]


def _values(d) -> np.ndarray:
    return np.atleast_1d(np.asarray(list(d.values()) if isinstance(d, dict) else d, dtype=float))


@pytest.mark.parametrize("case", FAST + ["bernoulli_singular"] + [pytest.param(c, marks=pytest.mark.slow)
                                                                  for c in SLOW])
def test_estimates_within_the_checker_tolerances(case):
    m, c = fit(case), CASES[case]
    se = _values(c["fixef_se"])
    if -2 * m.loglik_lme4 > -2 * c["logLik"] - 1e-3:  # the same optimum (not a better one): the same estimates
        assert np.all(np.abs(m.fixef.to_numpy() - _values(c["fixef"])) <= 3e-3 * se)
        assert np.all(np.abs(m.theta - _values(c["theta"])) <= 1e-3 * np.maximum(1, np.abs(_values(c["theta"]))))
    assert np.all(np.abs(m.fixef_se.to_numpy() / se - 1) <= 2e-2)
    tmb = c.get("glmmTMB", {})
    if c["family"] in ("binomial", "poisson") and c["nAGQ"] == 1 and "fixef_se" in tmb:
        assert np.all(np.abs(m.fixef_se.to_numpy() / _values(tmb["fixef_se"]) - 1) <= 2e-3)
    # lme4's scale of the log-likelihood (for nAGQ > 1 without the saturated constant): no worse than lme4's
    assert -2 * m.loglik_lme4 <= -2 * c["logLik"] + 1e-3
    assert m.sigma == pytest.approx(c["sigma"], rel=1e-3)
    if "nb_theta" in c:
        assert m.nb_theta == pytest.approx(c["nb_theta"], rel=1e-4)
        assert m.family_name == c["family"]
    assert (m.nobs, m.n_params, m.df_resid) == (c["nobs"], c["df"], c["df_resid"])
    assert m.is_singular == c["is_singular"]


@pytest.mark.parametrize("case", FAST)
def test_fitted_residuals_and_predictions_follow_lme4(case):
    m, c = fit(case), CASES[case]
    n = len(c["fitted_head"])
    np.testing.assert_allclose(m.fitted[:n], c["fitted_head"], rtol=5e-3, atol=1e-3)
    np.testing.assert_allclose(m.predict()[:n], c["eta_head"], rtol=5e-3, atol=1e-3)
    for kind, want in c["residuals_head"].items():
        np.testing.assert_allclose(m.residuals(kind)[:n], want, rtol=5e-3, atol=2e-3)
    assert m.conditional_deviance == pytest.approx(c["deviance"], rel=2e-3)
    if "newdata" in c:
        nd = pd.DataFrame(c["newdata"])
        np.testing.assert_allclose(m.predict(nd, type="response", allow_new_levels=True),
                                   c["predict"]["response"], rtol=5e-3, atol=1e-3)
        np.testing.assert_allclose(m.predict(nd, re_form="~0"), c["predict"]["link_fixed"], rtol=5e-3, atol=1e-3)
    vc = m.varcorr
    np.testing.assert_allclose(vc.sdcor, [r["sdcor"] for r in c["varcorr"]], rtol=2e-3)


_NUM = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]\d+)?")


def _skeleton(line: str) -> str:
    return " ".join(_NUM.sub("#", line).split())


@pytest.mark.parametrize("case", FAST + [pytest.param("glmer_nb_grouseticks", marks=pytest.mark.slow)])
@pytest.mark.parametrize("kind", ["summary", "print"])
def test_printed_lines_are_lme4s(case, kind):
    m, c = fit(case), CASES[case]
    ours = str(m.summary()).split("\n") if kind == "summary" else m.show().split("\n")
    ref = c[kind]
    assert [_skeleton(s) for s in ours] == [_skeleton(s) for s in ref]
    aic_row = next(k for k, s in enumerate(ref) if s.split()[:2] == ["AIC", "BIC"]) + 1
    for k, (a, b) in enumerate(zip(ours, ref)):
        if k == aic_row and m.nAGQ > 1:  # the absolute scale there, see test_glmer_result.py
            continue
        x, y = (np.array([float(v) for v in _NUM.findall(s)]) for s in (a, b))
        np.testing.assert_allclose(x, y, rtol=5e-2, atol=1e-3, err_msg=f"line {k}: {a!r} vs {b!r}")


def test_anova_refit_and_update_against_lme4():
    m1 = fit("cbpp_laplace")
    a = CASES["cbpp_anova"]
    m0 = m1.update(". ~ . - period")
    assert m0.loglik == pytest.approx(CASES["cbpp_null"]["logLik"], abs=1e-3)
    t = ml.anova(m0, m1, names=["m0_cbpp", "m1_cbpp"]).table
    assert t["Chisq"].iloc[1] == pytest.approx(a["Chisq"][1], abs=2e-3)
    assert t["Pr(>Chisq)"].iloc[1] == pytest.approx(a["p"][1], rel=1e-3)
    r = CASES["cbpp_refit"]
    succ = np.asarray(r["newresp_successes"], dtype=float)
    size = m1.design.y.sum(axis=1)
    mr = m1.refit(np.column_stack([succ, size - succ]))
    assert -2 * mr.loglik <= -2 * r["logLik"] + 1e-3
    np.testing.assert_allclose(mr.fixef.to_numpy(), _values(r["fixef"]), atol=1e-3)
    np.testing.assert_allclose(mr.theta, _values(r["theta"]), atol=1e-3)
    # a refit to the same response is the same fit
    same = m1.refit(m1.design.y)
    assert same.loglik == pytest.approx(m1.loglik, abs=1e-6)


@pytest.mark.slow
def test_negative_binomial_refit_estimates_the_shape_again():
    m = fit("glmer_nb_grouseticks")
    same = m.refit(m.design.y)
    assert same.nb_theta == pytest.approx(m.nb_theta, rel=1e-4)
    assert same.loglik == pytest.approx(m.loglik, abs=1e-4)
    smaller = m.update(". ~ . - YEAR")
    assert smaller.nb_theta is not None and smaller.n_params == m.n_params - 2
