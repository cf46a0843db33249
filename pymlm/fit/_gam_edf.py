"""Effective degrees of freedom corrected for smoothing-parameter uncertainty (mgcv's ``edf2``).

The coefficients' covariance that accounts for the estimation of
``rho = log(sp)`` (Wood, Pya & Saefken 2016, section 3.1; mgcv's
``gam.fit3.post.proc`` and ``Vb.corr``) is

    V_c = V_b + J V_rho J' + phi sum_jk (V_r)_jk D_j D_k',

with ``V_b = phi A^{-1}`` (``A = X'WX + S``), ``J = dbeta/drho`` (columns
``-A^{-1} S_k beta``), ``V_rho`` the inverse Hessian of the REML criterion
(non-positive eigenvalues dropped; with an estimated scale the Hessian is
in ``(rho, log phi)`` and the ``rho`` block of its inverse is used),
``V_r = (H + I/10)^{-1}`` on ``rho`` (the same Hessian with its
non-positive eigenvalues set to zero), and ``D_k = dR^{-1}/drho_k`` for the
upper Cholesky factor ``R'R = A``. The corrected edf per coefficient is

    edf2 = diag(V_c X'WX) / phi,

and, as mgcv, ``edf1 = 2 diag(F) - diag(F F)`` replaces it when
``sum(edf2) > sum(edf1)``.

References
----------
Wood, S. N., Pya, N. & Saefken, B. (2016). Smoothing parameter and model
selection for general smooth models. JASA 111(516), 1548-1563.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

__all__ = ["corrected_edf", "penalty_derivatives", "scale_hessian"]


def penalty_derivatives(rho: np.ndarray, penalties, p: int) -> list[np.ndarray]:
    """``dS/drho_k`` (p, p) for every penalty parameter, block after block."""
    out = []
    at = 0
    for b in penalties:
        r = np.asarray(rho[at:at + b.n_par], dtype=float)
        at += b.n_par
        for Sk in b.d1(r):
            M = np.zeros((p, p))
            M[b.cols, b.cols] = Sk
            out.append(M)
    return out


def scale_hessian(hess_profiled: np.ndarray, bSb: np.ndarray, Dp: float, phi: float, n: int,
                  Mp: int) -> np.ndarray:
    """The REML Hessian in ``(rho, log phi)`` (m+1, m+1) from the one with ``phi`` profiled out (m, m).

    With ``V(rho, tau = log phi)`` of :mod:`._gam_reml`, ``d2V/dtau2 = D_p/(2 phi)``,
    ``d2V/drho_k dtau = -beta'S_k beta/(2 phi)``, and the profiled Hessian is the
    Schur complement ``H_rr - H_rt H_tr / H_tt``, so ``H_rr`` follows from it.
    ``bSb`` holds ``beta' dS/drho_k beta``.
    """
    m = bSb.size
    c = (n - Mp) / 2
    H = np.zeros((m + 1, m + 1))
    H[:m, :m] = hess_profiled + c * np.outer(bSb, bSb) / Dp**2
    H[:m, m] = H[m, :m] = -bSb / (2 * phi)
    H[m, m] = Dp / (2 * phi)
    return H


def _chol_inverse_derivative(R: np.ndarray, dA: np.ndarray) -> np.ndarray:
    """``d(R^{-1})`` (p, p) for the upper Cholesky factor ``R`` of ``A`` moved by ``dA``.

    ``dR = Phi(R^{-T} dA R^{-1}) R`` with ``Phi`` the upper triangle and half
    the diagonal; ``d(R^{-1}) = -R^{-1} dR R^{-1} = -Phi(R^{-T} dA R^{-1}) R^{-1}``.
    """
    Ri = solve_triangular(R, np.eye(R.shape[0]))
    G = Ri.T @ dA @ Ri
    Phi = np.triu(G, 1) + np.diag(np.diag(G) / 2)
    return -Ri @ Phi


def corrected_edf(XtWX: np.ndarray, PP: np.ndarray, beta: np.ndarray, rho: np.ndarray, penalties,
                  phi: float, hess: np.ndarray, edf1: np.ndarray) -> np.ndarray:
    """mgcv's ``edf2`` (p,): per-coefficient edf allowing for smoothing-parameter uncertainty.

    Parameters
    ----------
    XtWX, PP : ndarray (p, p)
        ``X'WX`` and ``A^{-1}`` at the fit.
    beta : ndarray (p,)
    rho : ndarray (m,)
    penalties : list of penalty blocks
    phi : float
        The scale.
    hess : ndarray (m, m) or (m+1, m+1)
        Hessian of the REML criterion in ``rho`` (and ``log phi`` last, for
        an estimated scale).
    edf1 : ndarray (p,)
        ``2 diag(F) - diag(F F)``: the result when the corrected sum exceeds it.

    Returns
    -------
    ndarray (p,)
    """
    p = beta.size
    m = rho.size
    dS = penalty_derivatives(rho, penalties, p)
    J = -PP @ np.column_stack([Sk @ beta for Sk in dS]) if m else np.zeros((p, 0))
    ev, U = np.linalg.eigh((hess + hess.T) / 2)
    pos = ev > 0
    d = np.where(pos, 1.0 / np.where(pos, ev, 1.0), 0.0)
    Vrho = (U * d) @ U.T
    Vc = PP * phi + J @ Vrho[:m, :m] @ J.T
    Vr = (U / (np.where(pos, ev, 0.0) + 0.1)) @ U.T
    Vr = Vr[:m, :m]
    A = XtWX + sum(dS, np.zeros((p, p))) if m else XtWX
    try:
        R = np.linalg.cholesky((A + A.T) / 2).T
    except np.linalg.LinAlgError:  # mgcv drops the correction when A is not positive definite
        R = None
    if R is not None and m:
        D = [_chol_inverse_derivative(R, Sk) for Sk in dS]
        corr = np.zeros((p, p))
        for j in range(m):
            Mj = sum((Vr[j, k] * D[k] for k in range(m)), np.zeros((p, p)))
            corr += D[j] @ Mj.T
        Vc = Vc + phi * corr
    edf2 = np.einsum("ij,ji->i", Vc, XtWX) / phi
    return edf1 if edf2.sum() > edf1.sum() else edf2
