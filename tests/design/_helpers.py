"""Shared loaders for the design tests: the reference data and lme4's figures."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

REFERENCE = Path(__file__).resolve().parents[1] / "reference"


@lru_cache(maxsize=1)
def reference() -> dict:
    """tests/reference/design_cases.json (made by make_design_reference.R)."""
    return json.loads((REFERENCE / "design_cases.json").read_text())


@lru_cache(maxsize=1)
def _case_data() -> pd.DataFrame:
    ref = reference()
    df = pd.read_csv(REFERENCE / ref["data"])
    levels = ref["factor_levels"]
    df["o"] = pd.Categorical(df["o"], categories=levels["o"]["levels"], ordered=True)
    # o2 is not in the CSV: the R script derives it from z, as here.
    df["o2"] = pd.Categorical(np.where(df["z"] > 1.5, "hi", "lo"), categories=levels["o2"]["levels"],
                              ordered=True)
    assert df["flag"].dtype == bool and df["g"].dtype.kind == "i"
    return df


def case_data() -> pd.DataFrame:
    """The reference data as R's script reads it (a fresh copy)."""
    return _case_data().copy()


def as_list(value) -> list:
    """R's JSON writes length-one vectors as scalars."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def columns(value) -> np.ndarray:
    """A matrix written column by column, as an (n, k) array."""
    cols = [as_list(c) for c in as_list(value)]
    if cols and not isinstance(as_list(value)[0], list):
        cols = [as_list(value)]
    return np.array(cols, dtype=float).T


def dense(x) -> np.ndarray:
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)
