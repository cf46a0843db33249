"""The public fitting functions: ``lmer``, ``lformula``, ``lmer_devfun``, ``anova``; ``gam``, ``bam``.

Each validates its input, builds the design, accumulates the cross-products,
fits (through the evaluators of :mod:`pymlm.fit.deviance` and the driver of
:mod:`pymlm.fit._optimize`; for GAMs the engines and REML of :mod:`pymlm.fit.gam`)
and wraps the result. Results never import this module: a fit gets the
functions it needs for ``refit()`` and ``update()`` from here, when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._progress import progress_bar
from ._validation import check_bool, check_formula, check_positive_int
from .crossprod import ChunkEngine, DiscreteEngine
from .design import Design, GamDesign, build_design, build_gam_design
from .errors import (
    ConvergenceWarning,
    DataError,
    FormulaError,
    OptionError,
    PymlmError,
    PymlmWarning,
    option_error,
    warn,
)
from .fit._optimize import OPTIMIZERS
from .fit.deviance import Evaluator, evaluator_for
from .fit.gam import GamFit, fit_gam, resolve_family
from .fit.lmm import fit_lmm
from .fit.terms import TermMerge, design_crossprod
from .results.anova import gam_deviance_table, lrt_table
from .results.gam import GamResult
from .results.lmer import LmerResult
from .sources import as_source, is_streamed

__all__ = [
    "DevianceFunction",
    "TermMerge",
    "anova",
    "bam",
    "design_crossprod",
    "fit_design",
    "fit_glmer_design",
    "gam",
    "glmer",
    "glmer_nb",
    "lformula",
    "lmer",
    "lmer_devfun",
]


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
         optimizer_options: dict | None = None, data_name: str | None = None, family=None,
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
    family : None
        Refused with a pointer to :func:`glmer` (lme4's ``lmer(family=)`` is
        an error too).
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
    if family is not None:
        raise OptionError(f"lmer() fits Gaussian models and takes no family (got family={family!r}); "
                          "for a binomial, Poisson, Gamma or inverse Gaussian response use "
                          "pymlm.glmer(formula, data, family=...)")
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


def _argument_names(models, frame) -> list | None:
    """The caller's variable names of ``models`` (each bound to exactly one name), else None."""
    if frame is None:
        return None
    scopes = [frame.f_locals, frame.f_globals]
    out = []
    for m in models:
        found = None
        for scope in scopes:
            names = [k for k, v in scope.items() if v is m and not k.startswith("_")]
            if len(names) > 1:
                return None
            if names:
                found = names[0]
                break
        if found is None:
            return None
        out.append(found)
    return out if len(set(out)) == len(out) else None


