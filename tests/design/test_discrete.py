"""Discretized covariates and compressed blocks (pymlm/design/_discrete.py)."""

import numpy as np

from pymlm.design._discrete import DiscreteBlock, default_levels, discretize, discretize_joint


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


def test_block_shape_helpers():
    b = DiscreteBlock(None, np.array([0, 2, 1], dtype=np.int32), None, 3, 4)
    assert b.nrow_u == 4 and b.cols == slice(3, 7)
    assert DiscreteBlock(np.zeros((9, 2)), b.k, None, 0, 2).nrow_u == 9
