"""The model frame: the columns a formula uses, with missing rows dropped.

As R's ``model.frame(..., drop.unused.levels = TRUE)`` does for lme4: rows
with a missing value in any variable the model uses (response, fixed and
random terms, weights, offset) are dropped and counted; string and integer
grouping columns become factors; unused factor levels are dropped.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._validation import as_frame, unknown_column_error
from ..errors import DataError, MissingDataWarning
from ..formula import ParsedFormula, names_in
from ..formula._ast import Node, to_python

__all__ = ["ModelFrame", "model_frame", "evaluate", "level_labels", "as_categorical"]

# Names that may appear in formulas without being columns.
_CONSTANTS = {"TRUE", "FALSE", "T", "F", "pi", "contr.poly", "contr.treatment", "contr.sum"}


@dataclass(frozen=True)
class ModelFrame:
    """The rows and columns a model uses.

    Attributes
    ----------
    data : pandas.DataFrame
        The used columns, complete rows only, categoricals prepared.
    rows : ndarray of int
        Positions (0-based) of the kept rows in the original data.
    n_dropped : int
        Rows dropped for missing values.
    weights, offset : ndarray or None
        Prior weights and the summed offset, aligned with ``data``.
    """

    data: pd.DataFrame
    rows: np.ndarray
    n_dropped: int
    n_input: int
    weights: np.ndarray | None
    offset: np.ndarray | None


def level_labels(values) -> list[str]:
    """R's labels for factor levels: integers without a decimal point."""
    out = []
    for v in values:
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            out.append(str(int(v)))
        else:
            out.append(str(v))
    return out


def as_categorical(series: pd.Series) -> pd.Categorical:
    """A column as a Categorical with R's level order and no unused levels.

    Categoricals keep their order (unused levels dropped); numbers sort
    numerically and strings lexicographically, as R's ``factor()`` does.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        cat = series.array
        if len(cat.categories) and not np.all(np.bincount(cat.codes[cat.codes >= 0], minlength=len(cat.categories))):
            cat = cat.remove_unused_categories()
        return cat
    values = series.to_numpy()
    if series.dtype.kind in "biuf":
        uniq = np.unique(values)
        return pd.Categorical.from_codes(np.searchsorted(uniq, values), categories=level_labels(uniq))
    strings = series.astype("string").to_numpy(dtype=object)
    uniq, codes = np.unique(strings.astype(str), return_inverse=True)
    return pd.Categorical.from_codes(codes.ravel(), categories=[str(u) for u in uniq])


def _column_vector(spec, frame: pd.DataFrame, what: str) -> tuple[np.ndarray | None, str | None]:
    """Weights or offset given as a column name or an array."""
    if spec is None:
        return None, None
    if isinstance(spec, str):
        if spec not in frame.columns:
            raise unknown_column_error(spec, what, frame.columns)
        return pd.to_numeric(frame[spec], errors="coerce").to_numpy(dtype=float), spec
    arr = np.asarray(spec, dtype=float).ravel()
    if arr.shape[0] != frame.shape[0]:
        raise DataError(f"{what} has length {arr.shape[0]} but the data has {frame.shape[0]} rows")
    return arr, None


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
        A referenced column is missing (the message suggests close names),
        or no complete rows are left.
    """
    frame = as_frame(data)
    columns = list(frame.columns)
    colset = set(columns)
    used: dict[str, None] = {}
    for node in names_in(parsed.root):
        name = node.value
        if name in colset:
            used.setdefault(name, None)
        elif name not in _CONSTANTS:
            raise unknown_column_error(name, f"the term {_enclosing_term(parsed, node)}", columns)
    used_cols = list(used)
    w, w_col = _column_vector(weights, frame, "weights")
    o, o_col = _column_vector(offset, frame, "offset")
    sub = frame[used_cols]
    missing = sub.isna().any(axis=1).to_numpy() if used_cols else np.zeros(len(frame), bool)
    for vec in (w, o):
        if vec is not None:
            missing |= ~np.isfinite(vec)
    n_input = len(frame)
    n_dropped = int(missing.sum())
    if n_dropped:
        if n_dropped == n_input:
            raise DataError(
                f"no rows left after dropping rows with missing values in {used_cols}; "
                "check the data or the formula's columns"
            )
        keep = ~missing
        rows = np.flatnonzero(keep)
        sub = sub.iloc[rows]
        w = None if w is None else w[keep]
        o = None if o is None else o[keep]
        which = [c for c in used_cols if frame[c].isna().any()]
        warnings.warn(
            f"{n_dropped} of {n_input} rows dropped for missing values (in {', '.join(which + ([w_col] if w_col else []) + ([o_col] if o_col else [])) or 'weights/offset'})",
            MissingDataWarning,
            stacklevel=3,
        )
    else:
        rows = np.arange(n_input)
    sub = sub.reset_index(drop=True) if n_dropped else sub
    prepared = {}
    for c in used_cols:
        col = sub[c]
        if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype.kind in "OSU" or isinstance(col.dtype, pd.StringDtype):
            prepared[c] = as_categorical(col)
        elif col.dtype.kind == "b":
            prepared[c] = col.astype(float)
    if prepared:
        sub = sub.assign(**prepared) if all(isinstance(k, str) and k.isidentifier() for k in prepared) else _assign(sub, prepared)
    return ModelFrame(sub, rows, n_dropped, n_input, w, o)


