"""Linear mixed models by penalized least squares (lme4's method).

The profiled deviance is a function of theta alone (Bates et al. 2015,
eqs. 34 and 41):

    ML:    d(theta)   = ldL2 + n (1 + log(2 pi r2 / n))            - sum log w
    REML:  d_R(theta) = ldL2 + ldRX2 + (n - p)(1 + log(2 pi r2 / (n - p))) - sum log w

where r2 is the penalized weighted residual sum of squares at the
conditional modes and ``sum log w`` the log prior weights. Each evaluation
factors the PLS system from the :class:`~pymlm.crossprod.CrossProducts`
(never the n rows); the optimizer driver in :mod:`pymlm.fit._optimize`
minimizes it over theta within lme4's bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..crossprod import CrossProducts
from ..linalg import PlsFactor, PlsStructure, ThetaMap, factorize, plan
from ..linalg._deviance import profiled_deviance
from ..linalg._threads import blas_threads
from ..linalg.cholesky import zz_matmul
from ..linalg.dense import DENSE_MAX_Q, DenseSystem
from ..linalg.single import SingleTerm
from ._optimize import OptResult, check_convergence, minimize_theta

__all__ = ["LmmObjective", "LmmFit", "fit_lmm", "deviance_from_factor"]



def deviance_from_factor(factor: PlsFactor, cp: CrossProducts, reml: bool) -> float:
    """The profiled (REML) deviance from a factor at theta (lme4's ``Laplace``)."""
    return profiled_deviance(factor.logdet_L, factor.L_XX, cp.n, cp.sum_log_w, reml)[0]


@dataclass(frozen=True, eq=False)
class LmmObjective:
    """The profiled deviance as a function of theta.

    Parameters
    ----------
    cp : CrossProducts
    reml : bool
    tmap : ThetaMap, optional
        Where theta's elements go in the templates (default: full lower triangles).
    kernel : {"auto", "dense", "single", "blocked"}
        How to evaluate: one dense Cholesky (small q; ``"auto"`` picks it for
        q <= 300), the one-term kernel, or the blocked factor. All give the
        same numbers.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> obj = LmmObjective(m.crossprod, reml=True)
    >>> round(obj(m.theta), 4) == round(m.reml_criterion, 4)
    True
    """

    cp: CrossProducts
    reml: bool
    tmap: ThetaMap | None = None
    kernel: str = "auto"
    struct: PlsStructure = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "struct", plan(self.cp, self.tmap))
        single = dense = None
        cp = self.cp
        if self.kernel not in ("auto", "dense", "single", "blocked"):
            raise ValueError(f"kernel must be 'auto', 'dense', 'single' or 'blocked'; got {self.kernel!r}")
        if self.kernel == "dense" or (self.kernel == "auto" and cp.q <= DENSE_MAX_Q):
            dense = DenseSystem(cp, self.struct.tmap, self.reml)
        elif cp.n_terms == 1 and self.kernel in ("auto", "single"):
            single = SingleTerm(cp.zz_diag[0], cp.zxy[0], cp.xyxy, cp.n, cp.sum_log_w, self.reml)
        object.__setattr__(self, "_single_kernel", single)
        object.__setattr__(self, "_dense_kernel", dense)

    @property
    def n_theta(self) -> int:
        return self.struct.n_theta

    def factor(self, theta) -> PlsFactor:
        return factorize(self.struct, np.asarray(theta, dtype=float))

    def _single(self, theta, grad: bool):
        tmap = self.struct.tmap
        value, dT = self._single_kernel(tmap.template(0, theta), grad)
        if dT is None:
            return value, None
        return value, tmap.pack([dT])

    def __call__(self, theta) -> float:
        try:
            if self._dense_kernel is not None:
                value = self._dense_kernel(theta)[0]
            elif self._single_kernel is not None:
                value = self._single(theta, False)[0]
            else:
                value = deviance_from_factor(self.factor(theta), self.cp, self.reml)
        except np.linalg.LinAlgError:
            return np.inf
        return float(value) if np.isfinite(value) else np.inf

    def value_and_grad(self, theta):
        """The deviance and its analytic gradient in theta.

        Returns
        -------
        value : float
        grad : ndarray (n_theta,) or None
            ``None`` where a template T_k is singular (a theta on its
            boundary), where the closed form below does not apply.

        Notes
        -----
        With M = Lambda'Z'WZ Lambda + I, r = y - X beta - Z b the residual
        at the conditional modes, u the spherical modes, and dLambda the
        derivative of Lambda in one element (a, b) of T_k:

        - d log|M| = 2 tr(M^{-1} Lambda'A dLambda) = 2 [(l_k I - B_k) T_k^{-1}]_{ba},
          B_k the sum over levels of the diagonal blocks of M^{-1}, because
          M^{-1} Lambda'A Lambda = I - M^{-1};
        - d r2 = -2 (Z'Wr)' dLambda u (envelope theorem: r2 is a minimum
          over beta and u);
        - REML: d log|R_X'R_X| = -2 tr(S^{-1} F' dLambda V) with
          V = M^{-1} Lambda'Z'WX, F = Z'WX - Z'WZ Lambda V, S = R_X'R_X.
        """
        value, g = self._value_and_grad_at(theta)
        if g is None and np.isfinite(value):
            # On the boundary T_k^{-1} does not exist; the gradient is
            # continuous, so take it at a point 1e-8 inside.
            inside = np.array(theta, dtype=float)
            small = self.struct.tmap.is_diag & (np.abs(inside) < 1e-10)
            inside[small] = 1e-8
            _, g = self._value_and_grad_at(inside)
        return value, g

    def _value_and_grad_at(self, theta):
        try:
            if self._dense_kernel is not None:
                value, g = self._dense_kernel(theta, True)
            elif self._single_kernel is not None:
                value, g = self._single(theta, True)
            else:
                f = self.factor(theta)
                value = float(deviance_from_factor(f, self.cp, self.reml))
                g = None
                if np.isfinite(value) and all(np.min(np.abs(np.diag(T))) >= 1e-10 for T in f.Ts):
                    g = _gradient(self, f)
        except np.linalg.LinAlgError:
            return np.inf, None
        if not np.isfinite(value):
            return np.inf, None
        return float(value), g


