"""Parametric bootstrap intervals, as lme4's ``bootMer`` and ``confint(method = "boot")``.

Each replicate draws a response from the fitted model,

    y* = X beta_hat + Z Lambda_hat u* + e*,   u* ~ N(0, sigma_hat^2 I),  e* ~ N(0, sigma_hat^2 W^{-1}),

refits the model to it (REML or ML, as the original fit; started at the
estimates) and records every parameter: the random-effect sds and
correlations, sigma and the fixed effects. The interval is read from the
replicates as ``boot::boot.ci`` does for lme4 (``type = "perc"``: order
statistics interpolated on the normal scale; ``"basic"``; ``"norm"``).

Only the response changes between replicates, so a refit needs the y column
of the cross-products alone (Z'Wy, X'Wy, y'Wy: one pass over the rows), and
for small models the criterion is the dense evaluator of
:mod:`pymlm.fit.deviance`, minimized by a projected quasi-Newton method
started from the inverse Hessian at the estimates
(:func:`pymlm.fit._optimize.refit`): a few factorizations of a (q + p + 1)
square matrix per replicate.

Replicate i always uses the random stream ``SeedSequence(seed).spawn(nsim)[i]``,
so the replicates and the interval do not depend on ``n_jobs``.

GLMMs
-----
A replicate draws u* ~ N(0, I), the means mu* = g^{-1}(X beta_hat + Z Lambda_hat u*)
and y* from the family (binomial successes of the same trials, Poisson
counts...), as lme4's ``simulate``, then minimizes the Laplace / AGQ
objective of y* over (theta, beta) (:meth:`~pymlm.inference.GlmmInference.refit`):
started at the estimates, with PIRLS started at the fit's conditional modes,
a refit takes a few quasi-Newton steps of warm-started PIRLS evaluations
instead of lme4's two-stage search from scratch.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import check_choice, check_positive_int
from ..crossprod import response_cross_products
from ..errors import ConvergenceWarning, OptionError, warn
from ..fit._optimize import gradient_hessian, positive_inverse, refit
from ..fit.deviance import evaluator_for, single_threaded
from ._parallel import run_replicates

__all__ = ["OPTIONS", "boot_interval", "interval", "replicates", "statistic_replicates"]

#: options of ``confint(method="boot")``: lme4's ``nsim = 500`` and ``boot.type = "perc"``
OPTIONS = {"nsim": 500, "type": "perc"}
TYPES = ("perc", "basic", "norm")


class _Bootstrap:
    """What each replicate needs (sent once to each worker process)."""

    def __init__(self, problem, kind: str = "auto"):
        self.problem = problem
        self.dev = evaluator_for(problem.cp, problem.reml, problem.tmap, kind)
        self.lower = np.asarray(problem.lower, dtype=float)
        self.theta_hat = np.asarray(problem.fit.theta, dtype=float)
        self.reml = problem.reml
        self.hess_inv = None
        if self.dev.kind == "dense" and self.theta_hat.size:
            with single_threaded():
                self.hess_inv = positive_inverse(gradient_hessian(self.dev, self.theta_hat))

    def response_blocks(self, y):
        """Z_k'Wy per term (l_k, p_k), X'Wy and y'Wy: one vectorized pass over the rows."""
        pr = self.problem
        wy = y if pr.weights is None else pr.weights * y
        zy = []
        for codes, Xk, lk in zip(pr.codes, pr.Xs, pr.levels):
            zy.append(np.stack([np.bincount(codes, weights=Xk[:, c] * wy, minlength=lk)
                                for c in range(Xk.shape[1])], axis=1))
        xy = np.asarray(pr.X.T @ wy).ravel()
        return zy, xy, float(y @ wy)

    def refit(self, y):
        """All parameters of the model refitted to response y (minus offset), lme4's order."""
        dev = self.dev.with_cp(response_cross_products(self.dev.cp, *self.response_blocks(y)))
        theta, pt, ok = refit(dev, self.theta_hat, tol=1e-12, hess_inv=self.hess_inv)
        return np.concatenate([self.problem.sdcor(theta, pt.sigma), [pt.sigma], pt.beta, [float(ok)]])


    def replicate(self, rng):
        y = self.problem.simulate(rng, 1)[:, 0]
        return self.refit(y)


