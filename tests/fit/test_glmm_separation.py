"""Complete and quasi-complete separation: detected, and the fixed effects named."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import pymlm as ml
from pymlm.errors import DataError
from pymlm.fit.glmm import separated_columns


def _frame(seed=3, G=30, m=10):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), m)
    return rng, pd.DataFrame({"x": rng.normal(size=G * m), "z": rng.normal(size=G * m),
                                  "g": pd.Categorical(g.astype(str))})


def test_complete_separation_names_the_column():
    _, df = _frame()
    df["y"] = (df["x"] > 0).astype(float)
    with pytest.raises(DataError, match="separation: the fixed effect\\(s\\) 'x' separate") as info:
        ml.glmer("y ~ x + z + (1 | g)", df, family="binomial")
    assert "'z'" not in str(info.value) and "(Intercept)" not in str(info.value)


def test_quasi_complete_separation_names_the_level():
    rng, df = _frame(5)
    df["f"] = pd.Categorical(rng.choice(list("abc"), len(df)))
    df["y"] = np.where(df["f"] == "c", 0.0, (rng.random(len(df)) < 0.5).astype(float))
    with pytest.raises(DataError, match="'fc'"):
        ml.glmer("y ~ f + (1 | g)", df, family="binomial")


def test_separated_columns_kernel():
    rng = np.random.default_rng(0)
    n = 200
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    assert list(separated_columns(X, (X[:, 2] > 0.0).astype(float), np.ones(n))) == [2]
    # a threshold away from 0 needs the intercept too
    assert list(separated_columns(X, (X[:, 2] > 0.3).astype(float), np.ones(n))) == [0, 2]
    y_noisy = (X[:, 2] + rng.normal(size=n) > 0.0).astype(float)
    assert separated_columns(X, y_noisy, np.ones(n)).size == 0
    # proportions strictly inside (0, 1) cannot be separated
    assert separated_columns(X, np.full(n, 0.5), np.ones(n)).size == 0


def test_no_separation_no_message():
    df = ml.datasets.load("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = ml.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", df, family="binomial")
    assert np.all(np.isfinite(m.fixef.to_numpy()))
