"""Fixed-effect model matrices: R's coding, sparse storage, new data, rank."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import pymlm as ml
from pymlm.design import SPARSE_MAX_DENSITY, SPARSE_MIN_COLUMNS, build_model_matrix, use_sparse
from pymlm.errors import DataError, FormulaError
from pymlm.formula import parse_formula

from ._helpers import case_data, dense


def fixed(rhs, data, **kwargs):
    return build_model_matrix(parse_formula("y " + rhs).fixed_terms, data, "the fixed effects", **kwargs)


def test_no_intercept_codes_the_first_factor_by_indicators():
    df = case_data()
    X, spec = fixed("~ 0 + x + f + o", df)
    assert X.shape == (96, 7)
    assert list(spec.names) == ["x", "falpha", "fbeta", "fgamma", "o.L", "o.Q", "o.C"]
    np.testing.assert_array_equal(X[:, 1:4].sum(axis=1), 1.0)
    assert spec.terms[1].coding == ("indicators",) and spec.terms[2].coding == ("contrasts",)


def test_treatment_contrasts_take_the_first_level_as_baseline():
    df = case_data()
    df["f"] = pd.Categorical(df["f"], categories=["gamma", "alpha", "beta"])
    X, spec = fixed("~ f", df)
    assert list(spec.names) == ["(Intercept)", "falpha", "fbeta"]
    np.testing.assert_array_equal(X[:, 1], (df["f"] == "alpha").to_numpy(float))
    assert spec.assign.tolist() == [0, 1, 1]


def test_logicals_are_factors_and_assign_follows_terms():
    df = case_data()
    X, spec = fixed("~ flag * x + I(x > 0)", df)
    assert list(spec.names) == ["(Intercept)", "flagTRUE", "x", "I(x > 0)TRUE", "flagTRUE:x"]
    assert spec.assign.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(X[:, 4], df["x"].where(df["flag"], 0.0))


def test_interaction_columns_first_variable_fastest():
    df = case_data()
    X, spec = fixed("~ f:o2", df)
    assert list(spec.names) == ["(Intercept)", "falpha:o2lo", "fbeta:o2lo", "fgamma:o2lo",
                                "falpha:o2hi", "fbeta:o2hi", "fgamma:o2hi"]
    want = (df["f"] == "beta").to_numpy() & (df["o2"] == "hi").to_numpy()
    np.testing.assert_array_equal(X[:, 5], want.astype(float))


def test_matrix_variables_and_calls():
    df = case_data()
    X, spec = fixed("~ poly(x, 3) + log(z, 2) + factor(g) + as.numeric(o)", df)
    assert list(spec.names[:5]) == ["(Intercept)", "poly(x, 3)1", "poly(x, 3)2", "poly(x, 3)3", "log(z, 2)"]
    assert spec.names[5:8] == ("factor(g)3", "factor(g)7", "factor(g)10")
    np.testing.assert_allclose(X[:, 1:4].T @ X[:, 1:4], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(X[:, 4], np.log2(df["z"]), rtol=1e-15)
    np.testing.assert_array_equal(X[:, -1], df["o"].cat.codes + 1.0)


@pytest.mark.parametrize(
    "rhs, error, message, span",
    [
        ("~ foo(x)", FormulaError, r"unknown function foo\(\) in the formula; compute the column beforehand", (4, 10)),
        ("~ log(x)", DataError, (r"log\(x\) in the fixed effects is NaN or infinite in 53 rows \(e\.g\. log of a "
                                 r"non-positive value\); transform or filter the data first"), (4, 10)),
        ("~ I(2)", DataError, r"I\(2\) has 1 value but the data has 96 rows; a formula term must give one value per row",
         (4, 8)),
        ("~ one", DataError, (r"the factor one in the fixed effects has 1 level \('k'\) in the rows used; a factor "
                              r"needs at least 2 levels\. Drop the term or check the data\."), (4, 7)),
        ("~ (x & z)", FormulaError, r"'&' is not a formula operator; wrap arithmetic in I\(\), e\.g\. I\(x & z\)",
         (5, 10)),
        ("~ I(x + 'a')", DataError, r"cannot evaluate I\(x \+ 'a'\) in the formula", (4, 14)),
    ],
)
def test_bad_fixed_terms(rhs, error, message, span):
    df = case_data().assign(one="k")
    with pytest.raises(error, match=message) as info:
        ml.lformula("y " + rhs + " + (1 | g)", df)
    line = str(info.value).splitlines()[-1][4:]
    assert (line.index("^"), line.index("^") + line.count("^")) == span


def test_sparse_rule():
    assert SPARSE_MIN_COLUMNS == 20 and SPARSE_MAX_DENSITY == 0.25
    assert not use_sparse(10_000, 19, 10_000)
    assert use_sparse(10_000, 20, 50_000)
    assert not use_sparse(10_000, 20, 50_001)


def test_many_level_factor_gives_sparse_x_equal_to_dense():
    df = case_data()
    df["cell"] = np.arange(96) // 4  # 24 levels
    d = ml.lformula("y ~ x + factor(cell) + (1 | g)", df)
    assert sp.isspmatrix_csc(d.X) and d.X.shape == (96, 25)
    assert d.X.nnz == 96 * 2 + 92  # intercept, x, and one indicator for all but the baseline rows
    d_dense = ml.design.build_design("y ~ x + factor(cell) + (1 | g)", df, sparse_x=False)
    assert isinstance(d_dense.X, np.ndarray)
    np.testing.assert_array_equal(d.X.toarray(), d_dense.X)
    assert sp.isspmatrix_csc(d.fixed_matrix(df.iloc[:10]))
    np.testing.assert_array_equal(d.fixed_matrix(df.iloc[:10]).toarray(), d_dense.X[:10])


def test_few_columns_stay_dense():
    d = ml.lformula("y ~ x * f + (1 | g)", case_data())
    assert isinstance(d.X, np.ndarray)


def test_sparse_x_never_allocates_the_dense_matrix():
    rng = np.random.default_rng(1)
    n, levels = 30_000, 3_000  # dense X: 30_000 x 3_001 doubles = 720 MB
    df = pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n),
                       "k": rng.integers(0, levels, n), "g": rng.integers(0, 50, n)})
    tracemalloc.start()
    try:
        X, _ = fixed("~ x + factor(k)", df)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sp.isspmatrix_csc(X) and X.shape == (n, df["k"].nunique() + 1)
    assert peak < 50e6


def test_new_data_reuse_training_levels_and_transforms():
    df = case_data()
    d = ml.lformula("y ~ scale(x) + poly(z, 2) + f * o + flag + (1 | g)", df)
    part = df.iloc[[5, 1, 40]]
    np.testing.assert_allclose(d.fixed_matrix(part), dense(d.X)[[5, 1, 40]], rtol=0, atol=1e-14)
    one_level = df[df["f"] == "beta"]
    np.testing.assert_allclose(d.fixed_matrix(one_level), dense(d.X)[(df["f"] == "beta").to_numpy()],
                               rtol=0, atol=1e-14)


def test_new_data_keep_the_training_centre_and_scale():
    df = case_data()
    d = ml.lformula("y ~ center(x) + scale(z, center = FALSE) + poly(w, 2) + (1 | g)", df)
    new = df.iloc[:3]  # a different mean and sd: must not be used
    X_new = d.fixed_matrix(new)
    np.testing.assert_allclose(X_new[:, 1], new["x"] - df["x"].mean(), rtol=1e-13)
    rms = np.sqrt((df["z"] ** 2).sum() / 95)
    np.testing.assert_allclose(X_new[:, 2], new["z"] / rms, rtol=1e-13)
    np.testing.assert_allclose(X_new, d.X[:3], rtol=0, atol=1e-14)


def test_new_data_errors():
    df = case_data()
    d = ml.lformula("y ~ x + f + (1 | g)", df)
    with pytest.raises(DataError, match=r"the factor f has level 'delta' not seen in the data the model was "
                                        r"built on \(levels \['alpha', 'beta', 'gamma'\]\)"):
        d.fixed_matrix(df.assign(f="delta"))
    with pytest.raises(DataError, match=r"column 'x' in the fixed effects of the new data is not in the data"):
        d.fixed_matrix(df.drop(columns="x"))
    d_log = ml.lformula("y ~ log(z) + (1 | g)", df)
    with pytest.raises(DataError, match=r"column 'z' in the fixed effects of the new data is not in the data; "
                                        r"the data has columns \['y', 'x', 'f'"):
        d_log.fixed_matrix(df.drop(columns="z"))
    with pytest.raises(DataError, match=r"x in the fixed effects of the new data is NaN or infinite in 1 row"):
        d.fixed_matrix(df.assign(x=np.r_[np.nan, df["x"].to_numpy()[1:]]))


def test_rank_deficient_columns_are_dropped_with_a_warning():
    df = case_data().assign(x2=lambda d: 2 * d["x"])
    with pytest.warns(ml.RankDeficiencyWarning, match=r"fixed-effect model matrix is rank deficient so "
                                                      r"dropping 1 column / coefficient: x2"):
        d = ml.lformula("y ~ x + x2 + z + (1 | g)", df)
    assert d.X_names == ["(Intercept)", "x", "z"]
    assert d.dropped_columns == ["x2"]
    assert d.fixed_matrix(df).shape == (96, 3)
