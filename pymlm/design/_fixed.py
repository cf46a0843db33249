"""Fixed-effect model matrices through formulaic, with R's column names.

The formula's fixed part is rendered as a formulaic formula: ``^`` inside
function calls becomes ``**`` (R's power, not Python's xor), ordered factors
are wrapped in ``C(x, contr.poly)`` (R's polynomial contrasts), ``factor(x)``
becomes ``C(x)``. formulaic's column names are then rewritten to R's:
``Intercept`` -> ``(Intercept)``, ``f[T.b]`` -> ``fb``,
``C(o, contr.poly)[.L]`` -> ``o.L``, ``I(x ** 2)`` -> ``I(x^2)``.
The formulaic ModelSpec is kept, so new data get the same columns, the same
stateful transforms (``scale()`` with the training mean and sd) and the same
factor coding.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from formulaic import Formula, model_matrix

from ..errors import DataError, FormulaError, RankDeficiencyWarning
from ..formula._ast import Node, _is_py_name, deparse, to_python
from ._frame import EVAL_FUNCTIONS

__all__ = ["FixedSpec", "build_model_matrix", "rebuild_model_matrix", "drop_rank_deficient"]

# functions formulaic evaluates; scale/center/poly/C/I are formulaic's own
# (stateful) transforms, the rest come from here.
FORMULAIC_CONTEXT = {k: v for k, v in EVAL_FUNCTIONS.items() if k not in ("scale", "I", "cbind")}


@dataclass(frozen=True)
class FixedSpec:
    """What is needed to rebuild a model matrix on new data.

    Attributes
    ----------
    formulaic_formula : str
        The formula handed to formulaic.
    model_spec : formulaic.ModelSpec
    names : tuple of str
        R's names of all columns formulaic builds.
    keep : ndarray of int
        Columns kept after dropping rank-deficient ones.
    """

    formulaic_formula: str
    model_spec: object
    names: tuple[str, ...]
    keep: np.ndarray = field(default_factory=lambda: np.zeros(0, int))

    @property
    def kept_names(self) -> list[str]:
        return [self.names[i] for i in self.keep]


def _render(node: Node, data: pd.DataFrame, aliases: dict[str, str]) -> str:
    """Render a formula-level node for formulaic, recording R names of factors."""
    k = node.kind
    if k == "name":
        name = node.value
        col = data[name] if name in data.columns else None
        quoted = name if _is_py_name(name) else f"`{name}`"
        if col is not None and isinstance(col.dtype, pd.CategoricalDtype) and col.dtype.ordered:
            text = f"C({quoted}, contr.poly)"
            aliases[_formulaic_expr(text)] = deparse(node)
            return text
        aliases[name] = deparse(node)
        return quoted
    if k == "number":
        return node.value
    if k == "paren":
        return "(" + _render(node.args[0], data, aliases) + ")"
    if k == "unary":
        if node.value not in ("-", "+"):
            raise FormulaError(f"'{node.value}' cannot start a fixed-effects term", node.source, node.span)
        return node.value + _render(node.args[0], data, aliases)
    if k == "binary":
        op = node.value
        if op not in ("+", "-", "*", "/", ":", "^", "%in%"):
            raise FormulaError(
                f"'{op}' is not a formula operator; wrap arithmetic in I(), e.g. I(a {op} b)",
                node.source, node.span,
            )
        left = _render(node.args[0], data, aliases)
        right = _render(node.args[1], data, aliases)
        op = {"^": "**"}.get(op, op)
        return f"{left} {op} {right}"
    if k == "call":
        text = _python_call(node)
        aliases[_formulaic_expr(text)] = deparse(node)
        return text
    raise FormulaError(f"cannot use {node.text!r} as a fixed-effects term", node.source, node.span)


def _python_call(node: Node) -> str:
    def fmt(name):
        if name.startswith("contr."):
            return name
        return name if _is_py_name(name) else f"`{name}`"

    return to_python(node, name_fmt=fmt)


def _formulaic_expr(text: str) -> str:
    """formulaic's own spelling of a factor expression (its key in the spec)."""
    terms = list(Formula("0 + " + text))
    return terms[-1].factors[0].expr if terms else text


def _strip_level(bracket: str, categories) -> str:
    if bracket.startswith("T.") and bracket[2:] in categories:
        return bracket[2:]
    return bracket


def _r_column_names(spec, aliases: dict[str, str]) -> list[str]:
    """R's names for every column of a formulaic ModelSpec."""
    names: list[str] = []
    states = getattr(spec, "encoder_state", {}) or {}
    for term_struct in spec.structure:
        factors = [f.expr for f in term_struct.term.factors]
        for col in term_struct.columns:
            if col == "Intercept" and factors == ["1"]:
                names.append("(Intercept)")
                continue
            parts = []
            pos = 0
            for expr in factors:
                if not col.startswith(expr, pos):
                    parts = None
                    break
                pos += len(expr)
                label = aliases.get(expr, expr.strip("`"))
                if pos < len(col) and col[pos] == "[":
                    depth, end = 0, pos
                    while end < len(col):
                        if col[end] == "[":
                            depth += 1
                        elif col[end] == "]":
                            depth -= 1
                            if depth == 0:
                                break
                        end += 1
                    bracket = col[pos + 1: end]
                    cats = [str(c) for c in states.get(expr, (None, {}))[1].get("categories", [])]
                    label += _strip_level(bracket, cats)
                    pos = end + 1
                parts.append(label)
                if pos < len(col) and col[pos] == ":":
                    pos += 1
            names.append(":".join(parts) if parts is not None else col)
    return names


