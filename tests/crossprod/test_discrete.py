"""Discretized covariates and cross products from compressed blocks."""

import numpy as np
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from pymlm.crossprod import discrete as disc
from pymlm.crossprod.discrete import (
    DiscreteBlock,
    combine_indices,
    crosstab,
    default_levels,
    dense_matrix,
    discretize,
    discretize_joint,
    xbeta,
    xtwx,
    xtwy,
)


def r_seq(a, b, n):
    by = (b - a) / (n - 1)
    out = a + np.arange(n) * by
    out[-1] = b
    return out


def test_few_distinct_values_are_kept_exactly():
    x = np.array([3.0, 1.0, 2.0, 3.0, 1.0, 2.5])
    v, k = discretize(x, m=10)
    assert v.tolist() == [1.0, 2.0, 2.5, 3.0]
    np.testing.assert_array_equal(v[k], x)
    assert k.dtype == np.int32


def test_many_values_are_rounded_to_an_even_grid():
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 5, size=5000)
    v, k = discretize(x, m=50)
    grid = r_seq(x.min(), x.max(), 50)
    # each value goes to its nearest grid point (mgcv's round((x - min) / dx))
    expect = grid[np.rint((x - x.min()) / (grid[1] - grid[0])).astype(int)]
    np.testing.assert_allclose(v[k], expect, rtol=0, atol=0)
    assert len(v) <= 50 and np.all(np.diff(v) > 0)
    assert np.max(np.abs(v[k] - x)) <= (grid[1] - grid[0]) / 2 + 1e-12


def test_large_data_takes_the_sampled_shortcut_and_agrees():
    rng = np.random.default_rng(2)
    x = rng.normal(size=200_000)
    v, k = discretize(x, m=1000)
    grid = r_seq(x.min(), x.max(), 1000)
    np.testing.assert_allclose(v[k], grid[np.rint((x - x.min()) / (grid[1] - grid[0])).astype(int)])
    # an integer covariate with few values is kept exactly even when large
    z = rng.integers(0, 30, size=200_000).astype(float)
    vz, kz = discretize(z)
    np.testing.assert_array_equal(vz[kz], z)


def test_default_levels_follow_mgcv():
    assert [default_levels(d) for d in (1, 2, 3, 4)] == [1000, 100, 25, 25]
    assert default_levels(2, 400) == 21


def test_joint_discretization():
    rng = np.random.default_rng(3)
    x, z = rng.uniform(size=4000), rng.uniform(size=4000)
    vals, k = discretize_joint([x, z], m=100)  # 11 points per covariate
    assert vals.shape[1] == 2 and vals.shape[0] <= 121
    gx, gz = r_seq(x.min(), x.max(), 11), r_seq(z.min(), z.max(), 11)
    np.testing.assert_allclose(vals[k, 0], gx[np.rint((x - x.min()) / (gx[1] - gx[0])).astype(int)])
    np.testing.assert_allclose(vals[k, 1], gz[np.rint((z - z.min()) / (gz[1] - gz[0])).astype(int)])
    a = np.repeat([0.0, 1.0], 50)
    b = np.tile([0.0, 1.0, 2.0, 2.0, 1.0], 20)
    vals, k = discretize_joint([a, b])
    np.testing.assert_array_equal(vals[k], np.column_stack([a, b]))


def test_combine_indices_and_crosstab():
    ka = np.array([0, 1, 1, 2, 0])
    kb = np.array([1, 0, 0, 1, 1])
    combos, idx = combine_indices([ka, kb], [3, 2])
    np.testing.assert_array_equal(combos[idx], np.column_stack([ka, kb]))
    assert combos.shape[0] == 3
    C = crosstab(ka.astype(np.int32), kb.astype(np.int32), 3, 2, np.array([1.0, 2, 3, 4, 5]))
    np.testing.assert_array_equal(C, [[0, 6], [5, 0], [0, 4]])


