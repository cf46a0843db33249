"""Cross-tabulations of a streamed ``bam(discrete = TRUE)``, accumulated batch by batch and summed exactly.

For compressed blocks ``X_a[i] = by_a[i] Xu_a[k_a[i]]`` (see
:mod:`pymlm.crossprod.discrete`) every cross product is a sum over rows of a
per-row value into a cell:

- ``X_a' W X_b = Xu_a' C_ab Xu_b`` with ``C_ab[s, t]`` the sum of
  ``w by_a by_b`` over the rows with ``k_a = s`` and ``k_b = t`` (one index
  when both blocks share it: a diagonal ``C``);
- the parametric columns ``P`` against a block: the sums of
  ``w by_b P[i, :]`` by ``k_b``; ``[P z]' W [P z]`` a dense product;
- ``X_a' W z``: the sums of ``w by_a z`` by ``k_a``;
- for the summaries (deviance, R-squared, the null deviance, the
  log-likelihood): sums of ``sqrt(w) x_i``, ``w``, ``sqrt(w)``, ``w y``,
  ``w y^2``, ``sqrt(w) y``, ``sqrt(w) z``, ``log w``; and the rows per cell of
  every index space (which grid points are occupied).

None of them keeps a row: a batch adds its sums to the cells it touches. The
sums are taken in the fixed-point integers of :mod:`pymlm.crossprod._exact`
(one power-of-two scale per statistic and column, from a pass of maxima), so
they are exact and order-free: the result is bitwise the same for any batch
size, partitioning or order of a Dask reduction. Cells are kept as sorted keys
with their integer sums, so memory grows with the occupied cells, never with
the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..design._gam_stream import GamStreamPlan, gam_batch
from ..sources._dask import dask_frame, tree_reduce, worker_address
from ._exact import MAX_ROWS, _combine, _combine1, _slices, _sym, _to_int, power_scale
from ._gam import CrossStats
from .discrete import _left, _right

__all__ = [
    "GamTables",
    "MaximaStep",
    "RFactorStep",
    "TablesStep",
    "add_row_sums",
    "batch_maxima",
    "batch_tables",
    "cross_stats",
    "max_maxima",
    "occupied_cells",
    "parametric_gram",
    "row_sums",
    "run_pass",
    "scales_of",
    "stream_gam_tables",
]

#: The columns of the ``sums`` statistic after the parametric ones.
SUM_NAMES = ("w", "sw", "wy", "wyy", "swy", "swz", "logw")


def _pairs(plan: GamStreamPlan):
    nb = len(plan.blocks)
    return [(i, j) for i in range(nb) for j in range(i, nb)]


def _statistics(plan: GamStreamPlan, gb):
    """(name, key (m,), what, values) of one batch: ``values()`` gives the (m, c) values, ``what`` names
    them (statistics with the same ``what`` have the same values: their slices are computed once).
    Rows outside a space (code -1) are left out by the caller."""
    m = gb.z.shape[0]
    w = np.ones(m) if gb.w is None else np.asarray(gb.w, dtype=float)
    sw = np.sqrt(w)
    out = []
    for name, codes in gb.codes.items():
        out.append((f"n|{name}", codes, ("one",), lambda: np.ones((m, 1))))
    by = [np.ones(m) if b is None else b for b in gb.by]
    tag = [None if b is None else j for j, b in enumerate(gb.by)]
    spaces = plan.spaces
    for i, j in _pairs(plan):
        a, b = plan.blocks[i], plan.blocks[j]
        ka, kb = gb.codes[a.space], gb.codes[b.space]
        key = ka if a.space == b.space else ka * spaces[b.space].size + kb
        key = np.where((ka < 0) | (kb < 0), -1, key)
        what = ("wbb",) + tuple(sorted((tag[i], tag[j]), key=lambda t: -1 if t is None else t))
        out.append((f"C|{i}|{j}", key, what, lambda i=i, j=j: (w * by[i] * by[j])[:, None]))
    pp = gb.P.shape[1]
    for j, b in enumerate(plan.blocks):
        k = gb.codes[b.space]
        if pp:
            out.append((f"G|{j}", k, ("wbP", tag[j]), lambda j=j: (w * by[j])[:, None] * gb.P))
        out.append((f"bz|{j}", k, ("bz", tag[j]), lambda j=j: np.column_stack([w * by[j] * gb.z, sw * by[j]])))

    def sums():
        with np.errstate(divide="ignore"):
            logw = np.where(w > 0, np.log(np.where(w > 0, w, 1.0)), 0.0)
        return np.column_stack([sw[:, None] * gb.P, w, sw, w * gb.y, w * gb.y * gb.y, sw * gb.y, sw * gb.z, logw])

    out.append(("sums", np.zeros(m, dtype=np.int64), ("sums",), sums))
    return out


def _gram_columns(gb):
    A = np.column_stack([gb.P, gb.z])
    WA = A if gb.w is None else A * np.asarray(gb.w, dtype=float)[:, None]
    return A, WA


def _amax(A: np.ndarray) -> np.ndarray:
    return np.abs(A).max(axis=0) if A.shape[0] else np.zeros(A.shape[1])


def _row_chunks(gb):
    """The batch in pieces of at most MAX_ROWS rows (the exact products' limit)."""
    m = gb.z.shape[0]
    if m <= MAX_ROWS:
        yield gb
        return
    from dataclasses import replace

    for s in range(0, m, MAX_ROWS):
        sl = slice(s, s + MAX_ROWS)
        yield replace(gb, P=gb.P[sl], y=gb.y[sl], z=gb.z[sl], w=None if gb.w is None else gb.w[sl],
                      codes={k: v[sl] for k, v in gb.codes.items()},
                      by=[None if b is None else b[sl] for b in gb.by])


def batch_maxima(plan: GamStreamPlan, gb) -> dict:
    """Largest magnitudes of the per-row factors of one batch (combined with :func:`max_maxima`):
    the weights, the response, the parametric columns, each block's multiplier; and of the
    columns of ``[P z]`` and ``W [P z]``."""
    m = gb.z.shape[0]
    w = np.ones(m) if gb.w is None else np.asarray(gb.w, dtype=float)
    with np.errstate(divide="ignore"):
        logw = np.where(w > 0, np.abs(np.log(np.where(w > 0, w, 1.0))), 0.0)
    A, WA = _gram_columns(gb)
    one = np.ones(1)
    return {"w": _amax(w[:, None]), "sw": np.sqrt(_amax(w[:, None])), "y": _amax(gb.y[:, None]),
            "z": _amax(gb.z[:, None]), "logw": _amax(logw[:, None]), "P": _amax(gb.P),
            "by": np.array([one[0] if b is None else _amax(b[:, None])[0] for b in gb.by]),
            "xy": _amax(A), "wxy": _amax(WA)}


def max_maxima(a: dict | None, b: dict | None) -> dict | None:
    """Elementwise maxima of two :func:`batch_maxima` results (None: no rows)."""
    if a is None:
        return b
    if b is None:
        return a
    return {k: np.maximum(a[k], b[k]) for k in a}


def scales_of(plan: GamStreamPlan, maxima: dict) -> dict:
    """The power-of-two scale of every statistic and column (:func:`~._exact.power_scale`) from
    bounds on its values: products of the factors' maxima, with room for the rounding of the
    products (a scale needs only to be the same for every row and at least its values)."""
    W, SW, Y, Z, LW = (float(maxima[k][0]) for k in ("w", "sw", "y", "z", "logw"))
    P, B = maxima["P"], maxima["by"]
    room = 1.0 + 1e-12
    out = {"xy": power_scale(maxima["xy"]), "wxy": power_scale(maxima["wxy"])}
    for name in plan.spaces:
        out[f"n|{name}"] = np.ones(1)
    for i, j in _pairs(plan):
        out[f"C|{i}|{j}"] = power_scale(np.array([W * B[i] * B[j] * room]))
    for j in range(len(plan.blocks)):
        out[f"G|{j}"] = power_scale(W * B[j] * P * room)
        out[f"bz|{j}"] = power_scale(np.array([W * B[j] * Z, SW * B[j]]) * room)
    out["sums"] = power_scale(np.concatenate([SW * P, [W, SW, W * Y, W * Y * Y, SW * Y, SW * Z, LW]]) * room)
    return out


#: Statistics with at most this many integer entries (cells x slices x columns) are summed densely.
DENSE_ENTRIES = 1 << 22
#: Unreduced sparse entries kept before they are sorted and summed.
BUFFER_ENTRIES = 1 << 20


def _reduce(keys: np.ndarray, vals: np.ndarray):
    """Sorted distinct keys and the integer sums of their rows."""
    if keys.size == 0:
        return keys.astype(np.int64), vals
    order = np.argsort(keys, kind="stable")
    keys, vals = keys[order], vals[order]
    start = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return keys[start], np.add.reduceat(vals, start, axis=0)


class _Cells:
    """Integer sums into the cells of one statistic: a dense array for small spaces, else sorted
    keys with their sums plus a buffer of unreduced entries (merged when it grows)."""

    def __init__(self, size: int, width: int):
        self.size, self.width = int(size), int(width)
        self.dense = np.zeros((self.size, self.width), dtype=np.int64) if self.size * self.width <= DENSE_ENTRIES \
            else None
        self.keys = np.zeros(0, dtype=np.int64)
        self.vals = np.zeros((0, self.width), dtype=np.int64)
        self.buffer: list = []
        self.buffered = 0

    def add_rows(self, key: np.ndarray, T: np.ndarray, constant: np.ndarray | None = None) -> None:
        """Add rows of integer-valued slices ``T`` (m, width) into the cells ``key`` (m,);
        ``constant[c]``: column ``c`` of ``T`` is the same in every row."""
        if self.dense is not None:
            counts = None
            for c in range(self.width):
                col = T[:, c]
                if constant is not None and constant[c]:
                    lo = col[0] if col.size else 0.0
                    # a slice equal in every row (unit weights, the intercept): its count times it
                    if lo == 0:
                        continue
                    if counts is None:
                        counts = np.bincount(key, minlength=self.size)
                    self.dense[:, c] += counts * np.int64(lo)
                else:
                    # integers below 2^BETA, at most MAX_ROWS of them per cell: the float sums are exact
                    self.dense[:, c] += _to_int(np.bincount(key, weights=col, minlength=self.size))
            return
        # reduced batch by batch: what is buffered grows with the occupied cells, not the rows
        cells, inv = np.unique(key, return_inverse=True)
        sums = np.column_stack([np.bincount(inv.ravel(), weights=T[:, c], minlength=cells.size)
                                for c in range(self.width)])
        self._push(cells.astype(np.int64), _to_int(sums))

    def _push(self, keys, vals) -> None:
        self.buffer.append((keys, vals))
        self.buffered += keys.size
        if self.buffered > max(BUFFER_ENTRIES, self.keys.size):
            self.compact()

    def compact(self) -> _Cells:
        if self.buffer:
            keys = np.concatenate([self.keys] + [k for k, _ in self.buffer])
            vals = np.concatenate([self.vals] + [v for _, v in self.buffer])
            self.keys, self.vals = _reduce(keys, vals)
            self.buffer, self.buffered = [], 0
        return self

    def add(self, other: _Cells) -> _Cells:
        """Both sums (integers: exact and order-free); ``self`` is updated."""
        if self.dense is not None:
            self.dense += other.dense
            return self
        other.compact()
        self._push(other.keys, other.vals)
        return self

    def items(self):
        """Occupied cells (sorted keys) and their integer sums."""
        if self.dense is not None:
            nz = np.flatnonzero(np.any(self.dense != 0, axis=1))
            return nz.astype(np.int64), self.dense[nz]
        self.compact()
        return self.keys, self.vals


@dataclass
class GamTables:
    """Integer cell sums of a set of rows (see the module docstring); ``add`` joins two sets.

    Attributes
    ----------
    cells : dict of str -> _Cells
        Per statistic, the slice sums of its cells.
    xyxy : ndarray int64 (SLICES (pp + 1), SLICES (pp + 1)) or None
        ``[P z]' W [P z]`` in slices.
    n : int
        Rows.
    y_min, y_max : float
        Range of the response minus offset.
    workers : set of str
        Where the rows were read (Dask worker addresses).
    """

    cells: dict = field(default_factory=dict)
    xyxy: np.ndarray | None = None
    n: int = 0
    y_min: float = np.inf
    y_max: float = -np.inf
    workers: set = field(default_factory=set)

    def add(self, other: GamTables) -> GamTables:
        """The sums of both row sets (integers: exact and order-free); ``self`` is updated."""
        self.n += other.n
        self.y_min, self.y_max = min(self.y_min, other.y_min), max(self.y_max, other.y_max)
        self.workers = self.workers | other.workers
        for name, c in other.cells.items():
            mine = self.cells.get(name)
            self.cells[name] = c if mine is None else mine.add(c)
        if other.xyxy is not None:
            self.xyxy = other.xyxy.copy() if self.xyxy is None else self.xyxy + other.xyxy
        return self

    __add__ = add

    def compact(self) -> GamTables:
        """Reduce the buffered entries (before the tables travel between processes)."""
        for c in self.cells.values():
            c.compact()
        return self


def _stat_size(plan: GamStreamPlan, name: str) -> int:
    kind, _, rest = name.partition("|")
    if kind == "n":
        return plan.spaces[rest].size
    if kind == "C":
        i, j = (int(v) for v in rest.split("|"))
        a, b = plan.blocks[i], plan.blocks[j]
        sa = plan.spaces[a.space].size
        return sa if a.space == b.space else sa * plan.spaces[b.space].size
    if kind in ("G", "bz"):
        return plan.spaces[plan.blocks[int(rest)].space].size
    return 1


def batch_tables(plan: GamStreamPlan, gb, scales: dict, out: GamTables | None = None) -> GamTables:
    """Add one batch (any number of rows) into ``out`` (new tables when None), with the global ``scales``."""
    out = GamTables() if out is None else out
    for piece in _row_chunks(gb):
        _add_piece(plan, piece, scales, out)
    return out


def _add_piece(plan, gb, scales, out: GamTables) -> None:
    m = int(gb.z.shape[0])
    out.n += m
    if m:
        out.y_min, out.y_max = min(out.y_min, float(gb.z.min())), max(out.y_max, float(gb.z.max()))
    current, T_all, constant = None, None, None
    # statistics with the same values one after the other: their slices are computed once
    stats = sorted(_statistics(plan, gb), key=lambda st: repr((st[2], scales[st[0]].tobytes())))
    for name, key, what, values in stats:
        scale = scales[name]
        tag = (what, scale.tobytes())
        if tag != current:
            current, T_all = tag, None
            T_all = _slices(values(), scale)
            constant = np.all(T_all == T_all[:1], axis=0) if T_all.shape[0] else None
        T = T_all
        ok = key >= 0
        if not ok.all():
            key, T = key[ok], T[ok]
        cells = out.cells.get(name)
        if cells is None:
            cells = out.cells[name] = _Cells(_stat_size(plan, name), T.shape[1])
        if key.size:
            cells.add_rows(key, T, constant)
    A, WA = _gram_columns(gb)
    T = _slices(A, scales["xy"])
    WT = T if gb.w is None else _slices(WA, scales["wxy"])
    prod = _to_int(WT.T @ T)
    out.xyxy = prod if out.xyxy is None else out.xyxy + prod


def add_row_sums(tables: GamTables, name: str, values: np.ndarray, scale: np.ndarray) -> GamTables:
    """Add the exact column sums of ``values`` (m, c) into the statistic ``name`` of ``tables``."""
    T = _slices(values, scale)
    cells = tables.cells.get(name)
    if cells is None:
        cells = tables.cells[name] = _Cells(1, T.shape[1])
    if T.shape[0]:
        cells.add_rows(np.zeros(T.shape[0], dtype=np.int64), T)
    return tables


def row_sums(tables: GamTables, name: str, scale: np.ndarray) -> np.ndarray:
    """The float column sums of the statistic ``name`` (see :func:`add_row_sums`)."""
    cells = tables.cells.get(name)
    if cells is None:
        return np.zeros(scale.size)
    keys, vals = cells.items()
    return _combine1(vals, scale)[0] if keys.size else np.zeros(scale.size)


class MaximaStep:
    """A pass's step: the maxima of a batch's statistics (for the scales), added into ``acc``."""

    def __call__(self, plan, gb, acc):
        return max_maxima(acc, batch_maxima(plan, gb))


class TablesStep:
    """A pass's step: a batch's exact cell sums with the global ``scales``, added into ``acc``."""

    def __init__(self, scales: dict):
        self.scales = scales

    def __call__(self, plan, gb, acc):
        return batch_tables(plan, gb, self.scales, acc)


class RFactorStep:
    """A pass's step: the R factor of a QR of the parametric columns, updated with a batch."""

    def __call__(self, plan, gb, acc):
        return _stack_r(acc, gb.P)


def _stack_r(a, b):
    if a is None:
        return np.linalg.qr(b, mode="r")
    return np.linalg.qr(np.vstack([a, b]), mode="r")


def parametric_gram(tables: GamTables, scales: dict, pp: int) -> np.ndarray:
    """``P'WP`` (pp, pp) from the tables."""
    return _sym(_combine(tables.xyxy, scales["wxy"], scales["xy"]))[:pp, :pp]


def _combine_any(a, b):
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict):
        return max_maxima(a, b)
    if isinstance(a, np.ndarray):
        return _stack_r(a, b)
    return a.add(b).compact()