def anova(*models, names=None, refit: bool = True, test: str | None = None, type=3,
          ddf: str = "Satterthwaite"):
    """Likelihood-ratio tests of nested mixed models, or the analysis of deviance of nested GAMs.

    For :class:`LmerResult` and :class:`GlmerResult` fits (lme4's ``anova``)
    the models are sorted by number of parameters; each is compared with the
    previous one: Chisq = difference in deviance, Df = difference in
    parameters. REML fits are refitted by ML first (lme4 does the same and
    says so), since REML likelihoods of models with different fixed effects
    are not comparable. GLMMs are fitted by maximum likelihood and compared
    on the absolute scale of their log-likelihood, so that fits with
    different nAGQ can be compared too.

    One :class:`GamResult` gives its Wald tests per term (mgcv's single-model
    ``anova(b)``, :meth:`GamResult.anova`). For several (mgcv's ``anova(b0,
    b1, test = "Chisq")``)
    the rows keep the order given; each row's ``Deviance`` and ``Df`` are the
    drops in residual deviance and residual degrees of freedom (mgcv's ``n -
    sum(edf1) - (sum(edf2) - sum(edf))``) from the row before, tested against a chi-squared distribution
    after dividing by the scale of the largest model.

    Parameters
    ----------
    *models : LmerResult, GlmerResult or GamResult
        Two or more mixed-model fits or two or more GAM fits to the same
        observations, or one GAM fit.
    names : list of str, optional
        Row labels. By default the names of the variables passed (``anova(m0,
        m1)`` labels its rows ``m0`` and ``m1``) when each model is bound to
        exactly one variable of the calling scope, else ``m0``, ``m1``, ...
    refit : bool
        Refit REML lmer fits by ML (default True).
    test : {None, "Chisq"}
        GAM fits: ``"Chisq"`` adds the p-values (R's ``test = "Chisq"``);
        lmer fits always give the likelihood-ratio test.
    type, ddf
        One lmer fit: its F tests of fixed-effect terms, lmerTest's
        ``anova(m, type=, ddf=)`` (:meth:`LmerResult.anova`).

    Returns
    -------
    AnovaResult, GamAnovaResult or GamTermsAnova
        ``.table`` (DataFrame), printed in lme4's or R's ``anova.glm`` layout;
        for one GAM ``.p_table`` and ``.s_table``, printed as mgcv's.

    Raises
    ------
    OptionError
        Fewer than two models, models of different kinds, a bad ``test``.
    DataError
        The models were fitted to different numbers of observations or responses.

    Examples
    --------
    >>> import pymlm as ml
    >>> df = ml.datasets.load("sleepstudy")
    >>> m0 = ml.lmer("Reaction ~ 1 + (Days | Subject)", df)
    >>> m1 = ml.lmer("Reaction ~ Days + (Days | Subject)", df)
    >>> t = anova(m0, m1).table
    >>> list(t.index), round(float(t["Chisq"].iloc[1]), 2)
    (['m0', 'm1'], 23.54)
    >>> d = ml.datasets.load("gamsim_re").iloc[:400]
    >>> b0 = ml.gam('y ~ s(x0, bs = "cr") + s(x2, bs = "cr")', d, progress=False)
    >>> b1 = ml.gam('y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2, bs = "cr")', d, progress=False)
    >>> round(float(anova(b0, b1, test="Chisq").table["Deviance"].iloc[1]), 1)  # mgcv: 1115.7
    1115.7
    """
    import inspect

    if len(models) == 1 and isinstance(models[0], GamResult):
        return models[0].anova()
    if len(models) == 1 and isinstance(models[0], LmerResult):
        return models[0].anova(type=type, ddf=ddf)
    if len(models) < 2:
        raise OptionError("anova needs at least two models to compare (or one lmer or gam/bam fit)")
    if test not in (None, "Chisq"):
        raise option_error("test", [None, "Chisq"], test)
    if names is None:
        frame = inspect.currentframe()
        names = _argument_names(models, frame.f_back if frame is not None else None)
        del frame
    names = list(names) if names is not None else [f"m{i}" for i in range(len(models))]
    if len(names) != len(models):
        raise OptionError(f"names has {len(names)} entries for {len(models)} models")
    gams = [isinstance(m, GamResult) for m in models]
    if any(gams) and not all(gams):
        raise OptionError("anova compares models of one kind: all lmer/glmer fits or all gam/bam fits")
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
    if all(gams):
        out = gam_deviance_table(models, names)
        if test is None:
            out.table = out.table.drop(columns="Pr(>Chi)")
        return out
    refitted = refit and any(m.reml for m in models)
    fits = [m.update(REML=False) if (refitted and m.reml) else m for m in models]
    return lrt_table(models, fits, names, refitted)


# --------------------------------------------------------------------------- tests of terms, marginal means


def _need_lmer(model, what: str):
    if not isinstance(model, LmerResult):
        raise OptionError(f"{what} needs an lmer fit (pymlm.lmer); got {type(model).__name__}")


def drop1(model, test: str | None = None, ddf: str = "Satterthwaite", scope=None):
    """Single-term deletions of the fixed-effect terms of an lmer fit (lme4's and lmerTest's ``drop1``).

    Only terms that no other term contains can be dropped (R's
    ``drop.scope``: with ``A * B``, just ``A:B``).

    Parameters
    ----------
    model : LmerResult
    test : {None, "F", "Chisq"}
        ``"Chisq"``: lme4's table (npar, AIC, LRT, Pr(Chi)) from maximum
        likelihood refits of the model without each term (a REML fit is
        refitted by ML first). None or ``"F"`` (lmerTest's default): the F
        test of each term's coefficients with ``ddf`` degrees of freedom.
    ddf : {"Satterthwaite", "Kenward-Roger"}
        For the F tests.
    scope : str or list of str, optional
        The terms to drop (default: all that can be).

    Returns
    -------
    TermTable
        ``.table`` (DataFrame), printed as R.

    Raises
    ------
    OptionError
        Not an lmer fit, a bad ``test`` or ``ddf``, a term in ``scope`` that
        another term contains.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> t = ml.drop1(m, test="Chisq").table
    >>> round(float(t.loc["Days", "LRT"]), 3)
    23.537
    """
    _need_lmer(model, "drop1")
    return model.drop1(test=test, ddf=ddf, scope=scope)


