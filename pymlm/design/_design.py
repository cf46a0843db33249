"""ParsedFormula + data -> Design (y, X, random terms, Z, theta template)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError, FormulaError, PymlmWarning, warn
from ..formula import ParsedFormula, deparse, parse_formula
from ._fixed import (
    FixedSpec,
    build_model_matrix,
    drop_rank_deficient,
    evaluate_in_frame,
    rebuild_model_matrix,
    warn_dropped,
)
from ._frame import ModelFrame, as_categorical, model_frame
from ._random import ReTerm, build_re_terms, re_matrix, theta_template, z_matrix

__all__ = ["Design", "build_design"]


@dataclass(frozen=True, eq=False)
class Design:
    """Everything a fitter needs, built from a formula and data.

    Attributes
    ----------
    formula : str
    parsed : ParsedFormula
    y : ndarray, shape (n,) or (n, 2)
        Response; two columns (successes, failures) for ``cbind(a, b)``.
    y_name : str
    X : ndarray (n, p) or scipy.sparse.csc_matrix
        Fixed-effects model matrix (rank-deficient columns dropped). Sparse
        CSC when it has at least ``SPARSE_MIN_COLUMNS`` (20) columns and at
        most ``SPARSE_MAX_DENSITY`` (a quarter) of its entries are non-zero,
        e.g. with a many-level factor; dense otherwise.
    X_names : list of str
        lme4's column names.
    re_terms : list of ReTerm
        Random-effects terms in lme4's order (decreasing number of levels).
    weights, offset : ndarray or None
    frame : ModelFrame
        The used columns and the bookkeeping of dropped rows.
    fixed_spec : FixedSpec
        Rebuilds X on new data.
    dropped_columns : list of str
        Fixed-effect columns dropped for rank deficiency.
    """

    formula: str
    parsed: ParsedFormula
    y: np.ndarray
    y_name: str
    X: object
    X_names: list[str]
    re_terms: list[ReTerm]
    weights: np.ndarray | None
    offset: np.ndarray | None
    frame: ModelFrame
    fixed_spec: FixedSpec
    dropped_columns: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    def nobs(self) -> int:
        return self.n

    @property
    def n_dropped(self) -> int:
        """Rows dropped for missing values."""
        return self.frame.n_dropped

    @cached_property
    def Z(self) -> sp.csc_matrix:
        """Random-effects model matrix, scipy.sparse CSC, lme4's column order."""
        return z_matrix(self.re_terms, self.n)

    @cached_property
    def _theta(self):
        return theta_template(self.re_terms)

    @property
    def theta(self) -> np.ndarray:
        """lme4's initial theta: 1 on diagonals, 0 off them, per term column-major."""
        return self._theta[0].copy()

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds of theta: 0 for diagonal elements, -inf otherwise."""
        return self._theta[1].copy()

    @property
    def theta_names(self) -> list[str]:
        """``"group.column"`` for diagonal elements, ``"group.row.column"`` off it."""
        return list(self._theta[2])

    @property
    def theta_slices(self) -> list[slice]:
        """Where each term of :attr:`re_terms` sits in :attr:`theta`."""
        ends = np.cumsum([t.n_theta for t in self.re_terms])
        return [slice(int(e - t.n_theta), int(e)) for e, t in zip(ends, self.re_terms)]

    @property
    def ngroups(self) -> dict[str, int]:
        """Number of levels per grouping factor, lme4's names (``{"cask:batch": 30, ...}``)."""
        out: dict[str, int] = {}
        for t in self.re_terms:
            out.setdefault(t.group, t.nlevels)
        return out

    @property
    def cnms(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(t.group, t.cnms) for t in self.re_terms]

    def fixed_matrix(self, newdata: pd.DataFrame):
        """X for new data, with the training columns, contrasts and transforms.

        Returns
        -------
        ndarray (m, p) or scipy.sparse.csc_matrix
            Dense or sparse as :attr:`X`; the columns of :attr:`X_names`.

        Raises
        ------
        DataError
            A column is missing, a factor has a level the model has not seen.
        """
        return rebuild_model_matrix(self.fixed_spec, newdata, "the fixed effects of the new data")

    def random_matrix(self, newdata: pd.DataFrame, allow_new_levels: bool = False) -> sp.csc_matrix:
        """Z for new data, in the columns of :attr:`Z`.

        Parameters
        ----------
        newdata : pandas.DataFrame
        allow_new_levels : bool
            Rows of levels the model has not seen get zero rows (no random
            effect) instead of an error.

        Returns
        -------
        scipy.sparse.csc_matrix, shape (m, q)
        """
        return re_matrix(self.re_terms, newdata, allow_new_levels)

    def __repr__(self) -> str:
        terms = ", ".join(f"({t.bar.lhs_text} | {t.group}): {t.nlevels} levels x {t.p}" for t in self.re_terms)
        return (
            f"Design({self.formula!r}: n={self.n}, X {tuple(self.X.shape)} {self.X_names}, "
            f"Z {tuple(self.Z.shape) if self.re_terms else (self.n, 0)}, terms [{terms}], theta={self.theta.tolist()})"
        )


