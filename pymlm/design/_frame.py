"""The model frame: the columns a formula uses, with missing rows dropped.

As R's ``model.frame(..., drop.unused.levels = TRUE)`` does for lme4: rows
with a missing value in any variable the model uses (response, fixed and
random terms, weights, offset) are dropped and counted. Transformations in
the formula (``scale(x)``, ``poly(x, 2)``) are computed, as in R, on every
row where their own inputs are present, before rows are dropped for missing
values elsewhere; so the frame keeps both the used columns of every row
(``source``) and the positions of the complete rows (``rows``).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._validation import as_frame, unknown_column_error
from ..errors import DataError, MissingDataWarning, warn
from ..formula import ParsedFormula, names_in
from ..formula._ast import Node, to_python

__all__ = [
    "ModelFrame",
    "as_categorical",
    "check_new_columns",
    "evaluate",
    "level_labels",
    "model_frame",
    "number_labels",
    "r_number",
    "used_columns",
]

# Names that may appear in formulas without being columns.
_CONSTANTS = {"TRUE", "FALSE", "T", "F", "pi", "contr.poly", "contr.treatment", "contr.sum"}


@dataclass(frozen=True)
class ModelFrame:
    """The rows and columns a model uses.

    Attributes
    ----------
    data : pandas.DataFrame
        The used columns of the complete rows (index 0..n-1), dtypes as given.
    rows : ndarray of int
        Positions (0-based) of the kept rows in the original data.
    n_dropped : int
        Rows dropped for missing values.
    n_input : int
        Rows of the original data.
    weights, offset : ndarray or None
        Prior weights and the ``offset=`` argument, aligned with ``data``.
    source : pandas.DataFrame or None
        The used columns of every original row (index 0..n_input-1), on which
        formula transformations are evaluated before ``rows`` are taken.
    """

    data: pd.DataFrame
    rows: np.ndarray
    n_dropped: int
    n_input: int
    weights: np.ndarray | None
    offset: np.ndarray | None
    source: pd.DataFrame | None = None

    @property
    def n(self) -> int:
        return int(self.data.shape[0])

    @property
    def subset(self) -> np.ndarray | None:
        """``rows``, or ``None`` when no row was dropped (no subsetting needed)."""
        return self.rows if self.n_dropped else None


def r_number(value: float) -> str:
    """A double as R's ``as.character`` writes it: 15 significant digits,
    fixed or scientific notation, whichever is shorter.

    Examples
    --------
    >>> [r_number(v) for v in (2.0, 0.1, 1e5, 123456.0, 1 / 3)]
    ['2', '0.1', '1e+05', '123456', '0.333333333333333']
    """
    v = float(value)
    if np.isnan(v):
        return "NaN"
    if np.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    if v == 0:
        return "0"
    # '%.15g' keeps the fewest digits that give the same 15-digit decimal
    mantissa = f"{v:.15g}".partition("e")[0]
    digits = max(len(mantissa.lstrip("-").replace(".", "").strip("0")), 1)
    head, _, exponent = f"{v:.{digits - 1}e}".partition("e")
    exp = int(exponent)
    sci = f"{head}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    fixed = f"{v:.{max(0, digits - 1 - exp)}f}"
    return fixed if len(fixed) <= len(sci) else sci


def number_labels(values, integer: bool = False) -> np.ndarray:
    """R's level labels of numbers (object array), vectorized over the levels.

    Integers print as digits; doubles as :func:`r_number`, computed without a
    Python loop for whole numbers written in fixed notation (the usual case of
    numeric codes), with one for the others.
    """
    u = np.asarray(values)
    if integer:
        return u.astype(np.int64).astype(str).astype(object)
    u = u.astype(float)
    out = np.empty(len(u), dtype=object)
    whole = np.isfinite(u) & (np.abs(u) < 1e15) & (u == np.trunc(u))
    iv = u[whole].astype(np.int64)
    text = iv.astype(str)
    body = np.char.lstrip(text, "-")
    sig = np.maximum(np.char.str_len(np.char.rstrip(body, "0")), 1)
    sci_len = (iv < 0) + sig + (sig > 1) + 4  # d[.ddd]e+XX, exponents below 100
    fixed = sci_len >= np.char.str_len(text)  # R prefers fixed on ties
    idx = np.flatnonzero(whole)
    out[idx[fixed]] = text[fixed].astype(object)
    rest = np.setdiff1d(np.arange(len(u)), idx[fixed], assume_unique=True)
    out[rest] = [r_number(v) for v in u[rest]]
    return out


def level_labels(values) -> list[str]:
    """R's labels for factor levels made from values: integers as digits,
    doubles as :func:`r_number`, logicals as ``FALSE``/``TRUE``, the rest as str."""
    out = []
    for v in values:
        if isinstance(v, (bool, np.bool_)):
            out.append("TRUE" if v else "FALSE")
        elif isinstance(v, (int, np.integer)):
            out.append(str(int(v)))
        elif isinstance(v, (float, np.floating)):
            out.append(r_number(v))
        else:
            out.append(str(v))
    return out


def _category_labels(categories: pd.Index) -> np.ndarray | None:
    """String labels for a Categorical's categories, or None when they already are strings."""
    if pd.api.types.is_string_dtype(categories.dtype) and categories.inferred_type == "string":
        return None
    if pd.api.types.is_bool_dtype(categories.dtype):
        return np.where(categories.to_numpy(dtype=bool), "TRUE", "FALSE").astype(object)
    if pd.api.types.is_numeric_dtype(categories.dtype):
        return number_labels(categories.to_numpy(), pd.api.types.is_integer_dtype(categories.dtype))
    return np.asarray(level_labels(categories), dtype=object)


