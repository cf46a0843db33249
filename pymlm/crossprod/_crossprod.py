"""The blocks of [Z X y]' W [Z X y]: everything the Gaussian fitter needs.

Every block is a sum over rows, so the cross-products of a data set equal the
sum of those of any split of its rows (chunks, Dask partitions, sites):
``cross_products(whole) == sum(cross_products(part) for part in parts)``.
After one pass a fit costs nothing that grows with the number of rows.

Layout (term ``k`` has ``p_k`` coefficients per level and ``l_k`` levels,
``q_k = p_k l_k``; ``p`` fixed-effect columns; the response is column ``p`` of
``Xy``):

- ``zz_diag[k]``: ``(l_k, p_k, p_k)``, the diagonal blocks of Z_k'WZ_k
  (one block per level: every row belongs to exactly one level);
- ``zz_off[(j, m)]``, ``j > m``: sparse ``(q_j, q_m)``, Z_j'WZ_m;
- ``incidence[(j, m)]``: sparse ``(l_j, l_m)`` counts of rows shared by each
  pair of levels (decides nesting, hence the factorization's structure);
- ``zxy[k]``: ``(l_k, p_k, p + 1)``, Z_k'W[X y] per level;
- ``xyxy``: ``(p + 1, p + 1)``, [X y]'W[X y].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

__all__ = ["CrossProducts", "cross_products", "term_z"]


@dataclass(frozen=True, eq=False)
class CrossProducts:
    """Additive sufficient statistics of a linear mixed model.

    Attributes
    ----------
    dims : tuple of (p_k, l_k)
        Coefficients per level and number of levels of each random term.
    p : int
        Number of fixed-effect columns.
    n : float
        Number of observations (rows with positive weight, times frequency weights).
    sum_log_w : float
        Sum over observations of the log prior weights (0 without weights).
    zz_diag, zz_off, incidence, zxy, xyxy
        See the module docstring.
    """

    dims: tuple[tuple[int, int], ...]
    p: int
    n: float
    sum_log_w: float
    zz_diag: tuple[np.ndarray, ...]
    zz_off: dict = field(default_factory=dict)
    incidence: dict = field(default_factory=dict)
    zxy: tuple[np.ndarray, ...] = ()
    xyxy: np.ndarray = field(default_factory=lambda: np.zeros((1, 1)))

    @property
    def n_terms(self) -> int:
        return len(self.dims)

    @property
    def q(self) -> int:
        return int(sum(p * l for p, l in self.dims))

    def add(self, other: "CrossProducts") -> "CrossProducts":
        """The cross-products of the union of two row sets.

        Raises
        ------
        ValueError
            The two come from different model structures.
        """
        if self.dims != other.dims or self.p != other.p:
            raise ValueError(
                f"cannot add cross-products of different models: dims {self.dims} / p={self.p} "
                f"vs {other.dims} / p={other.p}"
            )
        keys = set(self.zz_off) | set(other.zz_off)
        off = {k: _add_sparse(self.zz_off.get(k), other.zz_off.get(k)) for k in keys}
        inc = {k: _add_sparse(self.incidence.get(k), other.incidence.get(k)) for k in keys}
        return CrossProducts(
            dims=self.dims,
            p=self.p,
            n=self.n + other.n,
            sum_log_w=self.sum_log_w + other.sum_log_w,
            zz_diag=tuple(a + b for a, b in zip(self.zz_diag, other.zz_diag)),
            zz_off=off,
            incidence=inc,
            zxy=tuple(a + b for a, b in zip(self.zxy, other.zxy)),
            xyxy=self.xyxy + other.xyxy,
        )

    __add__ = add

    def dense(self) -> np.ndarray:
        """The whole ``(q + p + 1)`` square matrix, dense (for tests on small models)."""
        sizes = [p * l for p, l in self.dims]
        offs = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        q = int(offs[-1])
        out = np.zeros((q + self.p + 1, q + self.p + 1))
        for k, (p, l) in enumerate(self.dims):
            s = slice(offs[k], offs[k + 1])
            out[s, s] = sp.block_diag(list(self.zz_diag[k])).toarray() if l else 0
            out[s, q:] = self.zxy[k].reshape(p * l, self.p + 1)
            out[q:, s] = out[s, q:].T
        for (j, m), blk in self.zz_off.items():
            out[offs[j]:offs[j + 1], offs[m]:offs[m + 1]] = blk.toarray()
            out[offs[m]:offs[m + 1], offs[j]:offs[j + 1]] = blk.toarray().T
        out[q:, q:] = self.xyxy
        return out


def _add_sparse(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return (a + b).tocsr()


def term_z(codes: np.ndarray, X: np.ndarray, nlevels: int) -> sp.csr_matrix:
    """One term's block of Z as CSR ``(n, p * nlevels)``: row i holds X[i] at
    columns ``codes[i] * p .. codes[i] * p + p - 1``."""
    n, p = X.shape
    indptr = np.arange(0, n * p + 1, p, dtype=np.int64)
    indices = (codes.astype(np.int64)[:, None] * p + np.arange(p)).ravel()
    return sp.csr_matrix((np.ascontiguousarray(X).ravel(), indices, indptr), shape=(n, p * nlevels))


def _chunk(codes_list, Xs, X, y, w, levels, p):
    """Cross-products of one chunk of rows (all arrays already sliced); ``w`` None means unit weights."""
    n = y.shape[0]
    if sp.issparse(X):
        Xy = sp.hstack([X, sp.csr_matrix(y[:, None])], format="csr")
        WXy = Xy if w is None else sp.diags(w) @ Xy
        xyxy = (Xy.T @ WXy).toarray()
    else:
        Xy = np.empty((n, p + 1))
        Xy[:, :p] = X
        Xy[:, p] = y
        if w is None:
            WXy = Xy
            # symmetric rank-k update: half the flops of a general product
            low = sla.blas.dsyrk(1.0, Xy, trans=1, lower=1)
            xyxy = low + np.tril(low, -1).T
        else:
            WXy = Xy * w[:, None]
            xyxy = Xy.T @ WXy
    Zs = [term_z(c, Xk, lk) for c, Xk, lk in zip(codes_list, Xs, levels)]
    zz_diag, zxy = [], []
    for Z, Xk, lk in zip(Zs, Xs, levels):
        pk = Xk.shape[1]
        zz_diag.append(np.asarray(Z.T @ (Xk if w is None else Xk * w[:, None])).reshape(lk, pk, pk))
        prod = Z.T @ WXy
        prod = prod.toarray() if sp.issparse(prod) else np.asarray(prod)
        zxy.append(prod.reshape(lk, pk, p + 1))
    off, inc = {}, {}
    for j in range(len(Zs)):
        for m in range(j):
            WZm = Zs[m] if w is None else Zs[m].multiply(w[:, None]).tocsr()
            off[(j, m)] = (Zs[j].T @ WZm).tocsr()
            cj, cm = (codes_list[j], codes_list[m]) if w is None else (codes_list[j][w > 0], codes_list[m][w > 0])
            inc[(j, m)] = sp.csr_matrix((np.ones(cj.size), (cj, cm)), shape=(levels[j], levels[m]))
    return zz_diag, off, inc, zxy, xyxy


def cross_products(codes_list, Xs, levels, X, y, weights=None, freq_weights=None,
                   chunk_size: int = 500_000) -> CrossProducts:
    """Accumulate the cross-product blocks of a mixed model, chunk by chunk.

    Parameters
    ----------
    codes_list : sequence of ndarray (n,)
        Level codes of each random term (lme4's term order).
    Xs : sequence of ndarray (n, p_k)
        Raw model matrix of each term's left-hand side.
    levels : sequence of int
        Number of levels of each term.
    X : ndarray (n, p) or sparse
        Fixed-effects model matrix.
    y : ndarray (n,)
        Response (minus any offset).
    weights : ndarray (n,), optional
        Prior (precision) weights, as lme4's ``weights``.
    freq_weights : ndarray (n,), optional
        Frequency weights: an integer weight k counts the row k times.
    chunk_size : int
        Rows per chunk; bounds the temporary memory.

    Returns
    -------
    CrossProducts
    """
    n = y.shape[0]
    p = X.shape[1]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    fw = np.ones(n) if freq_weights is None else np.asarray(freq_weights, dtype=float)
    wt = None if weights is None and freq_weights is None else w * fw
    pos = w > 0
    n_eff = float(fw[pos].sum())
    sum_log_w = float(np.sum(fw[pos] * np.log(w[pos]))) if weights is not None else 0.0
    dims = tuple((Xk.shape[1], int(lk)) for Xk, lk in zip(Xs, levels))
    total = None
    for s in range(0, max(n, 1), chunk_size):
        e = min(n, s + chunk_size)
        Xc = X[s:e]
        parts = _chunk([c[s:e] for c in codes_list], [Xk[s:e] for Xk in Xs], Xc, y[s:e],
                       None if wt is None else wt[s:e], levels, p)
        cp = CrossProducts(dims, p, 0.0, 0.0, tuple(parts[0]), parts[1], parts[2], tuple(parts[3]), parts[4])
        total = cp if total is None else total.add(cp)
    return CrossProducts(dims, p, n_eff, sum_log_w, total.zz_diag, total.zz_off, total.incidence,
                         total.zxy, total.xyxy)
