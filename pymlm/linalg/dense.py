"""The profiled deviance and its gradient for small models, with dense algebra.

When the random effects have few coefficients in all (q up to a few hundred:
the classic teaching data sets, most designed experiments), one dense
Cholesky of the whole (q + p + 1) PLS system costs less than the bookkeeping
of the blocked factor. The formulas are those of
:meth:`pymlm.fit.lmm.LmmObjective.value_and_grad`, written with the full
matrices:

    M = Lambda'A_ZZ Lambda + I,   d log|M| / d theta_i = 2 tr(M^{-1} Lambda'A_ZZ dLambda_i),
    d r2 / d theta_i = -2 r_Z' dLambda_i u,
    d log|R_X'R_X| / d theta_i = -2 tr(S^{-1} F' dLambda_i V).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ..crossprod import CrossProducts
from ._deviance import profiled_deviance
from .theta import ThetaMap

__all__ = ["DenseSystem", "DENSE_MAX_Q"]

# Models with at most this many random-effect coefficients use the dense path.
DENSE_MAX_Q = 300


class DenseSystem:
    """Deviance evaluator on the dense cross-product matrix.

    Parameters
    ----------
    cp : CrossProducts
    tmap : ThetaMap
    reml : bool
    """

    def __init__(self, cp: CrossProducts, tmap: ThetaMap, reml: bool):
        self.cp = cp
        self.reml = reml
        A = cp.dense()
        q = cp.q
        self.q, self.k = q, cp.p
        self.A_ZZ = A[:q, :q]
        self.A_ZXy = A[:q, q:]
        self.A_XyXy = A[q:, q:]
        self.tmap = tmap
        self.t_idx, self.l_rows, self.l_cols = tmap.lambda_index
        self.n_theta = tmap.n_theta
        self.diag = self.l_rows == self.l_cols

    def __call__(self, theta: np.ndarray, grad: bool = False):
        """Deviance at theta, and its gradient when asked (``None`` on the boundary).

        Raises
        ------
        numpy.linalg.LinAlgError
            The [X y] block is not positive definite.
        """
        cp, q, k = self.cp, self.q, self.k
        theta = np.asarray(theta, dtype=float)
        Lam = self.tmap.dense_lambda(theta)
        AL = self.A_ZZ @ Lam
        M = Lam.T @ AL
        M[np.diag_indices(q)] += 1.0
        Lz = np.linalg.cholesky(M)
        B = Lam.T @ self.A_ZXy
        Q = sla.solve_triangular(Lz, B, lower=True, check_finite=False)
        Lxx = np.linalg.cholesky(self.A_XyXy - Q.T @ Q)
        ldL2 = 2.0 * float(np.sum(np.log(np.diag(Lz))))
        dev, nu, pwrss = profiled_deviance(ldL2, Lxx, cp.n, cp.sum_log_w, self.reml)
        if not grad or np.any(np.abs(theta[self.t_idx[self.diag]]) < 1e-10):
            return float(dev), None
        Lx = Lxx[:k, :k]
        beta = sla.solve_triangular(Lx.T, Lxx[k, :k], lower=False, check_finite=False) if k else np.zeros(0)
        Minv = sla.cho_solve((Lz, True), np.eye(q), check_finite=False)
        u = Minv @ (B[:, k] - B[:, :k] @ beta)
        # d log|M|: 2 tr(M^{-1} Lambda'A dLambda) = 2 sum over positions of (M^{-1} Lambda' A)[c, r]
        G = Minv @ AL.T
        g = 2.0 * np.bincount(self.t_idx, weights=G[self.l_cols, self.l_rows], minlength=self.n_theta)
        rZ = self.A_ZXy[:, k] - self.A_ZXy[:, :k] @ beta - AL @ u
        g += (nu / pwrss) * -2.0 * np.bincount(self.t_idx, weights=rZ[self.l_rows] * u[self.l_cols],
                                               minlength=self.n_theta)
        if self.reml and k:
            V = Minv @ B[:, :k]
            F = self.A_ZXy[:, :k] - AL @ V
            Lxi = sla.solve_triangular(Lx, np.eye(k), lower=True, check_finite=False)
            H = F @ (Lxi.T @ Lxi) @ V.T
            g -= 2.0 * np.bincount(self.t_idx, weights=H[self.l_rows, self.l_cols], minlength=self.n_theta)
        return float(dev), g