def emmeans(model, specs, pairwise: bool = False, level: float = 0.95, ddf: str = "Satterthwaite"):
    """Estimated marginal means of an lmer fit, as the R package emmeans by default.

    The reference grid crosses every level of every factor in the fixed
    effects, with each numeric covariate at its mean; the mean of a level of
    ``specs`` averages the grid's predictions with equal weights over the
    other factors. Each mean is a linear function L beta, with standard
    error sqrt(L V L') and a t interval with Satterthwaite (or
    Kenward-Roger) df (:mod:`pymlm.inference.emmeans`).

    Parameters
    ----------
    model : LmerResult
    specs : str or list of str
        The factor(s) whose levels (combinations) get a mean.
    pairwise : bool
        Also every difference of two means (``contrast(..., "pairwise",
        adjust = "none")``): estimate, SE, df, t ratio, p-value.
    level : float
        Confidence level of the intervals.
    ddf : {"Satterthwaite", "Kenward-Roger"}

    Returns
    -------
    MarginalMeans
        ``.table`` (levels, emmean, SE, df, lower.CL, upper.CL), ``.contrasts``,
        ``.L`` (the linear functions).

    Raises
    ------
    OptionError
        Not an lmer fit; a name in ``specs`` that is not a factor of the
        fixed effects; a bad ``level`` or ``ddf``.

    Examples
    --------
    >>> import pymlm as ml
    >>> pen = ml.datasets.load("Penicillin")
    >>> e = ml.emmeans(ml.lmer("diameter ~ sample + (1 | plate)", pen), "sample")
    >>> e.table["emmean"].round(3).tolist()
    [25.167, 21.958, 24.917, 22.875, 22.958, 19.958]
    """
    _need_lmer(model, "emmeans")
    from .results.lmer_tests import emmeans as _emmeans

    return _emmeans(model, specs, pairwise=pairwise, level=level, ddf=ddf)


def ranova(model, reduce_terms: bool = True):
    """Likelihood-ratio tests of the random-effect terms of an lmer fit (lmerTest's ``ranova``);
    see :meth:`LmerResult.ranova`."""
    _need_lmer(model, "ranova")
    return model.ranova(reduce_terms=reduce_terms)


# --------------------------------------------------------------------------- GAM: gam, bam


def _check_gam_method(method, allowed):
    if not isinstance(method, str) or method not in allowed:
        raise option_error("method", allowed, method)
    return method


def _check_gam_optimizer(optimizer):
    if optimizer not in ("newton", "fs"):
        raise option_error("optimizer", ["newton", "fs"], optimizer)


def _check_knots(knots):
    """``knots``: None or a mapping of covariate names to finite knot locations."""
    if knots is None:
        return None
    if not isinstance(knots, dict):
        raise OptionError(f"knots must be a dict of covariate name -> knot locations; got {type(knots).__name__}")
    out = {}
    for name, value in knots.items():
        arr = np.asarray(value, dtype=float).ravel()
        if arr.size < 2 or not np.all(np.isfinite(arr)):
            raise OptionError(f"knots[{name!r}] must hold at least two finite values; got {value!r}")
        out[str(name)] = arr
    return out


def _check_sp(sp, design: GamDesign):
    """Fixed smoothing parameters: one positive value per penalty parameter of the design."""
    if sp is None:
        return None
    n_par = sum(b.n_par for b in design.penalties)
    sp = np.atleast_1d(np.asarray(sp, dtype=float))
    if sp.shape[0] != n_par or np.any(sp <= 0):
        raise OptionError(f"sp must hold {n_par} positive smoothing parameters (one per penalty); got {sp.tolist()}")
    return sp


def _gam_result(design: GamDesign, fit: GamFit, engine: str, discrete: bool = False) -> GamResult:
    """Wrap a fit, and report what did not converge (the record only holds the messages)."""
    for message in fit.warnings:
        warn(message, ConvergenceWarning)
    return GamResult(design, fit, engine=engine, discrete=discrete)


