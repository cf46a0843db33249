"""Generalized linear mixed models as lme4's ``glmer`` fits them: PIRLS, Laplace, adaptive quadrature.

The model: y_i | u ~ family(mu_i), g(mu_i) = eta_i = o_i + x_i'beta + z_i'Lambda_theta u,
u ~ N(0, I_q). Everything is on lme4's scale (Bates et al. 2015; lme4's
``glmer`` vignette):

PIRLS
    At (theta, beta) the conditional modes u-hat minimize the penalized
    deviance sum_i d_i(y_i, mu_i) + |u|^2 (d_i the squared deviance
    residuals). Each iteration forms the working weights w = a (dmu/deta)^2 / V(mu)
    (a the prior weights) and the working response z = eta - o + (y - mu) / (dmu/deta),
    accumulates the weighted cross-products of [Z X z] (:func:`pymlm.crossprod.cross_products`),
    factors the PLS system on the blocked factor (:func:`pymlm.linalg.factorize`)
    and solves for u (beta fixed) or for (beta, u) jointly (lme4's first
    stage, nAGQ = 0). A step that does not lower the penalized deviance is
    halved, up to ten times; if none does, the evaluation returns ``inf`` and
    a flag (the fit then ends with a clear :class:`~pymlm.errors.DataError`
    or warning, never numpy's error). The modes of the previous evaluation
    start the next one.
Laplace (nAGQ = 1)
    -2 log L(theta, beta) ~ aic(mu-hat) + |u-hat|^2 + log|L|^2, with ``aic``
    the family's -2 log-likelihood with every constant (R's ``family$aic``,
    e.g. the binomial log-choose terms) and log|L|^2 = log|Lambda'Z'WZ Lambda + I|
    at the modes: the value lme4 reports as -2 logLik, on the absolute scale.
Adaptive Gauss-Hermite quadrature (nAGQ > 1, one random term of one grouping factor)
    Groups are independent; per group j with mode u_j and sd_j = M_jj^{-1/2},
    nodes z_k and weights w_k of the standard normal (sum w_k = 1),

        -2 log L_j = c_j + D_j(u_j) - 2 log(sd_j sum_k w_k exp(-(D_j(u_j + sd_j z_k) - D_j(u_j)) / 2 + z_k^2 / 2)),

    D_j(u) the group's summed deviance residuals plus u^2 and c_j its
    saturated constant, -2 log p(y_j | mu = y_j). lme4 reports the sum
    without the c_j (lme4 issue 161): ``objective_lme4``; ``minus2loglik``
    adds them back, so it is comparable with the Laplace value (at nAGQ = 1
    the formula is the Laplace one). A vector term (d = 2 or 3 coefficients
    per level, beyond lme4) uses the tensor-product rule, nAGQ^d points per
    group placed by the Cholesky factor of the conditional precision M_j
    (:meth:`GlmmObjective.agq_terms`).
One random term at fixed beta
    The levels are independent: PIRLS runs on every level at once by
    per-level bincounts and batched p_k x p_k algebra
    (:func:`pirls_one_term`), with a Newton stop for canonical links;
    stage 1 is then a single PIRLS at theta's start (the analytic gradient
    makes stage 2 quick from there).
Separation
    A binomial fit with fitted probabilities numerically 0 or 1, or one that
    fails, is checked for complete or quasi-complete separation by a linear
    programme (:func:`separated_columns`), which names the fixed effects.

Optimization (:func:`fit_glmm`) follows lme4: stage 1 over theta with beta
inside PIRLS (a rough start; nAGQ = 0 is this stage alone, searched to the
end), stage 2 over (theta, beta), both through the one driver
(:mod:`pymlm.fit._optimize`) with a quasi-Newton search (L-BFGS-B). Stage 2
uses the analytic gradient of the Laplace objective for the binomial and
Poisson families with their canonical links (:func:`laplace_gradient`: per
level for one random term, with M^{-1} dense for several), else forward
differences of the objective, whose modes PIRLS converges to rounding.
Standard errors come from the Hessian of the objective in (theta, beta) at
the optimum by default (central differences of the analytic gradient, or
of the objective; glmmTMB's exact-Hessian values to 1e-6 on the reference
cases), or from lme4's R_X approximation (``se="RX"``). ``glmer.nb``'s
negative binomial shape is an outer search (:func:`fit_glmm_nb`).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..crossprod import CrossProducts, cross_products, term_z
from ..errors import (
    ConvergenceWarning,
    DataError,
    OptionError,
    PymlmWarning,
    SingularFitWarning,
    warn,
)
from ..linalg import PlsFactor, ThetaMap, factorize, plan
from ..linalg._threads import blas_threads
from ._optimize import (
    OptResult,
    check_convergence,
    escape_bound,
    fd_gradient_hessian,
    lift_start,
    minimize_1d,
    minimize_theta,
)
from .families import GlmFamily, negative_binomial, resolve_family
from .terms import TermMerge

__all__ = ["GlmmFit", "GlmmObjective", "GlmmProblem", "PirlsResult", "fit_glmm", "fit_glmm_nb", "gauss_hermite",
           "pirls", "pirls_one_term", "separated_columns"]

MAX_AGQ = 25
# tensor-product quadrature: random effects of one grouping factor, at most this many per level
MAX_AGQ_DIM = 3
AGQ_TERMS_MESSAGE = ("nAGQ = {nAGQ} (adaptive Gauss-Hermite quadrature) needs the random effects of a single grouping "
                     "factor with at most 3 coefficients, such as (1 | g) or (1 + x | g); use nAGQ = 1 (Laplace) "
                     "or 0 for this model")
# PIRLS: iterations, step halvings, convergence on the largest change of eta
PIRLS_MAXIT, PIRLS_HALVINGS, PIRLS_TOL = 200, 10, 1e-12
# a full Newton step (canonical link) this small ends PIRLS at fixed beta (see pirls_one_term)
NEWTON_TOL = 1e-7


def gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the n-point Gauss-Hermite rule for the standard normal (lme4's ``GHrule``).

    The weights sum to 1: sum_k w_k f(z_k) ~ E f(Z), Z ~ N(0, 1).
    """
    z, w = np.polynomial.hermite_e.hermegauss(int(n))
    return z, w / np.sqrt(2.0 * np.pi)


