"""Random-effects terms: grouping factors, lme4's level checks, Z, new data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import pymlm as ml
from pymlm.design import build_design, grouping_codes
from pymlm.errors import DataError, FormulaError

from ._helpers import case_data, dense


def caret_span(exc) -> tuple[int, int]:
    line = str(exc.value).splitlines()[-1][4:]
    start = line.index("^")
    return start, start + line.count("^")


def test_grouping_factor_with_one_level():
    df = case_data().assign(one="k")
    with pytest.raises(FormulaError, match=r"^grouping factor 'one' has 1 level; \(1 \| one\) needs at least 2\. "
                                           r"Drop the term or check the data\.") as info:
        ml.lformula("y ~ x + (1 | one)", df)
    assert caret_span(info) == (8, 17)
    # also after dropping rows with missing values
    df = case_data()
    df.loc[df["h"] != "kiwi", "x"] = np.nan
    with pytest.warns(ml.MissingDataWarning), pytest.raises(FormulaError, match=r"grouping factor 'h' has 1 level"):
        ml.lformula("y ~ x + (1 | h)", df)


def test_grouping_factor_with_as_many_levels_as_rows():
    df = case_data().assign(obs=np.arange(96))
    with pytest.raises(FormulaError, match=r"grouping factor 'obs' has 96 levels for 96 observations; \(1 \| obs\) "
                                           r"would be confounded with the residual") as info:
        ml.lformula("y ~ x + (1 | obs)", df)
    assert caret_span(info) == (8, 17)
    # no residual to confound with in a GLMM: allowed there, as lme4's glmer
    d = build_design("a ~ x + (1 | obs)", df, check="glmer")
    assert d.ngroups == {"obs": 96}


def test_more_random_effects_than_rows():
    df = case_data().assign(pair=np.arange(96) // 2)
    with pytest.raises(FormulaError, match=r"number of observations \(96\) <= number of random effects \(96\) for "
                                           r"term \(1 \+ x \| pair\); the random-effects parameters and the "
                                           r"residual variance are probably unidentifiable"):
        ml.lformula("y ~ x + (x | pair)", df)
    df = case_data().assign(third=np.arange(96) // 3)
    with pytest.raises(FormulaError, match=r"number of observations \(96\) < number of random effects \(160\)"):
        build_design("a ~ x + (x + z + f | third)", df, check="glmer")
    assert build_design("a ~ x + (x | pair)", df.assign(pair=np.arange(96) // 2), check="glmer").Z.shape == (96, 96)


def test_grouping_codes_follow_r_levels():
    df = pd.DataFrame({"i": [10, 2, 10, 33], "s": ["b", "a", "b", "a"], "t": [True, False, True, True]})
    codes, levels = grouping_codes(df, ("i",))
    assert levels.tolist() == ["2", "10", "33"] and codes.tolist() == [1, 0, 1, 2]
    codes, levels = grouping_codes(df, ("t",))
    assert levels.tolist() == ["FALSE", "TRUE"]
    codes, levels = grouping_codes(df, ("s", "i"))
    assert levels.tolist() == ["a:2", "a:33", "b:10"] and codes.tolist() == [2, 0, 2, 1]
    assert codes.dtype == np.int32


def test_terms_sorted_by_levels_as_lme4():
    d = ml.lformula("y ~ x + (1 | site) + (1 | g) + (x | h)", case_data())
    assert [(t.group, t.nlevels) for t in d.re_terms] == [("h", 12), ("g", 8), ("site", 4)]
    d = ml.lformula("y ~ x + (1 | h) + (1 | g) + (1 | site)", case_data())
    assert [t.group for t in d.re_terms] == ["h", "g", "site"]


def test_term_attributes_and_theta_names():
    d = ml.lformula("y ~ x + (x | g) + (1 | site)", case_data())
    g = d.re_terms[0]
    assert (g.p, g.nlevels, g.q, g.n_theta) == (2, 8, 16, 3)
    assert d.theta_names == ["g.(Intercept)", "g.x.(Intercept)", "g.x", "site.(Intercept)"]
    assert d.cnms == [("g", ("(Intercept)", "x")), ("site", ("(Intercept)",))]
    assert d.theta_slices == [slice(0, 3), slice(3, 4)]
    for t, where in zip(d.re_terms, d.theta_slices):
        np.testing.assert_array_equal(d.theta[where], t.theta0)
        np.testing.assert_array_equal(d.lower[where], t.lower)
    assert g.lower.tolist() == [0.0, -np.inf, 0.0]


def test_random_matrix_for_new_data():
    df = case_data()
    d = ml.lformula("y ~ x + (scale(x) | g) + (0 + f | h)", df)
    assert (d.random_matrix(df) != d.Z).nnz == 0
    rows = [3, 70, 12]
    np.testing.assert_allclose(d.random_matrix(df.iloc[rows]).toarray(), d.Z.toarray()[rows], atol=1e-14)
    new = df.iloc[rows].assign(g=[3, 999, 7])
    with pytest.raises(DataError, match=r"the new data has level '999' of grouping factor 'g' not in the model; "
                                        r"pass allow_new_levels=True"):
        d.random_matrix(new)
    Zn = d.random_matrix(new, allow_new_levels=True).toarray()
    g_cols = slice(0, d.re_terms[0].q) if d.re_terms[0].group == "g" else slice(d.re_terms[0].q, None)
    assert not Zn[1, g_cols].any()
    np.testing.assert_allclose(Zn[[0, 2]], d.Z.toarray()[[3, 12]], atol=1e-14)
    with pytest.raises(DataError, match=r"the new data has no column 'h', the grouping factor of \(0 \+ f \| h\)"):
        d.random_matrix(df.drop(columns="h"))


def test_z_is_csc_without_stored_zeros():
    df = case_data()
    df.loc[:9, "x"] = 0.0
    d = ml.lformula("y ~ x + (x | g)", df)
    assert sp.isspmatrix_csc(d.Z)
    assert d.Z.nnz == 2 * 96 - 10 == d.Z.count_nonzero()
    np.testing.assert_array_equal(dense(d.re_terms[0].X)[:, 1], df["x"])
