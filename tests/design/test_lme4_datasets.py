"""The bundled datasets reproduce lme4's designs of the public reference models.

tests/reference/lme4_designs.json holds lme4 1.1-31's lFormula figures (R 4.2.2)
for seven formulas on the bundled data: shapes of X and Z, X's names, Z's
non-zeros, theta's start and bounds, and the grouping factors' levels.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import pymlm as ml

from ._helpers import REFERENCE, as_list

CASES = json.loads((REFERENCE / "lme4_designs.json").read_text())


@pytest.fixture(scope="module")
def frames():
    return {name: ml.datasets.load(name) for name in {c["dataset"] for c in CASES}}


def test_seven_cases():
    assert len(CASES) == 7


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_bundled_data_reproduce_lme4_design(case, frames):
    d = ml.lformula(case["formula"], frames[case["dataset"]])
    assert list(d.X.shape) == case["X_dim"]
    assert d.X_names == as_list(case["X_colnames"])
    assert list(d.Z.shape) == case["Z_dim"]
    assert d.Z.nnz == case["Z_nnz"]
    assert d.Z.count_nonzero() == case["Z_nnz"]
    assert d.theta.tolist() == [float(t) for t in as_list(case["theta"])]
    assert d.lower.tolist() == [-math.inf if v == "-Inf" else float(v) for v in as_list(case["lower"])]
    assert d.ngroups == dict(zip(as_list(case["flist_names"]), as_list(case["nlevels"])))
    assert [t.group for t in d.re_terms] == as_list(case["term_order"])
    cnms = {}
    for t in d.re_terms:
        key = t.group if t.group not in cnms else f"{t.group}.1"
        cnms[key] = list(t.cnms)
    assert cnms == {k: as_list(v) for k, v in case["cnms"].items()}
    assert d.n_dropped == 0


def test_insteval_fixed_effect_and_largest_term_first(frames):
    d = ml.lformula("y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)", frames["InstEval"])
    service = frames["InstEval"]["service"].to_numpy()
    np.testing.assert_array_equal(d.X[:, 1], (service == "1").astype(float))
    assert [t.nlevels for t in d.re_terms] == sorted((t.nlevels for t in d.re_terms), reverse=True)