@dataclass(frozen=True, eq=False)
class GlmmProblem:
    """The rows of a GLMM, as the engine needs them (no pandas, no formula).

    Attributes
    ----------
    X : ndarray (n, p)
    y : ndarray (n,)
        Response as the family uses it (binomial: proportion of successes).
    prior_weights : ndarray (n,)
        Binomial: trials times user weights; else the user's weights (or 1).
    trials : ndarray (n,) or None
        Binomial trials (R's ``n``, for the log-choose constants).
    offset : ndarray (n,)
    codes : tuple of ndarray (n,)
        Level of each row per fitted random term.
    Zx : tuple of ndarray (n, p_k)
        Raw model matrix of each fitted term.
    tmap : ThetaMap
    family : GlmFamily
    """

    X: np.ndarray
    y: np.ndarray
    prior_weights: np.ndarray
    trials: np.ndarray | None
    offset: np.ndarray
    codes: tuple
    Zx: tuple
    tmap: ThetaMap
    family: GlmFamily
    chunk_size: int = 500_000

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    def p(self) -> int:
        return int(self.X.shape[1])

    @property
    def q(self) -> int:
        return self.tmap.q

    @property
    def levels(self) -> tuple:
        return tuple(lk for _, lk in self.tmap.dims)

    def split_u(self, u: np.ndarray) -> list[np.ndarray]:
        """u ``(q,)`` as per-term ``(l_k, p_k)`` arrays (level-major)."""
        out, start = [], 0
        for pk, lk in self.tmap.dims:
            out.append(u[start:start + pk * lk].reshape(lk, pk))
            start += pk * lk
        return out

    def b_terms(self, theta, u) -> list[np.ndarray]:
        """b = Lambda u per term, ``(l_k, p_k)``."""
        return [uk @ T.T for uk, T in zip(self.split_u(u), self.tmap.templates(theta))]

    @cached_property
    def _ZxT(self) -> tuple:
        return tuple(np.ascontiguousarray(Zk.T) for Zk in self.Zx)

    def eta(self, theta, beta, u) -> np.ndarray:
        """The linear predictor o + X beta + Z Lambda u, ``(n,)``."""
        eta = self.offset + self.X @ beta
        for bk, ck, ZkT in zip(self.b_terms(theta, u), self.codes, self._ZxT):
            for j in range(ZkT.shape[0]):          # p_k columns, each a gather and a product
                eta += ZkT[j] * np.ascontiguousarray(bk[:, j])[ck]
        return eta

    def cross_products(self, eta, mu):
        """Weighted cross-products of [Z X z] at eta: w = a (dmu/deta)^2 / V(mu), z the working response."""
        fam = self.family
        d = fam.mu_eta(eta)
        w = self.prior_weights * d * d / fam.variance(mu)
        z = eta - self.offset + (self.y - mu) / d
        if self._one_term is not None:
            return self._one_term(w, z)
        return cross_products(self.codes, self.Zx, self.levels, self.X, z, weights=w, chunk_size=self.chunk_size)

    @cached_property
    def Z(self) -> sp.csr_matrix:
        """Z of the fitted terms, ``(n, q)`` sparse, term after term, level-major."""
        return sp.hstack([term_z(ck, Zk, lk) for ck, Zk, lk in zip(self.codes, self.Zx, self.levels)], format="csr")

    @cached_property
    def _one_term(self):
        return _OneTermBlocks(self.codes[0], self.Zx[0], self.X, self.levels[0]) if len(self.codes) == 1 else None

    @cached_property
    def _binary(self) -> bool:
        return self.family.kind == "binomial" and bool(np.all((self.y == 0.0) | (self.y == 1.0)))

    @cached_property
    def _devres_parts(self):
        """Binomial and Poisson deviance residuals as c_i + a_i (k1_i log mu_i + k2_i g(mu_i)): the parts that
        do not depend on mu, computed once (binomial: k1 = -2y, k2 = -2(1 - y), g = log(1 - mu);
        Poisson: k1 = -2y, k2 = 2, g = mu)."""
        y, a = self.y, self.prior_weights
        with np.errstate(divide="ignore", invalid="ignore"):
            ylogy = np.where(y > 0, y * np.log(y), 0.0)
            if self.family.kind == "binomial":
                c = 2.0 * a * (ylogy + np.where(y < 1, (1.0 - y) * np.log1p(-y), 0.0))
                return c, -2.0 * a * y, -2.0 * a * (1.0 - y)
            if self.family.kind == "poisson":
                return 2.0 * a * (ylogy - y), -2.0 * a * y, 2.0 * a
        return None

    def devres(self, mu) -> np.ndarray:
        """Squared deviance residuals, ``(n,)`` (a 0/1 response: -2 a log of the fitted probability)."""
        if self._binary:
            return -2.0 * self.prior_weights * np.log(np.where(self.y > 0.5, mu, 1.0 - mu))
        parts = self._devres_parts
        if parts is not None:
            c, k1, k2 = parts
            g = np.log1p(-mu) if self.family.kind == "binomial" else mu
            return c + k1 * np.log(mu) + k2 * g
        return self.family.dev_resid(self.y, mu, self.prior_weights)

    @cached_property
    def _aic_minus_deviance(self) -> float:
        """aic(mu) - deviance(mu), which does not depend on mu without a dispersion (binomial, Poisson, NB)."""
        mu = self.family.start_mu(self.y, self.prior_weights)
        dev = float(np.sum(self.family.dev_resid(self.y, mu, self.prior_weights)))
        return self.family.minus2loglik(self.y, mu, self.prior_weights, self.trials, dev) - dev

    def minus2loglik_cond(self, mu, dev: float | None = None) -> float:
        """The family's -2 log p(y | u) with every constant (R's ``aic``)."""
        if dev is not None and not self.family.has_dispersion:
            return dev + self._aic_minus_deviance
        return self.family.minus2loglik(self.y, mu, self.prior_weights, self.trials, dev)

    def start_eta(self) -> np.ndarray:
        """R's start: the link of ``mustart`` (the offset is part of it)."""
        return self.family.link(self.family.start_mu(self.y, self.prior_weights))


class _OneTermBlocks:
    """The cross-products of a one-term model at new weights, by one sparse product per iteration.

    The row products z_i z_i' and z_i x_i' do not change between PIRLS
    iterations, only the weights and the working response do; a level
    indicator (l_k x n, sparse) sums their weighted values per level.
    The blocks are those of :func:`pymlm.crossprod.cross_products`.
    """

    def __init__(self, codes, Zk, X, lk):
        n, pk = Zk.shape
        p = X.shape[1]
        self.dims, self.p, self.n, self.pk, self.lk = ((pk, int(lk)),), p, n, pk, int(lk)
        self.ind = sp.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(int(lk), n))
        # row products as rows of a (m, n) array: the weighting then streams through memory
        self.fixed = np.ascontiguousarray(np.vstack([np.einsum("ia,ib->abi", Zk, Zk).reshape(pk * pk, n),
                                                     np.einsum("ia,ib->abi", Zk, X).reshape(pk * p, n)]))
        self.ZkT = np.ascontiguousarray(Zk.T)
        self.XyT = np.empty((p + 1, n))
        self.XyT[:p] = X.T
        self.cols = np.empty((self.fixed.shape[0] + pk, n))

    def __call__(self, w, z) -> CrossProducts:
        pk, p, lk = self.pk, self.p, self.lk
        m = self.fixed.shape[0]
        cols = self.cols
        np.multiply(self.fixed, w, out=cols[:m])
        np.multiply(self.ZkT, w * z, out=cols[m:])
        S = np.asarray(self.ind @ cols.T)
        zz = np.ascontiguousarray(S[:, :pk * pk]).reshape(lk, pk, pk)
        zxy = np.empty((lk, pk, p + 1))
        zxy[:, :, :p] = S[:, pk * pk:pk * pk + pk * p].reshape(lk, pk, p)
        zxy[:, :, p] = S[:, m:]
        self.XyT[p] = z
        xyxy = (self.XyT * w) @ self.XyT.T
        return CrossProducts(self.dims, p, float(self.n), 0.0, (zz,), {}, {}, (zxy,), xyxy)


@dataclass(frozen=True, eq=False)
class PirlsResult:
    """The conditional modes at (theta, beta) and the pieces of the objective there.

    Attributes
    ----------
    theta, beta : ndarray
        beta is the PIRLS estimate when it was free (stage 1).
    u : ndarray (q,)
    eta, mu : ndarray (n,)
    drsum : float
        Sum of squared deviance residuals (lme4's ``deviance(m)``).
    ussq : float
        |u|^2.
    ldL2 : float
        log|Lambda'Z'WZ Lambda + I| at the modes.
    factor : PlsFactor
        The factor at the final weights (R_X for ``se="RX"``, conditional variances).
    ok : bool
        False when step-halving failed or the iterations ran out; the
        objective is then ``inf``.
    iterations : int
    message : str
    zz, minv : ndarray (l, p_k, p_k) or None
        One random term at fixed beta (:func:`pirls_one_term`, ``factor`` None):
        the per-level blocks Z_l'WZ_l and M_l^{-1} of the last factorization.
    weights : ndarray (n,) or None
        The working weights of that factorization.
    """

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    drsum: float
    ussq: float
    ldL2: float
    factor: PlsFactor | None
    ok: bool
    iterations: int
    message: str = ""
    zz: np.ndarray | None = None
    minv: np.ndarray | None = None
    weights: np.ndarray | None = None

    @property
    def pdev(self) -> float:
        return self.drsum + self.ussq


def _flat(u: dict, K: int) -> np.ndarray:
    return np.concatenate([np.asarray(u[k]).ravel() for k in range(K)]) if K else np.zeros(0)


