"""The design of a GAM(M): parametric columns, smooth terms and random-effect terms.

Coefficients are laid out as mgcv lays them out: the parametric columns
first (``(Intercept)`` ...), then every smooth and random-effects term in
the order it appears in the formula. lme4 bars become penalized terms:

- ``(1 | g)`` (and every uncorrelated piece of ``(x || g)``) is mgcv's
  ``s(g, bs = "re")`` (or ``s(x, g, bs = "re")``): one coefficient per
  level, identity penalty, one smoothing parameter ``phi / sigma_g^2``;
- ``(1 + x | g)`` has ``p_k = 2`` correlated coefficients per level with an
  unstructured covariance: penalty ``P (x) I_{l_k}`` with ``P`` estimated
  (:class:`~pymlm.design._gam_penalty.CorrelatedPenalty`); its coefficients are
  ordered by column, then by level.

Each term evaluates its own columns on any rows (for prediction and for the
chunked cross products) and, for ``bam(discrete = TRUE)``, gives its
compressed form (:class:`~pymlm.design._discrete.DiscreteBlock`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError, FormulaError, RankDeficiencyWarning, warn
from ..formula import ParsedFormula, deparse, parse_formula
from ..smooth import Factor, SmoothTerm, construct_smooth, parse_smooth
from ..smooth._spec import SmoothSpec
from ._discrete import DiscreteBlock, combine_indices, default_levels, discretize, discretize_joint
from ._fixed import build_model_matrix, drop_rank_deficient, rebuild_model_matrix
from ._frame import as_categorical, evaluate, level_labels, model_frame
from ._gam_penalty import CorrelatedPenalty, LinearPenalty
from ._random import _combined_levels, build_re_terms

__all__ = ["GamDesign", "GamTerm", "build_gam_design", "covariate"]


def covariate(node, data: pd.DataFrame, where: str):
    """A covariate of a smooth term on ``data``: a float array or a :class:`Factor`."""
    if node.kind == "name" and node.value in data.columns:
        s = data[node.value]
    else:
        try:
            value = evaluate(node, data)
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from exc
        if isinstance(value, pd.Categorical):
            return Factor(np.asarray(value.codes, dtype=np.int64), tuple(str(c) for c in value.categories))
        s = pd.Series(np.asarray(value))
    if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype.kind in "OSUb" or isinstance(s.dtype, pd.StringDtype):
        cat = s.array if isinstance(s.dtype, pd.CategoricalDtype) else as_categorical(s)
        if isinstance(s.dtype, pd.CategoricalDtype):
            used = np.bincount(cat.codes[cat.codes >= 0], minlength=len(cat.categories)) > 0
            if not used.all():
                cat = cat.remove_unused_categories()
        return Factor(np.asarray(cat.codes, dtype=np.int64), tuple(str(c) for c in cat.categories))
    values = s.to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise DataError(f"{where}: {deparse(node)} has NaN or infinite values; transform or filter the data first")
    return values


@dataclass(frozen=True, eq=False)
class GamTerm:
    """One penalized term of the model.

    Attributes
    ----------
    label : str
        ``"s(x0)"``, ``"te(x1,x2)"``, ``"(1 | g)"``...
    start, ncol : int
        Its coefficients are ``start:start+ncol``.
    smooth : SmoothTerm or None
    re : ReTerm or None
        For an lme4 bar.
    penalty : LinearPenalty, CorrelatedPenalty or None (unpenalized)
    cov : list
        The covariates on the model frame (arrays or Factors).
    by : ndarray, Factor or None
        The ``by`` variable on the model frame.
    """

    label: str
    start: int
    ncol: int
    smooth: SmoothTerm | None = None
    re: object = None
    penalty: object = None
    cov: list = field(default_factory=list)
    by: object = None

    @property
    def cols(self) -> slice:
        return slice(self.start, self.start + self.ncol)

    @property
    def is_random(self) -> bool:
        """A random effect: an lme4 bar or an ``s(..., bs = "re")`` term."""
        return self.re is not None or (self.smooth is not None and self.smooth.random)

    @property
    def null_space_dim(self) -> int:
        if self.smooth is not None:
            return self.smooth.null_space_dim
        return 0

    @property
    def coef_names(self) -> list[str]:
        return [f"{self.label}.{i + 1}" for i in range(self.ncol)]

    # --- evaluation -------------------------------------------------------
    def rows(self, start: int, stop: int):
        """The term's columns on training rows ``start:stop`` (dense or CSR)."""
        sl = slice(start, stop)
        if self.re is not None:
            return _bar_rows(self.re, self.re.codes[sl], self.re.X[sl])
        cols = [c.take(sl) if isinstance(c, Factor) else c[sl] for c in self.cov]
        by = None if self.by is None else (self.by.take(sl) if isinstance(self.by, Factor) else self.by[sl])
        return self.smooth.matrix(cols, by)

    def rows_dot(self, start: int, stop: int, coef: np.ndarray) -> np.ndarray:
        """``rows(start, stop) @ coef``, without forming the rows when the basis allows."""
        sl = slice(start, stop)
        if self.re is not None:
            codes = self.re.codes[sl]
            X = self.re.X[sl]
            lk = self.re.nlevels
            valid = codes >= 0
            out = np.zeros(codes.shape[0])
            for r in range(X.shape[1]):  # p_k columns per level, a handful
                out += np.where(valid, X[:, r] * coef[r * lk + np.maximum(codes, 0)], 0.0)
            return out
        cols = [c.take(sl) if isinstance(c, Factor) else c[sl] for c in self.cov]
        by = None if self.by is None else (self.by.take(sl) if isinstance(self.by, Factor) else self.by[sl])
        return self.smooth.dot(cols, coef, by)

    def new_matrix(self, newdata: pd.DataFrame):
        """The term's columns on new data (dense or CSR); unseen levels give zero rows."""
        if self.re is not None:
            codes = self.re.codes_for(newdata)
            X = self.re.model_matrix(newdata)
            return _bar_rows(self.re, codes, X)
        where = f"the term {self.label} on the new data"
        spec = self.smooth.spec
        cols = []
        for node, train in zip(spec.term_nodes, self.cov):
            c = covariate(node, newdata, where)
            if isinstance(train, Factor):
                if not isinstance(c, Factor):
                    c = Factor(*_labels_to_codes(np.asarray(c), train.levels))
                else:
                    c = c.recode(train.levels)
            elif isinstance(c, Factor):
                raise DataError(f"{where}: {deparse(node)} was numeric in the model but is a factor here")
            cols.append(c)
        by = None
        if spec.by_node is not None:
            by = covariate(spec.by_node, newdata, where)
            if isinstance(self.by, Factor):
                if not isinstance(by, Factor):
                    by = Factor(*_labels_to_codes(np.asarray(by), self.by.levels))
                by = by.recode(self.by.levels)
        return self.smooth.matrix(cols, by)

    def unseen_levels(self, newdata: pd.DataFrame) -> dict:
        """Levels of the term's factors in ``newdata`` that the fit never saw: {factor: [labels]}.

        Their rows of :meth:`new_matrix` are zero (the population value).
        """
        out = {}
        if self.re is not None:
            _, labels = _combined_levels(newdata, self.re.factors)
            new = [str(v) for v, k in zip(labels, self.re.level_index.get_indexer(labels)) if k < 0]
            if new:
                out[":".join(self.re.factors)] = new
            return out
        where = f"the term {self.label} on the new data"
        spec = self.smooth.spec
        pairs = list(zip(spec.term_nodes, self.cov))
        if spec.by_node is not None:
            pairs.append((spec.by_node, self.by))
        for node, train in pairs:
            if not isinstance(train, Factor):
                continue
            c = covariate(node, newdata, where)
            if isinstance(c, Factor):
                seen = [c.levels[k] for k in np.unique(c.codes[c.codes >= 0])]
            else:
                values = np.asarray(c)
                seen = sorted(set(level_labels(values) if values.dtype.kind in "iuf" else map(str, values)))
            new = [v for v in seen if v not in set(train.levels)]
            if new:
                out[deparse(node)] = new
        return out


