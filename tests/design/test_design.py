"""lformula / build_design end to end: response, offsets, weights, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pymlm as ml
from pymlm.design import build_design
from pymlm.errors import DataError, FormulaError

from ._helpers import case_data


@pytest.mark.parametrize(
    "column, dtype",
    [("ychr", "str"), ("f", "str"), ("o", "category")],
)
def test_response_must_be_numeric(column, dtype):
    with pytest.raises(DataError, match=rf"the response '{column}' is not numeric \(dtype {dtype}\); convert it "
                                        r"to numbers, or use glmer with a binomial family for a two-level factor"):
        ml.lformula(f"{column} ~ x + (1 | g)", case_data())


def test_two_level_factor_response_for_binomial_models():
    df = case_data()
    d = build_design("ychr ~ x + (1 | g)", df, check="glmer", require_numeric_response=False)
    np.testing.assert_array_equal(d.y, (df["ychr"] == "yes").to_numpy(float))  # levels no < yes
    with pytest.raises(DataError, match=r"the response 'f' is a factor with 3 levels; a binary response needs 2"):
        build_design("f ~ x + (1 | g)", df, check="glmer", require_numeric_response=False)


def test_logical_response_is_zero_one():
    d = ml.lformula("flag ~ z + (1 | g)", case_data())
    np.testing.assert_array_equal(d.y, case_data()["flag"].to_numpy(float))


def test_cbind_response_has_two_columns():
    df = case_data()
    d = build_design("cbind(a, b - a) ~ x + (1 | g)", df, check="glmer")
    assert d.y.shape == (96, 2) and d.y_name == "cbind(a, b - a)"
    np.testing.assert_array_equal(d.y.sum(axis=1), df["b"])
    with pytest.raises(FormulaError, match=r"cbind\(\) in the response takes two columns: successes and failures"):
        build_design("cbind(a) ~ x + (1 | g)", df, check="glmer")


def test_response_errors():
    with pytest.raises(DataError, match=r"the response 'log\(y\)' is NaN or infinite in \d+ rows; transform or "
                                        r"filter the data first"):
        ml.lformula("log(y) ~ x + (1 | g)", case_data())
    with pytest.raises(FormulaError, match=r"the formula has no response; write it as 'response ~ terms'"):
        ml.lformula("~ x + (1 | g)", case_data())


def test_offsets_add_up():
    df = case_data()
    d = ml.lformula("y ~ x + offset(log(z)) + offset(2 * x) + (1 | g)", df, offset="w")
    np.testing.assert_allclose(d.offset, np.log(df["z"]) + 2 * df["x"] + df["w"], rtol=0, atol=1e-14)
    assert d.X_names == ["(Intercept)", "x"]
    with pytest.raises(DataError, match=r"offset\(log\(x\)\) is NaN or infinite in 53 rows"):
        ml.lformula("y ~ offset(log(x)) + (1 | g)", df)


def test_weights():
    df = case_data()
    d = ml.lformula("y ~ x + (1 | g)", df, weights=df["w"].to_numpy())
    np.testing.assert_array_equal(d.weights, df["w"])
    with pytest.raises(DataError, match=r"weights column 'x' must be non-negative; 53 rows are negative"):
        ml.lformula("y ~ z + (1 | g)", df, weights="x")


def test_design_summary_fields():
    df = case_data()
    d = ml.lformula("y ~ x + (x | g)", df)
    assert (d.n, d.nobs, d.n_dropped) == (96, 96, 0)
    assert d.y_name == "y"
    assert repr(d).startswith("Design('y ~ x + (x | g)': n=96, X (96, 2) ['(Intercept)', 'x'], Z (96, 16)")
    assert d.theta is not d.theta  # copies: callers may modify them
    assert d.fixed_spec.kept_names == d.X_names


def test_integer_and_string_grouping_columns_give_the_same_structure():
    df = case_data()
    as_text = df.assign(g=df["g"].map(lambda v: f"grp{v:03d}"))
    a = ml.lformula("y ~ x + (x | g)", df)
    b = ml.lformula("y ~ x + (x | g)", as_text)
    assert (a.Z != b.Z).nnz == 0  # zero-padding keeps numeric order
    assert list(a.re_terms[0].levels) == ["2", "3", "7", "10", "11", "25", "64", "100"]


def test_missing_values_in_an_interaction_grouping_factor():
    df = case_data()
    df.loc[[1, 2], "unit"] = None
    with pytest.warns(ml.MissingDataWarning, match=r"2 of 96 rows dropped for missing values \(in unit\)"):
        d = ml.lformula("y ~ (1 | site/unit)", df)
    assert d.ngroups == {"unit:site": 12, "site": 4}
    assert d.Z.shape == (94, 16)


def test_pandas_nullable_and_index():
    df = case_data()
    df.index = np.arange(96) * 3 + 5
    df["xi"] = pd.array(np.round(df["x"] * 10).astype(int), dtype="Int64")
    df.loc[df.index[4], "xi"] = pd.NA
    with pytest.warns(ml.MissingDataWarning):
        d = ml.lformula("y ~ xi + (1 | g)", df)
    assert d.n == 95
    np.testing.assert_array_equal(d.X[:, 1], np.delete(np.round(df["x"].to_numpy() * 10), 4))


def test_a_mixed_model_needs_a_random_term():
    with pytest.raises(FormulaError, match=r"no random-effects terms in the formula; add one such as \(1 \| group\), or use an "
                                           r"ordinary linear model"):
        ml.lformula("y ~ x", case_data())
    assert build_design("y ~ x", case_data(), check="none").Z.shape == (96, 0)
