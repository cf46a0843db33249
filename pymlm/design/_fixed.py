"""Model matrices as R's ``model.matrix`` builds them: names, columns and values.

The right-hand side is expanded into terms by R's rules
(:func:`pymlm.formula.expand_terms`); each variable is evaluated once (a
column, or an expression such as ``log(z)``, ``I(x^2)``, ``scale(x)``,
``poly(x, 2)``, with formulaic's stateful transforms so that new data get the
training centring, scaling and polynomial coefficients); then every term's
columns are the row-wise product of its variables' columns, the first
variable varying fastest, as in R.

Factors (pandas Categoricals, strings, logicals, ``factor(x)``) are coded as
R codes them: treatment contrasts with the first level as baseline for
unordered factors, orthogonal polynomial contrasts (``contr.poly``) for
ordered ones, and one indicator column per level where R's rule asks for it
(a term whose margin is absent, the first factor of a model without
intercept). Names follow R: ``(Intercept)``, ``fbeta``, ``o.L``, ``x:fbeta``,
``I(x^2)``, ``poly(x, 2)1``, ``flagTRUE``.

A term is kept as *row pattern*: a base column per row, offsets and the
per-row values of its numeric part, so a many-level factor never becomes a
dense n-by-levels array unless the dense result is wanted: ``X`` is built
sparse (CSC) directly when it is mostly zeros (see :func:`use_sparse`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from formulaic.transforms import TRANSFORMS
from formulaic.utils.stateful_transforms import stateful_eval, stateful_transform

from ..errors import DataError, FormulaError, RankDeficiencyWarning, warn
from ..formula._ast import Node, _is_py_name, deparse, names_in, to_python
from ..formula._terms import TermList, expand_terms
from ._frame import _CONSTANTS, EVAL_FUNCTIONS, as_categorical, column_values

__all__ = [
    "SPARSE_MAX_DENSITY",
    "SPARSE_MIN_COLUMNS",
    "FixedSpec",
    "TermSpec",
    "Variable",
    "build_model_matrix",
    "contr_poly",
    "drop_rank_deficient",
    "rebuild_model_matrix",
    "use_sparse",
]

#: X is sparse only from this many columns on: below it a dense matrix is
#: small whatever the data size, and dense BLAS is faster.
SPARSE_MIN_COLUMNS = 20
#: ... and only when at most this fraction of its entries is non-zero.
SPARSE_MAX_DENSITY = 0.25


@stateful_transform
def _r_scale(x, center=True, scale=True, _state=None):
    """R's ``scale()``: centre by the mean, divide by the root mean square of
    the centred values (the sd), both ignoring missing values; the training
    centre and scale are kept for new data."""
    x = np.asarray(x, dtype=float)
    if "center" not in _state:
        ok = ~np.isnan(x)
        if center is True:
            c = float(x[ok].mean()) if ok.any() else 0.0
        elif center is False:
            c = 0.0
        else:
            c = float(center)
        if scale is True:
            dev = x[ok] - c
            s = float(np.sqrt(dev @ dev / max(ok.sum() - 1, 1)))
        elif scale is False:
            s = 1.0
        else:
            s = float(scale)
        _state["center"], _state["scale"] = c, s
    return (x - _state["center"]) / _state["scale"]


@stateful_transform
def _r_center(x, _state=None):
    """``center(x)``: ``scale(x, scale = FALSE)``, the training mean kept for new data."""
    return _r_scale(x, True, False, _state=_state)


def _factor(x, levels=None, ordered=False):
    """R's ``factor()`` (and ``as.factor``): levels in R's order, unused ones dropped."""
    cat = as_categorical(np.asarray(x) if not hasattr(x, "dtype") else x)
    if levels is not None:
        wanted = [str(v) for v in np.atleast_1d(levels)]
        cat = pd.Categorical(np.asarray(cat, dtype=object), categories=wanted)
    return pd.Categorical(cat, ordered=bool(ordered) or cat.ordered)


def _ordered(x, levels=None):
    return _factor(x, levels, ordered=True)


# R spellings that are not Python names, and R's factor() family, which must
# give Categoricals in R's level order rather than formulaic's C().
CALL_NAMES = {
    "factor": "factor",
    "as.factor": "factor",
    "ordered": "ordered",
    "as.ordered": "ordered",
    "as.numeric": "as_numeric",
    "as.double": "as_numeric",
    "as.integer": "as_integer",
}

# formulaic's contrast helpers are left out: contrasts here follow R's rules.
_NOT_R = ("C", "Q", "contr", "Treatment", "Sum", "Poly", "Helmert", "Diff")
CONTEXT = {k: v for k, v in TRANSFORMS.items() if k not in _NOT_R}
CONTEXT.update({k: v for k, v in EVAL_FUNCTIONS.items() if k != "cbind"})
CONTEXT.update({"scale": _r_scale, "center": _r_center, "factor": _factor, "ordered": _ordered})


def contr_poly(k: int) -> np.ndarray:
    """R's ``contr.poly(k)``: orthonormal polynomial contrasts, shape (k, k - 1).

    Column j is the degree-(j+1) polynomial in the scores 1..k, orthogonal to
    the lower degrees and of unit length, with a positive leading coefficient
    (R's ``make.poly``: Q times the diagonal of R in a QR of the Vandermonde
    matrix of the centred scores).

    Examples
    --------
    >>> contr_poly(4)[:, 0].round(4).tolist()
    [-0.6708, -0.2236, 0.2236, 0.6708]
    """
    scores = np.arange(1, k + 1, dtype=float)
    V = np.vander(scores - scores.mean(), k, increasing=True)
    Q, R = np.linalg.qr(V)
    raw = Q * np.diag(R)
    raw /= np.sqrt((raw**2).sum(axis=0))
    return raw[:, 1:]


def _poly_names(k: int) -> list[str]:
    return [".L", ".Q", ".C"][: k - 1] + [f"^{d}" for d in range(4, k)]


@dataclass(frozen=True, eq=False)
class Variable:
    """One variable of a model formula, as evaluated on the training data.

    Attributes
    ----------
    label : str
        R's text of the variable, e.g. ``"x"``, ``"log(z)"``, ``"poly(x, 2)"``.
    column : str or None
        The data column when the variable is a bare column name.
    code : str
        Python source evaluated for an expression ("" for a bare column).
    kind : {"numeric", "factor"}
    suffixes : tuple of str
        Numeric variables: one suffix per column ("" for a single column,
        "1", "2"... for matrices such as ``poly()``).
    levels : tuple of str
        Factor levels in R's order.
    ordered : bool
        Factor coded by polynomial contrasts.
    state : dict
        State of stateful transforms (``scale``, ``poly``...), reused on new data.
    node : Node
        Where the variable sits in the formula (for messages).
    """

    label: str
    column: str | None
    code: str
    kind: str
    suffixes: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    ordered: bool = False
    state: dict = field(default_factory=dict, repr=False)
    node: Node | None = field(default=None, repr=False)

    @property
    def width(self) -> int:
        return len(self.suffixes)


@dataclass(frozen=True)
class TermSpec:
    """One term of a model matrix: its variables and how each enters.

    Attributes
    ----------
    label : str
        R's term label, e.g. ``"x:f"``.
    variables : tuple of int
        Indices into :attr:`FixedSpec.variables`, in R's order.
    coding : tuple of str
        Per variable: ``"numeric"``, ``"contrasts"`` or ``"indicators"``.
    """

    label: str
    variables: tuple[int, ...]
    coding: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class FixedSpec:
    """What is needed to rebuild a model matrix on new data.

    Attributes
    ----------
    formula : str
        The right-hand side it was built from, as R source.
    intercept : bool
    variables : tuple of Variable
    terms : tuple of TermSpec
    names : tuple of str
        R's names of all columns built (before dropping any).
    assign : ndarray of int
        R's ``assign`` attribute: the term of each column (0 = intercept,
        then 1-based term numbers).
    keep : ndarray of int
        Columns kept after dropping rank-deficient ones.
    sparse : bool
        Whether the matrix is built as scipy.sparse CSC.
    """

    formula: str
    intercept: bool
    variables: tuple[Variable, ...]
    terms: tuple[TermSpec, ...]
    names: tuple[str, ...]
    assign: np.ndarray
    keep: np.ndarray
    sparse: bool = False

    @property
    def kept_names(self) -> list[str]:
        return [self.names[i] for i in self.keep]

    def with_keep(self, keep) -> FixedSpec:
        """A copy that keeps only the columns ``keep`` (indices into :attr:`names`)."""
        return FixedSpec(self.formula, self.intercept, self.variables, self.terms, self.names,
                         self.assign, np.asarray(keep, dtype=int), self.sparse)


# --------------------------------------------------------------------------- evaluation


def _py_name(name: str) -> str:
    return name if _is_py_name(name) else f"`{name}`"


def _check_calls(node: Node, extra=()):
    if node.kind == "call":
        fname = CALL_NAMES.get(node.value, node.value)
        if fname not in CONTEXT and fname not in extra:
            raise FormulaError(
                f"unknown function {node.value}() in the formula; compute the column beforehand, "
                "or use one of log, exp, sqrt, abs, I, scale, center, poly, bs, factor, ordered, "
                "as.numeric, pmin, pmax",
                node.source, node.span,
            )
    for a in node.args:
        _check_calls(a, extra)


class _Columns(dict):
    """The data columns, converted on first use (only the ones an expression reads)."""

    def __init__(self, data: pd.DataFrame):
        super().__init__()
        self.data = data

    def __missing__(self, key):
        if key in self.data.columns:
            value = column_values(self.data[key])
            self[key] = value
            return value
        raise KeyError(key)

    def __contains__(self, key):
        return dict.__contains__(self, key) or key in self.data.columns


def _evaluate(node: Node, columns: _Columns, state: dict):
    """The raw value of one variable on all rows of ``columns.data``."""
    if node.kind == "name":
        return columns[node.value]
    _check_calls(node)
    code = to_python(node, name_fmt=_py_name, call_names=CALL_NAMES)
    env = _Env(columns)
    try:
        with np.errstate(all="ignore"):
            return stateful_eval(code, env, {}, state, None)
    except FormulaError:
        raise
    except Exception as exc:
        raise DataError(
            f"cannot evaluate {node.text or code} in the formula: {exc}", node.source, node.span
        ) from exc


class _Env(dict):
    """Functions first, then data columns, looked up lazily."""

    def __init__(self, columns: _Columns, extra: dict | None = None):
        super().__init__(CONTEXT)
        if extra:
            self.update(extra)
        self.columns = columns

    def __missing__(self, key):
        return self.columns[key]

    def __contains__(self, key):
        return dict.__contains__(self, key) or key in self.columns

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default


def _normalize(value, n: int, node: Node):
    """("factor", Categorical) or ("numeric", ndarray (n, k), suffixes) from an evaluated value."""
    colnames = None
    meta = getattr(value, "__formulaic_metadata__", None)
    if meta is not None:
        colnames = meta.column_names
        value = value.__wrapped__
    if isinstance(value, pd.DataFrame):
        colnames = tuple(str(c) for c in value.columns)
        value = value.to_numpy()
    if isinstance(value, pd.Series):
        value = value.array if isinstance(value.dtype, pd.CategoricalDtype) else value.to_numpy()
    if isinstance(value, pd.Categorical):
        if len(value) != n:
            raise _length_error(node, len(value), n)
        return ("factor", value)
    arr = np.asarray(value)
    if arr.ndim == 0 or arr.shape[0] != n:
        raise _length_error(node, 1 if arr.ndim == 0 else arr.shape[0], n)
    if arr.dtype.kind == "b" or arr.dtype.kind in "OUST":
        if arr.ndim != 1:
            raise DataError(f"{node.text} is a matrix of non-numbers", node.source, node.span)
        return ("factor", arr)
    arr = arr.astype(float, copy=False)
    if arr.ndim == 1:
        return ("numeric", arr[:, None], ("",))
    arr = arr.reshape(n, -1)
    k = arr.shape[1]
    if k == 1:
        return ("numeric", arr, ("",))
    suffixes = tuple(colnames) if colnames is not None and len(colnames) == k else tuple(str(i) for i in range(1, k + 1))
    return ("numeric", arr, suffixes)


def _length_error(node: Node, got: int, n: int) -> DataError:
    return DataError(
        f"{node.text} has {got} value{'s' if got != 1 else ''} but the data has {n} rows; "
        "a formula term must give one value per row",
        node.source, node.span,
    )


def evaluate_in_frame(node: Node, source: pd.DataFrame, rows=None) -> np.ndarray:
    """An expression (a response such as ``cbind(a, b - a)``, an offset) as a
    float array for the kept ``rows``, evaluated like the model's variables:
    same functions, stateful transforms on every row of ``source``.

    Raises
    ------
    FormulaError
        Unknown function.
    DataError
        The expression fails or does not give numbers.
    """
    state: dict = {}
    env = _Columns(source)
    if node.kind == "name":
        value = env[node.value]
    else:
        _check_calls(node, extra=("cbind",))
        code = to_python(node, name_fmt=_py_name, call_names=CALL_NAMES)
        try:
            with np.errstate(all="ignore"):
                value = stateful_eval(code, _Env(env, {"cbind": EVAL_FUNCTIONS["cbind"]}), {}, state, None)
        except Exception as exc:
            raise DataError(f"cannot evaluate {node.text or code}: {exc}", node.source or None,
                            node.span if node.source else None) from exc
    value = getattr(value, "__wrapped__", value)
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{node.text or deparse(node)} does not give numbers", node.source or None,
                        node.span if node.source else None) from exc
    if arr.ndim == 0:
        return arr
    return arr if rows is None else arr[rows]


# --------------------------------------------------------------------------- term blocks


@dataclass
class _Block:
    """Row pattern of a term: row i holds ``values[i]`` at columns
    ``base[i] + offsets`` (nothing where ``mask`` is False)."""

    width: int
    offsets: np.ndarray
    base: np.ndarray | None = None
    mask: np.ndarray | None = None
    values: np.ndarray | None = None  # None: ones, with one offset

    def times(self, other: _Block) -> _Block:
        """Row-wise product with ``other`` varying slowest (R's column order)."""
        base = self.base
        if other.base is not None:
            shifted = self.width * other.base
            base = shifted if base is None else base + shifted
        mask = self.mask if other.mask is None else (other.mask if self.mask is None else self.mask & other.mask)
        offsets = (self.offsets[:, None] + self.width * other.offsets[None, :]).ravel(order="F")
        if self.values is None:
            values = other.values
        elif other.values is None:
            values = self.values
        else:
            n = self.values.shape[0]
            values = np.einsum("ia,ib->iba", self.values, other.values).reshape(n, -1)
        return _Block(self.width * other.width, offsets, base, mask, values)

    def nnz(self, n: int) -> int:
        rows = n if self.mask is None else int(self.mask.sum())
        return rows * len(self.offsets)


def _factor_block(codes: np.ndarray, var: Variable, coding: str) -> _Block:
    k = len(var.levels)
    if coding == "indicators":
        return _Block(k, np.zeros(1, np.int64), codes.astype(np.int64))
    if var.ordered:
        return _Block(k - 1, np.arange(k - 1), values=contr_poly(k)[codes])
    return _Block(k - 1, np.zeros(1, np.int64), codes.astype(np.int64) - 1, codes > 0)


def _variable_names(var: Variable, coding: str) -> list[str]:
    if coding == "numeric":
        return [var.label + s for s in var.suffixes]
    if coding == "indicators":
        return [var.label + lv for lv in var.levels]
    if var.ordered:
        return [var.label + s for s in _poly_names(len(var.levels))]
    return [var.label + lv for lv in var.levels[1:]]


def use_sparse(n: int, p: int, nnz: int) -> bool:
    """The rule for a sparse X: at least :data:`SPARSE_MIN_COLUMNS` columns
    and at most :data:`SPARSE_MAX_DENSITY` of the entries non-zero.

    Examples
    --------
    >>> use_sparse(1000, 2, 2000), use_sparse(1000, 101, 2000)
    (False, True)
    """
    return p >= SPARSE_MIN_COLUMNS and nnz <= SPARSE_MAX_DENSITY * n * p


def _assemble(blocks: list[_Block], n: int, sparse: bool):
    p = sum(b.width for b in blocks)
    starts = np.cumsum([0] + [b.width for b in blocks])[:-1]
    if sparse:
        rows, cols, vals = [], [], []
        for b, s in zip(blocks, starts):
            r = np.arange(n) if b.mask is None else np.flatnonzero(b.mask)
            m = len(b.offsets)
            base = s if b.base is None else s + b.base[r]
            c = np.asarray(base).reshape(-1, 1) + b.offsets[None, :] if b.base is not None else \
                np.broadcast_to(s + b.offsets[None, :], (len(r), m))
            rows.append(np.repeat(r, m))
            cols.append(np.asarray(c).ravel())
            vals.append(np.ones(len(r) * m) if b.values is None else b.values[r].ravel())
        X = sp.csc_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, p)
        )
        X.eliminate_zeros()
        X.sort_indices()
        return X
    # column-major: each column is written contiguously (row-major writes are strided and ten times slower)
    X = np.zeros((n, p), order="F")
    for b, s in zip(blocks, starts):
        if b.base is None and b.mask is None:
            X[:, s + b.offsets] = 1.0 if b.values is None else b.values
            continue
        r = np.arange(n) if b.mask is None else np.flatnonzero(b.mask)
        c = s + b.base[r][:, None] + b.offsets[None, :]
        X[r[:, None], c] = 1.0 if b.values is None else b.values[r]
    return X


