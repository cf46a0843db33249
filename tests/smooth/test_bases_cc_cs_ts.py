"""Cyclic ("cc") and shrinkage ("cs", "ts") bases against mgcv 1.8-41's smoothCon and gam.

Reference values: tests/reference/gam_bases_reference.R (gam_bases.json, data
gam_methods_data.csv).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pymlm as ml
from pymlm.errors import DataError, OptionError
from pymlm.formula import parse_formula
from pymlm.smooth import construct_smooth, parse_smooth
from pymlm.smooth._basis import as_covariate

REF = Path(__file__).resolve().parents[1] / "reference"
BASES = json.loads((REF / "gam_bases.json").read_text())
DATA = pd.read_csv(REF / "gam_methods_data.csv")
DATA["t"] = DATA["x1"] * 24
NEW = pd.DataFrame({"t": [-3, 0, 5.5, 24, 27], "x0": [0.05, 0.3, 0.5, 0.7, 0.95]})

SPECS = {
    "cc": ('s(t, bs = "cc", k = 8)', None),
    "cc_ends": ('s(t, bs = "cc", k = 8)', {"t": np.array([0.0, 24.0])}),
    "cc_full": ('s(t, bs = "cc", k = 6)', {"t": np.array([0.0, 3, 8, 12, 20, 24])}),
    "cs": ('s(x0, bs = "cs", k = 7)', None),
    "ts": ('s(x0, bs = "ts", k = 7)', None),
}


def build(name):
    text, knots = SPECS[name]
    spec = parse_smooth(parse_formula("y ~ " + text).smooths[0].node)
    cols = [as_covariate(DATA[c]) for c in spec.terms]
    (t,) = construct_smooth(spec, cols, None, knots)
    return spec, t


@pytest.mark.parametrize("name", ["cc", "cc_ends", "cc_full", "cs"])
def test_matrix_penalty_and_prediction_equal_mgcv(name):
    spec, t = build(name)
    r = BASES["matrices"][name]
    cols = [as_covariate(DATA[c].iloc[:12]) for c in spec.terms]
    np.testing.assert_allclose(np.asarray(t.matrix(cols)), np.array(r["X"]), atol=1e-10)
    np.testing.assert_allclose(t.S[0], np.array(r["S"]), atol=1e-9 * np.abs(r["S"]).max())
    assert list(np.atleast_1d(t.rank)) == list(np.atleast_1d(r["rank"]))
    assert t.null_space_dim == r["null_space_dim"]
    if name.startswith("cc"):
        np.testing.assert_allclose(t.basis.knots, r["knots"], rtol=1e-13)
    ncols = [as_covariate(NEW[c]) for c in spec.terms]
    np.testing.assert_allclose(np.asarray(t.matrix(ncols)), np.array(r["Xnew"]), atol=1e-10)


def test_cyclic_basis_wraps_around():
    _, t = build("cc_ends")
    X = np.asarray(t.matrix([as_covariate(pd.Series([0.0, 24.0, 3.0, 27.0, -21.0]))]))
    np.testing.assert_allclose(X[0], X[1], atol=1e-12)
    np.testing.assert_allclose(X[2], X[3], atol=1e-12)
    np.testing.assert_allclose(X[2], X[4], atol=1e-12)


def test_ts_gives_mgcvs_smoother():
    # the thin plate basis is mgcv's up to a rotation: compare the penalized smoother
    spec, t = build("ts")
    r = BASES["matrices"]["ts"]
    cols = [as_covariate(DATA[c]) for c in spec.terms]
    X = np.asarray(t.matrix(cols))[:12]
    Xr = np.array(r["X"])
    assert t.null_space_dim == 0 and list(np.atleast_1d(t.rank)) == [6]
    # the shrunk penalty is of full rank after the constraint, as mgcv's
    assert np.linalg.matrix_rank(t.S[0]) == t.S[0].shape[0] == np.array(r["S"]).shape[0]
    coef = np.linalg.lstsq(Xr, X, rcond=None)[0]
    np.testing.assert_allclose(Xr @ coef, X, atol=1e-8)


def _fit(name):
    r = BASES["fits"][name]
    knots = None if r["knots"] is None else {k: v for k, v in r["knots"].items()}
    b = ml.gam(r["formula"], DATA, knots=knots, progress=False)
    assert list(b.edf.index) == list(np.atleast_1d(r["edf_terms"]))
    return b, r


@pytest.mark.parametrize("name", ["cc", "te_cc"])
def test_cyclic_fit_matches_mgcv(name):
    b, r = _fit(name)
    np.testing.assert_allclose(np.asarray(b.edf), r["edf"], rtol=1e-5)
    assert b.fit_.reml_score == pytest.approx(r["score"], rel=1e-9)
    np.testing.assert_allclose(b.fitted[:10], r["fitted_head"], rtol=1e-7)
    np.testing.assert_allclose(np.asarray(b.coef), r["coefficients"], rtol=1e-4,
                               atol=1e-6 * np.max(np.abs(r["coefficients"])))
    np.testing.assert_allclose(np.asarray(b.sp), r["sp"], rtol=1e-4)


def test_cs_fit_matches_mgcv():
    # s(x3) is shrunk away: the criterion is flat in its smoothing parameter and mgcv stops
    # earlier on that plateau (score higher by ~6e-7 relative, edf 1e-3 instead of ~0)
    b, r = _fit("cs")
    assert b.fit_.reml_score <= r["score"] and b.fit_.reml_score == pytest.approx(r["score"], rel=2e-6)
    np.testing.assert_allclose(np.asarray(b.edf)[:2], r["edf"][:2], rtol=1e-5)
    assert np.asarray(b.edf)[2] < 1e-2 and r["edf"][2] < 1e-2
    np.testing.assert_allclose(np.asarray(b.sp)[:2], r["sp"][:2], rtol=1e-4)
    np.testing.assert_allclose(b.fitted[:10], r["fitted_head"], rtol=1e-4)


def test_ts_fit_close_to_mgcv():
    # the thin plate basis' polynomial columns are scaled otherwise than mgcv's, which the
    # shrinkage feels: close, not exact (see pymlm.smooth._shrink)
    b, r = _fit("ts")
    edf = np.asarray(b.edf)
    np.testing.assert_allclose(edf[:2], r["edf"][:2], atol=1e-2)
    assert edf[2] < 1e-2 and r["edf"][2] < 1e-2
    assert b.fit_.reml_score == pytest.approx(r["score"], rel=1e-3)
    np.testing.assert_allclose(b.fitted[:10], r["fitted_head"], rtol=2e-3)


def test_bad_knots_are_clear_errors():
    with pytest.raises(OptionError, match="knots must be a dict"):
        ml.gam('y ~ s(t, bs = "cc")', DATA, knots=[0, 24], progress=False)
    with pytest.raises(DataError, match="3 knots given for a cc smooth with k = 8"):
        ml.gam('y ~ s(t, bs = "cc", k = 8)', DATA, knots={"t": [0, 12, 24]}, progress=False)
    with pytest.raises(DataError, match="cyclic cubic spline needs k >= 4"):
        ml.gam('y ~ s(t, bs = "cc", k = 3)', DATA, progress=False)
