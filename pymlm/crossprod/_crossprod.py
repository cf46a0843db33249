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

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

__all__ = ["CrossProducts", "ClusterCrossProducts", "cross_products", "cluster_cross_products", "term_z",
           "offset_cross_products", "response_cross_products"]


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


def _compact(codes: np.ndarray, nlevels: int):
    """The levels present in a chunk and the chunk's codes renumbered among them."""
    present = np.bincount(codes, minlength=nlevels) > 0
    levels = np.flatnonzero(present)
    local = (np.cumsum(present) - 1)[codes]
    return levels, local


def _xy_gram(X, y, w, p):
    """[X y] and [X y]'W[X y] of a chunk (``w`` None: unit weights)."""
    n = y.shape[0]
    if sp.issparse(X):
        Xy = sp.hstack([X, sp.csr_matrix(y[:, None])], format="csr")
        WXy = Xy if w is None else sp.diags(w) @ Xy
        return Xy, WXy, (Xy.T @ WXy).toarray()
    Xy = np.empty((n, p + 1))
    Xy[:, :p] = X
    Xy[:, p] = y
    if w is None:
        # symmetric rank-k update: half the flops of a general product
        # Xy.T is Fortran-ordered: BLAS reads it in place (trans=1 on Xy would copy it)
        low = sla.blas.dsyrk(1.0, Xy.T, trans=0, lower=1)
        return Xy, Xy, low + np.tril(low, -1).T
    WXy = Xy * w[:, None]
    return Xy, WXy, Xy.T @ WXy