def gam(formula: str, data, family="gaussian", method: str = "REML", weights=None, offset=None, sp=None,
        optimizer: str = "newton", progress: bool = True, select: bool = False, knots=None) -> GamResult:
    """Fit a generalized additive (mixed) model by REML, ML or GCV, as mgcv's ``gam``.

    Parameters
    ----------
    formula : str
        An mgcv formula with smooth terms ``s(x, bs = "cr" | "cc" | "cs" |
        "tp" | "ts" | "ps" | "re" | "fs", k = ..., by = ...)``, tensor
        products ``te(x1, x2)`` and tensor interactions ``ti(x1, x2)`` (the
        main effects excluded, for ``s(x1) + s(x2) + ti(x1, x2)``), parametric terms,
        and lme4 random-effect terms ``(1 | g)``, ``(x || g)``,
        ``(1 + x | g)`` (correlated random slopes, which mgcv cannot fit).
    data : pandas.DataFrame, pyarrow.Table or dict of columns
        In memory: a streamed source (a path, a pyarrow Dataset, a polars
        LazyFrame, a Dask DataFrame) is refused with a pointer to
        :func:`bam`, which streams it.
    family : str or statsmodels family
        ``"gaussian"`` (default), ``"binomial"``, ``"poisson"``, ``"Gamma"``
        or a statsmodels family object.
    method : {"REML", "ML", "GCV.Cp"}
        Smoothing parameter selection: restricted maximum likelihood
        (default); maximum (marginal) likelihood, which treats the
        unpenalized coefficients as fixed effects, so that fits with
        different fixed effects can be compared by likelihood; or
        generalized cross validation (unknown scale: Gaussian, Gamma) and
        UBRE / Mallows' Cp (known scale: binomial, Poisson), as mgcv's
        ``"GCV.Cp"``. ``fit.score`` is the criterion at the optimum.
    weights, offset : str, array-like or None
        Prior weights and offset: a column name or one value per row.
    sp : array-like, optional
        Fixed smoothing parameters, one per penalty (skips the optimization).
    optimizer : {"newton", "fs"}
        Newton's method with the exact Hessian (default) or the generalized
        Fellner-Schall update.
    progress : bool
        A progress bar (building the model matrix, then one step per
        smoothing-parameter iteration); it appears only for fits that last
        more than about two seconds. ``False`` hides it always.
    select : bool
        Double-penalty shrinkage (mgcv's ``select = TRUE``): every smooth with
        a penalty null space (the linear part of a spline) gets a second
        penalty on that null space, with its own smoothing parameter, so that
        a term can be shrunk to zero and in effect removed from the model.
    knots : dict, optional
        Knot locations by covariate name, as mgcv's ``knots``: for ``"cr"``
        and ``"cs"`` smooths ``k`` knots; for a cyclic ``"cc"`` smooth ``k``
        knots whose first and last are the ends of the period, or only those
        two ends (``{"hour": [0, 24]}``), the interior knots then spread
        through the data.

    Returns
    -------
    GamResult

    Raises
    ------
    FormulaError
        A malformed formula, an unknown basis or option in ``s()``.
    DataError
        A missing column (including a ``by`` variable), ``k`` larger than the
        number of distinct values of a covariate, an unusable response.
    OptionError
        A bad ``family``, ``method``, ``optimizer``, ``sp``, ``progress`` or ``select``;
        a streamed source.

    Warns
    -----
    ConvergenceWarning
        The smoothing-parameter optimization or the performance iteration
        did not converge (the message says which).
    RankDeficiencyWarning
        Parametric columns dropped as linearly dependent.

    Notes
    -----
    The whole model matrix is evaluated once and kept (dense smooth columns,
    sparse random-effect columns). Binomial and Poisson models are fitted
    as mgcv's ``gam`` fits them: the smoothing parameters maximize the
    Laplace approximation of the restricted likelihood (started from the
    performance-iteration estimates). Other non-Gaussian families (Gamma,
    non-canonical links with an estimated scale) use performance iteration,
    as ``bam`` does, which usually agrees closely with mgcv's ``gam`` but
    not exactly.

    A factor-smooth term (``bs = "fs"``) penalizes each null-space function
    of its base smooth separately; pymlm takes those functions to be the
    constant and the centred line (Gram-Schmidt in the data inner product),
    whereas mgcv 1.8-41 takes an arbitrary rotation of them that depends on
    rounding, so mgcv's own fs fits move with the row order or the BLAS
    library. With the same null-space basis the fits agree.

    The coefficients of a factor smooth (or a large single-column random
    effect) are eliminated level by level before the dense Cholesky
    factorization of the rest.

    Examples
    --------
    >>> import pymlm as ml
    >>> df = ml.datasets.load("gamsim_re").iloc[:2000]
    >>> b = ml.gam('y ~ s(x0, bs = "cr") + s(x2, bs = "cr") + s(g, bs = "re")', df)
    >>> list(b.edf.index)
    ['s(x0)', 's(x2)', 's(g)']
    """
    formula = check_formula(formula)
    _check_gam_method(method, ["REML", "ML", "GCV.Cp"])
    select = check_bool("select", select)
    _check_gam_optimizer(optimizer)
    family = resolve_family(family)[0]
    progress = check_bool("progress", progress)
    if is_streamed(data):
        source = as_source(data)
        if source.streamed:
            raise OptionError(
                f"gam() keeps every row's model matrix (its exact REML and, for binomial and Poisson models, "
                f"the Laplace step use them), so it does not stream {source.name!r}; fit "
                "bam(formula, data, discrete=True), which streams the source in bounded memory, or read the "
                "data into a pandas DataFrame")
    with progress_bar(None, "gam: model matrix", enabled=progress) as bar:
        design = build_gam_design(formula, data, weights, offset, discrete=False, select=select,
                                  knots=_check_knots(knots))
        sp = _check_sp(sp, design)
        engine = ChunkEngine(design, chunk_size=max(design.n, 1), cache=True)
        bar.set_description_str(f"gam: {method} iterations", refresh=False)
        fit = fit_gam(design, engine, family, sp=sp, optimizer=optimizer, method=method, laplace=True,
                      on_step=lambda: bar.update(1))
    return _gam_result(design, fit, engine="gam")


