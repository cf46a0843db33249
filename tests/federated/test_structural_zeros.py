"""Sites with different variable sets: structural zeros equal the pooled fit of the zero-filled data."""

import numpy as np
import pandas as pd
import pytest
from _fed_data import longitudinal

import pymlm as ml
import pymlm.federated as fed

FORMULA = "y ~ time + age + biomarker + (time | subject)"


def _parts():
    df = longitudinal(120, seed=3)
    rng = np.random.default_rng(5)
    ids = df.subject.str[1:].astype(int)
    df["biomarker"] = np.round(rng.normal(0, 1, len(df)), 3)  # level 1, measured at site 0 only
    parts = [df[ids % 3 == k].reset_index(drop=True) for k in range(3)]
    parts[1] = parts[1].drop(columns=["biomarker"])
    parts[2] = parts[2].drop(columns=["biomarker", "age"])  # a level-2 variable missing too
    return parts


def test_structural_zeros_equal_the_pooled_zero_filled_fit():
    parts = _parts()
    sites = [fed.LocalSite(p, name=f"s{k}") for k, p in enumerate(parts)]
    f = fed.lmer(FORMULA, sites, structural_zeros=["biomarker", "age"])
    pooled = pd.concat(parts, ignore_index=True).fillna({"biomarker": 0.0, "age": 0.0})
    m = ml.lmer(FORMULA, pooled)
    assert list(f.fixef.index) == list(m.fixef.index)
    assert np.max(np.abs(f.fixef - m.fixef) / m.fixef_se) <= 1e-8
    assert np.max(np.abs(f.theta - m.theta)) <= 1e-7
    assert abs(f.sigma / m.sigma - 1) <= 1e-8


def test_a_missing_column_not_declared_is_refused():
    sites = [fed.LocalSite(p, name=f"s{k}") for k, p in enumerate(_parts())]
    with pytest.raises(ml.errors.PymlmError, match="biomarker"):
        fed.lmer(FORMULA, sites)
