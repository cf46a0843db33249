"""X'WX, X'Wy and X beta from compressed model matrices (mgcv's ``bam(discrete = TRUE)``).

A term's columns are stored as a :class:`~pymlm.design._discrete.DiscreteBlock`:
the matrix ``Xu`` of its ``u`` distinct rows, an index vector ``k`` (length
n) and an optional row multiplier ``by`` (built from discretized covariates
with the design, :mod:`pymlm.design._discrete`),

    X[i, :] = by[i] * Xu[k[i], :].

For two such blocks ``a`` and ``b`` and weights ``w``,

    X_a' W X_b = Xu_a' C_ab Xu_b,   C_ab[s, t] = sum over {i: k_a[i] = s, k_b[i] = t}
                                                 of w[i] by_a[i] by_b[i],

so the n-row model matrix is never formed: ``C_ab`` is a cross-tabulation of
index pairs (``numpy.bincount`` of ``k_a * u_b + k_b``, O(n)), and the rest
costs O(u_a u_b (p_a + p_b)). When both blocks share one index vector ``C`` is
diagonal. A block whose ``k`` is ``None`` holds its full n-row matrix (the
parametric columns), crossed with indexed blocks by one ``bincount`` per
column. ``X'Wy`` is ``Xu' bincount(k, w by y)``, and ``X beta`` is a gather
of ``Xu beta``.

References
----------
Wood, S. N., Goude, Y. & Shaw, S. (2015). Generalized additive models for
large data sets. JRSS C 64(1), 139-155.
Wood, S. N., Li, Z., Shaddick, G. & Augustin, N. H. (2017). Generalized
additive models for gigadata: modelling the UK black smoke network daily
data. JASA 112(519), 1199-1210.
Li, Z. & Wood, S. N. (2020). Faster model matrix crossproducts for large
generalized linear models with discretized covariates. Statistics and
Computing 30, 19-25.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..design._discrete import DiscreteBlock

__all__ = ["crosstab", "dense_matrix", "xbeta", "xtwx", "xtwy"]

#: Cross-tabulations with at most this many cells are formed densely.
DENSE_CELLS = 4_000_000


def crosstab(ka: np.ndarray, kb: np.ndarray, ua: int, ub: int, w: np.ndarray | None = None):
    """Summed weights of index pairs: ``C[s, t] = sum of w[i] over {k_a[i] = s, k_b[i] = t}``.

    Returns a dense (ua, ub) array when it has at most :data:`DENSE_CELLS`
    cells, else a CSR matrix.

    Examples
    --------
    >>> crosstab(np.array([0, 1, 1]), np.array([1, 0, 0]), 2, 2).tolist()
    [[0.0, 1.0], [2.0, 0.0]]
    """
    if ua * ub <= DENSE_CELLS:
        key = ka.astype(np.int64) * ub + kb
        C = np.bincount(key, weights=w, minlength=ua * ub)
        return C.astype(float, copy=False).reshape(ua, ub)
    data = np.ones(ka.shape[0]) if w is None else w
    return sp.csr_matrix((data, (ka, kb)), shape=(ua, ub))


def _mult(*vs):
    out = None
    for v in vs:
        if v is not None:
            out = v if out is None else out * v
    return out


def _left(Xu, M):
    """Xu' M (Xu None: identity)."""
    if Xu is None:
        return M
    if sp.issparse(Xu):
        out = Xu.T @ M
        return out.toarray() if sp.issparse(out) else np.asarray(out)
    if sp.issparse(M):
        return np.asarray((M.T @ Xu).T)
    return Xu.T @ M


def _right(M, Xu):
    """M Xu (Xu None: identity)."""
    if Xu is None:
        return M.toarray() if sp.issparse(M) else M
    if sp.issparse(M):
        out = M @ Xu
        return out.toarray() if sp.issparse(out) else np.asarray(out)
    if sp.issparse(Xu):
        return np.asarray((Xu.T @ M.T).T)
    return M @ Xu


def _grouped_columns(k: np.ndarray, u: int, X: np.ndarray, v: np.ndarray | None) -> np.ndarray:
    """G[s, j] = sum over {i: k[i] = s} of v[i] X[i, j], shape (u, p)."""
    p = X.shape[1]
    if p <= 8:
        G = np.empty((u, p))
        for j in range(p):  # p is a handful of parametric columns, never the data size
            col = X[:, j] if v is None else v * X[:, j]
            G[:, j] = np.bincount(k, weights=col, minlength=u)
        return G
    n = k.shape[0]
    K = sp.csr_matrix((np.ones(n) if v is None else v, (k, np.arange(n))), shape=(u, n))
    return np.asarray(K @ X)


