"""The inverse Gaussian GLMM against lme4 (tests/reference/glmer_invgauss.R; glmmTMB has no such family)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pymlm as ml
from pymlm.design import build_design
from pymlm.fit.families import resolve_family
from pymlm.fit.glmm import GlmmObjective, problem_from_design

REF = Path(__file__).resolve().parents[1] / "reference"


@pytest.fixture(scope="module")
def data():
    df = pd.read_csv(REF / "glmer_invgauss.csv")
    df["g"] = pd.Categorical(df["g"])
    return df, json.loads((REF / "glmer_invgauss.json").read_text())["log"]


def test_inverse_gaussian_log_link_against_lme4(data):
    df, ref = data
    m = ml.glmer("y ~ x + (1 | g)", df, family=resolve_family("inverse.gaussian", "log").family)
    se = np.array(list(ref["fixef_se"].values()))
    assert np.all(np.abs(m.fixef.to_numpy() - np.array(list(ref["fixef"].values()))) <= 1e-2 * se)
    assert m.theta == pytest.approx(ref["theta"], abs=1e-3)
    # lme4's sigma: sqrt((Pearson sum of squares + |u|^2) / n)
    assert np.sqrt(m.fit.dispersion) == pytest.approx(ref["sigma"], rel=1e-3)
    assert np.allclose(m.fixef_se.to_numpy(), se, rtol=2e-2)
    assert m.fit.deviance_lme4 == pytest.approx(ref["deviance"], abs=2e-2)
    # the absolute-scale -2 log L (R's inverse.gaussian()$aic with the dispersion deviance / n)
    assert m.fit.minus2loglik == pytest.approx(ref["minus2loglik"], abs=1e-2)


def test_inverse_gaussian_optimum_beats_lme4s_parameters(data):
    """At lme4's (theta, beta) the same objective is no lower than at pymlm's optimum."""
    df, ref = data
    design = build_design("y ~ x + (1 | g)", df, check="glmer")
    problem, _ = problem_from_design(design, resolve_family("inverse.gaussian", "log"))
    m = ml.glmer("y ~ x + (1 | g)", df, family=resolve_family("inverse.gaussian", "log").family)
    obj = GlmmObjective(problem, nAGQ=1, stage=2)
    at_lme4 = obj(np.array([ref["theta"], *ref["fixef"].values()]))
    assert m.fit.minus2loglik <= at_lme4 + 1e-9
    assert obj(np.concatenate([m.fit.theta, m.fit.beta])) == pytest.approx(m.fit.minus2loglik, abs=1e-8)