def _from_codes(codes, uniques_sorted_labels, ordered=False) -> pd.Categorical:
    return pd.Categorical.from_codes(np.asarray(codes), categories=pd.Index(uniques_sorted_labels, dtype=object),
                                     ordered=ordered)


def as_categorical(values) -> pd.Categorical:
    """A column as a Categorical with R's level order, string labels and no unused levels.

    Categoricals keep their order (unused levels dropped); numbers sort
    numerically and strings by code point (R's ``factor()`` in the C locale);
    logicals give ``FALSE`` < ``TRUE``. Missing values get code -1. Runs in
    hashing time over the rows and sorting time over the distinct values.

    Parameters
    ----------
    values : pandas.Series, pandas.Categorical or array-like, shape (n,)

    Returns
    -------
    pandas.Categorical
        Categories are strings, so labels compare equal across data sets.

    Examples
    --------
    >>> as_categorical(pd.Series([10, 2, 10])).categories.tolist()
    ['2', '10']
    """
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        cat = pd.Categorical(values)
        codes = np.asarray(cat.codes)
        used = np.bincount(codes[codes >= 0], minlength=len(cat.categories)) > 0
        if not used.all():
            cat = cat.remove_unused_categories()
        labels = _category_labels(cat.categories)
        if labels is not None:
            cat = _from_codes(cat.codes, labels, cat.ordered)
        return cat
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    dtype = series.dtype
    missing = np.asarray(series.isna())
    if pd.api.types.is_bool_dtype(dtype) or (dtype == object and _all_bool(series)):
        truth = np.zeros(len(series), dtype=np.int64)
        truth[~missing] = np.asarray(series[~missing], dtype=bool)
        present = np.bincount(truth[~missing], minlength=2) > 0
        remap = np.cumsum(present) - 1
        codes = np.where(missing, -1, remap[truth])
        return _from_codes(codes, np.array(["FALSE", "TRUE"], dtype=object)[present])
    if pd.api.types.is_numeric_dtype(dtype):
        integer = pd.api.types.is_integer_dtype(dtype)
        num = series.to_numpy(dtype=np.int64 if integer else float, na_value=0 if integer else np.nan)
        codes, uniques = pd.factorize(num[~missing] if integer else num, sort=True)
        if integer and missing.any():
            full = np.full(len(num), -1, dtype=np.int64)
            full[~missing] = codes
            codes = full
        return _from_codes(codes, number_labels(uniques, integer))
    codes, uniques = pd.factorize(series, sort=False)
    labels = np.asarray(uniques, dtype=object)
    if pd.Index(labels).inferred_type != "string":  # mixed types: compare their texts
        labels = np.array([str(v) for v in labels], dtype=object)
    # code-point order (R's sort in the C locale); equal texts merge
    text, inverse = np.unique(labels.astype(str), return_inverse=True)
    codes = np.where(codes >= 0, inverse.ravel()[np.maximum(codes, 0)], -1)
    return _from_codes(codes, text.astype(object))


