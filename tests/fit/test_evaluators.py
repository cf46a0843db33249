"""Every implementation of the deviance evaluator gives the dense one's numbers.

On random small designs (crossed and nested factors, one or two coefficients
per term): the deviance pieces (log-determinants, penalized RSS, beta-hat,
unscaled covariance of beta-hat) and the gradient of the (REML) deviance of
the one-term, blocked and cluster-resample implementations equal the dense
implementation's, and every gradient equals central finite differences of the
deviance.
"""

import numpy as np
import pytest
from _designs import random_designs
from hypothesis import assume, given
from hypothesis import strategies as st

from pymlm.crossprod import cluster_cross_products, cross_products
from pymlm.fit.lmm import LmmObjective
from pymlm.inference._deviance import DenseDeviance, FactorDeviance
from pymlm.inference.blb import ResampleObjective
from pymlm.linalg import ThetaMap


def _cp(d):
    return cross_products(d["codes"], d["Xs"], d["levels"], d["X"], d["y"])


def _dense(cp, layout, theta, reml):
    dev = DenseDeviance.from_cp(cp, layout)
    pt = dev.at(theta)
    value, grad = dev.profiled(theta, reml)
    return {"value": value, "grad": grad, "ldL2": pt.ldL2, "ldRX2": pt.ldRX2, "pwrss": pt.pwrss,
            "beta": pt.beta(), "vcov": pt.vcov_unscaled()}


def _implementations(d, reml):
    """name -> (theta -> (value, gradient)) for every implementation that applies to the design."""
    cp = _cp(d)
    out = {}
    kernels = ["dense", "blocked"] + (["single"] if cp.n_terms == 1 else [])
    for kernel in kernels:
        obj = LmmObjective(cp, reml, kernel=kernel)
        out[kernel] = obj.value_and_grad
    if cp.n_terms == 1:
        blocks = cluster_cross_products(d["codes"][0], d["Xs"][0], d["levels"][0], d["X"], d["y"])
        ones = ResampleObjective(blocks, np.ones(d["levels"][0]), np.arange(d["levels"][0]), reml,
                                 ThetaMap.default(cp.dims))
        out["clusters"] = ones.value_and_grad
    return cp, out


@given(random_designs(), st.booleans())
def test_every_implementation_equals_the_dense_one(d, reml):
    cp, impls = _implementations(d, reml)
    layout = ThetaMap.default(cp.dims)
    ref = _dense(cp, layout, d["theta"], reml)
    scale = 1 + np.abs(ref["grad"]).max()
    for name, vg in impls.items():
        value, grad = vg(d["theta"])
        assert value == pytest.approx(ref["value"], rel=1e-10), name
        np.testing.assert_allclose(grad, ref["grad"], rtol=1e-7, atol=1e-7 * scale, err_msg=name)
    blocked = FactorDeviance(cp, layout).at(d["theta"])
    for key in ("ldL2", "ldRX2", "pwrss"):
        assert getattr(blocked, key) == pytest.approx(ref[key], rel=1e-10, abs=1e-10), key
    np.testing.assert_allclose(blocked.beta(), ref["beta"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(blocked.vcov_unscaled(), ref["vcov"], rtol=1e-9, atol=1e-12)


@given(random_designs(), st.booleans())
def test_every_gradient_equals_finite_differences(d, reml):
    cp, impls = _implementations(d, reml)
    layout = ThetaMap.default(cp.dims)
    impls["dense-pieces"] = lambda th: DenseDeviance.from_cp(cp, layout).profiled(th, reml)
    theta = d["theta"]
    h = 1e-6
    for name, vg in impls.items():
        fd = np.array([(vg(theta + e)[0] - vg(theta - e)[0]) / (2 * h) for e in np.eye(theta.size) * h])
        np.testing.assert_allclose(vg(theta)[1], fd, rtol=1e-4, atol=1e-4 * (1 + np.abs(fd).max()),
                                   err_msg=name)


@given(random_designs(max_terms=1), st.booleans())
def test_cluster_resample_equals_the_dense_evaluator_on_the_copies(d, reml):
    """c_i copies of cluster i, each copy a group of its own, as the expanded data set."""
    rng = d["rng"]
    lk = d["levels"][0]
    counts = rng.integers(0, 3, size=lk)
    counts[0] = max(counts[0], 1)
    blocks = cluster_cross_products(d["codes"][0], d["Xs"][0], lk, d["X"], d["y"])
    obj = ResampleObjective(blocks, counts, np.arange(lk), reml, ThetaMap.default(((d["Xs"][0].shape[1], lk),)))
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
    ref = _dense(cp, ThetaMap.default(cp.dims), d["theta"], reml)
    value, grad = obj.value_and_grad(d["theta"])
    assert value == pytest.approx(ref["value"], rel=1e-10)
    np.testing.assert_allclose(grad, ref["grad"], rtol=1e-7, atol=1e-7 * (1 + np.abs(ref["grad"]).max()))