def pirls(problem: GlmmProblem, theta, beta, u0=None, free_beta: bool = False, eta0=None) -> PirlsResult:
    """Penalized iteratively reweighted least squares for the conditional modes.

    Parameters
    ----------
    problem : GlmmProblem
    theta : ndarray (n_theta,)
    beta : ndarray (p,)
        Fixed effects (the start when ``free_beta``).
    u0 : ndarray (q,), optional
        Start of the modes (default 0): the previous evaluation's, for a warm start.
    free_beta : bool
        Update beta together with u (lme4's stage 1 and nAGQ = 0).
    eta0 : ndarray (n,), optional
        A start for eta instead of (beta, u0) (the family's ``mustart``,
        used by the very first evaluation; needs ``free_beta``).

    Returns
    -------
    PirlsResult
        Never raises for a failed iteration: ``ok`` is False and the message says why.
    """
    theta = np.asarray(theta, dtype=float)
    beta = np.asarray(beta, dtype=float).copy()
    u = np.zeros(problem.q) if u0 is None else np.asarray(u0, dtype=float).copy()
    K = problem.tmap.n_terms
    fam = problem.family
    struct_cache = None
    first_eta = eta0 is not None and free_beta
    with np.errstate(all="ignore"):
        eta = np.asarray(eta0, dtype=float) if first_eta else problem.eta(theta, beta, u)
        mu = fam.linkinv(eta)
        pdev = float(np.sum(problem.devres(mu))) + (0.0 if first_eta else float(u @ u))
    f = None
    ldL2 = np.nan
    message = ""
    ok = False
    it = 0
    last_change = np.inf
    with np.errstate(all="ignore"):
        for it in range(1, PIRLS_MAXIT + 1):
            cp = problem.cross_products(eta, mu)
            struct_cache = plan(cp, problem.tmap) if struct_cache is None else _replan(struct_cache, cp)
            try:
                f = factorize(struct_cache, theta)
            except (ValueError, np.linalg.LinAlgError):
                message = "the PIRLS system is not positive definite (collinear fixed effects or extreme weights)"
                break
            ldL2 = f.logdet_L
            try:
                beta_new = f.beta() if free_beta else beta
                u_new = _flat(f.spherical_u(beta_new), K)
            except (ValueError, np.linalg.LinAlgError):      # scipy's solves refuse non-finite factors
                message = "PIRLS produced non-finite modes"
                break
            if not (np.all(np.isfinite(u_new)) and np.all(np.isfinite(beta_new))):
                message = "PIRLS produced non-finite modes"
                break
            if first_eta:
                # the start was eta itself, not (beta, u): take the whole step
                first_eta = False
                beta, u = beta_new, u_new
                eta = problem.eta(theta, beta, u)
                mu = fam.linkinv(eta)
                pdev = float(np.sum(problem.devres(mu))) + float(u @ u)
                continue
            step_ok = False
            for h in range(PIRLS_HALVINGS + 1):
                t = 0.5 ** h
                ut = u + t * (u_new - u)
                bt = beta + t * (beta_new - beta)
                eta_t = problem.eta(theta, bt, ut)
                mu_t = fam.linkinv(eta_t)
                pdev_t = float(np.sum(problem.devres(mu_t))) + float(ut @ ut)
                if np.isfinite(pdev_t) and pdev_t <= pdev + 1e-11 * (1.0 + abs(pdev)):
                    step_ok = True
                    break
            if not step_ok:
                message = (f"PIRLS step-halvings failed to reduce the penalized deviance ({PIRLS_HALVINGS} halvings) "
                           "at this theta")
                break
            change = float(np.max(np.abs(eta_t - eta))) if problem.n else 0.0
            u, beta, eta, mu, pdev = ut, bt, eta_t, mu_t, pdev_t
            # the objective's log-determinant moves to first order with the modes, so they are
            # converged to rounding (Newton's steps square: one iteration more than 1e-6 needs);
            # a change that stops shrinking below 1e-8 is rounding
            if change < PIRLS_TOL * (1.0 + float(np.max(np.abs(eta), initial=0.0))) or (
                    change < 1e-8 and change >= 0.5 * last_change):
                ok = True
                break
            last_change = change
        else:
            message = f"PIRLS did not converge in {PIRLS_MAXIT} iterations"
        drsum = float(np.sum(problem.devres(mu)))
    return PirlsResult(theta, beta, u, eta, mu, drsum, float(u @ u), float(ldL2), f, ok, it, message)


def pirls_one_term(problem: GlmmProblem, theta, beta, u0=None) -> PirlsResult:
    """PIRLS for the modes of a one-term model at fixed beta, every level at once.

    With one random term and beta fixed the levels are independent: M is
    block diagonal with blocks M_l = I + T'A_l T (A_l = Z_l'WZ_l, T the
    term's template), and each iteration solves M_l u_l = T'Z_l'W z_l for
    all levels by batched p_k x p_k algebra, with z the working response of
    the random part. The per-level sums are bincounts over the rows; nothing
    of size (n, p) is formed. Step-halving and convergence are those of
    :func:`pirls`, whose values this equals to rounding.

    Returns
    -------
    PirlsResult
        ``factor`` is None; ``zz``, ``minv`` and ``weights`` carry the blocks
        the gradient, the quadrature and the standard errors need.
    """
    theta = np.asarray(theta, dtype=float)
    beta = np.asarray(beta, dtype=float)
    fam = problem.family
    pk, lk = problem.tmap.dims[0]
    T = problem.tmap.template(0, theta)
    codes, Zk = problem.codes[0], problem.Zx[0]
    eta_f = problem.offset + problem.X @ beta
    u = np.zeros((lk, pk)) if u0 is None else np.array(u0, dtype=float).reshape(lk, pk)
    pairs = [(a, b) for a in range(pk) for b in range(a, pk)]
    ZZ = [Zk[:, a] * Zk[:, b] for a, b in pairs] if pk > 1 else None
    z0 = Zk[:, 0]
    ones = bool(np.all(z0 == 1.0)) if pk == 1 else False
    quadratic = fam.canonical
    canon = fam.kind if quadratic and fam.kind in ("binomial", "poisson") else ""

    def eta_of(uu):
        bb = uu @ T.T
        if pk == 1:
            return eta_f + (bb[codes, 0] if ones else z0 * bb[codes, 0])
        out = eta_f + Zk[:, 0] * bb[codes, 0]
        for a in range(1, pk):          # p_k columns, each a gather
            out += Zk[:, a] * bb[codes, a]
        return out

    def pdev_of(mu, uu):
        return float(problem.devres(mu).sum()) + float((uu * uu).sum())

    def blocks(eta, mu):
        """Working weights, A_l, M_l^{-1}, the PLS solution and log|M| at (eta, mu); None if M is not PD."""
        if canon == "binomial":        # dmu/deta = V(mu) for a canonical link: w = a dmu/deta
            d = mu * (1.0 - mu)
            w = problem.prior_weights * d
        elif canon == "poisson":
            d = mu
            w = problem.prior_weights * d
        else:
            d = fam.mu_eta(eta)
            w = problem.prior_weights * d * d / fam.variance(mu)
        wz = w * (eta - eta_f + (problem.y - mu) / d)
        if pk == 1:
            A = np.bincount(codes, weights=w if ones else w * z0 * z0, minlength=lk).reshape(lk, 1, 1)
            c = np.bincount(codes, weights=wz if ones else wz * z0, minlength=lk)
            M = 1.0 + T[0, 0] * T[0, 0] * A[:, 0, 0]
            if not (np.all(M > 0.0) and np.all(np.isfinite(M))):
                return None
            return w, A, (1.0 / M).reshape(lk, 1, 1), (T[0, 0] * c / M).reshape(lk, 1), float(np.log(M).sum())
        A = np.empty((lk, pk, pk))
        for (a, b), zab in zip(pairs, ZZ):
            A[:, a, b] = A[:, b, a] = np.bincount(codes, weights=w * zab, minlength=lk)
        c = _level_sums(codes, Zk, wz, lk)
        M = _tat(T, A)
        M[:, np.arange(pk), np.arange(pk)] += 1.0
        inv = _spd_inverse(M)
        if inv is None:
            return None
        Minv, logdet = inv
        return w, A, Minv, _mv(Minv, c @ T), logdet

    A = Minv = w = None
    ldL2 = np.nan
    message = ""
    ok = False
    it = 0
    last_change = np.inf
    not_pd = "the PIRLS system is not positive definite (extreme weights)"
    with np.errstate(all="ignore"):
        eta = eta_of(u)
        mu = fam.linkinv(eta)
        pdev = pdev_of(mu, u)
        for it in range(1, PIRLS_MAXIT + 1):
            bl = blocks(eta, mu)
            if bl is None:
                message = not_pd
                break
            w, A, Minv, u_new, ldL2 = bl
            if not np.all(np.isfinite(u_new)):
                message = "PIRLS produced non-finite modes"
                break
            step_ok = False
            for h in range(PIRLS_HALVINGS + 1):
                t = 0.5 ** h
                ut = u + t * (u_new - u)
                eta_t = eta_of(ut)
                mu_t = fam.linkinv(eta_t)
                pdev_t = pdev_of(mu_t, ut)
                if np.isfinite(pdev_t) and pdev_t <= pdev + 1e-11 * (1.0 + abs(pdev)):
                    step_ok = True
                    break
            if not step_ok:
                message = (f"PIRLS step-halvings failed to reduce the penalized deviance ({PIRLS_HALVINGS} halvings) "
                           "at this theta")
                break
            change = float(np.max(np.abs(eta_t - eta))) if problem.n else 0.0
            u, eta, mu, pdev = ut, eta_t, mu_t, pdev_t
            scale = 1.0 + float(np.max(np.abs(eta), initial=0.0))
            # with a canonical link PIRLS is Newton's method: after a full step of size s the
            # modes are within about s^2 of the optimum, so a full step below sqrt(PIRLS_TOL)
            # leaves them converged to PIRLS_TOL (the objective, stationary in u, to its square)
            newton_stop = quadratic and h == 0 and change < NEWTON_TOL * scale
            if change < PIRLS_TOL * scale or newton_stop or (change < 1e-8 and change >= 0.5 * last_change):
                ok = True
                if newton_stop:
                    # log|M| moves to first order with the modes: take it (and the blocks) at the last ones
                    bl = blocks(eta, mu)
                    if bl is None:
                        ok, message = False, not_pd
                    else:
                        w, A, Minv, _, ldL2 = bl
                break
            last_change = change
        else:
            message = f"PIRLS did not converge in {PIRLS_MAXIT} iterations"
        drsum = float(np.sum(problem.devres(mu)))
    uf = u.ravel()
    return PirlsResult(theta, beta, uf, eta, mu, drsum, float(uf @ uf), float(ldL2), None, ok, it, message,
                       zz=A, minv=Minv, weights=w)


