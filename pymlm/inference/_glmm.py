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
  a bag of little bootstraps or a split sample fits. A cluster drawn c times
  enters with its prior weights multiplied by c (frequency weights), so a
  resample costs a pass over the subset's rows, never over all N clusters.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from ..errors import OptionError
from ..fit._optimize import escape_bound, lift_start, minimize_theta
from ..fit.glmm import GlmmObjective, GlmmProblem
from ..linalg._threads import blas_threads

__all__ = ["GlmmInference", "draw_response"]

REFIT_TOL = 1e-11


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
        """The stage-2 objective over (theta, beta), warm-started at the fit's modes."""
        pr = self.problem if problem is None else problem
        u = self.u_hat if u0 is None else u0
        return GlmmObjective(pr, nAGQ=self.nAGQ, stage=2, beta0=self.fit.beta, u0=u)

    # ------------------------------------------------------------ resampling
    def simulate(self, rng: np.random.Generator) -> np.ndarray:
        """One response drawn from the fitted model, on the engine's scale (binomial: proportions)."""
        pr, f = self.problem, self.fit
        sigma = float(np.sqrt(f.dispersion)) if self.has_sigma else 1.0
        u = sigma * rng.standard_normal(pr.q)
        mu = pr.family.linkinv(pr.eta(f.theta, f.beta, u))
        return draw_response(f.family_name, mu[:, None], pr.prior_weights[:, None], f.dispersion, f.nb_theta,
                             rng)[:, 0]

    def refit(self, problem: GlmmProblem, x0=None, u0=None):
        """Minimize the objective of ``problem`` over (theta, beta) from x0 (default: the estimates).

        Returns
        -------
        x : ndarray (n_theta + p,)
        res : PirlsResult at x
        ok : bool
            The optimizer's verdict and a successful PIRLS at the optimum.
        """
        obj = self.objective(problem, u0)
        start = self.x_hat if x0 is None else np.asarray(x0, dtype=float)
        nt = self.n_sig
        start = np.concatenate([lift_start(start[:nt], problem.tmap.lower), start[nt:]])
        with blas_threads(1):
            opt = minimize_theta(obj, start, obj.lower, tol=REFIT_TOL)
            opt = escape_bound(obj, opt, obj.lower, start)
            _, res = obj.evaluate(opt.x)
        return np.asarray(opt.x, dtype=float), res, bool(opt.success and res.ok)

    def refit_estimates(self, problem: GlmmProblem, x0=None, u0=None):
        """:meth:`refit`, reported in :attr:`param_names` order, with its convergence flag."""
        x, res, ok = self.refit(problem, x0, u0)
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

    @staticmethod
    def weighted(sub: GlmmProblem, local: np.ndarray, counts) -> GlmmProblem:
        """``sub`` with each cluster's prior weights multiplied by its (multinomial) count."""
        c = np.asarray(counts, dtype=float)[local]
        return replace(sub, prior_weights=sub.prior_weights * c,
                       trials=None if sub.trials is None else sub.trials * c)
