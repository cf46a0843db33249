"""The GAM fitter: smoothing parameters by REML, coefficients by penalized least squares, as mgcv's.

:func:`fit_gam` takes a built :class:`~pymlm.design.GamDesign` (parametric
columns, smooths, lme4 random-effect terms as penalized terms) and an engine
that forms the cross products ``X'WX`` and ``X'Wz`` (exactly, by chunks or
from discretized covariates, :mod:`pymlm.crossprod._gam`), chooses the smoothing
parameters by maximizing the restricted likelihood with Newton's method on
their logs (:mod:`._gam_reml`) and returns a :class:`GamFit` (arrays only).
:func:`pymlm.gam` and :func:`pymlm.bam` (in :mod:`pymlm._api`) validate the
input, build the design and the engine, call it and wrap the result.

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

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from ..crossprod._gam import CrossStats
from ..design import GamDesign
from ..errors import DataError
from ..linalg._threads import blas_threads
from ._gam_edf import corrected_edf, penalty_derivatives, scale_hessian
from ._gam_reml import evaluate, fellner_schall, newton, null_dim, reparametrize

__all__ = ["GamFit", "fit_gam", "fit_gam_stats", "resolve_family"]

#: Up to this many coefficients the fit runs on one BLAS thread: threads cost more than they
#: save on small matrices, and far more when the cores are busy (OpenBLAS threads spin).
SINGLE_THREAD_MAX = 1000


def resolve_family(family):
    """A statsmodels family from a name or an instance, by the package's one resolver
    (:func:`pymlm.fit.families.resolve_family` with ``engine="gam"``).

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
    from .families import resolve_family as resolve

    fam = resolve(family, engine="gam")
    return fam.family, fam.name, fam.link_name


@dataclass(frozen=True, eq=False)
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
    family : statsmodels family
    family_name, link_name : str
        R's names of the family and link.
    method : str
        ``"REML"`` (gam) or ``"fREML"`` (bam).
    warnings : tuple of str
        What did not converge, for the caller to report (:func:`pymlm.gam`
        warns with each); empty for a converged fit.
    rho_hess : ndarray or None
        Hessian of the smoothing-parameter criterion at the optimum, in
        ``rho`` and, for an estimated scale, ``log phi`` (last); None when the
        smoothing parameters were supplied. It gives :attr:`edf2`.
    penalties : tuple
        The penalty blocks (coefficient order) ``rho`` refers to.
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
    family: object
    family_name: str
    link_name: str
    method: str = "REML"
    warnings: tuple = ()
    rho_hess: np.ndarray | None = None
    penalties: tuple = ()

    def __repr__(self) -> str:
        state = "converged" if self.converged else "not converged"
        return (f"<GamFit {self.family_name}({self.link_name}) {self.method}: p={self.beta.size}, "
                f"n={self.eta.size}, {self.rho.size} smoothing parameters, scale={self.scale:.5g}, "
                f"score={self.reml_score:.6g}, {state}>")

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

    @cached_property
    def edf2(self) -> np.ndarray | None:
        """mgcv's ``edf2``: per-coefficient edf allowing for smoothing-parameter uncertainty.

        None when the smoothing parameters were supplied (mgcv then has no
        ``edf2``); see :mod:`._gam_edf`.
        """
        if self.rho_hess is None:
            return None
        return corrected_edf(self.XtWX, self.PP, self.beta, self.rho, self.penalties, self.scale,
                             self.rho_hess, self.edf1)

    @property
    def Vp(self) -> np.ndarray:
        """Bayesian posterior covariance of the coefficients, ``phi (X'WX + S)^{-1}``."""
        return self.PP * self.scale

    @property
    def Ve(self) -> np.ndarray:
        """Frequentist covariance ``phi A^{-1} X'WX A^{-1}``."""
        return self.F @ self.PP * self.scale