# --------------------------------------------------------------------------- building


def _codes_for(values, levels: tuple[str, ...], var: Variable, where: str) -> np.ndarray:
    """Codes of new values in the training levels; unseen levels are an error."""
    lab = as_categorical(values)
    lookup = pd.Index(levels).get_indexer(list(lab.categories))
    if (lookup < 0).any():
        unseen = [c for c, i in zip(lab.categories, lookup) if i < 0]
        raise DataError(
            f"{where}: the factor {var.label} has level{'s' if len(unseen) > 1 else ''} "
            f"{', '.join(repr(u) for u in unseen[:5])}{'...' if len(unseen) > 5 else ''} "
            f"not seen in the data the model was built on (levels {list(levels)[:8]}"
            f"{'...' if len(levels) > 8 else ''})"
        )
    codes = np.asarray(lab.codes)
    if (codes < 0).any():
        raise DataError(f"{where}: the factor {var.label} has missing values in {(codes < 0).sum()} rows")
    return lookup[codes]


def _subset(value, rows):
    return value if rows is None else value[rows]


def build_model_matrix(terms, data: pd.DataFrame, where: str, intercept_default: bool = True, *,
                       rows=None, sparse: bool | None = None, formula: str | None = None):
    """Build a model matrix for formula terms with R's columns, names and values.

    Parameters
    ----------
    terms : sequence of (str, Node)
        Signed terms (the fixed part, or a bar's left-hand side).
    data : pandas.DataFrame
        The columns the terms use. Expressions are evaluated on every row of
        ``data`` (so ``scale(x)`` uses every available ``x``, as R's model
        frame does) and then ``rows`` are taken.
    where : str
        Used in error messages, e.g. ``"the fixed effects"``.
    intercept_default : bool
        Whether the terms have an intercept unless they say ``0`` or ``- 1``.
    rows : ndarray of int, optional
        The rows to keep (complete cases); all rows when ``None``.
    sparse : bool, optional
        Force a dense (False) or sparse (True) result; by default
        :func:`use_sparse` decides from the size and the number of non-zeros,
        before anything of size n x p is allocated.
    formula : str, optional
        The whole formula, for messages.

    Returns
    -------
    X : ndarray, shape (n, p), or scipy.sparse.csc_matrix
    spec : FixedSpec

    Raises
    ------
    FormulaError
        Unknown function, a formula operator used as arithmetic outside ``I()``.
    DataError
        A factor with fewer than 2 levels, a term that does not give one value
        per row, NaN or infinite values (e.g. ``log`` of a non-positive number).
    """
    terms = list(terms)
    if not intercept_default and not any(n.kind == "number" and n.value in ("0", "1") for _, n in terms):
        terms = [("-", Node("number", "1"))] + terms
    tl = expand_terms(terms, formula)
    n = len(data) if rows is None else len(rows)
    columns = _Columns(data)
    variables: list[Variable] = []
    per_row: list[object] = []  # codes (factors) or values (numeric), for the kept rows
    for node in tl.variables:
        state: dict = {}
        raw = _evaluate(node, columns, state)
        kind = _normalize(raw, len(data), node)
        label = deparse(node)
        column = node.value if node.kind == "name" else None
        code = "" if column is not None else to_python(node, name_fmt=_py_name, call_names=CALL_NAMES)
        if kind[0] == "factor":
            cat = as_categorical(_subset(kind[1], rows))
            ordered = bool(getattr(kind[1], "ordered", False))
            if len(cat.categories) < 2:
                only = f" ({cat.categories[0]!r})" if len(cat.categories) else ""
                raise DataError(
                    f"the factor {label} in {where} has {len(cat.categories)} level{only} in the rows "
                    "used; a factor needs at least 2 levels. Drop the term or check the data.",
                    node.source, node.span,
                )
            var = Variable(label, column, code, "factor", levels=tuple(cat.categories), ordered=ordered,
                           state=state, node=node)
            per_row.append(np.asarray(cat.codes, dtype=np.int64))
        else:
            values = _subset(kind[1], rows)
            _check_finite(values, label, where, node)
            var = Variable(label, column, code, "numeric", suffixes=kind[2], state=state, node=node)
            per_row.append(values)
        variables.append(var)
    spec_terms = _codings(tl, variables)
    return _materialize(tl, variables, spec_terms, per_row, n, sparse, formula, terms)