def _one_term_blocks(problem: GlmmProblem, res: PirlsResult):
    """(A, M^{-1}, Z'WX) per level, ``(l, p_k, p_k)``, ``(l, p_k, p_k)``, ``(l, p_k, p)``, of a one-term fit."""
    if res.factor is not None:
        cp = res.factor.struct.cp
        return cp.zz_diag[0], res.factor.minv_diag_blocks()[0], cp.zxy[0][:, :, :problem.p]
    codes, Zk, X = problem.codes[0], problem.Zx[0], problem.X
    pk, lk = problem.tmap.dims[0]
    w = res.weights
    p = problem.p
    WX = w[:, None] * X
    cells = (codes[:, None] * p + np.arange(p)).ravel()             # (level, column) of each entry
    ZWX = np.empty((lk, pk, p))
    for a in range(pk):                 # one bincount per random-effect column
        ZWX[:, a, :] = np.bincount(cells, weights=(Zk[:, a, None] * WX).ravel(), minlength=lk * p).reshape(lk, p)
    return res.zz, res.minv, ZWX


def _vcov_rx_one_term(problem: GlmmProblem, res: PirlsResult) -> np.ndarray:
    """(R_X'R_X)^{-1} = (X'WX - sum_l G_l'M_l^{-1}G_l)^{-1}, G_l = T'Z_l'WX, from the blocks of a one-term fit."""
    _, Minv, ZWX = _one_term_blocks(problem, res)
    T = problem.tmap.template(0, res.theta)
    G = T.T @ ZWX
    X = problem.X
    lk, pk = Minv.shape[0], Minv.shape[1]
    GMG = G.reshape(lk * pk, -1).T @ (Minv @ G).reshape(lk * pk, -1)   # sum_l G_l' Minv_l G_l
    RtR = (X * res.weights[:, None]).T @ X - GMG
    return np.linalg.inv(0.5 * (RtR + RtR.T))


def _right(A: np.ndarray, T: np.ndarray) -> np.ndarray:
    """A_l T for a stack ``(l, k, k)``, as one matrix product."""
    lk, k, _ = A.shape
    return (A.reshape(lk * k, k) @ T).reshape(lk, k, k)


def _tat(T: np.ndarray, A: np.ndarray) -> np.ndarray:
    """T'A_l T for a stack ``(l, k, k)`` of symmetric A_l, as two matrix products."""
    return _right(_right(A, T).transpose(0, 2, 1), T)


def _mv(M: np.ndarray, x: np.ndarray) -> np.ndarray:
    """M_l x_l for stacks ``(l, k, k)`` and ``(l, k)``."""
    return np.einsum("lab,lb->la", M, x)


def _spd_inverse(M: np.ndarray):
    """Inverses and the summed log-determinant of a stack of small SPD matrices ``(l, k, k)``; None if one is not PD.

    k = 2 in closed form (the common (1 + x | g)), else batched LAPACK.
    """
    k = M.shape[1]
    if k == 2:
        a, b, d = M[:, 0, 0], M[:, 0, 1], M[:, 1, 1]
        det = a * d - b * b
        if not (np.all(a > 0.0) and np.all(det > 0.0) and np.all(np.isfinite(det))):
            return None
        inv = np.empty_like(M)
        inv[:, 0, 0], inv[:, 1, 1] = d / det, a / det
        inv[:, 0, 1] = inv[:, 1, 0] = -b / det
        return inv, float(np.log(det).sum())
    try:
        L = np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        return None
    return np.linalg.inv(M), float(2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum())


def _replan(struct, cp):
    """The structure of ``struct`` on new cross-products of the same pattern (weights change per iteration)."""
    return plan(cp, struct.tmap)