def _optimize(stats: CrossStats, penalties, rho0, phi, sp, optimizer, on_step=None, ml: bool = False):
    """Smoothing parameters and coefficients of one (working) linear model.

    The optimization runs in coordinates where single penalties are diagonal
    (:func:`~._gam_reml.reparametrize`); coefficients and ``A^{-1}`` are
    mapped back.
    """
    T, pens = reparametrize(penalties, stats.p)
    # T is block diagonal and the identity outside the rotated blocks (never on diagonal
    # penalties, so a block-diagonal segment stays one): T'AT block by block, O(p k^2)
    moved = [b.cols for b, new in zip(penalties, pens) if new is not b]
    tstats = CrossStats(_congruence(stats.XtWX, T, moved), T.T @ stats.XtWz, stats.zWz, stats.n,
                        stats.blockdiag)
    if sp is not None:
        best = evaluate(np.log(sp), tstats, pens, phi, ml=ml)
        nit, conv, msg = 0, True, "smoothing parameters supplied"
    else:
        if optimizer == "fs" and all(b.kind == "linear" for b in pens):
            res = fellner_schall(tstats, pens, rho0, phi, on_step=on_step, ml=ml)
        else:
            res = newton(tstats, pens, rho0, phi, on_step=on_step, ml=ml)
        best, nit, conv, msg = res.best, res.iterations, res.converged, res.message
    best = replace(best, beta=T @ best.beta, PP=_congruence(best.PP, T.T, moved))
    return best, nit, conv, msg


def _congruence(A: np.ndarray, T: np.ndarray, blocks: list) -> np.ndarray:
    """``T' A T`` (p, p) for ``T`` equal to the identity outside its diagonal ``blocks`` (slices)."""
    out = A.copy()
    for c in blocks:
        U = T[c, c]
        out[:, c] = out[:, c] @ U
        out[c, :] = U.T @ out[c, :]
    return out


def _rho_hessian(best, penalties, n: int, Mp: int, profiled: bool, sp) -> np.ndarray | None:
    """The criterion's Hessian for :attr:`GamFit.edf2`: in ``(rho, log phi)`` when phi was profiled."""
    if sp is not None or best.rho.size == 0:
        return None
    if not profiled:
        return best.hess
    dS = penalty_derivatives(best.rho, penalties, best.beta.size)
    bSb = np.array([best.beta @ Sk @ best.beta for Sk in dS])
    return scale_hessian(best.hess, bSb, best.Dp, best.phi, n, Mp)


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


def fit_gam(design: GamDesign, engine, family="gaussian", *, sp=None, optimizer: str = "newton",
            method: str = "REML", max_iter: int = 200, epsilon: float = 1e-7, laplace: bool = False,
            on_step=None) -> GamFit:
    """Fit a GAM design: smoothing parameters by REML, coefficients by penalized least squares.

    Parameters
    ----------
    design : GamDesign
    engine : DiscreteEngine or ChunkEngine
        How cross products are formed.
    family : str or statsmodels family
    sp : ndarray, optional
        Fixed positive smoothing parameters (skips the optimization); one per
        penalty parameter, in coefficient order (checked by the caller).
    optimizer : {"newton", "fs"}
        Newton on log smoothing parameters with the exact Hessian, or the
        generalized Fellner-Schall update.
    method : {"REML", "fREML", "ML", "GCV.Cp"}
        The smoothing-parameter criterion, recorded in the fit: the
        restricted likelihood (``"REML"``, ``"fREML"``), the marginal
        likelihood with the penalty null space as fixed effects (``"ML"``),
        or GCV (unknown scale) / UBRE-Cp (known scale) minimized over the
        fits at fixed smoothing parameters (``"GCV.Cp"``, :func:`_fit_gcv`).
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
        A fit that did not converge says so in ``warnings``; nothing is
        warned here.
    """
    with blas_threads(1 if design.p <= SINGLE_THREAD_MAX else None):
        fit = _fit_gam(design, engine, family, sp, optimizer, method, max_iter, epsilon, laplace, on_step)
    if method == "ML" and fit.scale_estimated:
        # mgcv reports (and scales Vp by) the deviance-based estimate D / (n - tau) for ML fits
        fit = replace(fit, scale=fit.deviance / (design.n - float(np.sum(fit.edf))))
    return fit