def bam(formula: str, data, family="gaussian", method: str = "fREML", discrete: bool = True,
        chunk_size: int | None = None, weights=None, offset=None, sp=None, optimizer: str = "newton",
        discrete_m: int | None = None, progress: bool = True, select: bool = False,
        knots=None) -> GamResult:
    """Fit a GAMM to big data, as mgcv's ``bam``.

    Parameters
    ----------
    formula : str
        As for :func:`gam`.
    data : pandas.DataFrame, pyarrow.Table, dict of columns, path or stream
        Rows with a missing value in a used column are dropped and counted.
        A path to a CSV file, a Parquet file or a folder of Parquet files
        (hive partitions included), a ``pyarrow.dataset.Dataset``, a polars
        LazyFrame or a Dask DataFrame is streamed in bounded memory (see
        :mod:`pymlm.sources`): a first pass collects the levels of factors,
        the rows dropped and, per smooth covariate, its range and distinct
        values (what mgcv's discretization needs); a pass of column maxima
        and a pass of cross-tabulations of the discretized covariates follow,
        summed in exact integer arithmetic, so that the fit equals the
        in-memory ``bam(discrete=True)`` of the same rows and does not depend
        on the batch size or, for a Dask DataFrame (computed on its cluster,
        ``result.workers`` names the workers), on the partitioning. Other
        families than the Gaussian are fitted by performance iteration as
        in memory, with two passes per iteration (maxima, then the exact sums
        of the deviance and of the next working model). Streamed fits take
        ``discrete=True`` and every term of :func:`gam`; weights and offset
        must be column names. Their result
        (:class:`~pymlm.results.gam.StreamedGamResult`) refuses what needs
        the rows (``fitted``, ``residuals``, ``predict()`` without
        ``newdata``).
    family : str or statsmodels family
    method : {"fREML", "REML"}
        Fast REML (the same criterion as REML, computed from ``X'WX``).
    discrete : bool
        ``True`` (default here; mgcv's default is ``FALSE``): each covariate
        is rounded to at most 1000 distinct values (mgcv's rule), every
        term's model matrix is stored as its distinct rows plus an index, and
        ``X'WX`` is formed from cross-tabulated index pairs without ever
        forming the n-row model matrix. ``False``: ``X'WX`` is accumulated
        over chunks of ``chunk_size`` rows (exact covariates, bounded memory).
    chunk_size : int, optional
        Rows per chunk for ``discrete=False`` (default 10,000); rows per batch
        read from a streamed source and within a Dask partition (default
        500,000).
    weights, offset : str, array-like or None
    sp : array-like, optional
        Fixed smoothing parameters.
    optimizer : {"newton", "fs"}
    discrete_m : int, optional
        Largest number of distinct values kept per covariate.
    progress : bool
        As for :func:`gam`: a bar only for fits longer than a couple of seconds.
    select : bool
        Double-penalty shrinkage, as :func:`gam`'s ``select``.
    knots : dict, optional
        Knot locations by covariate name, as :func:`gam`'s ``knots``.

    Returns
    -------
    GamResult

    Raises
    ------
    FormulaError, DataError, OptionError
        As :func:`gam`. On a streamed source also: ``discrete=False``, whose knots are quantiles of all distinct
        covariate values, more than a stream holds in bounded memory
        (OptionError);
        linearly dependent parametric columns, weights or an offset given as
        values, a column missing from some file (DataError, naming the file
        and the column).

    Warns
    -----
    ConvergenceWarning, RankDeficiencyWarning
        As :func:`gam`.
    MissingDataWarning
        Rows dropped for missing values (streamed sources).

    Notes
    -----
    Gaussian identity models are fitted in one pass over the data; other
    families by performance iteration (Wood, Goude & Shaw 2015). With
    ``discrete=True`` the fit is exact for the discretized covariates;
    smooths are built on the distinct discretized values, so knots follow
    mgcv's discrete method.

    Examples
    --------
    >>> import pymlm as ml
    >>> df = ml.datasets.load("gamsim_re")
    >>> b = ml.bam('y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + (1 | g)', df, discrete=True)
    >>> round(b.scale, 1)
    11.6
    """
    formula = check_formula(formula)
    _check_gam_method(method, ["fREML", "REML"])
    _check_gam_optimizer(optimizer)
    family = resolve_family(family)[0]
    if not isinstance(discrete, (bool, np.bool_)):
        raise OptionError(f"discrete must be True or False; got {discrete!r}")
    streamed_default = chunk_size is None
    chunk_size = 10_000 if chunk_size is None else check_positive_int("chunk_size", chunk_size)
    if discrete_m is not None:
        discrete_m = check_positive_int("discrete_m", discrete_m, 2)
    progress = check_bool("progress", progress)
    select = check_bool("select", select)
    if is_streamed(data):
        source = as_source(data)
        if source.streamed:
            return _bam_stream(formula, source, family, discrete, 500_000 if streamed_default else chunk_size,
                               weights, offset, sp, optimizer,
                               discrete_m, progress, select, _check_knots(knots))
        from .design import used_columns
        from .formula import parse_formula

        cols = used_columns(parse_formula(formula), source.columns)
        cols += [c for c in (weights, offset) if isinstance(c, str) and c in source.columns]
        data = source.read(cols)
    with progress_bar(None, "bam: model matrix", enabled=progress) as bar:
        design = build_gam_design(formula, data, weights, offset, discrete=bool(discrete), discrete_m=discrete_m,
                                  select=select, knots=_check_knots(knots))
        sp = _check_sp(sp, design)
        if not design.terms:
            # nothing to discretize: a parametric model
            engine = ChunkEngine(design, chunk_size=chunk_size)
        elif discrete:
            engine = DiscreteEngine(design)
        else:
            engine = ChunkEngine(design, chunk_size=chunk_size)
        bar.set_description_str("bam: fREML iterations", refresh=False)
        fit = fit_gam(design, engine, family, sp=sp, optimizer=optimizer, method="fREML",
                      on_step=lambda: bar.update(1))
    return _gam_result(design, fit, engine="bam", discrete=bool(discrete and design.terms))


