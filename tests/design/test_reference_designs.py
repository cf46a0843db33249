"""pymlm's designs against lme4's ``lFormula``/``glFormula`` on every formula form.

The figures are in tests/reference/design_cases.json, written by
tests/reference/make_design_reference.R (R 4.2.2, lme4 1.1-31) from
tests/reference/design_cases_data.csv.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import scipy.sparse as sp

import pymlm as ml
from pymlm.design import build_design
from pymlm.errors import MissingDataWarning, PymlmWarning, RankDeficiencyWarning

from ._helpers import as_list, case_data, columns, dense, reference

CASES = reference()["cases"]
TOL = 1e-10
# R's read.csv can land one unit in the last place away from the correctly
# rounded double that pandas reads, so values carried over unchanged from the
# data (response, weights, offsets) agree to rounding, not bit for bit.
DATA_RTOL = 1e-14
# cases with (lhs || g) where lhs has a factor
FACTOR_DOUBLE_BARS = {"double_bar_factor", "double_bar_interaction", "double_bar_nested"}


def _build(case, data):
    kwargs = {"weights": case["weights"], "offset": case["offset_argument"]}
    if case["family"] is not None:
        return build_design(case["formula"], data, check="glmer", **kwargs)
    return ml.lformula(case["formula"], data, **kwargs)


def _design(case, data):
    """Build, asserting exactly the warnings lme4's case implies."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = _build(case, data)
    # lme4 1.1-31 says nothing about (f || g) with a factor f; pymlm warns that '||'
    # keeps the correlations of the factor's columns (and only then)
    double = [str(w.message) for w in caught if w.category is PymlmWarning]
    assert bool(double) == (case["case"] in FACTOR_DOUBLE_BARS)
    assert all("'||' makes the terms of its left side uncorrelated, not the columns of one term" in m
               for m in double)
    kinds = [w.category for w in caught if w.category is not PymlmWarning]
    expected = []
    if case["n_dropped"]:
        expected.append(MissingDataWarning)
        msg = next(str(w.message) for w in caught if w.category is MissingDataWarning)
        assert msg.startswith(f"{case['n_dropped']} of {reference()['n_rows']} rows dropped")
    if as_list(case["dropped_columns"]):
        expected.append(RankDeficiencyWarning)
    assert sorted(k.__name__ for k in kinds) == sorted(k.__name__ for k in expected)
    return d


@pytest.fixture(scope="module")
def designs():
    data = case_data()
    return {c["case"]: _design(c, data) for c in CASES}


def test_reference_covers_every_syntax_form():
    formulas = " ".join(c["formula"] for c in CASES)
    for form in ["(1 + x | g)", "(x | h)", "(0 + x | g)", "(-1 + x | g)", "(x || g)", "site/unit",
                 "site:unit", "(0 + f | g)", "offset(", "cbind(", "I(x^2)", "scale(x)", "log(z)",
                 "(o | h)", "(1 | g) + (1 | h)", "flag", "poly("]:
        assert form in formulas, form
    assert {c["case"] for c in CASES if c["weights"]} == {"weights"}


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_fixed_effects_match_lme4(case, designs):
    d = designs[case["case"]]
    assert d.X_names == as_list(case["X_colnames"])
    assert list(d.X.shape) == case["X_dim"]
    np.testing.assert_allclose(dense(d.X), columns(case["X"]), rtol=0, atol=TOL)
    assert d.dropped_columns == as_list(case["dropped_columns"])


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_random_effects_match_lme4(case, designs):
    d = designs[case["case"]]
    Z_ref = sp.coo_matrix(
        (as_list(case["Z_x"]), (as_list(case["Z_i"]), as_list(case["Z_j"]))), shape=case["Z_dim"]
    )
    assert sp.isspmatrix_csc(d.Z) or isinstance(d.Z, sp.csc_array)
    assert list(d.Z.shape) == case["Z_dim"]
    assert d.Z.nnz == case["Z_nnz"]
    np.testing.assert_allclose(d.Z.toarray(), Z_ref.toarray(), rtol=0, atol=TOL)
    assert d.theta.tolist() == [float(t) for t in as_list(case["theta"])]
    assert d.lower.tolist() == [-math.inf if v == "-Inf" else float(v) for v in as_list(case["lower"])]
    assert [t.group for t in d.re_terms] == as_list(case["term_groups"])
    assert [list(t.cnms) for t in d.re_terms] == [as_list(c) for c in as_list(case["cnms"])]
    assert [t.nlevels for t in d.re_terms] == [int(v) for v in as_list(case["term_nlevels"])]
    assert d.ngroups == dict(zip(as_list(case["flist_names"]), (int(v) for v in as_list(case["nlevels"]))))
    levels = dict(zip(as_list(case["flist_names"]), case["levels"]))
    for t in d.re_terms:
        assert list(t.levels) == as_list(levels[t.group])


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_response_offset_weights_rows_match_lme4(case, designs):
    d = designs[case["case"]]
    y_ref = case["response"]
    want = columns(y_ref) if isinstance(as_list(y_ref)[0], list) else np.asarray(y_ref, float)
    np.testing.assert_allclose(d.y, want, rtol=DATA_RTOL, atol=0)
    assert d.n_dropped == case["n_dropped"]
    np.testing.assert_array_equal(d.frame.rows, as_list(case["kept_rows"]))
    if case["offset"] is None:
        assert d.offset is None
    else:
        np.testing.assert_allclose(d.offset, case["offset"], rtol=DATA_RTOL, atol=0)
    if case["prior_weights"] is None:
        assert d.weights is None
    else:
        np.testing.assert_allclose(d.weights, case["prior_weights"], rtol=DATA_RTOL, atol=0)


def _as_categoricals(df: pd.DataFrame) -> pd.DataFrame:
    """The same data with string and integer columns as Categoricals in R's level order."""
    out = df.copy()
    for col in ["f", "h", "site", "unit", "g"]:  # g: integer categories, numeric order
        out[col] = pd.Categorical(df[col], categories=sorted(df[col].unique()))
    return out


@pytest.mark.parametrize("kind", ["categoricals", "pyarrow", "dict"])
def test_input_types_give_the_same_designs(kind, designs):
    data = case_data()
    if kind == "categoricals":
        data = _as_categoricals(data)
    elif kind == "pyarrow":
        data = pa.Table.from_pandas(data, preserve_index=False)
    else:
        data = {c: data[c] for c in data.columns}
    for case in CASES:
        d = _design(case, data)
        ref = designs[case["case"]]
        assert d.X_names == ref.X_names, case["case"]
        np.testing.assert_array_equal(dense(d.X), dense(ref.X))
        assert (d.Z != ref.Z).nnz == 0
        assert [list(t.levels) for t in d.re_terms] == [list(t.levels) for t in ref.re_terms]


def test_r_polynomial_contrasts():
    from pymlm.design import contr_poly

    for k, cols in enumerate(reference()["poly_contrasts"], start=2):
        np.testing.assert_allclose(contr_poly(k), columns(cols), rtol=0, atol=1e-14)


@pytest.mark.parametrize("case", reference()["rank_cases"], ids=lambda c: c["name"])
def test_rank_deficient_columns_as_lme4(case):
    from pymlm.design import drop_rank_deficient

    X = columns(case["X"])
    assert drop_rank_deficient(X).tolist() == as_list(case["keep"])
    assert drop_rank_deficient(sp.csc_matrix(X)).tolist() == as_list(case["keep"])
