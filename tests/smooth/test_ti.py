"""Tensor interaction terms ti() against mgcv 1.8-41 (tests/reference/gam_ti_reference.R)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pymlm as ml
from pymlm.errors import FormulaError
from pymlm.formula import parse_formula
from pymlm.smooth import construct_smooth, parse_smooth
from pymlm.smooth._basis import as_covariate

REF = Path(__file__).resolve().parents[1] / "reference"
TI = json.loads((REF / "gam_ti.json").read_text())
DATA = pd.read_csv(REF / "gam_methods_data.csv")
DATA["yi"] = DATA["y"] + 3 * np.sin(2 * np.pi * DATA["x1"]) * np.cos(2 * np.pi * DATA["x2"])
SPECS = {"cr": "ti(x1, x2, k = c(5, 4))", "ps": 'ti(x1, x2, bs = c("cr", "ps"), k = c(5, 6))'}


@pytest.mark.parametrize("name", ["cr", "ps"])
def test_ti_matrix_and_penalties_equal_mgcv(name):
    spec = parse_smooth(parse_formula("y ~ " + SPECS[name]).smooths[0].node)
    cols = [as_covariate(DATA[c]) for c in spec.terms]
    (t,) = construct_smooth(spec, cols)
    r = TI["matrices"][name]
    X = np.asarray(t.matrix([as_covariate(DATA[c].iloc[:10]) for c in spec.terms]))
    np.testing.assert_allclose(X, np.array(r["X"]), atol=1e-10)
    assert len(t.S) == len(r["S"])
    for S, Sr in zip(t.S, r["S"]):
        np.testing.assert_allclose(S, np.array(Sr), atol=1e-9 * np.abs(Sr).max())
    assert list(np.atleast_1d(t.rank)) == list(np.atleast_1d(r["rank"]))
    assert t.null_space_dim == r["null_space_dim"]
    new = pd.DataFrame({"x1": [0.1, 0.5, 0.9], "x2": [0.2, 0.6, 0.4]})
    np.testing.assert_allclose(np.asarray(t.matrix([as_covariate(new[c]) for c in spec.terms])),
                               np.array(r["Xnew"]), atol=1e-10)


@pytest.mark.parametrize("name", ["ti_cr", "ti_mixed"])
def test_ti_fit_matches_mgcv(name):
    r = TI["fits"][name]
    b = ml.gam(r["formula"], DATA, progress=False)
    assert list(b.edf.index) == r["edf_terms"]
    # the data have no interaction: ti() is shrunk to its (1-dimensional) null space, where
    # the criterion is flat in its smoothing parameters and mgcv stops a little earlier
    # (edf 1.0006 against 1.00001, a score higher by ~1e-7 relative)
    edf = np.asarray(b.edf)
    np.testing.assert_allclose(edf[:-1], r["edf"][:-1], rtol=1e-5)
    assert abs(edf[-1] - r["edf"][-1]) < 1e-3
    assert b.fit_.reml_score <= r["score"] and b.fit_.reml_score == pytest.approx(r["score"], rel=1e-6)
    np.testing.assert_allclose(b.fitted[:10], r["fitted_head"], rtol=1e-4)
    p_values = b.summary().s_table["p-value"].to_numpy()
    np.testing.assert_allclose(p_values[:-1], r["p_value"][:-1], rtol=1e-3, atol=1e-12)


def test_ti_fit_with_an_interaction_matches_mgcv():
    r = TI["fits"]["ti_real"]
    b = ml.gam(r["formula"], DATA, progress=False)
    assert list(b.edf.index) == r["edf_terms"]
    np.testing.assert_allclose(np.asarray(b.edf), r["edf"], rtol=1e-4)
    assert b.fit_.reml_score == pytest.approx(r["score"], rel=1e-9)
    np.testing.assert_allclose(b.fitted[:10], r["fitted_head"], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(b.coef), r["coefficients"], rtol=1e-3,
                               atol=1e-4 * np.max(np.abs(r["coefficients"])))
    np.testing.assert_allclose(np.asarray(b.sp), r["sp"], rtol=1e-2)
    p_values = b.summary().s_table["p-value"].to_numpy()
    np.testing.assert_allclose(p_values, r["p_value"], rtol=1e-3, atol=1e-14)


def test_ti_needs_two_covariates_and_t2_is_refused():
    with pytest.raises(FormulaError, match="has one covariate"):
        parse_smooth(parse_formula("y ~ ti(x1)").smooths[0].node)
    with pytest.raises(FormulaError, match="t2"):
        parse_smooth(parse_formula("y ~ t2(x1, x2)").smooths[0].node)