def build_model_matrix(terms, data: pd.DataFrame, where: str, intercept_default=True):
    """Build a model matrix for formula terms with R's column names.

    Parameters
    ----------
    terms : list of (sign, Node)
        Signed terms (the fixed part, or a bar's left-hand side).
    data : pandas.DataFrame
        The model frame.
    where : str
        Used in error messages, e.g. ``"the fixed effects"``.

    Returns
    -------
    X : ndarray (n, p) or scipy.sparse.csc_matrix
    spec : FixedSpec
    """
    aliases: dict[str, str] = {}
    pieces = []
    for sign, node in terms:
        text = _render(node, data, aliases)
        pieces.append(("- " if sign == "-" else "+ ") + text)
    body = " ".join(pieces).lstrip("+ ").strip() or "1"
    if not intercept_default and not any(
        n.kind == "number" and n.value in ("0", "1") for _, n in terms
    ):
        body = "0 + " + body
    try:
        mm = model_matrix(body, data, context=FORMULAIC_CONTEXT, na_action="ignore")
    except FormulaError:
        raise
    except Exception as exc:  # noqa: BLE001 - formulaic raises many kinds
        raise DataError(f"cannot build the model matrix of {where} ({body}): {exc}") from exc
    spec = mm.model_spec
    names = _r_column_names(spec, aliases)
    X = _to_array(mm, names, where)
    return X, FixedSpec(body, spec, tuple(names), np.arange(len(names)))


def _to_array(mm, names, where):
    if sp.issparse(mm):
        X = sp.csc_matrix(mm, dtype=float)
        bad = ~np.isfinite(X.data)
        if bad.any():
            raise DataError(f"{where} contains non-finite values; check the transformations in the formula")
        return X
    X = np.asarray(mm, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    finite = np.isfinite(X)
    if not finite.all():
        cols = np.flatnonzero(~finite.all(axis=0))
        rows = int((~finite.all(axis=1)).sum())
        raise DataError(
            f"the column(s) {[names[c] for c in cols]} of {where} are NaN or infinite in {rows} rows "
            "(e.g. log of a non-positive value); transform or filter the data first"
        )
    return X


def rebuild_model_matrix(spec: FixedSpec, newdata: pd.DataFrame, where: str = "the new data"):
    """The model matrix of ``newdata`` with the training columns and transforms."""
    try:
        mm = spec.model_spec.get_model_matrix(newdata, context=FORMULAIC_CONTEXT, na_action="ignore")
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot build the model matrix of {where}: {exc}") from exc
    X = _to_array(mm, list(spec.names), where)
    if len(spec.keep) != X.shape[1]:
        X = X[:, spec.keep]
    return X


def drop_rank_deficient(X, names, tol: float = 1e-7):
    """Columns to keep so that X has full column rank, as lme4 chooses them.

    lme4 (``chkRank.drop.cols``) drops the columns that R's ``qr()`` pivots to
    the end: a column is dropped when, after removing the part explained by
    the earlier kept columns, less than ``tol`` of its norm is left.

    Parameters
    ----------
    X : ndarray (n, p) or sparse
    names : sequence of str
    tol : float

    Returns
    -------
    keep : ndarray of int
        Indices of the kept columns, in order.
    """
    p = X.shape[1]
    if p == 0:
        return np.arange(0)
    if sp.issparse(X):
        G = (X.T @ X).toarray()
    else:
        G = X.T @ X
    norms = np.sqrt(np.maximum(np.diag(G), 0.0))
    keep: list[int] = []
    exact_needed = False
    for j in range(p):
        if norms[j] == 0:
            continue
        ratio = _residual_ratio(G, keep, j, norms)
        if ratio < 1e-4:
            exact_needed = True
            break
        keep.append(j)
    if exact_needed:
        return _exact(X, norms, tol)
    return np.array(keep, dtype=int)


def _residual_ratio(G, keep, j, norms):
    if not keep:
        return 1.0
    Gkk = G[np.ix_(keep, keep)]
    g = G[keep, j]
    try:
        c = np.linalg.cholesky(Gkk)
        z = np.linalg.solve(c, g)
        res = G[j, j] - z @ z
    except np.linalg.LinAlgError:
        return 0.0
    return float(np.sqrt(max(res, 0.0)) / norms[j])


def _exact(X, norms, tol):
    """Sequential rank check on the R factor of a QR of X (no squaring)."""
    if sp.issparse(X):
        R = np.linalg.qr(X.toarray(), mode="r")
    else:
        R = _tall_qr_r(X)
    keep: list[int] = []
    for j in range(X.shape[1]):
        if norms[j] == 0:
            continue
        cols = keep + [j]
        r = np.linalg.qr(R[:, cols], mode="r")
        if abs(r[-1, -1]) > tol * norms[j]:
            keep.append(j)
    return np.array(keep, dtype=int)


def _tall_qr_r(X, chunk=200_000):
    """R factor of a tall X by QR of stacked chunk R factors."""
    n = X.shape[0]
    if n <= chunk:
        return np.linalg.qr(X, mode="r")
    rs = [np.linalg.qr(X[s:s + chunk], mode="r") for s in range(0, n, chunk)]
    return np.linalg.qr(np.vstack(rs), mode="r")


def warn_dropped(names, keep, where="fixed-effect model matrix"):
    dropped = [n for i, n in enumerate(names) if i not in set(keep.tolist())]
    if dropped:
        warnings.warn(
            f"{where} is rank deficient so dropping {len(dropped)} column"
            f"{'s' if len(dropped) > 1 else ''} / coefficient{'s' if len(dropped) > 1 else ''}: "
            f"{', '.join(dropped)}",
            RankDeficiencyWarning,
            stacklevel=4,
        )
    return dropped