def _fit_gam(design, engine, family, sp, optimizer, method, max_iter, epsilon, laplace, on_step) -> GamFit:
    if method == "GCV.Cp" and sp is None and design.penalties:
        return _fit_gcv(design, engine, family, optimizer, max_iter, on_step)
    ml = method == "ML"
    fam, fam_name, link_name = resolve_family(family)
    penalties = design.penalties
    y = design.y
    w = design.weights
    prior = np.ones(design.n) if w is None else w
    off = design.offset
    if sp is not None:
        sp = np.atleast_1d(np.asarray(sp, dtype=float))
    _check_response(fam, y, prior)
    scale_known = fam_name in ("binomial", "poisson")
    Mp = null_dim(design.p, penalties)
    common = {"prior_weights": prior, "Mp": Mp, "family": fam, "penalties": tuple(penalties),
              "family_name": fam_name, "link_name": link_name, "method": method,
              "null_deviance": _null_deviance(fam, y, prior, off, "(Intercept)" in design.p_names)}
    if fam_name == "gaussian" and link_name == "identity":
        stats = engine.stats(w, y if off is None else y - off)
        best, nit, conv, msg = _optimize(stats, penalties, None, None, sp, optimizer, on_step, ml)
        eta = engine.eta(best.beta)
        if off is not None:
            eta = eta + off
        return GamFit(beta=best.beta, PP=best.PP, XtWX=stats.XtWX, scale=best.phi, scale_estimated=True,
                      reml_score=best.score, rho=best.rho, eta=eta, mu=eta,
                      deviance=float(np.sum(prior * (y - eta) ** 2)), working_weights=w, iterations=1,
                      newton_iterations=nit, converged=conv, message=msg,
                      rho_hess=_rho_hessian(best, penalties, design.n, 0 if ml else Mp, True, sp),
                      warnings=() if conv else (f"the REML optimization did not converge: {msg}",), **common)
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
                                         on_step, ml)
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

        lap = laplace_reml(design, engine, fam, fam_name, best.rho, best.beta, ml=ml)
        return GamFit(beta=lap.beta, PP=lap.PP, XtWX=lap.XtWX, scale=1.0, scale_estimated=False,
                      reml_score=lap.score, rho=lap.rho, eta=lap.eta, mu=lap.mu,
                      deviance=float(fam.deviance(y, lap.mu, var_weights=prior)), working_weights=lap.w,
                      iterations=it, newton_iterations=lap.iterations, converged=lap.converged,
                      message="full convergence" if lap.converged else lap.message, rho_hess=lap.hess,
                      warnings=() if lap.converged else (
                          f"the Laplace REML optimization did not converge: {lap.message}",), **common)
    ok = converged and conv
    return GamFit(beta=best.beta, PP=best.PP, XtWX=stats.XtWX, scale=1.0 if scale_known else best.phi,
                  scale_estimated=not scale_known, reml_score=best.score, rho=best.rho, eta=eta, mu=mu,
                  deviance=float(fam.deviance(y, mu, var_weights=prior)), working_weights=ww, iterations=it,
                  newton_iterations=nit, converged=ok, message=msg_out,
                  rho_hess=_rho_hessian(best, penalties, design.n, 0 if ml else Mp, not scale_known, sp),
                  warnings=() if ok else (f"the fit did not converge: {msg_out}",), **common)


def fit_gam_stats(design: GamDesign, stats: CrossStats, summary: dict, *, sp=None, optimizer: str = "newton",
                  method: str = "fREML", on_step=None) -> GamFit:
    """Fit a Gaussian identity GAM from its cross products alone (a streamed ``bam``).

    Parameters
    ----------
    design : GamDesign
        Terms, names and penalties (its rows are not used).
    stats : CrossStats
        ``X'WX``, ``X'Wz``, ``z'Wz`` and ``n`` of all rows, ``z`` the response minus offset.
    summary : dict
        Row sums (:func:`pymlm.crossprod._gam_stream.cross_stats`): ``w``, ``sw``,
        ``wy``, ``wyy`` (sums of ``w``, ``sqrt(w)``, ``w y``, ``w y^2``), used for the
        null deviance.
    sp, optimizer, method, on_step
        As :func:`fit_gam`.

    Returns
    -------
    GamFit
        Its ``eta``, ``mu`` and weights have no rows. The deviance is
        ``z'Wz - 2 b'X'Wz + b'X'WX b``; the null deviance ``sum w (y - ybar)^2``
        (``ybar`` the weighted mean, or the offset without an intercept).
    """
    fam, fam_name, link_name = resolve_family("gaussian")
    penalties = design.penalties
    Mp = null_dim(design.p, penalties)
    with blas_threads(1 if design.p <= SINGLE_THREAD_MAX else None):
        best, nit, conv, msg = _optimize(stats, penalties, None, None, sp, optimizer, on_step, False)
    b = best.beta
    dev = float(stats.zWz - 2.0 * b @ stats.XtWz + b @ stats.XtWX @ b)
    if "(Intercept)" in design.p_names:
        null_dev = summary["wyy"] - summary["wy"] ** 2 / summary["w"]
    else:
        null_dev = stats.zWz
    empty = np.zeros(0)
    return GamFit(beta=b, PP=best.PP, XtWX=stats.XtWX, scale=best.phi, scale_estimated=True,
                  reml_score=best.score, rho=best.rho, eta=empty, mu=empty, deviance=max(dev, 0.0),
                  null_deviance=float(null_dev), prior_weights=empty, working_weights=None, iterations=1,
                  newton_iterations=nit, converged=conv, message=msg, Mp=Mp, family=fam,
                  family_name=fam_name, link_name=link_name, method=method, penalties=tuple(penalties),
                  rho_hess=_rho_hessian(best, penalties, stats.n, Mp, True, sp),
                  warnings=() if conv else (f"the REML optimization did not converge: {msg}",))


