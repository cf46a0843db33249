"""The design of ``bam(discrete = TRUE)`` on a streamed source: a first pass, then indices per batch.

A source read in batches (a Parquet folder, a CSV file, a Dask DataFrame...)
never holds all rows at once, so the compressed model matrix of
:mod:`pymlm.design._discrete` (distinct values plus an n-row index) is
replaced by what the cross products need from each batch:

1. The first pass (:func:`scan_gam_design`, through
   :func:`~pymlm.design.scan_design`) counts the rows dropped for missing
   values, collects the levels of factors and grouping factors in R's order
   and, for every numeric covariate of a smooth, its minimum, maximum and
   distinct values while there are at most ``m`` of them (mgcv's rule keeps
   the distinct values of a covariate with at most ``m``; otherwise it rounds
   to the nearest of ``m`` evenly spaced points between the minimum and the
   maximum). A smooth of several covariates is discretized jointly: its
   distinct rows while there are at most ``md^d`` of them (``md`` 100 for two
   covariates, 25 for more), else each covariate on its own ``md``-point grid;
   the pass keeps its distinct rows up to that cap. That is all the
   discretization needs, so each covariate (or joint smooth) gets an *index
   space*: its distinct values or rows, or a grid. A tensor product or a
   factor smooth points into the product of its margins' spaces.
2. Each batch of the accumulation pass is turned into indices into those
   spaces, row multipliers (``by`` variables, random slopes) and the
   parametric columns (:func:`gam_batch`); :mod:`pymlm.crossprod._gam_stream`
   cross-tabulates them, keeping the occupied cells only.
3. After that pass the occupied cells of every space are known (mgcv keeps
   only the grid points some row rounds to, and the combinations of the
   margins some row has), and the smooths are constructed on the distinct
   discretized values, as the in-memory discrete design constructs them
   (:func:`finish_gam_design`): same knots, same constraints, same
   penalties. A term's rows are its model matrix on the occupied cells.

The terms streamed are parametric terms, smooths of any basis and any number
of covariates (with numeric or factor ``by`` variables), tensor products
``te()`` and ``ti()``, factor smooths ``s(x, f, bs = "fs")``,
``s(g, bs = "re")`` and random slopes ``s(x, g, bs = "re")`` (whose penalty
is scaled by the largest magnitude of ``x``, from the first pass) and lme4
random-effect terms.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError, FormulaError
from ..formula import ParsedFormula, deparse, names_in, parse_formula
from ..smooth import Factor, construct_smooth, parse_smooth
from ..smooth._basis import r_seq
from ._discrete import default_levels
from ._fixed import rebuild_model_matrix
from ._frame import ModelFrame, evaluate
from ._gam import (
    GamDesign,
    GamTerm,
    _penalty_for,
    _response,
    _smooth_sort_key,
    covariate,
    distinct_rows,
)
from ._gam_penalty import CorrelatedPenalty, LinearPenalty
from ._stream import complete_rows, scan_design

__all__ = ["GamBatch", "GamStreamPlan", "StreamGamDesign", "finish_gam_design", "gam_batch", "scan_gam_design",
           "with_parametric_columns"]


# ----------------------------------------------------------------------------- first pass


class _CovariateStats:
    """Range and distinct values (while at most ``m``) of the numeric covariates of smooths,
    and the range of numeric ``by`` variables, over the complete rows: the first pass's
    extra collector (:class:`pymlm.design._stream._Scan`)."""

    def __init__(self, covariates: dict, bys: dict, m: dict, joints: dict | None = None):
        self.covariates, self.bys, self.m = covariates, bys, m
        self.joints = joints or {}
        self.lo: dict = {}
        self.hi: dict = {}
        self.values: dict = {}
        self.rows: dict = {}  # distinct rows of a multi-covariate smooth, while at most its cap
        self.factor: set = set()

    def empty(self) -> _CovariateStats:
        return _CovariateStats(self.covariates, self.bys, self.m, self.joints)

    def _union_rows(self, key, new):
        old = self.rows.get(key, np.zeros((0, new.shape[1])))
        if old is None:
            return
        both = np.unique(np.vstack([old, new]), axis=0)
        self.rows[key] = both if both.shape[0] <= self.joints[key][1] else None

    def _update(self, key, x: np.ndarray, keep_values: bool):
        if not x.size:
            return
        lo, hi = float(np.min(x)), float(np.max(x))
        self.lo[key] = min(self.lo.get(key, lo), lo)
        self.hi[key] = max(self.hi.get(key, hi), hi)
        if keep_values:
            old = self.values.get(key, np.zeros(0))
            if old is not None:
                new = np.union1d(old, x)
                self.values[key] = new if new.size <= self.m[key] else None

    def add(self, batch: pd.DataFrame) -> None:
        for key, (node, where) in self.covariates.items():
            x = covariate(node, batch, where)
            if isinstance(x, Factor):
                self.factor.add(key)
                continue
            self._update(key, np.asarray(x, dtype=float), True)
        for key, (node, where) in self.bys.items():
            x = covariate(node, batch, where)
            if isinstance(x, Factor):
                self.factor.add(key)
                continue
            self._update(key, np.asarray(x, dtype=float), False)
        for key, (nodes, _) in self.joints.items():
            if self.rows.get(key, 0) is None:
                continue
            cols = [covariate(node, batch, "a smooth of several covariates") for node in nodes]
            if any(isinstance(c, Factor) for c in cols):
                continue
            self._union_rows(key, np.unique(np.column_stack([np.asarray(c, dtype=float) for c in cols]), axis=0))

    def merge(self, other: _CovariateStats) -> _CovariateStats:
        for key, rows in other.rows.items():
            if rows is None:
                self.rows[key] = None
            else:
                self._union_rows(key, rows)
        self.factor |= other.factor
        for key in other.lo:
            if key not in self.lo:
                self.lo[key], self.hi[key] = other.lo[key], other.hi[key]
                if key in other.values:
                    self.values[key] = other.values[key]
                continue
            self.lo[key] = min(self.lo[key], other.lo[key])
            self.hi[key] = max(self.hi[key], other.hi[key])
            if key in self.values:
                a, b = self.values[key], other.values.get(key)
                if a is None or b is None:
                    self.values[key] = None
                else:
                    new = np.union1d(a, b)
                    self.values[key] = new if new.size <= self.m[key] else None
        return self


# ----------------------------------------------------------------------------- index spaces


@dataclass(frozen=True, eq=False)
class IndexSpace:
    """Where the rows of one or more blocks point: a covariate's distinct values or grid,
    the levels of a random effect, or those of a grouping factor.

    Attributes
    ----------
    name : str
    kind : {"values", "grid", "rows", "factor", "product", "re", "bar"}
    size : int
        Number of cells.
    values : ndarray (size,), (size, d) or None
        The distinct values (``"values"``), the grid points (``"grid"``) or the distinct rows,
        sorted (``"rows"``, a smooth of ``d`` covariates).
    node : Node or None
        The covariate (``"values"``, ``"grid"``).
    lo, dx : float
        The grid's start and step.
    smooth : SmoothTerm or None
        The constructed ``s(..., bs = "re")`` term (``"re"``).
    nodes : tuple of Node
        Its covariates (``"re"``).
    term : int
        The random-effect term (``"bar"``).
    levels : tuple of str
        A factor covariate's levels (``"factor"``).
    parts, sizes : tuple
        The margins' spaces and sizes (``"product"``: cell ``sum_j k_j prod_{i > j} size_i``).
    """

    name: str
    kind: str
    size: int
    values: np.ndarray | None = None
    node: object = None
    lo: float = 0.0
    dx: float = 0.0
    smooth: object = None
    nodes: tuple = ()
    term: int = -1
    levels: tuple = ()
    parts: tuple = ()
    sizes: tuple = ()

    @property
    def mapped(self) -> bool:
        """Whether a term's rows are stored on the occupied cells only (covariate values and their
        combinations); levels of factors and grouping factors are all occupied."""
        return self.kind in ("values", "grid", "rows", "product", "factor")


@dataclass(frozen=True, eq=False)
class BlockSpec:
    """Columns of the model matrix whose row ``i`` is ``by[i] * Xu[k[i]]``, ``k`` into ``space``.

    Attributes
    ----------
    space : str
    by : tuple or None
        ``("numeric", node)``, ``("factor", node, levels, level)``, ``("bar", term, column)``
        or ``("re", )`` (the random effect's own multiplier); None: no multiplier.
    item : int
        Position of its term among the formula's smooths and bars.
    """

    space: str
    by: tuple | None
    item: int


@dataclass(frozen=True, eq=False)
class GamStreamPlan:
    """What the accumulation pass needs to turn a batch into indices and multipliers (no rows).

    Attributes
    ----------
    design : StreamDesign
        The first pass's design (parametric spec, random-effect terms, counts),
        without its source.
    spaces : dict of str -> IndexSpace
    blocks : list of BlockSpec
    items : list of tuple
        The formula's smooths and bars in formula order: ``("s", spec, space)``,
        ``("re", spec, smooth terms)`` or ``("bar", bar, term index)``.
    """

    design: object
    spaces: dict
    blocks: list
    items: list
    select: bool = False
    knots: dict | None = None

    @property
    def pp(self) -> int:
        return len(self.design.X_names)


@dataclass(frozen=True, eq=False)
class GamBatch:
    """One batch of complete rows as the accumulation needs it.

    Attributes
    ----------
    P : ndarray (m, pp)
        Parametric columns.
    y : ndarray (m,)
        Response.
    z : ndarray (m,)
        Response minus offset.
    w : ndarray (m,) or None
        Prior weights.
    codes : dict of str -> ndarray of int64 (m,)
        Cell per row in each index space (-1: none).
    by : list of ndarray (m,) or None
        Row multiplier per block.
    """

    P: np.ndarray
    y: np.ndarray
    z: np.ndarray
    w: np.ndarray | None
    codes: dict
    by: list


def _refuse_term(parsed: ParsedFormula, spec, why: str, hint: str = ""):
    raise FormulaError(
        f"{spec.label} cannot be fitted on a streamed source yet: {why}. {hint or 'Fit it in memory (pass a pandas DataFrame)'}",
        parsed.formula, spec.node.span)


def _smooth_columns(parsed: ParsedFormula) -> set[str]:
    out: set[str] = set()
    for sc in parsed.smooths:
        out |= {n.value for n in names_in(sc.node)}
    return out


def scan_gam_design(formula, source, weights=None, offset=None, *, discrete_m: int | None = None,
                    select: bool = False, knots: dict | None = None, batch_size: int = 500_000,
                    progress: bool = True) -> GamStreamPlan:
    """First pass of ``bam(discrete = TRUE)`` over a streamed source.

    Parameters
    ----------
    formula : str
    source : pymlm.sources.Source
    weights, offset : str or None
        Column names.
    discrete_m : int, optional
        Largest number of distinct values per covariate (default mgcv's 1000).
    select : bool
    knots : dict, optional
    batch_size : int
    progress : bool

    Returns
    -------
    GamStreamPlan

    Raises
    ------
    FormulaError
        A smooth whose covariate is a factor where numbers are needed.
    DataError
        As :func:`~pymlm.design.scan_design`.
    """
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    m1 = default_levels(1, discrete_m)
    covariates, bys, ms, joints = {}, {}, {}, {}
    specs = []
    for sc in parsed.smooths:
        spec = parse_smooth(sc.node)
        specs.append(spec)
        where = f"the term {spec.label}"
        if spec.function == "s" and spec.bs[0] not in ("re", "fs") and len(spec.terms) != 1:
            # mgcv's joint rule: the distinct rows while at most md^d, else a grid of md points each
            d = len(spec.terms)
            joints[tuple(spec.terms)] = (tuple(spec.term_nodes), default_levels(d, discrete_m) ** d)
        # one-covariate smooths, tensor margins, a factor smooth's or a random effect's covariates:
        # each its own index (a random slope's range scales its penalty)
        for term, node in zip(spec.terms, spec.term_nodes):
            covariates[(term, m1)] = (node, where)
            ms[(term, m1)] = m1
        if spec.by_node is not None:
            bys[("by", spec.by)] = (spec.by_node, where)
            ms[("by", spec.by)] = m1
    stats = _CovariateStats(covariates, bys, ms, joints)
    design = scan_design(parsed, source, weights, offset, check="none", batch_size=batch_size,
                         progress=progress, modelled=_smooth_columns(parsed), extra=stats)
    stats = design.extra
    proto = design.prototype
    for spec in specs:
        if spec.function == "s" and spec.bs[0] == "fs":
            n_factor = sum((t, m1) in stats.factor for t in spec.terms)
            if n_factor != 1:
                raise DataError(f"{spec.label}: an 'fs' term needs exactly one factor among its covariates "
                                f"({', '.join(spec.terms)}); convert the grouping column to a categorical")
        elif spec.function != "s" or spec.bs[0] != "re":
            for t in spec.terms:
                if (t, m1) in stats.factor and spec.function in ("te", "ti"):
                    raise DataError(f"{spec.label}: te() margins must be numeric; {t} is a factor")
                if (t, m1) in stats.factor:
                    _refuse_term(parsed, spec, f"its covariate {t} is a factor")

    # smooths and bars in formula order, as build_gam_design orders them
    order = [(sc.node.span[0], "s", spec) for sc, spec in zip(parsed.smooths, specs)]
    seen: dict[int, int] = {}
    for k, bar in enumerate(parsed.bars):
        key = bar.node.span[0]
        seen[key] = seen.get(key, 0) + 1
        order.append((key + seen[key] * 1e-6, "b", (k, bar)))
    order.sort(key=_smooth_sort_key)

    spaces: dict = {}
    blocks: list = []
    items: list = []
    for item, (_, kind, obj) in enumerate(order):
        if kind == "b":
            k, bar = obj
            t = design.re_terms[k]
            name = f"bar:{k}"
            spaces[name] = IndexSpace(name, "bar", t.nlevels, term=k)
            blocks += [BlockSpec(name, ("bar", k, r), item) for r in range(t.p)]
            items.append(("bar", bar, k))
            continue
        spec = obj
        where = f"the term {spec.label}"
        by_stand_in, by_specs = _by_stand_in(spec, proto, stats, where)
        if spec.bs[0] == "re":
            # one row standing for all: every factor's levels, and a numeric covariate (a random
            # slope) at its largest magnitude, which is what scales the penalty (construct_smooth)
            cov = []
            for term, node in zip(spec.terms, spec.term_nodes):
                if (term, m1) in stats.factor:
                    f = covariate(node, proto, where)
                    cov.append(Factor(np.zeros(1, dtype=np.int64), tuple(f.levels)))
                else:
                    cov.append(np.array([max(abs(stats.lo[(term, m1)]), abs(stats.hi[(term, m1)]))]))
            if not any(isinstance(c, Factor) for c in cov):
                raise DataError(f"{spec.label}: a random effect needs a factor among its covariates; convert "
                                "the grouping column to a categorical")
            sms = construct_smooth(spec, cov, by_stand_in, knots)
            name = f"re:{spec.label}"
            spaces[name] = IndexSpace(name, "re", sms[0].basis.ncol, smooth=sms[0], nodes=tuple(spec.term_nodes))
            blocks += [BlockSpec(name, b, item) for b in by_specs]
            items.append(("re", spec, sms, cov, by_stand_in))
            continue
        joint = tuple(spec.terms) in joints and spec.bs[0] not in ("re", "fs") and spec.function == "s"
        rows = stats.rows.get(tuple(spec.terms)) if joint else None
        if joint and rows is not None:
            name = f"rows:{','.join(spec.terms)}"
            spaces[name] = IndexSpace(name, "rows", rows.shape[0], values=rows, nodes=tuple(spec.term_nodes))
            blocks += [BlockSpec(name, b, item) for b in by_specs]
            items.append(("s", spec, name, by_stand_in))
            continue
        if joint:
            md = default_levels(len(spec.terms), discrete_m)
            margins = [_margin_space(spaces, t, node, m1, stats, proto, where, grid_m=md)
                       for t, node in zip(spec.terms, spec.term_nodes)]
        else:
            margins = [_margin_space(spaces, t, node, m1, stats, proto, where)
                       for t, node in zip(spec.terms, spec.term_nodes)]
        if len(margins) == 1:
            name = margins[0]
        else:
            # a tensor product or a factor smooth: the combinations of its margins' cells
            name = f"prod:{','.join(margins)}"
            sizes = tuple(spaces[mg].size for mg in margins)
            spaces[name] = IndexSpace(name, "product", int(np.prod(sizes, dtype=np.int64)), parts=tuple(margins),
                                      sizes=sizes)
        blocks += [BlockSpec(name, b, item) for b in by_specs]
        items.append(("s", spec, name, by_stand_in))
    return GamStreamPlan(_without_source(design), spaces, blocks, items, bool(select), knots)


def with_parametric_columns(plan: GamStreamPlan, keep) -> GamStreamPlan:
    """The plan with only the parametric columns ``keep`` (linearly dependent ones dropped)."""
    from dataclasses import replace

    spec = plan.design.fixed_spec.with_keep(np.asarray(keep))
    design = replace(plan.design, fixed_spec=spec, X=np.zeros((0, len(keep))), X_names=list(spec.kept_names))
    return replace(plan, design=design)


def _margin_space(spaces: dict, term: str, node, m1: int, stats, proto, where: str, grid_m: int | None = None) -> str:
    """The index space of one covariate of a smooth (created once, shared by the terms using it);
    ``grid_m``: always the grid of that many points (a jointly discretized smooth's margins)."""
    key = (term, m1)
    if grid_m is not None:
        name = f"g{grid_m}:{term}"
        if name not in spaces:
            grid = r_seq(stats.lo[key], stats.hi[key], grid_m)
            spaces[name] = IndexSpace(name, "grid", grid.size, values=grid, node=node, lo=stats.lo[key],
                                      dx=float(grid[1] - grid[0]))
        return name
    if key in stats.factor:
        name = f"f:{term}"
        if name not in spaces:
            f = covariate(node, proto, where)
            spaces[name] = IndexSpace(name, "factor", len(f.levels), node=node, levels=tuple(f.levels))
        return name
    name = f"x:{term}"
    if name not in spaces:
        lo, hi = stats.lo[key], stats.hi[key]
        values = stats.values.get(key)
        if values is not None:
            spaces[name] = IndexSpace(name, "values", values.size, values=values, node=node)
        else:
            grid = r_seq(lo, hi, m1)
            spaces[name] = IndexSpace(name, "grid", grid.size, values=grid, node=node, lo=lo,
                                      dx=float(grid[1] - grid[0]))
    return name


def _without_source(design):
    from dataclasses import replace

    # what travels to the workers: no source, no first-pass state, the prototype frame's columns only
    return replace(design, source=None, extra=None, prototype=design.prototype.iloc[:0])


def _by_stand_in(spec, proto, stats, where):
    """The ``by`` variable as the smooth constructor sees it, without the rows (a factor's levels; a
    numeric variable's range), and the multiplier of each block the term makes."""
    if spec.by_node is None:
        return None, [None if spec.bs[0] != "re" else ("re",)]
    key = ("by", spec.by)
    re = spec.bs[0] == "re"
    if key in stats.factor:
        f = covariate(spec.by_node, proto, where)
        if not isinstance(f, Factor):
            raise DataError(f"{where}: the by variable {spec.by} is a factor in some rows and numeric in others")
        stand_in = Factor(np.zeros(0, dtype=np.int64), tuple(f.levels))
        return stand_in, [("factor", spec.by_node, tuple(f.levels), j, re) for j in range(len(f.levels))]
    # a constant numeric by keeps the sum-to-zero constraint (construct_smooth's test on the rows)
    stand_in = np.array([stats.lo[key], stats.hi[key]])
    return stand_in, [("numeric", spec.by_node, re)]


# ----------------------------------------------------------------------------- batches


def _space_codes(space: IndexSpace, plan: GamStreamPlan, batch: pd.DataFrame, cache: dict) -> np.ndarray:
    where = f"the term using {space.name.split(':', 1)[1]}"
    if space.kind in ("values", "grid"):
        x = np.asarray(covariate(space.node, batch, where), dtype=float)
        if space.kind == "values":
            k = np.searchsorted(space.values, x)
            k = np.minimum(k, space.size - 1)
            if not np.array_equal(space.values[k], x):
                raise DataError(f"{where}: values not seen by the first pass; the source changed between passes")
            return k.astype(np.int64)
        if space.dx <= 0:
            return np.zeros(x.shape[0], dtype=np.int64)
        # mgcv's rounding to the nearest grid point (design._discrete._grid_index)
        k = np.rint((x - space.lo) / space.dx).astype(np.int64)
        return np.clip(k, 0, space.size - 1)
    if space.kind == "factor":
        f = covariate(space.node, batch, where)
        if not isinstance(f, Factor):
            raise DataError(f"{where}: {space.name[2:]} is a factor in some rows and numeric in others")
        return f.recode(space.levels).codes.astype(np.int64)
    if space.kind == "rows":
        X = np.column_stack([np.asarray(covariate(n, batch, where), dtype=float) for n in space.nodes])
        key = np.zeros(X.shape[0], dtype=np.int64)
        row_key = np.zeros(space.size, dtype=np.int64)
        for j in range(X.shape[1]):
            col = np.unique(space.values[:, j])
            key = key * col.size + np.minimum(np.searchsorted(col, X[:, j]), col.size - 1)
            row_key = row_key * col.size + np.searchsorted(col, space.values[:, j])
        k = np.minimum(np.searchsorted(row_key, key), space.size - 1)
        if not np.array_equal(space.values[k], X):
            raise DataError(f"{where}: values not seen by the first pass; the source changed between passes")
        return k.astype(np.int64)
    if space.kind == "product":
        key = np.zeros(len(batch), dtype=np.int64)
        bad = np.zeros(len(batch), dtype=bool)
        for part, size in zip(space.parts, space.sizes):
            k = cache[("codes", part)]
            bad |= k < 0
            key = key * size + np.maximum(k, 0)
        return np.where(bad, -1, key)
    if space.kind == "re":
        cols = [covariate(node, batch, where) for node in space.nodes]
        codes, mult = space.smooth.basis.structure(cols)
        cache[space.name] = mult
        return codes.astype(np.int64)
    t = plan.design.re_terms[space.term]
    cache[space.name] = t.model_matrix(batch)
    return np.asarray(t.codes_for(batch), dtype=np.int64)


def _multiplier(block: BlockSpec, batch: pd.DataFrame, cache: dict):
    by = block.by
    if by is None:
        return None
    if by[0] == "bar":
        return np.asarray(cache[block.space][:, by[2]], dtype=float)
    base = cache.get(block.space) if block.space.startswith("re:") else None
    if by[0] == "re":
        return base
    where = "a by variable"
    v = covariate(by[1], batch, where)
    if by[0] == "numeric":
        if isinstance(v, Factor):
            raise DataError(f"the by variable {deparse(by[1])} is a factor in some rows and numeric in others")
        mult = np.asarray(v, dtype=float)
    else:
        if not isinstance(v, Factor):
            raise DataError(f"the by variable {deparse(by[1])} is numeric in some rows and a factor in others")
        mult = (v.recode(by[2]).codes == by[3]).astype(float)
    return mult if base is None else base * mult


def gam_batch(plan: GamStreamPlan, batch: pd.DataFrame) -> GamBatch | None:
    """The indices, multipliers and parametric columns of one batch's complete rows (None: none).

    Raises
    ------
    DataError
        A response that is not a single numeric column; values outside what the first pass saw.
    """
    design = plan.design
    parsed = design.parsed
    batch, w, o = complete_rows(design, batch)
    if len(batch) == 0:
        return None
    node = parsed.response
    if node is not None and node.kind == "name" and node.value in batch.columns:
        col = batch[node.value]
        if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype.kind in "OSU":
            raise DataError(f"the response {node.value!r} is not numeric; a streamed bam needs numbers "
                            "(0/1 for a binomial response): convert the column")
    y, y_name = _response(parsed, batch)
    if y.ndim == 2:
        # cbind(successes, failures): proportions with the totals as weights, as build_gam_design
        if np.any(y < 0):
            raise DataError(f"the response {y_name!r} has negative counts; cbind() needs successes and "
                            "failures >= 0")
        tot = y[:, 0] + y[:, 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(tot > 0, y[:, 0] / np.where(tot > 0, tot, 1.0), 0.0)
        w = tot if w is None else np.asarray(w, dtype=float) * tot
    off = None if o is None else np.asarray(o, dtype=float)
    for onode in parsed.offsets:
        val = np.broadcast_to(np.asarray(evaluate(onode, batch), dtype=float), y.shape)
        off = val if off is None else off + val
    z = y if off is None else y - off
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        P = rebuild_model_matrix(design.fixed_spec, batch, "the parametric terms")
    P = P.toarray() if sp.issparse(P) else np.asarray(P, dtype=float)
    cache: dict = {}
    codes = {}
    for name, space in sorted(plan.spaces.items(), key=lambda kv: kv[1].kind == "product"):
        codes[name] = cache[("codes", name)] = _space_codes(space, plan, batch, cache)
    codes = {name: codes[name] for name in plan.spaces}
    by = [_multiplier(b, batch, cache) for b in plan.blocks]
    return GamBatch(P, y, z, w, codes, by)


# ----------------------------------------------------------------------------- the design after the pass


@dataclass(frozen=True, eq=False)
class StreamGamDesign(GamDesign):
    """A :class:`GamDesign` whose rows were streamed: terms, names and penalties, no rows.

    ``y``, ``Xp`` and the weights have no rows; ``blocks`` holds, per block of
    the plan, ``(space, Xu on the space's cells or None for the identity,
    start, ncol)``.

    Attributes
    ----------
    source_name : str
    nobs_total : int
    summary : dict
        Row sums for the fit's summaries (see :mod:`pymlm.crossprod._gam_stream`).
    workers : tuple of str
        For a Dask DataFrame, the workers that computed the cross-tabulations.
    """

    source_name: str = ""
    nobs_total: int = 0
    summary: dict = field(default_factory=dict)
    workers: tuple = ()

    @property
    def n(self) -> int:
        return int(self.nobs_total)

    def parametric_rows(self, start: int, stop: int):
        raise DataError(f"the rows of this model were streamed from {self.source_name!r} and are not in "
                        "memory; predict(newdata) evaluates the model on rows you give")


def _cell_columns(plan: GamStreamPlan, space_name: str, cells: np.ndarray) -> list:
    """A smooth's covariates on the occupied cells of its space: the (rounded) values of a covariate,
    or, for a product, each margin's values (a Factor for a factor margin) at the occupied combinations."""
    space = plan.spaces[space_name]
    if space.kind == "rows":
        return [space.values[cells, j] for j in range(space.values.shape[1])]
    if space.kind != "product":
        return [space.values[cells]]
    out = []
    rem = np.asarray(cells, dtype=np.int64)
    codes = []
    for size in reversed(space.sizes):
        codes.append(rem % size)
        rem = rem // size
    for part, k in zip(space.parts, reversed(codes)):
        margin = plan.spaces[part]
        out.append(Factor(k.astype(np.int64), tuple(margin.levels)) if margin.kind == "factor"
                   else margin.values[k])
    return out


def finish_gam_design(plan: GamStreamPlan, occupied: dict, source_name: str, formula: str):
    """The terms of the streamed design, constructed after the accumulation pass.

    Parameters
    ----------
    plan : GamStreamPlan
    occupied : dict of str -> ndarray of int64
        The occupied cells (sorted) of each index space: the grid points some row rounds to, the
        combinations of a product's margins some row has.
    source_name, formula : str

    Returns
    -------
    design : StreamGamDesign
    block_matrices : list of (Xu or None, start, ncol, cells or None)
        Per block of the plan, its rows on the occupied ``cells`` of its space (``Xu`` None: the
        identity on all the space's cells, the levels of a random effect).
    """
    design = plan.design
    pp = plan.pp
    start = pp
    terms: list[GamTerm] = []
    mats: list = [None] * len(plan.blocks)
    by_item: dict[int, list[int]] = {}
    for j, b in enumerate(plan.blocks):
        by_item.setdefault(b.item, []).append(j)
    labels: set[str] = set()
    for item, entry in enumerate(plan.items):
        idx = by_item.get(item, [])
        if entry[0] == "bar":
            _, bar, k = entry
            re = design.re_terms[k]
            pk, lk = re.p, re.nlevels
            pen = LinearPenalty(start, [np.eye(lk)], 0) if pk == 1 else CorrelatedPenalty(start, pk, lk)
            new = [GamTerm(f"({bar.lhs_text} | {bar.group_name})", start, pk * lk, re=re, penalty=pen)]
            for r, j in enumerate(idx):
                mats[j] = (None, start + r * lk, lk, None)
        elif entry[0] == "re":
            _, spec, sms, cov, by_stand_in = entry
            new, at = [], start
            for st, j in zip(sms, idx):
                new.append(GamTerm(st.label, at, st.ncol, smooth=st, penalty=_penalty_for(st, at, plan.select),
                                   cov=cov, by=by_stand_in))
                mats[j] = (None, at, st.ncol, None)
                at += st.ncol
        else:
            _, spec, space_name, by_stand_in = entry
            cells = np.asarray(occupied[space_name], dtype=np.int64)
            ucols = _cell_columns(plan, space_name, cells)
            sms = construct_smooth(spec, ucols, by_stand_in, plan.knots)
            if len(sms) != len(idx):
                raise DataError(f"{spec.label}: {len(sms)} terms but {len(idx)} blocks; the by variable's levels "
                                "changed between passes")
            new, at = [], start
            for st, j in zip(sms, idx):
                Xu = distinct_rows(st, ucols)
                if sp.issparse(Xu):
                    Xu = Xu.tocsr()
                new.append(GamTerm(st.label, at, st.ncol, smooth=st, penalty=_penalty_for(st, at, plan.select),
                                   cov=ucols, by=by_stand_in))
                mats[j] = (Xu, at, st.ncol, cells)
                at += st.ncol
        for t in new:
            if t.label in labels:
                raise FormulaError(f"the term {t.label} appears twice in the formula; keep one", formula)
            labels.add(t.label)
            start += t.ncol
        terms.extend(new)
    frame = ModelFrame(design.prototype.iloc[:0], np.zeros(0, dtype=np.int64), design.frame.n_dropped,
                       design.frame.n_input, None, None, None)
    names = list(design.X_names)
    out = StreamGamDesign(formula=design.formula, parsed=design.parsed, y=np.zeros(0), y_name=design.y_name,
                          weights=None, offset=None, frame=frame, Xp=np.zeros((0, pp)), p_names=names,
                          fixed_spec=design.fixed_spec, terms=terms, blocks=None, binomial_totals=False,
                          source_name=source_name, nobs_total=design.n)
    return out, mats
