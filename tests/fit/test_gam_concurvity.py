"""concurvity(b) against mgcv 1.8-41 (tests/reference/gam_concurvity_reference.R)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd

import pymlm as ml

REF = Path(__file__).resolve().parents[1] / "reference"
CONC = json.loads((REF / "gam_concurvity.json").read_text())
DATA = pd.read_csv(REF / "gam_methods_data.csv")
DATA["x4"] = DATA["x1"] ** 2 + 0.1 * np.sin(20 * DATA["x0"])


def fitted():
    return ml.gam(CONC["formula"], DATA, progress=False)


def test_full_concurvity_matches_mgcv():
    b = fitted()
    out = ml.concurvity(b, full=True)
    assert list(out.columns) == CONC["full"]["labels"]
    # worst and estimate depend on the model matrix only; observed also on the coefficients
    # (agreeing with mgcv's to ~1e-5)
    for row, tol in (("worst", 1e-8), ("observed", 1e-3), ("estimate", 1e-8)):
        np.testing.assert_allclose(out.loc[row].to_numpy(), CONC["full"][row], rtol=tol, atol=1e-10)
    # s(x1) and s(x4) are nearly the same function space: high worst-case concurvity
    assert out.loc["worst", "s(x1)"] > 0.9


def test_pairwise_concurvity_matches_mgcv():
    b = fitted()
    out = b.concurvity(full=False)
    assert set(out) == {"worst", "observed", "estimate"}
    for name, M in out.items():
        assert list(M.index) == CONC["full"]["labels"]
        tol = 1e-3 if name == "observed" else 1e-8
        np.testing.assert_allclose(M.to_numpy(), np.array(CONC["pairwise"][name]), rtol=tol, atol=1e-10)
