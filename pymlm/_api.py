"""The LMM side of the public API: ``lmer``, ``lformula``, ``lmer_devfun`` and ``anova``.

Each validates its input, builds the design, accumulates the cross-products,
fits (through the evaluators of :mod:`pymlm.fit.deviance` and the driver of
:mod:`pymlm.fit._optimize`) and wraps the result. Results never import this
module: a fit gets the functions it needs for ``refit()`` and ``update()``
from here, when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._validation import check_bool, check_formula
from .design import Design, build_design
from .errors import DataError, FormulaError, OptionError, PymlmError, warn
from .fit._optimize import OPTIMIZERS
from .fit.deviance import Evaluator, evaluator_for
from .fit.lmm import fit_lmm
from .fit.terms import TermMerge, design_crossprod
from .results.anova import AnovaResult, lrt_table
from .results.lmer import LmerResult
from .sources import as_source, is_streamed

__all__ = ["DevianceFunction", "TermMerge", "anova", "design_crossprod", "fit_design", "lformula", "lmer", "lmer_devfun"]


def fit_design(design: Design, reml: bool = True, *, start="auto", optimizer: str = "lbfgsb",
               check_conv: bool = True, chunk_size: int = 500_000, optimizer_options: dict | None = None,
               data=None, data_name=None, crossprod=None) -> LmerResult:
    """Fit a linear mixed model to a built :class:`~pymlm.design.Design` (``crossprod``: its
    cross-products when already accumulated, e.g. streamed)."""
    if not design.re_terms:
        raise FormulaError(
            "no random-effects terms in the formula; add one such as (1 | group), "
            "or use an ordinary linear model", design.formula)
    _check_response_varies(design)
    merge = TermMerge.of(design.re_terms)
    cp = design_crossprod(design, chunk_size, merge=merge) if crossprod is None else crossprod
    if cp.n <= cp.p:
        raise DataError(f"{int(cp.n)} observations for {cp.p} fixed effects: too few to fit the model")
    try:
        with np.errstate(all="ignore"):
            fit = fit_lmm(cp, merge.theta_map(design.re_terms, design.theta_names), theta0=start, reml=reml,
                          optimizer=optimizer, check_conv=check_conv, **(optimizer_options or {}))
    except (np.linalg.LinAlgError, FloatingPointError, ValueError) as exc:
        if isinstance(exc, PymlmError):
            raise
        raise _numerical_failure(design) from exc
    if not np.isfinite(fit.deviance) or not np.all(np.isfinite(fit.theta)):
        raise _numerical_failure(design)
    options = dict(start=start, optimizer=optimizer, check_conv=check_conv, chunk_size=chunk_size,
                   optimizer_options=optimizer_options)
    result = LmerResult(design, fit, data=data, data_name=data_name, options=options,
                        refit_design=fit_design, refit_formula=lmer)
    for message, category in result.fit_warnings():
        warn(message, category)
    return result


def _check_response_varies(design: Design):
    """A constant response leaves no residual variance: sigma = 0 and a criterion of -inf."""
    y = design.y if design.y.ndim == 1 else None
    if y is None:
        return
    z = y if design.offset is None else y - design.offset
    if design.weights is not None:
        z = z[design.weights > 0]
    if z.size and np.ptp(z) == 0:
        what = "the response" if design.offset is None else "the response minus the offset"
        response = design.parsed.response
        raise DataError(
            f"{what} {design.y_name!r} is constant (every value is {z[0]:.6g}): a linear mixed "
            "model needs a response that varies, since its residual sd would be 0 and its "
            "criterion -inf. Check the response column.",
            design.formula, response.span if response is not None else None,
        )


def _scales(design: Design) -> list[tuple[str, float]]:
    """Columns (fixed and random-effect) whose sd is beyond lme4's check.scaleX tolerance."""
    from .design._design import SCALE_TOL, column_scales

    out: dict[str, float] = {}
    blocks = [(design.X, design.X_names)] + [(t.X, [f"{c} of ({t.bar.label})" for c in t.cnms])
                                              for t in design.re_terms]
    for X, names in blocks:
        if X.shape[0] < 2:
            continue
        binary, sd = column_scales(X)
        with np.errstate(divide="ignore"):
            bad = ~binary & (np.abs(np.log(sd)) > np.log(SCALE_TOL))
        for j in np.flatnonzero(bad):
            out.setdefault(names[j], float(sd[j]))
    return list(out.items())


