"""The profiled deviance and its gradient for one random-effects term.

A single term (``(1 + x | g)``, the longitudinal workhorse) makes every block
of L either per-level or tiny and dense, so an evaluation is a handful of
vectorized array operations on the cross-products, with no sparse algebra:

    M[lev]  = T' A[lev] T + I,        L[lev] = chol(M[lev])
    Q[lev]  = L[lev]^{-1} T' Zxy[lev]            (the [X y] rows of L)
    L_XX    = chol(XyXy - sum_lev Q[lev]' Q[lev])

Arrays are kept coefficient-major -- ``A`` as ``(p, p, l)`` and ``Zxy`` as
``(p, l, k + 1)`` -- so that every step is an operation on contiguous
per-level vectors or one BLAS call, whatever the number of levels (millions)
and with ``p`` (coefficients per level) small.

The gradient follows :meth:`pymlm.fit.lmm.LmmObjective.value_and_grad`
(same formulas, specialised to block-diagonal M).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ._threads import blas_threads

__all__ = ["SingleTerm"]

# Gram products with at least this many (levels x columns) use all BLAS threads.
BIG_GEMM = 2_000_000

LOG_2PI = float(np.log(2.0 * np.pi))


def _tri_inv(L: np.ndarray) -> np.ndarray:
    """Inverse of a small lower-triangular matrix (LAPACK trtri)."""
    if L.shape[0] == 0:
        return L
    inv, info = sla.lapack.dtrtri(L, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("singular fixed-effects block")
    return inv


def _lin(coefs, arrays):
    """``sum_i coefs[i] * arrays[i]``, skipping zero coefficients."""
    out = None
    for c, arr in zip(coefs, arrays):
        if c != 0.0:
            out = c * arr if out is None else out + c * arr
    return np.zeros_like(arrays[0]) if out is None else out


def _chol(M):
    """Per-level Cholesky of ``M`` given as nested lists ``M[a][c]`` of (l,) vectors."""
    p = len(M)
    L = [[None] * p for _ in range(p)]
    for j in range(p):
        s = M[j][j]
        for m in range(j):
            s = s - L[j][m] * L[j][m]
        if np.any(s <= 0):
            raise np.linalg.LinAlgError("matrix not positive definite")
        L[j][j] = np.sqrt(s)
        for i in range(j + 1, p):
            t = M[i][j]
            for m in range(j):
                t = t - L[i][m] * L[j][m]
            L[i][j] = t / L[j][j]
    return L


def _fwd(L, B, p, col):
    """Forward substitution L X = B per level; B[a] of shape (l,) or (l, r)."""
    X = []
    for i in range(p):
        acc = B[i]
        for m in range(i):
            acc = acc - (L[i][m][:, None] if col else L[i][m]) * X[m]
        X.append(acc / (L[i][i][:, None] if col else L[i][i]))
    return X


def _bwd(L, B, p, col):
    """Back substitution L' X = B per level."""
    X = [None] * p
    for i in range(p - 1, -1, -1):
        acc = B[i]
        for m in range(i + 1, p):
            acc = acc - (L[m][i][:, None] if col else L[m][i]) * X[m]
        X[i] = acc / (L[i][i][:, None] if col else L[i][i])
    return X


