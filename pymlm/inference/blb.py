"""Bag of little bootstraps (BLB) for mixed models with independent clusters.

The cluster bootstrap of a model with N independent clusters refits the
model to resamples of N clusters drawn with replacement. The bag of little
bootstraps (Kleiner, Talwalkar, Sarkar & Jordan 2014) obtains the same
quality assessment from s small subsets of b = N^gamma distinct clusters:
inside subset j, a resample of size N is a vector of multinomial counts

    c ~ Multinomial(N; 1/b, ..., 1/b)

on the subset's b clusters, and the resample's fit weights each cluster's
cross-products by its count (:meth:`~pymlm.crossprod.ClusterCrossProducts.combine`),
so a resample costs O(b), not O(N) (Zhou, Zhou & Hua, MixedModelsBLB.jl):
the criterion is the cluster-resample evaluator
(:class:`~pymlm.fit.deviance.ClusterEvaluator`), minimized by the driver's
:func:`~pymlm.fit._optimize.minimize_from`.
The percentile quantiles of each subset's r resamples are averaged over the
s subsets.

A GLMM has no cross-products for a count to weight: its subset keeps the
rows of its b clusters, and a resample's objective is the count-weighted sum
of the clusters' terms of the Laplace (or AGQ) objective, the objective of
c_i independent copies of cluster i (:mod:`pymlm.inference._glmm`), so a
refit costs a PIRLS pass over the subset's rows, O(b) clusters, never O(N).

Centering
---------
Inside subset j the resampled estimates are centred on the subset's own
estimate theta_j (the fit with every cluster weighted N/b, the parameter of
the resampling world), whose error is O(b^{-1/2}), much larger than the
O(N^{-1/2}) spread of the resamples. The average of the raw percentile
endpoints (Kleiner et al.; ``center="subsets"``) therefore inherits an error
of variance about 1/(s b) + 1/N in units where the estimator's variance is
1/N: when s b is much smaller than N (the regime BLB is meant for), the
intervals are too narrow for their displaced centre and cover poorly. By
default (``center="fit"``) the averaged quantiles of theta*_jk - theta_j
are added to the full-data estimate theta_hat, which is available because
the model was fitted:

    [theta_hat + mean_j q_j(alpha/2),  theta_hat + mean_j q_j(1 - alpha/2)],

the percentile interval of the ordinary cluster bootstrap with its quantiles
estimated the BLB way. With one subset of b = N clusters it is exactly the
percentile interval of a cluster bootstrap.

Reproducibility
---------------
The user's seed is split into two children: the first (spawned once per
subset) draws each subset's clusters, the second seeds the subsets'
resampling generators through
:func:`~pymlm.inference._parallel.run_replicates`, so results do not depend
on ``n_jobs``. :func:`draws` returns the same subsets and counts.

References
----------
Kleiner, A., Talwalkar, A., Sarkar, P. and Jordan, M. I. (2014). A scalable
bootstrap for massive data. J. R. Stat. Soc. B 76(4), 795-816.

Zhou, X., Zhou, J. J. and Hua, Z. (2021+). Bag of little bootstraps for
massive and distributed longitudinal data. Statistical Analysis and Data
Mining; software MixedModelsBLB.jl.

Field, C. A. and Welsh, A. H. (2007). Bootstrapping clustered data.
J. R. Stat. Soc. B 69(3), 369-390.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from .._validation import check_choice, check_level, check_positive_int, seed_sequence
from ..crossprod import ClusterCrossProducts, CrossProducts, cluster_cross_products
from ..errors import ConvergenceWarning, OptionError, warn
from ..fit._optimize import minimize_from
from ..fit.deviance import ClusterEvaluator
from ..linalg._threads import blas_threads
from ._parallel import run_replicates

__all__ = ["draws", "fit_resample", "interval", "subset_size_for"]

OPTIONS = ("n_subsets", "n_boots", "subset_exponent", "subset_size", "center")
DEFAULT_EXPONENT = 0.7


# ---------------------------------------------------------------- helpers shared with split
def slim_problem(problem):
    """A copy of ``problem`` without its data-sized arrays, cheap to send to worker processes.

    It keeps what :meth:`LmmProblem.refit_cp` and :meth:`LmmProblem.estimates`
    read (bounds, layout, REML flag, names, the optimum's theta, sigma, beta)
    and drops the rows, the cross-products and the factor.
    """
    cp = problem.cp
    stub = CrossProducts(dims=cp.dims, p=cp.p, n=cp.n, sum_log_w=cp.sum_log_w, zz_diag=())
    fit = replace(problem.fit, factor=None, u={}, evaluator=None)
    return replace(problem, cp=stub, fit=fit, codes=[], Xs=[], X=None, y=None, weights=None, memo={})


def seed_children(seed, n: int) -> list[np.random.SeedSequence]:
    """``n`` independent children of the user's seed (a SeedSequence argument is not mutated)."""
    return seed_sequence(seed).spawn(n)


def check_options(method: str, options: dict, allowed) -> None:
    """Reject keyword options a method does not take, naming the ones it does."""
    bad = sorted(set(options) - set(allowed))
    if bad:
        raise OptionError(
            f"the {method} method takes the options {', '.join(allowed)}; got unknown option(s) {', '.join(bad)}"
        )


def check_fraction(name: str, value, low: float, high: float, closed_high: bool = True) -> float:
    """A real number in (low, high] (or (low, high))."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if ok:
        v = float(value)
        ok = v > low and (v <= high if closed_high else v < high)
    if not ok:
        interval = f"({low:g}, {high:g}{']' if closed_high else ')'}"
        raise OptionError(f"{name} must be a number in {interval}; got {value!r}")
    return float(value)


def cluster_blocks(problem, clusters: np.ndarray) -> ClusterCrossProducts:
    """Per-cluster cross-products of the given clusters only, in the given order.

    Computing the blocks of every cluster would cost a pass over all rows and
    O(N (p + 1)^2) memory; the subsets of a bag of little bootstraps touch
    only s b clusters, whose rows are found with one vectorized lookup.
    """
    clusters = np.asarray(clusters, dtype=np.int64)
    given = problem.memo.get("cluster_blocks")    # (clusters, blocks) accumulated elsewhere (a stream)
    if given is not None and np.array_equal(given[0], clusters):
        return given[1]
    if "clusters" in problem.__dict__:        # already computed for every cluster
        C = problem.clusters
        return ClusterCrossProducts(C.zz[clusters], C.zxy[clusters], C.xyxy[clusters], C.n[clusters],
                                    C.sum_log_w[clusters])
    codes = problem.codes[0]
    pos = np.full(problem.levels[0], -1, dtype=np.int64)
    pos[clusters] = np.arange(clusters.size)
    local = pos[codes]
    rows = np.flatnonzero(local >= 0)
    w = None if problem.weights is None else problem.weights[rows]
    return cluster_cross_products(local[rows], problem.Xs[0][rows], clusters.size, problem.X[rows],
                                  problem.y[rows], w)


def require_clusters(problem, method: str) -> None:
    """Refuse a model whose random terms do not all share one grouping factor.

    Raises
    ------
    OptionError
        Crossed or nested grouping factors: the clusters are not independent.
    """
    if not problem.single_factor:
        raise OptionError(
            f"{method} resamples independent clusters and needs every random term on one grouping factor; "
            "the model has several (crossed or nested) grouping factors"
        )


# ---------------------------------------------------------------- draws
def subset_size_for(n_clusters: int, subset_exponent: float | None = None, subset_size: int | None = None) -> int:
    """b = round(N^gamma), at least 2 and at most N, or an explicit ``subset_size``.

    Raises
    ------
    OptionError
        Both given, or a size outside [2, N].
    """
    if subset_size is not None:
        if subset_exponent is not None:
            raise OptionError("give subset_size or subset_exponent, not both; "
                              f"got subset_size={subset_size!r} and subset_exponent={subset_exponent!r}")
        b = check_positive_int("subset_size", subset_size, minimum=2)
        if b > n_clusters:
            raise OptionError(f"subset_size must be at most the number of clusters ({n_clusters}); got {b}")
        return b
    gamma = DEFAULT_EXPONENT if subset_exponent is None else check_fraction("subset_exponent", subset_exponent, 0.0, 1.0)
    return int(min(n_clusters, max(2, round(n_clusters ** gamma))))


def _subset_clusters(ss: np.random.SeedSequence, n_clusters: int, b: int) -> np.ndarray:
    return np.random.default_rng(ss).choice(n_clusters, size=b, replace=False)


def _counts(rng: np.random.Generator, n_clusters: int, b: int, r: int) -> np.ndarray:
    # a resample of N clusters from the subset's b: multinomial counts, (r, b)
    return rng.multinomial(n_clusters, np.full(b, 1.0 / b), size=r)


def draws(seed, n_clusters: int, n_subsets: int, n_boots: int, subset_size: int):
    """The subsets and resample counts that :func:`interval` uses for ``seed``.

    Returns
    -------
    subsets : ndarray of int (s, b)
        Cluster indices (level codes) of each subset.
    counts : ndarray of int (s, r, b)
        Multinomial counts of each resample, summing to N.
    """
    sub_ss, boot_ss = seed_children(seed, 2)
    subsets = np.stack([_subset_clusters(ss, n_clusters, subset_size) for ss in sub_ss.spawn(n_subsets)])
    rngs = [np.random.default_rng(ss) for ss in boot_ss.spawn(n_subsets)]
    counts = np.stack([_counts(g, n_clusters, subset_size, n_boots) for g in rngs])
    return subsets, counts


# ---------------------------------------------------------------- resample fits
def fit_resample(problem, blocks: ClusterCrossProducts, counts, clusters, start):
    """theta and all parameters (``problem.param_names`` order) of the fit to c_i copies of each cluster."""
    obj = ClusterEvaluator(blocks, counts, clusters, problem.reml, problem.tmap)
    with blas_threads(1):
        theta = minimize_from(obj, start, problem.lower).x
        pt = obj.at(theta)
    return theta, np.concatenate([problem.sdcor(theta, pt.sigma), [pt.sigma], pt.beta])


# ---------------------------------------------------------------- one subset (worker)
def _one_subset(payload, rng, j):
    """Fit subset j once (clusters weighted N/b), then its r resamples warm-started there."""
    slim, blocks, local, n_clusters, n_boots = payload
    idx = local[j]
    b = idx.size
    n_par = len(slim.param_names)
    theta0, est0 = fit_resample(slim, blocks, np.full(b, n_clusters / b), idx, slim.fit.theta)
    out = np.full((n_boots, n_par), np.nan)
    counts = _counts(rng, n_clusters, b, n_boots)
    for k in range(n_boots):
        try:
            out[k] = fit_resample(slim, blocks, counts[k], idx, theta0)[1]
        except (np.linalg.LinAlgError, FloatingPointError):
            pass          # recorded as a missing replicate
    return est0, out


def _one_subset_glmm(payload, rng, j):
    """A GLMM's subset j: its b clusters' rows, the fit with every cluster counted N/b times, then r
    resamples of multinomial counts, warm-started at the subset's fit."""
    glmm, subs, subsets, n_clusters, n_boots = payload
    sub, local = subs[j]
    b = subsets[j].size
    n_par = len(glmm.param_names)
    with blas_threads(1):
        u0 = glmm.u_of(subsets[j])
        est0, x0, res0, _ = glmm.refit_estimates(sub, u0=u0, counts=np.full(b, n_clusters / b))
        out = np.full((n_boots, n_par), np.nan)
        counts = _counts(rng, n_clusters, b, n_boots)
        for k in range(n_boots):
            try:
                est, _, _, ok = glmm.refit_estimates(sub, x0=x0, u0=res0.u, counts=counts[k])
            except (np.linalg.LinAlgError, FloatingPointError):
                continue          # recorded as a missing replicate
            if ok:
                out[k] = est
    return est0, out


# ---------------------------------------------------------------- interval
def interval(problem, level: float = 0.95, seed=None, n_jobs: int = 1, progress: bool = True,
             n_subsets: int = 10, n_boots: int = 200, subset_exponent: float | None = None,
             subset_size: int | None = None, center: str = "fit", **options) -> pd.DataFrame:
    r"""Bag-of-little-bootstraps percentile intervals for every parameter.

    Parameters
    ----------
    problem : LmmProblem
        A fit whose random terms all share one grouping factor.
    level : float
        Confidence level in (0, 1).
    seed : int, SeedSequence or None
        Results depend on the seed only, not on ``n_jobs``.
    n_jobs : int
        Processes over which the subsets are spread (``-1``: one per CPU).
    progress : bool
        Progress bar over subsets.
    n_subsets : int
        s, the number of subsets (default 10).
    n_boots : int
        r, resamples per subset (default 200, at least 2).
    subset_exponent : float in (0, 1]
        gamma in b = round(N^gamma) (default 0.7).
    subset_size : int, optional
        b given directly (2 <= b <= N); excludes ``subset_exponent``.
    center : {"fit", "subsets"}
        ``"fit"`` (default): averaged quantiles of theta* - theta_j added to
        the full-data estimate (see the module notes); ``"subsets"``: the
        average of the subsets' raw percentile endpoints, as Kleiner et al.
        and MixedModelsBLB.jl.

    Returns
    -------
    DataFrame
        lme4's layout (``.sig01``..., ``.sigma``, fixed effects). ``attrs``:
        ``replicates`` (one row per resample: ``subset``, ``replicate`` and
        every parameter), ``subset_estimates`` (the s subset fits),
        ``estimates`` (the centre: the full-data fit, or the mean of the
        subset fits with ``center="subsets"``), ``subsets`` (s x b cluster
        codes), ``failed`` (resamples whose fit failed, left out),
        ``settings``.

    Raises
    ------
    OptionError
        Several grouping factors, a bad option value, or an unknown option.

    Notes
    -----
    With q_j(a) the a-quantile of theta*_jk - theta_j over k = 1..r in
    subset j, the interval is theta_hat + (1/s) sum_j q_j(alpha/2) to
    theta_hat + (1/s) sum_j q_j(1 - alpha/2), computed on lme4's scale
    (standard deviations, correlations, sigma, fixed effects); standard
    deviations are kept >= 0 and correlations in [-1, 1]. A cluster drawn c
    times enters its resample as c independent copies, as in the cluster
    bootstrap (Field & Welsh 2007). Each refit starts at its subset's
    estimate, which the subset's first fit provides.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> ci = m.confint("blb", seed=1, n_subsets=3, n_boots=50, progress=False)
    >>> list(ci.columns), ci.attrs["replicates"].shape
    (['2.5 %', '97.5 %'], (150, 8))
    """
    check_options("blb", options, OPTIONS)
    level = check_level(level)
    require_clusters(problem, "the bag of little bootstraps")
    n_subsets = check_positive_int("n_subsets", n_subsets)
    n_boots = check_positive_int("n_boots", n_boots, minimum=2)
    center = check_choice("center", center, ("fit", "subsets"))
    N = int(problem.levels[0])
    b = subset_size_for(N, subset_exponent, subset_size)

    sub_ss, boot_ss = seed_children(seed, 2)
    subsets = np.stack([_subset_clusters(ss, N, b) for ss in sub_ss.spawn(n_subsets)])
    # the blocks of the clusters some subset uses, computed once
    if problem.is_glmm:
        # a GLMM has no cluster cross-products: each subset keeps the rows of its b clusters
        problem.u_hat
        payload = (problem, [problem.cluster_rows(idx) for idx in subsets], subsets, N, n_boots)
        worker = _one_subset_glmm
    else:
        union, inverse = np.unique(subsets, return_inverse=True)
        local = inverse.reshape(subsets.shape)
        blocks = cluster_blocks(problem, union)
        payload = (slim_problem(problem), blocks, local, N, n_boots)
        worker = _one_subset
    results = run_replicates(worker, payload, n_subsets, seed=boot_ss, n_jobs=n_jobs, progress=progress,
                             desc="BLB subsets", batch=1)
    est0 = np.stack([r[0] for r in results])                     # (s, P)
    reps = np.stack([r[1] for r in results])                     # (s, r, P)

    names = problem.param_names
    a = (1.0 - level) / 2.0
    failed = int(np.isnan(reps).all(axis=2).sum())
    if failed:
        warn(f"{failed} of {n_subsets * n_boots} BLB resample fits failed and were left out",
                      ConvergenceWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN columns (e.g. an undefined correlation)
        if center == "fit":
            centre = problem.estimates()
            dev = reps - est0[:, None, :]
            lower = centre + np.nanmean(np.nanquantile(dev, a, axis=1), axis=0)
            upper = centre + np.nanmean(np.nanquantile(dev, 1.0 - a, axis=1), axis=0)
        else:
            centre = np.nanmean(est0, axis=0)
            lower = np.nanmean(np.nanquantile(reps, a, axis=1), axis=0)
            upper = np.nanmean(np.nanquantile(reps, 1.0 - a, axis=1), axis=0)
    lower, upper = _clip_to_range(problem, lower), _clip_to_range(problem, upper)

    from . import interval_frame

    out = interval_frame(problem, lower, upper, level)
    table = pd.DataFrame(reps.reshape(-1, len(names)), columns=names)
    table.insert(0, "replicate", np.tile(np.arange(1, n_boots + 1), n_subsets))
    table.insert(0, "subset", np.repeat(np.arange(1, n_subsets + 1), n_boots))
    out.attrs["replicates"] = table
    out.attrs["subset_estimates"] = pd.DataFrame(est0, columns=names,
                                                 index=pd.RangeIndex(1, n_subsets + 1, name="subset"))
    out.attrs["estimates"] = pd.Series(centre, index=names)
    out.attrs["subsets"] = subsets
    out.attrs["failed"] = failed
    out.attrs["settings"] = {"n_subsets": n_subsets, "n_boots": n_boots, "subset_size": b,
                             "subset_exponent": (DEFAULT_EXPONENT if subset_exponent is None else float(subset_exponent))
                             if subset_size is None else None,
                             "n_clusters": N, "center": center}
    return out


def sd_cor_kinds(problem) -> np.ndarray:
    """Per parameter: 0 a standard deviation (or sigma), 1 a correlation, 2 a fixed effect."""
    kinds = np.where(problem.tmap.is_diag, 0, 1)
    n_sigma = problem.n_var - problem.n_sig
    return np.concatenate([kinds, np.zeros(n_sigma, int), np.full(len(problem.fixef_names), 2)])


def _clip_to_range(problem, x: np.ndarray) -> np.ndarray:
    kinds = sd_cor_kinds(problem)
    x = np.array(x, dtype=float)
    x[kinds == 0] = np.maximum(x[kinds == 0], 0.0)
    x[kinds == 1] = np.clip(x[kinds == 1], -1.0, 1.0)
    return x
