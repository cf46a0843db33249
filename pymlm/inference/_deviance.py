"""The pieces of the LMM deviance, apart, with their gradients in theta.

Profiles, Satterthwaite's degrees of freedom and bootstrap refits need more
than the profiled deviance the fitter minimizes: the deviance at a given
residual sd (not profiled over sigma), the REML or ML criterion after moving a
fixed effect into the offset, and the derivatives of ``vcov(beta)``. All of
them are combinations of three numbers at theta,

    ldL2   = log|Lambda'Z'WZ Lambda + I|,
    ldRX2  = log|R_X'R_X|,
    pwrss  = the penalized weighted residual sum of squares,

(Bates et al. 2015, eqs. 34 and 41), and :class:`DenseDeviance` gives them
and the gradient of any combination ``wL ldL2 + wR ldRX2 + wP log(pwrss)``
from one Cholesky factor of the whole augmented system

    C(theta) = Lambda~' A Lambda~ + diag(I_q, 0),   A = [Z X y]'W[Z X y],
    Lambda~  = blockdiag(Lambda_theta, I_{p+1}).

With C = L L' (L lower), the leading (q + m) x (q + m) block of L is the
factor of the leading block of C, so

    ldL2 = log|C_q|,  ldL2 + ldRX2 = log|C_{q+p}|,  pwrss = L[-1, -1]^2,

and every piece is a log-determinant of a leading block C_m. Its derivative
in one element theta_i (at the positions (r, c) of Lambda) is

    d log|C_m| / d theta_i = tr(C_m^{-1} dC) = 2 sum_{(r, c)} (K Lambda~'A)[c, r]

with K = pad(C_m^{-1}) = sum_{rows j < m} Li[j]' Li[j] (Li = L^{-1}, whose
rows are zero beyond the diagonal). A combination of the three
log-determinants is one weighted sum over the rows of Li, hence one product.
This holds on the boundary too (no inverse of T_k is needed).

For models with many random-effect coefficients (q above the dense limit)
:class:`FactorDeviance` gives the same interface from the blocked factor
(:class:`pymlm.linalg.PlsFactor`) with central finite differences.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.linalg as sla
from scipy import optimize

from ..crossprod import CrossProducts
from ..fit.lmm import LmmObjective, fit_lmm
from ..linalg import ThetaMap
from ..linalg._threads import blas_threads
from ..linalg.dense import DENSE_MAX_Q

__all__ = [
    "LOG_2PI",
    "DenseDeviance",
    "FactorDeviance",
    "deviance_for",
    "minimize_qn",
    "offset_cross_products",
    "positive_inverse",
    "profiled_deviance",
    "response_cross_products",
]

LOG_2PI = float(np.log(2.0 * np.pi))


def profiled_deviance(ldL2: float, ldRX2: float, pwrss: float, n: float, p: int, sum_log_w: float,
                      reml: bool) -> float:
    """The ML or REML criterion profiled over beta and sigma (Bates et al. 2015, eqs. 34, 41)."""
    if reml:
        nu = n - p
        return ldL2 + ldRX2 + nu * (1.0 + LOG_2PI + np.log(pwrss / nu)) - sum_log_w
    return ldL2 + n * (1.0 + LOG_2PI + np.log(pwrss / n)) - sum_log_w


def offset_cross_products(cp: CrossProducts, j: int, b: float) -> CrossProducts:
    """Cross-products of the model with fixed effect ``j`` moved into the offset at value ``b``.

    The response becomes y - x_j b and column j leaves X, so only the
    [X y] rows and columns of the blocks change:

        Z'W(y - x_j b) = Z'Wy - b Z'Wx_j,
        X_{-j}'W(y - x_j b) = X_{-j}'Wy - b X_{-j}'Wx_j,
        (y - x_j b)'W(y - x_j b) = y'Wy - 2 b x_j'Wy + b^2 x_j'Wx_j.

    No pass over the rows is needed.
    """
    p = cp.p
    keep = [c for c in range(p) if c != j]
    T = np.zeros((p + 1, p))          # [X y] -> [X_{-j}, y - x_j b]
    T[keep, np.arange(p - 1)] = 1.0
    T[p, p - 1] = 1.0
    T[j, p - 1] = -b
    zxy = tuple(z @ T for z in cp.zxy)
    xyxy = T.T @ cp.xyxy @ T
    return replace(cp, p=p - 1, zxy=zxy, xyxy=xyxy)


def response_cross_products(cp: CrossProducts, zy, xy, yy: float) -> CrossProducts:
    """The cross-products with a new response: only the y column of the blocks changes.

    Parameters
    ----------
    zy : sequence of ndarray (l_k, p_k)
        Z_k'Wy per term.
    xy : ndarray (p,)
        X'Wy.
    yy : float
        y'Wy.
    """
    p = cp.p
    zxy = []
    for z, new in zip(cp.zxy, zy):
        z = z.copy()
        z[:, :, p] = new
        zxy.append(z)
    xyxy = cp.xyxy.copy()
    xyxy[:p, p] = xyxy[p, :p] = xy
    xyxy[p, p] = yy
    return replace(cp, zxy=tuple(zxy), xyxy=xyxy)


class _Profiled:
    """The profiled criterion of an evaluator whose ``at(theta)`` gives a point
    with ``ldL2``, ``ldRX2``, ``pwrss`` and ``grad``."""

    def profiled(self, theta, reml: bool, grad: bool = True):
        """The profiled criterion (ML or REML) and its gradient; ``(inf, None)`` where undefined."""
        try:
            pt = self.at(theta)
        except np.linalg.LinAlgError:
            return np.inf, None
        if not pt.pwrss > 0:
            return np.inf, None
        dev = profiled_deviance(pt.ldL2, pt.ldRX2, pt.pwrss, self.n, self.p, self.sum_log_w, reml)
        if not grad:
            return dev, None
        nu = self.n - self.p if reml else self.n
        return dev, pt.grad(1.0, 1.0 if reml else 0.0, nu)


@dataclass(frozen=True, eq=False)
class DensePoint:
    """The deviance pieces of a :class:`DenseDeviance` at one theta.

    Attributes
    ----------
    theta : ndarray
    L : ndarray (Q, Q)
        Lower Cholesky factor of C(theta), Q = q + p + 1.
    ldL2, ldRX2, pwrss : float
    """

    dev: DenseDeviance
    theta: np.ndarray
    L: np.ndarray
    LA: np.ndarray
    ldL2: float
    ldRX2: float
    pwrss: float

    def beta(self) -> np.ndarray:
        """Fixed effects at theta: R_X beta = the X part of the y row of L."""
        q, p = self.dev.q, self.dev.p
        if p == 0:
            return np.zeros(0)
        return sla.solve_triangular(self.L[q:q + p, q:q + p].T, self.L[q + p, q:q + p], lower=False,
                                    check_finite=False)

    def _Li(self) -> np.ndarray:
        Li, info = sla.lapack.dtrtri(self.L, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("singular factor")
        return Li

    def _lam_t_a(self) -> np.ndarray:
        """(Lambda~'A)[:, :q], the columns of Lambda~'A that dLambda~ touches, (Q, q)."""
        return np.vstack([self.LA[:, :self.dev.q], self.dev._A_XZ])

    def grad(self, wL: float, wR: float, wP: float) -> np.ndarray:
        """Gradient in theta of ``wL ldL2 + wR ldRX2 + wP log(pwrss)``.

        Notes
        -----
        The combination equals a log|C_q| + b log|C_{q+p}| + c log|C| with
        a = wL - wR, b = wR - wP, c = wP; K = Li' diag(omega) Li with
        omega_j = a [j < q] + b [j < q + p] + c (see the module docstring).
        """
        d = self.dev
        q, qp = d.q, d.q + d.p
        Q = self.L.shape[0]
        if d.n_theta == 0:
            return np.zeros(0)
        Li = self._Li()
        omega = np.full(Q, float(wP))
        omega[:qp] += wR - wP
        omega[:q] += wL - wR
        Kq = Li[:, :q].T @ (omega[:, None] * Li)          # rows :q of K, (q, Q)
        G = Kq @ self._lam_t_a()                          # (K Lambda~'A)[:q, :q]
        return 2.0 * np.bincount(d.t_idx, weights=G[d.l_cols, d.l_rows], minlength=d.n_theta)

    def vcov_unscaled(self) -> np.ndarray:
        """(R_X'R_X)^{-1} = the X block of C_{q+p}^{-1}, (p, p)."""
        q, p = self.dev.q, self.dev.p
        Rx = self.L[q:q + p, q:q + p]
        Ri = sla.solve_triangular(Rx, np.eye(p), lower=True, check_finite=False)
        return Ri.T @ Ri

    def vcov_unscaled_jacobian(self) -> np.ndarray:
        """d (R_X'R_X)^{-1} / d theta_i, ``(n_theta, p, p)``.

        Notes
        -----
        With B = C_{q+p}^{-1}[:, X], d(C^{-1}) = -C^{-1} dC C^{-1} gives
        d S^{-1} = -(E_i + E_i') with E_i = B'(Lambda~'A) dLambda~_i B
        = sum over the positions (r, c) of theta_i of H[:, r] B[c, :]',
        H = B'(Lambda~'A)[:q+p, :q].
        """
        d = self.dev
        q, p = d.q, d.p
        qp = q + p
        Li = self._Li()
        B = Li[q:qp, :qp].T @ Li[q:qp, q:qp]                # (q + p, p)
        H = B.T @ self._lam_t_a()[:qp]                      # (p, q)
        terms = H[:, d.l_rows].T[:, :, None] * B[d.l_cols][:, None, :]   # (npos, p, p)
        E = np.zeros((d.n_theta, p, p))
        np.add.at(E, d.t_idx, terms)
        return -(E + E.transpose(0, 2, 1))


class DenseDeviance(_Profiled):
    """Deviance pieces of a small LMM from the dense augmented matrix.

    Parameters
    ----------
    A : ndarray (q + p + 1, q + p + 1)
        [Z X y]'W[Z X y] (:meth:`pymlm.crossprod.CrossProducts.dense`).
    p : int
    tmap : ThetaMap
    n, sum_log_w : float
    """

    kind = "dense"

    def __init__(self, A, p, tmap: ThetaMap, n, sum_log_w):
        self.A = np.ascontiguousarray(A, dtype=float)
        self.p = int(p)
        self.tmap = tmap
        self.q = tmap.q
        self.n = float(n)
        self.sum_log_w = float(sum_log_w)
        self.t_idx, self.l_rows, self.l_cols = tmap.lambda_index
        self.n_theta = tmap.n_theta
        Q = self.A.shape[0]
        self._A_Z = self.A[:self.q, :]
        self._A_XZ = self.A[self.q:, :self.q]
        self._diag_q = np.arange(self.q) * (Q + 1)
        self._diag_all = np.arange(Q) * (Q + 1)

    @classmethod
    def from_cp(cls, cp: CrossProducts, tmap: ThetaMap) -> DenseDeviance:
        return cls(cp.dense(), cp.p, tmap.with_levels(cp.dims), cp.n, cp.sum_log_w)

    def _with(self, A, p=None) -> DenseDeviance:
        return DenseDeviance(A, self.p if p is None else p, self.tmap, self.n, self.sum_log_w)

    def with_response(self, zy, xy, yy) -> DenseDeviance:
        """The same design with another response (Z'Wy per term, X'Wy, y'Wy)."""
        A = self.A.copy()
        col = np.concatenate([np.concatenate([np.asarray(z).ravel() for z in zy]) if zy else np.zeros(0),
                              np.asarray(xy, dtype=float), [yy]])
        A[:, -1] = col
        A[-1, :] = col
        return self._with(A)

    def offset(self, j: int, b: float) -> DenseDeviance:
        """Fixed effect ``j`` moved into the offset at value ``b`` (see :func:`offset_cross_products`)."""
        q, p = self.q, self.p
        Q = q + p + 1
        keep = [c for c in range(Q - 1) if c != q + j]
        T = np.zeros((Q, Q - 1))
        T[keep, np.arange(Q - 2)] = 1.0
        T[Q - 1, Q - 2] = 1.0
        T[q + j, Q - 2] = -b
        return self._with(T.T @ self.A @ T, p=p - 1)

    def at(self, theta) -> DensePoint:
        """Factor C(theta).

        Raises
        ------
        numpy.linalg.LinAlgError
            C(theta) is not positive definite (X rank deficient, or a zero
            residual).
        """
        q = self.q
        theta = np.asarray(theta, dtype=float)
        Lam = self.tmap.dense_lambda(theta)
        LA = Lam.T @ self._A_Z
        C = self.A.copy()
        # dpotrf reads the lower triangle only
        C[:q, :q] = LA[:, :q] @ Lam
        C.ravel()[self._diag_q] += 1.0
        C[q:, :q] = LA[:, q:].T
        L, info = sla.lapack.dpotrf(C, lower=1, clean=1, overwrite_a=1)
        if info != 0:
            raise np.linalg.LinAlgError("the augmented PLS system is not positive definite")
        ld = 2.0 * np.log(L.ravel()[self._diag_all])
        qp = q + self.p
        return DensePoint(self, theta, L, LA, float(ld[:q].sum()), float(ld[q:qp].sum()), float(L[-1, -1] ** 2))

    def fit(self, theta0, lower, reml: bool, tol: float = 1e-10, hess_inv=None):
        """Minimize the profiled criterion over theta with the analytic gradient.

        Parameters
        ----------
        theta0, lower : ndarray (n_theta,)
        reml : bool
        tol : float
            Relative tolerance on the criterion.
        hess_inv : ndarray (n_theta, n_theta), optional
            An approximate inverse Hessian (e.g. at the estimates of the
            original data, for bootstrap refits): a projected quasi-Newton
            method started from it converges in a few steps. Without it, or
            when it fails, L-BFGS-B.

        Returns
        -------
        theta : ndarray
        point : DensePoint
        converged : bool
        """
        lower = np.asarray(lower, dtype=float)
        theta0 = lift_start(theta0, lower)
        if self.n_theta == 0:
            return theta0, self.at(theta0), True

        def fg(th):
            f, g = self.profiled(th, reml)
            if g is None:
                return np.inf, None
            return f, g

        if hess_inv is not None:
            theta, ok = minimize_qn(fg, theta0, lower, hess_inv, tol=tol)
            if ok:
                return theta, self.at(theta), True

        def fg_safe(th):
            f, g = fg(th)
            return (1e300, np.zeros_like(th)) if g is None else (f, g)

        bounds = optimize.Bounds(lower, np.full(lower.size, np.inf))
        res = optimize.minimize(fg_safe, theta0, method="L-BFGS-B", jac=True, bounds=bounds,
                                options={"ftol": tol, "gtol": 1e-6, "maxcor": 20, "maxfun": 2000})
        theta = np.maximum(np.asarray(res.x, dtype=float), lower)
        g = fg_safe(theta)[1]
        projected = np.where((theta <= lower) & (g > 0), 0.0, g)
        ok = bool(res.success) or float(np.max(np.abs(projected), initial=0.0)) < 1e-4
        return theta, self.at(theta), ok

    def hessian(self, theta, reml: bool, h: float = 1e-5) -> np.ndarray:
        """Hessian of the profiled criterion by central differences of the analytic gradient."""
        theta = np.asarray(theta, dtype=float)
        k = theta.size
        H = np.zeros((k, k))
        steps = h * np.maximum(np.abs(theta), 1e-2)
        for i in range(k):     # n_theta gradient pairs
            e = np.zeros(k)
            e[i] = steps[i]
            H[:, i] = (self.profiled(theta + e, reml)[1] - self.profiled(theta - e, reml)[1]) / (2 * steps[i])
        return 0.5 * (H + H.T)


# diagonal elements of theta start at least this far from their bound of 0
START_LIFT = 1e-2


def lift_start(theta0, lower) -> np.ndarray:
    """A start off the boundary: a diagonal element at 0 starts at ``START_LIFT``.

    For a scalar term the criterion is even in theta_k, so theta_k = 0 is
    always a stationary point; started there, a gradient method would stay
    even where 0 is a maximum along theta_k (a fixed effect far from its
    estimate can make a variance worth having again).
    """
    lower = np.asarray(lower, dtype=float)
    theta0 = np.maximum(np.asarray(theta0, dtype=float), lower)
    on_bound = np.isfinite(lower) & (theta0 < lower + START_LIFT)
    return np.where(on_bound, lower + START_LIFT, theta0)


def positive_inverse(H: np.ndarray, floor: float = 1e-8) -> np.ndarray:
    """Inverse of a symmetric matrix with its eigenvalues floored at ``floor`` times the largest."""
    vals, vecs = np.linalg.eigh(0.5 * (H + H.T))
    top = max(float(np.max(np.abs(vals))), 1e-12)
    vals = np.maximum(vals, floor * top)
    return (vecs / vals) @ vecs.T


def minimize_qn(fg, x0, lower, hess_inv, tol: float = 1e-10, maxit: int = 100):
    """Projected quasi-Newton (BFGS) minimization subject to ``x >= lower``.

    Variables on their bound whose gradient points outwards are held
    there; the step on the others is -H g with H the BFGS inverse Hessian,
    started from ``hess_inv``; a backtracking line search on the projected
    path (Armijo). Stops when the Newton decrement g'Hg of the free
    variables is below ``tol * max(1, |f|)``.

    Parameters
    ----------
    fg : callable
        x -> (f, gradient); (inf, None) where undefined.
    x0, lower : ndarray (k,)
    hess_inv : ndarray (k, k)
        Positive definite start of the inverse Hessian.

    Returns
    -------
    x : ndarray
    converged : bool
    """
    x = np.maximum(np.asarray(x0, dtype=float), lower)
    f, g = fg(x)
    if g is None or not np.isfinite(f):
        return x, False
    H = np.array(hess_inv, dtype=float)

    def direction(H, g, held):
        if not held.any():
            return -(H @ g)
        free = ~held
        d = np.zeros_like(g)
        d[free] = -(H[np.ix_(free, free)] @ g[free])
        return d

    for _ in range(maxit):
        held = (x <= lower) & (g > 0)
        d = direction(H, g, held)
        slope = float(g @ d)
        if not slope < 0:
            H = np.array(hess_inv, dtype=float)
            d = direction(H, g, held)
            slope = float(g @ d)
            if not slope < 0:
                return x, bool(np.max(np.abs(g[~held]), initial=0.0) < 1e-8)
        if -slope <= tol * max(1.0, abs(f)):
            return x, True
        t = 1.0
        while True:
            xn = np.maximum(x + t * d, lower)
            fn, gn = fg(xn)
            if gn is not None and np.isfinite(fn) and fn <= f + 1e-4 * float(g @ (xn - x)):
                break
            t *= 0.5
            if t < 1e-10:
                # no decrease left to find within rounding: converged if the
                # predicted decrease is negligible
                return x, -slope <= 1e-8 * max(1.0, abs(f))
        s_ = xn - x
        y_ = gn - g
        sy = float(s_ @ y_)
        if sy > 1e-12 * np.sqrt(float(s_ @ s_) * float(y_ @ y_)):
            rho = 1.0 / sy
            Hy = H @ y_
            sH = s_[:, None] * Hy[None, :]
            H = H - rho * (sH + sH.T) + (rho * rho * float(y_ @ Hy) + rho) * (s_[:, None] * s_[None, :])
        x, f, g = xn, fn, gn
    return x, False


@dataclass(frozen=True, eq=False)
class FactorPoint:
    """The deviance pieces of a :class:`FactorDeviance` at one theta (finite-difference gradients)."""

    dev: FactorDeviance
    theta: np.ndarray
    factor: object
    ldL2: float
    ldRX2: float
    pwrss: float

    def beta(self) -> np.ndarray:
        return self.factor.beta()

    def _steps(self):
        return 1e-5 * np.maximum(np.abs(self.theta), 1e-2)

    def _parts_grad(self):
        h = self._steps()
        out = np.zeros((3, self.theta.size))
        for i in range(self.theta.size):   # n_theta factorizations, a handful
            e = np.zeros_like(self.theta)
            e[i] = h[i]
            up, dn = self.dev.at(self.theta + e), self.dev.at(self.theta - e)
            out[:, i] = (np.array([up.ldL2, up.ldRX2, np.log(up.pwrss)])
                         - np.array([dn.ldL2, dn.ldRX2, np.log(dn.pwrss)])) / (2 * h[i])
        return out

    def grad(self, wL: float, wR: float, wP: float) -> np.ndarray:
        return np.array([wL, wR, wP]) @ self._parts_grad()

    def vcov_unscaled(self) -> np.ndarray:
        p = self.dev.p
        Ri = sla.solve_triangular(self.factor.L_XX[:p, :p], np.eye(p), lower=True)
        return Ri.T @ Ri

    def vcov_unscaled_jacobian(self) -> np.ndarray:
        h = self._steps()
        out = []
        for i in range(self.theta.size):
            e = np.zeros_like(self.theta)
            e[i] = h[i]
            out.append((self.dev.at(self.theta + e).vcov_unscaled()
                        - self.dev.at(self.theta - e).vcov_unscaled()) / (2 * h[i]))
        return np.asarray(out)


class FactorDeviance(_Profiled):
    """The interface of :class:`DenseDeviance` on the blocked factor, for large q."""

    kind = "factor"

    def __init__(self, cp: CrossProducts, tmap: ThetaMap):
        self.cp = cp
        self.tmap = tmap
        self.p = cp.p
        self.n = float(cp.n)
        self.sum_log_w = float(cp.sum_log_w)
        self.objective = LmmObjective(cp, False, tmap)
        self.n_theta = self.objective.n_theta

    def with_response(self, zy, xy, yy) -> FactorDeviance:
        return FactorDeviance(response_cross_products(self.cp, zy, xy, yy), self.tmap)

    def offset(self, j: int, b: float) -> FactorDeviance:
        return FactorDeviance(offset_cross_products(self.cp, j, b), self.tmap)

    def at(self, theta) -> FactorPoint:
        theta = np.asarray(theta, dtype=float)
        f = self.objective.factor(theta)
        return FactorPoint(self, theta, f, float(f.logdet_L), float(f.logdet_RX), float(f.pwrss))

    def fit(self, theta0, lower, reml: bool, tol: float = 1e-10, hess_inv=None):
        f = fit_lmm(self.cp, self.tmap, theta0=lift_start(theta0, lower), reml=reml, check_conv=False)
        return f.theta, self.at(f.theta), bool(f.opt.success)


def deviance_for(cp: CrossProducts, tmap: ThetaMap, kind: str = "auto"):
    """The deviance-pieces evaluator for a model: dense for q <= the dense limit, else the blocked factor."""
    if kind == "dense" or (kind == "auto" and cp.q <= DENSE_MAX_Q):
        return DenseDeviance.from_cp(cp, tmap)
    return FactorDeviance(cp, tmap)


def single_threaded():
    """Small dense algebra runs faster on one BLAS thread (see :mod:`pymlm.linalg._threads`)."""
    return blas_threads(1)
