"""Random-effects terms: grouping factors, raw model matrices, Z and the theta template."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError, FormulaError, PymlmWarning, warn
from ..formula import BarTerm, expand_terms
from ..formula._parsed import _lhs_terms
from ._fixed import FixedSpec, build_model_matrix, rebuild_model_matrix
from ._frame import ModelFrame, as_categorical

__all__ = ["ReTerm", "build_re_terms", "grouping_codes", "re_matrix", "theta_template", "z_matrix"]


@dataclass(frozen=True, eq=False)
class ReTerm:
    """One random-effects term ``(lhs | group)``.

    Attributes
    ----------
    group : str
        lme4's name of the grouping factor, e.g. ``"Subject"``, ``"cask:batch"``.
    factors : tuple of str
        The data columns forming the grouping factor.
    codes : ndarray of int32, shape (n,)
        Level of each row, 0-based, in ``levels`` order.
    levels : ndarray of str, shape (l,)
        Level labels in R's order.
    X : ndarray, shape (n, p)
        The raw model matrix of the term's left-hand side.
    cnms : tuple of str
        Its column names, e.g. ``("(Intercept)", "Days")``.
    spec : FixedSpec or None
        Rebuilds ``X`` on new data (``None`` for an intercept-only term).
    bar : BarTerm
    """

    group: str
    factors: tuple[str, ...]
    codes: np.ndarray
    levels: np.ndarray
    X: np.ndarray
    cnms: tuple[str, ...]
    spec: FixedSpec | None
    bar: BarTerm

    @property
    def p(self) -> int:
        """Number of random effects per level."""
        return self.X.shape[1]

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @property
    def q(self) -> int:
        """Columns of Z for this term: p * nlevels."""
        return self.p * self.nlevels

    @property
    def n_theta(self) -> int:
        """Length of the term's part of theta: the lower triangle of a p x p factor."""
        return self.p * (self.p + 1) // 2

    @property
    def theta0(self) -> np.ndarray:
        """The term's part of lme4's initial theta (lower triangle, column-major)."""
        return theta_template([self])[0]

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds of the term's part of theta: 0 on the diagonal, -inf off it."""
        return theta_template([self])[1]

    @cached_property
    def level_index(self) -> pd.Index:
        # object dtype: a string Index backed by Arrow recomputes its uniqueness on every lookup
        return pd.Index(self.levels, dtype=object)

    def model_matrix(self, newdata: pd.DataFrame) -> np.ndarray:
        """The term's raw model matrix on new data, shape (m, p)."""
        if self.spec is None:
            return np.ones((len(newdata), 1))
        X = rebuild_model_matrix(self.spec, newdata, f"the random-effects term ({self.bar.label})")
        return X.toarray() if sp.issparse(X) else X

    def codes_for(self, newdata: pd.DataFrame) -> np.ndarray:
        """Level codes of new data's rows; -1 for levels not seen in fitting."""
        for f in self.factors:
            if f not in newdata.columns:
                raise DataError(
                    f"the new data has no column {f!r}, the grouping factor of ({self.bar.label})"
                )
        inverse, labels = _combined_levels(newdata, self.factors)
        return self.level_index.get_indexer(labels).astype(np.int64)[inverse]