class GlmmObjective:
    """The Laplace / AGQ objective of a GLMM on lme4's scale, with warm-started PIRLS.

    ``stage=1``: x = theta, beta inside PIRLS; ``stage=2``: x = (theta, beta).
    Calling it returns the objective (``inf`` where PIRLS fails, with the
    reason in ``last_failure``); ``value_and_grad`` adds a central
    finite-difference gradient (each difference warm-started at the centre's
    modes, so it costs a PIRLS iteration or two). The modes and beta of the
    last successful evaluation (``warm``) start the next one: this is the
    only state, and it changes no value beyond PIRLS's tolerance.
    """

    def __init__(self, problem: GlmmProblem, nAGQ: int = 1, stage: int = 2, beta0=None, u0=None, eta0=None):
        self.problem = problem
        self.nAGQ = int(nAGQ)
        self.stage = int(stage)
        self.n_theta = problem.tmap.n_theta
        self.warm_u = np.zeros(problem.q) if u0 is None else np.asarray(u0, dtype=float)
        self.warm_beta = np.zeros(problem.p) if beta0 is None else np.asarray(beta0, dtype=float)
        self.eta0 = eta0
        self.n_eval = 0
        self.last_failure = ""
        self._last = None            # (x, value, PirlsResult) of the last warm evaluation: x again costs nothing
        if self.nAGQ > 1:
            if problem.tmap.n_terms != 1 or problem.tmap.dims[0][0] > MAX_AGQ_DIM:
                raise OptionError(AGQ_TERMS_MESSAGE.format(nAGQ=self.nAGQ))
            self.nodes = gauss_hermite(self.nAGQ)

    @property
    def lower(self) -> np.ndarray:
        lo = self.problem.tmap.lower
        return lo if self.stage == 1 else np.concatenate([lo, np.full(self.problem.p, -np.inf)])

    def split(self, x):
        x = np.asarray(x, dtype=float)
        if self.stage == 1:
            return x, self.warm_beta
        return x[:self.n_theta], x[self.n_theta:]

    def evaluate(self, x, u0=None, beta0=None) -> tuple[float, PirlsResult]:
        """The objective and the PIRLS record at x."""
        theta, beta = self.split(x)
        if self.stage == 1 and beta0 is not None:
            beta = beta0
        eta0 = None
        if self.eta0 is not None and self.stage == 1:
            eta0, self.eta0 = self.eta0, None
        self.n_eval += 1
        if u0 is None and beta0 is None and self._last is not None and np.array_equal(self._last[0], x):
            return self._last[1], self._last[2]
        u_start = self.warm_u if u0 is None else u0
        if self.stage == 2 and self.problem.tmap.n_terms == 1:
            res = pirls_one_term(self.problem, theta, beta, u_start)
        else:
            res = pirls(self.problem, theta, beta, u_start, free_beta=self.stage == 1, eta0=eta0)
        if not res.ok:
            self.last_failure = res.message
            return np.inf, res
        value = self.value_of(res)
        if np.isfinite(value) and u0 is None:
            self.warm_u, self.warm_beta = res.u, res.beta
            self._last = (np.array(x, dtype=float), value, res)
        return value, res

    def value_of(self, res: PirlsResult) -> float:
        """lme4's objective at the modes: Laplace (aic + |u|^2 + ldL2) or AGQ (deviance scale)."""
        if self.nAGQ <= 1:
            return float(self.problem.minus2loglik_cond(res.mu, res.drsum) + res.ussq + res.ldL2)
        return float(np.sum(self.agq_terms(res)))

    def agq_terms(self, res: PirlsResult, nodes=None) -> np.ndarray:
        """Per group -2 log L_j on the deviance scale by the tensor-product rule, ``(l,)``.

        With d = p_k coefficients per level, M_j = I + T'A_j T = L_j L_j' the
        conditional precision of u_j at its mode and z_k, w_k the nAGQ^d
        points and product weights of the d-dimensional standard normal rule,
        u = u_j + L_j^{-T} z_k and

            -2 log L_j = D_j(u_j) + log|M_j| - 2 log sum_k w_k exp(-(D_j(u) - D_j(u_j)) / 2 + |z_k|^2 / 2),

        D_j the group's summed deviance residuals plus |u|^2. At d = 1 this is
        the module's scalar formula (log|M_j| = -2 log sd_j), lme4's for one
        scalar term; with one node it is the Laplace approximation.

        Parameters
        ----------
        res : PirlsResult
            The modes (one random term).
        nodes : (ndarray, ndarray), optional
            A one-dimensional rule (default: this objective's nAGQ-point rule).
        """
        pr = self.problem
        z, w = self.nodes if nodes is None else nodes
        codes, Zk = pr.codes[0], pr.Zx[0]
        pk, lk = pr.tmap.dims[0]
        T = pr.tmap.template(0, res.theta)
        zz = res.factor.struct.cp.zz_diag[0] if res.factor is not None else res.zz
        M = _tat(T, zz)
        M[:, np.arange(pk), np.arange(pk)] += 1.0
        L = np.linalg.cholesky(M)
        LinvT = np.linalg.inv(L).transpose(0, 2, 1)                  # L_j^{-T}, (l, d, d)
        logdet = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
        u = res.u.reshape(lk, pk)
        dr0 = np.bincount(codes, weights=pr.devres(res.mu), minlength=lk) + (u * u).sum(axis=1)
        mult = np.zeros(lk)
        for idx in itertools.product(range(len(z)), repeat=pk):     # nAGQ^d passes over the rows, all groups at once
            zk = z[list(idx)]
            wk = float(np.prod(w[list(idx)]))
            if not np.any(zk):
                mult += wk
                continue
            delta = LinvT @ zk                                       # (l, d): u - u_j
            db = delta @ T.T                                         # b - b_j
            eta_k = res.eta + Zk[:, 0] * db[codes, 0]
            for a in range(1, pk):
                eta_k += Zk[:, a] * db[codes, a]
            dk = np.bincount(codes, weights=pr.devres(pr.family.linkinv(eta_k)), minlength=lk) + \
                ((u + delta) ** 2).sum(axis=1)
            mult += wk * np.exp(-0.5 * (dk - dr0) + 0.5 * float(zk @ zk))
        return dr0 + logdet - 2.0 * np.log(mult)

    def __call__(self, x) -> float:
        return self.evaluate(x)[0]

    @property
    def analytic(self) -> bool:
        """Whether :func:`laplace_gradient` applies: stage 2, Laplace, one random term, a canonical link."""
        pr = self.problem
        terms_ok = pr.tmap.n_terms == 1 or (pr.q <= DENSE_GRADIENT_MAX_Q and pr.n * pr.q <= DENSE_GRADIENT_MAX_NQ)
        return self.stage == 2 and self.nAGQ == 1 and terms_ok and pr.family.canonical and \
            not pr.family.has_dispersion

    def value_and_grad(self, x):
        if self.analytic:
            f0, res = self.evaluate(x)
            if not np.isfinite(f0):
                return np.inf, None
            return f0, laplace_gradient(self.problem, res)
        return self.fd_value_and_grad(x)

    def fd_value_and_grad(self, x):
        """The objective and its gradient by forward differences (n_theta + p warm-started evaluations).

        PIRLS converges the modes to rounding, so the objective is smooth to
        about 1e-12 relative and a step of 1e-7 (relative) leaves a gradient
        error of about h f''/2, below the search's tolerance; the Hessian for
        the standard errors uses central differences (:func:`objective_hessian`).
        """
        x = np.asarray(x, dtype=float)
        f0, res = self.evaluate(x)
        if not np.isfinite(f0):
            return np.inf, None
        u_c, b_c = res.u, res.beta
        h = 1e-7 * np.maximum(np.abs(x), 1.0)
        g = np.empty_like(x)
        for i in range(x.size):    # n_theta + p warm-started evaluations
            e = np.zeros_like(x)
            e[i] = h[i]
            fp = self.evaluate(x + e, u0=u_c, beta0=b_c)[0]
            if not np.isfinite(fp):
                fp = self.evaluate(x - e, u0=u_c, beta0=b_c)[0]
                if not np.isfinite(fp):
                    return f0, None
                g[i] = (f0 - fp) / h[i]
                continue
            g[i] = (fp - f0) / h[i]
        return f0, g


def laplace_gradient(problem: GlmmProblem, res: PirlsResult) -> np.ndarray:
    """The gradient of the Laplace objective in (theta, beta), one random term and a canonical link.

    F = A(mu(u)) + |u|^2 + log|M|, M = I + Lambda'Z'WZ Lambda, at the modes u
    of A + |u|^2 (A the family's -2 log-likelihood; its difference from the
    deviance does not depend on mu for the binomial and Poisson families).
    With r = a (y - mu) (the score in eta), W = a V(mu), c_i = h_i dw_i/deta,
    h_i = z_i'Lambda M^{-1} Lambda'z_i and v = M^{-1} Lambda'Z'c, the
    envelope theorem and du/dbeta = -M^{-1}Lambda'Z'WX,
    du/dtheta_j = M^{-1}(dLambda_j'Z'r - Lambda'Z'WZ dLambda_j u) give

        dF/dbeta = -2 X'r + X'c - X'WZ Lambda v,
        dF/dT = sum over levels l of
                -2 Zr_l u_l' + 2 A_l T Minv_l + Zc_l u_l' + Zr_l v_l' - A_l T v_l u_l',

    with Zr_l = Z_l'r, Zc_l = Z_l'c, A_l = Z_l'WZ_l and Minv_l the level's
    block of M^{-1} (block diagonal for one term), read at theta's positions.
    Everything is one pass over the rows (h, c, r) and per-level p_k x p_k algebra.
    """
    if problem.tmap.n_terms > 1:
        return _dense_laplace_gradient(problem, res)
    fam = problem.family
    tm = problem.tmap
    pk, lk = tm.dims[0]
    theta = res.theta
    T = tm.template(0, theta)
    A, Minv, ZWX = _one_term_blocks(problem, res)                   # (l, p_k, p_k) twice, (l, p_k, p)
    codes, Zk = problem.codes[0], problem.Zx[0]
    mu = res.mu
    a = problem.prior_weights
    V = fam.variance(mu)
    dV = _variance_derivative(fam, mu)
    r = a * (problem.y - mu)
    S = Zk @ T                                                      # rows of Z Lambda: s_i = T'z_i
    h = S[:, 0] ** 2 * Minv[codes, 0, 0]
    for j in range(pk):                 # h_i = s_i' M_l^{-1} s_i by the p_k^2 entries, each a gather
        for k in range(pk):
            if j or k:
                h += S[:, j] * S[:, k] * Minv[codes, j, k]
    c = h * a * dV * V
    Zr = _level_sums(codes, Zk, r, lk)                               # (l, p_k)
    Zc = _level_sums(codes, Zk, c, lk)
    u = res.u.reshape(lk, pk)
    v = _mv(Minv, Zc @ T)                                           # Minv_l T' Zc_l
    X = problem.X
    g_beta = -2.0 * (X.T @ r) + X.T @ c - np.einsum("lap,la->p", ZWX, v @ T.T)
    R = _right(A, T)                                                # (l, p_k, p_k)
    ATM = R.transpose(1, 0, 2).reshape(pk, lk * pk) @ Minv.reshape(lk * pk, pk)   # sum_l R_l Minv_l
    ATv = _mv(A, v @ T.T)
    dT = (-2.0 * Zr.T @ u + 2.0 * ATM + Zc.T @ u + Zr.T @ v - ATv.T @ u)
    return np.concatenate([tm.pack([dT]), g_beta])


# several random terms: the gradient uses M^{-1} densely (q x q), for models up to this size
DENSE_GRADIENT_MAX_Q, DENSE_GRADIENT_MAX_NQ = 3000, 30_000_000