def _stream_rank_keep(plan, source, batch_size, tables, scales):
    """The parametric columns to keep when they are linearly dependent over the streamed rows (None:
    all), chosen as for a frame in memory (:func:`~pymlm.design.drop_rank_deficient`, from the R
    factor of one more pass); the dropped ones are warned about."""
    from .crossprod._gam_stream import RFactorStep, parametric_gram, run_pass
    from .design._fixed import gram_has_full_rank, rank_keep

    pp = plan.pp
    if not pp or gram_has_full_rank(parametric_gram(tables, scales, pp)):
        return None
    R = run_pass(plan, source, batch_size, RFactorStep(), desc="rank")
    keep = rank_keep(R, R.T @ R)
    names = plan.design.X_names
    dropped = [names[i] for i in range(pp) if i not in set(keep.tolist())]
    from .errors import RankDeficiencyWarning

    warn(f"the parametric model matrix is rank deficient; dropping {', '.join(dropped)}", RankDeficiencyWarning)
    return keep


def _bam_stream(formula, source, family, discrete, chunk_size, weights, offset, sp, optimizer, discrete_m,
                progress, select, knots) -> GamResult:
    """``bam(discrete = TRUE)`` on a streamed source: a first pass for the design, a pass of maxima,
    a pass of exact cross-tabulations (on the workers for a Dask DataFrame), then the fit from them."""
    from .crossprod._gam_stream import cross_stats, occupied_cells, stream_gam_tables
    from .design._gam_stream import finish_gam_design, scan_gam_design, with_parametric_columns
    from .fit.gam import fit_gam_stats
    from .linalg._threads import blas_threads
    from .results.gam import StreamedGamResult

    _, fam_name, link_name = resolve_family(family)
    if not discrete:
        raise OptionError(
            f"bam on a streamed source ({source.name!r}) needs discrete=True; got discrete=False, whose "
            "smooths place their knots at quantiles of all the distinct covariate values, which a stream "
            "cannot hold in bounded memory (discrete=True needs only each covariate's range and up to 1000 "
            "distinct values). Pass discrete=True, or read the data into a pandas DataFrame")
    for what, value in (("weights", weights), ("offset", offset)):
        if value is not None and not isinstance(value, str):
            raise DataError(f"{what} must be a column name when the data are streamed from {source.name!r}: "
                            "values given one per row cannot be matched to the rows of a stream; add them "
                            "as a column")
    batch_size = max(int(chunk_size), 1)
    plan = scan_gam_design(formula, source, weights, offset, discrete_m=discrete_m, select=select, knots=knots,
                           batch_size=batch_size, progress=progress)
    if (fam_name, link_name) != ("gaussian", "identity"):
        from .fit._gam_stream import fit_gam_stream_pirls

        with progress_bar(None, "bam: performance iterations", enabled=progress) as bar:
            design, fit = fit_gam_stream_pirls(
                plan, source, family, batch_size=batch_size, sp=sp, optimizer=optimizer,
                on_step=lambda: bar.update(1),
                check_rank=lambda pl, tb, sc: _stream_rank_keep(pl, source, batch_size, tb, sc))
        for message in fit.warnings:
            warn(message, ConvergenceWarning)
        return StreamedGamResult(design, fit, engine="bam", discrete=True)
    with blas_threads(1):
        tables, scales = stream_gam_tables(plan, source, batch_size, progress=progress)
        keep = _stream_rank_keep(plan, source, batch_size, tables, scales)
        if keep is not None:
            plan = with_parametric_columns(plan, keep)
            tables, scales = stream_gam_tables(plan, source, batch_size, progress=progress)
    if tables.n == 0:
        raise DataError(f"{source.name!r} has no complete rows")
    if tables.y_max == tables.y_min:
        raise DataError(f"the response {plan.design.y_name!r} is constant (every value is {tables.y_min:.6g}); "
                        "a GAM needs a response that varies. Check the response column.")
    design, mats = finish_gam_design(plan, occupied_cells(plan, tables), source.name, formula)
    stats, summary = cross_stats(plan, design, mats, tables, scales)
    from dataclasses import replace

    design = replace(design, summary=summary, workers=tuple(sorted(tables.workers)))
    sp = _check_sp(sp, design)
    with progress_bar(None, "bam: fREML iterations", enabled=progress) as bar:
        fit = fit_gam_stats(design, stats, summary, sp=sp, optimizer=optimizer, on_step=lambda: bar.update(1))
    for message in fit.warnings:
        warn(message, ConvergenceWarning)
    return StreamedGamResult(design, fit, engine="bam", discrete=True)


