"""Discretized covariates and X'WX from compressed model matrices (mgcv's ``bam(discrete = TRUE)``).

A covariate with more than ``m`` distinct values is rounded to the nearest of
``m`` evenly spaced points between its minimum and maximum (mgcv's
``compress.df``: ``m = 1000`` for one covariate, 100 per covariate for two,
25 for three or more); otherwise its distinct values are kept. A term's
model matrix is then stored as the matrix ``Xu`` of its ``u`` distinct rows
plus an index vector ``k`` (length n), and an optional row multiplier
``by`` (a numeric ``by`` variable, the indicator of a factor ``by`` level,
or a random slope's covariate):

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

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "DiscreteBlock",
    "default_levels",
    "discretize",
    "discretize_joint",
    "combine_indices",
    "crosstab",
    "xtwx",
    "xtwy",
    "xbeta",
]

#: Cross-tabulations with at most this many cells are formed densely.
DENSE_CELLS = 4_000_000
#: Rows sampled to decide cheaply that a covariate has more than m values.
_PROBE = 20_000


def default_levels(d: int, m: int | None = None) -> int:
    """Grid points per covariate for a term with ``d`` covariates (mgcv's rule).

    Examples
    --------
    >>> default_levels(1), default_levels(2), default_levels(3), default_levels(2, 1000)
    (1000, 100, 25, 33)
    """
    if m is None:
        return 1000 if d == 1 else (100 if d == 2 else 25)
    return int(m) if d == 1 else int(round(m ** (1.0 / d))) + 1


def _r_seq(start: float, stop: float, n: int) -> np.ndarray:
    if n == 1:
        return np.array([float(start)])
    out = start + np.arange(n, dtype=float) * ((stop - start) / (n - 1))
    out[-1] = stop
    return out


def _few_values(x: np.ndarray, m: int) -> bool:
    """True when x may have at most m distinct values (checked on a strided sample first)."""
    n = x.shape[0]
    if n <= m:
        return True
    if n > 4 * _PROBE:
        probe = x[:: n // _PROBE]
        if pd.unique(probe).shape[0] > m:
            return False
    return pd.unique(x).shape[0] <= m


def _exact(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(x, sort=True)
    return np.asarray(uniques, dtype=float), codes.astype(np.int32)


def _grid_index(x: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest of m evenly spaced points between min and max: (grid, index into grid)."""
    lo, hi = float(np.min(x)), float(np.max(x))
    grid = _r_seq(lo, hi, m)
    dx = grid[1] - grid[0]
    if dx <= 0:
        return grid[:1], np.zeros(x.shape[0], dtype=np.int32)
    idx = np.rint((x - lo) / dx).astype(np.int32)
    np.clip(idx, 0, m - 1, out=idx)
    return grid, idx


def _compact(idx: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Occupied cells of an index in [0, size): (occupied cell ids, new index into them)."""
    if size <= 8 * idx.shape[0] + 1_000_000:
        present = np.bincount(idx, minlength=size) > 0
        cells = np.flatnonzero(present)
        remap = np.cumsum(present, dtype=np.int64) - 1
        return cells, remap[idx].astype(np.int32)
    cells, inverse = np.unique(idx, return_inverse=True)
    return cells, inverse.astype(np.int32).ravel()


def discretize(x, m: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Compress one numeric covariate as mgcv's ``bam(discrete = TRUE)`` does.

    Parameters
    ----------
    x : array-like, shape (n,)
    m : int
        Largest number of distinct values kept.

    Returns
    -------
    values : ndarray, shape (u,)
        The distinct (possibly rounded) values, increasing; ``u <= m``.
    index : ndarray of int32, shape (n,)
        ``values[index]`` is the compressed covariate.

    Examples
    --------
    >>> v, k = discretize([0.3, 0.1, 0.3, 0.2])
    >>> v.tolist(), k.tolist()
    ([0.1, 0.2, 0.3], [2, 0, 2, 1])
    >>> v, k = discretize(np.linspace(0, 1, 101), m=11)
    >>> v.shape[0], float(v[k][7])
    (11, 0.1)
    """
    x = np.asarray(x, dtype=float)
    if _few_values(x, m):
        return _exact(x)
    grid, idx = _grid_index(x, m)
    cells, index = _compact(idx, grid.shape[0])
    return grid[cells], index


def discretize_joint(cols: list, m: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Compress several numeric covariates jointly (mgcv's rule for a multi-covariate term).

    The distinct rows are kept when there are at most ``m_d ** d`` of them
    (``m_d = default_levels(d, m)``); otherwise every covariate is rounded to
    its own ``m_d``-point grid first.

    Returns
    -------
    values : ndarray, shape (u, d)
    index : ndarray of int32, shape (n,)
    """
    X = np.column_stack([np.asarray(c, dtype=float) for c in cols])
    d = X.shape[1]
    md = default_levels(d, m)
    codes, uniques = zip(*(pd.factorize(X[:, j], sort=True) for j in range(d)))
    sizes = [len(u) for u in uniques]
    combos, index = combine_indices([c.astype(np.int64) for c in codes], sizes)
    if combos.shape[0] <= md**d:
        vals = np.column_stack([np.asarray(uniques[j], dtype=float)[combos[:, j]] for j in range(d)])
        return vals, index
    grids, idxs = zip(*(_grid_index(X[:, j], md) for j in range(d)))
    combos, index = combine_indices(list(idxs), [g.shape[0] for g in grids])
    vals = np.column_stack([grids[j][combos[:, j]] for j in range(d)])
    return vals, index


def combine_indices(indices: list[np.ndarray], sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct combinations of several index vectors.

    Parameters
    ----------
    indices : list of int arrays, each (n,)
    sizes : list of int
        The range of each index.

    Returns
    -------
    combos : ndarray of int, shape (u, len(indices))
        The occupied combinations.
    index : ndarray of int32, shape (n,)
        Row of ``combos`` for each observation.
    """
    key = np.zeros(indices[0].shape[0], dtype=np.int64)
    for k, s in zip(indices, sizes):
        key = key * s + k
    size = int(np.prod(sizes))
    cells, index = _compact(key, size) if size < 2**31 else np.unique(key, return_inverse=True)
    cells = np.asarray(cells, dtype=np.int64)
    combos = np.empty((cells.shape[0], len(sizes)), dtype=np.int64)
    rem = cells.copy()
    for j in range(len(sizes) - 1, -1, -1):
        combos[:, j] = rem % sizes[j]
        rem //= sizes[j]
    return combos, np.asarray(index, dtype=np.int32).ravel()


@dataclass(frozen=True, eq=False)
class DiscreteBlock:
    """Columns ``start:start+ncol`` of X in compressed form: ``X[i] = by[i] * Xu[k[i]]``.

    Attributes
    ----------
    Xu : ndarray (u, p), scipy.sparse matrix (u, p) or None
        The distinct rows; ``None`` is the identity (``u == p``: each index
        value is its own column, as for a factor's dummy coding).
    k : ndarray of int32, shape (n,) or None
        Row of ``Xu`` per observation; ``None`` when ``Xu`` has the n rows
        itself (parametric columns).
    by : ndarray, shape (n,) or None
        Row multiplier.
    start, ncol : int
        Where the block's columns sit in the full model matrix.
    """

    Xu: object
    k: np.ndarray | None
    by: np.ndarray | None
    start: int
    ncol: int

    @property
    def nrow_u(self) -> int:
        if self.Xu is None:
            return self.ncol
        return self.Xu.shape[0]

    @property
    def cols(self) -> slice:
        return slice(self.start, self.start + self.ncol)


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
