"""What interval methods need from a fitted GLMM, at the fit level.

:class:`GlmmInference` plays for a GLMM the part :class:`~pymlm.inference.LmmProblem`
plays for an LMM: lme4's parameter names (``.sig01``..., ``.sigma`` only
for families with an estimated dispersion, then the fixed effects), the
estimates in that order, and the operations the resampling methods share:

- :meth:`GlmmInference.simulate`: a response drawn from the fitted model
  (u* ~ N(0, I), b* = sigma Lambda u*, y* from the family at the means);
- :meth:`GlmmInference.refit`: the Laplace / AGQ objective of another
  response or other prior weights minimized over (theta, beta) by the one
  optimizer driver, started at the fit's theta, beta and conditional modes
  (lme4's stage 2 alone: the estimates are a far better start than stage 1);
- :meth:`GlmmInference.cluster_rows`: the rows of a set of clusters (levels
  of the single grouping factor) with local level codes, the piece on which
  a bag of little bootstraps fits; :meth:`GlmmInference.rows_of`, the piece
  of a split sample.

Cluster multiplicities
----------------------
A resample of clusters holds cluster i c_i times. In the cluster bootstrap
its c_i copies are independent clusters, each with its own random effect
(Field & Welsh 2007), not one cluster with c_i times the rows: multiplying
the rows' prior weights by c_i would also multiply Z_i'W Z_i inside the
cluster's log-determinant and shrink its random effect, a different model.
With one grouping factor the Laplace objective is a sum over clusters,

    -2 log L ~ sum_i [ d_i(u_i) + |u_i|^2 + log|T'Z_i'W_i Z_i T + I| ] + const,

d_i the cluster's summed deviance residuals at its modes u_i, which PIRLS
finds cluster by cluster (copies share their modes). The resample's
objective is therefore the count-weighted sum of the per-cluster terms of
one PIRLS pass over the b distinct clusters' rows
(:class:`ClusterWeightedObjective`; for nAGQ > 1 the per-group quadrature
terms), so a resample costs O(b) clusters, never O(N).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from ..errors import OptionError
from ..fit._optimize import escape_bound, lift_start, minimize_theta
from ..fit.glmm import GlmmObjective, GlmmProblem, _one_term_blocks
from ..linalg._threads import blas_threads

__all__ = ["ClusterWeightedObjective", "GlmmInference", "draw_response"]

REFIT_TOL = 1e-10


def draw_response(family: str, mu: np.ndarray, w: np.ndarray, dispersion: float, nb_theta, rng) -> np.ndarray:
    """Responses from the family at means ``mu`` (n, nsim) with prior weights ``w`` (n, 1).

    Binomial: proportions of ``w`` trials (whole numbers); Poisson and
    negative binomial counts; Gamma and inverse Gaussian with shape / scale
    ``w / dispersion``.

    Raises
    ------
    OptionError
        Binomial prior weights that are not whole numbers of trials, or an unknown family.
    """
    if family == "binomial":
        trials = np.rint(w).astype(np.int64)
        if np.any(np.abs(w - trials) > 1e-8) or np.any(trials < 1):
            raise OptionError("simulating a binomial model needs whole numbers of trials as prior weights")
        return rng.binomial(np.broadcast_to(trials, mu.shape), mu) / trials
    if family == "poisson":
        return rng.poisson(mu).astype(float)
    if family.startswith("Negative Binomial"):
        k = float(nb_theta)
        return rng.negative_binomial(k, k / (k + mu)).astype(float)
    if family == "Gamma":
        shape = w / dispersion
        return rng.gamma(np.broadcast_to(shape, mu.shape), mu / shape)
    if family == "inverse.gaussian":
        return rng.wald(mu, np.broadcast_to(w / dispersion, mu.shape))
    raise OptionError(f"simulating does not know the family {family!r}")


class ClusterWeightedObjective:
    """sum_i c_i D_i(theta, beta): the objective of c_i independent copies of cluster i.

    ``D_i`` is cluster i's term of the Laplace (or AGQ) objective at the
    conditional modes (module notes), the parameter-free constants left out.
    Evaluations run PIRLS through the wrapped :class:`GlmmObjective` (warm
    started); the gradient is left to the optimizer driver's differences.

    Parameters
    ----------
    obj : GlmmObjective
        Over (theta, beta) of a problem with one random term.
    counts : ndarray (l,)
        Multiplicity of each level (cluster) of that term.
    """

    def __init__(self, obj: GlmmObjective, counts):
        self.obj = obj
        self.counts = np.asarray(counts, dtype=float)
        pr = obj.problem
        if pr.tmap.n_terms != 1:
            raise OptionError("cluster multiplicities need every random term on one grouping factor")
        self.n_eval = 0

    @property
    def lower(self) -> np.ndarray:
        return self.obj.lower

    def cluster_terms(self, res) -> np.ndarray:
        """D_i per cluster, ``(l,)``."""
        pr = self.obj.problem
        if self.obj.nAGQ > 1:
            return self.obj.agq_terms(res)
        pk, lk = pr.tmap.dims[0]
        dev = np.bincount(pr.codes[0], weights=pr.devres(res.mu), minlength=lk)
        uu = np.sum(res.u.reshape(lk, pk) ** 2, axis=1)
        T = pr.tmap.templates(res.theta)[0]
        A = _one_term_blocks(pr, res)[0]
        M = np.einsum("ba,lbc,cd->lad", T, A, T) + np.eye(pk)
        sign, ld = np.linalg.slogdet(M)
        return dev + uu + np.where(sign > 0, ld, np.inf)

    @property
    def analytic(self) -> bool:
        return bool(self.obj.analytic)

    def value_and_grad(self, x):
        """The objective and, where :func:`~pymlm.fit.glmm.laplace_gradient` applies, its gradient.

        The closed form of :func:`~pymlm.fit.glmm.laplace_gradient` is a sum
        of per-cluster terms (the modes are per cluster): each cluster's
        term is weighted by its count. Elsewhere the driver's differences.
        """
        f, res = self.evaluate(x)
        if not np.isfinite(f) or not self.analytic:
            return f, None
        return f, self._gradient(res)

    def _gradient(self, res) -> np.ndarray:
        pr = self.obj.problem
        fam, tm = pr.family, pr.tmap
        pk, lk = tm.dims[0]
        wl = self.counts
        T = tm.template(0, res.theta)
        A, Minv, ZWX = _one_term_blocks(pr, res)
        codes, Zk = pr.codes[0], pr.Zx[0]
        mu, a = res.mu, pr.prior_weights
        V = fam.variance(mu)
        dV = (1.0 - 2.0 * mu) if fam.kind == "binomial" else np.ones_like(mu)
        r = a * (pr.y - mu)
        S = Zk @ T
        h = np.einsum("ia,iab,ib->i", S, Minv[codes], S)
        c = h * a * dV * V
        Zr = np.stack([np.bincount(codes, weights=Zk[:, j] * r, minlength=lk) for j in range(pk)], axis=1)
        Zc = np.stack([np.bincount(codes, weights=Zk[:, j] * c, minlength=lk) for j in range(pk)], axis=1)
        u = res.u.reshape(lk, pk)
        v = np.einsum("lab,cb,lc->la", Minv, T, Zc)
        wrow = wl[codes]
        X = pr.X
        g_beta = -2.0 * (X.T @ (wrow * r)) + X.T @ (wrow * c) - np.einsum("l,lap,ab,lb->p", wl, ZWX, T, v)
        ATM = np.einsum("l,lab,bc,lcd->ad", wl, A, T, Minv)
        ATv = np.einsum("lab,bc,lc->la", A, T, v)
        Zr_w, Zc_w = Zr * wl[:, None], Zc * wl[:, None]
        dT = -2.0 * Zr_w.T @ u + 2.0 * ATM + Zc_w.T @ u + Zr_w.T @ v - (ATv * wl[:, None]).T @ u
        return np.concatenate([tm.pack([dT]), g_beta])

    def evaluate(self, x):
        self.n_eval += 1
        f, res = self.obj.evaluate(x)
        if not np.isfinite(f):
            return np.inf, res
        return float(self.counts @ self.cluster_terms(res)), res

    def __call__(self, x) -> float:
        return self.evaluate(x)[0]


@dataclass(frozen=True, eq=False)
class GlmmInference:
    """A fitted GLMM as the interval methods see it.

    Attributes
    ----------
    problem : GlmmProblem
        The rows of the fit (fitted terms, in their theta order).
    fit : GlmmFit
    fixef_names : list of str
    memo : dict
        Costly results already computed for this fit (profiles).
    """

    problem: GlmmProblem
    fit: object
    fixef_names: list
    memo: dict = field(default_factory=dict, repr=False)

    is_glmm = True

    # ------------------------------------------------------------ naming
    @property
    def tmap(self):
        return self.problem.tmap

    @property
    def n_sig(self) -> int:
        return self.tmap.n_theta

    @property
    def has_sigma(self) -> bool:
        """Whether the family's dispersion is estimated (a ``.sigma`` row)."""
        return bool(self.problem.family.has_dispersion)

    @property
    def n_var(self) -> int:
        """Variance parameters: the sds and correlations, and sigma where estimated."""
        return self.n_sig + int(self.has_sigma)

    @cached_property
    def param_names(self) -> list[str]:
        """lme4's confint names: ``.sig01``... (``.sigma``) then the fixed effects."""
        sig = [f".sig{i + 1:02d}" for i in range(self.n_sig)]
        return sig + ([".sigma"] if self.has_sigma else []) + list(self.fixef_names)

    @property
    def lower(self) -> np.ndarray:
        return self.tmap.lower

    @property
    def nAGQ(self) -> int:
        return max(int(self.fit.nAGQ), 1)

    @property
    def x_hat(self) -> np.ndarray:
        """(theta, beta) at the optimum."""
        return np.concatenate([self.fit.theta, self.fit.beta])

    @property
    def fixef_hat(self) -> np.ndarray:
        return np.asarray(self.fit.beta, dtype=float)

    def fixef_vcov(self) -> np.ndarray:
        return np.asarray(self.fit.vcov, dtype=float)

    def sigma_of(self, problem: GlmmProblem, res) -> float:
        """lme4's sigma: sqrt((Pearson sum of squares + |u|^2) / n) with a dispersion, else 1."""
        fam = problem.family
        if not fam.has_dispersion:
            return 1.0
        pear = problem.prior_weights * (problem.y - res.mu) ** 2 / fam.variance(res.mu)
        return float(np.sqrt((np.sum(pear) + res.ussq) / max(problem.n, 1)))

    def estimates_at(self, theta, beta, sigma: float = 1.0) -> np.ndarray:
        """Parameters in :attr:`param_names` order: sds/correlations (scaled by sigma), sigma, beta."""
        sd = self.tmap.sdcor(theta, sigma)
        return np.concatenate([sd, [sigma] if self.has_sigma else [], np.asarray(beta, dtype=float)])

    def estimates(self) -> np.ndarray:
        sigma = float(np.sqrt(self.fit.dispersion)) if self.has_sigma else 1.0
        return self.estimates_at(self.fit.theta, self.fit.beta, sigma)

    # ------------------------------------------------------------ the optimum's modes
    @cached_property
    def u_hat(self) -> np.ndarray:
        """The conditional modes at the optimum in the fitted terms' order (PIRLS from zero)."""
        obj = GlmmObjective(self.problem, nAGQ=self.nAGQ, stage=2, beta0=self.fit.beta)
        _, res = obj.evaluate(self.x_hat)
        return res.u

    def objective(self, problem: GlmmProblem | None = None, u0=None) -> GlmmObjective:
        """The stage-2 objective over (theta, beta), warm-started at ``u0`` (default: the fit's
        modes for the fit's own rows, zero for other rows)."""
        pr = self.problem if problem is None else problem
        if u0 is None:
            u0 = self.u_hat if pr is self.problem or pr.q == self.problem.q else np.zeros(pr.q)
        return GlmmObjective(pr, nAGQ=self.nAGQ, stage=2, beta0=self.fit.beta, u0=u0)

    def u_of(self, clusters) -> np.ndarray:
        """The fit's modes of the given clusters of the single grouping factor, in that order."""
        pk, lk = self.tmap.dims[0]
        return self.u_hat.reshape(lk, pk)[np.asarray(clusters, dtype=np.int64)].ravel()

    # ------------------------------------------------------------ resampling
    def simulate(self, rng: np.random.Generator) -> np.ndarray:
        """One response drawn from the fitted model, on the engine's scale (binomial: proportions)."""
        pr, f = self.problem, self.fit
        sigma = float(np.sqrt(f.dispersion)) if self.has_sigma else 1.0
        u = sigma * rng.standard_normal(pr.q)
        mu = pr.family.linkinv(pr.eta(f.theta, f.beta, u))
        return draw_response(f.family_name, mu[:, None], pr.prior_weights[:, None], f.dispersion, f.nb_theta,
                             rng)[:, 0]

    def refit(self, problem: GlmmProblem, x0=None, u0=None, counts=None):
        """Minimize the objective of ``problem`` over (theta, beta) from x0 (default: the estimates).

        ``counts`` (one per level of the single grouping factor): the
        objective of that many independent copies of each cluster
        (:class:`ClusterWeightedObjective`).

        Returns
        -------
        x : ndarray (n_theta + p,)
        res : PirlsResult at x
        ok : bool
            The optimizer's verdict and a successful PIRLS at the optimum.
        """
        obj = self.objective(problem, u0)
        if counts is not None:
            obj = ClusterWeightedObjective(obj, counts)
        start = self.x_hat if x0 is None else np.asarray(x0, dtype=float)
        nt = self.n_sig
        start = np.concatenate([lift_start(start[:nt], problem.tmap.lower), start[nt:]])
        with blas_threads(1):
            opt = minimize_theta(obj, start, obj.lower, tol=REFIT_TOL)
            opt = escape_bound(obj, opt, obj.lower, start)
            _, res = obj.evaluate(opt.x)
        return np.asarray(opt.x, dtype=float), res, bool(opt.success and res.ok)

    def refit_estimates(self, problem: GlmmProblem, x0=None, u0=None, counts=None):
        """:meth:`refit`, reported in :attr:`param_names` order, with x, the PIRLS record and the flag."""
        x, res, ok = self.refit(problem, x0, u0, counts)
        nt = self.n_sig
        return self.estimates_at(x[:nt], x[nt:], self.sigma_of(problem, res)), x, res, ok

    # ------------------------------------------------------------ clusters
    @property
    def single_factor(self) -> bool:
        return self.tmap.n_terms == 1

    @property
    def levels(self) -> list[int]:
        return list(self.problem.levels)

    @property
    def codes(self) -> list[np.ndarray]:
        return list(self.problem.codes)

    def cluster_rows(self, clusters: np.ndarray) -> tuple[GlmmProblem, np.ndarray]:
        """The rows of the given clusters, their levels renumbered 0..b-1 in the given order.

        Returns
        -------
        sub : GlmmProblem
        local : ndarray (n_sub,)
            The local cluster index of each row of ``sub``.
        """
        pr = self.problem
        clusters = np.asarray(clusters, dtype=np.int64)
        pos = np.full(pr.levels[0], -1, dtype=np.int64)
        pos[clusters] = np.arange(clusters.size)
        loc = pos[pr.codes[0]]
        rows = np.flatnonzero(loc >= 0)
        local = loc[rows].astype(np.intp)
        dims = ((pr.tmap.dims[0][0], int(clusters.size)),)
        sub = replace(pr, X=pr.X[rows], y=pr.y[rows], prior_weights=pr.prior_weights[rows],
                      trials=None if pr.trials is None else pr.trials[rows], offset=pr.offset[rows],
                      codes=(local,), Zx=(pr.Zx[0][rows],), tmap=pr.tmap.with_levels(dims))
        return sub, local

    def rows_of(self, rows: np.ndarray, compact: bool = True) -> GlmmProblem:
        """The problem on a subset of rows; ``compact`` renumbers each factor's levels among those present."""
        pr = self.problem
        codes, dims = [], []
        for c, (pk, lk) in zip(pr.codes, pr.tmap.dims):
            c = c[rows]
            if compact:
                present = np.bincount(c, minlength=lk) > 0
                c = ((np.cumsum(present) - 1)[c]).astype(np.intp)
                lk = int(present.sum())
            codes.append(c)
            dims.append((pk, lk))
        return replace(pr, X=pr.X[rows], y=pr.y[rows], prior_weights=pr.prior_weights[rows],
                       trials=None if pr.trials is None else pr.trials[rows], offset=pr.offset[rows],
                       codes=tuple(codes), Zx=tuple(z[rows] for z in pr.Zx), tmap=pr.tmap.with_levels(tuple(dims)))