def _random_blocks(rng, n):
    """Blocks of every kind: parametric (full rows), dense Xu, identity Xu with a multiplier,
    sparse Xu, and two blocks sharing one index vector."""
    p0 = 2
    Xp = np.column_stack([np.ones(n), rng.normal(size=n)])
    u1 = 7
    k1 = rng.integers(0, u1, n).astype(np.int32)
    X1 = rng.normal(size=(u1, 4))
    u2 = 5
    k2 = rng.integers(0, u2, n).astype(np.int32)
    by2 = rng.normal(size=n)
    u3 = 6
    k3 = rng.integers(0, u3, n).astype(np.int32)
    X3 = sp.random(u3, 9, density=0.4, random_state=4, format="csr")
    X4 = rng.normal(size=(u1, 3))  # shares k1
    blocks = [DiscreteBlock(Xp, None, None, 0, p0)]
    at = p0
    for Xu, k, by, m in ((X1, k1, None, 4), (None, k2, by2, u2), (X3, k3, None, 9), (X4, k1, rng.normal(size=n), 3)):
        blocks.append(DiscreteBlock(Xu, k, by, at, m))
        at += m
    return blocks, at


@given(st.integers(min_value=1, max_value=10_000), st.booleans())
def test_compressed_cross_products_equal_dense(seed, weighted):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    blocks, p = _random_blocks(rng, n)
    X = dense_matrix(blocks, n, p)
    w = rng.uniform(0.1, 3.0, size=n) if weighted else None
    y = rng.normal(size=n)
    W = np.ones(n) if w is None else w
    np.testing.assert_allclose(xtwx(blocks, w, p), X.T @ (W[:, None] * X), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(xtwy(blocks, w, y, p), X.T @ (W * y), rtol=1e-10, atol=1e-9)
    beta = rng.normal(size=p)
    np.testing.assert_allclose(xbeta(blocks, beta, n), X @ beta, rtol=1e-10, atol=1e-10)


def test_sparse_crosstab_path_equals_dense_path(monkeypatch):
    rng = np.random.default_rng(9)
    n = 400
    blocks, p = _random_blocks(rng, n)
    dense_result = xtwx(blocks, None, p)
    monkeypatch.setattr(disc, "DENSE_CELLS", 0)
    np.testing.assert_allclose(xtwx(blocks, None, p), dense_result, rtol=1e-12, atol=1e-10)


def test_discretized_xtwx_equals_dense_xtwx_when_nothing_is_rounded():
    """A smooth's compressed X'WX equals the dense one when every value is kept."""
    from pymlm.formula import parse_formula
    from pymlm.smooth import construct_smooth, parse_smooth

    rng = np.random.default_rng(5)
    x = np.round(rng.uniform(size=3000), 2)  # 101 distinct values < m: nothing is rounded
    v, k = discretize(x)
    np.testing.assert_array_equal(v[k], x)
    spec = parse_smooth(parse_formula('y ~ s(x, bs = "cr", k = 8)').smooths[0].node)
    (term,) = construct_smooth(spec, [x])
    Xd = term.matrix([x])
    blocks = [DiscreteBlock(np.ones((3000, 1)), None, None, 0, 1), DiscreteBlock(term.matrix([v]), k, None, 1, 7)]
    X = np.hstack([np.ones((3000, 1)), Xd])
    w = rng.uniform(0.5, 2, size=3000)
    np.testing.assert_allclose(xtwx(blocks, w, 8), X.T @ (w[:, None] * X), rtol=1e-11, atol=1e-9)


def test_block_shape_helpers():
    b = DiscreteBlock(None, np.array([0, 2, 1], dtype=np.int32), None, 3, 4)
    assert b.nrow_u == 4 and b.cols == slice(3, 7)
    assert DiscreteBlock(np.zeros((9, 2)), b.k, None, 0, 2).nrow_u == 9
