"""Random-effects terms: grouping factors, raw model matrices, Z and the theta template."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError, FormulaError
from ..formula import BarTerm
from ..formula._parsed import _lhs_terms
from ._fixed import FixedSpec, build_model_matrix, rebuild_model_matrix
from ._frame import as_categorical

__all__ = ["ReTerm", "build_re_terms", "grouping_codes", "z_matrix", "theta_template"]


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
        return self.p * (self.p + 1) // 2

    @cached_property
    def level_index(self) -> pd.Index:
        return pd.Index(self.levels)

    def model_matrix(self, newdata: pd.DataFrame) -> np.ndarray:
        """The term's raw model matrix on new data."""
        if self.spec is None:
            return np.ones((len(newdata), 1))
        return rebuild_model_matrix(self.spec, newdata, f"the random-effects term ({self.bar.label})")

    def codes_for(self, newdata: pd.DataFrame) -> np.ndarray:
        """Level codes of new data's rows; -1 for levels not seen in fitting."""
        labels = _labels_of(newdata, self.factors)
        return self.level_index.get_indexer(labels).astype(np.int64)


def _labels_of(frame: pd.DataFrame, factors: tuple[str, ...]) -> np.ndarray:
    parts = []
    for f in factors:
        if f not in frame.columns:
            raise DataError(f"the new data has no column {f!r} (grouping factor)")
        s = frame[f]
        if isinstance(s.dtype, pd.CategoricalDtype):
            vals = np.asarray(s.astype(str))
        elif s.dtype.kind in "iuf":
            from ._frame import level_labels

            vals = np.asarray(level_labels(s.to_numpy()), dtype=object)
        else:
            vals = s.astype(str).to_numpy(dtype=object)
        parts.append(vals.astype(str))
    out = parts[0]
    for p in parts[1:]:
        out = np.char.add(np.char.add(out, ":"), p)
    return out.astype(object)


def grouping_codes(frame: pd.DataFrame, factors: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes and level labels of a (possibly interaction) grouping factor.

    Interactions ``a:b`` have levels ``"a1:b1"``, ... in R's order (the first
    factor varying slowest), observed combinations only.

    Returns
    -------
    codes : ndarray of int32, shape (n,)
    levels : ndarray of str
    """
    cats = []
    for f in factors:
        s = frame[f]
        if s.dtype.kind in "iu" and len(s) > 0:
            cats.append(_integer_factor(s.to_numpy()))
        else:
            cats.append(as_categorical(s))
    if len(cats) == 1:
        c = cats[0]
        return np.asarray(c.codes, dtype=np.int32), np.asarray(c.categories.astype(str), dtype=object)
    combined = np.zeros(len(frame), dtype=np.int64)
    for c in cats:
        combined = combined * len(c.categories) + c.codes
    uniq, inverse = np.unique(combined, return_inverse=True)
    labels = None
    rem = uniq.copy()
    parts = []
    for c in reversed(cats):
        k = len(c.categories)
        parts.append(np.asarray(c.categories.astype(str), dtype=object)[rem % k])
        rem //= k
    parts.reverse()
    labels = parts[0].astype(str)
    for p in parts[1:]:
        labels = np.char.add(np.char.add(labels, ":"), p.astype(str))
    return inverse.ravel().astype(np.int32), labels.astype(object)


def _integer_factor(x: np.ndarray) -> pd.Categorical:
    """Factor of an integer column in numeric order, in O(n) when the range is small."""
    lo, hi = int(x.min()), int(x.max())
    if hi - lo <= 4 * len(x) + 1000:
        present = np.bincount(x - lo, minlength=hi - lo + 1) > 0
        mapping = np.cumsum(present) - 1
        codes = mapping[x - lo]
        values = np.flatnonzero(present) + lo
    else:
        values, codes = np.unique(x, return_inverse=True)
    return pd.Categorical.from_codes(codes.astype(np.int32).ravel(), categories=[str(v) for v in values])


def _bar_model_matrix(bar: BarTerm, frame: pd.DataFrame):
    if bar.lhs is None:
        return np.ones((len(frame), 1)), ("(Intercept)",), None
    X, spec = build_model_matrix(
        _lhs_terms(bar.lhs), frame, f"the random-effects term ({bar.label})"
    )
    if X.shape[1] == 0:
        raise FormulaError(f"the random-effects term ({bar.label}) has no columns", bar.node.source, bar.node.span)
    if sp.issparse(X):
        X = X.toarray()
    return X, spec.names, spec


def build_re_terms(bars, frame: pd.DataFrame, check_nlev_vs_nobs: str = "lmer") -> list[ReTerm]:
    """Build every random-effects term and order them as lme4 does.

    Terms are sorted by decreasing number of levels when the levels are not
    already non-increasing, by lme4's rule (``rev(order(nl))``, which also
    reverses ties).

    Parameters
    ----------
    bars : sequence of BarTerm
    frame : pandas.DataFrame
        The model frame.
    check_nlev_vs_nobs : {"lmer", "glmer", "none"}
        ``"lmer"``: a grouping factor needs fewer levels than rows, and a term
        fewer random effects than rows (the residual would be unidentifiable);
        ``"glmer"``: at most as many levels as rows.

    Raises
    ------
    FormulaError
        A grouping factor with fewer than two levels, or too many for the
        number of rows (see ``check_nlev_vs_nobs``).
    """
    n = len(frame)
    terms: list[ReTerm] = []
    cache: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}
    for bar in bars:
        if bar.group_factors not in cache:
            cache[bar.group_factors] = grouping_codes(frame, bar.group_factors)
        codes, levels = cache[bar.group_factors]
        nl = len(levels)
        where = f"({bar.lhs_text} | {bar.group_name})"
        if nl < 2:
            raise FormulaError(
                f"grouping factor {bar.group_name!r} has {nl} level; {where} needs at least 2. "
                "Drop the term or check the data.",
                bar.node.source, bar.node.span,
            )
        if check_nlev_vs_nobs == "lmer" and nl >= n:
            raise FormulaError(
                f"grouping factor {bar.group_name!r} has {nl} levels for {n} observations; "
                f"{where} would be confounded with the residual. A grouping factor needs fewer "
                "levels than observations: drop the term or check the grouping column.",
                bar.node.source, bar.node.span,
            )
        if check_nlev_vs_nobs == "glmer" and nl > n:
            raise FormulaError(
                f"grouping factor {bar.group_name!r} has more levels ({nl}) than observations ({n})",
                bar.node.source, bar.node.span,
            )
        X, cnms, spec = _bar_model_matrix(bar, frame)
        if check_nlev_vs_nobs == "lmer" and X.shape[1] * nl >= n:
            raise FormulaError(
                f"number of observations ({n}) <= number of random effects ({X.shape[1] * nl}) for "
                f"term {where}; the random-effects parameters and the residual variance are "
                "probably unidentifiable. Simplify the term.",
                bar.node.source, bar.node.span,
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
    level j are ``j*p_k .. j*p_k + p_k - 1``.
    """
    blocks = []
    for t in terms:
        p = t.p
        indptr = np.arange(0, n * p + 1, p, dtype=np.int64)
        indices = (t.codes.astype(np.int64)[:, None] * p + np.arange(p)).ravel()
        blocks.append(sp.csr_matrix((t.X.ravel(), indices, indptr), shape=(n, t.q)))
    if not blocks:
        return sp.csc_matrix((n, 0))
    return sp.hstack(blocks, format="csc")
