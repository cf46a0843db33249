"""The deviance pieces used by profiles, bootstrap refits and Satterthwaite's df, and the refit driver."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pymlm.crossprod import cross_products, offset_cross_products, response_cross_products
from pymlm.fit._optimize import gradient_hessian, minimize_qn, positive_inverse
from pymlm.fit.deviance import BlockedEvaluator, DenseEvaluator, evaluator_for
from pymlm.fit.lmm import fit_lmm


@pytest.fixture(scope="module")
def problems(reference_fits):
    sleep = reference_fits("sleepstudy").problem
    pen = reference_fits("penicillin").problem
    pastes = reference_fits("pastes").problem
    return {"sleep": sleep, "pen": pen, "pastes": pastes}


@pytest.mark.parametrize("name", ["sleep", "pen", "pastes"])
@pytest.mark.parametrize("reml", [True, False])
def test_profiled_criterion_and_gradient_equal_the_fitters(problems, name, reml):
    pr = problems[name]
    dev = DenseEvaluator(pr.cp, reml, pr.tmap)
    obj = evaluator_for(pr.cp, reml, pr.tmap, kind="blocked")
    for theta in (pr.fit.theta, pr.fit.theta * 1.3 + 0.05):
        v, g = dev.value_and_grad(theta)
        v0, g0 = obj.value_and_grad(theta)
        assert v == pytest.approx(v0, abs=1e-9)
        np.testing.assert_allclose(g, g0, atol=1e-8)


@pytest.mark.parametrize("name", ["sleep", "pen"])
def test_gradients_of_each_piece_match_finite_differences(problems, name):
    pr = problems[name]
    dev = DenseEvaluator(pr.cp, True, pr.tmap)
    theta = pr.fit.theta * 0.8 + 0.1
    pt = dev.at(theta, grad=True, jacobian=True)
    h = 1e-6
    for w in [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.3, -2.0, 5.0)]:
        def f(th, w=w):
            q = dev.at(th)
            return w[0] * q.ldL2 + w[1] * q.ldRX2 + w[2] * np.log(q.pwrss)
        fd = np.array([(f(theta + h * e) - f(theta - h * e)) / (2 * h) for e in np.eye(theta.size)])
        np.testing.assert_allclose(pt.combination(*w), fd, rtol=1e-5, atol=1e-6)
    # d (R_X'R_X)^{-1} / d theta
    fd = np.array([(dev.at(theta + h * e).vcov_unscaled - dev.at(theta - h * e).vcov_unscaled) / (2 * h)
                   for e in np.eye(theta.size)])
    J = pt.dvcov
    np.testing.assert_allclose(J, fd, rtol=1e-5, atol=1e-7 * np.abs(J).max())


def test_gradient_on_the_boundary_is_the_limit_from_inside(problems):
    """At theta_k = 0 no T_k^{-1} is needed; a scalar term's criterion is even in theta_k, so 0."""
    pr = problems["pen"]
    dev = DenseEvaluator(pr.cp, True, pr.tmap)
    g0 = dev.value_and_grad(np.array([0.0, 2.0]))[1]
    g_in = dev.value_and_grad(np.array([1e-7, 2.0]))[1]
    assert g0[0] == 0.0
    np.testing.assert_allclose(g0, g_in, atol=1e-3)
    assert np.all(np.isfinite(g0))


@given(j=st.integers(0, 1), b=st.floats(-20.0, 20.0))
def test_offset_algebra_equals_cross_products_of_the_shifted_response(problems, j, b):
    """Moving x_j b into the offset through the blocks equals recomputing them from the rows."""
    pr = problems["sleep"]
    X = pr.X
    keep = [c for c in range(X.shape[1]) if c != j]
    direct = cross_products(pr.codes, pr.Xs, pr.levels, X[:, keep], pr.y - b * X[:, j])
    got = offset_cross_products(pr.cp, j, b)
    np.testing.assert_allclose(got.dense(), direct.dense(), rtol=1e-10, atol=1e-6)
    theta = pr.fit.theta
    shifted = DenseEvaluator(pr.cp, False, pr.tmap).with_cp(got).at(theta)
    ref = DenseEvaluator(direct, False, pr.tmap).at(theta)
    assert shifted.deviance == pytest.approx(ref.deviance, rel=1e-10)
    np.testing.assert_allclose(shifted.beta, ref.beta, rtol=1e-8, atol=1e-8)


def test_new_response_blocks_equal_cross_products_of_the_new_response(problems):
    pr = problems["pen"]
    y = pr.simulate(np.random.default_rng(3), 1)[:, 0]
    direct = cross_products(pr.codes, pr.Xs, pr.levels, pr.X, y)
    zy = [direct.zxy[k][:, :, -1] for k in range(len(pr.codes))]
    xy = direct.xyxy[:-1, -1]
    got = response_cross_products(pr.cp, zy, xy, direct.xyxy[-1, -1])
    np.testing.assert_allclose(got.dense(), direct.dense(), rtol=1e-12)
    dense = DenseEvaluator(pr.cp, True, pr.tmap).with_cp(got)
    np.testing.assert_allclose(dense.A, direct.dense(), rtol=1e-12)


@pytest.mark.parametrize("name", ["sleep", "pen"])
def test_quasi_newton_refits_reach_the_fitters_optimum(problems, name):
    pr = problems[name]
    dev = DenseEvaluator(pr.cp, True, pr.tmap)
    H = positive_inverse(gradient_hessian(dev, pr.fit.theta))
    rng = np.random.default_rng(11)
    for y in pr.simulate(rng, 4).T:
        cp = cross_products(pr.codes, pr.Xs, pr.levels, pr.X, y)
        d = DenseEvaluator(cp, True, pr.tmap)
        theta, ok = minimize_qn(d.value_and_grad, pr.fit.theta, pr.lower, H, tol=1e-12)
        ref = fit_lmm(cp, pr.tmap, reml=True)
        assert ok
        assert d(theta) <= ref.deviance + 1e-8
        np.testing.assert_allclose(theta, ref.theta, atol=1e-4)


def test_blocked_factor_pieces_equal_the_dense_ones(problems):
    pr = problems["pastes"]
    dense = DenseEvaluator(pr.cp, True, pr.tmap)
    blocked = BlockedEvaluator(pr.cp, True, pr.tmap)
    theta = pr.fit.theta * 1.1
    a, b = dense.at(theta, grad=True, jacobian=True), blocked.at(theta, grad=True, jacobian=True)
    assert (a.ldL2, a.ldRX2, a.pwrss) == pytest.approx((b.ldL2, b.ldRX2, b.pwrss), rel=1e-10)
    np.testing.assert_allclose(a.combination(1.0, 1.0, 50.0), b.combination(1.0, 1.0, 50.0), rtol=1e-5)
    np.testing.assert_allclose(a.dvcov, b.dvcov, rtol=1e-4, atol=1e-12)
