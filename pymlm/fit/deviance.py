"""The deviance evaluator: the pieces of the profiled (REML) deviance at theta.

Every user of the linear mixed model's criterion (the fitter, profiles,
Satterthwaite and Kenward-Roger degrees of freedom, the parametric bootstrap,
the bag of little bootstraps, split-sample fits) evaluates it through one
contract, written down here; the formula and its constants exist once, in
:func:`profiled_deviance`.

The contract
------------
An evaluator is built from the cross-products of a model
(:class:`~pymlm.crossprod.CrossProducts`, or per-cluster blocks with
multiplicities), a :class:`~pymlm.linalg.ThetaMap` and the criterion (``reml``).
It has ``cp``, ``tmap``, ``reml``, ``n``, ``p``, ``sum_log_w``, ``n_theta``,
``lower`` and ``kind``, and offers

``at(theta, grad=False, modes=False, jacobian=False) -> DeviancePoint``
    A frozen record of the pieces at theta: ``ldL2`` = log|Lambda'Z'WZ Lambda + I|,
    ``ldRX2`` = log|R_X'R_X|, ``pwrss`` (the penalized weighted residual sum
    of squares), ``beta`` (beta-hat at theta), ``vcov_unscaled`` =
    (R_X'R_X)^{-1}; with ``grad``, ``parts``: the derivatives of ldL2, ldRX2
    (REML evaluators only; NaN otherwise) and pwrss in theta, from which
    ``point.grad`` (the criterion's gradient) and ``point.combination`` (any
    wL ldL2 + wR ldRX2 + wP log pwrss) follow; with ``modes``, the spherical
    conditional modes ``u``; with ``jacobian``, ``dvcov`` = d (R_X'R_X)^{-1} /
    d theta_i. Raises :class:`numpy.linalg.LinAlgError` where the system is
    not positive definite.
``__call__(theta) -> float``
    The criterion, ``inf`` where undefined (for optimizers).
``value_and_grad(theta)``
    The criterion and its gradient, ``(inf, None)`` where undefined.
``with_cp(cp)``
    The same kind of evaluator on other cross-products of the same design (a
    fixed effect moved into the offset, another response).
``factor(theta)``
    The blocked factor (:class:`~pymlm.linalg.PlsFactor`), for per-term
    conditional modes and variances.
``site_pieces(theta, grad=False) -> SitePieces``
    The pieces that add over row sets holding disjoint groups (sites): ldL2,
    the downdated [X y] block D = L_XX L_XX', n, sum log w and, with ``grad``,
    d ldL2 and d D in theta (see :class:`SitePieces`).

To add an implementation, subclass :class:`Evaluator` and write
``_pieces(theta, grad, modes) -> (ldL2, L_XX, parts, u)``: L_XX the lower
Cholesky factor of the downdated [X y] block (its last diagonal element
squared is pwrss, the others give ldRX2), ``parts`` ``(3, n_theta)`` or
``None`` when not asked (or not defined there), ``u`` or ``None``. An
implementation whose gradient needs every diagonal element of T_k away from 0
sets ``interior_gradient = True``: on the boundary its gradient is then taken
1e-8 inside, where it is continuous. Everything else (beta, the covariance,
the criterion, its gradient, the boundary rule) is done once, here.

Implementations: :class:`DenseEvaluator` (one dense Cholesky, small q),
:class:`OneTermEvaluator` (one random term, per-level kernels),
:class:`BlockedEvaluator` (the blocked factor, any structure) and
:class:`ClusterEvaluator` (c_i independent copies of cluster i: bootstrap and
BLB resamples). :func:`evaluator_for` picks one.

Notation (``linalg/__init__``): M = Lambda'Z'WZ Lambda + I; with r the
residual at the conditional modes, u the spherical modes and dLambda the
derivative of Lambda in one theta element,

- d ldL2 = 2 tr(M^{-1} Lambda'A dLambda);
- d pwrss = -2 (Z'Wr)' dLambda u (r2 is a minimum over beta and u);
- d ldRX2 = -2 tr(S^{-1} F' dLambda V), V = M^{-1} Lambda'Z'WX,
  F = Z'WX - Z'WZ Lambda V, S = R_X'R_X, and d S = -(F' dLambda V + V' dLambda' F).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.linalg as sla

from ..crossprod import ClusterCrossProducts, CrossProducts
from ..linalg import PlsFactor, ThetaMap, factorize, plan
from ..linalg._small import tri_inv
from ..linalg._threads import blas_threads
from ..linalg.cholesky import zz_matmul
from ..linalg.single import SingleTerm

__all__ = [
    "DENSE_MAX_Q",
    "LOG_2PI",
    "BlockedEvaluator",
    "ClusterEvaluator",
    "DenseEvaluator",
    "DeviancePoint",
    "Evaluator",
    "OneTermEvaluator",
    "SitePieces",
    "evaluator_for",
    "profiled_deviance",
]

LOG_2PI = float(np.log(2.0 * np.pi))

# Models with at most this many random-effect coefficients use the dense evaluator.
DENSE_MAX_Q = 300

# theta's diagonal elements closer than this to 0 are on the boundary; the
# gradient of an ``interior_gradient`` evaluator is taken at BOUNDARY_STEP there
BOUNDARY_TOL, BOUNDARY_STEP = 1e-10, 1e-8


def profiled_deviance(ldL2: float, ldRX2: float, pwrss: float, n: float, p: int, sum_log_w: float,
                      reml: bool) -> float:
    """The ML or REML criterion profiled over beta and sigma (Bates et al. 2015, eqs. 34 and 41).

    ML:   ldL2 + n (1 + log(2 pi pwrss / n)) - sum log w;
    REML: ldL2 + ldRX2 + (n - p)(1 + log(2 pi pwrss / (n - p))) - sum log w.
    """
    nu = n - p if reml else n
    r = pwrss / nu
    # math.log on a float is a fraction of np.log's cost; 0 and below as np.log gives them
    log_r = math.log(r) if r > 0 else (-math.inf if r == 0 else math.nan)
    dev = ldL2 + nu * (1.0 + LOG_2PI + log_r) - sum_log_w
    return float(dev + ldRX2) if reml else float(dev)


def _log_rx2(d, p: int) -> float:
    """ldRX2 = 2 sum log of the first p diagonal elements ``d`` of L_XX."""
    return 2.0 * float(np.log(d[:p]).sum()) if p else 0.0


@dataclass(frozen=True, eq=False)
class DeviancePoint:
    """The pieces of the profiled deviance at one theta (see the module's contract).

    Attributes
    ----------
    theta : ndarray (n_theta,)
    ldL2, ldRX2, pwrss : float
    L_XX : ndarray (p + 1, p + 1)
        Lower Cholesky factor of the downdated [X y] block: R_X' and the
        fixed-effects part of the response row.
    beta : ndarray (p,)
        (property) beta-hat at theta.
    vcov_unscaled : ndarray (p, p)
        (property) (R_X'R_X)^{-1}; sigma^2 times it is vcov(beta).
    n, p, sum_log_w, reml
        What the criterion needs besides the pieces.
    parts : ndarray (3, n_theta) or None
        d ldL2, d ldRX2 (NaN for an ML evaluator), d pwrss.
    u : dict or ndarray or None
        Spherical conditional modes (per term, or per cluster).
    dvcov : ndarray (n_theta, p, p) or None
        d (R_X'R_X)^{-1} / d theta_i.
    """

    theta: np.ndarray
    ldL2: float
    ldRX2: float
    pwrss: float
    L_XX: np.ndarray
    n: float
    p: int
    sum_log_w: float
    reml: bool
    parts: np.ndarray | None = None
    u: object = None
    dvcov: np.ndarray | None = None

    @cached_property
    def _R_inv(self) -> np.ndarray:
        return tri_inv(self.L_XX[:self.p, :self.p])

    @cached_property
    def beta(self) -> np.ndarray:
        return self._R_inv.T @ self.L_XX[self.p, :self.p]

    @cached_property
    def vcov_unscaled(self) -> np.ndarray:
        return self._R_inv.T @ self._R_inv

    @property
    def nu(self) -> float:
        """The divisor of pwrss in sigma^2: n - p (REML) or n."""
        return self.n - self.p if self.reml else self.n

    @property
    def sigma(self) -> float:
        return float(np.sqrt(self.pwrss / self.nu))

    @property
    def deviance(self) -> float:
        """The criterion (REML criterion or ML deviance)."""
        return profiled_deviance(self.ldL2, self.ldRX2, self.pwrss, self.n, self.p, self.sum_log_w, self.reml)

    def deviance_as(self, reml: bool) -> float:
        """The REML or the ML criterion at this theta, whichever the evaluator was built for."""
        return profiled_deviance(self.ldL2, self.ldRX2, self.pwrss, self.n, self.p, self.sum_log_w, reml)

    def combination(self, wL: float, wR: float, wP: float) -> np.ndarray:
        """Gradient in theta of ``wL ldL2 + wR ldRX2 + wP log(pwrss)``."""
        g = wL * self.parts[0] + (wP / self.pwrss) * self.parts[2]
        return g + wR * self.parts[1] if wR else g

    @property
    def grad(self) -> np.ndarray:
        """Gradient of the criterion in theta."""
        return self.combination(1.0, 1.0 if self.reml else 0.0, self.nu)


@dataclass(frozen=True, eq=False)
class SitePieces:
    """The pieces of the profiled deviance that add over sites holding disjoint groups.

    When no level of any grouping factor has rows in two sites, Z'WZ, and so
    M = Lambda'Z'WZ Lambda + I and its factor, are block diagonal across the
    sites; hence log|M| and the downdated block

        D = [X y]'W[X y] - [X y]'WZ Lambda M^{-1} Lambda'Z'W[X y]  ([X y]'V^{-1}[X y] / sigma^2)

    are sums of per-site terms, as are n and sum log w. The criterion follows
    from the sums: L_XX = chol(D), ldRX2 = log|D_XX|, pwrss = D_yy - D_yX
    D_XX^{-1} D_Xy. With V = M^{-1} Lambda'Z'W[X y] and F = Z'W[X y] - Z'WZ
    Lambda V, dD / d theta_i = -(F' dLambda_i V + V' dLambda_i' F) (the
    module header's d S, on all p + 1 columns), so the gradient needs only
    the summed d ldL2 and dD: d ldRX2_i = tr(D_XX^{-1} dD_i[X, X]) and
    d pwrss_i = w' dD_i w with w = (-beta, 1).

    Attributes
    ----------
    ldL2 : float
    D : ndarray (p + 1, p + 1)
    n, sum_log_w : float
    d_ldL2 : ndarray (n_theta,) or None
    dD : ndarray (n_theta, p + 1, p + 1) or None
    """

    ldL2: float
    D: np.ndarray
    n: float
    sum_log_w: float
    d_ldL2: np.ndarray | None = None
    dD: np.ndarray | None = None


class Evaluator:
    """The shared part of every implementation (see the module's contract)."""

    kind = "abstract"
    interior_gradient = False

    def __init__(self, cp: CrossProducts, reml: bool, tmap: ThetaMap | None = None):
        self.cp = cp
        self.tmap = ThetaMap.default(cp.dims) if tmap is None else tmap.with_levels(cp.dims)
        self._constants(reml, cp.n, cp.p, cp.sum_log_w)

    def _constants(self, reml, n, p, sum_log_w) -> None:
        """What every evaluation reads, computed once: the criterion's terms and theta's layout."""
        self.reml = bool(reml)
        self.n = float(n)
        self.p = int(p)
        self.sum_log_w = float(sum_log_w)
        self._nu = self.n - self.p if self.reml else self.n
        self.n_theta = self.tmap.n_theta
        self._is_diag = self.tmap.is_diag

    @property
    def lower(self) -> np.ndarray:
        return self.tmap.lower

    def with_cp(self, cp: CrossProducts) -> Evaluator:
        return type(self)(cp, self.reml, self.tmap)

    @cached_property
    def struct(self):
        """The blocked factor's structure (computed on first use)."""
        return plan(self.cp, self.tmap)

    def factor(self, theta) -> PlsFactor:
        return factorize(self.struct, np.asarray(theta, dtype=float))

    def _pieces(self, theta, grad: bool, modes: bool):
        raise NotImplementedError

    def site_pieces(self, theta, grad: bool = False) -> SitePieces:
        """The additive pieces of these rows at theta (see :class:`SitePieces`)."""
        theta = np.asarray(theta, dtype=float)
        ldL2, Lxx, parts, _ = self._pieces_at(theta, grad, False)
        D = Lxx @ Lxx.T
        if not grad:
            return SitePieces(float(ldL2), D, self.n, self.sum_log_w)
        cp, f, p1 = self.cp, self.factor(theta), self.p + 1
        V = f.back_substitute({k: f._q_all(k) for k in range(cp.n_terms)})       # M^{-1} Lambda'Z'W[X y]
        lamV = {k: (V[k].reshape(lk, pk, p1).transpose(0, 2, 1) @ f.Ts[k].T).transpose(0, 2, 1).reshape(-1, p1)
                for k, (pk, lk) in enumerate(cp.dims)}
        AlamV = zz_matmul(cp, lamV)
        E = []
        for k, (pk, lk) in enumerate(cp.dims):
            F = cp.zxy[k] - AlamV[k].reshape(lk, pk, p1)
            E.append(np.einsum("lax,lby->abxy", F, V[k].reshape(lk, pk, p1)))   # F' dLambda V at (a, b) of T_k
        dE = np.concatenate([e[r, c] for e, (r, c) in zip(E, self.tmap.positions)]) if E else np.zeros((0, p1, p1))
        return SitePieces(float(ldL2), D, self.n, self.sum_log_w, np.array(parts[0]), -(dE + dE.transpose(0, 2, 1)))

    def _pieces_at(self, theta, grad: bool, modes: bool):
        """``_pieces`` with the boundary rule of ``interior_gradient`` implementations."""
        ldL2, Lxx, parts, u = self._pieces(theta, grad, modes)
        if grad and parts is None and self.interior_gradient:
            # on the boundary T_k^{-1} does not exist; the gradient is continuous
            inside = theta.copy()
            inside[self._is_diag & (np.abs(inside) < BOUNDARY_TOL)] = BOUNDARY_STEP
            parts = self._pieces(inside, True, False)[2]
        return ldL2, Lxx, parts, u

    def at(self, theta, grad: bool = False, modes: bool = False, jacobian: bool = False) -> DeviancePoint:
        theta = np.asarray(theta, dtype=float)
        ldL2, Lxx, parts, u = self._pieces_at(theta, grad, modes)
        p = self.p
        d = Lxx.diagonal()
        if modes and u is None:
            u = self.factor(theta).spherical_u(_beta(Lxx, p))
        return DeviancePoint(theta, float(ldL2), _log_rx2(d, p), float(d[p]) ** 2, Lxx, self.n, p, self.sum_log_w,
                             self.reml, parts, u, self._vcov_jacobian(theta) if jacobian else None)

    def _vcov_jacobian(self, theta) -> np.ndarray:
        """d (R_X'R_X)^{-1} / d theta by central differences (implementations may do better)."""
        h = 1e-5 * np.maximum(np.abs(theta), 1e-2)
        out = []
        for i in range(theta.size):     # n_theta pairs of factorizations, a handful
            e = np.zeros_like(theta)
            e[i] = h[i]
            out.append((self.at(theta + e).vcov_unscaled - self.at(theta - e).vcov_unscaled) / (2 * h[i]))
        return np.asarray(out).reshape(theta.size, self.p, self.p)

    # the optimizers' entry points: the criterion (and its gradient) straight from the
    # pieces, without the point record (thousands of calls per bootstrap)
    def _criterion(self, ldL2, Lxx):
        p = self.p
        d = Lxx.diagonal()
        pwrss = float(d[p]) ** 2
        ldRX2 = _log_rx2(d, p) if self.reml else 0.0
        return profiled_deviance(ldL2, ldRX2, pwrss, self.n, p, self.sum_log_w, self.reml), pwrss

    def __call__(self, theta) -> float:
        try:
            ldL2, Lxx, _, _ = self._pieces(np.asarray(theta, dtype=float), False, False)
            value = self._criterion(ldL2, Lxx)[0]
        except np.linalg.LinAlgError:
            return np.inf
        return value if math.isfinite(value) else np.inf

    def value_and_grad(self, theta):
        try:
            ldL2, Lxx, parts, _ = self._pieces_at(np.asarray(theta, dtype=float), True, False)
            value, pwrss = self._criterion(ldL2, Lxx)
        except np.linalg.LinAlgError:
            return np.inf, None
        if not math.isfinite(value) or parts is None:
            return np.inf, None
        g = parts[0] + (self._nu / pwrss) * parts[2]
        return value, (g + parts[1] if self.reml else g)


def _beta(Lxx: np.ndarray, p: int) -> np.ndarray:
    """beta-hat from L_XX: R_X beta = the X part of its response row."""
    return tri_inv(Lxx[:p, :p]).T @ Lxx[p, :p]


class DenseEvaluator(Evaluator):
    """One dense Cholesky of the whole augmented system (few random-effect coefficients).

    When q is up to a few hundred (the classic teaching data sets, most
    designed experiments), one dense factorization costs less than the
    bookkeeping of the blocked factor. With A = [Z X y]'W[Z X y] and
    Lambda~ = blockdiag(Lambda_theta, I_{p+1}), the augmented matrix

        C(theta) = Lambda~' A Lambda~ + diag(I_q, 0) = L L'    (L lower)

    has the PLS factor as its leading block, so every piece is a
    log-determinant of a leading block C_m of C:

        ldL2 = log|C_q|,  ldL2 + ldRX2 = log|C_{q+p}|,  log pwrss = log|C| - log|C_{q+p}|,

    and d log|C_m| / d theta_i = tr(C_m^{-1} dC) = 2 sum over the positions
    (r, c) of theta_i of (K_m Lambda~'A)[c, r], with K_m = pad(C_m^{-1}) =
    sum over rows j < m of Li[j]' Li[j] (Li = L^{-1}). With X = Li (Lambda~'A)[:, :q],
    (K_m Lambda~'A)[c, r] = sum over rows j < m of Li[j, c] X[j, r]: the three
    derivatives are sums over three sets of rows of the products Li[:, c] X[:, r]
    at theta's positions only (O(Q x positions), no q x q product). This holds on the
    boundary too (no T_k^{-1} is needed).
    """

    kind = "dense"

    def __init__(self, cp: CrossProducts, reml: bool, tmap: ThetaMap | None = None, _A=None):
        super().__init__(cp, reml, tmap)
        self.A = np.ascontiguousarray(cp.dense() if _A is None else _A, dtype=float)
        q = cp.q
        self.q = q
        self._A_Z = self.A[:q, :]
        self._A_XZ = self.A[q:, :q]
        # A is symmetric: its transpose is A in Fortran order, which LAPACK factors in place
        self._A_F = self.A.T
        # theta's positions in Lambda, consecutive per theta element (sums over them by reduceat)
        self._t_idx, self._rows, self._cols = self.tmap.lambda_index
        self._starts = self.tmap.lambda_starts
        # rows of Li summed for d ldL2, d (ldL2 + ldRX2) - d ldL2 and d log pwrss
        self._segments = np.array([0, q, q + cp.p] if cp.p else [0, q])
        self._Lam = np.zeros((q, q))

    def with_cp(self, cp: CrossProducts) -> DenseEvaluator:
        """Other cross-products; when only their [X y] part differs (an offset, another
        response), the Z'WZ block of A is reused."""
        if cp.zz_diag is not self.cp.zz_diag or cp.zz_off is not self.cp.zz_off or cp.dims != self.cp.dims:
            return DenseEvaluator(cp, self.reml, self.tmap)
        q, p1 = self.q, cp.p + 1
        A = np.empty((q + p1, q + p1))
        A[:q, :q] = self.A[:q, :q]
        zxy = np.vstack([z.reshape(-1, p1) for z in cp.zxy]) if cp.zxy else np.zeros((0, p1))
        A[:q, q:] = zxy
        A[q:, :q] = zxy.T
        A[q:, q:] = cp.xyxy
        return DenseEvaluator(cp, self.reml, self.tmap, _A=A)

    def augmented_factor(self, theta):
        """L, the lower Cholesky factor of C(theta) ``(Q, Q)``, and Lambda'A[:q, :] ``(q, Q)``.

        The leading q x q block of L is the factor of M = Lambda'Z'WZ Lambda + I.
        """
        q = self.q
        Lam = self._Lam                      # every position of theta is rewritten
        Lam[self._rows, self._cols] = theta[self._t_idx]
        LA = Lam.T @ self._A_Z
        C = self._A_F.copy(order="F")
        # dpotrf reads the lower triangle only
        C[:q, :q] = LA[:, :q] @ Lam
        Q = C.shape[0]
        C.ravel(order="F")[:q * (Q + 1):Q + 1] += 1.0       # a view: C is Fortran-ordered
        C[q:, :q] = LA[:, q:].T
        L, info = sla.lapack.dpotrf(C, lower=1, clean=1, overwrite_a=1)
        if info != 0:
            raise np.linalg.LinAlgError("the augmented PLS system is not positive definite")
        return L, LA

    def _Li(self, L) -> np.ndarray:
        Li, info = sla.lapack.dtrtri(L, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("singular factor")
        return Li

    def _lam_t_a(self, LA) -> np.ndarray:
        """(Lambda~'A)[:, :q], the columns of Lambda~'A that dLambda~ touches, (Q, q)."""
        return np.concatenate([LA[:, :self.q], self._A_XZ])

    def _pieces(self, theta, grad: bool, modes: bool):
        q, p = self.q, self.p
        L, LA = self.augmented_factor(theta)
        ldL2 = 2.0 * float(np.log(L.diagonal()[:q]).sum())
        Lxx = L[q:, q:]
        u = None
        if modes:
            beta = _beta(Lxx, p)
            Qz = L[q:, :q]
            u = sla.solve_triangular(L[:q, :q].T, Qz[p] - Qz[:p].T @ beta, lower=False, check_finite=False)
            u = self._split(u)
        if not grad or self.n_theta == 0:
            return ldL2, Lxx, (np.zeros((3, 0)) if grad else None), u
        Li = self._Li(L)
        X = Li @ self._lam_t_a(LA)                                    # (Q, q)
        S = np.add.reduceat(Li[:, self._cols] * X[:, self._rows], self._segments, axis=0)
        parts = 2.0 * np.add.reduceat(S, self._starts, axis=1)
        if not p:                                                     # no X rows: d ldRX2 = 0
            parts = np.stack([parts[0], np.zeros(self.n_theta), parts[1]])
        parts[2] *= float(L[-1, -1]) ** 2                            # d log pwrss -> d pwrss
        return ldL2, Lxx, parts, u

    def _split(self, u: np.ndarray) -> dict:
        out, start = {}, 0
        for k, (pk, lk) in enumerate(self.cp.dims):
            out[k] = u[start:start + pk * lk]
            start += pk * lk
        return out

    def _vcov_jacobian(self, theta) -> np.ndarray:
        """d (R_X'R_X)^{-1} / d theta_i, from the X block of C_{q+p}^{-1}.

        With B = C_{q+p}^{-1}[:, X], d(C^{-1}) = -C^{-1} dC C^{-1} gives
        d S^{-1} = -(E_i + E_i') with E_i = B'(Lambda~'A) dLambda~_i B = sum
        over the positions (r, c) of theta_i of H[:, r] B[c, :]',
        H = B'(Lambda~'A)[:q+p, :q].
        """
        q, p = self.q, self.p
        qp = q + p
        L, LA = self.augmented_factor(theta)
        Li = self._Li(L)
        B = Li[q:qp, :qp].T @ Li[q:qp, q:qp]                        # (q + p, p)
        H = B.T @ self._lam_t_a(LA)[:qp]                            # (p, q)
        terms = H[:, self._rows].T[:, :, None] * B[self._cols][:, None, :]      # (positions, p, p)
        E = np.add.reduceat(terms, self._starts, axis=0) if terms.size else np.zeros((self.n_theta, p, p))
        return -(E + E.transpose(0, 2, 1))


class OneTermEvaluator(Evaluator):
    """One random-effects term: per-level p x p kernels (:class:`pymlm.linalg.single.SingleTerm`)."""

    kind = "single"
    interior_gradient = True

    def __init__(self, cp: CrossProducts, reml: bool, tmap: ThetaMap | None = None):
        super().__init__(cp, reml, tmap)
        if cp.n_terms != 1:
            raise ValueError(f"the one-term evaluator needs one random-effects term; the model has {cp.n_terms}")
        self.kernel = SingleTerm(cp.zz_diag[0], cp.zxy[0], cp.xyxy)

    def _pieces(self, theta, grad: bool, modes: bool):
        ldL2, Lxx, dT = self.kernel(self.tmap.template(0, theta), grad, rx=self.reml)
        return ldL2, Lxx, (None if dT is None else self.tmap.pack([dT])), None


class BlockedEvaluator(Evaluator):
    """The blocked Cholesky factor (:func:`pymlm.linalg.factorize`): any structure, any size."""

    kind = "blocked"
    interior_gradient = True

    def _pieces(self, theta, grad: bool, modes: bool):
        f = self.factor(theta)
        u = None
        parts = None
        if grad and all(np.min(np.abs(np.diag(T))) >= BOUNDARY_TOL for T in f.Ts):
            parts, u = self._parts(f)
        if modes and u is None:
            u = f.spherical_u()
        return f.logdet_L, f.L_XX, parts, u

    def _parts(self, f: PlsFactor):
        """The closed forms of the module header, term by term: with B_k the sum over levels of the
        diagonal blocks of M^{-1}, d ldL2 / dT_k = 2 [(l_k I - B_k) T_k^{-1}]' (as
        M^{-1} Lambda'A Lambda = I - M^{-1})."""
        cp = self.cp
        p = cp.p
        K = cp.n_terms
        traces = f.block_traces()
        beta = f.beta()
        u = f.spherical_u(beta)
        b = {k: (u[k].reshape(cp.dims[k][1], cp.dims[k][0]) @ f.Ts[k].T).reshape(-1, 1) for k in range(K)}
        Ab = zz_matmul(cp, b)
        rx = self.reml and p
        if rx:
            V = f.back_substitute({k: f._q_all(k)[:, :p] for k in range(K)})
            lamV = {k: (V[k].reshape(cp.dims[k][1], cp.dims[k][0], p).transpose(0, 2, 1) @ f.Ts[k].T)
                    .transpose(0, 2, 1).reshape(-1, p) for k in range(K)}
            AlamV = zz_matmul(cp, lamV)
            Linv = np.linalg.inv(f.L_XX[:p, :p])
            Sinv = Linv.T @ Linv
        ld, rxp, pw = [], [], []
        for k in range(K):
            pk, lk = cp.dims[k]
            T = f.Ts[k]
            zxy = cp.zxy[k].reshape(lk * pk, p + 1)
            rZ = zxy[:, p] - zxy[:, :p] @ beta - Ab[k][:, 0]
            pw.append(-2.0 * (rZ.reshape(lk, pk).T @ u[k].reshape(lk, pk)))
            ld.append(2.0 * ((lk * np.eye(pk) - traces[k]) @ np.linalg.inv(T)).T)
            if rx:
                F = zxy[:, :p] - AlamV[k]
                G = (F @ Sinv).reshape(lk, pk, p)
                rxp.append(-2.0 * np.einsum("lac,lbc->ab", G, V[k].reshape(lk, pk, p)))
        tm = self.tmap
        parts = np.stack([tm.pack(ld), tm.pack(rxp) if rx else np.full(tm.n_theta, 0.0 if self.reml else np.nan),
                          tm.pack(pw)])
        return parts, u


class ClusterEvaluator(Evaluator):
    r"""The data set made of c_i independent copies of cluster i (one random-effects term).

    A resample of clusters must treat the c copies of a cluster as c groups,
    each with its own random effects. Summing the cluster's blocks c times
    into one level is a different model (c replicates of its rows sharing
    one random effect), so the pieces are assembled from per-cluster terms
    with multiplicities. With template T, A_i = Z_i'WZ_i, z_i = Z_i'W[X y]
    (p_k x (p + 1)), M_i = I + T'A_iT and W_i = T M_i^{-1} T':

        [X y]'V^{-1}[X y] ~ sum_i c_i ((X y)_i'W(X y)_i - z_i' W_i z_i) = L_xy L_xy',
        ldL2 = sum_i c_i log|M_i|,  n = sum_i c_i n_i,  sum log w = sum_i c_i s_i.

    The derivatives in T (the module header's closed forms per level, times
    c_i), with r_i = z_i(y) - z_i(X) beta, E_i = M_i^{-1} T', u_i = E_i r_i:

        d ldL2 / dT = 2 sum_i c_i A_i T M_i^{-1},
        d pwrss / dT = -2 sum_i c_i (r_i - A_i T u_i) u_i',
        d ldRX2 / dT = -2 sum_i c_i F_i S^{-1} V_i',  V_i = E_i z_i(X),  F_i = z_i(X) - A_i T V_i.

    Everything is a batched p_k x p_k operation over the m distinct clusters or
    one Gram product, so an evaluation costs O(m), whatever sum_i c_i is, and
    nothing needs T^{-1} (the boundary is handled). Non-integer c weight each
    cluster's log-likelihood (a BLB subset's fit uses c = N / b).

    Parameters
    ----------
    blocks : ClusterCrossProducts
    counts : ndarray (m,)
        Multiplicities (>= 0) of the clusters ``clusters``.
    clusters : ndarray of int (m,)
    reml : bool
    tmap : ThetaMap
        The model's theta map (one term).
    """

    kind = "clusters"

    def __init__(self, blocks: ClusterCrossProducts, counts, clusters, reml: bool, tmap: ThetaMap):
        c = np.asarray(counts, dtype=float)
        idx = np.asarray(clusters)
        keep = c > 0
        self.c, idx = c[keep], idx[keep]
        self.A = blocks.zz[idx]                                        # (m, p_k, p_k)
        self.z = blocks.zxy[idx]                                       # (m, p_k, p + 1)
        self.xyxy = np.einsum("l,lij->ij", self.c, blocks.xyxy[idx])
        self.tmap = tmap
        self._constants(reml, self.c @ blocks.n[idx], blocks.p, self.c @ blocks.sum_log_w[idx])
        self.pk = pk = self.A.shape[1]
        m, p = self.z.shape[0], self.p
        # constants of every evaluation: the count-weighted z's, the X and y parts, I, T's positions
        self._cz = (self.z * self.c[:, None, None]).reshape(m * pk, p + 1)
        self._zx, self._zy = self.z[:, :, :p], self.z[:, :, p]
        self._eye = np.eye(pk)
        rows, cols = tmap.positions[0]
        self._rows, self._cols = rows, cols
        self._flat = rows * pk + cols

    @property
    def cp(self):
        raise AttributeError("a cluster resample has per-cluster blocks, not one CrossProducts")

    def with_cp(self, cp):
        raise NotImplementedError("a cluster resample is rebuilt from its blocks and counts")

    def factor(self, theta):
        raise NotImplementedError("a cluster resample has no blocked factor")

    def _pieces(self, theta, grad: bool, modes: bool):
        pk, p, c = self.pk, self.p, self.c
        T = np.zeros(pk * pk)
        T[self._flat] = theta
        T = T.reshape(pk, pk)                                          # the template (one term)
        AT = self.A @ T                                                # (m, p_k, p_k)
        M = T.T @ AT + self._eye                                       # I + T'A T
        L = np.linalg.cholesky(M)
        Minv = np.linalg.inv(M)
        E = Minv @ T.T                                                 # M^{-1} T'
        W = T @ E                                                      # T M^{-1} T'
        m = self.z.shape[0]
        gram = self._cz.T @ (W @ self.z).reshape(m * pk, p + 1)
        Lxy = np.linalg.cholesky(self.xyxy - 0.5 * (gram + gram.T))
        ldL2 = 2.0 * float(c @ np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1))
        if not grad and not modes:
            return ldL2, Lxy, None, None
        Li = tri_inv(Lxy[:p, :p])
        beta = Li.T @ Lxy[p, :p]
        zx = self._zx
        r = self._zy - zx @ beta                                       # (m, p_k)
        u = np.einsum("iab,ib->ia", E, r)
        if not grad:
            return ldL2, Lxy, None, u
        rZ = r - np.einsum("iab,ib->ia", AT, u)
        dT = np.empty((3, pk, pk))
        dT[0] = 2.0 * (c @ (AT @ Minv).reshape(m, pk * pk)).reshape(pk, pk)
        dT[2] = -2.0 * ((rZ * c[:, None]).T @ u)
        if not self.reml:
            dT[1] = np.nan
        elif p:
            V = E @ zx                                                 # (m, p_k, p)
            F = zx - AT @ V
            FS = (F @ (Li.T @ Li)) * c[:, None, None]
            dT[1] = -2.0 * np.einsum("iax,ibx->ab", FS, V)
        else:
            dT[1] = 0.0
        return ldL2, Lxy, dT[:, self._rows, self._cols], u


KINDS = ("auto", "dense", "single", "blocked")


def evaluator_for(cp: CrossProducts, reml: bool, tmap: ThetaMap | None = None, kind: str = "auto") -> Evaluator:
    """The evaluator for a model: dense for q <= :data:`DENSE_MAX_Q`, else the one-term
    kernels for one random term, else the blocked factor. All give the same numbers.

    Parameters
    ----------
    cp : CrossProducts
    reml : bool
    tmap : ThetaMap, optional
        Default: full lower-triangular templates.
    kind : {"auto", "dense", "single", "blocked"}

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> ev = evaluator_for(m.crossprod, reml=True, tmap=m.problem.tmap)
    >>> ev.kind, round(ev(m.theta), 4) == round(m.reml_criterion, 4)
    ('dense', True)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be 'auto', 'dense', 'single' or 'blocked'; got {kind!r}")
    if kind == "dense" or (kind == "auto" and cp.q <= DENSE_MAX_Q):
        return DenseEvaluator(cp, reml, tmap)
    if cp.n_terms == 1 and kind in ("auto", "single"):
        return OneTermEvaluator(cp, reml, tmap)
    return BlockedEvaluator(cp, reml, tmap)


def single_threaded():
    """Small dense algebra runs faster on one BLAS thread (see :mod:`pymlm.linalg._threads`)."""
    return blas_threads(1)