def run_pass(plan: GamStreamPlan, source, batch_size: int, step, *, progress: bool = False,
             desc: str = "reading"):
    """One pass over a stream: ``acc = step(plan, batch, acc)`` for every batch of complete rows
    (:func:`pymlm.design._gam_stream.gam_batch`), from ``acc = None``.

    On a Dask DataFrame each partition runs the steps on a worker and the partitions' results are
    combined pairwise in a tree of tasks: maxima by their maxima, :class:`GamTables` by ``add``
    (exact integers: the result does not depend on the partitioning). ``step`` must pickle.

    Returns
    -------
    the accumulated result, or None when no batch had a complete row
    """
    frame = dask_frame(source)
    if frame is not None:
        import dask

        parts = frame[list(plan.design.read_columns)].to_delayed()
        name = type(step).__name__.lower()
        # one key for the plan and one for the step: each worker receives them once
        plan_key, step_key = dask.delayed(plan, pure=True), dask.delayed(step, pure=True)
        results = [dask.delayed(_partition_pass, pure=True)(plan_key, step_key, part) for part in parts]
        return dask.compute(tree_reduce(results, _combine_any, f"pymlm-gam-{name}"))[0]
    acc = None
    for batch in source.batches(list(plan.design.read_columns), batch_size, progress=progress, desc=desc):
        gb = gam_batch(plan, batch)
        if gb is not None:
            acc = step(plan, gb, acc)
    return acc.compact() if isinstance(acc, GamTables) else acc