def _cross(a: DiscreteBlock, b: DiscreteBlock, w: np.ndarray | None) -> np.ndarray:
    """X_a' W X_b for two blocks, shape (a.ncol, b.ncol)."""
    if a is b:
        v = _mult(w, a.by, a.by)
        if a.k is None:
            Xa = a.Xu if v is None else a.Xu * v[:, None]
            return Xa.T @ a.Xu
        c = np.bincount(a.k, weights=v, minlength=a.nrow_u).astype(float)
        if a.Xu is None:
            return np.diag(c)
        if sp.issparse(a.Xu):
            out = a.Xu.T @ sp.diags(c) @ a.Xu
            return out.toarray()
        return a.Xu.T @ (c[:, None] * a.Xu)
    v = _mult(w, a.by, b.by)
    if a.k is None and b.k is None:
        Xa = a.Xu if v is None else a.Xu * v[:, None]
        return Xa.T @ b.Xu
    if a.k is None:
        G = _grouped_columns(b.k, b.nrow_u, a.Xu, v)  # (u_b, p_a)
        return _left(b.Xu, G).T
    if b.k is None:
        G = _grouped_columns(a.k, a.nrow_u, b.Xu, v)  # (u_a, p_b)
        return _left(a.Xu, G)
    if a.k is b.k:
        c = np.bincount(a.k, weights=v, minlength=a.nrow_u).astype(float)
        C = sp.diags(c).tocsr()
    else:
        C = crosstab(a.k, b.k, a.nrow_u, b.nrow_u, v)
    return _right(_left(a.Xu, C), b.Xu)


def xtwx(blocks: list[DiscreteBlock], w: np.ndarray | None, p: int, out: np.ndarray | None = None) -> np.ndarray:
    """``X'WX`` (p, p) from compressed blocks; ``w`` None means unit weights.

    Examples
    --------
    >>> k = np.array([0, 1, 1, 2], dtype=np.int32)
    >>> b = [DiscreteBlock(None, None, None, 0, 0), DiscreteBlock(np.eye(3), k, None, 0, 3)][1:]
    >>> xtwx(b, None, 3).diagonal().tolist()
    [1.0, 2.0, 1.0]
    """
    if out is None:
        out = np.zeros((p, p))
    for i, a in enumerate(blocks):
        for b in blocks[i:]:
            G = _cross(a, b, w)
            out[a.cols, b.cols] += G
            if b is not a:
                out[b.cols, a.cols] += G.T
    return out


def xtwy(blocks: list[DiscreteBlock], w: np.ndarray | None, y: np.ndarray, p: int) -> np.ndarray:
    """``X'Wy`` (p,) from compressed blocks."""
    out = np.zeros(p)
    for a in blocks:
        v = _mult(w, a.by, y)
        if a.k is None:
            out[a.cols] += a.Xu.T @ v
        else:
            t = np.bincount(a.k, weights=v, minlength=a.nrow_u)
            out[a.cols] += _left(a.Xu, t[:, None])[:, 0]
    return out


def xbeta(blocks: list[DiscreteBlock], beta: np.ndarray, n: int) -> np.ndarray:
    """``X beta`` (n,) from compressed blocks, without forming X."""
    eta = np.zeros(n)
    for a in blocks:
        b = beta[a.cols]
        if a.k is None:
            part = a.Xu @ b
        else:
            ub = b if a.Xu is None else np.asarray(a.Xu @ b).ravel()
            part = ub[a.k]
        if a.by is not None:
            part = part * a.by
        eta += part
    return eta


def dense_matrix(blocks: list[DiscreteBlock], n: int, p: int, rows=None) -> np.ndarray:
    """The full model matrix (rows ``rows`` only), for tests and small problems."""
    rows = np.arange(n) if rows is None else np.asarray(rows)
    X = np.zeros((rows.shape[0], p))
    for a in blocks:
        if a.k is None:
            part = np.asarray(a.Xu)[rows]
        elif a.Xu is None:
            part = np.eye(a.ncol)[a.k[rows]]
        else:
            Xu = a.Xu.toarray() if sp.issparse(a.Xu) else a.Xu
            part = Xu[a.k[rows]]
        if a.by is not None:
            part = part * a.by[rows][:, None]
        X[:, a.cols] += part
    return X
