"""Linear mixed models by penalized least squares (lme4's method).

The profiled deviance is a function of theta alone (Bates et al. 2015,
eqs. 34 and 41):

    ML:    d(theta)   = ldL2 + n (1 + log(2 pi r2 / n))            - sum log w
    REML:  d_R(theta) = ldL2 + ldRX2 + (n - p)(1 + log(2 pi r2 / (n - p))) - sum log w

where r2 is the penalized weighted residual sum of squares at the
conditional modes and ``sum log w`` the log prior weights. Each evaluation
factors the PLS system from the :class:`~pymlm.crossprod.CrossProducts`
(never the n rows) through an evaluator of :mod:`pymlm.fit.deviance`; the
optimizer driver in :mod:`pymlm.fit._optimize` minimizes it over theta within
lme4's bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..crossprod import CrossProducts
from ..linalg import PlsFactor, ThetaMap
from ..linalg._threads import blas_threads
from ._optimize import OptResult, check_convergence, escape_bound, minimize_theta
from .deviance import Evaluator, evaluator_for, profiled_deviance

__all__ = ["LmmFit", "deviance_from_factor", "fit_from_theta", "fit_lmm", "moment_start"]


def deviance_from_factor(factor: PlsFactor, cp: CrossProducts, reml: bool) -> float:
    """The profiled (REML) deviance from a factor at theta (lme4's ``Laplace``)."""
    return profiled_deviance(factor.logdet_L, factor.logdet_RX, factor.pwrss, cp.n, cp.p, cp.sum_log_w, reml)


@dataclass(frozen=True, eq=False)
class LmmFit:
    """The optimum of a linear mixed model.

    Attributes
    ----------
    theta : ndarray
    beta : ndarray (p,)
    sigma : float
    deviance : float
        The minimized criterion (REML criterion when ``reml``).
    factor : PlsFactor
        The factor at ``theta``.
    u : dict
        Spherical random effects per term.
    reml : bool
    opt : OptResult
        Optimizer report (evaluations, messages, convergence checks).
    evaluator : Evaluator
        The criterion that was minimized.
    """

    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    deviance: float
    factor: PlsFactor
    u: dict
    reml: bool
    opt: OptResult
    evaluator: Evaluator

    @property
    def cp(self) -> CrossProducts:
        return self.evaluator.cp

    def __repr__(self) -> str:
        crit = "REML criterion" if self.reml else "deviance"
        theta = np.array2string(np.asarray(self.theta), precision=4, separator=", ", threshold=8, edgeitems=3)
        beta = np.array2string(np.asarray(self.beta), precision=4, separator=", ", threshold=8, edgeitems=3)
        state = "converged" if self.opt.converged else "not converged"
        return (f"<LmmFit {crit} {self.deviance:.4f}, {state} ({self.opt.method}, {self.opt.nfev} evaluations)\n"
                f" theta={theta} sigma={self.sigma:.4g}\n beta={beta}>")

    def vcov_beta(self) -> np.ndarray:
        """sigma^2 (R_X'R_X)^{-1}, the fixed effects' covariance (lme4's ``vcov``)."""
        p = self.cp.p
        Linv = np.linalg.inv(self.factor.L_XX[:p, :p])
        return self.sigma ** 2 * (Linv.T @ Linv)


def moment_start(cp: CrossProducts, lower: np.ndarray) -> np.ndarray:
    """A start for theta: one-way ANOVA estimates for scalar terms, 1 elsewhere.

    For a scalar term with level counts n_j, the between- and within-level
    mean squares of the OLS residuals give sigma_k^2 / sigma^2 (each term
    taken alone); its square root, kept in [0.1, 10], starts theta_k. Terms
    with several coefficients start at lme4's identity. The start only
    shortens the path: the optimum is the same.
    """
    p = cp.p
    theta = np.where(np.isfinite(lower), 1.0, 0.0)
    if p == 0 or cp.n <= p + 1:
        return theta
    try:
        XX = cp.xyxy[:p, :p]
        Xy = cp.xyxy[:p, p]
        beta = np.linalg.solve(XX, Xy)
    except np.linalg.LinAlgError:
        return theta
    rss = float(cp.xyxy[p, p] - Xy @ beta)
    start = 0
    for k, (pk, lk) in enumerate(cp.dims):
        n_par = pk * (pk + 1) // 2
        if pk == 1 and lk > 1 and cp.n > lk:
            n_j = cp.zz_diag[k][:, 0, 0]
            s_j = cp.zxy[k][:, 0, p] - cp.zxy[k][:, 0, :p] @ beta
            ok = n_j > 0
            between = float(np.sum(s_j[ok] ** 2 / n_j[ok]))
            msb = between / (lk - 1)
            msw = (rss - between) / (cp.n - lk)
            n0 = (cp.n - float(np.sum(n_j ** 2)) / cp.n) / (lk - 1)
            if msw > 0 and n0 > 0 and np.isfinite(msb):
                ratio = max((msb - msw) / n0, 0.0) / msw
                theta[start] = float(np.clip(np.sqrt(ratio), 0.1, 10.0))
        start += n_par
    return theta


def fit_from_theta(evaluator: Evaluator, theta: np.ndarray, opt: OptResult) -> LmmFit:
    """Assemble the fit at a given theta."""
    cp = evaluator.cp
    f = evaluator.factor(theta)
    beta = f.beta()
    u = f.spherical_u(beta)
    denom = cp.n - cp.p if evaluator.reml else cp.n
    sigma = float(np.sqrt(f.pwrss / denom))
    dev = deviance_from_factor(f, cp, evaluator.reml)
    return LmmFit(np.asarray(theta, dtype=float), beta, sigma, float(dev), f, u, evaluator.reml, opt, evaluator)


def fit_lmm(cp: CrossProducts, tmap: ThetaMap | None = None, theta0: np.ndarray | None = None,
            reml: bool = True, optimizer: str = "lbfgsb", check_conv: bool = True, kernel: str = "auto",
            **options) -> LmmFit:
    """Minimize the profiled (REML) deviance over theta.

    Parameters
    ----------
    cp : CrossProducts
    tmap : ThetaMap, optional
        theta's layout and bounds (0 for diagonal elements of each template,
        -inf otherwise); default: full lower triangles.
    theta0 : ndarray or {"auto", "lme4"}, optional
        Start. ``"auto"`` (default): :func:`moment_start`; ``"lme4"``: lme4's
        (1 on diagonals, 0 off them).
    reml : bool
    optimizer : str
        See :func:`pymlm.fit._optimize.minimize_theta`.
    check_conv : bool
        Run lme4's convergence checks (finite-difference gradient and Hessian).
    kernel : {"auto", "dense", "single", "blocked"}
        The evaluator (see :func:`pymlm.fit.deviance.evaluator_for`).

    Returns
    -------
    LmmFit

    Notes
    -----
    An optimum with a diagonal element of theta on its bound is searched for
    again from inside when the criterion falls inwards
    (:func:`pymlm.fit._optimize.bound_restart`): the criterion is flat to
    first order there, so a gradient method can stop on the bound.
    """
    objective = evaluator_for(cp, reml, tmap, kernel)
    lower = objective.lower
    if theta0 is None or (isinstance(theta0, str) and theta0 == "auto"):
        theta0 = moment_start(cp, lower)
    elif isinstance(theta0, str) and theta0 == "lme4":
        theta0 = np.where(np.isfinite(lower), 1.0, 0.0)
    with blas_threads(1):
        theta0 = np.asarray(theta0, dtype=float)
        opt = minimize_theta(objective, theta0, lower, method=optimizer, **options)
        opt = escape_bound(objective, opt, lower, theta0)
        if check_conv:
            opt = check_convergence(objective, opt, lower)
        return fit_from_theta(objective, opt.x, opt)