def _labels_to_codes(values: np.ndarray, levels) -> tuple[np.ndarray, tuple]:
    labels = level_labels(values) if values.dtype.kind in "iuf" else [str(v) for v in values]
    codes = pd.Index(levels).get_indexer(labels)
    return codes.astype(np.int64), tuple(levels)


def _bar_rows(re, codes: np.ndarray, X: np.ndarray) -> sp.csr_matrix:
    """Rows of a bar term: p_k non-zeros per row at ``r * l_k + code`` (column-major layout)."""
    n = codes.shape[0]
    pk = X.shape[1]
    lk = re.nlevels
    valid = codes >= 0
    data = np.where(valid[:, None], X, 0.0).ravel()
    idx = (np.arange(pk)[None, :] * lk + np.maximum(codes, 0)[:, None]).ravel()
    indptr = np.arange(0, n * pk + 1, pk, dtype=np.int64)
    return sp.csr_matrix((data, idx, indptr), shape=(n, pk * lk))


@dataclass(frozen=True, eq=False)
class GamDesign:
    """Everything the GAM fitters need.

    Attributes
    ----------
    formula : str
    parsed : ParsedFormula
    y : ndarray (n,)
        Response (proportions for a two-column binomial response).
    y_name : str
    weights : ndarray (n,) or None
        Prior weights (binomial totals folded in).
    offset : ndarray (n,) or None
    frame : ModelFrame
    Xp : ndarray (n, pp)
        Parametric columns.
    p_names : list of str
    fixed_spec : FixedSpec
    terms : list of GamTerm
    blocks : list of DiscreteBlock or None
        The compressed model matrix (``discrete=True``).
    """

    formula: str
    parsed: ParsedFormula
    y: np.ndarray
    y_name: str
    weights: np.ndarray | None
    offset: np.ndarray | None
    frame: object
    Xp: np.ndarray
    p_names: list
    fixed_spec: object
    terms: list
    blocks: list | None = None
    binomial_totals: bool = False

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    def pp(self) -> int:
        return self.Xp.shape[1]

    @property
    def p(self) -> int:
        return self.pp + sum(t.ncol for t in self.terms)

    @property
    def coef_names(self) -> list[str]:
        out = list(self.p_names)
        for t in self.terms:
            out.extend(t.coef_names)
        return out

    @property
    def penalties(self) -> list:
        return [t.penalty for t in self.terms if t.penalty is not None]

    @property
    def blockdiag(self) -> tuple | None:
        """The largest term whose block of ``X'WX + S`` is block diagonal: (start, blocks, size).

        A factor smooth's coefficients are level-major and a row touches one
        level only, so its block is block diagonal with one block per level;
        a single-column random effect (``(1 | g)``, ``s(g, bs = "re")``) is
        diagonal. The solver checks the structure before using it.
        """
        from ..smooth import FactorSmooth

        best = None
        for t in self.terms:
            if t.penalty is None or not getattr(t.penalty, "diagonal", False):
                continue
            basis = None if t.smooth is None else t.smooth.basis
            if isinstance(basis, FactorSmooth) and t.smooth.Z is None:
                cand = (t.start, len(basis.levels), basis.kb)
            elif (t.re is not None and t.re.p == 1) or (basis is not None and basis.random):
                cand = (t.start, t.ncol, 1)
            else:
                continue
            if best is None or cand[1] * cand[2] > best[1] * best[2]:
                best = cand
        return best

    def parametric_rows(self, start: int, stop: int) -> np.ndarray:
        return self.Xp[start:stop]

    def new_parametric(self, newdata: pd.DataFrame) -> np.ndarray:
        X = rebuild_model_matrix(self.fixed_spec, newdata, "the parametric terms of the new data")
        return X.toarray() if sp.issparse(X) else np.asarray(X, dtype=float)