def _numerical_failure(design: Design) -> DataError:
    """The error a user gets when the fit breaks down numerically, never numpy's own."""
    scales = _scales(design)
    if scales:
        shown = ", ".join(f"{name} (sd {sd:.3g})" for name, sd in scales[:6])
        return DataError(
            "the fit broke down numerically: covariates on extreme scales make the problem "
            f"ill-conditioned: {shown}. Rescale them (e.g. scale(x) in the formula, or x / 1e6 "
            "in the data) and fit again; the estimates change only by the same factors",
            design.formula,
        )
    return DataError(
        "the fit broke down numerically: check the data for nearly collinear covariates, "
        "extreme values or a response that (almost) does not vary",
        design.formula,
    )


def _read_source(formula: str, data, weights, offset, chunk_size: int, progress: bool):
    """``data`` as the design code takes it: frames in memory as they are (a polars DataFrame as
    pandas, its model's columns only); a streamed source as its design and cross-products, in
    two passes (:func:`pymlm.design.scan_design`, :func:`pymlm.crossprod.stream_cross_products`).

    Returns
    -------
    (data, None, None) or (source, StreamDesign, CrossProducts)
    """
    if isinstance(data, (pd.DataFrame, dict)) or not (is_streamed(data) or type(data).__module__.startswith("polars")):
        return data, None, None
    from .crossprod import stream_cross_products
    from .design import scan_design, used_columns
    from .formula import parse_formula
    from .linalg._threads import blas_threads

    source = as_source(data)
    if not source.streamed:
        cols = used_columns(parse_formula(formula), source.columns)
        cols += [c for c in (weights, offset) if isinstance(c, str) and c in source.columns]
        return source.read(cols), None, None
    design = scan_design(formula, source, weights, offset, batch_size=chunk_size, progress=progress)
    # one BLAS thread: the products of a batch are tall and thin (rows x p), where threads gain
    # little and, on a busy machine, spin-wait many times what the product costs
    with blas_threads(1):
        design, cp, _ = stream_cross_products(design, TermMerge.of(design.re_terms).groups, progress=progress)
    return source, design, cp


