"""``gam()`` and ``bam()``: penalized regression spline GAMMs fitted by REML, as mgcv's.

Both build a :class:`~pymlm.fit._gam_design.GamDesign` (parametric columns,
smooths, lme4 random-effect terms as penalized terms), form the cross
products ``X'WX`` and ``X'Wz`` (exactly for :func:`gam`, by chunks or from
discretized covariates for :func:`bam`) and choose the smoothing parameters
by maximizing the restricted likelihood with Newton's method on their logs
(:mod:`._gam_reml`).

Gaussian identity models need one pass over the data. Other families
(binomial, Poisson, Gamma, or any statsmodels family) use performance
iteration, as ``bam`` does: at each iteration of penalized iteratively
re-weighted least squares the smoothing parameters of the working linear
model are re-estimated (Wood, Goude & Shaw 2015, section 3; mgcv's ``bam``
with ``method = "fREML"``). ``gam`` then continues, for binomial and
Poisson models, to the optimum of the Laplace-approximate REML, as mgcv's
``gam`` does (:mod:`._gam_laplace`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._progress import progress_bar
from .._validation import check_bool, check_formula, check_positive_int
from ..errors import ConvergenceWarning, DataError, OptionError, option_error, warn
from ..smooth._basis import blas_threads_for
from ._gam_design import GamDesign, build_gam_design
from ._gam_engine import ChunkEngine, DiscreteEngine
from ._gam_penalty import reparametrize
from ._gam_reml import CrossStats, evaluate, fellner_schall, newton, null_dim

__all__ = ["GamFit", "fit_gam", "gam", "bam", "resolve_family"]

def _blas_limit(p: int):
    """One BLAS thread for small problems (see :func:`pymlm.smooth._basis.blas_threads_for`)."""
    return blas_threads_for(p)


def _families():
    """statsmodels' families module, imported on first use (it takes a second to import)."""
    from statsmodels.genmod import families

    return families


_FAMILIES = {
    "gaussian": lambda: _families().Gaussian(),
    "binomial": lambda: _families().Binomial(),
    "poisson": lambda: _families().Poisson(),
    "gamma": lambda: _families().Gamma(),
}
_LINK_NAMES = {
    "Identity": "identity", "Logit": "logit", "Log": "log", "InversePower": "inverse",
    "Probit": "probit", "CLogLog": "cloglog", "Sqrt": "sqrt", "InverseSquared": "1/mu^2",
    "Cauchy": "cauchit",
}
_FAMILY_NAMES = {"Gaussian": "gaussian", "Binomial": "binomial", "Poisson": "poisson", "Gamma": "Gamma",
                 "InverseGaussian": "inverse.gaussian", "NegativeBinomial": "negative.binomial",
                 "Tweedie": "Tweedie"}


def resolve_family(family):
    """A statsmodels family from a name or an instance.

    Parameters
    ----------
    family : str or statsmodels.genmod.families.Family
        ``"gaussian"``, ``"binomial"``, ``"poisson"``, ``"Gamma"`` (R's
        default links), or a statsmodels family (any link).

    Returns
    -------
    family : statsmodels family
    name, link : str
        R's names, for the summary.
    """
    if isinstance(family, str):
        key = family.lower()
        if key not in _FAMILIES:
            raise option_error("family", ["gaussian", "binomial", "poisson", "Gamma"], family)
        fam = _FAMILIES[key]()
    elif isinstance(family, _families().Family):
        fam = family
    else:
        raise OptionError(
            "family must be a name ('gaussian', 'binomial', 'poisson', 'Gamma') or a statsmodels "
            f"family such as sm.families.Gamma(sm.families.links.Log()); got {family!r}"
        )
    name = _FAMILY_NAMES.get(type(fam).__name__, type(fam).__name__.lower())
    link = _LINK_NAMES.get(type(fam.link).__name__, type(fam.link).__name__.lower())
    return fam, name, link


