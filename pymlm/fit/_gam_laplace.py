"""Laplace-approximate REML for non-Gaussian GAMs with a known scale, as mgcv's ``gam``.

For a binomial or Poisson model the smoothing parameters maximize the
Laplace approximation of the restricted likelihood (Wood 2011, section 3),

    V(rho) = D_p / 2 - l_s + log|X'WX + S|/2 - log|S|_+ / 2 - M_p/2 log(2 pi),

where ``beta-hat`` maximizes the penalized likelihood at ``rho`` (penalized
IRLS run to convergence), ``D_p`` is the deviance plus ``beta'S beta``,
``l_s`` the saturated log-likelihood and ``W`` the iterative weights at
``beta-hat``. Since ``beta-hat`` is an optimum, only ``W`` carries its
dependence on ``rho`` into the gradient:

    dV/drho_k = beta'S_k beta / 2 + tr(A^{-1} S_k) / 2 - dlog|S|_+/drho_k / 2
                + sum_i h_i (dw_i/deta_i) (X dbeta/drho_k)_i / 2,
    dbeta/drho_k = -A^{-1} S_k beta,   h_i = x_i' A^{-1} x_i.

The optimum is found with L-BFGS-B from the performance-iteration
estimates. For canonical links the iterative weights are the observed
information, which makes ``V`` mgcv's criterion exactly.

References
----------
Wood, S. N. (2011). Fast stable restricted maximum likelihood and marginal
likelihood estimation of semiparametric generalized linear models. JRSS B
73(1), 3-36.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln

from ..crossprod._gam import CrossStats
from ._gam_reml import _split, evaluate, null_dim, reparametrize

__all__ = ["LaplaceFit", "laplace_reml", "saturated_loglik"]

_LOG2PI = float(np.log(2 * np.pi))


@dataclass(frozen=True, eq=False)
class LaplaceFit:
    """The optimum of the Laplace REML.

    Attributes
    ----------
    beta : ndarray (p,)
    eta, mu, w : ndarray (n,)
        Linear predictor (with offset), fitted mean and iterative weights at ``beta``.
    XtWX, PP : ndarray (p, p)
        ``X'WX`` and ``(X'WX + S)^{-1}`` at the optimum.
    rho : ndarray
        Log smoothing parameters.
    score : float
        ``V(rho)``.
    iterations : int
    converged : bool
    message : str
        The optimizer's.
    Mp : int
    hess : ndarray (m, m)
        Hessian of ``V`` in ``rho`` at the optimum, by central differences of
        the analytic gradient (for the smoothing-parameter-corrected edf).
    """

    beta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    w: np.ndarray
    XtWX: np.ndarray
    PP: np.ndarray
    rho: np.ndarray
    score: float
    iterations: int
    converged: bool
    message: str
    Mp: int
    hess: np.ndarray


def saturated_loglik(name: str, y: np.ndarray, w: np.ndarray) -> float:
    """The saturated log-likelihood ``l_s`` (binomial: y proportions with totals w)."""
    if name == "binomial":
        k = w * y
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = gammaln(w + 1) - gammaln(k + 1) - gammaln(w - k + 1)
            ll += np.where(y > 0, k * np.log(np.where(y > 0, y, 1.0)), 0.0)
            ll += np.where(y < 1, (w - k) * np.log(np.where(y < 1, 1 - y, 1.0)), 0.0)
        return float(np.sum(ll))
    if name == "poisson":
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0) - y - gammaln(y + 1)
        return float(np.sum(w * ll))
    raise ValueError(f"no saturated likelihood for {name}")


def _weights(fam, eta, prior):
    mu = fam.link.inverse(eta)
    dmu = fam.link.inverse_deriv(eta)
    w = prior * dmu * dmu / fam.variance(mu)
    return np.where(np.isfinite(w), w, 0.0), mu, dmu


def laplace_reml(design, engine, fam, fam_name, rho0, beta0, max_pirls: int = 100, ml: bool = False) -> LaplaceFit:
    """Minimize the Laplace REML from ``rho0`` and ``beta0`` (performance-iteration estimates).

    With ``ml`` the Laplace marginal likelihood instead (mgcv's ``method =
    "ML"``): ``log|A|`` becomes ``log|Y'AY|`` over the penalty range ``Y``,
    ``A^{-1}`` in its derivatives ``Y (Y'AY)^{-1} Y'``, and ``M_p`` drops out.
    """
    penalties = design.penalties
    p = design.p
    y = design.y
    prior = np.ones(design.n) if design.weights is None else design.weights
    off = 0.0 if design.offset is None else design.offset
    T, pens = reparametrize(penalties, p)
    Mp = 0 if ml else null_dim(p, penalties)
    ls = saturated_loglik(fam_name, y, prior)
    state = {"beta": np.asarray(beta0, dtype=float).copy()}

    def penalty(rho):
        S = np.zeros((p, p))
        for b, r in zip(penalties, _split(rho, penalties)):
            S[b.cols, b.cols] += b.matrix(r)
        return S

    def pirls(rho):
        S = penalty(rho)
        beta = state["beta"]
        eta = engine.eta(beta) + off
        w, mu, dmu = _weights(fam, eta, prior)
        pdev = float(fam.deviance(y, mu, var_weights=prior)) + beta @ S @ beta
        for _ in range(max_pirls):
            z = (eta - off) + (y - mu) / np.where(dmu != 0, dmu, 1.0)
            st = engine.stats(w, z)
            ts = CrossStats(T.T @ st.XtWX @ T, T.T @ st.XtWz, st.zWz, st.n, st.blockdiag)
            new = T @ evaluate(rho, ts, pens, 1.0, hessian=False).beta
            for _ in range(30):  # step halving on the penalized deviance
                eta_n = engine.eta(new) + off
                w_n, mu_n, dmu_n = _weights(fam, eta_n, prior)
                pdev_n = float(fam.deviance(y, mu_n, var_weights=prior)) + new @ S @ new
                if np.isfinite(pdev_n) and pdev_n <= pdev + 1e-12 * abs(pdev):
                    break
                new = (new + beta) / 2
            # converged in beta, not only in the penalized deviance: the deviance is
            # quadratic near its minimum, so a 1e-11 change leaves beta uncertain in its
            # sixth digit, and the outer search (warm-started from the last beta) would
            # then move with rounding, i.e. with the BLAS kernel
            step_size = np.max(np.abs(new - beta), initial=0.0)
            done = (step_size <= 1e-10 * (np.max(np.abs(new), initial=0.0) + 1e-8)
                    or abs(pdev - pdev_n) < 1e-15 * (abs(pdev_n) + 0.1))
            beta, eta, w, mu, dmu, pdev = new, eta_n, w_n, mu_n, dmu_n, pdev_n
            if done:
                break
        state["beta"] = beta
        z = (eta - off) + (y - mu) / np.where(dmu != 0, dmu, 1.0)
        st = engine.stats(w, z)
        ts = CrossStats(T.T @ st.XtWX @ T, T.T @ st.XtWz, st.zWz, st.n, st.blockdiag)
        ev = evaluate(rho, ts, pens, 1.0, hessian=False, ml=ml)
        PP = T @ ev.PP @ T.T
        state["PT"] = PP if ev.Q is None else T @ ev.Q @ T.T
        return beta, eta, mu, w, st, ev, PP, S, pdev

    def objective(rho):
        beta, eta, _, _, _, ev, PP, _, pdev = pirls(rho)
        V = pdev / 2 - ls + ev.ldetA / 2 - ev.ldetS / 2 - Mp / 2 * _LOG2PI
        # gradient
        PT = state["PT"]
        h = engine.row_quadform(PT)
        step = 1e-5 * (1 + np.abs(eta))
        dw = (_weights(fam, eta + step, prior)[0] - _weights(fam, eta - step, prior)[0]) / (2 * step)
        grad = []
        for b, r in zip(penalties, _split(rho, penalties)):
            _, gS, _ = b.logdet(r)
            for j, Sj in enumerate(b.d1(r)):
                bj = beta[b.cols]
                Skb = np.zeros(p)
                Skb[b.cols] = Sj @ bj
                dbeta = -PP @ Skb
                xdb = engine.eta(dbeta)
                g = bj @ Sj @ bj + np.sum(PT[b.cols, b.cols] * Sj) - gS[j] + np.sum(h * dw * xdb)
                grad.append(g / 2)
        return V, np.asarray(grad)

    rho0 = np.asarray(rho0, dtype=float)
    res = minimize(objective, rho0, jac=True, method="L-BFGS-B",
                   bounds=[(r - 25.0, r + 25.0) for r in rho0],
                   options={"maxiter": 200, "ftol": 1e-13, "gtol": 1e-7})
    hess = _hessian(lambda r: objective(r)[1], res.x)
    beta, eta, mu, w, st, ev, PP, _, pdev = pirls(res.x)
    V = pdev / 2 - ls + ev.ldetA / 2 - ev.ldetS / 2 - Mp / 2 * _LOG2PI
    return LaplaceFit(beta=beta, eta=eta, mu=mu, w=w, XtWX=st.XtWX, PP=PP, rho=res.x, score=V,
                      iterations=int(res.nit), converged=bool(res.success), message=str(res.message), Mp=Mp,
                      hess=hess)


def _hessian(grad, rho: np.ndarray, step: float = 1e-4) -> np.ndarray:
    """The symmetrized central-difference Jacobian (m, m) of ``grad`` at ``rho``."""
    m = rho.size
    H = np.empty((m, m))
    for k in range(m):
        e = np.zeros(m)
        e[k] = step
        H[:, k] = (grad(rho + e) - grad(rho - e)) / (2 * step)
    return (H + H.T) / 2
