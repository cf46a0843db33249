"""Cross-products of a streamed design, accumulated batch by batch in memory bounded by the groups.

Each batch's blocks are computed on the levels present in it
(:func:`~pymlm.crossprod.cross_products` on compacted codes) and added into
the global per-level blocks, so the memory of a pass is one batch plus the
blocks of all levels, whatever the number of rows. The blocks that every
batch touches ([X y]'W[X y], the counts) are summed exactly
(:func:`math.fsum` over the per-batch blocks), so their sum does not depend
on how the rows were cut into batches; the per-level blocks get their rows
from one batch, or from the few a level spans.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from ..design import StreamDesign, batch_arrays
from ..design._design import check_scale_of
from ..design._fixed import gram_has_full_rank, rank_keep, warn_dropped
from ..errors import DataError
from ..sources._dask import dask_frame
from ._crossprod import CrossProducts, _add_sparse, _compact, cross_products

__all__ = ["StreamStats", "stream_cross_products"]


@dataclass(frozen=True)
class StreamStats:
    """Per-column sums of a streamed pass, for lme4's checks on all rows.

    Attributes
    ----------
    n : int
        Rows.
    colsum, colsumsq : ndarray (p,)
        Sums and sums of squares of the columns of X (unweighted).
    binary : ndarray of bool (p,)
        Columns whose every value is 0 or 1.
    y_min, y_max : float
        Range of the response minus offset over the rows of positive weight.
    """

    n: int
    colsum: np.ndarray
    colsumsq: np.ndarray
    binary: np.ndarray
    y_min: float
    y_max: float

    @property
    def sd(self) -> np.ndarray:
        """Column standard deviations (divisor n - 1, as R's ``sd``)."""
        mean = self.colsum / max(self.n, 1)
        return np.sqrt(np.maximum(self.colsumsq - self.n * mean ** 2, 0.0) / max(self.n - 1, 1))


def _exact_sum(blocks: list) -> np.ndarray:
    """Elementwise correctly rounded sum of equally shaped arrays (order-free)."""
    stack = np.stack([np.asarray(b, dtype=float) for b in blocks])
    flat = stack.reshape(len(blocks), -1)
    return np.array([math.fsum(flat[:, j]) for j in range(flat.shape[1])]).reshape(stack.shape[1:])


def _column_moments(X, binary: np.ndarray):
    """Column sums, sums of squares, and ``binary`` narrowed to the columns still all 0/1."""
    if sp.issparse(X):
        X = X.tocsc()
        col = np.repeat(np.arange(X.shape[1]), np.diff(X.indptr))
        nonbinary = np.bincount(col, weights=(X.data != 0) & (X.data != 1), minlength=X.shape[1]) > 0
        return (np.asarray(X.sum(axis=0)).ravel(), np.asarray(X.multiply(X).sum(axis=0)).ravel(),
                binary & ~nonbinary)
    out = binary.copy()
    idx = np.flatnonzero(binary)  # only columns 0/1 so far are checked: after a batch, few are
    if idx.size:
        block = X[:, idx]
        out[idx] = np.all((block == 0) | (block == 1), axis=0)
    return X.sum(axis=0), np.einsum("ij,ij->j", X, X), out


def _scatter(block, rows_present, p_rows, cols_present, p_cols, shape):
    """A block indexed by the levels present in a batch, re-indexed by all levels."""
    coo = block.tocoo()
    r = rows_present[coo.row // p_rows] * p_rows + coo.row % p_rows
    c = cols_present[coo.col // p_cols] * p_cols + coo.col % p_cols
    return sp.csr_matrix((coo.data, (r, c)), shape=shape)


def stream_cross_products(design: StreamDesign, groups, *, progress: bool = True):
    """The cross-products of a streamed design, one pass over its source.

    Parameters
    ----------
    design : StreamDesign
    groups : sequence of sequence of int
        The design terms fitted as one term (adjacent terms on one grouping
        factor, side by side), as :class:`pymlm.fit.terms.TermMerge` groups them.
    progress : bool
        A bar over the source's parts.

    Returns
    -------
    design : StreamDesign
        With rank-deficient fixed-effect columns dropped (as lme4 drops them,
        with a warning), when there are any.
    cp : CrossProducts
        Equal to the cross-products of the same rows in memory.
    stats : StreamStats

    Raises
    ------
    DataError
        The response is constant; a batch cannot be read.

    Warns
    -----
    PymlmWarning
        lme4's ``check.scaleX`` on all rows.
    RankDeficiencyWarning
        Fixed-effect columns were dropped.
    """
    frame = dask_frame(design.source)
    if frame is not None:
        from ._dask import cluster_cross_products

        cp, G, colsum, colsumsq, binary, (y_min, y_max), n_rows, workers = cluster_cross_products(
            frame, design, groups)
        stats = StreamStats(int(n_rows), colsum, colsumsq, binary, y_min, y_max)
        _check_response(design, n_rows, y_min, y_max)
        design = replace(design, workers=tuple(sorted(workers)))
        return _finish(design, cp, stats, G)
    terms = design.re_terms
    dims = tuple((sum(terms[k].p for k in g), terms[g[0]].nlevels) for g in groups)
    p = len(design.fixed_spec.names)
    # stored coefficient-major ((p_k, l_k, .) buffers seen as (l_k, p_k, .)): the per-coefficient
    # slices [:, a, :] the one-term kernel takes are then contiguous views, not copies of O(levels) arrays
    zz_diag = [np.moveaxis(np.zeros((pk, pk, lk)), 2, 0) for pk, lk in dims]
    zxy = [np.moveaxis(np.zeros((pk, lk, p + 1)), 0, 1) for pk, lk in dims]
    off: dict = {}
    inc: dict = {}
    xyxy, ns, logs, sums, sumsqs, grams = [], [], [], [], [], []
    binary = np.ones(p, dtype=bool)
    n_rows = 0
    y_min, y_max = np.inf, -np.inf
    for batch in design.batches(progress=progress, desc="cross-products"):
        arrays = batch_arrays(design, batch)
        if arrays is None:
            continue
        X, y, w = arrays.X, arrays.y, arrays.weights
        if not sp.issparse(X):
            # row-major: the [X y] buffer of the Gram product is filled by contiguous copies
            X = np.ascontiguousarray(X)
        n_rows += len(y)
        s, ss, binary = _column_moments(X, binary)
        sums.append(s)
        sumsqs.append(ss)
        if w is not None:  # the rank check looks at X without the prior weights
            grams.append((X.T @ X).toarray() if sp.issparse(X) else X.T @ X)
        pos = y if w is None else y[w > 0]
        if pos.size:
            y_min, y_max = min(y_min, float(pos.min())), max(y_max, float(pos.max()))
        codes, Xs, present = [], [], []
        for g in groups:
            c = arrays.codes[g[0]]
            lvl, local = _compact(c.astype(np.int64), dims[len(codes)][1])
            codes.append(local)
            present.append(lvl)
            Xs.append(arrays.Xs[g[0]] if len(g) == 1 else np.hstack([arrays.Xs[k] for k in g]))
        cp = cross_products(codes, Xs, [len(lv) for lv in present], X, y, weights=w, chunk_size=max(len(y), 1))
        for k in range(len(dims)):
            zz_diag[k][present[k]] += cp.zz_diag[k]
            zxy[k][present[k]] += cp.zxy[k]
        for (j, m), blk in cp.zz_off.items():
            (pj, lj), (pm, lm) = dims[j], dims[m]
            off[(j, m)] = _add_sparse(off.get((j, m)), _scatter(blk, present[j], pj, present[m], pm, (pj * lj, pm * lm)))
            inc[(j, m)] = _add_sparse(inc.get((j, m)), _scatter(cp.incidence[(j, m)], present[j], 1, present[m], 1,
                                                                (lj, lm)))
        xyxy.append(cp.xyxy)
        ns.append(cp.n)
        logs.append(cp.sum_log_w)
    _check_response(design, n_rows, y_min, y_max)
    cp = CrossProducts(dims, p, math.fsum(ns), math.fsum(logs), tuple(zz_diag), off, inc, tuple(zxy),
                       _exact_sum(xyxy))
    stats = StreamStats(n_rows, _exact_sum(sums), _exact_sum(sumsqs), binary, y_min, y_max)
    G = _exact_sum(grams) if grams else cp.xyxy[:p, :p]
    return _finish(design, cp, stats, G)


def _finish(design, cp, stats, G):
    design, cp, stats = _drop_rank_deficient(design, cp, stats, G)
    check_scale_of(stats.binary, stats.sd, design.X_names)
    return design, cp, stats


def _check_response(design, n_rows, y_min, y_max):
    if n_rows == 0:
        raise DataError(f"{design.source.name!r} has no complete rows")
    if y_max == y_min:
        what = "the response" if design.offset_column is None and not design.parsed.offsets else \
            "the response minus the offset"
        raise DataError(
            f"{what} {design.y_name!r} is constant (every value is {y_min:.6g}): a linear mixed model "
            "needs a response that varies, since its residual sd would be 0 and its criterion -inf. "
            "Check the response column.")


def _drop_rank_deficient(design: StreamDesign, cp: CrossProducts, stats: StreamStats, G: np.ndarray):
    """lme4's rank check on all rows (``G`` = X'X); a deficient X costs one more pass (its R
    factor by batches)."""
    p = cp.p
    if p == 0 or gram_has_full_rank(G):
        return design, cp, stats
    R = np.zeros((0, p))
    for batch in design.batches(desc="rank"):
        arrays = batch_arrays(design, batch)
        if arrays is not None:
            X = arrays.X.toarray() if sp.issparse(arrays.X) else arrays.X
            R = np.linalg.qr(np.vstack([R, X]), mode="r")
    keep = rank_keep(R, G)
    dropped = warn_dropped(design.X_names, keep)
    cols = np.concatenate([keep, [p]])
    cp = replace(cp, p=len(keep), zxy=tuple(z[:, :, cols] for z in cp.zxy), xyxy=cp.xyxy[np.ix_(cols, cols)])
    stats = replace(stats, colsum=stats.colsum[keep], colsumsq=stats.colsumsq[keep], binary=stats.binary[keep])
    spec = design.fixed_spec.with_keep(keep)
    design = replace(design, fixed_spec=spec, X=np.zeros((0, len(keep))), X_names=list(spec.kept_names),
                     dropped_columns=dropped)
    return design, cp, stats

