"""Estimated marginal means against the R package emmeans 1.8.4 (tests/reference/lmertest_reference.R)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pymlm as ml
from pymlm.errors import OptionError
from pymlm.inference import emmeans as em

REF_DIR = Path(__file__).resolve().parents[1] / "reference"
REF = json.loads((REF_DIR / "lmertest_reference.json").read_text())


@pytest.fixture(scope="module")
def model():
    return ml.lmer("y ~ A * B + x + A:x + (1 + x | g)", pd.read_csv(REF_DIR / "lmertest_data.csv"))


def test_means_match_emmeans(model):
    ref = REF["emmeans_A"]
    e = ml.emmeans(model, "A")
    assert e.table["A"].tolist() == ref["rows"]
    np.testing.assert_allclose(e.table["emmean"], ref["emmean"], rtol=1e-5)
    np.testing.assert_allclose(e.table["SE"], ref["SE"], rtol=1e-4)
    np.testing.assert_allclose(e.table["df"], ref["df"], rtol=1e-4)
    np.testing.assert_allclose(e.table["lower.CL"], ref["lower"], rtol=1e-5)
    np.testing.assert_allclose(e.table["upper.CL"], ref["upper"], rtol=1e-5)
    # the linear functions: equal weights over B, x at its mean (built by hand in R)
    np.testing.assert_allclose(e.L.to_numpy(), np.array(REF["emm_A"]["L"]), atol=1e-12)
    assert "averaged over the levels of: B" in str(e)


def test_pairwise_match_emmeans(model):
    ref = REF["emmeans_A_pairs"]
    c = ml.emmeans(model, "A", pairwise=True).contrasts
    assert c["contrast"].tolist() == ref["rows"]
    np.testing.assert_allclose(c["estimate"], ref["estimate"], rtol=1e-5)
    np.testing.assert_allclose(c["SE"], ref["SE"], rtol=1e-4)
    np.testing.assert_allclose(c["df"], ref["df"], rtol=1e-4)
    np.testing.assert_allclose(c["t.ratio"], ref["t"], rtol=1e-4)


def test_two_factors_average_to_one(model):
    e2 = ml.emmeans(model, ["A", "B"]).table
    e1 = ml.emmeans(model, "A").table
    assert len(e2) == 6 and e2["B"].tolist()[:3] == ["b1"] * 3
    # equal weights: the A means are the means over B of the A:B means
    np.testing.assert_allclose(e2.groupby("A")["emmean"].mean().to_numpy(), e1["emmean"], rtol=1e-12)


def test_kernels():
    W, counts = em.averaging_matrix(np.array([0, 1, 0, 1, 2]))
    np.testing.assert_allclose(W @ np.arange(5.0), [1.0, 2.0, 4.0])
    np.testing.assert_array_equal(counts, [2, 2, 1])
    C, pairs = em.pairwise_matrix(3)
    assert pairs == [(0, 1), (0, 2), (1, 2)]
    np.testing.assert_array_equal(C @ np.array([5.0, 3.0, 1.0]), [2.0, 4.0, 2.0])


def test_bad_specs(model):
    with pytest.raises(OptionError, match="'x' is not a factor"):
        ml.emmeans(model, "x")
    with pytest.raises(OptionError, match="level"):
        ml.emmeans(model, "A", level=95)