# ---------------------------------------------------------------- glmer
GLMER_SE = ("hessian", "RX")


def fit_glmer_design(design: Design, family="binomial", nAGQ: int = 1, *, start=None, optimizer: str = "lbfgsb",
                     se: str = "hessian", check_conv: bool = True, optimizer_options: dict | None = None,
                     data=None, data_name=None, nb: bool = False):
    """Fit a GLMM to a built :class:`~pymlm.design.Design` and wrap it (see :func:`glmer`);
    ``nb=True``: the negative binomial with its shape estimated (see :func:`glmer_nb`)."""
    from .fit.glmm import (
        AGQ_TERMS_MESSAGE,
        MAX_AGQ_DIM,
        fit_glmm,
        fit_glmm_nb,
        problem_from_design,
        separation_suspected,
        singular_warning,
    )

    problem, merge = problem_from_design(design, "poisson" if nb else family)
    if nAGQ > 1 and (problem.tmap.n_terms != 1 or problem.tmap.dims[0][0] > MAX_AGQ_DIM):
        raise OptionError(AGQ_TERMS_MESSAGE.format(nAGQ=nAGQ), design.formula)
    if nAGQ == 0:
        warn("nAGQ = 0 optimizes theta with the fixed effects inside PIRLS (lme4's first stage only): fast, "
             "but biased for small binary clusters; use nAGQ = 1 for the Laplace estimates", PymlmWarning)
    opts = optimizer_options or {}
    try:
        if nb:
            fit = fit_glmm_nb(problem, start=start, optimizer=optimizer, se=se, check_conv=check_conv,
                              maxfev=opts.get("maxfev"), merge=merge)
        else:
            fit = fit_glmm(problem, nAGQ=nAGQ, start=start, optimizer=optimizer, se=se, check_conv=check_conv,
                           maxfev=opts.get("maxfev"), merge=merge)
    except (np.linalg.LinAlgError, FloatingPointError, DataError) as exc:
        sep = _separation(problem, design, problem.start_eta())
        if sep is not None:
            raise DataError(sep, design.formula) from exc
        if isinstance(exc, DataError):
            raise
        raise _numerical_failure(design) from exc
    if separation_suspected(fit):
        sep = _separation(problem, design, fit.eta)
        if sep is not None:
            warn(sep, ConvergenceWarning)
    for message in fit.opt.messages:
        if message.startswith(("Model failed", "Model is nearly")):
            warn(message, ConvergenceWarning)
    singular_warning(fit)
    options = {"family": family, "nAGQ": nAGQ, "start": start, "optimizer": optimizer, "se": se,
               "check_conv": check_conv, "optimizer_options": optimizer_options, "weights": design.weights}
    from .results.glmer import GlmerResult

    return GlmerResult(design, fit, data=data, data_name=data_name, options=options,
                       refit_design=fit_glmer_design, refit_formula=glmer_nb if nb else glmer)


def _separation(problem, design, eta) -> str | None:
    """The separation message naming the fixed-effect columns, or None (binomial fits only)."""
    from .fit.glmm import separated_columns, separation_message

    if problem.family.kind != "binomial":
        return None
    cols = separated_columns(problem.X, problem.y, problem.prior_weights)
    return separation_message([design.X_names[j] for j in cols]) if cols.size else None