def _response(parsed: ParsedFormula, data: pd.DataFrame):
    node = parsed.response
    if node is None:
        raise FormulaError("the formula has no response; write it as 'y ~ s(x)'", parsed.formula, (0, 1))
    name = deparse(node)
    if node.kind == "name":
        col = data[node.value]
        if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype.kind in "OSU":
            cat = as_categorical(col)
            if len(cat.categories) != 2:
                raise DataError(
                    f"the response {name!r} is a factor with {len(cat.categories)} levels; use numbers, "
                    "or a two-level factor with family='binomial'"
                )
            return (np.asarray(cat.codes) == 1).astype(float), name
        if col.dtype.kind == "b":
            return col.to_numpy(dtype=float), name
        value = col.to_numpy(dtype=float)
    else:
        value = np.asarray(evaluate(node, data), dtype=float)
    if value.ndim == 2 and value.shape[1] == 1:
        value = value[:, 0]
    if value.ndim == 2 and value.shape[1] != 2:
        raise DataError(f"the response {name!r} has {value.shape[1]} columns; use one, or cbind(successes, failures)")
    if not np.isfinite(value).all():
        raise DataError(f"the response {name!r} is NaN or infinite in some rows; transform or filter the data first")
    return value, name


def _smooth_sort_key(item):
    return item[0]


