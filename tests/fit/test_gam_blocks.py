"""Block-by-block elimination and diagonal penalties give the dense results (pymlm/fit/_gam_reml.py).

A factor smooth's block of ``X'WX + S`` is block diagonal, one block per
level; :func:`_solve` eliminates it level by level. Diagonal penalty blocks
compute ``log|S|_+`` and the REML derivatives from their diagonals. Both must
equal the dense computations to rounding.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pymlm as ml
from pymlm.crossprod import CrossStats
from pymlm.design._gam_penalty import LinearPenalty
from pymlm.fit._gam_reml import _solve, evaluate


def _structured(seed: int, nb: int, q: int, pd_: int, start: int):
    """An SPD matrix whose segment start : start + nb q is block diagonal (nb blocks of q)."""
    rng = np.random.default_rng(seed)
    size = nb * q
    p = size + pd_
    Xd = rng.normal(size=(5 * p, pd_))
    level = rng.integers(0, nb, size=5 * p)
    Xb = np.zeros((5 * p, size))
    base = rng.normal(size=(5 * p, q))
    for i in range(5 * p):
        Xb[i, level[i] * q:(level[i] + 1) * q] = base[i]
    X = np.hstack([Xd[:, :start], Xb, Xd[:, start:]])
    A = X.T @ X + 0.1 * np.eye(p)
    return A, rng.normal(size=p)


@given(seed=st.integers(0, 1000), nb=st.integers(1, 40), q=st.integers(1, 6), pd_=st.integers(0, 5),
       front=st.booleans())
def test_block_elimination_equals_the_dense_cholesky(seed, nb, q, pd_, front):
    start = 0 if front else pd_ // 2
    A, f = _structured(seed, nb, q, pd_, start)
    import pymlm.fit._gam_reml as reml

    dense = _solve(A, f)
    old = reml.BLOCK_MIN
    try:
        reml.BLOCK_MIN = 1
        blocked = _solve(A, f, (start, nb, q))
    finally:
        reml.BLOCK_MIN = old
    np.testing.assert_allclose(blocked[0], dense[0], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(blocked[1], dense[1], rtol=1e-9, atol=1e-11)
    assert blocked[2] == pytest.approx(dense[2], rel=1e-11, abs=1e-9)
    assert blocked[3] == dense[3]


def test_a_segment_that_is_not_block_diagonal_takes_the_dense_path():
    A, f = _structured(1, 60, 4, 3, 0)
    A[0, 10] = A[10, 0] = 0.5  # couples level 1 and level 3
    dense = _solve(A, f)
    blocked = _solve(A, f, (0, 60, 4))
    np.testing.assert_array_equal(blocked[0], dense[0])
    np.testing.assert_array_equal(blocked[1], dense[1])


def test_diagonal_penalties_give_the_dense_reml_derivatives():
    """evaluate() with diagonal penalty blocks equals it with the same blocks rotated (dense)."""
    rng = np.random.default_rng(4)
    nb, q, p0 = 30, 3, 4
    size = nb * q
    A, f = _structured(2, nb, q, p0, 0)
    S1 = np.diag(np.tile([2.0, 1.0, 0.0], nb))
    S2 = np.diag(np.tile([0.0, 0.0, 1.0], nb))
    p = size + p0
    stats = CrossStats(A, f, float(f @ f) * 3 + 50.0, 400, (0, nb, q))
    pens = [LinearPenalty(0, [S1, S2], 0)]
    assert pens[0].diagonal
    # the same penalties in a rotated basis are dense: evaluate the rotated problem
    Q, _ = np.linalg.qr(rng.normal(size=(size, size)))
    T = np.eye(p)
    T[:size, :size] = Q
    rstats = CrossStats(T.T @ A @ T, T.T @ f, stats.zWz, stats.n)
    rpens = [LinearPenalty(0, [Q.T @ S1 @ Q, Q.T @ S2 @ Q], 0)]
    assert not rpens[0].diagonal
    for rho in ([0.0, 0.0], [1.5, -2.0], [-3.0, 4.0]):
        a = evaluate(np.array(rho), stats, pens)
        b = evaluate(np.array(rho), rstats, rpens)
        assert a.score == pytest.approx(b.score, rel=1e-10)
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(a.hess, b.hess, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(T @ b.beta, a.beta, rtol=1e-8, atol=1e-10)


def test_an_fs_fit_is_the_same_with_and_without_block_elimination(monkeypatch):
    import pymlm.fit._gam_reml as reml

    df = ml.datasets.load("gamsim_re").iloc[:3000]
    formula = "y ~ s(x1) + s(x0, g, bs = 'fs', k = 4)"
    blocked = ml.gam(formula, df, progress=False)
    assert blocked.design.blockdiag[1] * blocked.design.blockdiag[2] >= reml.BLOCK_MIN
    monkeypatch.setattr(reml, "BLOCK_MIN", 10**9)
    dense = ml.gam(formula, df, progress=False)
    assert blocked.reml_score == pytest.approx(dense.reml_score, rel=1e-11)
    np.testing.assert_allclose(blocked.edf, dense.edf, atol=1e-7)
    np.testing.assert_allclose(blocked.coef, dense.coef, atol=1e-7)
    np.testing.assert_allclose(np.diag(blocked.vcov), np.diag(dense.vcov), rtol=1e-7)