def _dense_laplace_gradient(problem: GlmmProblem, res: PirlsResult) -> np.ndarray:
    """:func:`laplace_gradient` for any random-effects structure, with M^{-1} dense.

    The same closed form, at the positions (rho, kappa) of theta in Lambda:
    dF/dLambda_{rho kappa} = -2 (Z'r)_rho u_kappa + 2 (G Lambda M^{-1})_{rho kappa}
    + (Z'c)_rho u_kappa + (Z'r)_rho v_kappa - (G Lambda v)_rho u_kappa, with G = Z'WZ;
    h_i = z_i'Lambda M^{-1} Lambda'z_i from the rows of Z Lambda. M^{-1} = L^{-T} L^{-1}
    from the blocked factor's L.
    """
    fam = problem.family
    tm = problem.tmap
    q, p = problem.q, problem.p
    f = res.factor
    A = f.struct.cp.dense()
    G, ZWX = A[:q, :q], A[:q, q:q + p]
    Minv, info = sla.lapack.dpotri(f.sparse_L().toarray(), lower=1)   # (L L')^{-1}, lower triangle
    if info != 0:
        raise np.linalg.LinAlgError("the PIRLS factor is singular")
    Minv = np.tril(Minv) + np.tril(Minv, -1).T
    t_idx, rows, cols = tm.lambda_index
    Lam = sp.csr_matrix((res.theta[t_idx], (rows, cols)), shape=(q, q))
    Z = problem.Z
    ZL = (Z @ Lam).tocsr()                                          # (n, q), sparse rows of Z Lambda
    h = np.asarray(ZL.multiply(ZL @ Minv).sum(axis=1)).ravel()
    mu = res.mu
    a = problem.prior_weights
    r = a * (problem.y - mu)
    c = h * a * _variance_derivative(fam, mu) * fam.variance(mu)
    Zr, Zc = np.asarray(Z.T @ r), np.asarray(Z.T @ c)
    u = res.u
    v = Minv @ (Lam.T @ Zc)
    GL = np.asarray((Lam.T @ G).T)                                  # G Lambda (G symmetric)
    X = problem.X
    g_beta = -2.0 * (X.T @ r) + X.T @ c - ZWX.T @ (Lam @ v)
    GLv = GL @ v
    at = (-2.0 * Zr[rows] * u[cols] + 2.0 * np.einsum("ij,ji->i", GL[rows], Minv[:, cols])
          + Zc[rows] * u[cols] + Zr[rows] * v[cols] - GLv[rows] * u[cols])
    return np.concatenate([np.bincount(t_idx, weights=at, minlength=tm.n_theta), g_beta])


def _level_sums(codes, Zk, x, lk) -> np.ndarray:
    """Per level sum over its rows of z_i x_i, ``(l_k, p_k)``."""
    if Zk.shape[1] == 1:
        return np.bincount(codes, weights=Zk[:, 0] * x, minlength=lk)[:, None]
    return np.stack([np.bincount(codes, weights=Zk[:, j] * x, minlength=lk) for j in range(Zk.shape[1])], axis=1)


def _variance_derivative(fam: GlmFamily, mu) -> np.ndarray:
    """dV/dmu of the binomial (1 - 2 mu) and Poisson (1) variance functions."""
    if fam.kind == "binomial":
        return 1.0 - 2.0 * mu
    if fam.kind == "poisson":
        return np.ones_like(mu)
    raise ValueError(f"no analytic Laplace gradient for family {fam.name}")


@dataclass(frozen=True, eq=False)
class GlmmFit:
    """The optimum of a GLMM (fit level, no pandas).

    Attributes
    ----------
    family : statsmodels Family
    family_name, link_name : str
        R's names (``"binomial"``, ``"logit"``).
    theta : ndarray (n_theta,)
        lme4's theta, in the design's theta order.
    beta : ndarray (p,)
    u, b : ndarray (q,)
        Spherical modes and b = Lambda u, terms in design order, level-major
        within a term (lme4's ``getME(m, "u")`` and ``ranef`` layout).
    cond_var : tuple of ndarray (l_k, p_k, p_k)
        Conditional covariances of b per design term (dispersion times T M^{-1} T').
    eta, mu, offset, prior_weights, y : ndarray (n,)
    dispersion : float
        1 for binomial, Poisson and negative binomial; for Gamma and inverse
        Gaussian lme4's sigma^2 = (sum a (y - mu)^2 / V(mu) + |u|^2) / n.
    nAGQ : int
    minus2loglik : float
        -2 log-likelihood on the absolute scale (every constant), for every nAGQ.
    deviance_lme4 : float
        lme4's ``deviance(m)``: the sum of squared deviance residuals at the modes.
    objective_lme4 : float
        lme4's objective (-2 logLik as lme4 reports it). nAGQ <= 1: equal to
        ``minus2loglik``; nAGQ > 1: ``minus2loglik`` minus the saturated
        constants sum_j c_j = aic(mu) - deviance at the modes (the relation of
        lme4 issue 161), which does not depend on the parameters.
    vcov : ndarray (p, p)
    se_method : {"hessian", "RX"}
    hessian : ndarray (n_theta + p, n_theta + p) or None
        Hessian of the objective (deviance scale) in (theta, beta) at the optimum.
    singular : bool
    opt : OptResult
    tmap : ThetaMap
    nb_theta : float or None
    pirls_failures : int
        Evaluations where PIRLS failed (the search stepped back from them).
    """

    family: object
    family_name: str
    link_name: str
    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    b: np.ndarray
    cond_var: tuple
    eta: np.ndarray
    mu: np.ndarray
    offset: np.ndarray
    prior_weights: np.ndarray
    y: np.ndarray
    dispersion: float
    nAGQ: int
    minus2loglik: float
    deviance_lme4: float
    objective_lme4: float
    vcov: np.ndarray
    se_method: str
    hessian: np.ndarray | None
    singular: bool
    opt: OptResult
    tmap: ThetaMap
    nb_theta: float | None = None
    glm_family: GlmFamily | None = None
    pirls_failures: int = 0

    @property
    def loglik(self) -> float:
        return -0.5 * self.minus2loglik


# stage 1 only starts stage 2 (lme4's first stage is a rough bobyqa search too): a loose
# tolerance and a few quasi-Newton steps; nAGQ = 0 (stage 1 alone) is searched to FINAL_TOL
STAGE1_TOL, STAGE1_MAXFEV, FINAL_TOL = 1e-5, 5, 1e-12


def _optimize(obj: GlmmObjective, x0, method: str, maxfev: int | None, tol: float = FINAL_TOL,
              escape: bool = True) -> OptResult:
    lower = obj.lower
    opt = minimize_theta(obj, np.maximum(x0, lower), lower, method=method, maxfev=maxfev, tol=tol)
    if escape:
        opt = escape_bound(obj, opt, lower, x0)
    return replace(opt, nfev=obj.n_eval)


def _design_order(merge: TermMerge | None, per_term: list[np.ndarray]) -> list[np.ndarray]:
    """Per fitted term ``(l_k, p_k[, p_k])`` arrays -> per design term, in design order."""
    if merge is None:
        return per_term
    out = []
    for k, (g, off) in enumerate(merge.where):
        width = _term_width(merge, k)
        arr = per_term[g]
        sl = slice(off, off + width)
        out.append(arr[:, sl] if arr.ndim == 2 else arr[:, sl][:, :, sl])
    return out


def _term_width(merge: TermMerge, k: int) -> int:
    """Columns of design term k within its fitted term."""
    g, off = merge.where[k]
    rows, _ = merge.layout[g]
    nxt = sorted(merge.where[m][1] for m in merge.groups[g] if merge.where[m][1] > off)
    return (nxt[0] if nxt else int(rows.max()) + 1) - off