@dataclass
class GamFit:
    """The fitted quantities of a GAM (fit-level record, arrays only).

    Attributes
    ----------
    beta : ndarray (p,)
    PP : ndarray (p, p)
        ``(X'WX + S)^{-1}`` of the final (working) model.
    XtWX : ndarray (p, p)
        Final working cross product.
    scale : float
        ``phi``: estimated (profiled REML) or fixed at 1.
    scale_estimated : bool
    reml_score : float
    rho : ndarray
        All penalty parameters (log smoothing parameters).
    eta, mu : ndarray (n,)
        Linear predictor (with offset) and fitted mean.
    deviance, null_deviance : float
    prior_weights : ndarray (n,)
    working_weights : ndarray (n,) or None
    iterations : int
        PIRLS iterations (1 for Gaussian identity).
    newton_iterations : int
        Newton steps of the last smoothing parameter optimization.
    converged : bool
    message : str
    Mp : int
        Dimension of the penalty null space.
    """

    beta: np.ndarray
    PP: np.ndarray
    XtWX: np.ndarray
    scale: float
    scale_estimated: bool
    reml_score: float
    rho: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    deviance: float
    null_deviance: float
    prior_weights: np.ndarray
    working_weights: np.ndarray | None
    iterations: int
    newton_iterations: int
    converged: bool
    message: str
    Mp: int
    family: object = None
    family_name: str = "gaussian"
    link_name: str = "identity"
    method: str = "REML"
    timings: dict = field(default_factory=dict)

    @property
    def F(self) -> np.ndarray:
        """``(X'WX + S)^{-1} X'WX``: the coefficients' 'hat' matrix."""
        return self.PP @ self.XtWX

    @property
    def edf(self) -> np.ndarray:
        """Effective degrees of freedom per coefficient, ``diag(F)``."""
        return np.einsum("ij,ji->i", self.PP, self.XtWX)

    @property
    def edf1(self) -> np.ndarray:
        """mgcv's alternative per-coefficient edf ``2 diag(F) - diag(F F)``."""
        F = self.F
        return 2 * np.diag(F) - np.einsum("ij,ji->i", F, F)

    @property
    def Vp(self) -> np.ndarray:
        """Bayesian posterior covariance of the coefficients, ``phi (X'WX + S)^{-1}``."""
        return self.PP * self.scale

    @property
    def Ve(self) -> np.ndarray:
        """Frequentist covariance ``phi A^{-1} X'WX A^{-1}``."""
        return self.F @ self.PP * self.scale


def _optimize(stats: CrossStats, penalties, rho0, phi, sp, optimizer, on_step=None):
    """Smoothing parameters and coefficients of one (working) linear model.

    The optimization runs in coordinates where single penalties are diagonal
    (:func:`~._gam_penalty.reparametrize`); coefficients and ``A^{-1}`` are
    mapped back.
    """
    T, pens = reparametrize(penalties, stats.p)
    # T is block diagonal and the identity outside the rotated blocks (never on diagonal
    # penalties, so a block-diagonal segment stays one): T'AT block by block, O(p k^2)
    moved = [b.cols for b, new in zip(penalties, pens) if new is not b]
    tstats = CrossStats(_congruence(stats.XtWX, T, moved), T.T @ stats.XtWz, stats.zWz, stats.n,
                        stats.blockdiag)
    if sp is not None:
        best = evaluate(np.log(sp), tstats, pens, phi)
        nit, conv, msg = 0, True, "smoothing parameters supplied"
    else:
        if optimizer == "fs" and all(b.kind == "linear" for b in pens):
            res = fellner_schall(tstats, pens, rho0, phi, on_step=on_step)
        else:
            res = newton(tstats, pens, rho0, phi, on_step=on_step)
        best, nit, conv, msg = res.best, res.iterations, res.converged, res.message
    best.beta = T @ best.beta
    best.PP = _congruence(best.PP, T.T, moved)
    return best, nit, conv, msg


def _congruence(A: np.ndarray, T: np.ndarray, blocks: list) -> np.ndarray:
    """``T' A T`` (p, p) for ``T`` equal to the identity outside its diagonal ``blocks`` (slices)."""
    out = A.copy()
    for c in blocks:
        U = T[c, c]
        out[:, c] = out[:, c] @ U
        out[c, :] = U.T @ out[c, :]
    return out


def _null_deviance(family, y, w, offset, has_intercept: bool) -> float:
    if has_intercept:
        mu0 = np.full_like(y, np.sum(w * y) / np.sum(w))
    else:
        eta0 = np.zeros_like(y) if offset is None else offset
        mu0 = family.link.inverse(eta0)
    return float(family.deviance(y, mu0, var_weights=w))


def _initial_mu(family, y, w):
    name = type(family).__name__
    if name == "Binomial":
        return (w * y + 0.5) / (w + 1.0)
    if name == "Poisson":
        return y + 0.1
    if name in ("Gamma", "InverseGaussian"):
        if np.any(y <= 0):
            raise DataError(f"the {name} family needs a positive response; found values <= 0")
        return y.copy()
    return family.starting_mu(y)


def _check_response(family, y, w):
    name = type(family).__name__
    if name == "Binomial" and (np.any(y < 0) or np.any(y > 1)):
        raise DataError(
            "binomial responses must be 0/1, proportions with totals as weights, or cbind(successes, failures)"
        )
    if name == "Poisson" and np.any(y < 0):
        raise DataError("the Poisson family needs non-negative counts; found negative values in the response")