def _assign(df: pd.DataFrame, cols: dict) -> pd.DataFrame:
    df = df.copy(deep=False)
    for k, v in cols.items():
        df[k] = v
    return df


def _enclosing_term(parsed: ParsedFormula, node: Node) -> str:
    """The top-level term of the formula that contains ``node``, as written."""
    for _, term in parsed.fixed_terms:
        if term.span[0] <= node.span[0] and node.span[1] <= term.span[1]:
            return term.text
    for bar in parsed.bars:
        if bar.node.span[0] <= node.span[0] and node.span[1] <= bar.node.span[1]:
            return bar.node.text
    for sm in parsed.smooths:
        if sm.node.span[0] <= node.span[0] and node.span[1] <= sm.node.span[1]:
            return sm.node.text
    if parsed.response is not None and parsed.response.span[0] <= node.span[0] <= parsed.response.span[1]:
        return f"the response {parsed.response.text}"
    return node.text


def _r_scale(x):
    x = np.asarray(x, dtype=float)
    return (x - x.mean()) / x.std(ddof=1)


def _r_log(x, base=None):
    x = np.asarray(x, dtype=float)
    return np.log(x) if base is None else np.log(x) / np.log(base)


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
    "scale": _r_scale,
    "as_numeric": lambda x: np.asarray(x, dtype=float),
    "as_integer": lambda x: np.asarray(x).astype(int),
    "cbind": lambda *cols: np.column_stack([np.asarray(c, dtype=float) for c in cols]),
}


def evaluate(node: Node, data: pd.DataFrame) -> np.ndarray:
    """Evaluate an R expression (response, offset) on the frame's columns.

    Raises
    ------
    DataError
        The expression fails or uses a factor in arithmetic.
    """
    cols: dict[str, np.ndarray] = {}

    def lookup(name):
        if name not in cols:
            if name not in data.columns:
                raise KeyError(name)
            s = data[name]
            cols[name] = s if isinstance(s.dtype, pd.CategoricalDtype) else s.to_numpy()
        return f"_v[{name!r}]"

    code = to_python(node, name_fmt=lambda n: lookup(n))
    env = dict(EVAL_FUNCTIONS)
    env["_v"] = cols
    try:
        with np.errstate(all="ignore"):
            value = eval(code, {"__builtins__": {}}, env)  # noqa: S307 - formula text, as formulaic does
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot evaluate {node.text!r}: {exc}") from exc
    return value