def _check_finite(values: np.ndarray, label: str, where: str, node: Node | None = None):
    finite = np.isfinite(values)
    if not finite.all():
        bad = int((~finite.all(axis=1)).sum())
        formula = node.source if node is not None and node.source else None
        raise DataError(
            f"{label} in {where} is NaN or infinite in {bad} row{'s' if bad > 1 else ''} "
            "(e.g. log of a non-positive value); transform or filter the data first",
            formula, node.span if formula else None,
        )


def _codings(tl: TermList, variables: list[Variable]) -> list[TermSpec]:
    codings = []
    for t, term in enumerate(tl.terms):
        codes = []
        for v in term:
            if variables[v].kind == "numeric":
                codes.append("numeric")
            else:
                codes.append("contrasts" if tl.contrast_coded(t, v) else "indicators")
        codings.append(codes)
    if not tl.intercept:
        # R (model.matrix): without an intercept, the first factor of the first
        # term that has one is coded by indicators, so the factor spans the constant.
        for t, term in enumerate(tl.terms):
            hit = [j for j, v in enumerate(term) if variables[v].kind == "factor"]
            if hit:
                codings[t][hit[0]] = "indicators"
                break
    return [TermSpec(lab, term, tuple(c)) for lab, term, c in zip(tl.labels, tl.terms, codings)]


