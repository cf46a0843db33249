"""The design of a model whose rows are streamed: levels from a first pass, arrays per batch.

A source that does not fit in memory (a Parquet folder, a CSV file...) is read
twice. The first pass (:func:`scan_design`) collects what the design needs
from all rows and keeps none of them: the rows dropped for missing values,
the levels of every grouping factor (observed combinations for ``a:b``) and of
every factor the fixed effects or a random term's left-hand side use, in R's
order (numbers numerically, strings by code point, a pandas Categorical or an
Arrow dictionary in its categories' order), and a sample of complete rows.

The design is then built by the in-memory code on a small *prototype* frame:
the sample plus rows that carry every level, so that the column names,
contrasts and level orders are those of the whole data. Each batch of the
second pass is turned into arrays by the same code with those levels fixed
(:func:`batch_arrays`: :func:`~pymlm.design.rebuild_model_matrix` for X,
:meth:`ReTerm.codes_for` and :meth:`ReTerm.model_matrix` for the random
terms), so a streamed fit sees the same numbers as an in-memory fit of the
same rows.

Transformations whose value depends on all rows (``scale(x)``, ``poly(x, 2)``,
``bs(x)``...) are refused for streamed sources: their state would need a pass
of its own.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError, FormulaError, MissingDataWarning, warn
from ..formula import ParsedFormula, names_in, parse_formula
from ..sources import Source
from ..sources._dask import dask_frame
from ._design import Design, _offset, _refuse_smooths, _response
from ._fixed import build_model_matrix, rebuild_model_matrix
from ._frame import (
    _FACTOR_CALLS,
    ModelFrame,
    _check_columns,
    _check_vector,
    _column_vector,
    used_columns,
)
from ._random import build_re_terms, grouping_codes

__all__ = ["BatchArrays", "StreamDesign", "batch_arrays", "scan_design"]

#: Complete rows kept from the first pass to evaluate the formula's expressions on.
SAMPLE_ROWS = 2000


@dataclass(frozen=True, eq=False)
class StreamDesign(Design):
    """A :class:`Design` built from a streamed source: names, levels, specs, no rows.

    ``y``, ``X`` and the random terms' ``codes`` and ``X`` have no rows;
    :func:`batch_arrays` gives them batch by batch.

    Attributes
    ----------
    source : Source
    nobs_total : int
        Complete rows (the model's observations).
    batch_size : int
        Rows per batch.
    read_columns : tuple of str
        The columns read from the source (the formula's, weights and offset).
    weights_column, offset_column : str or None
    workers : tuple of str
        For a Dask DataFrame, the addresses of the workers that computed its cross-products.
    prototype : pandas.DataFrame
        The small frame the design was built on: a sample of complete rows plus rows
        carrying every level of the factors the terms use.
    extra : object or None
        The state of the ``extra`` collector given to :func:`scan_design`, after the pass.
    """

    source: Source | None = None
    nobs_total: int = 0
    batch_size: int = 500_000
    read_columns: tuple = ()
    weights_column: str | None = None
    offset_column: str | None = None
    workers: tuple = ()
    prototype: pd.DataFrame | None = field(default=None, repr=False)
    extra: object = field(default=None, repr=False)
    rows_in_memory: bool = field(default=False, init=False)

    @property
    def n(self) -> int:
        return int(self.nobs_total)

    @property
    def Z(self):
        raise DataError(
            f"the rows of this design were streamed from {self.source.name!r} and are not in memory, so "
            "it has no Z matrix; batch_arrays(design, batch) gives the arrays of a batch of rows")

    def __repr__(self) -> str:
        terms = ", ".join(f"({t.bar.lhs_text} | {t.group}): {t.nlevels} levels x {t.p}" for t in self.re_terms)
        return (f"StreamDesign({self.formula!r}: n={self.n} streamed from {self.source.name!r}, "
                f"X columns {self.X_names}, terms [{terms}], theta={self.theta.tolist()})")

    def batches(self, progress: bool = False, desc: str = "reading"):
        """The source's batches of the model's columns (pandas DataFrames)."""
        return self.source.batches(list(self.read_columns), self.batch_size, progress=progress, desc=desc)


@dataclass(frozen=True, eq=False)
class BatchArrays:
    """The model's arrays for the complete rows of one batch.

    Attributes
    ----------
    y : ndarray (m,)
        Response minus offset.
    X : ndarray (m, p) or scipy.sparse.csc_matrix
        Fixed effects, the design's kept columns.
    codes : list of ndarray (m,)
        Level codes (in the design's levels) per random term.
    Xs : list of ndarray (m, p_k)
        Raw model matrix per random term.
    weights : ndarray (m,) or None
    """

    y: np.ndarray
    X: object
    codes: list
    Xs: list
    weights: np.ndarray | None


def _refuse(spec, what: str):
    for v in spec.variables:
        if v.state:
            raise FormulaError(
                f"{v.label} in {what} is computed from all rows (its centring, scaling or basis), "
                "which a streamed source does not hold at once: compute the column beforehand "
                "(e.g. with the mean and sd of a first pass), or fit the data in memory",
                v.node.source if v.node is not None else None, v.node.span if v.node is not None else None)


def _factor_call_columns(parsed: ParsedFormula) -> set[str]:
    out: set[str] = set()

    def rec(node, inside=False):
        if node.kind == "name" and inside:
            out.add(node.value)
        call = node.kind == "call" and node.value in _FACTOR_CALLS
        for a in node.args:
            rec(a, inside or call)

    rec(parsed.root)
    return out


def _is_number(dtype) -> bool:
    return (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
            and not isinstance(dtype, pd.CategoricalDtype))


class _Levels:
    """Distinct values of a column over the complete rows of all batches."""

    def __init__(self):
        self.categories: list | None = []  # a Categorical in every batch: the union, in order
        self.ordered = False
        # every batch's categories increasing: parts of one sorted list (a Parquet row group's
        # dictionary holds the categories it uses, in the frame's order), so the union is sorted
        self.increasing = True
        self.values: list = []

    def add(self, col: pd.Series, keep_values: bool):
        if isinstance(col.dtype, pd.CategoricalDtype):
            if self.categories is not None:
                used = col.cat.remove_unused_categories().cat.categories
                seen = set(self.categories)
                self.categories += [c for c in used if c not in seen]
                self.ordered = self.ordered or bool(col.cat.ordered)
                self.increasing = self.increasing and _increasing(list(used))
        else:
            self.categories = None
        if keep_values:
            self.values.append(pd.unique(col.astype(object) if isinstance(col.dtype, pd.CategoricalDtype)
                                         else col))

    def merge(self, other: _Levels) -> None:
        """Add the levels ``other`` saw after those seen here."""
        self.increasing = self.increasing and other.increasing
        if other.categories is None:
            self.categories = None
        elif self.categories is not None:
            seen = set(self.categories)
            self.categories += [c for c in other.categories if c not in seen]
        self.ordered = self.ordered or other.ordered
        self.values += other.values

    @property
    def union(self) -> list | None:
        """The categories of all batches, in order (sorted when every batch's were)."""
        if self.categories is None or not self.increasing:
            return self.categories
        try:
            return sorted(self.categories)
        except TypeError:
            return self.categories

    def cast(self, col: pd.Series) -> pd.Series:
        """A column with the union of categories (when the column is categorical everywhere)."""
        if self.categories is None or not isinstance(col.dtype, pd.CategoricalDtype):
            return col
        return pd.Series(pd.Categorical(col.astype(object), categories=self.union, ordered=self.ordered),
                         index=col.index, name=col.name)

    def distinct(self, dtype) -> pd.Series:
        vals = np.concatenate([np.asarray(v, dtype=object) for v in self.values]) if self.values else np.array([])
        uniq = pd.unique(pd.Series(vals, dtype=object))
        if self.categories is not None and isinstance(dtype, pd.CategoricalDtype):
            return pd.Series(pd.Categorical(uniq, categories=self.union, ordered=self.ordered))
        return pd.Series(uniq, dtype=object).astype(dtype)


def _increasing(values: list) -> bool:
    try:
        return all(a < b for a, b in itertools.pairwise(values))
    except TypeError:
        return False


def _weights_offset(batch: pd.DataFrame, weights, offset):
    w, w_col = _column_vector(weights, batch, "weights")
    o, o_col = _column_vector(offset, batch, "offset")
    _check_vector(w, "weights", w_col, nonnegative=True)
    _check_vector(o, "offset", o_col)
    return w, o


def _complete(batch: pd.DataFrame, columns, w, o) -> np.ndarray:
    missing = np.array(batch[columns].isna().any(axis=1), dtype=bool) if columns else np.zeros(len(batch), bool)
    for vec in (w, o):
        if vec is not None:
            missing |= np.isnan(vec)
    return missing



class _Scan:
    """What the first pass keeps of the rows it has seen; :meth:`merge` joins the states of
    consecutive parts (Dask partitions scanned on workers) as if one pass had seen both.

    ``extra``, when given, collects more from the complete rows of every batch: an object with
    ``add(batch)``, ``merge(other)`` and ``empty()`` (e.g. the ranges and distinct values of
    smooth covariates, :mod:`pymlm.design._gam_stream`)."""

    def __init__(self, parsed, columns, weights, offset, group_sets, grouping, modelled, in_factor, extra=None):
        self.parsed, self.columns, self.weights, self.offset = parsed, columns, weights, offset
        self.extra = extra
        self.group_sets, self.grouping, self.modelled, self.in_factor = group_sets, grouping, modelled, in_factor
        self.n_input = self.n_dropped = 0
        self.na_columns: dict[str, None] = {}
        self.levels: dict[str, _Levels] = {}
        self.level_cols: list[str] | None = None
        self.combos: dict = {fs: [] for fs in group_sets}
        self.sample: list[pd.DataFrame] = []
        self.n_sample = 0

    def empty(self) -> _Scan:
        return _Scan(self.parsed, self.columns, self.weights, self.offset, self.group_sets, self.grouping,
                     self.modelled, self.in_factor, None if self.extra is None else self.extra.empty())

    def _start(self, dtypes):
        columns = self.columns
        self.level_cols = [c for c in columns if c in self.grouping or
                           (c in self.modelled and (not _is_number(dtypes[c]) or c in self.in_factor))]
        self.levels = {c: _Levels() for c in self.level_cols}

    def add(self, batch: pd.DataFrame) -> None:
        columns, weights, offset = self.columns, self.weights, self.offset
        if self.level_cols is None:
            self._start(dict(batch.dtypes))
        _check_columns(self.parsed, batch[columns])
        w, o = _weights_offset(batch, weights, offset)
        missing = _complete(batch, columns, w, o)
        self.n_input += len(batch)
        k = int(missing.sum())
        if k:
            self.n_dropped += k
            self.na_columns.update((c, None) for c in columns if batch[c].isna().any())
            if w is not None and np.isnan(w).any():
                self.na_columns[weights] = None
            if o is not None and np.isnan(o).any():
                self.na_columns[offset] = None
            batch = batch[~missing]
        if not len(batch):
            return
        if self.extra is not None:
            self.extra.add(batch)
        for c in self.level_cols:
            self.levels[c].add(batch[c], keep_values=c in self.modelled)
        for fs in self.group_sets:
            self.combos[fs].append(batch[list(fs)].drop_duplicates())
        if self.n_sample < SAMPLE_ROWS:
            self.sample.append(batch.iloc[: SAMPLE_ROWS - self.n_sample])
            self.n_sample += len(self.sample[-1])

    def merge(self, other: _Scan) -> _Scan:
        """This state followed by ``other`` (the next part's), in place."""
        self.n_input += other.n_input
        self.n_dropped += other.n_dropped
        self.na_columns.update(other.na_columns)
        if other.level_cols is not None:
            if self.level_cols is None:
                self.level_cols, self.levels = other.level_cols, {c: _Levels() for c in other.level_cols}
            for c in self.level_cols:
                self.levels[c].merge(other.levels[c])
        for fs in self.group_sets:
            self.combos[fs] += other.combos[fs]
        if self.extra is not None and other.extra is not None:
            self.extra.merge(other.extra)
        for frame in other.sample:
            if self.n_sample >= SAMPLE_ROWS:
                break
            self.sample.append(frame.iloc[: SAMPLE_ROWS - self.n_sample])
            self.n_sample += len(self.sample[-1])
        return self


def scan_part(scan: _Scan, frame: pd.DataFrame, columns, batch_size: int) -> _Scan:
    """The first-pass state of one part (a Dask partition), from an empty ``scan``."""
    state = scan.empty()
    frame = frame[list(columns)]
    for s in range(0, len(frame), max(int(batch_size), 1)):
        state.add(frame.iloc[s:s + batch_size].reset_index(drop=True))
    # one frame of distinct combinations per part: what travels back is O(groups of the part)
    state.combos = {fs: [pd.concat(v, ignore_index=True).drop_duplicates(ignore_index=True)] if v else []
                    for fs, v in state.combos.items()}
    return state


def scan_design(formula, source: Source, weights=None, offset=None, *, check: str = "lmer",
                batch_size: int = 500_000, progress: bool = True, modelled=(), extra=None) -> StreamDesign:
    """First pass over a streamed source: the design without its rows.

    Parameters
    ----------
    formula : str or ParsedFormula
    source : Source
    weights, offset : str or None
        Column names (per-row arrays cannot be aligned with a stream).
    check : {"lmer", "glmer", "none"}
        As :func:`build_design`; the checks on numbers of levels use all rows.
    batch_size : int
    progress : bool
        A bar over the source's parts.
    modelled : iterable of str
        More columns whose levels the terms use when they are factors (the
        covariates of smooth terms): their levels are collected and put in the
        prototype frame.
    extra : object, optional
        A collector of more first-pass statistics (see :class:`_Scan`); its final
        state is the design's ``extra``.

    Returns
    -------
    StreamDesign
        Its ``fixed_spec`` keeps every column: rank-deficient columns are found
        from the cross-products of the second pass.

    Raises
    ------
    DataError, FormulaError
        As :func:`build_design`; weights or an offset given as values instead
        of a column; a transformation computed from all rows (``scale(x)``...);
        a column absent from some file or of clashing types (see
        :meth:`pymlm.sources.Source.batches`).
    """
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    modelled_more = set(modelled)
    if check in ("lmer", "glmer"):
        _refuse_smooths(parsed, check)
        if not parsed.bars:
            raise FormulaError(
                "no random-effects terms in the formula; add one such as (1 | group), "
                "or use an ordinary linear model", parsed.formula, (0, len(parsed.formula)))
    for what, spec in (("weights", weights), ("offset", offset)):
        if spec is not None and not isinstance(spec, str):
            raise DataError(
                f"{what} must be a column name when the data are streamed from {source.name!r}: "
                "values given one per row cannot be matched to the rows of a stream; add them as a column")
    columns = used_columns(parsed, source.columns)
    wo_columns = [c for c in (weights, offset) if c is not None]
    for c in wo_columns:
        if c not in source.columns:
            from .._validation import unknown_column_error

            raise unknown_column_error(c, "weights" if c == weights else "offset", source.columns)
    read = list(dict.fromkeys(columns + wo_columns))
    group_sets = list(dict.fromkeys(bar.group_factors for bar in parsed.bars))
    grouping = {f for fs in group_sets for f in fs}
    modelled = {n.value for _, t in parsed.fixed_terms for n in names_in(t)}
    modelled |= {n.value for bar in parsed.bars if bar.lhs is not None for n in names_in(bar.lhs)}
    modelled |= set(modelled_more)
    in_factor = _factor_call_columns(parsed)

    scan = _Scan(parsed, columns, weights, offset, group_sets, grouping, modelled, in_factor, extra)
    frame = dask_frame(source)
    if frame is not None:
        # a Dask DataFrame: each partition is scanned on a worker, the states merged in order
        scan = cluster_scan(frame, scan, read, batch_size)
    else:
        for batch in source.batches(read, batch_size, progress=progress, desc="levels"):
            scan.add(batch)
    n_input, n_dropped, na_columns = scan.n_input, scan.n_dropped, scan.na_columns
    levels, level_cols, combos, sample = scan.levels, scan.level_cols or [], scan.combos, scan.sample
    if n_input == 0:
        raise DataError(f"{source.name!r} has no rows")
    if n_dropped == n_input:
        raise DataError(
            f"no rows left after dropping rows with missing values (every row of {source.name!r} misses a "
            f"value in {', '.join(na_columns)}); check the data or the formula's columns")
    if n_dropped:
        warn(f"{n_dropped} of {n_input} rows dropped for missing values (in {', '.join(na_columns)})",
             MissingDataWarning)
    n = n_input - n_dropped

    def cast(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.reset_index(drop=True)
        for c in level_cols:
            if c in frame.columns:
                frame[c] = levels[c].cast(frame[c])
        return frame

    proto = cast(pd.concat(sample, ignore_index=True))
    # rows that carry every level of the factors the terms use, the other columns from the sample
    distinct = {c: levels[c].distinct(proto[c].dtype) for c in level_cols if c in modelled}
    k = max((len(v) for v in distinct.values()), default=0)
    if k:
        ext = proto.iloc[np.arange(k) % len(proto)].reset_index(drop=True)
        for c, v in distinct.items():
            ext[c] = v.iloc[np.arange(k) % len(v)].reset_index(drop=True)
        proto = pd.concat([proto, ext], ignore_index=True)
    groups = {}
    for fs in group_sets:
        all_combos = cast(pd.concat(combos[fs], ignore_index=True)).drop_duplicates(ignore_index=True)
        groups[fs] = (np.zeros(0, dtype=np.int32), grouping_codes(all_combos, fs)[1])
    del combos

    frame = ModelFrame(proto, np.arange(len(proto)), n_dropped, n_input, None, None, proto)
    with warnings.catch_warnings():
        # the scale and rank checks come after the second pass, on all rows
        warnings.simplefilter("ignore")
        _, fixed_spec = build_model_matrix(parsed.fixed_terms, proto, "the fixed effects", formula=parsed.formula)
    _refuse(fixed_spec, "the fixed effects")
    terms = build_re_terms(parsed.bars, frame, check, groups=groups, nobs=n)
    for t in terms:
        if t.spec is not None:
            _refuse(t.spec, f"the random-effects term ({t.bar.label})")
    terms = [replace(t, X=np.zeros((0, t.p))) for t in terms]
    empty_frame = ModelFrame(proto.iloc[:0], np.zeros(0, dtype=np.int64), n_dropped, n_input, None, None, None)
    return StreamDesign(
        formula=parsed.formula, parsed=parsed, y=np.zeros(0), y_name=_response_name(parsed),
        X=np.zeros((0, len(fixed_spec.names))), X_names=list(fixed_spec.names), re_terms=terms,
        weights=None, offset=None, frame=empty_frame, fixed_spec=fixed_spec, dropped_columns=[],
        source=source, nobs_total=n, batch_size=int(batch_size), read_columns=tuple(read),
        weights_column=weights, offset_column=offset, prototype=proto, extra=scan.extra)


def _response_name(parsed: ParsedFormula) -> str:
    from ..formula import deparse

    if parsed.response is None:
        raise FormulaError("the formula has no response; write it as 'response ~ terms'", parsed.formula, (0, 1))
    return deparse(parsed.response)


def batch_arrays(design: StreamDesign, batch: pd.DataFrame) -> BatchArrays | None:
    """The model's arrays for the complete rows of one batch (None when none is complete).

    The same code as for a frame in memory, with the levels, contrasts and kept
    columns of ``design``: the response and offset as :func:`build_design`
    evaluates them, X by :func:`rebuild_model_matrix`, the random terms' codes
    and model matrices by :meth:`ReTerm.codes_for` / :meth:`ReTerm.model_matrix`.
    """
    parsed = design.parsed
    batch, w, o = complete_rows(design, batch)
    m = len(batch)
    if m == 0:
        return None
    frame = ModelFrame(batch, np.arange(m), 0, m, w, o, batch)
    y, _ = _response(parsed, frame, True)
    off = _offset(parsed, frame)
    if y.ndim != 1:
        raise DataError(f"lmer needs a single numeric response; {design.y_name!r} has {y.shape[1]} columns")
    if off is not None:
        y = y - off
    X = rebuild_model_matrix(design.fixed_spec, batch, "the fixed effects")
    codes = [t.codes_for(batch) for t in design.re_terms]
    Xs = [t.model_matrix(batch) for t in design.re_terms]
    return BatchArrays(y, X if sp.issparse(X) else np.asarray(X, dtype=float), codes, Xs, w)



def complete_rows(design, batch: pd.DataFrame):
    """The rows of ``batch`` complete in every column the formula, the weights and the offset
    use (the rows the first pass counted as dropped are left out), with their weights and offset.

    Returns
    -------
    batch : DataFrame
    weights, offset : ndarray or None
    """
    used = _formula_columns(design)
    columns = [c for c in design.read_columns if c in used]
    w, o = _weights_offset(batch, design.weights_column, design.offset_column)
    missing = _complete(batch, columns, w, o)
    if missing.any():
        keep = ~missing
        batch = batch[keep].reset_index(drop=True)
        w = None if w is None else w[keep]
        o = None if o is None else o[keep]
    return batch, w, o

def _formula_columns(design: StreamDesign) -> set[str]:
    return {n.value for n in names_in(design.parsed.root)}


def cluster_scan(frame, scan, columns, batch_size: int):
    """The first pass over a Dask DataFrame, partition by partition on the workers.

    Returns
    -------
    the merged scan state (see :class:`pymlm.design._stream._Scan`)
    """
    import dask

    parts = frame[list(columns)].to_delayed()
    states = dask.compute(*[dask.delayed(scan_part, pure=True)(scan, part, list(columns), batch_size)
                            for part in parts])
    out = scan.empty()
    for s in states:
        out.merge(s)
    return out
