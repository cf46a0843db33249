"""Cross-products summed exactly, so that their value does not depend on how the rows were split.

Floating-point addition is not associative: cross-products computed per Dask
partition and added in whatever order the partitions finish would change in
their last bits with the partitioning, the tree of the reduction or a retried
task. Here every product is computed in integer arithmetic instead.

Each column ``a`` of a matrix gets a global scale ``s_a``, the power of two at
or above its largest magnitude over all rows (a pass of its own,
:func:`batch_scales`). Its values are written as fixed-point numbers with
``SLICES`` slices of ``BETA`` bits,

    x = s_a * sum_k t_k 2^(-BETA (k + 1)),   t_k integer, |t_k| <= 2^BETA,

which is exact for every value within ``SLICES * BETA`` = 68 bits of ``s_a``
(smaller values are cut at that precision, the same way in every partition).
A product of two slices is an integer below ``2^(2 BETA)``; a sum of at most
``MAX_ROWS`` of them stays below ``2^53``, so BLAS computes every slice
product of a batch exactly, and the batches' and partitions' integer blocks
are added in int64, which is associative. Only the final conversion to
float64 rounds, in a fixed order: the result is a function of the rows alone,
bitwise identical for any partitioning, order, reduction tree or retry.

:class:`ExactPartial` holds these integer blocks for a set of rows; ``add``
joins two sets; :meth:`ExactPartial.cross_products` gives the
:class:`~pymlm.crossprod.CrossProducts` and the column statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ._crossprod import CrossProducts, term_z

__all__ = ["BETA", "MAX_ROWS", "SLICES", "ExactPartial", "batch_scales", "exact_partial", "power_scale"]

#: Bits per slice and slices per value: 68 bits of fixed point below each column's scale.
BETA = 17
SLICES = 4
#: Rows per exact product: ``MAX_ROWS * 2^(2 BETA) <= 2^53``.
MAX_ROWS = 1 << 19


def power_scale(maxabs: np.ndarray) -> np.ndarray:
    """The power of two at or above each magnitude (1 for columns of zeros)."""
    m = np.asarray(maxabs, dtype=float)
    if not np.all(np.isfinite(m)):
        raise ValueError("cannot scale infinite values")
    out = np.ones_like(m)
    pos = m > 0
    out[pos] = np.exp2(np.ceil(np.log2(m[pos])))
    # log2 may round across a power of two: make sure the scale covers the value
    out[pos] = np.where(out[pos] < m[pos], out[pos] * 2, out[pos])
    return out


def _slices(A: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(n, c)`` values as ``(n, SLICES * c)`` integer-valued slices, slice-major
    (column ``k * c + a`` is slice ``k`` of column ``a``)."""
    n, c = A.shape
    R = np.asarray(A, dtype=float) / scale  # exact: a power of two
    out = np.empty((n, SLICES * c))
    step = float(1 << BETA)
    for k in range(SLICES):
        R = R * step
        t = np.trunc(R)
        out[:, k * c:(k + 1) * c] = t
        R = R - t
    return out


def _to_int(a) -> np.ndarray:
    return np.rint(np.asarray(a)).astype(np.int64)


def _combine(P: np.ndarray, sa: np.ndarray, sb: np.ndarray) -> np.ndarray:
    """Integer slice products ``(..., SLICES * ca, SLICES * cb)`` as float64 ``(..., ca, cb)``.

    The terms are added smallest first, in a fixed order: a deterministic function of the integers.
    """
    ca, cb = sa.size, sb.size
    P = P.reshape(P.shape[:-2] + (SLICES, ca, SLICES, cb))
    out = np.zeros(P.shape[:-4] + (ca, cb))
    pairs = sorted(((k, m) for k in range(SLICES) for m in range(SLICES)), key=lambda km: (-(km[0] + km[1]), km))
    for k, m in pairs:
        out += P[..., k, :, m, :].astype(float) * 2.0 ** (-BETA * (k + m + 2))
    return out * (sa[:, None] * sb[None, :])


