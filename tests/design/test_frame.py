"""The model frame: used columns, missing rows, R's level labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pymlm as ml
from pymlm.design import as_categorical
from pymlm.design._frame import level_labels, number_labels, r_number
from pymlm.errors import DataError, MissingDataWarning

from ._helpers import case_data


def caret_span(exc) -> tuple[int, int]:
    line = str(exc.value).splitlines()[-1][4:]
    start = line.index("^")
    return start, start + line.count("^")


@pytest.mark.parametrize(
    "formula, message, span",
    [
        ("y ~ x + (1 | gg)", r"column 'gg' in term \(1 \| gg\) is not in the data; did you mean 'g'\?", (13, 15)),
        ("y ~ xx + (1 | g)", r"column 'xx' in term xx is not in the data; did you mean 'x'\?", (4, 6)),
        ("Y ~ x + (1 | g)", r"column 'Y' in the response Y is not in the data; did you mean 'y'\?", (0, 1)),
        ("y ~ x + (1 | G)", r"column 'G' in term \(1 \| G\) is not in the data; did you mean 'g'\?", (13, 14)),
        ("y ~ log(zz) + (1 | g)", r"column 'zz' in term log\(zz\) is not in the data; did you mean 'z'\?", (8, 10)),
        ("y ~ x + offset(log(zed)) + (1 | g)", r"column 'zed' in offset\(log\(zed\)\) is not in the data", (19, 22)),
        ("y ~ x + (1 | site/unitt)", r"column 'unitt' in term \(1 \| site/unitt\) .*did you mean 'unit'\?", (18, 23)),
        ("y ~ x + (1 | qqqq)", r"column 'qqqq' .* is not in the data; the data has columns \['y', 'x', 'z'", (13, 17)),
    ],
)
def test_unknown_column_names_it_and_suggests(formula, message, span):
    with pytest.raises(DataError, match=message) as info:
        ml.lformula(formula, case_data())
    assert caret_span(info) == span
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("arg", ["weights", "offset"])
def test_unknown_weights_or_offset_column(arg):
    with pytest.raises(DataError, match=rf"column 'ww' in {arg} is not in the data; did you mean 'w'\?"):
        ml.lformula("y ~ x + (1 | g)", case_data(), **{arg: "ww"})


def test_weights_or_offset_of_wrong_length():
    with pytest.raises(DataError, match=r"weights has length 3 but the data has 96 rows"):
        ml.lformula("y ~ x + (1 | g)", case_data(), weights=[1, 2, 3])
    with pytest.raises(DataError, match=r"offset column 'f' is not numeric"):
        ml.lformula("y ~ x + (1 | g)", case_data(), offset="f")


def test_rows_with_missing_values_are_dropped_and_counted():
    df = case_data()
    df.loc[[0, 5], "g"] = np.nan  # grouping column
    df.loc[7, "y"] = np.nan  # response
    df.loc[9, "w"] = np.nan  # weights
    df.loc[11, "zz_unused"] = np.nan  # a column the model does not use
    with pytest.warns(MissingDataWarning, match=r"^4 of 96 rows dropped for missing values \(in y, g, w\)$"):
        d = ml.lformula("y ~ x + (1 | g)", df, weights="w")
    assert d.n_dropped == 4
    assert d.n == 92
    np.testing.assert_array_equal(d.frame.rows, np.setdiff1d(np.arange(96), [0, 5, 7, 9]))
    np.testing.assert_array_equal(d.y, df["y"].to_numpy()[d.frame.rows])
    np.testing.assert_array_equal(d.weights, df["w"].to_numpy()[d.frame.rows])


def test_missing_offset_argument_values_drop_rows():
    off = np.ones(96)
    off[3] = np.nan
    with pytest.warns(MissingDataWarning, match=r"1 of 96 rows dropped for missing values \(in offset\)"):
        d = ml.lformula("y ~ x + (1 | g)", case_data(), offset=off)
    assert d.n == 95 and d.offset.shape == (95,)


def test_unused_levels_are_dropped_after_missing_rows():
    df = case_data()
    df.loc[df["f"] == "gamma", "x"] = np.nan
    with pytest.warns(MissingDataWarning):
        d = ml.lformula("y ~ x + f + (1 | g)", df)
    assert d.X_names == ["(Intercept)", "x", "fbeta"]


def test_no_rows_left():
    df = case_data()
    df["x"] = np.nan
    with pytest.raises(DataError, match=r"no rows left after dropping rows with missing values \(every row "
                                        r"misses a value in x\)"):
        ml.lformula("y ~ x + (1 | g)", df)


def test_no_rows_and_not_a_frame():
    with pytest.raises(DataError, match=r"data has no rows"):
        ml.lformula("y ~ x + (1 | g)", case_data().iloc[:0])
    with pytest.raises(DataError, match=r"data must be a pandas DataFrame, a pyarrow Table or a dict of columns; got list"):
        ml.lformula("y ~ x + (1 | g)", [1, 2])


@pytest.mark.parametrize(
    "value, label",
    [(2.0, "2"), (0.1, "0.1"), (1e5, "1e+05"), (123456.0, "123456"), (1 / 3, "0.333333333333333"),
     (1e15, "1e+15"), (1e-5, "1e-05"), (100.0, "100"), (-0.5, "-0.5"), (2.5e-7, "2.5e-07"),
     (1234567.5, "1234567.5"), (0.0, "0"), (float("inf"), "Inf")],
)
def test_r_number_labels(value, label):
    """As R's as.character() on doubles (checked against R 4.2.2)."""
    assert r_number(value) == label


def test_level_labels_and_categoricals_in_r_order():
    assert level_labels([True, False, 3, 2.5, "a"]) == ["TRUE", "FALSE", "3", "2.5", "a"]
    assert as_categorical(pd.Series([10, 2, 10, 7])).categories.tolist() == ["2", "7", "10"]
    assert as_categorical(pd.Series([1e5, 2.0])).categories.tolist() == ["2", "1e+05"]
    assert as_categorical(pd.Series(["b", "B", "a", None])).categories.tolist() == ["B", "a", "b"]
    assert as_categorical(pd.Series([True, False, None], dtype=object)).categories.tolist() == ["FALSE", "TRUE"]
    cat = as_categorical(pd.Categorical(["x", "z"], categories=["z", "y", "x"], ordered=True))
    assert cat.categories.tolist() == ["z", "x"] and cat.ordered
    codes = as_categorical(pd.Series([3, None, 1], dtype="Int64")).codes.tolist()
    assert codes == [1, -1, 0]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.integers(-10**16, 10**16).map(float),
                          st.floats(allow_nan=False, allow_infinity=False),
                          st.sampled_from([1e5, 2e6, -3e7, 1e15, 123456.0, 0.0, 100.0])),
                min_size=1, max_size=30))
def test_vectorized_number_labels_equal_r_number(values):
    assert number_labels(np.array(values)).tolist() == [r_number(v) for v in values]
    ints = np.array([int(v) for v in values if abs(v) < 2**62], dtype=np.int64)
    assert number_labels(ints, integer=True).tolist() == [str(int(v)) for v in ints]
