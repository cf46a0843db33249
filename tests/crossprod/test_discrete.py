"""Cross products from compressed blocks (pymlm/crossprod/discrete.py)."""

import numpy as np
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from pymlm.crossprod import discrete as disc
from pymlm.crossprod.discrete import crosstab, dense_matrix, xbeta, xtwx, xtwy
from pymlm.design._discrete import DiscreteBlock, combine_indices, discretize


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