def _partition_pass(plan, step, frame):
    """The steps of one Dask partition, in batches of the design's batch size, on its worker."""
    frame = frame[list(plan.design.read_columns)]
    size = max(int(plan.design.batch_size), 1)
    acc = None
    for s in range(0, len(frame), size):
        gb = gam_batch(plan, frame.iloc[s:s + size].reset_index(drop=True))
        if gb is not None:
            acc = step(plan, gb, acc)
    if isinstance(acc, GamTables):
        acc.workers = {worker_address()}
        acc.compact()
    return acc


def stream_gam_tables(plan: GamStreamPlan, source, batch_size: int, progress: bool = True):
    """The two passes of a Gaussian fit: maxima, then the exact cell sums (on the workers for a Dask
    DataFrame).

    Returns
    -------
    tables : GamTables
    scales : dict
    """
    maxima = run_pass(plan, source, batch_size, MaximaStep(), progress=progress, desc="scales")
    if maxima is None:
        raise _no_rows(source)
    scales = scales_of(plan, maxima)
    tables = run_pass(plan, source, batch_size, TablesStep(scales), progress=progress, desc="cross-tabulations")
    return tables, scales


def _no_rows(source):
    from ..errors import DataError

    return DataError(f"{source.name!r} has no complete rows")


def _floats(tables: GamTables, scales: dict) -> dict:
    out = {}
    for name, cells in tables.cells.items():
        keys, vals = cells.items()
        out[name] = (keys, _combine1(vals, scales[name]))
    return out