class _GlmmBootstrap:
    """A GLMM's replicate: y* from the fitted model, then the objective of y* minimized over
    (theta, beta) from the estimates, PIRLS started at the fit's conditional modes."""

    def __init__(self, glmm):
        self.problem = glmm
        glmm.u_hat            # computed once, before the payload travels to the workers

    def replicate(self, rng):
        g = self.problem
        y = g.simulate(rng)
        est, _, _, ok = g.refit_estimates(replace(g.problem, y=y))
        return np.concatenate([est, [float(ok)]])


def _replicate(boot, rng, i):
    with single_threaded():
        try:
            return boot.replicate(rng)
        except np.linalg.LinAlgError:
            return np.full(len(boot.problem.param_names) + 1, np.nan)


def replicates(problem, nsim: int = 500, seed=None, n_jobs: int = 1, progress: bool = True,
               _kind: str = "auto") -> pd.DataFrame:
    """Parametric bootstrap replicates of every parameter (lme4's ``bootMer(m, FUN, nsim)$t``).

    Returns
    -------
    DataFrame (nsim, n_par)
        Columns ``.sig01``..., ``.sigma``, the fixed effects; ``attrs["converged"]``
        counts the refits that met the convergence test.
    """
    nsim = check_positive_int("nsim", nsim)
    boot = _GlmmBootstrap(problem) if problem.is_glmm else _Bootstrap(problem, _kind)
    rows = run_replicates(_replicate, boot, nsim, seed=seed, n_jobs=n_jobs, progress=progress,
                          desc="parametric bootstrap")
    table = np.vstack(rows)
    out = pd.DataFrame(table[:, :-1], columns=list(problem.param_names))
    out.attrs["converged"] = int(np.nansum(table[:, -1]))
    return out


class _Statistic:
    """A problem to draw responses from and a statistic of the response (sent once to each worker)."""

    def __init__(self, problem, statistic):
        self.problem = problem
        self.statistic = statistic


def _statistic_replicate(job: _Statistic, rng, i):
    y = job.problem.simulate(rng, 1)[:, 0]
    return job.statistic(y)


def statistic_replicates(problem, statistic, nsim: int = 100, seed=None, n_jobs: int = 1,
                         progress: bool = True) -> list:
    """Any statistic of parametric bootstrap responses (the engine of lme4's ``bootMer(m, FUN)``).

    Replicate i draws its response exactly as :func:`replicates` does
    (``problem.simulate`` with the stream ``SeedSequence(seed).spawn(nsim)[i]``),
    so the same seed gives the same responses to both.

    Parameters
    ----------
    problem : LmmProblem
    statistic : callable
        ``y -> result`` for a response vector y (n,) minus the offset;
        picklable when ``n_jobs > 1``.
    nsim, seed, n_jobs, progress
        As :func:`replicates`.

    Returns
    -------
    list
        ``statistic``'s results in replicate order.
    """
    nsim = check_positive_int("nsim", nsim)
    return run_replicates(_statistic_replicate, _Statistic(problem, statistic), nsim, seed=seed, n_jobs=n_jobs,
                          progress=progress, desc="parametric bootstrap")