def fit_glmm(problem: GlmmProblem, nAGQ: int = 1, *, start=None, optimizer: str = "lbfgsb", se: str = "hessian",
             check_conv: bool = True, maxfev: int | None = None, merge: TermMerge | None = None) -> GlmmFit:
    """Fit a GLMM by lme4's two stages (see the module docstring).

    Parameters
    ----------
    problem : GlmmProblem
    nAGQ : int
        0 (stage 1 only), 1 (Laplace) or up to 25 (adaptive Gauss-Hermite,
        one scalar random-effect term).
    start : dict, optional
        ``{"theta": ..., "fixef": ...}`` starting values.
    optimizer : str
        A method of :func:`pymlm.fit._optimize.minimize_theta`: ``"lbfgsb"``
        (quasi-Newton on finite-difference gradients) or a derivative-free one.
    se : {"hessian", "RX"}
    check_conv : bool
    maxfev : int, optional
    merge : TermMerge, optional
        How design terms were merged into fitted terms (for the per-term outputs).

    Returns
    -------
    GlmmFit
    """
    tmap = problem.tmap
    t0 = time.perf_counter()
    theta0 = tmap.start.copy()
    beta0 = None
    if start is not None:
        if start.get("theta") is not None:
            theta0 = np.asarray(start["theta"], dtype=float)
        if start.get("fixef") is not None:
            beta0 = np.asarray(start["fixef"], dtype=float)
    failures = 0
    with blas_threads(1):
        # stage 1: theta, with beta inside PIRLS (from the family's mustart)
        s1 = GlmmObjective(problem, nAGQ=1, stage=1, beta0=beta0,
                           eta0=problem.start_eta() if beta0 is None else None)
        quick = optimizer == "lbfgsb" and nAGQ == 1 and GlmmObjective(problem, nAGQ=1, stage=2).analytic
        if nAGQ == 0:
            opt1 = _optimize(s1, theta0, optimizer, maxfev)
        elif quick:
            # the analytic gradient makes stage 2 quick from the start itself: stage 1 is one PIRLS
            # (beta at theta's start) instead of a search
            opt1 = OptResult(theta0, np.nan, 0, optimizer, True, "")
        else:
            # a start only: stage 2 escapes spurious boundary stops itself
            opt1 = _optimize(s1, theta0, optimizer, STAGE1_MAXFEV if optimizer == "lbfgsb" else maxfev, tol=STAGE1_TOL,
                             escape=False)
        _, res1 = s1.evaluate(opt1.x)
        failures += int(s1.last_failure != "")
        if not res1.ok:
            raise DataError(f"the fit failed in its first stage: {res1.message}. Check the response and the "
                            "covariates (complete separation, extreme values), or give start values")
        if nAGQ == 0:
            obj, x_opt, opt = s1, opt1.x, opt1
            res = res1
        else:
            obj = GlmmObjective(problem, nAGQ=nAGQ, stage=2, beta0=res1.beta, u0=res1.u)
            x0 = np.concatenate([lift_start(opt1.x, tmap.lower), res1.beta])
            opt = _optimize(obj, x0, optimizer, maxfev)
            x_opt = opt.x
            _, res = obj.evaluate(x_opt)
            if not res.ok:
                raise DataError(f"the fit failed: {res.message}")
            failures += int(obj.last_failure != "")
            opt = replace(opt, nfev=s1.n_eval + obj.n_eval)
        theta = np.asarray(x_opt[:tmap.n_theta], dtype=float)
        beta = res.beta
        hessian = None
        vcov_rx = _vcov_rx(problem, res)
        derivatives = None
        if se == "hessian" and nAGQ > 0:
            hessian = objective_hessian(obj, x_opt)
            if obj.analytic:
                derivatives = (laplace_gradient(problem, res), hessian)
        if check_conv:
            opt = check_convergence(obj, opt, obj.lower, derivatives=derivatives)
        if se == "hessian" and nAGQ > 0:
            vcov = _vcov_from_hessian(hessian, tmap.n_theta, problem.p)
            if vcov is None:
                warn("the Hessian of the objective is not positive definite at the optimum; the standard "
                     "errors use lme4's R_X approximation instead (se='RX')", ConvergenceWarning)
                vcov, se = vcov_rx, "RX"
        else:
            vcov, se = vcov_rx, "RX"
    fam = problem.family
    dispersion = 1.0
    if fam.has_dispersion:
        # lme4's sigma^2: (Pearson sum of squares + |u|^2) / n
        pear = problem.prior_weights * (problem.y - res.mu) ** 2 / fam.variance(res.mu)
        dispersion = float((np.sum(pear) + res.ussq) / max(problem.n, 1))
        vcov = vcov * (dispersion if se == "RX" else 1.0)
    m2ll_laplace = float(problem.minus2loglik_cond(res.mu, res.drsum) + res.ussq + res.ldL2)
    if nAGQ > 1:
        objective_lme4 = float(obj.value_of(res))
        minus2loglik = objective_lme4 + (problem.minus2loglik_cond(res.mu, res.drsum) - res.drsum)
    else:
        objective_lme4 = minus2loglik = m2ll_laplace
    lower = tmap.lower
    singular = bool(np.any(np.isfinite(lower) & (theta - lower < 1e-4)))
    b_terms = problem.b_terms(theta, res.u)
    u_terms = problem.split_u(res.u)
    Ts = tmap.templates(theta)
    minv = res.factor.minv_diag_blocks() if res.factor is not None else ([res.minv] if res.minv is not None else [])
    cond = [dispersion * np.einsum("ab,lbc,dc->lad", T, Mi, T) for T, Mi in zip(Ts, minv)]
    u_d = _design_order(merge, u_terms)
    b_d = _design_order(merge, b_terms)
    cond_d = _design_order(merge, cond)
    opt = replace(opt, seconds=time.perf_counter() - t0)
    return GlmmFit(
        family=fam.family, family_name=fam.name, link_name=fam.link_name, theta=theta, beta=np.asarray(beta),
        u=np.concatenate([a.ravel() for a in u_d]) if u_d else np.zeros(0),
        b=np.concatenate([a.ravel() for a in b_d]) if b_d else np.zeros(0),
        cond_var=tuple(cond_d), eta=res.eta, mu=res.mu, offset=problem.offset,
        prior_weights=problem.prior_weights, y=problem.y, dispersion=dispersion, nAGQ=int(nAGQ),
        minus2loglik=float(minus2loglik), deviance_lme4=float(res.drsum), objective_lme4=float(objective_lme4),
        vcov=vcov, se_method=se, hessian=hessian, singular=singular, opt=opt, tmap=tmap,
        nb_theta=fam.nb_theta, glm_family=fam, pirls_failures=failures,
    )


def objective_hessian(obj: GlmmObjective, x, delta: float = 1e-4) -> np.ndarray:
    """Hessian of the objective in (theta, beta) at x.

    With the analytic gradient: central differences of it (2 (n_theta + p)
    evaluations, steps ``delta`` max(|x|, 0.1)); otherwise central second
    differences of the objective (lme4's ``deriv12``). Each evaluation starts
    PIRLS at the modes of x. A diagonal element of theta may cross its
    bound here: the objective is even in it.
    """
    x = np.asarray(x, dtype=float)
    _, res = obj.evaluate(x)
    u_c, b_c = res.u, res.beta
    if obj.analytic:
        k = x.size
        H = np.empty((k, k))
        steps = delta * np.maximum(np.abs(x), 0.1)
        for i in range(k):      # 2 (n_theta + p) gradients
            e = np.zeros(k)
            e[i] = steps[i]
            gp = laplace_gradient(obj.problem, obj.evaluate(x + e, u0=u_c, beta0=b_c)[1])
            gm = laplace_gradient(obj.problem, obj.evaluate(x - e, u0=u_c, beta0=b_c)[1])
            H[:, i] = (gp - gm) / (2.0 * steps[i])
        return 0.5 * (H + H.T)

    def f(z):
        return obj.evaluate(z, u0=u_c, beta0=b_c)[0]

    _, H = fd_gradient_hessian(f, x, np.full(x.size, -np.inf), delta=delta)
    return 0.5 * (H + H.T)


def _vcov_from_hessian(H: np.ndarray, n_theta: int, p: int):
    """2 H^{-1} (H of the deviance scale), the beta block; None when H is not positive definite."""
    try:
        np.linalg.cholesky(H)
        inv = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return None
    V = 2.0 * inv[n_theta:, n_theta:]
    return 0.5 * (V + V.T)


def _vcov_rx(problem: GlmmProblem, res: PirlsResult) -> np.ndarray:
    """lme4's approximation (R_X'R_X)^{-1} from the PIRLS factor at the modes."""
    f = res.factor
    p = problem.p
    if f is None and res.minv is not None and p > 0:
        return _vcov_rx_one_term(problem, res)
    if f is None or p == 0:
        return np.zeros((p, p))
    Li = np.linalg.inv(f.L_XX[:p, :p])
    return Li.T @ Li


