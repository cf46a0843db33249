"""Denominator degrees of freedom for t tests of fixed effects (lmerTest's Satterthwaite).

For a contrast c'beta with variance v(phi) = c' V(phi) c, V = vcov(beta) =
sigma^2 (R_X'R_X)^{-1}, and the variance parameters phi = (theta, sigma)
(lmerTest's parametrization), Satterthwaite's approximation is

    df = 2 v^2 / (g' A g),   g = d v / d phi = (c' J_i c)_i,   J_i = d V / d phi_i,

with A the asymptotic covariance of phi_hat: twice the inverse Hessian of the
deviance in phi (REML or ML, as the fit),

    d(theta, sigma) = ldL2 + [ldRX2] + pwrss / sigma^2 + nu log(2 pi sigma^2),
    nu = n - p (REML) or n (ML).

The Jacobian is analytic: d V / d sigma = 2 V / sigma and
d V / d theta_i = sigma^2 d (R_X'R_X)^{-1} / d theta_i
(``dvcov`` of :meth:`pymlm.fit.deviance.Evaluator.at` with ``jacobian=True``); the
Hessian is the Richardson-extrapolated central difference of the analytic
gradient. lmerTest takes both by numerical differences (numDeriv); the
quantities are the same. The inverse keeps the positive eigenvalues only
(above 1e-8), as lmerTest does.

References
----------
Kuznetsova, A., Brockhoff, P. B. and Christensen, R. H. B. (2017). lmerTest
package: tests in linear mixed effects models. J. Stat. Softw. 82(13).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConvergenceWarning, warn
from ..fit.deviance import LOG_2PI, evaluator_for, single_threaded

__all__ = ["SatterthwaiteParts", "contrast_df", "ddf_table", "satterthwaite_parts", "varpar_hessian"]


@dataclass(frozen=True)
class SatterthwaiteParts:
    """What every Satterthwaite df of one fit needs.

    Attributes
    ----------
    vcov : ndarray (p, p)
        V = vcov(beta).
    jacobian : ndarray (k, p, p)
        d V / d phi_i for phi = (theta, sigma), k = n_theta + 1.
    vcov_varpar : ndarray (k, k)
        A, the asymptotic covariance of phi_hat.
    hessian : ndarray (k, k)
        Hessian of the deviance in phi.
    """

    vcov: np.ndarray
    jacobian: np.ndarray
    vcov_varpar: np.ndarray
    hessian: np.ndarray


def _varpar_value_grad(dev, phi, reml):
    theta, sigma = phi[:-1], phi[-1]
    pt = dev.at(theta, grad=True)
    s2 = sigma * sigma
    nu = dev.n - dev.p if reml else dev.n
    val = pt.ldL2 + (pt.ldRX2 if reml else 0.0) + pt.pwrss / s2 + nu * (LOG_2PI + np.log(s2))
    g = np.empty(phi.size)
    g[:-1] = pt.combination(1.0, 1.0 if reml else 0.0, pt.pwrss / s2)
    g[-1] = -2.0 * pt.pwrss / (s2 * sigma) + 2.0 * nu / sigma
    return val, g, pt


def varpar_hessian(dev, phi, reml: bool, h: float = 1e-3) -> np.ndarray:
    """Hessian of the deviance in (theta, sigma): Richardson-extrapolated central differences
    of the analytic gradient, (4 D(h/2) - D(h)) / 3 with relative step ``h``."""
    phi = np.asarray(phi, dtype=float)
    k = phi.size
    steps = h * np.maximum(np.abs(phi), 0.1)
    H = np.zeros((k, k))

    def central(i, step):
        e = np.zeros(k)
        e[i] = step
        up = _varpar_value_grad(dev, phi + e, reml)[1]
        return (up - _varpar_value_grad(dev, phi - e, reml)[1]) / (2 * step)

    for i in range(k):      # k = n_theta + 1 gradient pairs per step size
        H[:, i] = (4.0 * central(i, steps[i] / 2) - central(i, steps[i])) / 3.0
    return 0.5 * (H + H.T)


def satterthwaite_parts(problem, tol: float = 1e-8) -> SatterthwaiteParts:
    """V, dV/dphi and the covariance of phi_hat at the estimates of ``problem``.

    Warns
    -----
    ConvergenceWarning
        The Hessian has negative eigenvalues (not a minimum), as lmerTest.
    """
    fit = problem.fit
    dev = evaluator_for(problem.cp, problem.reml, problem.tmap)
    phi = np.concatenate([fit.theta, [fit.sigma]])
    with single_threaded():
        H = varpar_hessian(dev, phi, problem.reml)
        pt = dev.at(fit.theta, jacobian=True)
        S_inv = pt.vcov_unscaled
        dS = pt.dvcov
    sigma = fit.sigma
    V = sigma ** 2 * S_inv
    J = np.concatenate([sigma ** 2 * dS, (2.0 * sigma * S_inv)[None]], axis=0)
    vals, vecs = np.linalg.eigh(H)
    neg = vals < -tol
    if neg.any():
        warn(f"the deviance Hessian in (theta, sigma) has {int(neg.sum())} negative eigenvalue(s) "
                      f"({', '.join(f'{v:.1e}' for v in vals[neg])}): the fit may not have converged, and the "
                      "degrees of freedom are unreliable", ConvergenceWarning)
    pos = vals > tol
    A = 2.0 * (vecs[:, pos] / vals[pos]) @ vecs[:, pos].T
    return SatterthwaiteParts(V, J, A, H)


def contrast_df(parts: SatterthwaiteParts, L) -> np.ndarray:
    """Satterthwaite df of each row of L (contrasts c'beta), ``(m,)``."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    var = np.einsum("ma,ab,mb->m", L, parts.vcov, L)
    g = np.einsum("ma,kab,mb->mk", L, parts.jacobian, L)
    denom = np.einsum("mk,kl,ml->m", g, parts.vcov_varpar, g)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2.0 * var ** 2 / denom


def ddf_table(estimate, vcov, df) -> pd.DataFrame:
    """lmerTest's coefficient table: Estimate, Std. Error, df, t value, Pr(>|t|)."""
    est = np.asarray(estimate, dtype=float)
    se = np.sqrt(np.diag(vcov))
    t = est / se
    p = 2.0 * stats.t.sf(np.abs(t), df)
    index = estimate.index if isinstance(estimate, pd.Series) else None
    return pd.DataFrame({"Estimate": est, "Std. Error": se, "df": df, "t value": t, "Pr(>|t|)": p}, index=index)