def build_gam_design(formula: str, data, weights=None, offset=None, *, discrete: bool = False,
                     discrete_m: int | None = None, select: bool = False, knots: dict | None = None) -> GamDesign:
    """Build a GAM design from an mgcv/lme4 formula.

    Parameters
    ----------
    formula : str
        e.g. ``'y ~ x + s(x0, bs = "cr") + te(x1, x2) + (1 | g)'``.
    data : pandas.DataFrame or similar
    weights, offset : str, array-like or None
    discrete : bool
        Build the compressed blocks of ``bam(discrete = TRUE)``: covariates
        are discretized first and every smooth is constructed on the distinct
        discretized values (so knots and constraints follow mgcv's discrete
        method).
    discrete_m : int, optional
        Largest number of distinct values per covariate (default: mgcv's
        1000 for one covariate, 100 each for two, 25 each for more).
    select : bool
        Add to every smooth with a penalty null space an extra penalty on
        that null space (mgcv's ``select = TRUE``, :func:`null_space_penalty`),
        so that the smoothing parameters can remove a term entirely.
    knots : dict, optional
        Knot locations by covariate name, as mgcv's ``knots`` (``"cr"``,
        ``"cs"``, ``"cc"`` smooths).

    Returns
    -------
    GamDesign
    """
    parsed = parse_formula(formula) if isinstance(formula, str) else formula
    frame = model_frame(parsed, data, weights, offset)
    data_ = frame.data
    y, y_name = _response(parsed, data_)
    w = None if frame.weights is None else np.asarray(frame.weights, dtype=float)
    if w is not None and np.any(w < 0):
        raise DataError("weights must be non-negative")
    binomial_totals = False
    if y.ndim == 2:
        tot = y[:, 0] + y[:, 1]
        if np.any(y < 0):
            raise DataError(f"the response {y_name!r} has negative counts; cbind() needs successes and failures >= 0")
        with np.errstate(invalid="ignore", divide="ignore"):
            prop = np.where(tot > 0, y[:, 0] / np.where(tot > 0, tot, 1.0), 0.0)
        w = tot if w is None else w * tot
        y = prop
        binomial_totals = True
    off = None if frame.offset is None else np.asarray(frame.offset, dtype=float)
    for node in parsed.offsets:
        val = np.asarray(evaluate(node, data_), dtype=float)
        off = val if off is None else off + val

    fixed_terms = list(parsed.fixed_terms)
    Xp, fixed_spec = build_model_matrix(fixed_terms, frame.source if frame.source is not None else data_,
                                        "the parametric terms", rows=frame.subset, sparse=False,
                                        formula=parsed.formula)
    Xp = Xp.toarray() if sp.issparse(Xp) else np.asarray(Xp, dtype=float)
    names = list(fixed_spec.names)
    keep = drop_rank_deficient(Xp, names)
    if len(keep) != Xp.shape[1]:
        dropped = [names[i] for i in range(len(names)) if i not in set(keep.tolist())]
        warn(
            f"the parametric model matrix is rank deficient; dropping {', '.join(dropped)}",
            RankDeficiencyWarning)
        Xp = Xp[:, keep]
        fixed_spec = fixed_spec.with_keep(keep)
        names = [names[i] for i in keep]

    # smooths and bars, in formula order
    items = [(sc.node.span[0], "s", sc) for sc in parsed.smooths]
    seen_bar_nodes: dict[int, int] = {}
    for bar in parsed.bars:
        key = bar.node.span[0]
        seen_bar_nodes[key] = seen_bar_nodes.get(key, 0) + 1
        items.append((key + seen_bar_nodes[key] * 1e-6, "b", bar))
    items.sort(key=_smooth_sort_key)

    start = Xp.shape[1]
    terms: list[GamTerm] = []
    disc_cache: dict = {}
    blocks: list[DiscreteBlock] | None = [DiscreteBlock(Xp, None, None, 0, Xp.shape[1])] if discrete else None
    labels_seen: set[str] = set()
    for _, kind, obj in items:
        if kind == "s":
            spec = parse_smooth(obj.node)
            new_terms, new_blocks = _smooth_terms(spec, data_, start, discrete, discrete_m, disc_cache, select, knots)
        else:
            new_terms, new_blocks = _bar_terms(obj, frame, start, discrete)
        for t in new_terms:
            if t.label in labels_seen:
                raise FormulaError(f"the term {t.label} appears twice in the formula; keep one",
                                   parsed.formula, obj.node.span)
            labels_seen.add(t.label)
            start += t.ncol
        terms.extend(new_terms)
        if blocks is not None:
            blocks.extend(new_blocks)
    return GamDesign(parsed.formula, parsed, y, y_name, w, off, frame, Xp, names, fixed_spec, terms, blocks,
                     binomial_totals)