def problem_from_design(design, family, merge: TermMerge | None = None, chunk_size: int = 500_000):
    """The engine's rows from a built design: the response as the family needs it, weights, offset, terms.

    Binomial responses: ``cbind(successes, failures)`` (proportion, weights =
    trials times user weights), a proportion with weights, 0/1, a two-level
    factor (the first level is failure) or logical.

    Raises
    ------
    DataError
        A response the family cannot have (the message says what it takes).
    """
    fam = family if isinstance(family, GlmFamily) else resolve_family(family)
    y = np.asarray(design.y, dtype=float)
    n = y.shape[0]
    w = np.ones(n) if design.weights is None else np.asarray(design.weights, dtype=float)
    trials = None
    if y.ndim == 2:
        if fam.kind != "binomial":
            raise DataError(f"cbind() responses belong to the binomial family; got family {fam.name!r}",
                            design.formula)
        s, fl = y[:, 0], y[:, 1]
        if np.any(s < 0) or np.any(fl < 0):
            raise DataError(f"cbind(successes, failures) in {design.y_name!r} has negative counts", design.formula)
        tot = s + fl
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(tot > 0, s / tot, 0.0)
        trials = tot
        w = w * tot
    why = fam.check_response(y, w)
    if why is not None:
        raise DataError(f"the response {design.y_name!r} does not fit family {fam.name!r}: {why}", design.formula)
    if fam.kind in ("poisson", "negative.binomial") and np.any(np.abs(y - np.round(y)) > 1e-8):
        warn(f"the response {design.y_name!r} has non-integer values for the {fam.name} family", PymlmWarning)
    merge = TermMerge.of(design.re_terms) if merge is None else merge
    tmap = merge.theta_map(design.re_terms, design.theta_names)
    codes, Zx = [], []
    for members in merge.groups:
        t0 = design.re_terms[members[0]]
        codes.append(t0.codes.astype(np.intp))
        Zx.append(np.ascontiguousarray(t0.X if len(members) == 1 else
                                       np.hstack([design.re_terms[k].X for k in members]), dtype=float))
    X = design.X.toarray() if hasattr(design.X, "toarray") else np.asarray(design.X, dtype=float)
    offset = np.zeros(n) if design.offset is None else np.asarray(design.offset, dtype=float)
    return GlmmProblem(np.ascontiguousarray(X), y, w, trials, offset, tuple(codes), tuple(Zx), tmap, fam,
                       chunk_size), merge


def separated_columns(X: np.ndarray, y: np.ndarray, prior_weights: np.ndarray) -> np.ndarray:
    """Fixed-effect columns involved in complete or quasi-complete separation of a binomial response.

    A direction d of the fixed effects with x_i'd >= 0 wherever y_i = 1,
    x_i'd <= 0 wherever y_i = 0, x_i'd = 0 wherever 0 < y_i < 1, and x_i'd != 0
    somewhere lets the likelihood rise forever along beta + t d: the estimates
    of the columns with d_j != 0 run off to infinity (random effects, being
    penalized, do not stop them). The linear programme of Konis (2007,
    R's ``detectseparation``) finds such a d, on the distinct rows of X:
    maximize sum_i s_i x_i'd (s_i = +1 for y_i = 1, -1 for y_i = 0) subject
    to those constraints and -1 <= d_j <= 1.

    Parameters
    ----------
    X : ndarray (n, p)
    y : ndarray (n,)
        Proportions of successes.
    prior_weights : ndarray (n,)
        Rows of weight 0 are left out.

    Returns
    -------
    ndarray of int
        The column indices of d's nonzero entries (empty: no separation).
    """
    from scipy.optimize import linprog

    keep = prior_weights > 0
    X, y = np.asarray(X, dtype=float)[keep], np.asarray(y, dtype=float)[keep]
    s = np.where(y >= 1.0, 1.0, np.where(y <= 0.0, -1.0, 0.0))
    rows = np.unique(np.column_stack([X, s]), axis=0)               # distinct (x_i, s_i)
    Xu, su = rows[:, :-1], rows[:, -1]
    ends, mid = su != 0.0, su == 0.0
    p = X.shape[1]
    if p == 0 or not ends.any():
        return np.zeros(0, dtype=int)
    signed = Xu[ends] * su[ends, None]
    scale = 1.0 + float(np.abs(Xu).max())

    def direction(free):
        res = linprog(-signed.sum(axis=0), A_ub=-signed, b_ub=np.zeros(signed.shape[0]),
                      A_eq=Xu[mid] if mid.any() else None, b_eq=np.zeros(int(mid.sum())) if mid.any() else None,
                      bounds=[(-1.0, 1.0) if f else (0.0, 0.0) for f in free], method="highs")
        if res.status != 0 or -res.fun <= 1e-7 * scale:
            return None
        return np.abs(res.x) > 1e-7

    support = direction(np.ones(p, dtype=bool))
    if support is None:
        return np.zeros(0, dtype=int)
    # the smallest set of columns that still separates: leave out each one the others can do without
    for j in np.flatnonzero(support):           # at most p small programmes on the distinct rows
        trial = support.copy()
        trial[j] = False
        if trial.any() and (smaller := direction(trial)) is not None:
            support = smaller
    return np.flatnonzero(support)


def separation_suspected(fit_or_problem, mu=None) -> bool:
    """Whether a binomial fit shows the sign of separation glm reports: fitted probabilities numerically 0 or 1."""
    fam = fit_or_problem.family if isinstance(fit_or_problem, GlmmProblem) else fit_or_problem.glm_family
    if fam is None or fam.kind != "binomial":
        return False
    mu = fit_or_problem.mu if mu is None else mu
    return bool(np.any((mu < 1e-8) | (mu > 1.0 - 1e-8)))


def separation_message(names) -> str:
    """The message naming the separated fixed effects."""
    shown = ", ".join(repr(n) for n in names)
    return (f"complete or quasi-complete separation: the fixed effect(s) {shown} separate the 0/1 responses, so "
            "their estimates run off towards +/- infinity (glmer reports huge estimates and standard errors "
            "there). Drop or merge the separating term or levels, or use a penalized (Bayesian) fit")


def singular_warning(fit: GlmmFit):
    if fit.singular:
        warn("boundary (singular) fit: a random-effect variance is (near) zero", SingularFitWarning)


def nb_theta_ml(y, mu, wt) -> float:
    """The negative binomial shape maximizing the likelihood at fixed means (MASS's ``theta.ml``)."""
    def m2ll(lt):
        return negative_binomial(float(np.exp(lt))).minus2loglik(y, mu, wt)

    lt, _, _ = minimize_1d(m2ll, np.log(1e-3), np.log(1e6), xatol=1e-8)
    return float(np.exp(lt))


def fit_glmm_nb(problem: GlmmProblem, *, link: str = "log", start=None, optimizer: str = "lbfgsb",
                se: str = "hessian", check_conv: bool = True, maxfev: int | None = None,
                merge: TermMerge | None = None, tol: float = 1e-5) -> GlmmFit:
    """A negative binomial GLMM with its shape estimated, as lme4's ``glmer.nb``.

    A Poisson fit gives the means from which the shape starts (MASS's
    ``theta.ml``); the Laplace -2 log-likelihood is then minimized over
    log(theta) by Brent's method, each evaluation a GLMM fit warm-started
    at the previous one; the fit at the optimum is returned, with
    ``nb_theta`` (lme4 also alternates between the shape and the fit, and
    ends at the same optimum).

    Parameters
    ----------
    problem : GlmmProblem
        Its family is replaced.
    link : str
    tol : float
        Tolerance on log(theta).
    """
    pois = fit_glmm(replace(problem, family=resolve_family("poisson", link)), 1, start=start, optimizer=optimizer,
                    se="RX", check_conv=False, maxfev=maxfev, merge=merge)
    th0 = nb_theta_ml(problem.y, pois.mu, problem.prior_weights)
    last = {"theta": pois.theta, "fixef": pois.beta}
    evals = []

    def m2ll(lt):
        fam = negative_binomial(float(np.exp(lt)), link)
        f = fit_glmm(replace(problem, family=fam), 1, start=dict(last), optimizer=optimizer, se="RX",
                     check_conv=False, maxfev=maxfev, merge=merge)
        last["theta"], last["fixef"] = f.theta, f.beta
        evals.append(f.opt.nfev)
        return f.minus2loglik

    lt0 = float(np.log(th0))
    lt, _, _ = minimize_1d(m2ll, lt0 - 3.0, lt0 + 3.0, xatol=tol)
    fam = negative_binomial(float(np.exp(lt)), link)
    fit = fit_glmm(replace(problem, family=fam), 1, start=dict(last), optimizer=optimizer, se=se,
                   check_conv=check_conv, maxfev=maxfev, merge=merge)
    opt = replace(fit.opt, nfev=fit.opt.nfev + pois.opt.nfev + int(sum(evals)))
    return replace(fit, opt=opt, nb_theta=float(np.exp(lt)))
