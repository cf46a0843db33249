"""Engine-level fits of the glmer reference cases (tests/reference/glmer_reference.json)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pandas as pd

import pymlm as ml
from pymlm.design import build_design
from pymlm.fit.glmm import fit_glmm, problem_from_design

REF = Path(__file__).resolve().parents[1] / "reference"


@lru_cache(maxsize=1)
def cases() -> dict:
    return json.loads((REF / "glmer_reference.json").read_text())["cases"]


def frame(name: str) -> pd.DataFrame:
    if name in ("cbpp", "grouseticks"):
        return ml.datasets.load(name)
    df = pd.read_csv(REF / f"glmer_{name.removeprefix('glmer_')}.csv")
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = pd.Categorical(df[col], categories=sorted(df[col].unique()))
    return df


def family_of(case: dict):
    fam = case["family"]
    if fam.startswith("Negative Binomial"):
        return None
    if case.get("link") and fam in ("Gamma", "inverse.gaussian", "binomial", "poisson"):
        from pymlm.fit.families import resolve_family

        return resolve_family(fam, case["link"])
    return fam


def fit_case(name: str, nAGQ=None, data=None, **kw):
    case = cases()[name]
    df = frame(case["data"]) if data is None else data
    design = build_design(" ".join(case["formula"].split()), df, case.get("weights"), check="glmer",
                          require_numeric_response=False)
    problem, merge = problem_from_design(design, family_of(case))
    return fit_glmm(problem, nAGQ=case["nAGQ"] if nAGQ is None else nAGQ, merge=merge, **kw), design, case
