"""Split-sample intervals of a fit streamed from a source that is not in memory.

With one grouping factor and ``mode="independent"`` the groups are partitioned
exactly as :func:`pymlm.inference.split.interval` partitions them (the same
draw from the same seed). A subset's per-group blocks are those of the whole
fit's cross-products (each group's block holds only its own rows), so one
more pass over the source only accumulates the ``M`` small ``[X y]'W[X y]``
blocks, the row counts and the log weights of the subsets, in memory that
does not grow with the rows. Each subset is then fitted and the intervals
are formed as for a fit in memory.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from .._validation import (
    check_bool,
    check_choice,
    check_level,
    check_n_jobs,
    check_positive_int,
    check_seed,
)
from ..crossprod import CrossProducts
from ..errors import OptionError
from ._parallel import run_replicates
from .blb import check_options, seed_children, slim_problem
from .split import (
    MODES,
    OPTIONS,
    VARIANCES,
    _fit_one,
    _intervals,
    _psi_names,
    natural_parameters,
    partition_groups,
    reported,
)

__all__ = ["streamed_split_interval"]


def _subset_grams(design, part: np.ndarray, M: int, progress: bool):
    """Per subset: [X y]'W[X y], rows of positive weight and the sum of their log weights (one pass)."""
    import scipy.sparse as sp

    from ..design import batch_arrays

    p = len(design.fixed_spec.names) if not design.dropped_columns else len(design.X_names)
    grams = [[] for _ in range(M)]
    ns = np.zeros(M, dtype=np.int64)
    logs = [[] for _ in range(M)]
    for batch in design.batches(progress=progress, desc="split subsets"):
        arrays = batch_arrays(design, batch)
        if arrays is None:
            continue
        X = arrays.X.toarray() if sp.issparse(arrays.X) else np.asarray(arrays.X)
        Xy = np.column_stack([X, arrays.y])
        w = arrays.weights
        label = part[arrays.codes[0]]
        for m in np.unique(label):
            rows = label == m
            A = Xy[rows]
            if w is None:
                grams[m].append(A.T @ A)
                ns[m] += int(rows.sum())
            else:
                wm = w[rows]
                grams[m].append(A.T @ (A * wm[:, None]))
                pos = wm > 0
                ns[m] += int(pos.sum())
                logs[m].append(math.fsum(np.log(wm[pos])))
    from ..crossprod._stream import _exact_sum

    return ([_exact_sum(g) if g else np.zeros((p + 1, p + 1)) for g in grams], ns,
            [math.fsum(v) for v in logs])


def streamed_split_interval(problem, design, level: float = 0.95, seed=None, n_jobs: int = 1,
                            progress: bool = True, n_splits: int = 10, mode: str = "independent",
                            variance: str | None = None, **options) -> pd.DataFrame:
    """Split-sample intervals (:func:`pymlm.inference.split.interval`) of a streamed fit.

    Parameters
    ----------
    problem : LmmProblem
        Of the streamed fit (its cross-products; no rows).
    design : StreamDesign
        The fit's design, to read the source once more.
    level, seed, n_jobs, progress, n_splits
        As :func:`pymlm.inference.split.interval`.
    mode : {"independent"}
        Only the partition of the groups streams in bounded memory.
    variance : {"spread"}, optional

    Returns
    -------
    DataFrame
        As :func:`pymlm.inference.split.interval`, equal to it on the same rows and seed.

    Raises
    ------
    OptionError
        Another mode or variance, several grouping factors, fewer than 2 groups per subset.
    """
    t0 = time.perf_counter()
    check_options("split", options, OPTIONS)
    level = check_level(level)
    seed = check_seed(seed)
    n_jobs = check_n_jobs(n_jobs)
    progress = check_bool("progress", progress)
    mode = check_choice("mode", mode, MODES)
    M = check_positive_int("n_splits", n_splits, minimum=2)
    variance = check_choice("variance", "spread" if variance is None else variance, VARIANCES)
    if mode != "independent" or variance != "spread":
        raise OptionError(
            f"split-sample intervals of a fit streamed from {design.source.name!r} partition its groups "
            f"(mode='independent', variance='spread'); got mode={mode!r}, variance={variance!r}. Fit the rows "
            "in memory for the other modes")
    if problem.tmap.n_terms != 1:
        raise OptionError(
            "split-sample intervals of a streamed fit need every random term on one grouping factor; "
            "the model has several")
    rng = np.random.default_rng(seed_children(seed, 1)[0])
    cp = problem.cp
    L = int(cp.dims[0][1])
    if L < 2 * M:
        raise OptionError(
            f"n_splits={M} with mode='independent' splits the {L} groups of the grouping factor into "
            f"{M} subsets; each subset needs at least 2 groups, so use n_splits <= {L // 2}")
    part = partition_groups(L, M, rng)
    grams, ns, logs = _subset_grams(design, part, M, progress)
    cps = []
    for m in range(M):
        idx = np.flatnonzero(part == m)
        cps.append(CrossProducts(((cp.dims[0][0], idx.size),), cp.p, float(ns[m]), logs[m],
                                 (cp.zz_diag[0][idx],), {}, {}, (cp.zxy[0][idx],), grams[m]))
    fits = run_replicates(_fit_one, (slim_problem(problem), cps), M, seed=None, n_jobs=n_jobs,
                          progress=progress, desc="split fits", batch=1)
    psis = np.stack([natural_parameters(problem, *f) for f in fits])
    psi_bar = psis.mean(axis=0)
    S = np.atleast_2d(np.cov(psis, rowvar=False))
    parts = [(S / M, M - 1)]
    lower, upper, est, dfs = _intervals(problem, psi_bar, parts, level)
    from . import interval_frame

    names = problem.param_names
    out = interval_frame(problem, lower, upper, level)
    table = pd.DataFrame(np.stack([reported(problem, x) for x in psis]), columns=names)
    table.insert(0, "nobs", [round(c.n) for c in cps])
    table.insert(0, "ngroups", [int(c.dims[0][1]) for c in cps])
    table.insert(0, "subset", np.arange(1, M + 1))
    psi_names = _psi_names(problem)
    out.attrs["estimates"] = pd.Series(est, index=names)
    out.attrs["replicates"] = table
    out.attrs["df"] = pd.Series(dfs, index=names)
    out.attrs["vcov"] = pd.DataFrame(S / M, index=psi_names, columns=psi_names)
    out.attrs["assignment"] = part
    out.attrs["settings"] = {"n_splits": M, "mode": mode, "variance": variance, "n_subsamples": M,
                             "n_rows": int(design.nobs_total)}
    out.attrs.update(method="split", level=level, seed=seed, seconds=time.perf_counter() - t0)
    return out
