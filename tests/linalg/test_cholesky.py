"""The blocked PLS factor equals a dense Cholesky of the whole system."""

import numpy as np
import scipy.sparse as sp
from _designs import random_designs
from hypothesis import given

from pymlm.crossprod import cross_products, term_z
from pymlm.linalg import factorize, plan
from pymlm.linalg.cholesky import GramCache


def _dense_system(d, T_list):
    Z = sp.hstack([term_z(c, Xk, lk) for c, Xk, lk in zip(d["codes"], d["Xs"], d["levels"])]).toarray()
    lam = sp.block_diag([np.kron(np.eye(lk), T) for lk, T in zip(d["levels"], T_list)]).toarray()
    W = np.column_stack([Z @ lam, d["X"], d["y"]])
    A = W.T @ W
    q = Z.shape[1]
    A[:q, :q] += np.eye(q)
    return np.linalg.cholesky(A), q


@given(random_designs())
def test_blocked_factor_equals_dense_cholesky(d):
    cp = cross_products(d["codes"], d["Xs"], d["levels"], d["X"], d["y"])
    struct = plan(cp)
    f = factorize(struct, d["theta"])
    L, q = _dense_system(d, f.Ts)
    p = d["X"].shape[1]
    np.testing.assert_allclose(f.logdet_L, 2 * np.sum(np.log(np.diag(L[:q, :q]))), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(f.pwrss, L[-1, -1] ** 2, rtol=1e-8)
    np.testing.assert_allclose(f.logdet_RX, 2 * np.sum(np.log(np.diag(L[q:q + p, q:q + p]))), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(f.sparse_L().toarray(), L[:q, :q], atol=1e-9)
    beta = np.linalg.solve(L[q:q + p, q:q + p].T, L[-1, q:q + p])
    np.testing.assert_allclose(f.beta(), beta, rtol=1e-8, atol=1e-10)
    u_dense = np.linalg.solve(L[:q, :q].T, L[-1, :q] - L[q:q + p, :q].T @ beta)
    u = f.spherical_u()
    np.testing.assert_allclose(np.concatenate([u[k] for k in range(len(d["codes"]))]), u_dense, atol=1e-8)


@given(random_designs())
def test_diagonal_blocks_of_the_inverse(d):
    cp = cross_products(d["codes"], d["Xs"], d["levels"], d["X"], d["y"])
    f = factorize(plan(cp), d["theta"])
    L, q = _dense_system(d, f.Ts)
    Minv = np.linalg.inv(L[:q, :q] @ L[:q, :q].T)
    blocks = f.minv_diag_blocks()
    sums = f.block_traces()
    start = 0
    for k, (pk, lk) in enumerate(cp.dims):
        for lev in range(lk):
            s = slice(start + lev * pk, start + (lev + 1) * pk)
            np.testing.assert_allclose(blocks[k][lev], Minv[s, s], atol=1e-9)
        np.testing.assert_allclose(sums[k], blocks[k].sum(axis=0), atol=1e-9)
        start += pk * lk


@given(random_designs(max_terms=3))
def test_factor_without_the_cached_product_is_the_same(d):
    cp = cross_products(d["codes"], d["Xs"], d["levels"], d["X"], d["y"])
    struct = plan(cp)
    if struct.gram is None:
        return
    plain = type(struct)(**{**struct.__dict__, "gram": None})
    a, b = factorize(struct, d["theta"]), factorize(plain, d["theta"])
    np.testing.assert_allclose(a.L_D, b.L_D, atol=1e-10)
    np.testing.assert_allclose(a.L_XX, b.L_XX, atol=1e-10)
    for x, y in zip(a.block_traces(), b.block_traces()):
        np.testing.assert_allclose(x, y, atol=1e-9)


def test_gram_cache_is_the_sparse_product():
    rng = np.random.default_rng(0)
    for p in (1, 2):
        A = sp.random(12, 9 * p, density=0.3, random_state=1, format="csc")
        A_DD = np.diag(rng.uniform(1, 2, 12))
        g = GramCache.build(A, A_DD, 9, p)
        C = rng.standard_normal((9, p, p))
        C = C @ np.transpose(C, (0, 2, 1))
        want = A_DD - A @ sp.block_diag(list(C)) @ A.T
        got = np.zeros((12, 12))
        got[g.rows, g.cols] = g.downdated(C)
        np.testing.assert_allclose(np.tril(got), np.tril(want), atol=1e-12)
