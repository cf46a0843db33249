"""Kenward-Roger adjusted covariance and degrees of freedom (pbkrtest, as lmerTest uses it).

The marginal covariance is linear in the variance parameters phi: the
elements of each random-effect covariance matrix (the positions of theta) and
the residual variance,

    Sigma = sum_r phi_r G_r,   G_r = Z D_r Z' (D_r = I_l (x) (E_ab + E_ba)),   G_res = I.

With Phi = (X'Sigma^{-1}X)^{-1} (= vcov(beta)),

    P_r  = -X'Sigma^{-1} G_r Sigma^{-1} X,
    Q_rs =  X'Sigma^{-1} G_r Sigma^{-1} G_s Sigma^{-1} X,
    I_rs =  tr(Sigma^{-1} G_r Sigma^{-1} G_s) - 2 tr(Phi Q_rs) + tr(Phi P_r Phi P_s),
    W    =  2 I^{-1},
    U    =  sum_rs W_rs (Q_rs - P_r Phi P_s),   Phi_A = Phi + 2 Phi U Phi,

(Kenward and Roger 1997, the R_rs terms vanish for a linear Sigma) and the
df of a contrast from ``pbkrtest::Lb_ddf``. pbkrtest forms the n x n
matrices; here every term is reduced to the (q + p) cross-products by the
Woodbury identity: with V = Sigma / sigma^2 = I + Z Lambda Lambda'Z' and
M = Lambda'Z'Z Lambda + I,

    V^{-1}[Z X] = [Z X] F,   F = I - P_Z Lambda M^{-1} Lambda'[Z X]'Z ... (q + p square),
    [Z X]'V^{-1}[Z X] = Abar F,   [Z X]'V^{-2}[Z X] = F'Abar F,   [Z X]'V^{-3}[Z X] = F'Abar F F,
    tr(V^{-2}) = n - 2 tr(N) + tr(N^2),   N = M^{-1} Lambda'Z'Z Lambda,

Abar = [Z X]'[Z X]. It needs an unweighted REML fit (as pbkrtest and
lmerTest) and a model small enough for dense algebra in q.

References
----------
Kenward, M. G. and Roger, J. H. (1997). Small sample inference for fixed
effects from restricted maximum likelihood. Biometrics 53, 983-997.
Halekoh, U. and Hojsgaard, S. (2014). A Kenward-Roger approximation and
parametric bootstrap methods for tests in linear mixed models - the R
package pbkrtest. J. Stat. Softw. 59(9).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from ..errors import OptionError
from ..fit.deviance import DENSE_MAX_Q, DenseEvaluator

__all__ = ["KenwardRoger", "contrast_df", "kenward_roger"]


@dataclass(frozen=True)
class KenwardRoger:
    """The adjusted covariance and what the df of any contrast needs.

    Attributes
    ----------
    vcov : ndarray (p, p)
        Phi, the unadjusted covariance of beta.
    vcov_adjusted : ndarray (p, p)
        Phi_A.
    P : ndarray (k, p, p)
    W : ndarray (k, k)
    """

    vcov: np.ndarray
    vcov_adjusted: np.ndarray
    P: np.ndarray
    W: np.ndarray


def kenward_roger(problem) -> KenwardRoger:
    """Kenward-Roger quantities at the estimates of an unweighted REML fit.

    Raises
    ------
    OptionError
        An ML fit, prior weights, or too many random-effect coefficients for dense algebra.
    """
    if not problem.reml:
        raise OptionError("the Kenward-Roger method is defined for REML fits (as in lmerTest); refit with "
                          "REML=True or use ddf='Satterthwaite'")
    if problem.weights is not None:
        raise OptionError("the Kenward-Roger method here needs a model without prior weights; "
                          "use ddf='Satterthwaite'")
    cp = problem.cp
    if cp.q > DENSE_MAX_Q:
        raise OptionError(f"the Kenward-Roger method is available for models with at most {DENSE_MAX_Q} "
                          f"random-effect coefficients (this one has {cp.q}); use ddf='Satterthwaite'")
    fit = problem.fit
    tmap = problem.tmap
    q, p = cp.q, cp.p
    qp = q + p
    n = cp.n
    s2 = fit.sigma ** 2
    # the evaluator's augmented system at the estimates: A = [Z X y]'[Z X y], its factor
    # (the leading block factors M) and Lambda'A; (R_X'R_X)^{-1} from its point
    ev = DenseEvaluator(cp, True, tmap)
    L, LA = ev.augmented_factor(fit.theta)
    Abar = ev.A[:qp, :qp]
    Lam = tmap.dense_lambda(fit.theta)
    LtA = LA[:, :qp]                                # Lambda'Z'[Z X], (q, q + p)
    Minv_LtA = sla.cho_solve((L[:q, :q], True), LtA)  # M^{-1} Lambda'Z'[Z X]
    F = np.eye(qp)
    F[:q, :] -= Lam @ Minv_LtA
    B1 = Abar @ F                                   # [Z X]'V^{-1}[Z X]
    B1 = 0.5 * (B1 + B1.T)
    B2 = F.T @ Abar @ F                             # [Z X]'V^{-2}[Z X]
    B3 = F.T @ B1 @ F                               # [Z X]'V^{-3}[Z X]
    N = Minv_LtA[:, :q] @ Lam
    trV2 = n - 2.0 * np.trace(N) + np.sum(N * N.T)

    # D_r = I_l (x) (E_ab + E_ba) per theta position: d Lambda + its transpose, the diagonal once
    dLam = tmap.dense_dlambda()
    D = dLam + dLam.transpose(0, 2, 1)
    diag = np.arange(q)
    D[:, diag, diag] = dLam[:, diag, diag]
    n_theta = tmap.n_theta

    Z, X = slice(0, q), slice(q, qp)
    Phi = s2 * ev.at(fit.theta).vcov_unscaled        # X'Sigma^{-1}X = R_X'R_X / sigma^2
    k = n_theta + 1
    # per parameter, X'V^{-1} G_r V^{-1}... pieces: left factors (p x q) and the G-weighted middles
    BXZ_D = np.einsum("aq,rqs->ras", B1[X, Z], D)          # B_XZ D_r, (k-1, p, q)
    P = np.zeros((k, p, p))
    P[:-1] = -np.einsum("ras,sb->rab", BXZ_D, B1[Z, X]) / s2 ** 2
    P[-1] = -B2[X, X] / s2 ** 2
    K = np.zeros((k, k))
    Q = np.zeros((k, k, p, p))
    DB = np.einsum("rqs,st->rqt", D, B1[Z, Z])             # D_r B_ZZ
    K[:-1, :-1] = np.einsum("rab,sba->rs", DB, DB) / s2 ** 2
    K[:-1, -1] = K[-1, :-1] = np.einsum("rab,ba->r", D, B2[Z, Z]) / s2 ** 2
    K[-1, -1] = trV2 / s2 ** 2
    BXZ_D_BZZ = np.einsum("raq,qs->ras", BXZ_D, B1[Z, Z])
    Q[:-1, :-1] = np.einsum("ras,tsb->rtab", BXZ_D_BZZ, np.einsum("tsq,qb->tsb", D, B1[Z, X])) / s2 ** 3
    Q[:-1, -1] = np.einsum("ras,sb->rab", BXZ_D, B2[Z, X]) / s2 ** 3
    Q[-1, :-1] = np.einsum("as,tsb->tab", B2[X, Z], np.einsum("tsq,qb->tsb", D, B1[Z, X])) / s2 ** 3
    Q[-1, -1] = B3[X, X] / s2 ** 3
    PhiP = np.einsum("ab,rbc->rac", Phi, P)
    IE = K - 2.0 * np.einsum("ab,rsba->rs", Phi, Q) + np.einsum("rab,sba->rs", PhiP, PhiP)
    IE = 0.5 * (IE + IE.T)
    vals = np.linalg.eigvalsh(IE)
    W = 2.0 * (np.linalg.inv(IE) if np.min(np.abs(vals)) > 1e-10 else np.linalg.pinv(IE))
    # U = sum_rs W_rs (Q_rs - P_r Phi P_s), pbkrtest's upper triangle plus its transpose
    PPhiP = np.einsum("rab,sbc->rsac", P, PhiP)
    terms = Q - PPhiP
    iu = np.triu_indices(k, 1)
    U = np.einsum("m,mab->ab", W[iu], terms[iu])
    U = U + U.T + np.einsum("r,rab->ab", np.diag(W), terms[np.arange(k), np.arange(k)])
    PhiA = Phi + 2.0 * Phi @ U @ Phi
    return KenwardRoger(Phi, PhiA, P, W)


def _div_zero(x, y, tol=1e-14):
    return 1.0 if abs(x) < tol and abs(y) < tol else x / y


def contrast_df(kr: KenwardRoger, L) -> np.ndarray:
    """Kenward-Roger df of each row of L, one contrast at a time (``pbkrtest::Lb_ddf``)."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    V0 = kr.vcov
    k = kr.W.shape[0]
    out = np.empty(L.shape[0])
    for m, c in enumerate(L):   # one small p x p computation per contrast
        Theta = np.outer(c, c) / float(c @ V0 @ c)
        u = np.einsum("ab,bc,rcd,de->rae", Theta, V0, kr.P, V0)   # Theta V0 P_r V0
        tr = np.einsum("raa->r", u)
        tr2 = np.einsum("rab,sba->rs", u, u)
        e = 2.0 - np.eye(k)
        iu = np.triu_indices(k)
        A1 = float(np.sum((e * kr.W * np.outer(tr, tr))[iu]))
        A2 = float(np.sum((e * kr.W * tr2)[iu]))
        qd = 1
        B = (A1 + 6 * A2) / (2 * qd)
        g = ((qd + 1) * A1 - (qd + 4) * A2) / ((qd + 2) * A2)
        den = 3 * qd + 2 * (1 - g)
        c1, c2, c3 = g / den, (qd - g) / den, (qd + 2 - g) / den
        V0_ = 1 + c1 * B
        V1 = 1 - c2 * B
        V2 = 1 - c3 * B
        V0_ = 0.0 if abs(V0_) < 1e-10 else V0_
        rho = 1 / qd * _div_zero(1 - A2 / qd, V1) ** 2 * V0_ / V2
        out[m] = 4 + (qd + 2) / (qd * rho - 1)
    return out