def _combine1(v: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Integer slice sums ``(..., SLICES * c)`` as float64 ``(..., c)``, smallest terms first."""
    v = v.reshape(v.shape[:-1] + (SLICES, s.size))
    out = np.zeros(v.shape[:-2] + (s.size,))
    for k in range(SLICES - 1, -1, -1):
        out += v[..., k, :].astype(float) * 2.0 ** (-BETA * (k + 1))
    return out * s


def _sym(A: np.ndarray) -> np.ndarray:
    return (A + A.T) / 2


def _union_add(la, ba, lb, bb):
    """Blocks indexed by sorted levels ``la`` and ``lb``, added over the union of the levels."""
    if la.size == 0:
        return lb, bb
    if lb.size == 0:
        return la, ba
    lv = np.union1d(la, lb)
    out = np.zeros((lv.size,) + ba.shape[1:], dtype=ba.dtype)
    out[np.searchsorted(lv, la)] += ba
    out[np.searchsorted(lv, lb)] += bb
    return lv, out


@dataclass
class ExactPartial:
    """Integer cross-product blocks of a set of rows (see the module docstring).

    Attributes
    ----------
    dims : tuple of (p_k, l_k)
    p : int
    n : int
        Rows of positive weight.
    levels, zz, zxy : list per term
        The levels present (sorted global codes), ``(m_k, S p_k, S p_k)`` and
        ``(m_k, S p_k, S (p + 1))`` int64 slice products, ``S = SLICES``.
    off, inc : dict (j, m) -> scipy.sparse (int64 / float counts)
    xyxy, gram : ndarray int64 ``(S (p + 1), S (p + 1))``, ``(S p, S p)`` (unweighted X'X, with weights)
    colsum : ndarray int64 ``(S p,)``
    logw : ndarray int64 ``(S,)``
        Sum of log prior weights.
    binary : ndarray of bool (p,)
    y_min, y_max : float
    workers : set of str
        Where the rows were read (Dask worker addresses).
    """

    dims: tuple
    p: int
    n: int = 0
    levels: list = field(default_factory=list)
    zz: list = field(default_factory=list)
    zxy: list = field(default_factory=list)
    off: dict = field(default_factory=dict)
    inc: dict = field(default_factory=dict)
    xyxy: np.ndarray | None = None
    gram: np.ndarray | None = None
    colsum: np.ndarray | None = None
    logw: np.ndarray | None = None
    binary: np.ndarray | None = None
    y_min: float = np.inf
    y_max: float = -np.inf
    workers: set = field(default_factory=set)

    @classmethod
    def empty(cls, dims, p) -> ExactPartial:
        S = SLICES
        e = cls(dims, p)
        e.levels = [np.zeros(0, dtype=np.int64) for _ in dims]
        e.zz = [np.zeros((0, S * pk, S * pk), dtype=np.int64) for pk, _ in dims]
        e.zxy = [np.zeros((0, S * pk, S * (p + 1)), dtype=np.int64) for pk, _ in dims]
        e.xyxy = np.zeros((S * (p + 1), S * (p + 1)), dtype=np.int64)
        e.gram = np.zeros((S * p, S * p), dtype=np.int64)
        e.colsum = np.zeros(S * p, dtype=np.int64)
        e.logw = np.zeros(S, dtype=np.int64)
        e.binary = np.ones(p, dtype=bool)
        return e

    def add(self, other: ExactPartial) -> ExactPartial:
        """The blocks of both row sets (integer sums: exact, order-free)."""
        out = ExactPartial(self.dims, self.p, self.n + other.n)
        for k in range(len(self.dims)):
            lv, zz = _union_add(self.levels[k], self.zz[k], other.levels[k], other.zz[k])
            _, zxy = _union_add(self.levels[k], self.zxy[k], other.levels[k], other.zxy[k])
            out.levels.append(lv)
            out.zz.append(zz)
            out.zxy.append(zxy)
        for key in set(self.off) | set(other.off):
            a, b = self.off.get(key), other.off.get(key)
            out.off[key] = b if a is None else a if b is None else (a + b).tocsr()
            a, b = self.inc.get(key), other.inc.get(key)
            out.inc[key] = b if a is None else a if b is None else (a + b).tocsr()
        out.xyxy = self.xyxy + other.xyxy
        out.gram = self.gram + other.gram
        out.colsum = self.colsum + other.colsum
        out.logw = self.logw + other.logw
        out.binary = self.binary & other.binary
        out.y_min, out.y_max = min(self.y_min, other.y_min), max(self.y_max, other.y_max)
        out.workers = self.workers | other.workers
        return out

    __add__ = add

    def cross_products(self, scales: dict, weighted: bool):
        """The float64 cross-products, X'X and column sums these blocks hold.

        Returns
        -------
        cp : CrossProducts
        G : ndarray (p, p)
            X'X without prior weights (the rank check's matrix).
        colsum, colsumsq : ndarray (p,)
        """
        p = self.p
        sxy, swxy = scales["xy"], scales["wxy"]
        xyxy = _sym(_combine(self.xyxy, swxy, sxy))
        G = _sym(_combine(self.gram, sxy[:p], sxy[:p])) if weighted else xyxy[:p, :p]
        colsum = _combine1(self.colsum, sxy[:p])
        sum_log_w = float(_combine1(self.logw, scales["logw"])[0]) if weighted else 0.0
        zz_diag, zxy = [], []
        for k, (pk, lk) in enumerate(self.dims):
            sk, swk = scales["re"][k], scales["wre"][k]
            full = np.zeros((lk, pk, pk))
            blk = _combine(self.zz[k], sk, swk)
            full[self.levels[k]] = (blk + np.swapaxes(blk, 1, 2)) / 2
            zz_diag.append(full)
            full = np.zeros((lk, pk, p + 1))
            full[self.levels[k]] = _combine(self.zxy[k], sk, swxy)
            zxy.append(full)
        off = {}
        for (j, m), blk in self.off.items():
            off[(j, m)] = _combine_sparse(blk, self.dims[j], scales["re"][j], self.dims[m], scales["wre"][m])
        cp = CrossProducts(tuple(self.dims), p, float(self.n), sum_log_w, tuple(zz_diag), off,
                           {k: v.astype(float).tocsr() for k, v in self.inc.items()}, tuple(zxy), xyxy)
        return cp, G, colsum, np.diag(G).copy()


def _combine_sparse(blk, dj, sj, dm, sm) -> sp.csr_matrix:
    """A sparse ``(l_j S p_j, l_m S p_m)`` integer slice product as float ``(l_j p_j, l_m p_m)``."""
    (pj, _), (pm, _) = dj, dm
    coo = blk.tocoo()
    lj, rj = np.divmod(coo.row, SLICES * pj)
    kj, aj = np.divmod(rj, pj)
    lm, rm = np.divmod(coo.col, SLICES * pm)
    km, am = np.divmod(rm, pm)
    out_r, out_c = lj * pj + aj, lm * pm + am
    vals = coo.data.astype(float) * 2.0 ** (-BETA * (kj + km + 2)) * sj[aj] * sm[am]
    # add entry by entry in a fixed order (smallest slice terms first), then sum duplicates in that order
    key = out_r.astype(np.int64) * (dm[1] * pm) + out_c
    order = np.lexsort((kj, -(kj + km), key))
    key, vals = key[order], vals[order]
    uniq, start = np.unique(key, return_index=True)
    sums = np.add.reduceat(vals, start) if vals.size else vals
    return sp.csr_matrix((sums, (uniq // (dm[1] * pm), uniq % (dm[1] * pm))), shape=(dj[1] * pj, dm[1] * pm))


def batch_scales(arrays, groups) -> dict:
    """Largest magnitudes of one batch's columns (maxima combine across batches with ``np.maximum``).

    Returns
    -------
    dict with ``xy`` (p + 1,), ``wxy`` (p + 1,), ``re`` / ``wre`` (list of (p_k,)), ``logw`` (1,)
    """
    X = arrays.X.toarray() if sp.issparse(arrays.X) else np.asarray(arrays.X, dtype=float)
    Xy = np.column_stack([X, arrays.y])
    w = arrays.weights
    amax = (lambda A: np.abs(A).max(axis=0) if len(A) else np.zeros(A.shape[1]))
    out = {"xy": amax(Xy), "wxy": amax(Xy if w is None else Xy * w[:, None]), "re": [], "wre": [],
           "logw": np.zeros(1)}
    for g in groups:
        Xk = np.hstack([arrays.Xs[k] for k in g])
        out["re"].append(amax(Xk))
        out["wre"].append(amax(Xk if w is None else Xk * w[:, None]))
    if w is not None and (w > 0).any():
        out["logw"] = np.abs(np.log(w[w > 0])).max(keepdims=True)
    return out


def max_scales(a: dict, b: dict) -> dict:
    """Elementwise maxima of two :func:`batch_scales` results."""
    return {"xy": np.maximum(a["xy"], b["xy"]), "wxy": np.maximum(a["wxy"], b["wxy"]),
            "re": [np.maximum(x, y) for x, y in zip(a["re"], b["re"])],
            "wre": [np.maximum(x, y) for x, y in zip(a["wre"], b["wre"])],
            "logw": np.maximum(a["logw"], b["logw"])}


def exact_partial(arrays, groups, dims, scales: dict) -> ExactPartial:
    """The :class:`ExactPartial` of one batch's arrays (at most :data:`MAX_ROWS` rows).

    Parameters
    ----------
    arrays : pymlm.design.BatchArrays
    groups : sequence of sequence of int
        Design terms fitted as one term.
    dims : tuple of (p_k, l_k)
    scales : dict
        :func:`power_scale` of the maxima of every batch (:func:`batch_scales`).
    """
    X = arrays.X.toarray() if sp.issparse(arrays.X) else np.asarray(arrays.X, dtype=float)
    y, w = arrays.y, arrays.weights
    n, p = X.shape
    if n > MAX_ROWS:
        raise ValueError(f"exact cross-products take at most {MAX_ROWS} rows at a time, got {n}")
    e = ExactPartial.empty(dims, p)
    pos = np.ones(n, dtype=bool) if w is None else w > 0
    e.n = int(pos.sum())
    if n == 0:
        return e
    Xy = np.column_stack([X, y])
    T = _slices(Xy, scales["xy"])
    WT = T if w is None else _slices(Xy * w[:, None], scales["wxy"])
    e.xyxy = _to_int(WT.T @ T)
    c = p + 1
    Tx = T.reshape(n, SLICES, c)[:, :, :p].reshape(n, SLICES * p)
    if w is not None:
        e.gram = _to_int(Tx.T @ Tx)
        if e.n:
            e.logw = _to_int(_slices(np.log(w[pos])[:, None], scales["logw"]).sum(axis=0))
    e.colsum = _to_int(Tx.sum(axis=0))
    e.binary = np.all((X == 0) | (X == 1), axis=0)
    if e.n:
        e.y_min, e.y_max = float(y[pos].min()), float(y[pos].max())
    Zs, WZs, Cs = [], [], []
    for k, g in enumerate(groups):
        pk, lk = dims[k]
        codes = arrays.codes[g[0]].astype(np.int64)
        Xk = np.hstack([arrays.Xs[j] for j in g]).astype(float)
        Sk = _slices(Xk, scales["re"][k])
        WSk = Sk if w is None else _slices(Xk * w[:, None], scales["wre"][k])
        present = np.flatnonzero(np.bincount(codes, minlength=lk))
        local = np.searchsorted(present, codes)
        Z = term_z(local, Sk, present.size)
        e.levels[k] = present
        e.zz[k] = _to_int(np.asarray(Z.T @ WSk)).reshape(present.size, SLICES * pk, SLICES * pk)
        e.zxy[k] = _to_int(np.asarray(Z.T @ WT)).reshape(present.size, SLICES * pk, SLICES * c)
        if len(dims) > 1:
            Zs.append(term_z(codes, Sk, lk))
            WZs.append(term_z(codes, WSk, lk))
            Cs.append(codes[pos])
    for j in range(len(Zs)):
        for m in range(j):
            blk = (Zs[j].T @ WZs[m]).tocsr()
            blk.data = np.rint(blk.data)
            e.off[(j, m)] = blk.astype(np.int64)
            cj, cm = Cs[j], Cs[m]
            e.inc[(j, m)] = sp.csr_matrix((np.ones(cj.size), (cj, cm)), shape=(dims[j][1], dims[m][1]))
    return e
