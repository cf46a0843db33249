"""Property tests of the GLMM objective: frequency weights are repeated rows; the gradient is the objective's."""

from __future__ import annotations

import numpy as np
import pytest
from _glmm_cases import frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pymlm.design import build_design
from pymlm.fit.glmm import GlmmObjective, problem_from_design


def _objective(df, formula, family, weights=None, nAGQ=1):
    design = build_design(formula, df, weights, check="glmer", require_numeric_response=False)
    problem, _ = problem_from_design(design, family)
    return GlmmObjective(problem, nAGQ=nAGQ, stage=2)


CASES = {"bernoulli": ("glmer_bernoulli", "y ~ x + (1 | g)", "binomial"),
         "slopes": ("glmer_sim_bin", "y ~ x + (1 + x | g)", "binomial")}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["bernoulli", "slopes"]), seed=st.integers(0, 2 ** 31 - 1),
       theta=st.floats(0.2, 2.0), shift=st.floats(-0.5, 0.5), nAGQ=st.sampled_from([1, 1, 3]))
def test_frequency_weights_equal_repeated_rows(name, seed, theta, shift, nAGQ):
    """At any (theta, beta), integer weights w give the objective (and gradient) of rows repeated w times."""
    data, formula, family = CASES[name]
    df = frame(data).iloc[:300].reset_index(drop=True)
    df["g"] = df["g"].astype(str)
    rng = np.random.default_rng(seed)
    w = rng.integers(1, 4, size=len(df)).astype(float)
    rep = df.loc[np.repeat(np.arange(len(df)), w.astype(int))].reset_index(drop=True)
    o_w = _objective(df, formula, family, w, nAGQ if name == "bernoulli" else 1)
    o_r = _objective(rep, formula, family, None, nAGQ if name == "bernoulli" else 1)
    th = np.where(o_w.problem.tmap.is_diag, theta, 0.1 * shift)
    x = np.concatenate([th, np.full(o_w.problem.p, shift)])
    f_w, f_r = o_w(x), o_r(x)
    assert np.isfinite(f_w)
    assert f_w == pytest.approx(f_r, rel=1e-10, abs=1e-8)
    if o_w.analytic:
        g_w, g_r = o_w.value_and_grad(x)[1], o_r.value_and_grad(x)[1]
        assert np.allclose(g_w, g_r, rtol=1e-7, atol=1e-7)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), theta=st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3),
       beta=st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=2))
def test_vector_term_gradient_equals_finite_differences(seed, theta, beta):
    """The analytic Laplace gradient of a (1 + x | g) term at random (theta, beta) against central differences."""
    data, formula, family = CASES["slopes"]
    df = frame(data)
    obj = _objective(df, formula, family)
    th = np.asarray(theta)
    th = np.where(obj.problem.tmap.is_diag, 0.2 + np.abs(th), th)
    x = np.concatenate([th, np.asarray(beta)])
    f, g = obj.value_and_grad(x)
    h = 1e-5 * np.maximum(np.abs(x), 0.1)
    fd = np.array([(obj(x + hi * e) - obj(x - hi * e)) / (2 * hi) for hi, e in zip(h, np.eye(x.size))])
    assert np.isfinite(f)
    assert np.allclose(g, fd, rtol=1e-5, atol=1e-5)
