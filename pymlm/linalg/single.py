"""The profiled deviance and its gradient for one random-effects term.

A single term (``(1 + x | g)``, the longitudinal workhorse) makes every block
of L either per-level (``(l, p, p)`` stacks) or tiny and dense, so the whole
evaluation is a handful of batched array operations on the cross-products:

    M[lev]  = T' A[lev] T + I,        L[lev] = chol(M[lev])
    Q[lev]  = L[lev]^{-1} T' Zxy[lev]            (the [X y] rows of L)
    L_XX    = chol(XyXy - sum_lev Q[lev]' Q[lev])

The gradient follows :meth:`pymlm.fit.lmm.LmmObjective.value_and_grad`
(same formulas, specialised to block-diagonal M).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ._small import chol_lower, solve_lower, solve_upper_t

__all__ = ["single_term_deviance"]

LOG_2PI = float(np.log(2.0 * np.pi))


def _tri_inv(L: np.ndarray) -> np.ndarray:
    """Inverse of a small lower-triangular matrix (LAPACK trtri, no checks)."""
    if L.shape[0] == 0:
        return L
    inv, info = sla.lapack.dtrtri(L, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("singular fixed-effects block")
    return inv


def single_term_deviance(A, Zxy, XyXy, T, n, sum_log_w, reml, grad=False):
    """Profiled (REML) deviance of a one-term LMM, and optionally its gradient in T.

    Parameters
    ----------
    A : ndarray (l, p, p)
        Z'WZ per level.
    Zxy : ndarray (l, p, k + 1)
        Z'W[X y] per level (k fixed effects).
    XyXy : ndarray (k + 1, k + 1)
    T : ndarray (p, p)
        Lower-triangular relative covariance factor.
    n, sum_log_w : float
    reml : bool
    grad : bool
        Also return d deviance / d T (lower triangle meaningful) when T is
        nonsingular; ``None`` otherwise.

    Returns
    -------
    deviance : float
    dT : ndarray (p, p) or None

    Raises
    ------
    numpy.linalg.LinAlgError
        [X y] block not positive definite.
    """
    l, p, _ = A.shape
    k1 = Zxy.shape[2]
    k = k1 - 1
    if p == 1:
        t = T[0, 0]
        d = np.sqrt(t * t * A[:, 0, 0] + 1.0)
        Q = Zxy[:, 0, :] * (t / d)[:, None]
        Lfac = d.reshape(l, 1, 1)
        logdet_L = 2.0 * float(np.sum(np.log(d)))
    else:
        M = T.T @ A @ T
        M[:, np.arange(p), np.arange(p)] += 1.0
        Lfac = chol_lower(M)
        Q = solve_lower(Lfac, T.T @ Zxy)
        logdet_L = 2.0 * float(np.sum(np.log(np.diagonal(Lfac, axis1=1, axis2=2))))
    Qf = Q.reshape(-1, k1)
    Lxx = np.linalg.cholesky(XyXy - Qf.T @ Qf)
    r_yy = Lxx[k, k]
    pwrss = r_yy * r_yy
    if reml:
        nu = n - k
        logdet_rx = 2.0 * float(np.sum(np.log(np.diag(Lxx)[:k])))
        dev = logdet_L + logdet_rx + nu * (1.0 + LOG_2PI + np.log(pwrss / nu)) - sum_log_w
    else:
        nu = n
        dev = logdet_L + nu * (1.0 + LOG_2PI + np.log(pwrss / nu)) - sum_log_w
    if not grad:
        return float(dev), None
    if np.min(np.abs(np.diag(T))) < 1e-10:
        return float(dev), None
    Lx = Lxx[:k, :k]
    Lx_inv = _tri_inv(Lx)
    beta = Lx_inv.T @ Lxx[k, :k]
    Q3 = Q.reshape(l, p, k1)
    rhs = Q3[:, :, k] - Q3[:, :, :k] @ beta                       # (l, p)
    if p == 1:
        u = rhs / d[:, None]
        minv_sum = np.array([[np.sum(1.0 / (d * d))]])
    else:
        u = solve_upper_t(Lfac, rhs[:, :, None])[:, :, 0]
        Li = solve_lower(Lfac, np.broadcast_to(np.eye(p), (l, p, p)))
        minv_sum = np.tensordot(Li, Li, axes=([0, 1], [0, 1]))
    b = u @ T.T
    rZ = Zxy[:, :, k] - Zxy[:, :, :k] @ beta - (A @ b[:, :, None])[:, :, 0]
    g_pw = -2.0 * (rZ.T @ u)
    g = 2.0 * ((l * np.eye(p) - minv_sum) @ np.linalg.inv(T)).T + nu * g_pw / pwrss
    if reml and k:
        Qx = Q3[:, :, :k]
        V = Qx / d[:, None, None] if p == 1 else solve_upper_t(Lfac, Qx)   # (l, p, k)
        lamV = T @ V
        F = Zxy[:, :, :k] - A @ lamV
        Sinv = Lx_inv.T @ Lx_inv
        G = (F.reshape(-1, k) @ Sinv).reshape(l, p, k)
        g = g - 2.0 * np.tensordot(G, V, axes=([0, 2], [0, 2]))
    return float(dev), g