def fit_gam(design: GamDesign, engine, family="gaussian", sp=None, optimizer: str = "newton",
            method: str = "REML", max_iter: int = 200, epsilon: float = 1e-7, laplace: bool = False,
            on_step=None) -> GamFit:
    """Fit a GAM design: smoothing parameters by REML, coefficients by penalized least squares.

    Parameters
    ----------
    design : GamDesign
    engine : DiscreteEngine or ChunkEngine
        How cross products are formed.
    family : str or statsmodels family
    sp : array-like, optional
        Fixed smoothing parameters (skips the optimization); one per penalty
        parameter, in coefficient order.
    optimizer : {"newton", "fs"}
        Newton on log smoothing parameters with the exact Hessian, or the
        generalized Fellner-Schall update.
    max_iter, epsilon : int, float
        Performance iteration limits for non-Gaussian families: converged
        when ``|dev - dev_old| < epsilon (|dev| + 0.1)``.
    laplace : bool
        For binomial and Poisson models, continue from the performance
        iteration estimates to the optimum of the Laplace-approximate REML
        (mgcv's ``gam``; :mod:`._gam_laplace`).
    on_step : callable, optional
        Called after every smoothing-parameter iteration (a progress bar).

    Returns
    -------
    GamFit
    """
    with _blas_limit(design.p):
        return _fit_gam(design, engine, family, sp, optimizer, method, max_iter, epsilon, laplace, on_step)


def _fit_gam(design, engine, family, sp, optimizer, method, max_iter, epsilon, laplace, on_step=None) -> GamFit:
    fam, fam_name, link_name = resolve_family(family)
    penalties = design.penalties
    n = design.n
    y = design.y
    w = design.weights
    prior = np.ones(n) if w is None else w
    off = design.offset
    p = design.p
    n_par = sum(b.n_par for b in penalties)
    if sp is not None:
        sp = np.atleast_1d(np.asarray(sp, dtype=float))
        if sp.shape[0] != n_par or np.any(sp <= 0):
            raise OptionError(f"sp must hold {n_par} positive smoothing parameters (one per penalty); got {sp.tolist()}")
    has_intercept = "(Intercept)" in design.p_names
    _check_response(fam, y, prior)
    gaussian_identity = fam_name == "gaussian" and link_name == "identity"
    scale_known = fam_name in ("binomial", "poisson")
    Mp = null_dim(p, penalties)
    if gaussian_identity:
        z = y if off is None else y - off
        stats = engine.stats(w, z)
        best, nit, conv, msg = _optimize(stats, penalties, None, None, sp, optimizer, on_step)
        eta = engine.eta(best.beta)
        if off is not None:
            eta = eta + off
        mu = eta
        dev = float(np.sum(prior * (y - mu) ** 2))
        if not conv:
            warn(f"the REML optimization did not converge: {msg}", ConvergenceWarning)
        return GamFit(best.beta, best.PP, stats.XtWX, best.phi, True, best.score, best.rho, eta, mu, dev,
                      _null_deviance(fam, y, prior, off, has_intercept), prior, w, 1, nit, conv, msg, Mp,
                      fam, fam_name, link_name, method)
    link = fam.link
    mu = _initial_mu(fam, y, prior)
    eta = link(mu)
    dev_old = np.inf
    rho = None
    converged = False
    best = stats = None
    it = 0
    nit, conv, msg = 0, True, ""
    for it in range(1, max_iter + 1):
        d = link.deriv(mu)
        var = fam.variance(mu)
        ww = prior / (var * d * d)
        ww = np.where(np.isfinite(ww), ww, 0.0)
        z = (eta - (0.0 if off is None else off)) + (y - mu) * d
        stats = engine.stats(ww, z)
        best, nit, conv, msg = _optimize(stats, penalties, rho, 1.0 if scale_known else None, sp, optimizer,
                                         on_step)
        rho = best.rho
        eta_new = engine.eta(best.beta) + (0.0 if off is None else off)
        mu_new = link.inverse(eta_new)
        dev = float(fam.deviance(y, mu_new, var_weights=prior))
        halvings = 0
        while (not np.isfinite(dev) or not np.all(np.isfinite(mu_new))) and halvings < 30:
            eta_new = (eta_new + eta) / 2
            mu_new = link.inverse(eta_new)
            dev = float(fam.deviance(y, mu_new, var_weights=prior))
            halvings += 1
        eta, mu = eta_new, mu_new
        if abs(dev - dev_old) < epsilon * (abs(dev) + 0.1):
            converged = True
            break
        dev_old = dev
    msg_out = "full convergence" if converged and conv else (
        msg if not conv else f"performance iteration did not converge in {max_iter} iterations")
    if laplace and scale_known and sp is None and penalties and hasattr(engine, "row_quadform"):
        from ._gam_laplace import laplace_reml

        lap = laplace_reml(design, engine, fam, fam_name, best.rho, best.beta)
        if not lap["converged"]:
            warn(f"the Laplace REML optimization did not converge: {lap['message']}",
                          ConvergenceWarning)
        mu = lap["mu"]
        return GamFit(lap["beta"], lap["PP"], lap["XtWX"], 1.0, False, lap["score"], lap["rho"], lap["eta"], mu,
                      float(fam.deviance(y, mu, var_weights=prior)),
                      _null_deviance(fam, y, prior, off, has_intercept), prior, lap["w"], it, lap["iterations"],
                      lap["converged"], "full convergence" if lap["converged"] else lap["message"], Mp,
                      fam, fam_name, link_name, method)
    if not (converged and conv):
        warn(f"the fit did not converge: {msg_out}", ConvergenceWarning)
    scale = 1.0 if scale_known else best.phi
    return GamFit(best.beta, best.PP, stats.XtWX, scale, not scale_known, best.score, best.rho, eta, mu,
                  float(fam.deviance(y, mu, var_weights=prior)),
                  _null_deviance(fam, y, prior, off, has_intercept), prior, ww, it, nit, converged and conv,
                  msg_out, Mp, fam, fam_name, link_name, method)