def _gradient(obj: "LmmObjective", f: PlsFactor) -> np.ndarray:
    cp = obj.cp
    p = cp.p
    K = cp.n_terms
    traces = f.block_traces()
    beta = f.beta()
    u = f.spherical_u(beta)
    b = {k: f.Ts[k].__matmul__(u[k].reshape(cp.dims[k][1], cp.dims[k][0]).T).T.reshape(-1, 1) for k in range(K)}
    Ab = zz_matmul(cp, b)
    pwrss = f.pwrss
    nu = (cp.n - p) if obj.reml else cp.n
    if obj.reml and p:
        V = f.back_substitute({k: f._q_all(k)[:, :p] for k in range(K)})
        lamV = {k: (V[k].reshape(cp.dims[k][1], cp.dims[k][0], p).transpose(0, 2, 1) @ f.Ts[k].T)
                .transpose(0, 2, 1).reshape(-1, p) for k in range(K)}
        AlamV = zz_matmul(cp, lamV)
        Lx = f.L_XX[:p, :p]
        Linv = np.linalg.inv(Lx)
        Sinv = Linv.T @ Linv
    per_term = []
    for k in range(K):
        pk, lk = cp.dims[k]
        T = f.Ts[k]
        zxy = cp.zxy[k].reshape(lk * pk, p + 1)
        rZ = zxy[:, p] - zxy[:, :p] @ beta - Ab[k][:, 0]
        g_pw = -2.0 * (rZ.reshape(lk, pk).T @ u[k].reshape(lk, pk))
        g_ld = 2.0 * ((lk * np.eye(pk) - traces[k]) @ np.linalg.inv(T)).T
        g = g_ld + nu * g_pw / pwrss
        if obj.reml and p:
            F = zxy[:, :p] - AlamV[k]
            G = (F @ Sinv).reshape(lk, pk, p)
            g = g - 2.0 * np.einsum("lac,lbc->ab", G, V[k].reshape(lk, pk, p))
        per_term.append(g)
    return obj.struct.tmap.pack(per_term)


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
    """

    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    deviance: float
    factor: PlsFactor
    u: dict
    reml: bool
    opt: OptResult
    objective: LmmObjective

    @property
    def cp(self) -> CrossProducts:
        return self.objective.cp

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


def fit_from_theta(objective: LmmObjective, theta: np.ndarray, opt: OptResult) -> LmmFit:
    """Assemble the fit at a given theta."""
    cp = objective.cp
    f = objective.factor(theta)
    beta = f.beta()
    u = f.spherical_u(beta)
    denom = cp.n - cp.p if objective.reml else cp.n
    sigma = float(np.sqrt(f.pwrss / denom))
    dev = deviance_from_factor(f, cp, objective.reml)
    return LmmFit(np.asarray(theta, dtype=float), beta, sigma, float(dev), f, u, objective.reml, opt, objective)


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
        See :class:`LmmObjective`.

    Returns
    -------
    LmmFit
    """
    tmap = ThetaMap.default(cp.dims) if tmap is None else tmap
    objective = LmmObjective(cp, reml, tmap, kernel)
    lower = tmap.lower
    if theta0 is None or (isinstance(theta0, str) and theta0 == "auto"):
        theta0 = moment_start(cp, lower)
    elif isinstance(theta0, str) and theta0 == "lme4":
        theta0 = np.where(np.isfinite(lower), 1.0, 0.0)
    with blas_threads(1):
        opt = minimize_theta(objective, np.asarray(theta0, dtype=float), lower, method=optimizer, **options)
        if check_conv:
            opt = check_convergence(objective, opt, lower)
        return fit_from_theta(objective, opt.x, opt)
