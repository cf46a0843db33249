"""lmer_devfun equals lme4's deviance function (``lmer(..., devFunOnly = TRUE)``).

Reference values: tests/reference/make_devfun_reference.R, at lme4's optimum,
at two perturbed theta and at a point with a diagonal element on its bound.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import pymlm as ml
from pymlm.errors import OptionError

REF = json.loads((Path(__file__).resolve().parents[1] / "reference" / "devfun_reference.json").read_text())
CASES = sorted(k for k in REF if k != "versions")
FAST = [c for c in CASES if c != "insteval_ml"]


def _data(name):
    df = ml.datasets.load(name).copy()
    if name == "sleepstudy":
        df["w"] = 1 + df["Days"] / 10
        df["off"] = 3 * np.log1p(df["Days"])
    return df


def _devfun(case):
    r = REF[case]
    return ml.lmer_devfun(r["formula"], _data(r["data"]), REML=r["REML"], weights=r.get("weights") or None,
                          offset=r.get("offset") or None)


@pytest.mark.parametrize("case", FAST + [pytest.param("insteval_ml", marks=pytest.mark.slow)])
def test_devfun_equals_lme4_at_and_away_from_the_optimum(case):
    f = _devfun(case)
    r = REF[case]
    np.testing.assert_array_equal(f.lower, [float(v) for v in np.atleast_1d(r["lower"])])
    for pt in r["points"]:
        assert f(pt["theta"]) == pytest.approx(pt["deviance"], rel=1e-9), pt["theta"]


@pytest.mark.parametrize("case", ["sleepstudy_reml", "penicillin", "pastes"])
def test_gradient_equals_finite_differences(case):
    f = _devfun(case)
    theta = np.asarray(REF[case]["points"][1]["theta"])
    g = f.gradient(theta)
    h = 1e-4
    fd = np.array([(f(theta + h * e) - f(theta - h * e)) / (2 * h) for e in np.eye(theta.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5)


def test_theta_of_the_wrong_length_is_named():
    f = _devfun("sleepstudy_reml")
    with pytest.raises(OptionError, match=r"theta has 2 values; this model has 3 \(Subject.\(Intercept\)"):
        f([1.0, 0.0])


def test_theta_below_its_bound_gives_inf():
    f = _devfun("sleepstudy_reml")
    assert f([-0.5, 0.0, 1.0]) == np.inf


def test_minimizing_the_devfun_gives_the_lmer_fit():
    from scipy.optimize import minimize

    f = _devfun("penicillin")
    res = minimize(f, f.theta0, jac=f.gradient, method="L-BFGS-B", bounds=[(lo, None) for lo in f.lower])
    m = ml.lmer(REF["penicillin"]["formula"], _data("Penicillin"))
    assert res.fun == pytest.approx(m.reml_criterion, abs=1e-6)
    np.testing.assert_allclose(res.x, m.theta, atol=1e-3)