def lmer(formula: str, data, REML: bool = True, weights=None, offset=None, *, start="auto",
         optimizer: str = "lbfgsb", check_conv: bool = True, chunk_size: int = 500_000,
         optimizer_options: dict | None = None, data_name: str | None = None,
         progress: bool = True) -> LmerResult:
    """Fit a linear mixed model by REML or ML, as lme4's ``lmer``.

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``. Smooths
        (``s()``, ``te()``) belong to :func:`pymlm.gam` / :func:`pymlm.bam`.
    data : pandas.DataFrame, pyarrow.Table, dict of columns, path or stream
        Rows with a missing value (NaN, None) in a used column are dropped
        and counted. A path to a CSV file, a Parquet file or a folder of
        Parquet files (hive partitions included), a ``pyarrow.dataset.Dataset``,
        a polars LazyFrame or a Dask DataFrame is streamed in bounded memory
        (see :mod:`pymlm.sources`): two passes over the model's columns, the
        first for the levels and missing rows, the second for the
        cross-products; the fit equals the in-memory fit of the same rows, and
        what needs the rows (fitted values, residuals, the bootstrap) is
        refused with a message saying how to get it. Infinite values are
        refused. Date and time columns are refused where the model would
        compute with them (R's model matrix would use their seconds or days
        since 1970, a unit pandas does not keep): convert them, e.g. to days since the first date; as grouping
        factors they are used as they are. Object columns mixing numbers and
        strings are refused (convert them with ``pd.to_numeric`` or
        ``astype(str)``).
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
        lme4's post-fit gradient and Hessian checks (True or False; other
        values are refused).
    chunk_size : int
        Rows per chunk when accumulating the cross-products (bounds memory),
        and rows per batch read from a streamed source.
    optimizer_options : dict, optional
        ``maxfev`` (evaluation limit) and ``tol`` (objective tolerance), as
        lme4's ``optCtrl``.
    data_name : str, optional
        Shown as ``Data:`` in the summary (default for a path: the path).
    progress : bool
        A progress bar over the row groups of a streamed source.

    Returns
    -------
    LmerResult

    Raises
    ------
    FormulaError
        A formula that is not a string or does not parse (one '~', bars in
        parentheses), a smooth term, a random-effects column repeated for one
        grouping factor, lme4's checks on the number of levels and of random
        effects; the message marks the term.
    DataError
        A missing column, unusable values (see ``data``), a constant
        response, or a fit that breaks down numerically (covariates on
        extreme scales: rescale them).
    OptionError
        A bad option value; the message names the option and what is allowed.

    Warns
    -----
    PymlmWarning
        Fixed-effect columns on very different scales (lme4's
        ``check.scaleX``); ``(f || g)`` with a factor ``f``, whose level
        effects '||' cannot make uncorrelated.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> round(m.reml_criterion, 3)
    1743.628
    """
    formula = check_formula(formula)
    REML = check_bool("REML", REML)
    check_conv = check_bool("check_conv", check_conv)
    if isinstance(optimizer, str) and optimizer.lower() not in OPTIMIZERS:
        raise OptionError(f"optimizer must be one of {', '.join(repr(o) for o in OPTIMIZERS)}; got {optimizer!r}")
    if not isinstance(start, str):
        start = np.asarray(start, dtype=float)
    elif start not in ("auto", "lme4"):
        raise OptionError(f"start must be 'auto', 'lme4' or an array of theta values; got {start!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise OptionError(f"chunk_size must be a positive integer; got {chunk_size!r}")
    if optimizer_options is not None:
        unknown = sorted(set(optimizer_options) - {"maxfev", "tol"})
        if unknown:
            raise OptionError(f"optimizer_options takes 'maxfev' and 'tol'; got {unknown}")
    progress = check_bool("progress", progress)
    frame, design, cp = _read_source(formula, data, weights, offset, int(chunk_size), progress)
    if design is None:
        design = build_design(formula, frame, weights, offset, check="lmer")
    elif data_name is None:
        data_name = frame.name
    if not isinstance(start, str) and start.shape != design.theta.shape:
        raise OptionError(f"start has {start.size} values; this model has {design.theta.size} theta parameters "
                          f"({', '.join(design.theta_names)})")
    return fit_design(design, bool(REML), start=start, optimizer=optimizer, check_conv=check_conv,
                      chunk_size=int(chunk_size), optimizer_options=optimizer_options,
                      data=data if cp is not None else frame, data_name=data_name, crossprod=cp)


@dataclass(frozen=True, eq=False)
class DevianceFunction:
    """The profiled criterion of a linear mixed model as a function of theta.

    Calling it with a theta vector (lme4's order: per random term, the
    column-major lower triangle of its relative covariance factor) returns
    the REML criterion or the ML deviance on lme4's scale, as the function
    that ``lmer(..., devFunOnly = TRUE)`` returns; ``inf`` where the
    criterion is undefined.

    Attributes
    ----------
    theta0 : ndarray
        lme4's start (1 on the diagonals, 0 off them).
    lower : ndarray
        Lower bounds (0 on the diagonals, -inf off them).
    theta_names : list of str
        lme4's names of the theta elements (``Subject.(Intercept)``...).
    reml : bool
    design : Design
    """

    objective: Evaluator
    theta0: np.ndarray
    lower: np.ndarray
    theta_names: list
    reml: bool
    design: Design

    def __call__(self, theta) -> float:
        theta = np.atleast_1d(np.asarray(theta, dtype=float))
        if theta.shape != self.theta0.shape:
            raise OptionError(f"theta has {theta.size} values; this model has {self.theta0.size} "
                              f"({', '.join(self.theta_names)})")
        if np.any(theta < self.lower):
            return float("inf")
        return float(self.objective(theta))

    def gradient(self, theta) -> np.ndarray:
        """The analytic gradient of the criterion at theta."""
        theta = np.atleast_1d(np.asarray(theta, dtype=float))
        return self.objective.value_and_grad(theta)[1]


def lmer_devfun(formula: str, data, REML: bool = True, weights=None, offset=None, *,
                progress: bool = True) -> DevianceFunction:
    """The profiled deviance function of a linear mixed model, as lme4's ``devFunOnly = TRUE``.

    The rows are read once into the cross-products; every call afterwards
    costs one factorization of the penalized least-squares system, whatever
    the number of rows. Use it to profile, plot or optimize the criterion
    yourself.

    Parameters
    ----------
    formula, data, REML, weights, offset, progress
        As :func:`lmer`; a streamed source is read twice, then never again.

    Returns
    -------
    DevianceFunction
        ``f(theta) -> float``; ``f.theta0``, ``f.lower`` and ``f.theta_names``
        give lme4's start, bounds and names.

    Examples
    --------
    >>> import pymlm as ml
    >>> from scipy.optimize import minimize
    >>> f = ml.lmer_devfun("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> f.theta_names
    ['Subject.(Intercept)', 'Subject.Days.(Intercept)', 'Subject.Days']
    >>> res = minimize(f, f.theta0, method="L-BFGS-B", jac=f.gradient,
    ...                bounds=[(lo, None) for lo in f.lower])
    >>> round(res.fun, 3)
    1743.628
    """
    if not isinstance(REML, (bool, np.bool_)):
        raise OptionError(f"REML must be True or False; got {REML!r}")
    frame, design, cp = _read_source(formula, data, weights, offset, 500_000, check_bool("progress", progress))
    if design is None:
        design = build_design(formula, frame, weights, offset, check="lmer")
    merge = TermMerge.of(design.re_terms)
    if cp is None:
        cp = design_crossprod(design, merge=merge)
    tmap = merge.theta_map(design.re_terms, design.theta_names)
    objective = evaluator_for(cp, bool(REML), tmap)
    return DevianceFunction(objective, tmap.start, tmap.lower, list(design.theta_names), bool(REML), design)


def lformula(formula: str, data, weights=None, offset=None, *, progress: bool = True) -> Design:
    """Parse an lme4 formula and build its design, as lme4's ``lFormula``.

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas.DataFrame, pyarrow.Table, dict of columns, path or stream
        A streamed source (see :func:`lmer`) gives a
        :class:`~pymlm.design.StreamDesign` from one pass: names, levels and
        theta, without the row-sized arrays (``X`` has no rows, ``Z`` is refused).
    weights, offset : str, array-like or None
        A column name or one value per row.
    progress : bool
        A progress bar over the row groups of a streamed source.

    Returns
    -------
    Design
        ``d.X``, ``d.X_names``, ``d.Z`` (sparse), ``d.theta``, ``d.lower``,
        ``d.ngroups``, ``d.re_terms``, ``d.n_dropped``.

    Raises
    ------
    FormulaError
        Malformed formula (the message marks the offending part), a formula
        that is not a string, a smooth term (``s()`` belongs to ``gam``), no
        random-effects term, a random-effects column given twice for one
        grouping factor, a grouping factor with fewer than 2 levels or as
        many levels as rows, more random effects than rows.
    DataError
        Unknown column (close names suggested), non-numeric response, no
        complete rows, infinite values, a date/time column used as a number
        (convert it, e.g. to days since a date), an object column mixing
        numbers and strings (see :func:`pymlm.design.model_frame`).

    Warns
    -----
    PymlmWarning
        lme4's ``check.scaleX``: fixed-effect columns on very different
        scales; ``(f || g)`` with a factor ``f``.

    Examples
    --------
    >>> import pymlm as ml
    >>> d = ml.lformula("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> d.X.shape, d.Z.shape, d.theta.tolist()
    ((180, 2), (180, 36), [1.0, 0.0, 1.0])
    """
    if is_streamed(data):
        from .design import scan_design

        return scan_design(check_formula(formula), as_source(data), weights, offset,
                           progress=check_bool("progress", progress))
    frame, _, _ = _read_source(formula, data, weights, offset, 500_000, False)
    return build_design(formula, frame, weights, offset, check="lmer")


def anova(*models, names=None, refit: bool = True) -> AnovaResult:
    """Likelihood-ratio tests of nested linear mixed models.

    Models are sorted by number of parameters; each is compared with the
    previous one: Chisq = difference in deviance, Df = difference in
    parameters. REML fits are refitted by ML first (lme4 does the same and
    says so), since REML likelihoods of models with different fixed effects
    are not comparable.

    Parameters
    ----------
    *models : LmerResult
        Two or more fits to the same observations.
    names : list of str, optional
        Row labels; default ``m0``, ``m1``, ...
    refit : bool
        Refit REML fits by ML (default True).

    Returns
    -------
    AnovaResult
        ``.table`` (DataFrame), printed in lme4's layout.

    Raises
    ------
    OptionError
        Fewer than two models.
    DataError
        The models were fitted to different numbers of observations or responses.

    Examples
    --------
    >>> import pymlm as ml
    >>> df = ml.datasets.load("sleepstudy")
    >>> m0 = ml.lmer("Reaction ~ 1 + (Days | Subject)", df)
    >>> m1 = ml.lmer("Reaction ~ Days + (Days | Subject)", df)
    >>> round(float(anova(m0, m1).table["Chisq"].iloc[1]), 2)
    23.54
    """
    if len(models) < 2:
        raise OptionError("anova needs at least two models to compare")
    names = list(names) if names is not None else [f"m{i}" for i in range(len(models))]
    if len(names) != len(models):
        raise OptionError(f"names has {len(names)} entries for {len(models)} models")
    n0 = models[0].nobs
    y0 = models[0].design.y
    streamed = [getattr(m.design, "source", None) for m in models]
    for m, src in zip(models[1:], streamed[1:]):
        if m.nobs != n0:
            same = False
        elif src is not None or streamed[0] is not None:
            # streamed fits keep no rows: the same source and number of observations
            same = src is not None and streamed[0] is not None and src.name == streamed[0].name
        else:
            same = np.allclose(m.design.y, y0)
        if not same:
            raise DataError("all models must be fitted to the same observations (same rows and response)")
    refitted = refit and any(m.reml for m in models)
    fits = [m.update(REML=False) if (refitted and m.reml) else m for m in models]
    return lrt_table(models, fits, names, refitted)