def null_space_penalty(S: list) -> np.ndarray | None:
    """The extra penalty of mgcv's ``select = TRUE`` for a smooth with penalties ``S``.

    ``U U'`` with ``U`` the eigenvectors of the summed penalty whose eigenvalues
    are below ``eps^0.66`` of the largest (its null space), as mgcv's
    ``smoothCon``; None when the penalties have no null space. The sum is
    mgcv's (the first penalty counted twice when there are several: the null
    space is the same).
    """
    St = S[0] + (sum(S) if len(S) > 1 else 0.0)
    vals, vecs = np.linalg.eigh((St + St.T) / 2)
    null = vals < vals.max() * np.finfo(float).eps ** 0.66
    if not null.any():
        return None
    U = vecs[:, null]
    return U @ U.T


def _penalty_for(st: SmoothTerm, start: int, select: bool = False):
    if st.fixed:
        return None
    if select and st.null_space_dim > 0 and st.S:
        Sf = null_space_penalty(st.S)
        if Sf is not None:
            return LinearPenalty(start, list(st.S) + [Sf], 0)
    return LinearPenalty(start, st.S, st.null_space_dim)


def distinct_rows(st: SmoothTerm, ucols: list):
    """A smooth's rows on the distinct (discretized) covariate values, before its ``by`` multiplier
    (which a :class:`DiscreteBlock` applies row by row)."""
    X = st.basis.predict(ucols)
    if st.Z is not None:
        X = (X @ st.Z) if not sp.issparse(X) else np.asarray(X @ st.Z)
    return X


def _discrete_covariate(name: str, value, m: int, cache: dict):
    """(unique values, index) of one covariate, shared between terms using it."""
    key = (name, m)
    if key not in cache:
        if isinstance(value, Factor):
            cache[key] = (Factor(np.arange(len(value.levels)), value.levels), value.codes.astype(np.int32))
        else:
            cache[key] = discretize(value, m)
    return cache[key]