def cross_products(codes_list, Xs, levels, X, y, weights=None, freq_weights=None,
                   chunk_size: int = 500_000) -> CrossProducts:
    """Accumulate the cross-product blocks of a mixed model, chunk by chunk.

    Each chunk's contributions are computed on the levels present in it and
    added in place, so the work per chunk is proportional to its rows, not to
    the number of levels.

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
    zz_diag = [np.zeros((lk, pk, pk)) for pk, lk in dims]
    zxy = [np.zeros((lk, pk, p + 1)) for pk, lk in dims]
    xyxy = np.zeros((p + 1, p + 1))
    off: dict = {}
    inc: dict = {}
    for s in range(0, max(n, 1), chunk_size):
        e = min(n, s + chunk_size)
        wc = None if wt is None else wt[s:e]
        _, WXy, g = _xy_gram(X[s:e], y[s:e], wc, p)
        xyxy += g
        Zs = []
        for k, (pk, lk) in enumerate(dims):
            codes = codes_list[k][s:e]
            Xk = Xs[k][s:e]
            present, local = _compact(codes, lk)
            Z = term_z(local, Xk, len(present))
            zz_diag[k][present] += np.asarray(Z.T @ (Xk if wc is None else Xk * wc[:, None])).reshape(-1, pk, pk)
            prod = Z.T @ WXy
            prod = prod.toarray() if sp.issparse(prod) else np.asarray(prod)
            zxy[k][present] += prod.reshape(-1, pk, p + 1)
            if len(dims) > 1:
                Zs.append(term_z(codes, Xk, lk))
        for j in range(len(Zs)):
            for m in range(j):
                WZm = Zs[m] if wc is None else Zs[m].multiply(wc[:, None]).tocsr()
                blk = (Zs[j].T @ WZm).tocsr()
                cj, cm = codes_list[j][s:e], codes_list[m][s:e]
                if wc is not None:
                    cj, cm = cj[wc > 0], cm[wc > 0]
                cnt = sp.csr_matrix((np.ones(cj.size), (cj, cm)), shape=(dims[j][1], dims[m][1]))
                off[(j, m)] = _add_sparse(off.get((j, m)), blk)
                inc[(j, m)] = _add_sparse(inc.get((j, m)), cnt)
    return CrossProducts(dims, p, n_eff, sum_log_w, tuple(zz_diag), off, inc, tuple(zxy), xyxy)


@dataclass(frozen=True, eq=False)
class ClusterCrossProducts:
    """Cross-products kept per cluster (level of the single grouping factor).

    For a model whose random terms all share one grouping factor, the rows of
    different levels are independent clusters, and every block of
    :class:`CrossProducts` is a sum of per-cluster blocks. Keeping them apart
    makes a reweighted or subsetted data set cost O(clusters), not O(rows):
    a bootstrap resample with multinomial counts c, a bag-of-little-bootstraps
    subset or a split-sample partition is ``combine(c)``.

    Attributes
    ----------
    p_re : int
        Random-effect coefficients per cluster.
    zz : ndarray (l, p_re, p_re)
    zxy : ndarray (l, p_re, p + 1)
    xyxy : ndarray (l, p + 1, p + 1)
    n : ndarray (l,)
        Observations per cluster (sum of frequency weights of positive-weight rows).
    sum_log_w : ndarray (l,)
    """

    zz: np.ndarray
    zxy: np.ndarray
    xyxy: np.ndarray
    n: np.ndarray
    sum_log_w: np.ndarray

    @property
    def n_clusters(self) -> int:
        return self.zz.shape[0]

    @property
    def p(self) -> int:
        return self.zxy.shape[2] - 1

    def combine(self, counts=None, clusters=None) -> CrossProducts:
        """The cross-products of a data set made of these clusters.

        Parameters
        ----------
        counts : ndarray (m,), optional
            How many times each selected cluster enters (bootstrap counts);
            default once each. A count of 0 leaves the cluster out.
        clusters : ndarray of int (m,), optional
            Which clusters; default all.

        Returns
        -------
        CrossProducts
            One level per selected cluster (in the given order). A cluster
            counted c times contributes c times its blocks, as c independent
            copies of it would.
        """
        idx = np.arange(self.n_clusters) if clusters is None else np.asarray(clusters)
        c = np.ones(idx.size) if counts is None else np.asarray(counts, dtype=float)
        if c.shape != idx.shape:
            raise ValueError(f"counts has {c.size} entries for {idx.size} clusters")
        keep = c > 0
        idx, c = idx[keep], c[keep]
        zz = self.zz[idx] * c[:, None, None]
        zxy = self.zxy[idx] * c[:, None, None]
        xyxy = np.einsum("l,lij->ij", c, self.xyxy[idx])
        p_re = self.zz.shape[1]
        return CrossProducts(((p_re, idx.size),), self.p, float(c @ self.n[idx]), float(c @ self.sum_log_w[idx]),
                             (zz,), {}, {}, (zxy,), xyxy)


#: Per-row outer products held at once by :func:`cluster_cross_products` (4M doubles: 32 MB).
OUTER_PRODUCT_CELLS = 4_000_000


def cluster_cross_products(codes, Xk, nlevels, X, y, weights=None, chunk_size: int = 200_000):
    """Per-cluster cross-products for one grouping factor (see :class:`ClusterCrossProducts`).

    Parameters
    ----------
    codes : ndarray (n,)
        Cluster (level) of each row.
    Xk : ndarray (n, p_re)
        Random-effects model matrix (all terms on this factor, side by side).
    nlevels : int
    X : ndarray (n, p)
    y : ndarray (n,)
        Response minus offset.
    weights : ndarray (n,), optional
        Prior weights.
    """
    n, p = X.shape
    p_re = Xk.shape[1]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    zz = np.zeros((nlevels, p_re, p_re))
    zxy = np.zeros((nlevels, p_re, p + 1))
    xyxy = np.zeros((nlevels, p + 1, p + 1))
    pos = w > 0
    cnt = np.bincount(codes[pos], minlength=nlevels).astype(float)
    slw = np.bincount(codes[pos], weights=np.log(w[pos]), minlength=nlevels) if weights is not None else np.zeros(nlevels)
    # each row's outer products are formed before the sum over its cluster: bound them to about
    # OUTER_PRODUCT_CELLS doubles per chunk, whatever the number of columns
    chunk_size = max(1, min(int(chunk_size), OUTER_PRODUCT_CELLS // (p + 1) ** 2))
    for s in range(0, n, chunk_size):
        e = min(n, s + chunk_size)
        c = codes[s:e]
        Xc = X[s:e].toarray() if sp.issparse(X) else X[s:e]
        Xy = np.column_stack([Xc, y[s:e]])
        sw = np.sqrt(w[s:e])[:, None]
        WXy = Xy * sw
        Wk = Xk[s:e] * sw
        present, local = _compact(c, nlevels)
        # per-cluster outer products summed with a sparse indicator of the clusters
        ind = sp.csr_matrix((np.ones(e - s), (local, np.arange(e - s))), shape=(present.size, e - s))
        zz[present] += np.asarray(ind @ np.einsum("ia,ib->iab", Wk, Wk).reshape(e - s, -1)).reshape(-1, p_re, p_re)
        zxy[present] += np.asarray(ind @ np.einsum("ia,ib->iab", Wk, WXy).reshape(e - s, -1)).reshape(-1, p_re, p + 1)
        xyxy[present] += np.asarray(ind @ np.einsum("ia,ib->iab", WXy, WXy).reshape(e - s, -1)).reshape(-1, p + 1, p + 1)
    return ClusterCrossProducts(zz, zxy, xyxy, cnt, slw)


def offset_cross_products(cp: CrossProducts, j: int, b: float) -> CrossProducts:
    """Cross-products of the model with fixed effect ``j`` moved into the offset at value ``b``.

    The response becomes y - x_j b and column j leaves X, so only the
    [X y] rows and columns of the blocks change:

        Z'W(y - x_j b) = Z'Wy - b Z'Wx_j,
        X_{-j}'W(y - x_j b) = X_{-j}'Wy - b X_{-j}'Wx_j,
        (y - x_j b)'W(y - x_j b) = y'Wy - 2 b x_j'Wy + b^2 x_j'Wx_j.

    No pass over the rows is needed.
    """
    p = cp.p
    keep = [c for c in range(p) if c != j]
    T = np.zeros((p + 1, p))          # [X y] -> [X_{-j}, y - x_j b]
    T[keep, np.arange(p - 1)] = 1.0
    T[p, p - 1] = 1.0
    T[j, p - 1] = -b
    zxy = tuple(z @ T for z in cp.zxy)
    xyxy = T.T @ cp.xyxy @ T
    return replace(cp, p=p - 1, zxy=zxy, xyxy=xyxy)


def response_cross_products(cp: CrossProducts, zy, xy, yy: float) -> CrossProducts:
    """The cross-products with a new response: only the y column of the blocks changes.

    Parameters
    ----------
    zy : sequence of ndarray (l_k, p_k)
        Z_k'Wy per term.
    xy : ndarray (p,)
        X'Wy.
    yy : float
        y'Wy.
    """
    p = cp.p
    zxy = []
    for z, new in zip(cp.zxy, zy):
        z = z.copy()
        z[:, :, p] = new
        zxy.append(z)
    xyxy = cp.xyxy.copy()
    xyxy[:p, p] = xyxy[p, :p] = xy
    xyxy[p, p] = yy
    return replace(cp, zxy=tuple(zxy), xyxy=xyxy)