def _check_method(method, allowed):
    if not isinstance(method, str) or method not in allowed:
        raise option_error("method", allowed, method)
    return method


def gam(formula: str, data, family="gaussian", method: str = "REML", weights=None, offset=None, sp=None,
        optimizer: str = "newton", progress: bool = True):
    """Fit a generalized additive (mixed) model by REML, as mgcv's ``gam``.

    Parameters
    ----------
    formula : str
        An mgcv formula with smooth terms ``s(x, bs = "cr" | "tp" | "ps" |
        "re" | "fs", k = ..., by = ...)`` and ``te(x1, x2)``, parametric terms,
        and lme4 random-effect terms ``(1 | g)``, ``(x || g)``,
        ``(1 + x | g)`` (correlated random slopes, which mgcv cannot fit).
    data : pandas.DataFrame, pyarrow.Table or dict of columns
    family : str or statsmodels family
        ``"gaussian"`` (default), ``"binomial"``, ``"poisson"``, ``"Gamma"``
        or a statsmodels family object.
    method : {"REML"}
        Smoothing parameter selection by restricted maximum likelihood.
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
        A bad ``family``, ``method``, ``optimizer`` or ``progress``.

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
    from ..results.gam import GamResult

    formula = check_formula(formula)
    _check_method(method, ["REML"])
    _check_optimizer(optimizer)
    progress = check_bool("progress", progress)
    with progress_bar(None, "gam: model matrix", enabled=progress) as bar:
        design = build_gam_design(formula, data, weights, offset, discrete=False)
        engine = ChunkEngine(design, chunk_size=max(design.n, 1), cache=True)
        bar.set_description_str("gam: REML iterations", refresh=False)
        fit = fit_gam(design, engine, family, sp=sp, optimizer=optimizer, method="REML", laplace=True,
                      on_step=lambda: bar.update(1))
    return GamResult(design, fit, engine="gam")


def _check_optimizer(optimizer):
    if optimizer not in ("newton", "fs"):
        raise option_error("optimizer", ["newton", "fs"], optimizer)


def bam(formula: str, data, family="gaussian", method: str = "fREML", discrete: bool = True,
        chunk_size: int = 10_000, weights=None, offset=None, sp=None, optimizer: str = "newton",
        discrete_m: int | None = None, progress: bool = True):
    """Fit a GAMM to big data, as mgcv's ``bam``.

    Parameters
    ----------
    formula : str
        As for :func:`gam`.
    data : pandas.DataFrame, pyarrow.Table or dict of columns
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
    chunk_size : int
        Rows per chunk for ``discrete=False``.
    weights, offset : str, array-like or None
    sp : array-like, optional
        Fixed smoothing parameters.
    optimizer : {"newton", "fs"}
    discrete_m : int, optional
        Largest number of distinct values kept per covariate.
    progress : bool
        As for :func:`gam`: a bar only for fits longer than a couple of seconds.

    Returns
    -------
    GamResult

    Raises
    ------
    FormulaError, DataError, OptionError
        As :func:`gam`.

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
    from ..results.gam import GamResult

    formula = check_formula(formula)
    _check_method(method, ["fREML", "REML"])
    _check_optimizer(optimizer)
    if not isinstance(discrete, (bool, np.bool_)):
        raise OptionError(f"discrete must be True or False; got {discrete!r}")
    chunk_size = check_positive_int("chunk_size", chunk_size)
    if discrete_m is not None:
        discrete_m = check_positive_int("discrete_m", discrete_m, 2)
    progress = check_bool("progress", progress)
    with progress_bar(None, "bam: model matrix", enabled=progress) as bar:
        design = build_gam_design(formula, data, weights, offset, discrete=bool(discrete), discrete_m=discrete_m)
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
    return GamResult(design, fit, engine="bam", discrete=bool(discrete and design.terms))