def gcv_score(fit: GamFit, n: int) -> float:
    """mgcv's ``GCV.Cp`` criterion of a fit at fixed smoothing parameters.

    With ``D`` the deviance and ``tau = tr(F)`` the effective degrees of
    freedom, GCV ``n D / (n - tau)^2`` for an unknown scale and UBRE (Mallows'
    Cp) ``D / n - phi + 2 tau phi / n`` for a known one (``phi = 1``).
    """
    tau = float(np.sum(fit.edf))
    if fit.scale_estimated:
        return n * fit.deviance / (n - tau) ** 2
    return fit.deviance / n - 1.0 + 2.0 * tau / n


def _fit_gcv(design, engine, family, optimizer, max_iter, on_step, step: float = 1e-4) -> GamFit:
    """Smoothing parameters minimizing GCV / UBRE, as mgcv's ``gam(method = "GCV.Cp")``.

    Every evaluation is a fit at fixed smoothing parameters (penalized IRLS
    run to convergence for non-Gaussian families, mgcv's outer iteration);
    the criterion is minimized over ``rho = log sp`` with L-BFGS-B from the
    REML estimates, its gradient by central differences. The scale of a
    GCV fit is ``D / (n - tau)``, as mgcv's.
    """
    from ._optimize import lbfgsb

    start = _fit_gam(design, engine, family, None, optimizer, "REML", max_iter, 1e-7, False, on_step)
    n = design.n
    cache = {}

    def fit_at(rho):
        key = rho.tobytes()
        if key not in cache:
            cache[key] = _fit_gam(design, engine, family, np.exp(rho), optimizer, "GCV.Cp", max_iter, 1e-12,
                                  False, None)
        return cache[key]

    def fg(rho):
        rho = np.asarray(rho, dtype=float)
        f0 = gcv_score(fit_at(rho), n)
        g = np.empty(rho.size)
        for k in range(rho.size):
            e = np.zeros(rho.size)
            e[k] = step
            g[k] = (gcv_score(fit_at(rho + e), n) - gcv_score(fit_at(rho - e), n)) / (2 * step)
        if on_step is not None:
            on_step()
        return f0, g

    # two starts, as the criterion can have several minima: the REML estimates and mgcv's
    # initial values (each penalty comparable to X'WX)
    from ._gam_reml import initial_rho

    guess = initial_rho(CrossStats(start.XtWX, np.zeros(design.p), 0.0, n, None), design.penalties)
    res = None
    for rho0 in (np.clip(start.rho, -20.0, 20.0), guess):
        r = lbfgsb(fg, rho0, rho0 - 25.0, rho0 + 25.0, ftol=1e-12, gtol=1e-9, maxiter=200)
        if res is None or r.fun < res.fun:
            res = r
    fit = fit_at(np.asarray(res.x, dtype=float))
    score = gcv_score(fit, n)
    scale = fit.deviance / (n - float(np.sum(fit.edf))) if fit.scale_estimated else 1.0
    conv = bool(res.success) and fit.converged
    msg = "full convergence" if conv else f"the GCV/UBRE optimization did not converge: {res.message}"
    return replace(fit, scale=scale, reml_score=score, method="GCV.Cp",
                   newton_iterations=int(res.nit), converged=conv, message=msg, rho_hess=None,
                   warnings=() if conv else (msg,))
