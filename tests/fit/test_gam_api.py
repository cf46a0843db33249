"""gam() / bam(): options, errors, invariances and the three ways of forming X'WX."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from _smooth_data import smooth_cases

import pymlm as ml
from pymlm.errors import DataError, FormulaError, MissingDataWarning, OptionError

REF = Path(__file__).resolve().parents[1] / "reference"


@pytest.fixture(scope="module")
def d():
    return smooth_cases()


F1 = 'y ~ s(x, bs = "cr") + s(z, bs = "ps") + s(g, bs = "re")'


def test_bad_options_are_option_errors(d):
    with pytest.raises(OptionError, match=r"method must be one of 'REML', 'ML', 'GCV.Cp'; got 'GACV.Cp'"):
        ml.gam(F1, d, method="GACV.Cp")
    with pytest.raises(OptionError, match=r"method must be one of 'fREML', 'REML'; got 'ML'"):
        ml.bam(F1, d, method="ML")
    with pytest.raises(OptionError, match=r"family must be one of 'gaussian', 'binomial', 'poisson', 'Gamma'; got 'weibull'"):
        ml.bam(F1, d, family="weibull")
    with pytest.raises(OptionError, match=r"optimizer must be one of 'newton', 'fs'; got 'bfgs'"):
        ml.gam(F1, d, optimizer="bfgs")
    with pytest.raises(OptionError, match=r"chunk_size must be an integer >= 1; got 0"):
        ml.bam(F1, d, discrete=False, chunk_size=0)
    with pytest.raises(OptionError, match=r"discrete must be True or False; got 'yes'"):
        ml.bam(F1, d, discrete="yes")
    with pytest.raises(OptionError, match=r"sp must hold 3 positive smoothing parameters"):
        ml.gam(F1, d, sp=[1.0, 2.0])


def test_bad_input_gets_clear_errors(d):
    with pytest.raises(FormulaError, match=r"unknown basis 'cx' in s\(\)"):
        ml.gam('y ~ s(x, bs = "cx")', d)
    with pytest.raises(DataError, match=r"s\(fac2\)|column 'nope'"):
        ml.bam("y ~ s(nope)", d)
    small = d.assign(xr=np.round(d["x"] * 4) / 4)  # 5 distinct values
    with pytest.raises(DataError, match=r"s\(xr\): xr has 5 distinct values, fewer than k = 10 basis functions; "
                                        r"lower k to at most 5"):
        ml.gam('y ~ s(xr, bs = "cr")', small)
    with pytest.raises(DataError, match=r"column 'zz' in term s\(x, by = zz\) is not in the data; did you mean 'z'"):
        ml.bam("y ~ s(x, by = zz)", d)
    with pytest.raises(DataError, match="the Poisson family needs non-negative counts"):
        ml.bam("y ~ s(x)", d, family="poisson")
    with pytest.raises(DataError, match="binomial responses must be 0/1"):
        ml.gam("yc ~ s(x)", d, family="binomial")


def test_chunked_discrete_and_exact_cross_products_agree(d):
    """gam (all rows at once), bam by chunks of 37 rows, and bam from compressed covariates that
    keep every value (at most 1000 distinct) give the same fit."""
    a = ml.gam(F1, d)
    b = ml.bam(F1, d, discrete=False, chunk_size=37)
    c = ml.bam(F1, d, discrete=True)
    np.testing.assert_allclose(b.coef, a.coef, atol=1e-8)
    np.testing.assert_allclose(b.fitted, a.fitted, atol=1e-8)
    # the discrete fit builds its smooths on the distinct values: another parametrization
    # (constraint) of the same model, hence the same fit
    np.testing.assert_allclose(c.fitted, a.fitted, atol=1e-6)
    np.testing.assert_allclose(c.edf, a.edf, atol=1e-5)
    np.testing.assert_allclose(c.sp, a.sp, rtol=1e-4)
    assert c.scale == pytest.approx(a.scale, rel=1e-8)
    assert c.reml_score == pytest.approx(a.reml_score, abs=1e-5)


def test_row_order_does_not_change_the_fit(d):
    perm = np.random.default_rng(11).permutation(len(d))
    for fit in (lambda data: ml.gam(F1, data), lambda data: ml.bam(F1, data, discrete=True)):
        a = fit(d)
        b = fit(d.iloc[perm].reset_index(drop=True))
        np.testing.assert_allclose(b.fitted, a.fitted[perm], atol=1e-7)
        np.testing.assert_allclose(b.edf, a.edf, atol=1e-6)


def test_integer_weights_equal_repeated_rows_for_given_smoothing_parameters(d):
    w = np.random.default_rng(3).integers(1, 4, len(d))
    rep = d.loc[d.index.repeat(w)].reset_index(drop=True)
    sp = [2.0, 5.0, 0.7]
    a = ml.gam(F1, d, weights=w.astype(float), sp=sp)
    b = ml.gam(F1, rep, sp=sp)
    # (the sum-to-zero constraints follow the rows, so compare the fitted functions)
    np.testing.assert_allclose(b.predict(d), a.fitted, atol=1e-8)


def test_offset_shifts_the_response(d):
    d2 = d.assign(o=np.linspace(-1, 1, len(d)))
    a = ml.gam('y ~ s(x, bs = "cr") + offset(o)', d2)
    b = ml.gam('yo ~ s(x, bs = "cr")', d2.assign(yo=d2["y"] - d2["o"]))
    np.testing.assert_allclose(a.coef, b.coef, atol=1e-8)
    np.testing.assert_allclose(a.fitted, b.fitted + d2["o"].to_numpy(), atol=1e-8)


def test_predict_on_training_rows_and_new_levels(d):
    m = ml.gam(F1, d)
    np.testing.assert_allclose(m.predict(d), m.fitted, atol=1e-10)
    np.testing.assert_allclose(m.predict(), m.fitted, atol=1e-12)
    X = m.model_matrix(d.iloc[:15])
    fit, se = m.predict(d.iloc[:15], se_fit=True)
    np.testing.assert_allclose(se, np.sqrt(np.einsum("ij,jk,ik->i", X, m.vcov.to_numpy(), X)), rtol=1e-10)
    _, se_all = m.predict(se_fit=True)
    np.testing.assert_allclose(se_all[:15], se, rtol=1e-10)
    # a level of g not seen in fitting: the random effect is predicted at zero
    nd = d.iloc[:3].copy()
    nd["g"] = pd.Categorical(["new", "g01", "new"])
    with pytest.warns(ml.errors.PymlmWarning, match="levels 'new' of g in s"):
        p = m.predict(nd)
    g_coef = m.coef.filter(like="s(g)").to_numpy()
    own = p - np.array([0.0, g_coef[0], 0.0])
    base = m.predict(d.iloc[:3]) - g_coef[d["g"].cat.codes.to_numpy()[:3]]
    np.testing.assert_allclose(own, base, atol=1e-10)


def test_binomial_prediction_scales(d):
    m = ml.bam('yb ~ s(x, bs = "cr") + s(z, bs = "cr")', d, family="binomial", discrete=False)
    eta, se = m.predict(d.iloc[:20], se_fit=True)
    mu, se_mu = m.predict(d.iloc[:20], type="response", se_fit=True)
    np.testing.assert_allclose(mu, 1 / (1 + np.exp(-eta)), rtol=1e-12)
    np.testing.assert_allclose(se_mu, mu * (1 - mu) * se, rtol=1e-10)
    assert m.scale == 1.0 and "z value" in m.p_table.columns and "Chi.sq" in m.s_table.columns
    with pytest.raises(OptionError, match="type must be one of 'link', 'response', 'terms', 'lpmatrix'"):
        m.predict(d, type="iterms")


def test_statsmodels_family_objects(d):
    fam = sm.families.Gamma(sm.families.links.Log())
    m = ml.bam('ypos ~ s(x, bs = "cr")', d, family=fam, discrete=False)
    assert m.family == "Gamma" and m.fit_.link_name == "log"
    assert np.all(m.fitted > 0) and m.converged
    assert "Link function: log" in str(m)


def test_missing_rows_are_dropped_and_counted(d):
    d2 = d.copy()
    d2.loc[[3, 10, 20], "x"] = np.nan
    with pytest.warns(MissingDataWarning, match="3 of 300 rows dropped"):
        m = ml.bam(F1, d2)
    assert m.nobs == 297 and m.n_dropped == 3
    assert "(3 rows dropped for missing values)" in str(m)


def test_tensor_products_and_factor_smooths_discretized(d):
    """A discretized te() fit equals the exact fit when nothing is rounded, and is close
    when its margins are rounded to 100 values each."""
    f = 'y ~ te(x, z, k = 4)'
    a = ml.bam(f, d, discrete=False)
    b = ml.bam(f, d, discrete=True)
    np.testing.assert_allclose(b.fitted, a.fitted, atol=1e-7)
    np.testing.assert_allclose(b.edf, a.edf, atol=1e-6)
    c = ml.bam(f, d, discrete=True, discrete_m=100)
    assert 1e-4 < np.max(np.abs(c.fitted - a.fitted)) < 0.1 * np.std(d["y"])
    # fs: the split of its null-space penalties follows the rows it is built on (the distinct
    # (x, fac) pairs here), so the discretized fit is close to the exact one, not equal
    f = 'y ~ s(x, fac, bs = "fs", k = 4)'
    a, b = ml.bam(f, d, discrete=False), ml.bam(f, d, discrete=True)
    assert np.max(np.abs(b.fitted - a.fitted)) < 0.05 * np.std(d["y"])
    assert b.edf.iloc[0] == pytest.approx(a.edf.iloc[0], abs=0.1)


def test_correlated_random_slopes_are_supported(d):
    m = ml.bam("y ~ x + s(z, bs = \"cr\") + (1 + x | g)", d)
    vc = m.varcorr
    assert list(vc["grp"]) == ["g", "g", "g", "Residual"]
    assert list(vc["var1"][:3]) == ["(Intercept)", "x", "(Intercept)"] and vc["var2"][2] == "x"
    assert -1 < vc["sdcor"][2] < 1
    r = m.ranef["(1 + x | g)"]
    assert list(r.columns) == ["(Intercept)", "x"] and r.shape == (12, 2)
    assert "(1 + x | g)" in m.edf.index and "(1 + x | g)" not in m.sp.index


def test_fellner_schall_optimizer_reaches_newtons_optimum(d):
    a = ml.gam(F1, d)
    b = ml.gam(F1, d, optimizer="fs")
    assert b.reml_score == pytest.approx(a.reml_score, abs=1e-5)
    np.testing.assert_allclose(b.fitted, a.fitted, atol=1e-4)


def test_the_fitter_reports_non_convergence_and_only_the_api_warns(d):
    """fit_gam returns what did not converge; gam()/bam() turn it into a ConvergenceWarning."""
    import dataclasses
    import warnings

    from pymlm._api import _gam_result
    from pymlm.crossprod import ChunkEngine
    from pymlm.design import build_gam_design
    from pymlm.errors import ConvergenceWarning
    from pymlm.fit.gam import fit_gam

    design = build_gam_design('yc ~ s(x, bs = "cr") + s(z, bs = "ps")', d)
    engine = ChunkEngine(design, chunk_size=design.n, cache=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stuck = fit_gam(design, engine, "poisson", max_iter=1)
        done = fit_gam(design, engine, "poisson")
    assert not stuck.converged and stuck.warnings == (
        "the fit did not converge: performance iteration did not converge in 1 iterations",)
    assert done.converged and done.warnings == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        stuck.beta = done.beta
    with pytest.warns(ConvergenceWarning, match="performance iteration did not converge in 1 iterations"):
        b = _gam_result(design, stuck, engine="bam")
    assert b.fit_ is stuck
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _gam_result(design, done, engine="bam")