def _materialize(tl, variables, spec_terms, per_row, n, sparse, formula, terms, keep=None):
    blocks: list[_Block] = []
    names: list[str] = []
    assign: list[int] = []
    if tl.intercept:
        blocks.append(_Block(1, np.zeros(1, np.int64)))
        names.append("(Intercept)")
        assign.append(0)
    for t, ts in enumerate(spec_terms, start=1):
        block = None
        term_names = [""]
        for v, coding in zip(ts.variables, ts.coding):
            var = variables[v]
            if coding == "numeric":
                b = _Block(var.width, np.arange(var.width), values=per_row[v])
            else:
                b = _factor_block(per_row[v], var, coding)
            block = b if block is None else block.times(b)
            vn = _variable_names(var, coding)
            term_names = [f"{a}:{c}" if a else c for c in vn for a in term_names]
        blocks.append(block)
        names.extend(term_names)
        assign.extend([t] * block.width)
    p = len(names)
    if sparse is None:
        sparse = use_sparse(n, p, sum(b.nnz(n) for b in blocks))
    X = _assemble(blocks, n, bool(sparse))
    text = " + ".join(("- " if s == "-" else "") + (nd.text or deparse(nd)) for s, nd in terms) or "1"
    spec = FixedSpec(text, tl.intercept, tuple(variables), tuple(spec_terms), tuple(names),
                     np.asarray(assign, dtype=int), np.arange(p) if keep is None else keep, bool(sparse))
    return X, spec