def occupied_cells(plan: GamStreamPlan, tables: GamTables) -> dict:
    """The occupied cells (sorted keys) of every index space: those some row fell in."""
    out = {}
    for name in plan.spaces:
        got = tables.cells.get(f"n|{name}")
        out[name] = got.items()[0] if got is not None else np.zeros(0, dtype=np.int64)
    return out


def _positions(keys: np.ndarray, cells) -> np.ndarray:
    """Rows of the occupied ``cells`` (None: every cell) for cell keys that are occupied."""
    return keys if cells is None else np.searchsorted(cells, keys)


def _rows_of(floats: dict, name: str, cells, size: int, c: int) -> np.ndarray:
    """A statistic's sums on the occupied cells (all ``size`` cells when ``cells`` is None), (rows, c)."""
    out = np.zeros((size if cells is None else cells.size, c))
    got = floats.get(name)
    if got is not None:
        keys, vals = got
        out[_positions(keys, cells)] = vals
    return out


def cross_stats(plan: GamStreamPlan, design, mats: list, tables: GamTables, scales: dict):
    """``X'WX``, ``X'Wz``, ``z'Wz`` and the summaries' sums from the tables.

    Parameters
    ----------
    plan : GamStreamPlan
    design : StreamGamDesign
    mats : list of (Xu or None, start, ncol, cells or None)
        Per block, its rows on its space's occupied cells (:func:`pymlm.design._gam_stream.finish_gam_design`).
    tables : GamTables
    scales : dict

    Returns
    -------
    stats : CrossStats
    summary : dict
        ``n``, ``sx`` (p,) the sums of ``sqrt(w) x_i``, and the sums named in :data:`SUM_NAMES`.
    """
    p, pp = design.p, plan.pp
    floats = _floats(tables, scales)
    AW = _sym(_combine(tables.xyxy, scales["wxy"], scales["xy"]))
    XtWX = np.zeros((p, p))
    XtWz = np.zeros(p)
    sx = np.zeros(p)
    XtWX[:pp, :pp] = AW[:pp, :pp]
    XtWz[:pp] = AW[:pp, pp]
    zWz = float(AW[pp, pp])
    sums = _rows_of(floats, "sums", None, 1, pp + len(SUM_NAMES))[0]
    sx[:pp] = sums[:pp]
    for j, b in enumerate(plan.blocks):
        Xu, start, ncol, cells = mats[j]
        cols = slice(start, start + ncol)
        size = plan.spaces[b.space].size
        if pp:
            G = _left(Xu, _rows_of(floats, f"G|{j}", cells, size, pp))
            XtWX[cols, :pp] = G
            XtWX[:pp, cols] = G.T
        bz = _rows_of(floats, f"bz|{j}", cells, size, 2)
        XtWz[cols] = _left(Xu, bz[:, :1])[:, 0]
        sx[cols] = _left(Xu, bz[:, 1:2])[:, 0]
    for i, j in _pairs(plan):
        a, b = plan.blocks[i], plan.blocks[j]
        Xa, sa, na, ca = mats[i]
        Xb, sb, nb, cb = mats[j]
        ua, ub = plan.spaces[a.space].size, plan.spaces[b.space].size
        ra = ua if ca is None else ca.size
        rb = ub if cb is None else cb.size
        keys, vals = floats.get(f"C|{i}|{j}", (np.zeros(0, dtype=np.int64), np.zeros((0, 1))))
        if a.space == b.space:
            pos = _positions(keys, ca)
            C = sp.csr_matrix((vals[:, 0], (pos, pos)), shape=(ra, ra))
        else:
            C = sp.csr_matrix((vals[:, 0], (_positions(keys // ub, ca), _positions(keys % ub, cb))), shape=(ra, rb))
        B = _right(_left(Xa, C), Xb)
        XtWX[sa:sa + na, sb:sb + nb] += B
        if i != j:
            XtWX[sb:sb + nb, sa:sa + na] += B.T
    summary = {"n": int(tables.n), "sx": sx, **dict(zip(SUM_NAMES, sums[pp:].tolist())),
               "y_min": tables.y_min, "y_max": tables.y_max}
    return CrossStats(XtWX, XtWz, zWz, int(tables.n), design.blockdiag), summary