def glmer(formula: str, data, family="binomial", nAGQ: int = 1, weights=None, offset=None, *, start=None,
          optimizer: str = "lbfgsb", se: str = "hessian", check_conv: bool = True,
          optimizer_options: dict | None = None, data_name: str | None = None):
    """Fit a generalized linear mixed model, as lme4's ``glmer``.

    Parameters
    ----------
    formula : str
        lme4 formula. Binomial responses: ``cbind(successes, failures)``, a
        proportion with ``weights`` (the trials), 0/1, a two-level factor (the
        first level is failure) or logical.
    data : pandas.DataFrame, pyarrow.Table or dict of columns
    family : str or statsmodels family
        ``"binomial"``, ``"poisson"``, ``"Gamma"``, ``"inverse.gaussian"`` (R's
        default links) or a statsmodels family instance with its link, e.g.
        ``sm.families.Binomial(link=sm.families.links.Probit())``.
    nAGQ : int
        1: Laplace (default); 0: lme4's first stage only (fixed effects
        inside PIRLS; fast, biased for small binary clusters); 2..25:
        adaptive Gauss-Hermite quadrature for the random effects of one
        grouping factor (``(1 | g)`` as lme4; beyond lme4, vector terms such as
        ``(1 + x | g)`` with up to 3 coefficients by the tensor-product rule,
        nAGQ^d points per group).
    weights : str or array-like, optional
        Prior weights (binomial: the trials of a proportion response).
    offset : str or array-like, optional
        Added to the linear predictor (``offset(log(t))`` in the formula works too).
    start : dict, optional
        ``{"theta": ..., "fixef": ...}``.
    optimizer : {"lbfgsb", "bobyqa", "nelder-mead", "powell", "cobyqa"}
        ``"lbfgsb"``: quasi-Newton on the analytic gradient of the Laplace
        objective (one random-effects term, binomial or Poisson with the
        canonical link) or on forward differences of the tightly converged
        objective; the others are derivative-free.
    se : {"hessian", "RX"}
        Standard errors from the Hessian of the objective in (theta, beta)
        (default, as glmmTMB's exact Hessian) or lme4's R_X approximation.
    check_conv : bool
        lme4's convergence checks (scaled gradient, Hessian).
    optimizer_options : dict, optional
        ``maxfev``.
    data_name : str, optional

    Returns
    -------
    GlmerResult

    Raises
    ------
    FormulaError, DataError, OptionError
        As :func:`lmer`; also a response the family cannot have, and a fit whose
        PIRLS fails at the start (complete separation, extreme values).

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              ml.datasets.load("cbpp"), family="binomial")
    >>> round(float(m.theta[0]), 3)
    0.642
    """
    return _glmer(formula, data, family, nAGQ, weights, offset, start, optimizer, se, check_conv,
                  optimizer_options, data_name, nb=False)


def _glmer(formula, data, family, nAGQ, weights, offset, start, optimizer, se, check_conv, optimizer_options,
           data_name, nb: bool):
    """glmer's and glmer_nb's checks, then the fit."""
    from .fit.families import resolve_family

    formula = check_formula(formula)
    check_conv = check_bool("check_conv", check_conv)
    fam = resolve_family("poisson" if nb else family)
    if isinstance(nAGQ, bool) or not isinstance(nAGQ, (int, np.integer)) or not 0 <= nAGQ <= 25:
        raise OptionError(f"nAGQ must be an integer from 0 to 25; got {nAGQ!r}")
    if isinstance(optimizer, str) and optimizer.lower() not in OPTIMIZERS:
        raise OptionError(f"optimizer must be one of {', '.join(repr(o) for o in OPTIMIZERS)}; got {optimizer!r}")
    if se not in GLMER_SE:
        raise OptionError(f"se must be 'hessian' or 'RX'; got {se!r}")
    if start is not None and not isinstance(start, dict):
        raise OptionError(f"start must be a dict with 'theta' and/or 'fixef'; got {start!r}")
    if optimizer_options is not None:
        unknown = sorted(set(optimizer_options) - {"maxfev"})
        if unknown:
            raise OptionError(f"optimizer_options takes 'maxfev'; got {unknown}")
    design = build_design(formula, data, weights, offset, check="glmer", require_numeric_response=False)
    if start is not None and start.get("theta") is not None and \
            np.asarray(start["theta"], dtype=float).shape != design.theta.shape:
        raise OptionError(f"start['theta'] has {np.size(start['theta'])} values; this model has "
                          f"{design.theta.size} ({', '.join(design.theta_names)})")
    return fit_glmer_design(design, fam, int(nAGQ), start=start, optimizer=optimizer, se=se, check_conv=check_conv,
                            optimizer_options=optimizer_options, data=data, data_name=data_name, nb=nb)


def glmer_nb(formula: str, data, weights=None, offset=None, *, start=None, optimizer: str = "lbfgsb",
             se: str = "hessian", check_conv: bool = True, optimizer_options: dict | None = None,
             data_name: str | None = None, family=None, nAGQ: int = 1):
    """A negative binomial GLMM with its shape theta estimated, as lme4's ``glmer.nb``.

    The family is ``Negative Binomial(theta)`` with a log link (variance
    mu + mu^2 / theta); theta maximizes the Laplace log-likelihood (an
    outer search over log theta, each step a warm-started glmer fit); the
    other arguments are those of :func:`glmer` (Laplace only). ``family``
    and ``nAGQ`` are accepted for ``update()`` of a fit: a negative binomial
    family (its shape is estimated again) and 1.

    Returns
    -------
    GlmerResult
        Its fit's ``nb_theta`` is the estimated shape.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.glmer_nb("TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD)", ml.datasets.load("grouseticks"))
    >>> round(m.fit.nb_theta, 2)
    3.31
    """
    from .fit.families import resolve_family

    if family is not None and resolve_family(family).kind != "negative.binomial":
        raise OptionError(f"glmer_nb fits the negative binomial family; got family={family!r} (use glmer)")
    if nAGQ != 1:
        raise OptionError(f"glmer_nb uses the Laplace approximation (nAGQ = 1); got nAGQ={nAGQ!r}")
    return _glmer(formula, data, "poisson", 1, weights, offset, start, optimizer, se, check_conv,
                  optimizer_options, data_name, nb=True)