class SingleTerm:
    """Deviance evaluator for a model with one random-effects term.

    Parameters
    ----------
    zz_diag : ndarray (l, p, p)
        Z'WZ per level.
    zxy : ndarray (l, p, k + 1)
        Z'W[X y] per level.
    xyxy : ndarray (k + 1, k + 1)
    n, sum_log_w : float
    reml : bool
    """

    def __init__(self, zz_diag, zxy, xyxy, n, sum_log_w, reml):
        l, p, _ = zz_diag.shape
        self.l, self.p = l, p
        self.k = zxy.shape[2] - 1
        self.A = [[np.ascontiguousarray(zz_diag[:, a, c]) for c in range(p)] for a in range(p)]
        self.Z = [np.ascontiguousarray(zxy[:, a, :]) for a in range(p)]
        self.xyxy = xyxy
        self.n = n
        self.sum_log_w = sum_log_w
        self.reml = reml

    def __call__(self, T: np.ndarray, grad: bool = False):
        """Deviance at template ``T`` (p x p lower triangular), and d/dT when asked.

        Returns
        -------
        deviance : float
        dT : ndarray (p, p) or None
            ``None`` when not asked or when T is singular.

        Raises
        ------
        numpy.linalg.LinAlgError
            The [X y] block is not positive definite.
        """
        p, k, l = self.p, self.k, self.l
        A, Z = self.A, self.Z
        # M = T'AT + I, per level
        AT = [[_lin(T[:, c], A[b]) for c in range(p)] for b in range(p)]
        M = [[_lin(T[:, a], [AT[b][c] for b in range(p)]) for c in range(p)] for a in range(p)]
        for a in range(p):
            M[a][a] = M[a][a] + 1.0
        L = _chol(M)
        R = [_lin(T[:, a], Z) for a in range(p)]
        Q = _fwd(L, R, p, col=True)
        MXX = self.xyxy.copy()
        with blas_threads(None if l * k >= BIG_GEMM else 1):
            for a in range(p):
                MXX -= Q[a].T @ Q[a]
        Lxx = np.linalg.cholesky(MXX)
        logdet_L = 2.0 * float(sum(np.sum(np.log(L[a][a])) for a in range(p)))
        pwrss = float(Lxx[k, k] ** 2)
        if self.reml:
            nu = self.n - k
            dev = logdet_L + 2.0 * float(np.sum(np.log(np.diag(Lxx)[:k]))) + nu * (1.0 + LOG_2PI + np.log(pwrss / nu))
        else:
            nu = self.n
            dev = logdet_L + nu * (1.0 + LOG_2PI + np.log(pwrss / nu))
        dev -= self.sum_log_w
        if not grad or np.min(np.abs(np.diag(T))) < 1e-10:
            return float(dev), None
        Lx_inv = _tri_inv(Lxx[:k, :k])
        beta = Lx_inv.T @ Lxx[k, :k]
        rhs = [Q[a][:, k] - Q[a][:, :k] @ beta for a in range(p)]
        u = _bwd(L, rhs, p, col=False)
        # sum over levels of M^{-1} = L^{-T} L^{-1}
        eye = [[np.ones(l) if i == j else None for j in range(p)] for i in range(p)]
        Li = [_fwd(L, [eye[i][j] if eye[i][j] is not None else np.zeros(l) for i in range(p)], p, col=False)
              for j in range(p)]  # Li[j][i] = (L^{-1})[i, j]
        minv_sum = np.array([[sum(float(Li[a][b] @ Li[c][b]) for b in range(p)) for c in range(p)] for a in range(p)])
        bvec = [_lin(T[a, :], u) for a in range(p)]
        rZ = [Z[a][:, k] - Z[a][:, :k] @ beta - sum(A[a][c] * bvec[c] for c in range(p)) for a in range(p)]
        g_pw = -2.0 * np.array([[float(rZ[a] @ u[b]) for b in range(p)] for a in range(p)])
        g = 2.0 * ((l * np.eye(p) - minv_sum) @ np.linalg.inv(T)).T + nu * g_pw / pwrss
        if self.reml and k:
            V = _bwd(L, [Q[a][:, :k] for a in range(p)], p, col=True)
            lamV = [_lin(T[a, :], V) for a in range(p)]
            Sinv = Lx_inv.T @ Lx_inv
            g_rx = np.empty((p, p))
            for a in range(p):
                F = Z[a][:, :k] - sum(A[a][c][:, None] * lamV[c] for c in range(p))
                G = F @ Sinv
                for b in range(p):
                    g_rx[a, b] = float(np.vdot(G, V[b]))
            g = g - 2.0 * g_rx
        return float(dev), g