def rebuild_model_matrix(spec: FixedSpec, newdata, where: str = "the new data", all_columns: bool = False):
    """The model matrix of ``newdata`` with the training columns, codings and transforms.

    Parameters
    ----------
    spec : FixedSpec
    newdata : pandas.DataFrame
    where : str
        Used in error messages.

    Returns
    -------
    ndarray (m, len(spec.keep)) or scipy.sparse.csc_matrix (as the training X)

    Raises
    ------
    DataError
        A column is missing, a factor has a level not seen in training or a
        missing value, or a numeric variable is NaN or infinite.
    """
    from .._validation import as_frame, unknown_column_error

    newdata = as_frame(newdata, where)
    if not isinstance(newdata.index, pd.RangeIndex):
        newdata = newdata.reset_index(drop=True)
    n = len(newdata)
    columns = _Columns(newdata)
    per_row = []
    for var in spec.variables:
        for name in names_in(var.node):
            if name.value not in newdata.columns and name.value not in _CONSTANTS:
                raise unknown_column_error(name.value, where, newdata.columns)
        raw = _evaluate(var.node, columns, copy.deepcopy(var.state))
        kind = _normalize(raw, n, var.node)
        if var.kind == "factor":
            if kind[0] != "factor":
                raise DataError(f"{where}: {var.label} was a factor in the model but is numeric here")
            per_row.append(_codes_for(kind[1], var.levels, var, where))
        else:
            if kind[0] != "numeric" or kind[1].shape[1] != var.width:
                raise DataError(f"{where}: {var.label} does not give the {var.width} numeric column(s) it gave in the model")
            _check_finite(kind[1], var.label, where)
            per_row.append(kind[1])
    tl = TermList(spec.intercept, (), tuple(t.variables for t in spec.terms))
    X, built = _materialize(tl, list(spec.variables), list(spec.terms), per_row, n, spec.sparse, None, [])
    if all_columns:
        return X, list(built.names)
    if len(spec.keep) != X.shape[1]:
        X = X[:, spec.keep]
    return X


