"""Smoothing-parameter criteria ML and GCV.Cp, and select=True, against mgcv 1.8-41.

Reference values: tests/reference/gam_methods_reference.R (gam_methods.json,
data gam_methods_data.csv).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pymlm as ml
from pymlm.crossprod import CrossStats
from pymlm.design._gam_penalty import LinearPenalty
from pymlm.errors import OptionError
from pymlm.fit._gam_reml import evaluate

REF = Path(__file__).resolve().parents[1] / "reference"
FITS = json.loads((REF / "gam_methods.json").read_text())["fits"]
DATA = pd.read_csv(REF / "gam_methods_data.csv")


def fit_case(name, **extra):
    r = FITS[name]
    opts = {"select": True} if r["select"] else {}
    opts.update(extra)
    return ml.gam(r["formula"], DATA, family=r["family"], method=r["method"], progress=False, **opts), r


def rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


# sp-insensitive quantities (edf, fitted values) to ~1e-4; the criterion to 1e-6 or better
CASES = ["gauss_ml", "gauss_gcv", "gauss_te_ml", "gauss_te_gcv", "binom_ml", "binom_ubre", "pois_ml", "pois_ubre"]


@pytest.mark.parametrize("name", CASES)
def test_criterion_edf_and_fit_match_mgcv(name):
    b, r = fit_case(name)
    fit = b.fit_
    assert fit.method == r["method"]
    assert rel(fit.reml_score, r["score"]) < 1e-8
    assert np.max(np.abs(np.asarray(b.edf) - r["edf"])) < 5e-4
    assert list(b.edf.index) == r["edf_terms"]
    assert rel(fit.scale, r["scale"]) < 1e-5
    assert rel(fit.deviance, r["deviance"]) < 1e-5
    assert fit.converged


@pytest.mark.parametrize("name", ["gauss_te_ml", "gauss_te_gcv", "binom_ubre", "gauss_ml"])
def test_coefficients_and_sp_match_mgcv(name):
    # cr and te bases are mgcv's exactly, so coefficients and sp compare directly (the tp
    # smooth's sp is on another penalty scale and its basis is rotated: first two smooths only)
    b, r = fit_case(name)
    coef = np.asarray(b.coef)
    ref = np.asarray(r["coefficients"])
    names = list(b.coef.index)
    assert names[: len(ref)] == r["coef_names"][: len(names)]
    keep = [i for i, nm in enumerate(r["coef_names"]) if not nm.startswith("s(x2)")]
    assert np.max(np.abs(coef[keep] - ref[keep])) < 1e-4 * np.max(np.abs(ref))
    nsp = 2 if name == "gauss_ml" else len(r["sp"])
    assert rel(np.asarray(b.sp)[:nsp], r["sp"][:nsp]) < 1e-3


def test_ml_differs_from_reml_and_is_likelihood_comparable():
    reml, _ = ml.gam("y ~ s(x0, bs = 'cr') + s(x1, bs = 'cr')", DATA, progress=False), None
    mlf = ml.gam("y ~ s(x0, bs = 'cr') + s(x1, bs = 'cr')", DATA, method="ML", progress=False)
    assert mlf.fit_.method == "ML" and reml.fit_.method == "REML"
    assert not np.allclose(mlf.fit_.reml_score, reml.fit_.reml_score)


def test_unknown_method_is_an_option_error():
    with pytest.raises(OptionError, match="method"):
        ml.gam("y ~ s(x0)", DATA, method="GACV.Cp", progress=False)


def _problem(seed=3, n=200):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 6)), rng.normal(size=(n, 5))])
    y = X @ rng.normal(size=X.shape[1]) * 0.3 + rng.normal(size=n)
    D = np.diff(np.eye(6), n=2, axis=0)
    A = rng.normal(size=(5, 3))
    B = rng.normal(size=(5, 1))
    pens = [LinearPenalty(1, [D.T @ D], 2), LinearPenalty(7, [A @ A.T, B @ B.T], 1)]
    return CrossStats(X.T @ X, X.T @ y, float(y @ y), n), pens, X, y


@pytest.mark.parametrize("phi", [None, 1.3])
def test_ml_score_gradient_hessian(phi):
    stats, pens, X, y = _problem()
    rho = np.array([0.3, -0.5, 1.1])
    ev = evaluate(rho, stats, pens, phi, ml=True)
    # the score against a direct computation with the range-space determinant
    p, n = X.shape[1], X.shape[0]
    S = np.zeros((p, p))
    S[1:7, 1:7] = np.exp(rho[0]) * pens[0].S[0]
    S[7:, 7:] = np.exp(rho[1]) * pens[1].S[0] + np.exp(rho[2]) * pens[1].S[1]
    A = X.T @ X + S
    beta = np.linalg.solve(A, X.T @ y)
    Dp = float(np.sum((y - X @ beta) ** 2) + beta @ S @ beta)
    vals, vecs = np.linalg.eigh(S)
    Y = vecs[:, vals > 1e-9 * vals.max()]
    ph = Dp / n if phi is None else phi
    direct = (Dp / (2 * ph) + n / 2 * np.log(2 * np.pi * ph) + np.linalg.slogdet(Y.T @ A @ Y)[1] / 2
              - np.sum(np.log(vals[vals > 1e-9 * vals.max()])) / 2)
    assert ev.score == pytest.approx(direct, rel=1e-10)
    h = 1e-5
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        up, dn = evaluate(rho + e, stats, pens, phi, ml=True), evaluate(rho - e, stats, pens, phi, ml=True)
        assert ev.grad[k] == pytest.approx((up.score - dn.score) / (2 * h), rel=1e-5, abs=1e-8)
        np.testing.assert_allclose(ev.hess[:, k], (up.grad - dn.grad) / (2 * h), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("name,label", [("gauss_ml", "-ML"), ("gauss_gcv", "GCV"), ("pois_ubre", "UBRE")])
def test_summary_names_the_criterion(name, label):
    b, _ = fit_case(name)
    text = str(b.summary())
    assert f"{label} = " in text


SELECT = ["select_reml", "select_ml", "select_te", "select_pois"]


@pytest.mark.parametrize("name", SELECT)
def test_select_matches_mgcv(name):
    b, r = fit_case(name)
    fit = b.fit_
    assert len(fit.rho) == len(r["sp"])
    # a shrunk-away term leaves the criterion flat in its smoothing parameters; mgcv stops
    # a little earlier on that plateau (its score is higher by ~2e-7 relative), so the score
    # is compared one-sidedly and the edf of shrunk terms absolutely
    assert fit.reml_score <= r["score"] + 1e-9 * abs(r["score"])
    assert rel(fit.reml_score, r["score"]) < 1e-6
    assert np.max(np.abs(np.asarray(b.edf) - r["edf"])) < 2e-3
    assert rel(fit.deviance, r["deviance"]) < 1e-4


def test_select_criterion_at_mgcv_sp_is_mgcv_score():
    # at mgcv's smoothing parameters the penalties (incl. the null-space ones) give mgcv's
    # criterion and edf exactly (Gaussian: the score at fixed sp is the final criterion;
    # te and cr smooths only, whose penalties are scaled as mgcv's)
    r = FITS["select_te"]
    sp = np.asarray(r["sp"])
    b = ml.gam(r["formula"], DATA, method=r["method"], select=True, sp=sp, progress=False)
    assert rel(b.fit_.reml_score, r["score"]) < 1e-9
    np.testing.assert_allclose(np.asarray(b.edf), r["edf"], rtol=1e-6, atol=1e-8)


def test_select_null_space_penalty_is_mgcv_construction():
    from pymlm.design._gam import null_space_penalty

    D = np.diff(np.eye(7), n=2, axis=0)
    S = D.T @ D
    Sf = null_space_penalty([S])
    # the projection onto the span of the constant and the linear sequence
    B = np.column_stack([np.ones(7), np.arange(7.0)])
    P = B @ np.linalg.solve(B.T @ B, B.T)
    np.testing.assert_allclose(Sf, P, atol=1e-10)
    assert null_space_penalty([np.eye(4)]) is None


def test_select_must_be_bool():
    with pytest.raises(OptionError, match="select"):
        ml.gam("y ~ s(x0)", DATA, select="yes", progress=False)


def test_bam_select_and_knots_give_gams_fit():
    f = 'y ~ s(x0, bs = "cr") + s(x3, bs = "cc") + s(x2, bs = "cr")'
    knots = {"x3": [0.0, 1.0]}
    g = ml.gam(f, DATA, select=True, knots=knots, progress=False)
    b = ml.bam(f, DATA, select=True, knots=knots, discrete=False, progress=False)
    # the constrained cc smooth has no null space left: 2 + 1 + 2 penalties
    assert len(b.fit_.rho) == len(g.fit_.rho) == 5
    np.testing.assert_allclose(np.asarray(b.edf), np.asarray(g.edf), rtol=1e-5, atol=1e-6)
