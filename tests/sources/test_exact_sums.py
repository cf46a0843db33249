"""Exact integer cross-products: any split of the rows gives the same bits, close to the float sums."""

import numpy as np

from pymlm.crossprod import cross_products
from pymlm.crossprod._exact import (
    ExactPartial,
    batch_scales,
    exact_partial,
    max_scales,
    power_scale,
)
from pymlm.design import BatchArrays


def _arrays(rng, n, weights):
    X = np.column_stack([np.ones(n), rng.standard_normal(n) * 1e3, rng.exponential(size=n) * 1e-4])
    y = rng.standard_normal(n)
    codes = [rng.integers(0, 40, n), rng.integers(0, 6, n)]
    Xs = [np.column_stack([np.ones(n), X[:, 1]]), np.ones((n, 1))]
    w = rng.uniform(0.2, 3.0, n) if weights else None
    return BatchArrays(y, X, codes, Xs, w)


def _rows(a, idx):
    return BatchArrays(a.y[idx], a.X[idx], [c[idx] for c in a.codes], [x[idx] for x in a.Xs],
                       None if a.weights is None else a.weights[idx])


def _exact(a, splits, dims, groups):
    parts = [_rows(a, idx) for idx in splits]
    sc = batch_scales(a, groups)
    scales = {k: ([power_scale(v) for v in sc[k]] if isinstance(sc[k], list) else power_scale(sc[k])) for k in sc}
    total = ExactPartial.empty(dims, a.X.shape[1])
    for part in parts:
        total = total + exact_partial(part, groups, dims, scales)
    return total.cross_products(scales, a.weights is not None)[0]


def test_any_split_gives_the_same_bits_and_the_float_sums(seed=0):
    rng = np.random.default_rng(seed)
    groups, dims = [[0], [1]], ((2, 40), (1, 6))
    for weights in (False, True):
        a = _arrays(rng, 3000, weights)
        one = _exact(a, [np.arange(3000)], dims, groups)
        perm = rng.permutation(3000)
        many = _exact(a, np.array_split(perm, 7), dims, groups)
        other = _exact(a, np.array_split(perm[::-1], 2)[::-1], dims, groups)
        for cp in (many, other):
            assert cp.xyxy.tobytes() == one.xyxy.tobytes() and cp.n == one.n
            assert cp.sum_log_w == one.sum_log_w
            for k in range(2):
                assert cp.zz_diag[k].tobytes() == one.zz_diag[k].tobytes()
                assert cp.zxy[k].tobytes() == one.zxy[k].tobytes()
            assert (cp.zz_off[(1, 0)] != one.zz_off[(1, 0)]).nnz == 0
        ref = cross_products(a.codes, a.Xs, [40, 6], a.X, a.y, weights=a.weights)
        np.testing.assert_allclose(one.dense(), ref.dense(), rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(one.sum_log_w, ref.sum_log_w, rtol=1e-12)
        assert (one.incidence[(1, 0)] != ref.incidence[(1, 0)]).nnz == 0


def test_scales_are_powers_of_two_covering_the_values():
    m = np.array([0.0, 1.0, 3.0, 4.0, 1e-300, 7.5e12])
    s = power_scale(m)
    assert np.all(s >= m) and np.all(np.log2(s) == np.round(np.log2(s)))
    np.testing.assert_array_equal(s[:4], [1.0, 1.0, 4.0, 4.0])
    a = {"xy": np.array([1.0, 5.0]), "wxy": np.array([2.0, 1.0]), "re": [np.array([3.0])],
         "wre": [np.array([0.5])], "logw": np.zeros(1)}
    b = max_scales(a, {**a, "xy": np.array([4.0, 2.0])})
    np.testing.assert_array_equal(b["xy"], [4.0, 5.0])
