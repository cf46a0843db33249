"""Every implementation of the deviance evaluator gives the dense one's numbers.

On random small designs (crossed and nested factors, one or two coefficients
per term): the deviance pieces (log-determinants, penalized RSS, beta-hat,
unscaled covariance of beta-hat and its Jacobian) and the gradient of the
(REML) deviance of the one-term, blocked and cluster-resample
implementations equal the dense implementation's, and every gradient equals
central finite differences of the deviance.
"""

import numpy as np
import pytest
from _designs import random_designs
from hypothesis import assume, given
from hypothesis import strategies as st

from pymlm.crossprod import cluster_cross_products, cross_products
from pymlm.fit.deviance import (
    BlockedEvaluator,
    ClusterEvaluator,
    DenseEvaluator,
    OneTermEvaluator,
    profiled_deviance,
)
from pymlm.linalg import ThetaMap

PIECES = ("ldL2", "ldRX2", "pwrss")


def _cp(d):
    return cross_products(d["codes"], d["Xs"], d["levels"], d["X"], d["y"])


def _implementations(d, reml):
    """name -> evaluator, for every implementation that applies to the design."""
    cp = _cp(d)
    out = {"dense": DenseEvaluator(cp, reml), "blocked": BlockedEvaluator(cp, reml)}
    if cp.n_terms == 1:
        out["single"] = OneTermEvaluator(cp, reml)
        lk = d["levels"][0]
        blocks = cluster_cross_products(d["codes"][0], d["Xs"][0], lk, d["X"], d["y"])
        out["clusters"] = ClusterEvaluator(blocks, np.ones(lk), np.arange(lk), reml, ThetaMap.default(cp.dims))
    return cp, out


@given(random_designs(), st.booleans())
def test_every_implementation_equals_the_dense_one(d, reml):
    _, impls = _implementations(d, reml)
    theta = d["theta"]
    ref = impls["dense"].at(theta, grad=True, jacobian=True)
    assert ref.deviance == pytest.approx(
        profiled_deviance(ref.ldL2, ref.ldRX2, ref.pwrss, ref.n, ref.p, ref.sum_log_w, reml), rel=1e-14)
    scale = 1 + np.abs(ref.grad).max()
    for name, ev in impls.items():
        pt = ev.at(theta, grad=True, jacobian=True)
        for key in PIECES:
            assert getattr(pt, key) == pytest.approx(getattr(ref, key), rel=1e-10, abs=1e-10), (name, key)
        assert pt.deviance == pytest.approx(ref.deviance, rel=1e-10), name
        np.testing.assert_allclose(pt.grad, ref.grad, rtol=1e-7, atol=1e-7 * scale, err_msg=name)
        np.testing.assert_allclose(pt.beta, ref.beta, rtol=1e-9, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(pt.vcov_unscaled, ref.vcov_unscaled, rtol=1e-9, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(pt.dvcov, ref.dvcov, rtol=1e-4, atol=1e-6 * (1 + np.abs(ref.dvcov).max()),
                                   err_msg=name)
        # the ML pieces of a log-likelihood combination (profiles use wR = 0)
        np.testing.assert_allclose(pt.combination(1.0, 0.0, 3.0), ref.combination(1.0, 0.0, 3.0), rtol=1e-7,
                                   atol=1e-7 * scale, err_msg=name)


@given(random_designs(), st.booleans())
def test_every_gradient_equals_finite_differences(d, reml):
    _, impls = _implementations(d, reml)
    theta = d["theta"]
    h = 1e-6
    for name, ev in impls.items():
        fd = np.array([(ev(theta + e) - ev(theta - e)) / (2 * h) for e in np.eye(theta.size) * h])
        np.testing.assert_allclose(ev.value_and_grad(theta)[1], fd, rtol=1e-4, atol=1e-4 * (1 + np.abs(fd).max()),
                                   err_msg=name)
        J = ev.at(theta, jacobian=True).dvcov
        fdJ = np.array([(ev.at(theta + e).vcov_unscaled - ev.at(theta - e).vcov_unscaled) / (2 * h)
                        for e in np.eye(theta.size) * h])
        np.testing.assert_allclose(J, fdJ, rtol=1e-4, atol=1e-6 * (1 + np.abs(fdJ).max()), err_msg=name)


@given(random_designs(max_terms=2), st.booleans())
def test_the_gradient_on_the_boundary_is_the_limit_from_inside(d, reml):
    _, impls = _implementations(d, reml)
    assert not impls["dense"].interior_gradient and impls["blocked"].interior_gradient
    tm = impls["dense"].tmap
    theta = d["theta"].copy()
    theta[np.flatnonzero(tm.is_diag)[0]] = 0.0
    ref = impls["dense"].value_and_grad(theta)
    for name, ev in impls.items():
        value, grad = ev.value_and_grad(theta)
        assert value == pytest.approx(ref[0], rel=1e-10), name
        # the one-term and blocked forms take it 1e-8 inside: equal up to 1e-8 times the curvature
        np.testing.assert_allclose(grad, ref[1], rtol=1e-4, atol=1e-3 * (1 + np.abs(ref[1]).max()), err_msg=name)


@given(random_designs(max_terms=1), st.booleans())
def test_cluster_resample_equals_the_dense_evaluator_on_the_copies(d, reml):
    """c_i copies of cluster i, each copy a group of its own, as the expanded data set."""
    rng = d["rng"]
    lk = d["levels"][0]
    counts = rng.integers(0, 3, size=lk)
    counts[0] = max(counts[0], 1)
    blocks = cluster_cross_products(d["codes"][0], d["Xs"][0], lk, d["X"], d["y"])
    obj = ClusterEvaluator(blocks, counts, np.arange(lk), reml, ThetaMap.default(((d["Xs"][0].shape[1], lk),)))
    rows, codes, start = [], [], 0
    for cl, c in enumerate(counts):
        idx = np.flatnonzero(d["codes"][0] == cl)
        for _ in range(c):
            rows.append(idx)
            codes.append(np.full(idx.size, start))
            start += 1
    rows, codes = np.concatenate(rows), np.concatenate(codes)
    cp = cross_products([codes], [d["Xs"][0][rows]], [start], d["X"][rows], d["y"][rows])
    assume(np.linalg.matrix_rank(d["X"][rows]) == cp.p)
    ref = DenseEvaluator(cp, reml).at(d["theta"], grad=True)
    pt = obj.at(d["theta"], grad=True)
    for key in PIECES:
        assert getattr(pt, key) == pytest.approx(getattr(ref, key), rel=1e-10, abs=1e-10), key
    assert pt.deviance == pytest.approx(ref.deviance, rel=1e-10)
    np.testing.assert_allclose(pt.grad, ref.grad, rtol=1e-7, atol=1e-7 * (1 + np.abs(ref.grad).max()))
