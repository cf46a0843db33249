"""GamResult's log-likelihood, AIC and BIC against mgcv 1.8-41 (tests/reference/gam_toolkit_reference.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import pymlm as ml
from pymlm.errors import OptionError
from pymlm.results.gam import family_loglik

REF = json.loads((Path(__file__).parents[1] / "reference" / "gam_toolkit_reference.json").read_text())
CASES = REF["cases"]
# the columns make_gam_toolkit_reference.R derives, in Python
DERIVED = {"yb": lambda d: (d["y"] > 8).astype(float), "lticks": lambda d: np.log(d["TICKS"] + 1)}
_FITS: dict = {}


def fit_case(name: str):
    if name not in _FITS:
        c = CASES[name]
        df = ml.datasets.load(c["data"])
        if c["rows"]:
            df = df.iloc[: c["rows"]].copy()
        for col in c["derived"] or {}:
            df[col] = DERIVED[col](df)
        _FITS[name] = ml.gam(c["formula"], df, family=c["family"], progress=False)
    return _FITS[name]


@pytest.mark.parametrize("name", sorted(CASES))
def test_loglik_aic_bic_match_mgcv(name):
    c = CASES[name]
    b = fit_case(name)
    assert b.loglik == pytest.approx(c["loglik"], rel=1e-6)
    # gamsim_tp: see DF_TOL
    rel = 2e-6 if name in DF_TOL else 1e-6
    assert b.aic == pytest.approx(c["aic"], rel=rel)
    assert b.bic == pytest.approx(c["bic"], rel=rel)


# s(x2) is a thin-plate smooth: pymlm's basis spans mgcv's but is another rotation of it, and
# the smoothing-parameter correction of edf2 is not invariant to that (it differentiates the
# Cholesky factor of X'WX + S), so its df agrees to 4e-4 only
DF_TOL = {"gamsim_tp": 1e-3}


@pytest.mark.parametrize("name", sorted(CASES))
def test_loglik_df_is_mgcv_sum_edf2(name):
    c = CASES[name]
    b = fit_case(name)
    assert b.n_params == pytest.approx(c["df"], abs=DF_TOL.get(name, 1e-4))
    assert float(np.sum(b.fit_.edf2)) == pytest.approx(c["sum_edf2"], abs=DF_TOL.get(name, 1e-4))
    assert float(np.sum(b.fit_.edf2)) <= float(np.sum(b.fit_.edf1)) + 1e-12


def test_edf2_falls_back_to_edf1_as_mgcv():
    # mgcv's corrected sum exceeded sum(edf1) here, and took edf1
    c = CASES["gamsim_binomial"]
    assert c["sum_edf2"] == pytest.approx(c["sum_edf1"], rel=1e-12)
    b = fit_case("gamsim_binomial")
    np.testing.assert_allclose(b.fit_.edf2, b.fit_.edf1, rtol=0, atol=0)


def test_supplied_sp_gives_sum_edf_plus_scale():
    b0 = fit_case("gamsim_gaussian_small")
    c = CASES["gamsim_gaussian_small"]
    df = ml.datasets.load("gamsim_re").iloc[:400]
    b = ml.gam(c["formula"], df, sp=b0.sp.to_numpy(), progress=False)
    assert b.fit_.edf2 is None
    assert b.n_params == pytest.approx(b.edf_total + 1, rel=1e-12)
    assert b.n_params > b0.n_params - 1  # the corrected df is the larger one
    assert b.loglik == pytest.approx(b0.loglik, rel=1e-8)


def test_family_loglik_identities():
    rng = np.random.default_rng(1)
    y = rng.normal(size=50)
    mu = y + rng.normal(scale=0.3, size=50)
    dev = float(np.sum((y - mu) ** 2))
    sigma = np.sqrt(dev / 50)
    from scipy import stats

    assert family_loglik("gaussian", y, mu, np.ones(50), dev) == pytest.approx(
        float(np.sum(stats.norm.logpdf(y, mu, sigma))), rel=1e-12)
    # binomial totals as weights: the same as the expanded Bernoulli rows
    k = np.array([0, 2, 5]); n = np.array([4, 5, 5]); p = np.array([0.2, 0.5, 0.7])
    grouped = family_loglik("binomial", k / n, p, n.astype(float), 0.0)
    import math

    expected = sum(math.log(math.comb(int(ni), int(ki))) + ki * math.log(pi) + (ni - ki) * math.log(1 - pi)
                   for ki, ni, pi in zip(k, n, p))
    assert grouped == pytest.approx(expected, rel=1e-12)
    with pytest.raises(OptionError, match="loglik is available for"):
        family_loglik("inverse.gaussian", y, mu, np.ones(50), dev)


@pytest.mark.parametrize("pair", sorted(REF["nested"]))
def test_anova_of_nested_gams_matches_mgcv(pair):
    r = REF["nested"][pair]
    b0, b1 = (fit_case(n) for n in r["models"])
    out = ml.anova(b0, b1, test="Chisq")
    t = out.table
    assert list(t.index) == ["b0", "b1"]  # the argument names
    want = r["table"]
    np.testing.assert_allclose(t["Resid. Df"], want["resid_df"], rtol=1e-5)
    np.testing.assert_allclose(t["Resid. Dev"], want["resid_dev"], rtol=1e-6)
    assert t["Df"].iloc[1] == pytest.approx(want["df"][1], rel=1e-4)
    assert t["Deviance"].iloc[1] == pytest.approx(want["deviance"][1], rel=1e-5)
    assert np.log(t["Pr(>Chi)"].iloc[1]) == pytest.approx(np.log(want["p"][1]), rel=1e-3)
    printed = str(out).splitlines()
    assert printed[0] == r["printed"][0]
    # R's column header (the formulas are deparsed by R over several lines)
    header = next(line for line in r["printed"] if "Resid. Df" in line)
    assert header.split() == next(line for line in printed if "Resid. Df" in line).split()


def test_anova_names_and_options():
    b0, b1 = fit_case("gamsim_gaussian_small"), fit_case("gamsim_gaussian")
    t = ml.anova(b0, b1, names=["small", "big"]).table
    assert list(t.index) == ["small", "big"] and "Pr(>Chi)" not in t.columns
    assert list(ml.anova(*[b0, b1]).table.index) == ["b0", "b1"]
    same = b0
    assert list(ml.anova(same, b1).table.index) == ["m0", "m1"]  # b0 and same: two names for one model
    with pytest.raises(OptionError, match="test must be one of"):
        ml.anova(b0, b1, test="F")
    m = ml.lmer("Reaction ~ Days + (1 | Subject)", ml.datasets.load("sleepstudy"))
    with pytest.raises(OptionError, match="models of one kind"):
        ml.anova(b0, m)


def test_gam_fit_has_a_short_repr():
    b = fit_case("gamsim_binomial_small")
    text = repr(b.fit_)
    assert text.startswith("<GamFit binomial(logit) REML: p=19, n=400, 2 smoothing parameters")
    assert len(text) < 200


def _frame(t):
    # the JSON unboxes one-row tables to scalars
    return {c: np.array([np.nan if v is None else v for v in np.atleast_1d(vals)], dtype=float)
            for c, vals in t["columns"].items()}


def _rows(t):
    return [t["rows"]] if isinstance(t["rows"], str) else t["rows"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_single_model_anova_matches_mgcv(name):
    c = CASES[name]
    b = fit_case(name)
    a = ml.anova(b)
    if c["ptable"] is None:
        assert len(a.p_table) == 0
    else:
        want = _frame(c["ptable"])
        assert list(a.p_table.index) == _rows(c["ptable"])
        assert list(a.p_table.columns) == list(want)
        np.testing.assert_array_equal(a.p_table["df"], want["df"])
        stat = a.p_table.columns[1]
        np.testing.assert_allclose(a.p_table[stat], want[stat], rtol=1e-5)
        np.testing.assert_allclose(np.log(a.p_table["p-value"]), np.log(want["p-value"]), rtol=1e-4)
    want = _frame(c["stable"])
    assert list(a.s_table.index) == _rows(c["stable"])
    np.testing.assert_allclose(a.s_table["edf"], want["edf"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["sleep_re", "grouse_factor", "cbpp_re", "gamsim_gaussian_small"])
def test_single_model_anova_prints_as_mgcv(name):
    assert str(ml.anova(fit_case(name))).splitlines() == CASES[name]["printed"]


@pytest.fixture(scope="module")
def grouse_fit():
    r = REF["predict"]
    d = ml.datasets.load("gamsim_re").iloc[:2000]
    b = ml.gam(r["formula"], d, progress=False)
    np.testing.assert_allclose(b.coef, r["coef"], rtol=1e-4, atol=1e-6)  # the fits agree
    return b, d.iloc[np.asarray(r["rows"]) - 1].reset_index(drop=True)


def test_predict_terms_match_mgcv(grouse_fit):
    r = REF["predict"]
    b, nd = grouse_fit
    fit, se = b.predict(nd, type="terms", se_fit=True)
    assert list(fit.columns) == _rows(r["terms"]) or list(fit.columns) == list(r["terms"]["columns"])
    for col in fit.columns:
        np.testing.assert_allclose(fit[col], r["terms"]["columns"][col], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(se[col], r["terms_se"]["columns"][col], rtol=1e-3, atol=1e-6)
    assert fit.attrs["constant"] == pytest.approx(r["constant"], rel=1e-5)
    # the terms and the constant add up to the linear predictor
    np.testing.assert_allclose(fit.sum(axis=1) + fit.attrs["constant"], b.predict(nd), rtol=1e-12)


def test_predict_exclude_and_lpmatrix_match_mgcv(grouse_fit):
    r = REF["predict"]
    b, nd = grouse_fit
    np.testing.assert_allclose(b.predict(nd, exclude="s(g)"), r["exclude_link"], rtol=1e-5)
    assert list(b.predict(nd, type="terms", exclude=["s(g)"]).columns) == r["exclude_terms"]
    X = b.predict(nd, type="lpmatrix")
    np.testing.assert_allclose(X, r["lpmatrix"], rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(X @ b.coef.to_numpy(), b.predict(nd), rtol=1e-12)
    np.testing.assert_allclose(b.predict(nd, type="lpmatrix", exclude="s(x2)"), r["lpmatrix_exclude"],
                               rtol=1e-6, atol=1e-10)
    # the training rows: the same matrix as on the same rows given as new data
    Xt = b.predict(type="lpmatrix")
    np.testing.assert_allclose(Xt[np.asarray(r["rows"]) - 1], X, rtol=1e-12)
    with pytest.raises(OptionError, match="exclude names no term of the model: 's\\(x9\\)'"):
        b.predict(nd, exclude="s(x9)")
    with pytest.raises(OptionError, match="type must be one of"):
        b.predict(nd, type="iterms")


def test_predict_warns_on_new_levels_as_mgcv(grouse_fit):
    r = REF["predict"]
    b, nd = grouse_fit
    nd = nd.copy()
    nd["g"] = nd["g"].astype(str)
    nd.loc[1, "g"] = "g999"
    assert r["new_level_warning"] == "factor levels g999 not in original fit"
    with pytest.warns(ml.errors.PymlmWarning, match="factor levels 'g999' of g in s\\(g\\) not in original fit"):
        got = b.predict(nd)
    np.testing.assert_allclose(got, r["new_level_link"], rtol=1e-5)
