"""Tensor-product adaptive Gauss-Hermite quadrature for a vector random-effects term."""

from __future__ import annotations

import numpy as np
import pytest
from _glmm_cases import cases, fit_case, frame

from pymlm.design import build_design
from pymlm.fit.glmm import GlmmObjective, gauss_hermite, problem_from_design


@pytest.fixture(scope="module")
def slopes():
    """(1 + x | g) on 200 groups, at lme4's Laplace estimates."""
    case = cases()["sim_bin_slopes"]
    design = build_design(" ".join(case["formula"].split()), frame(case["data"]), check="glmer",
                          require_numeric_response=False)
    problem, merge = problem_from_design(design, "binomial")
    x = np.concatenate([np.atleast_1d(case["theta"]), list(case["fixef"].values())])
    return problem, merge, x


def _absolute(problem, k, x):
    """-2 log L on the absolute scale at x by the k-point rule (k = 1: Laplace)."""
    lap = GlmmObjective(problem, nAGQ=1)
    f1, res = lap.evaluate(x)
    if k == 1:
        return f1
    const = problem.minus2loglik_cond(res.mu, res.drsum) - res.drsum
    return GlmmObjective(problem, nAGQ=k)(x) + const


def test_one_node_is_laplace(slopes):
    problem, _, x = slopes
    lap = GlmmObjective(problem, nAGQ=1)
    _f1, res = lap.evaluate(x)
    agq = GlmmObjective(problem, nAGQ=3)
    one = float(np.sum(agq.agq_terms(res, gauss_hermite(1))))
    assert one == pytest.approx(res.drsum + res.ussq + res.ldL2, abs=1e-8)
    assert one != pytest.approx(float(np.sum(agq.agq_terms(res))), abs=1e-3)


def test_converges_as_the_nodes_grow(slopes):
    problem, _, x = slopes
    ks = [1, 3, 5, 7, 9, 11]
    vals = np.array([_absolute(problem, k, x) for k in ks])
    diffs = np.abs(np.diff(vals))
    assert np.all(diffs[1:] < 0.5 * diffs[:-1])
    assert diffs[-1] < 1e-4
    # the Laplace approximation is visibly off for clusters of 10 Bernoulli rows
    assert abs(vals[0] - vals[-1]) > 1.0


def test_reduces_to_scalar_agq_and_lme4(slopes):
    """d = 1: the tensor rule is the scalar rule; the fit matches lme4's nAGQ = 25 (cbpp)."""
    fit, _, case = fit_case("cbpp_agq25")
    assert fit.objective_lme4 == pytest.approx(case["minus2loglik"], abs=1e-4)
    assert np.allclose(fit.beta, list(case["fixef"].values()), atol=3e-3 * np.array(list(case["fixef_se"].values())))
    assert fit.theta == pytest.approx(case["theta"], abs=1e-3)


def test_vector_agq_fit(slopes):
    problem, merge, _x = slopes
    from pymlm.fit.glmm import fit_glmm

    lap = fit_glmm(problem, 1, merge=merge, se="RX")
    fit = fit_glmm(problem, 5, merge=merge, se="RX")
    assert fit.nAGQ == 5
    # its own optimum is at least as good as the Laplace estimates under the same rule
    assert fit.minus2loglik <= _absolute(problem, 5, np.concatenate([lap.theta, lap.beta])) + 1e-6
    assert np.all(np.abs(fit.beta - lap.beta) < 0.1)
    assert fit.minus2loglik == pytest.approx(_absolute(problem, 5, np.concatenate([fit.theta, fit.beta])), abs=1e-6)