def model_matrix_columns(spec: FixedSpec, data, where: str = "the data"):
    """Every column ``spec`` builds on ``data`` (none dropped) and their R names.

    Used with a modified spec (other codings, single terms) to build the
    designs that define hypotheses, e.g. the all-indicator design of Type III
    tests.

    Returns
    -------
    X : ndarray (m, len(spec.names)) or scipy.sparse.csc_matrix
    names : list of str
    """
    return rebuild_model_matrix(spec, data, where, all_columns=True)


# --------------------------------------------------------------------------- rank


def drop_rank_deficient(X, names=None, tol: float = 1e-7):
    """Columns to keep so that X has full column rank, as lme4 chooses them.

    lme4 (``chkRank.drop.cols``) keeps the columns that R's ``qr(X, tol =
    1e-7)`` does not pivot to the end: in order, a column is dropped when,
    after removing its projection on the kept columns before it, less than
    ``tol`` of its norm is left (and all-zero columns are dropped).

    Parameters
    ----------
    X : ndarray (n, p) or scipy.sparse matrix
    names : sequence of str, optional
        Unused; kept for callers that pass it.
    tol : float

    Returns
    -------
    keep : ndarray of int
        Indices of the kept columns, in order.

    Notes
    -----
    A Cholesky factor of X'X gives every column's relative residual norm in
    one O(p^3) pass; when all are clearly away from zero (> 1e-4, far beyond
    the precision lost by squaring) the matrix has full rank. Otherwise the
    test is repeated on the R factor of a QR of X (computed by row chunks, so
    a sparse X is never densified whole), which has X's column geometry
    without the squaring.
    """
    p = X.shape[1]
    if p == 0:
        return np.arange(0)
    G = (X.T @ X).toarray() if sp.issparse(X) else X.T @ X
    G = np.asarray(G, dtype=float)
    if gram_has_full_rank(G):
        return np.arange(p)
    return rank_keep(_r_factor(X), G, tol)