def _all_bool(series: pd.Series) -> bool:
    sample = series.dropna()
    return len(sample) > 0 and all(isinstance(v, (bool, np.bool_)) for v in sample.iloc[:100])


def _column_vector(spec, frame: pd.DataFrame, what: str) -> tuple[np.ndarray | None, str | None]:
    """Weights or offset given as a column name or an array."""
    if spec is None:
        return None, None
    if isinstance(spec, str):
        if spec not in frame.columns:
            raise unknown_column_error(spec, what, frame.columns)
        col = frame[spec]
        if not (col.dtype.kind in "biuf" or pd.api.types.is_numeric_dtype(col.dtype)):
            raise DataError(f"{what} column {spec!r} is not numeric (dtype {col.dtype}); give numbers")
        return col.to_numpy(dtype=float, na_value=np.nan).copy(), spec
    try:
        arr = np.array(spec, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be a column name or numbers, one per row; got {type(spec).__name__}") from exc
    if arr.shape[0] != frame.shape[0]:
        raise DataError(f"{what} has length {arr.shape[0]} but the data has {frame.shape[0]} rows")
    return arr, None


def _check_vector(vec, what: str, column: str | None, nonnegative: bool = False):
    """Weights and offsets: finite (NaN is missing, dropped with its row); weights >= 0."""
    if vec is None:
        return
    name = f"{what} column {column!r}" if column else what
    inf = np.isinf(vec)
    if inf.any():
        raise DataError(
            f"{name} has {_count(int(inf.sum()), 'infinite value')}; {what} must be finite"
            f"{' and non-negative' if nonnegative else ''}: fix or filter those rows first"
        )
    if nonnegative and np.any(vec < 0):
        raise DataError(f"{name} must be non-negative; {int((vec < 0).sum())} rows are negative")


def _count(k: int, what: str) -> str:
    return f"{k} {what}{'' if k == 1 else 's'}"


# R's factor() family: a column given to them is used as a factor, whatever it holds.
_FACTOR_CALLS = {"factor", "as.factor", "ordered", "as.ordered"}


def _value_nodes(parsed: ParsedFormula) -> dict[str, Node]:
    """Columns whose values the model computes with (numbers, or levels of a factor term),
    with their first use: every use but grouping factors and ``factor(column)``."""
    out: dict[str, Node] = {}

    def rec(node: Node, as_factor: bool = False):
        if node.kind == "name":
            if not as_factor:
                out.setdefault(node.value, node)
            return
        factor_call = node.kind == "call" and node.value in _FACTOR_CALLS
        for a in node.args:
            rec(a, factor_call and a.kind == "name")

    roots = [parsed.response] if parsed.response is not None else []
    roots += [node for _, node in parsed.fixed_terms]
    roots += [bar.lhs for bar in parsed.bars if bar.lhs is not None]
    roots += [sm.node for sm in parsed.smooths] + list(parsed.offsets)
    for root in roots:
        rec(root)
    return out


def _first_node(parsed: ParsedFormula, name: str) -> Node | None:
    return next((n for n in names_in(parsed.root) if n.value == name), None)


def _is_datetime(dtype) -> bool:
    kind = getattr(dtype, "kind", "")
    return kind in "mM" or isinstance(dtype, (pd.DatetimeTZDtype, pd.PeriodDtype))


def _value_kind(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "logical"
    if isinstance(v, (numbers.Number, np.number)):
        return "number"
    return "string" if isinstance(v, str) else "other"


def _datetime_error(name: str, dtype, where: str, mark) -> DataError:
    col = f"df[{name!r}]"
    if getattr(dtype, "kind", "") == "m":
        how = f"{col} / pd.Timedelta(days=1) for a number of days"
    else:
        how = f"({col} - {col}.min()) / pd.Timedelta(days=1) for days since the first date"
    return DataError(
        f"column {name!r} in {where} holds dates or times (dtype {dtype}); pymlm does not guess a "
        "unit for them (R would use seconds or days since 1970, by type): convert it to numbers "
        f"first, e.g. {how}, or use it as a grouping factor",
        *mark,
    )


def _mixed_error(name: str, col: pd.Series, where: str, mark) -> DataError | None:
    """An object column that mixes numbers with other values (error path: loops over the rows)."""
    values = col.dropna()
    kinds = values.map(_value_kind)
    counts = kinds.value_counts().to_dict()
    if "number" not in counts or len(counts) == 1:
        return None
    others = " and ".join(k + "s" for k in counts if k != "number")
    held = ", ".join(_count(v, k) for k, v in counts.items())
    examples = ", ".join(repr(e) for e in values[kinds != "number"].unique()[:3])
    to = f"pd.to_numeric(df[{name!r}]) for numbers, or df[{name!r}].astype(str) for a factor"
    return DataError(
        f"column {name!r} in {where} mixes numbers with {others} ({held}; e.g. {examples}), so its "
        "values have no single meaning ('5' and 5.0 would be different levels of a factor). "
        f"Convert it: {to}",
        *mark,
    )


def _infinite_error(name: str, col: pd.Series, where: str, mark) -> DataError | None:
    arr = col.to_numpy(dtype=float, na_value=np.nan)
    inf = np.isinf(arr)
    if not inf.any():
        return None
    signs = ", ".join(sorted({"Inf" if v > 0 else "-Inf" for v in arr[inf][:1000]}))
    return DataError(
        f"column {name!r} in {where} has {_count(int(inf.sum()), 'infinite value')} ({signs}); a "
        "missing value (NaN) is dropped with its row, an infinite one cannot be fitted: filter "
        "those rows or replace the values first",
        *mark,
    )


_NUMBERS_AS_OBJECTS = ("integer", "floating", "mixed-integer-float", "decimal")


def _check_columns(parsed: ParsedFormula, source: pd.DataFrame):
    """Refuse columns whose meaning would otherwise be guessed, or that cannot be fitted.

    - dates and times where the model would compute with them: R's
      ``model.matrix`` uses their number of seconds (POSIXct) or days (Date)
      since 1970, a unit pandas' ``datetime64`` does not carry; they must be
      converted by the user. As grouping factors they are fine (one level
      per distinct time).
    - object columns mixing numbers with strings or logicals (``5``, ``"5"``
      and ``"7.0"`` would be three levels of a factor), and object columns of
      numbers where they would be used as values (numbers or factor?).
    - infinite numbers (NaN is missing and dropped with its row; an infinite
      value is not missing and breaks the fit).
    """
    values = _value_nodes(parsed)
    for name in source.columns:
        col = source[name]
        dtype = col.dtype
        node = values.get(name) or _first_node(parsed, name)
        where = _enclosing_term(parsed, node) if node is not None else "the formula"
        mark = (parsed.formula, node.span) if node is not None else (None, None)
        error = None
        if _is_datetime(dtype):
            if name in values:
                error = _datetime_error(name, dtype, where, mark)
        elif dtype == object:
            inferred = pd.api.types.infer_dtype(col, skipna=True)
            if inferred in ("mixed", "mixed-integer"):
                error = _mixed_error(name, col, where, mark)
            elif inferred in _NUMBERS_AS_OBJECTS and name in values:
                error = DataError(
                    f"column {name!r} in {where} holds numbers stored as Python objects (dtype "
                    "object); pymlm does not guess whether they are numbers or the levels of a "
                    f"factor. Convert it: pd.to_numeric(df[{name!r}]) for numbers, or "
                    f"df[{name!r}].astype(str) for a factor",
                    *mark,
                )
        elif pd.api.types.is_float_dtype(dtype):
            error = _infinite_error(name, col, where, mark)
        if error is not None:
            raise error


def used_columns(parsed: ParsedFormula, columns) -> list[str]:
    """The data columns ``parsed`` uses, in order of first use.

    Raises
    ------
    DataError
        A name of the formula is neither a column nor an R constant; the message
        suggests close names and marks the name in the formula.
    """
    columns = list(columns)
    colset = set(columns)
    used: dict[str, None] = {}
    for node in names_in(parsed.root):
        name = node.value
        if name in colset:
            used.setdefault(name, None)
        elif name not in _CONSTANTS:
            raise unknown_column_error(
                name, _enclosing_term(parsed, node), columns, parsed.formula, node.span
            )
    return list(used)


def model_frame(parsed: ParsedFormula, data, weights=None, offset=None) -> ModelFrame:
    """Select, check and clean the columns that ``parsed`` uses.

    Parameters
    ----------
    parsed : ParsedFormula
    data : pandas.DataFrame, pyarrow.Table or dict
    weights, offset : str, array-like or None
        A column name or a vector with one value per row of ``data``.

    Returns
    -------
    ModelFrame

    Raises
    ------
    DataError
        A referenced column is missing (the message suggests close names and
        marks the name in the formula); a column that holds dates or times
        where the model would compute with its values (convert it to
        numbers, e.g. days since a date; as a grouping factor it is fine);
        an object column mixing numbers with strings, or holding numbers
        where they would be used as values; an infinite value in a used
        column, the weights or the offset; a negative weight; no complete
        rows left.

    Warns
    -----
    MissingDataWarning
        Rows were dropped for missing values; the message counts them.
    """
    frame = as_frame(data)
    used_cols = used_columns(parsed, list(frame.columns))
    w, w_col = _column_vector(weights, frame, "weights")
    o, o_col = _column_vector(offset, frame, "offset")
    _check_vector(w, "weights", w_col, nonnegative=True)
    _check_vector(o, "offset", o_col)
    source = frame[used_cols]
    _check_columns(parsed, source)
    if not isinstance(source.index, pd.RangeIndex) or source.index.start != 0 or source.index.step != 1:
        source = source.reset_index(drop=True)
    n_input = len(frame)
    missing = np.array(source.isna().any(axis=1), dtype=bool) if used_cols else np.zeros(n_input, bool)
    for vec in (w, o):
        if vec is not None:
            missing = missing | np.isnan(vec)
    n_dropped = int(missing.sum())
    if n_dropped:
        which = [c for c in used_cols if source[c].isna().any()]
        which += [c for c, v in ((w_col or "weights", w), (o_col or "offset", o)) if v is not None and np.isnan(v).any()]
        if n_dropped == n_input:
            raise DataError(
                f"no rows left after dropping rows with missing values (every row misses a value "
                f"in {', '.join(which)}); check the data or the formula's columns"
            )
        rows = np.flatnonzero(~missing)
        sub = source.iloc[rows].reset_index(drop=True)
        w = None if w is None else w[rows]
        o = None if o is None else o[rows]
        warn(
            f"{n_dropped} of {n_input} rows dropped for missing values (in {', '.join(which)})",
            MissingDataWarning)
    else:
        rows = np.arange(n_input)
        sub = source
    return ModelFrame(sub, rows, n_dropped, n_input, w, o, source)


def check_new_columns(parsed: ParsedFormula, columns, data: str = "the new data") -> None:
    """Every column the model's terms use (not the response) must be in new data.

    Raises
    ------
    DataError
        Names the first missing column, the term that uses it and close
        names, and marks it in the formula.
    """
    present = set(columns)
    roots = [node for _, node in parsed.fixed_terms] + [bar.node for bar in parsed.bars]
    roots += [sm.node for sm in parsed.smooths] + list(parsed.offsets)
    for root in roots:
        for node in names_in(root):
            if node.value not in present and node.value not in _CONSTANTS:
                raise unknown_column_error(node.value, _enclosing_term(parsed, node), list(columns),
                                           parsed.formula, node.span, data=data)


def _enclosing_term(parsed: ParsedFormula, node: Node) -> str:
    """Where ``node`` sits, for messages: ``"term (1 | g)"``, ``"the response y"``..."""

    def inside(outer: Node) -> bool:
        return outer.span[0] <= node.span[0] and node.span[1] <= outer.span[1]

    for _, term in parsed.fixed_terms:
        if inside(term):
            return f"term {term.text}"
    for bar in parsed.bars:
        if inside(bar.node):
            return f"term {bar.node.text}"
    for sm in parsed.smooths:
        if inside(sm.node):
            return f"term {sm.node.text}"
    for off in parsed.offsets:
        if inside(off):
            return f"offset({off.text})"
    if parsed.response is not None and inside(parsed.response):
        return f"the response {parsed.response.text}"
    return f"the formula term {node.text}"


def _r_log(x, base=None):
    x = np.asarray(x, dtype=float)
    return np.log(x) if base is None else np.log(x) / np.log(base)


def _as_numeric(x):
    """R's as.numeric: a factor gives its level codes 1..k."""
    if isinstance(x, pd.Categorical) or isinstance(getattr(x, "dtype", None), pd.CategoricalDtype):
        codes = np.asarray(pd.Categorical(x).codes, dtype=float)
        return np.where(codes >= 0, codes + 1.0, np.nan)
    return np.asarray(x, dtype=float)


EVAL_FUNCTIONS = {
    "log": _r_log,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "log10": np.log10,
    "log2": np.log2,
    "log1p": np.log1p,
    "expm1": np.expm1,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "pmin": np.minimum,
    "pmax": np.maximum,
    "I": lambda x: x,
    "as_numeric": _as_numeric,
    "as_integer": lambda x: np.trunc(_as_numeric(x)),
    "cbind": lambda *cols: np.column_stack([np.asarray(c, dtype=float) for c in cols]),
}


def column_values(series: pd.Series):
    """A column as the evaluation of formulas sees it: numbers as float
    arrays, factors and strings as Categoricals, logicals as bool arrays."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return series.array
    if dtype.kind == "b" or pd.api.types.is_bool_dtype(dtype):
        return series.to_numpy(dtype=bool, na_value=False) if series.hasnans else series.to_numpy(dtype=bool)
    if dtype.kind in "iuf" or pd.api.types.is_numeric_dtype(dtype):
        return series.to_numpy(dtype=float, na_value=np.nan)
    return as_categorical(series)


def evaluate(node: Node, data: pd.DataFrame) -> np.ndarray:
    """Evaluate an R expression (response, offset) on the frame's columns.

    Raises
    ------
    DataError
        The expression fails or uses a factor in arithmetic.
    """
    cols: dict[str, object] = {}

    def lookup(name):
        if name not in cols:
            if name not in data.columns:
                raise KeyError(name)
            cols[name] = column_values(data[name])
        return f"_v[{name!r}]"

    code = to_python(node, name_fmt=lambda n: lookup(n))
    env = dict(EVAL_FUNCTIONS)
    env["_v"] = cols
    try:
        with np.errstate(all="ignore"):
            value = eval(code, {"__builtins__": {}}, env)
    except Exception as exc:
        raise DataError(f"cannot evaluate {node.text!r}: {exc}") from exc
    return value
