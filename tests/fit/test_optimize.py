"""Optima near theta = 0: the criterion is flat to first order there, yet the optimum
may be inside (lme4's fits of responses simulated from Dyestuff in
tests/reference/boundary_escape_reference.json, made by
tests/reference/make_boundary_escape_reference.R)."""

import json
from pathlib import Path

import numpy as np
import pytest

import pymlm as ml
from pymlm.errors import SingularFitWarning
from pymlm.fit._optimize import bound_restart
from pymlm.inference.boot import _Bootstrap

REFERENCE = Path(__file__).parents[1] / "reference"
REF = json.loads((REFERENCE / "boundary_escape_reference.json").read_text())
CASES = REF["cases"]
FORMULA = REF["formula"]


@pytest.fixture(scope="module")
def dyestuff():
    return ml.datasets.load("Dyestuff")


def test_reference_optima_are_inside_and_below_the_bound():
    # what the cases are: lme4's criterion at its optimum is below its value at theta = 0
    assert len(CASES) >= 20
    assert all(0 < c["theta"] < 0.15 and c["REMLcrit"] < c["REMLcrit_at_0"] for c in CASES)


def test_lmer_finds_the_inner_optimum_lme4_finds(dyestuff):
    for c in CASES:
        d = dyestuff.assign(Yield=c["y"])
        m = ml.lmer(FORMULA, d)
        assert abs(m.theta[0] - c["theta"]) < 1e-4, (m.theta, c["theta"])
        assert m.reml_criterion < c["REMLcrit"] + 1e-8
        assert not m.is_singular
        assert abs(m.sigma - c["sigma"]) < 1e-5 * c["sigma"]


def test_bootstrap_refits_find_the_inner_optimum(dyestuff):
    # the bootstrap's refit (projected quasi-Newton from the original fit's Hessian)
    boot = _Bootstrap(ml.lmer(FORMULA, dyestuff).problem)
    for c in CASES:
        sd, sigma = boot.refit(np.asarray(c["y"], dtype=float))[:2]
        assert abs(sd / sigma - c["theta"]) < 1e-4, (sd / sigma, c["theta"])


def test_a_true_boundary_optimum_stays_on_the_bound():
    # Dyestuff2: lme4's fit is singular (tests/reference/inference_reference.json)
    ref = json.loads((REFERENCE / "inference_reference.json").read_text())["dyestuff2"]
    assert ref["is_singular"]
    with pytest.warns(SingularFitWarning, match="singular"):
        m = ml.lmer(FORMULA, ml.datasets.load("Dyestuff2"))
    assert m.theta[0] == 0.0
    dev = ml.lmer_devfun(FORMULA, ml.datasets.load("Dyestuff2"), REML=True)
    assert bound_restart(dev, np.zeros(1), np.zeros(1), np.ones(1)) is None


def test_bound_restart_moves_only_the_elements_on_their_bound():
    lower = np.array([0.0, -np.inf, 0.0])

    def f(th):  # falls inwards in th[2] from 0, minimum at th[2] = 0.05
        return (th[0] - 1.0) ** 2 + th[1] ** 2 + (th[2] ** 2 - 0.05 ** 2) ** 2

    x = np.array([1.0, 0.0, 0.0])
    x0 = bound_restart(f, x, lower, start=np.array([1.0, 0.0, 0.2]))
    assert x0 is not None and x0[0] == 1.0 and x0[1] == 0.0 and 0 < x0[2] <= 0.2
    assert f(x0) < f(x)
    assert bound_restart(f, np.array([1.0, 0.0, 0.05]), lower, x) is None  # nothing on a bound