def _norm_inter(t: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``boot:::norm.inter``: quantiles interpolated between order statistics on the normal scale."""
    t = np.sort(t[np.isfinite(t)])
    R = t.size
    if R == 0:
        return np.full(alpha.shape, np.nan)
    rk = (R + 1) * alpha
    k = np.trunc(rk).astype(int)
    out = np.empty(alpha.shape)
    exact = k == rk
    low, high = k <= 0, k >= R
    out[low] = t[0]
    out[high] = t[-1]
    mid = ~(exact | low | high)
    sel = exact & ~low & ~high
    out[sel] = t[k[sel] - 1]
    if np.any(mid):
        km = k[mid]
        z = stats.norm.ppf(alpha[mid])
        z1 = stats.norm.ppf(km / (R + 1))
        z2 = stats.norm.ppf((km + 1) / (R + 1))
        tk, tk1 = t[km - 1], t[km]
        out[mid] = tk + (z - z1) / (z2 - z1) * (tk1 - tk)
    return out


def boot_interval(t: np.ndarray, t0: float, level: float, type: str = "perc") -> tuple[float, float]:
    """One parameter's interval from its replicates, as ``boot::boot.ci``.

    Parameters
    ----------
    t : ndarray (nsim,)
        Replicates (non-finite ones are left out).
    t0 : float
        The estimate.
    level : float
    type : {"perc", "basic", "norm"}
        ``perc``: the (1 -/+ level)/2 quantiles; ``basic``: 2 t0 minus them;
        ``norm``: t0 - bias -/+ z sd(t), bias = mean(t) - t0.
    """
    t = np.asarray(t, dtype=float)
    a = np.array([(1 - level) / 2, (1 + level) / 2])
    if type == "perc":
        lo, hi = _norm_inter(t, a)
    elif type == "basic":
        q = _norm_inter(t, a[::-1])
        lo, hi = 2 * t0 - q
    else:
        ok = t[np.isfinite(t)]
        if ok.size < 2:
            return np.nan, np.nan
        bias = ok.mean() - t0
        merr = ok.std(ddof=1) * stats.norm.ppf((1 + level) / 2)
        lo, hi = t0 - bias - merr, t0 - bias + merr
    return float(lo), float(hi)


def _check_options(options: dict) -> dict:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise OptionError(f"the boot method does not take the option(s) {unknown}; it takes {sorted(OPTIONS)} "
                          "(nsim: number of bootstrap replicates, default 500 as lme4; type: 'perc', "
                          "'basic' or 'norm')")
    out = dict(OPTIONS)
    out.update(options)
    out["nsim"] = check_positive_int("nsim", out["nsim"], minimum=2)
    out["type"] = check_choice("type", out["type"], TYPES)
    return out


def interval(problem, level: float = 0.95, seed=None, n_jobs: int = 1, progress: bool = True, **options):
    """Parametric bootstrap intervals of every parameter (lme4's ``confint(method = "boot")``).

    Parameters
    ----------
    problem : LmmProblem
    level : float
    seed : int, optional
        Replicates are reproducible from it whatever ``n_jobs``.
    n_jobs : int
        Processes.
    progress : bool
        A progress bar over the replicates.
    **options
        ``nsim`` (500, as lme4's ``confint``), ``type`` (``"perc"``, as lme4;
        or ``"basic"``, ``"norm"``).

    Returns
    -------
    DataFrame
        lme4's layout; ``attrs["replicates"]`` holds the replicate table.

    Raises
    ------
    OptionError
        An unknown option or a bad value.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> ci = m.confint("boot", nsim=200, seed=1, progress=False)
    >>> ci.attrs["replicates"].shape
    (200, 6)
    """
    opts = _check_options(options)
    from . import interval_frame

    reps = replicates(problem, opts["nsim"], seed=seed, n_jobs=n_jobs, progress=progress)
    est = problem.estimates()
    ends = np.array([boot_interval(reps[c].to_numpy(), est[i], level, opts["type"])
                     for i, c in enumerate(reps.columns)])
    out = interval_frame(problem, ends[:, 0], ends[:, 1], level)
    out.attrs["settings"] = opts
    out.attrs["replicates"] = reps
    failed = int(opts["nsim"] - reps.attrs["converged"])
    out.attrs["failed"] = failed
    if failed:
        warn(f"{failed} of {opts['nsim']} bootstrap refits did not meet the convergence test",
                  ConvergenceWarning)
    return out
