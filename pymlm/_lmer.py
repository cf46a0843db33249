"""``lmer()``: validate, build the design, accumulate cross-products, fit, name."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .crossprod import cross_products
from .design import Design, build_design
from .errors import DataError, FormulaError, OptionError
from .fit._optimize import OPTIMIZERS
from .fit.lmm import fit_lmm
from .results.lmer import LmerResult

__all__ = ["lmer", "fit_design", "design_crossprod", "TermMerge"]


@dataclass(frozen=True)
class TermMerge:
    """Adjacent random terms on one grouping factor, fitted as one block.

    ``(x || g)`` and ``(1 | g) + (0 + x | g)`` are two lme4 terms on the same
    factor; fitted as one term with a block-diagonal template they share the
    per-level kernels (MixedModels.jl does the same), and theta keeps lme4's
    order.

    Attributes
    ----------
    groups : tuple of tuple of int
        Design-term indices of each fitted term.
    where : tuple of (int, int)
        For each design term: (fitted term, first column in it).
    layout : tuple of (ndarray, ndarray)
        Per fitted term, the template positions of its theta elements.
    """

    groups: tuple
    where: tuple
    layout: tuple

    @classmethod
    def of(cls, terms) -> "TermMerge":
        groups: list[list[int]] = []
        for k, t in enumerate(terms):
            if groups and _same_factor(terms[groups[-1][-1]], t):
                groups[-1].append(k)
            else:
                groups.append([k])
        where, layout = [None] * len(terms), []
        for g, members in enumerate(groups):
            rows, cols, off = [], [], 0
            for k in members:
                p = terms[k].p
                r, c = np.tril_indices(p)
                order = np.lexsort((r, c))
                rows.append(r[order] + off)
                cols.append(c[order] + off)
                where[k] = (g, off)
                off += p
            layout.append((np.concatenate(rows), np.concatenate(cols)))
        return cls(tuple(tuple(g) for g in groups), tuple(where), tuple(layout))


def _same_factor(a, b) -> bool:
    return a.factors == b.factors and a.nlevels == b.nlevels and (
        a.codes is b.codes or np.array_equal(a.codes, b.codes))


def design_crossprod(design: Design, chunk_size: int = 500_000, freq_weights=None, y=None,
                     merge: TermMerge | None = None):
    """The cross-products of a design (response minus offset), terms merged per ``merge``."""
    yy = design.y if y is None else y
    if yy.ndim != 1:
        raise DataError(f"lmer needs a single numeric response; {design.y_name!r} has {yy.shape[1]} columns")
    if design.offset is not None:
        yy = yy - design.offset
    terms = design.re_terms
    merge = TermMerge.of(terms) if merge is None else merge
    codes, Xs, levels = [], [], []
    for members in merge.groups:
        t0 = terms[members[0]]
        codes.append(t0.codes)
        Xs.append(t0.X if len(members) == 1 else np.hstack([terms[k].X for k in members]))
        levels.append(t0.nlevels)
    return cross_products(codes, Xs, levels, design.X, yy, weights=design.weights,
                          freq_weights=freq_weights, chunk_size=chunk_size)


def fit_design(design: Design, reml: bool = True, *, start="auto", optimizer: str = "lbfgsb",
               check_conv: bool = True, chunk_size: int = 500_000, data=None, data_name=None) -> LmerResult:
    """Fit a linear mixed model to a built :class:`~pymlm.design.Design`."""
    if not design.re_terms:
        raise FormulaError(
            "no random-effects terms in the formula; add one such as (1 | group), "
            "or use an ordinary linear model", design.formula)
    merge = TermMerge.of(design.re_terms)
    cp = design_crossprod(design, chunk_size, merge=merge)
    if cp.n <= cp.p:
        raise DataError(f"{int(cp.n)} observations for {cp.p} fixed effects: too few to fit the model")
    fit = fit_lmm(cp, design.lower, theta0=start, reml=reml, optimizer=optimizer, check_conv=check_conv,
                  layout=merge.layout)
    options = dict(start=start, optimizer=optimizer, check_conv=check_conv, chunk_size=chunk_size)
    return LmerResult(design, fit, data=data, data_name=data_name, options=options, merge=merge)


def lmer(formula: str, data, REML: bool = True, weights=None, offset=None, *, start="auto",
         optimizer: str = "lbfgsb", check_conv: bool = True, chunk_size: int = 500_000,
         data_name: str | None = None) -> LmerResult:
    """Fit a linear mixed model by REML or ML, as lme4's ``lmer``.

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas.DataFrame, pyarrow.Table or dict of columns
    REML : bool
        Restricted maximum likelihood (default) or maximum likelihood.
    weights : str or array-like, optional
        Prior weights (a column name or one value per row): observation i has
        residual variance sigma^2 / w_i.
    offset : str or array-like, optional
        Added to the linear predictor (``offset(x)`` in the formula works too).
    start : {"auto", "lme4"} or array-like
        Starting theta: ``"auto"`` uses one-way ANOVA estimates for scalar
        terms (same optimum, fewer steps); ``"lme4"`` lme4's start.
    optimizer : {"lbfgsb", "bobyqa", "nelder-mead", "powell", "cobyqa"}
        ``"lbfgsb"`` (default) uses the analytic gradient of the profiled
        deviance; the others are scipy's derivative-free bounded methods.
    check_conv : bool
        lme4's post-fit gradient and Hessian checks.
    chunk_size : int
        Rows per chunk when accumulating the cross-products (bounds memory).
    data_name : str, optional
        Shown as ``Data:`` in the summary.

    Returns
    -------
    LmerResult

    Raises
    ------
    FormulaError, DataError, OptionError
        Bad formula, data or option; the message says where and what to do.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> round(m.reml_criterion, 3)
    1743.628
    """
    if not isinstance(REML, (bool, np.bool_)):
        raise OptionError(f"REML must be True or False; got {REML!r}")
    if isinstance(optimizer, str) and optimizer.lower() not in OPTIMIZERS:
        raise OptionError(f"optimizer must be one of {', '.join(repr(o) for o in OPTIMIZERS)}; got {optimizer!r}")
    if not isinstance(start, str):
        start = np.asarray(start, dtype=float)
    elif start not in ("auto", "lme4"):
        raise OptionError(f"start must be 'auto', 'lme4' or an array of theta values; got {start!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise OptionError(f"chunk_size must be a positive integer; got {chunk_size!r}")
    design = build_design(formula, data, weights, offset, check="lmer")
    if not isinstance(start, str) and start.shape != design.theta.shape:
        raise OptionError(f"start has {start.size} values; this model has {design.theta.size} theta parameters "
                          f"({', '.join(design.theta_names)})")
    return fit_design(design, bool(REML), start=start, optimizer=optimizer, check_conv=check_conv,
                      chunk_size=int(chunk_size), data=data, data_name=data_name)