def _response(parsed: ParsedFormula, frame: ModelFrame, require_numeric: bool = True):
    node = parsed.response
    if node is None:
        raise FormulaError(
            "the formula has no response; write it as 'response ~ terms'", parsed.formula, (0, 1)
        )
    name = deparse(node)
    data = frame.data
    if node.kind == "name":
        col = data[node.value]
        if pd.api.types.is_bool_dtype(col.dtype):
            return col.to_numpy(dtype=float), name
        if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col.dtype):
            if require_numeric:
                raise DataError(
                    f"the response {node.value!r} is not numeric (dtype {col.dtype}); "
                    "convert it to numbers, or use glmer with a binomial family for a two-level factor",
                    parsed.formula, node.span,
                )
            cat = as_categorical(col)
            if len(cat.categories) != 2:
                raise DataError(
                    f"the response {node.value!r} is a factor with {len(cat.categories)} levels; "
                    "a binary response needs 2",
                    parsed.formula, node.span,
                )
            # as R's binomial family: the first level is failure, every other success
            return (np.asarray(cat.codes) == 1).astype(float), name
        return col.to_numpy(dtype=float), name
    if node.kind == "call" and node.value == "cbind" and len(node.args) != 2:
        raise FormulaError("cbind() in the response takes two columns: successes and failures",
                           parsed.formula, node.span)
    value = evaluate_in_frame(node, frame.source, frame.subset)
    if value.ndim == 0 or (value.ndim == 1 and value.shape[0] == 1 and frame.data.shape[0] != 1):
        raise DataError(f"the response {name!r} evaluates to a single number", parsed.formula, node.span)
    if not np.isfinite(value).all():
        bad = int((~np.isfinite(value)).reshape(len(value), -1).any(axis=1).sum())
        raise DataError(
            f"the response {name!r} is NaN or infinite in {bad} rows; transform or filter the data first",
            parsed.formula, node.span,
        )
    return value, name


def _offset(parsed: ParsedFormula, frame: ModelFrame):
    total = None if frame.offset is None else frame.offset.copy()
    for node in parsed.offsets:
        value = evaluate_in_frame(node, frame.source, frame.subset)
        if value.ndim == 0:
            value = np.full(frame.n, float(value))
        if not np.isfinite(value).all():
            raise DataError(
                f"offset({node.text}) is NaN or infinite in {int((~np.isfinite(value)).sum())} rows; "
                "transform or filter the data first",
                parsed.formula, node.span,
            )
        total = value if total is None else total + value
    return total


def _refuse_smooths(parsed: ParsedFormula, engine: str):
    """lme4 has no smooths: ``s(x)`` in an lmer formula is an error, not a dropped term."""
    if not parsed.smooths:
        return
    sm = parsed.smooths[0]
    raise FormulaError(
        f"the smooth term {sm.node.text} cannot be fitted by {engine}(): use gam() or bam() for "
        "smooths (they take lme4 bars such as (1 | g) too); random effects in "
        f"{engine}() are written as bars, e.g. (1 | g) rather than s(g, bs = \"re\")",
        parsed.formula, sm.node.span,
    )


#: lme4's ``check.scaleX`` tolerance: a column sd (or a ratio of two) beyond it warns.
SCALE_TOL = 1000.0


def column_scales(X) -> tuple[np.ndarray, np.ndarray]:
    """``(binary, sd)`` per column of a dense or sparse (n, p) matrix: all values 0/1, and the
    standard deviation (divisor n - 1, as R's ``sd``)."""
    n = X.shape[0]
    if sp.issparse(X):
        X = X.tocsc()
        col = np.repeat(np.arange(X.shape[1]), np.diff(X.indptr))
        binary = np.bincount(col, weights=(X.data != 0) & (X.data != 1), minlength=X.shape[1]) == 0
        mean = np.asarray(X.mean(axis=0)).ravel()
        sq = np.asarray(X.multiply(X).sum(axis=0)).ravel()
        sd = np.sqrt(np.maximum(sq - n * mean ** 2, 0.0) / max(n - 1, 1))
    else:
        X = np.asarray(X, dtype=float)
        binary = np.all((X == 0) | (X == 1), axis=0)
        sd = X.std(axis=0, ddof=1) if n > 1 else np.zeros(X.shape[1])
    return binary, sd