def gram_has_full_rank(G: np.ndarray) -> bool:
    """Whether X has clearly full column rank, judged from its Gram matrix X'X (p, p):
    every column keeps more than 1e-4 of its norm after its projection on the columns
    before it is removed (see :func:`drop_rank_deficient`)."""
    norms = np.sqrt(np.maximum(np.diag(G), 0.0))
    if not np.all(norms > 0):
        return False
    try:
        L = np.linalg.cholesky(G)
    except np.linalg.LinAlgError:
        return False
    return bool(np.all(np.abs(np.diag(L)) > 1e-4 * norms))


def rank_keep(R: np.ndarray, G: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """The columns :func:`drop_rank_deficient` keeps, from the R factor of a QR of X
    (at most p x p, e.g. accumulated over batches of rows) and the Gram matrix X'X."""
    return _sequential_keep(R, np.sqrt(np.maximum(np.diag(G), 0.0)), tol)


def _r_factor(X, chunk: int | None = None) -> np.ndarray:
    """R factor (at most p x p) of a QR of X, by row chunks of bounded size."""
    n, p = X.shape
    chunk = chunk or max(p, 4_000_000 // max(p, 1))
    R = np.zeros((0, p))
    for s in range(0, n, chunk):
        block = X[s:s + chunk]
        block = block.toarray() if sp.issparse(block) else np.asarray(block, dtype=float)
        R = np.linalg.qr(np.vstack([R, block]), mode="r")
    return R


def _sequential_keep(R: np.ndarray, norms: np.ndarray, tol: float) -> np.ndarray:
    keep: list[int] = []
    Q = np.zeros((R.shape[0], 0))
    for j in range(R.shape[1]):
        if norms[j] == 0:
            continue
        v = R[:, j]
        r = v - Q @ (Q.T @ v)
        r = r - Q @ (Q.T @ r)  # second pass keeps Q orthonormal to working precision
        size = np.linalg.norm(r)
        if size >= tol * norms[j]:
            keep.append(j)
            Q = np.column_stack([Q, r / size])
    return np.array(keep, dtype=int)


def warn_dropped(names, keep, where="fixed-effect model matrix"):
    """Warn, as lme4 does, about the columns not in ``keep``; return their names."""
    kept = set(np.asarray(keep).tolist())
    dropped = [nm for i, nm in enumerate(names) if i not in kept]
    if dropped:
        warn(
            f"{where} is rank deficient so dropping {len(dropped)} column"
            f"{'s' if len(dropped) > 1 else ''} / coefficient{'s' if len(dropped) > 1 else ''}: "
            f"{', '.join(dropped)}",
            RankDeficiencyWarning)
    return dropped