def _smooth_terms(spec: SmoothSpec, data: pd.DataFrame, start: int, discrete: bool, m: int | None,
                  cache: dict, select: bool = False, knots: dict | None = None):
    where = f"the term {spec.label}"
    cov = [covariate(node, data, where) for node in spec.term_nodes]
    by = covariate(spec.by_node, data, where) if spec.by_node is not None else None
    if not discrete:
        sms = construct_smooth(spec, cov, by, knots)
        out, at = [], start
        for st in sms:
            out.append(GamTerm(st.label, at, st.ncol, smooth=st, penalty=_penalty_for(st, at, select), cov=cov, by=by))
            at += st.ncol
        return out, []
    # discretized construction: the basis is built on the distinct (rounded) values
    is_f = [isinstance(c, Factor) for c in cov]
    if spec.function == "s" and spec.bs[0] == "re":
        sms = construct_smooth(spec, cov, by, knots)
        out, blocks, at = [], [], start
        codes, mult = sms[0].basis.structure(cov)
        for st in sms:
            t = GamTerm(st.label, at, st.ncol, smooth=st, penalty=_penalty_for(st, at, select), cov=cov, by=by)
            bym = st.by_multiplier(by)
            mm = mult if bym is None else (bym if mult is None else mult * bym)
            key = ("re", spec.terms)
            if key not in cache:
                cache[key] = codes.astype(np.int32)
            blocks.append(DiscreteBlock(None, cache[key], mm, at, st.ncol))
            out.append(t)
            at += st.ncol
        return out, blocks
    if spec.function in ("te", "ti"):
        parts = [_discrete_covariate(name, c, default_levels(1, m), cache) for name, c in zip(spec.terms, cov)]
        combos, index = combine_indices([p[1] for p in parts], [len(p[0]) for p in parts])
        ucols = [np.asarray(p[0])[combos[:, j]] for j, p in enumerate(parts)]
    elif sum(is_f) == 0 and len(cov) == 1:
        vals, index = _discrete_covariate(spec.terms[0], cov[0], default_levels(1, m), cache)
        ucols = [vals]
    elif sum(is_f) == 0:
        key = (tuple(spec.terms), "joint", m)
        if key not in cache:
            cache[key] = discretize_joint(cov, m)
        vals, index = cache[key]
        ucols = [vals[:, j] for j in range(vals.shape[1])]
    else:  # a factor-smooth interaction: metric covariate(s) discretized, crossed with the factor
        parts = []
        for name, c in zip(spec.terms, cov):
            if isinstance(c, Factor):
                parts.append((c.levels, c.codes.astype(np.int32), True))
            else:
                v, k = _discrete_covariate(name, c, default_levels(1, m), cache)
                parts.append((v, k, False))
        combos, index = combine_indices([p[1] for p in parts], [len(p[0]) for p in parts])
        ucols = []
        for j, (v, k, isf) in enumerate(parts):
            if isf:
                ucols.append(Factor(combos[:, j], tuple(v)))
            else:
                ucols.append(np.asarray(v)[combos[:, j]])
    sms = construct_smooth(spec, ucols, by, knots)
    out, blocks, at = [], [], start
    for st in sms:
        Xu = distinct_rows(st, ucols)
        if sp.issparse(Xu):
            Xu = Xu.tocsr()
        out.append(GamTerm(st.label, at, st.ncol, smooth=st, penalty=_penalty_for(st, at, select), cov=cov, by=by))
        blocks.append(DiscreteBlock(Xu, index, st.by_multiplier(by), at, st.ncol))
        at += st.ncol
    return out, blocks


def _bar_terms(bar, frame, start: int, discrete: bool):
    (re,) = build_re_terms([bar], frame, "none")
    pk, lk = re.p, re.nlevels
    label = f"({bar.lhs_text} | {bar.group_name})"
    if pk == 1:
        pen = LinearPenalty(start, [np.eye(lk)], 0)
    else:
        pen = CorrelatedPenalty(start, pk, lk)
    t = GamTerm(label, start, pk * lk, re=re, penalty=pen)
    blocks = []
    if discrete:
        codes = np.asarray(re.codes, dtype=np.int32)
        for r in range(pk):
            col = re.X[:, r]
            by = None if np.all(col == 1.0) else np.asarray(col, dtype=float)
            blocks.append(DiscreteBlock(None, codes, by, start + r * lk, lk))
    return [t], blocks