def check_scale(X, names) -> list[str]:
    """lme4's ``check.scaleX`` (a warning by default): columns on very different scales.

    Columns that are not all 0/1 are compared by their standard deviation:
    a warning when one is above ``SCALE_TOL`` (1000) or below its inverse,
    or when two differ by more than that factor. Such columns make the
    optimization ill-conditioned; rescaling them (``scale(x)``, ``x / 1000``)
    changes the estimates only by the same factors.

    Returns
    -------
    list of str
        The offending column names (empty when none).
    """
    if X.shape[0] < 2 or X.shape[1] == 0:
        return []
    return check_scale_of(*column_scales(X), names)


def check_scale_of(binary: np.ndarray, sd: np.ndarray, names) -> list[str]:
    """:func:`check_scale` from each column's 0/1 flag and standard deviation (e.g. from sums
    accumulated over batches of rows)."""
    cont = np.flatnonzero(~binary)
    if cont.size == 0:
        return []
    with np.errstate(divide="ignore"):
        logsd = np.log(sd[cont])
    tol = np.log(SCALE_TOL)
    far = np.abs(logsd) > tol
    spread = cont.size > 1 and np.max(logsd) - np.min(logsd) > tol
    if not far.any() and not spread:
        return []
    bad = cont[far] if far.any() else cont[[int(np.argmax(logsd)), int(np.argmin(logsd))]]
    shown = ", ".join(f"{names[j]} (sd {sd[j]:.3g})" for j in bad)
    warn(
        f"the fixed-effect columns are on very different scales: {shown}; consider rescaling them "
        "(e.g. scale(x) in the formula, or x / 1000 in the data), as lme4's check.scaleX advises",
        PymlmWarning)
    return [names[j] for j in bad]


def build_design(parsed: ParsedFormula | str, data, weights=None, offset=None, *, check: str = "lmer",
                 require_numeric_response: bool = True, sparse_x: bool | None = None) -> Design:
    """Build the design of a mixed model.

    Parameters
    ----------
    parsed : ParsedFormula or str
    data : pandas.DataFrame, pyarrow.Table or dict of columns
    weights, offset : str, array-like or None
        Prior weights / offset: a column name or one value per row.
    check : {"lmer", "glmer", "none"}
        Which of lme4's checks to apply: "lmer" and "glmer" require at least
        one random-effects term and check the number of levels (see
        :func:`build_re_terms`); "none" only requires 2 levels per factor.
    require_numeric_response : bool
        If False, a two-level factor response becomes 0/1 (binomial GLMMs).
    sparse_x : bool, optional
        Force X dense (False) or sparse (True); by default sparse when it has
        at least 20 columns and at most a quarter of its entries are non-zero.

    Returns
    -------
    Design

    Raises
    ------
    FormulaError, DataError
        See :func:`pymlm.lformula`.

    Warns
    -----
    MissingDataWarning
        Rows with missing values were dropped.
    RankDeficiencyWarning
        Fixed-effect columns were dropped because X is rank deficient.
    """
    if not isinstance(parsed, ParsedFormula):
        parsed = parse_formula(parsed)
    if check in ("lmer", "glmer"):
        _refuse_smooths(parsed, check)
        if not parsed.bars:
            raise FormulaError(
                "no random-effects terms in the formula; add one such as (1 | group), "
                "or use an ordinary linear model",
                parsed.formula, (0, len(parsed.formula)),
            )
    frame = model_frame(parsed, data, weights, offset)
    y, y_name = _response(parsed, frame, require_numeric_response)
    X, fixed_spec = build_model_matrix(
        parsed.fixed_terms, frame.source, "the fixed effects", rows=frame.subset,
        sparse=sparse_x, formula=parsed.formula,
    )
    names = list(fixed_spec.names)
    keep = drop_rank_deficient(X)
    dropped: list[str] = []
    if len(keep) != X.shape[1]:
        dropped = warn_dropped(names, keep)
        X = X[:, keep]
        fixed_spec = fixed_spec.with_keep(keep)
        names = [names[i] for i in keep]
    if check in ("lmer", "glmer"):
        check_scale(X, names)
    re_terms = build_re_terms(parsed.bars, frame, check)
    return Design(
        formula=parsed.formula,
        parsed=parsed,
        y=y,
        y_name=y_name,
        X=X,
        X_names=names,
        re_terms=re_terms,
        weights=frame.weights,
        offset=_offset(parsed, frame),
        frame=frame,
        fixed_spec=fixed_spec,
        dropped_columns=dropped,
    )