def _combined_levels(frame: pd.DataFrame, factors: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Codes and labels of the interaction of ``factors`` (observed combinations).

    Levels are ordered as R orders ``a:b``: by the first factor's level, then
    the second's...; labels are joined with ``":"``. Labels are only built for
    the distinct combinations, never per row.
    """
    cats = [as_categorical(frame[f]) for f in factors]
    if len(cats) == 1:
        c = cats[0]
        return np.asarray(c.codes, dtype=np.int64), np.asarray(c.categories, dtype=object)
    combined = np.zeros(len(frame), dtype=np.int64)
    missing = np.zeros(len(frame), dtype=bool)
    for c in cats:
        codes = np.asarray(c.codes, dtype=np.int64)
        missing |= codes < 0
        combined = combined * max(len(c.categories), 1) + np.maximum(codes, 0)
    inverse, uniq = pd.factorize(combined[~missing], sort=True)
    rem = uniq.copy()
    parts = []
    for c in reversed(cats):
        k = max(len(c.categories), 1)
        parts.append(np.asarray(c.categories, dtype=object)[rem % k])
        rem //= k
    parts.reverse()
    labels = parts[0].astype(str)
    for part in parts[1:]:
        labels = np.char.add(np.char.add(labels, ":"), part.astype(str))
    codes = np.full(len(frame), -1, dtype=np.int64)
    codes[~missing] = inverse.ravel()
    return codes, labels.astype(object)


def grouping_codes(frame: pd.DataFrame, factors: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes and level labels of a (possibly interaction) grouping factor.

    Interactions ``a:b`` have levels ``"a1:b1"``, ... in R's order (the first
    factor varying slowest), observed combinations only. Integer columns give
    levels in numeric order, strings in code-point order, Categoricals in
    their own order (unused levels dropped), as R's ``factor()``.

    Parameters
    ----------
    frame : pandas.DataFrame
        Complete rows only.
    factors : tuple of str
        Column names, outermost first.

    Returns
    -------
    codes : ndarray of int32, shape (n,)
    levels : ndarray of str, shape (l,)

    Examples
    --------
    >>> codes, levels = grouping_codes(pd.DataFrame({"g": [10, 2, 10]}), ("g",))
    >>> codes.tolist(), levels.tolist()
    ([1, 0, 1], ['2', '10'])
    """
    codes, labels = _combined_levels(frame, factors)
    return codes.astype(np.int32), labels


def _bar_model_matrix(bar: BarTerm, frame: ModelFrame):
    if bar.lhs is None:
        return np.ones((frame.n, 1)), ("(Intercept)",), None
    where = f"the random-effects term ({bar.label})"
    X, spec = build_model_matrix(
        _lhs_terms(bar.lhs), frame.source, where, rows=frame.subset, sparse=False,
        formula=bar.node.source or None,
    )
    if X.shape[1] == 0:
        raise FormulaError(f"the random-effects term ({bar.label}) has no columns", bar.node.source, bar.node.span)
    return X, spec.names, spec


def _double_bar(bar: BarTerm):
    """The ``(lhs || g)`` node a bar was expanded from, or None for a plain ``(lhs | g)``."""
    node = bar.node.args[0] if bar.node.kind == "paren" else bar.node
    while node.kind == "paren":
        node = node.args[0]
    return node if node.is_op("||") else None


def _warn_correlated_double_bar(bar: BarTerm, cnms, spec):
    """``(f || g)`` with a factor ``f``: '||' cannot make its levels' effects independent.

    lme4 expands ``(f || g)`` to ``(1 | g) + (0 + f | g)``: the piece
    ``(0 + f | g)`` has one column per level of ``f``, with an unstructured
    covariance (so '||' removed nothing), and when the intercept piece is
    there the level columns add up to it, so the model is over-parametrized.
    Interactions with a factor (``x:f``) keep their columns correlated too.
    """
    node = _double_bar(bar)
    if node is None or len(cnms) < 2 or spec is None:
        return
    factors = [v.label for v in spec.variables if v.kind == "factor"]
    if not factors:
        return  # poly(x, 2) and the like: lme4's meaning (one term, correlated columns)
    term = bar.lhs_text.removeprefix("0 + ")
    g = bar.group_name
    single = len(spec.variables) == 1
    intercept = single and expand_terms(_lhs_terms(node.args[0]), bar.node.source or None).intercept
    extra = (f", and together they add up to the intercept of (1 | {g}), so the model is "
             "over-parametrized" if intercept else "")
    if single:
        todo = (f" For independent effects per level write (1 | {g}) + (1 | {g}:{term}); for "
                f"correlated ones (0 + {term} | {g})")
    else:
        todo = f" Write the correlated term ({bar.lhs_text} | {g}) explicitly if that is what you mean"
    kind = "is a factor" if len(factors) == 1 else "are factors"
    warn(
        f"in {bar.node.text}, {term} gives {len(cnms)} columns ({', '.join(cnms[:6])}"
        f"{', ...' if len(cnms) > 6 else ''}) because {' and '.join(factors)} "
        f"{kind}: '||' makes the terms of its left side uncorrelated, not the columns of one "
        f"term, so their random effects stay correlated in "
        f"({bar.lhs_text} | {g}){extra}, as in lme4.{todo}",
        PymlmWarning)


def _as_model_frame(frame) -> ModelFrame:
    if isinstance(frame, ModelFrame):
        return frame
    n = len(frame)
    return ModelFrame(frame, np.arange(n), 0, n, None, None, frame)


def build_re_terms(bars, frame, check_nlev_vs_nobs: str = "lmer", *, groups: dict | None = None,
                   nobs: int | None = None) -> list[ReTerm]:
    """Build every random-effects term and order them as lme4 does.

    Terms are sorted by decreasing number of levels when the levels are not
    already non-increasing, by lme4's rule (``rev(order(nl))``, which also
    reverses ties).

    Parameters
    ----------
    bars : sequence of BarTerm
    frame : ModelFrame or pandas.DataFrame
        The model frame (a DataFrame is taken as complete rows).
    check_nlev_vs_nobs : {"lmer", "glmer", "none"}
        lme4's checks ``check.nobs.vs.nlev`` and ``check.nobs.vs.nRE``:
        ``"lmer"``: a grouping factor needs fewer levels than rows, and a term
        fewer random effects than rows (else the residual is unidentifiable);
        ``"glmer"``: at most as many levels and random effects as rows.
        Every grouping factor needs at least 2 levels in any case.

    groups : dict, optional
        ``group_factors -> (codes, levels)`` known beforehand (a streamed
        source: the levels of all rows, from a first pass); others are
        computed from ``frame``.
    nobs : int, optional
        Number of observations the checks compare with (default: the rows of ``frame``).

    Returns
    -------
    list of ReTerm

    Raises
    ------
    FormulaError
        A grouping factor with fewer than two levels, or too many for the
        number of rows (see ``check_nlev_vs_nobs``); the message marks the term.
    """
    frame = _as_model_frame(frame)
    n = frame.n if nobs is None else int(nobs)
    terms: list[ReTerm] = []
    cache: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = dict(groups or {})
    lhs_cache: dict[str, tuple] = {}
    for bar in bars:
        if bar.group_factors not in cache:
            cache[bar.group_factors] = grouping_codes(frame.data, bar.group_factors)
        codes, levels = cache[bar.group_factors]
        nl = len(levels)
        where = f"({bar.lhs_text} | {bar.group_name})"
        mark = (bar.node.source or None, bar.node.span)
        if nl < 2:
            raise FormulaError(
                f"grouping factor {bar.group_name!r} has {nl} level; {where} needs at least 2. "
                "Drop the term or check the data.",
                *mark,
            )
        if check_nlev_vs_nobs == "lmer" and nl >= n:
            raise FormulaError(
                f"grouping factor {bar.group_name!r} has {nl} levels for {n} observations; "
                f"{where} would be confounded with the residual. A grouping factor needs fewer "
                "levels than observations: drop the term or check the grouping column.",
                *mark,
            )
        if check_nlev_vs_nobs == "glmer" and nl > n:
            raise FormulaError(
                f"grouping factor {bar.group_name!r} has more levels ({nl}) than observations ({n}); "
                f"drop {where} or check the grouping column.",
                *mark,
            )
        if bar.lhs_text not in lhs_cache:  # (x || a/b) repeats each left side per grouping factor
            lhs_cache[bar.lhs_text] = _bar_model_matrix(bar, frame)
            _warn_correlated_double_bar(bar, *lhs_cache[bar.lhs_text][1:])
        X, cnms, spec = lhs_cache[bar.lhs_text]
        n_re = X.shape[1] * nl
        if (check_nlev_vs_nobs == "lmer" and n_re >= n) or (check_nlev_vs_nobs == "glmer" and n_re > n):
            raise FormulaError(
                f"number of observations ({n}) {'<=' if check_nlev_vs_nobs == 'lmer' else '<'} number "
                f"of random effects ({n_re}) for term {where}; the random-effects parameters and the "
                "residual variance are probably unidentifiable. Simplify the term.",
                *mark,
            )
        terms.append(ReTerm(bar.group_name, bar.group_factors, codes, levels, X, tuple(cnms), spec, bar))
    nl = np.array([t.nlevels for t in terms])
    if len(terms) > 1 and np.any(np.diff(nl) > 0):
        order = np.argsort(nl, kind="stable")[::-1]
        terms = [terms[i] for i in order]
    return terms


def theta_template(terms) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """lme4's initial theta, its lower bounds and names.

    Per term, the lower triangle of the p x p relative covariance factor in
    column-major order: 1 on the diagonal (lower bound 0), 0 off it (no bound).
    """
    theta, lower, names = [], [], []
    for t in terms:
        for j in range(t.p):
            for i in range(j, t.p):
                theta.append(1.0 if i == j else 0.0)
                lower.append(0.0 if i == j else -np.inf)
                if i == j:
                    names.append(f"{t.group}.{t.cnms[i]}")
                else:
                    names.append(f"{t.group}.{t.cnms[i]}.{t.cnms[j]}")
    return np.array(theta), np.array(lower), names


def z_matrix(terms, n: int) -> sp.csc_matrix:
    """The random-effects model matrix Z (n x sum of p_k l_k), lme4's column order.

    Term k occupies a contiguous block of columns; within it, the columns of
    level j are ``j*p_k .. j*p_k + p_k - 1``, so row i of term k holds the
    term's raw model-matrix row at columns ``codes[i]*p_k + (0..p_k-1)``.
    Rows whose code is -1 (a level unknown to the model) are empty. Zeros of
    the raw model matrix are not stored, as in lme4's ``Zt``.

    Parameters
    ----------
    terms : sequence of ReTerm (or objects with ``codes``, ``X``, ``p``, ``q``)
    n : int

    Returns
    -------
    scipy.sparse.csc_matrix, shape (n, sum of q_k)
    """
    blocks = []
    for t in terms:
        blocks.append(_term_z(np.asarray(t.codes), np.asarray(t.X, dtype=float), t.q))
    if not blocks:
        return sp.csc_matrix((n, 0))
    Z = sp.hstack(blocks, format="csc")
    Z.eliminate_zeros()
    return Z


def _term_z(codes: np.ndarray, X: np.ndarray, q: int) -> sp.csr_matrix:
    n, p = X.shape
    known = codes >= 0
    values = np.where(known[:, None], X, 0.0)
    indptr = np.arange(0, n * p + 1, p, dtype=np.int64)
    indices = (np.where(known, codes, 0).astype(np.int64)[:, None] * p + np.arange(p)).ravel()
    return sp.csr_matrix((values.ravel(), indices, indptr), shape=(n, q))


def re_matrix(terms, newdata: pd.DataFrame, allow_new_levels: bool = False) -> sp.csc_matrix:
    """Z for new data, with the model's levels, columns and transforms.

    Parameters
    ----------
    terms : sequence of ReTerm
    newdata : pandas.DataFrame
    allow_new_levels : bool
        If True, rows whose level was not in the model get no random effect
        (their part of Z is zero, as lme4's ``allow.new.levels = TRUE``).

    Returns
    -------
    scipy.sparse.csc_matrix, shape (len(newdata), sum of q_k)

    Raises
    ------
    DataError
        A grouping column is missing, or (unless ``allow_new_levels``) a level
        was not in the data the model was built on.
    """
    blocks = []
    for t in terms:
        codes = t.codes_for(newdata)
        if not allow_new_levels and (codes < 0).any():
            labels = _combined_levels(newdata, t.factors)[1]
            unseen = [lv for lv in labels if lv not in set(t.levels)]
            raise DataError(
                f"the new data has level{'s' if len(unseen) > 1 else ''} "
                f"{', '.join(repr(u) for u in unseen[:5])}{'...' if len(unseen) > 5 else ''} of "
                f"grouping factor {t.group!r} not in the model; pass allow_new_levels=True to "
                "predict them from the fixed effects only"
            )
        blocks.append(_term_z(codes, t.model_matrix(newdata), t.q))
    if not blocks:
        return sp.csc_matrix((len(newdata), 0))
    Z = sp.hstack(blocks, format="csc")
    Z.eliminate_zeros()
    return Z
