"""Confidence intervals and tests for fitted mixed models.

Every method takes an :class:`LmmProblem` or a :class:`GlmmInference` (the
fit-level view of a linear or generalized linear mixed model) and returns a DataFrame indexed by lme4's parameter names (``.sig01``...,
``.sigma``, the fixed effects) with the two interval columns named from the
level (``"2.5 %"``, ``"97.5 %"``). Its ``attrs`` keep what the interval rests
on: ``method``, ``level``, ``settings``, ``seed``, ``seconds`` and, for
resampling methods, ``replicates`` (a DataFrame, one row per replicate).
"""

from __future__ import annotations

import importlib
import time

import numpy as np
import pandas as pd

from .._validation import check_bool, check_level, check_n_jobs, check_seed
from ..errors import option_error
from ._glmm import GlmmInference
from ._problem import LmmProblem

__all__ = ["GlmmInference", "LmmProblem", "confint", "METHODS", "interval_columns", "interval_frame"]

# method -> module implementing ``interval(problem, level, seed, n_jobs, progress, **options)``
METHODS = {
    "wald": "wald",
    "profile": "profile",
    "boot": "boot",
    "blb": "blb",
    "split": "split",
}


def interval_columns(level: float) -> list[str]:
    """lme4's column names for a two-sided interval, e.g. ``["2.5 %", "97.5 %"]``."""
    a = (1.0 - level) / 2.0
    return [f"{100 * a:.3g} %", f"{100 * (1 - a):.3g} %"]


def interval_frame(problem: LmmProblem, lower, upper, level: float) -> pd.DataFrame:
    """A DataFrame of intervals in lme4's layout."""
    cols = interval_columns(level)
    return pd.DataFrame({cols[0]: np.asarray(lower, dtype=float), cols[1]: np.asarray(upper, dtype=float)},
                        index=pd.Index(problem.param_names, name=None))


def confint(problem: LmmProblem, method: str = "profile", level: float = 0.95, seed=None, n_jobs: int = 1,
            progress: bool = True, **options) -> pd.DataFrame:
    """Confidence intervals by the chosen method (see :data:`METHODS`).

    Parameters
    ----------
    problem : LmmProblem
    method : str
        One of :data:`METHODS`.
    level : float
        Strictly between 0 and 1.
    seed : None, int >= 0, numpy SeedSequence or numpy Generator
        Seed of the resampling methods (checked for every method): the same
        integer or SeedSequence gives the same interval whatever ``n_jobs``.
    n_jobs : int
        Worker processes: a positive integer, or -1 for one per CPU.
    progress : bool

    Raises
    ------
    OptionError
        Unknown method, a level outside (0, 1), a bad seed, n_jobs or
        progress, or an option the method does not take.
    """
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise option_error("method", list(METHODS), method)
    method = method.lower()
    level = check_level(level)
    seed = check_seed(seed)
    n_jobs = check_n_jobs(n_jobs)
    progress = check_bool("progress", progress)
    module = importlib.import_module(f"{__name__}.{METHODS[method]}")
    t0 = time.perf_counter()
    out = module.interval(problem, level=level, seed=seed, n_jobs=n_jobs, progress=progress, **options)
    out.attrs.setdefault("method", method)
    out.attrs["level"] = level
    out.attrs.setdefault("seed", seed)
    out.attrs.setdefault("settings", dict(options))
    out.attrs["seconds"] = time.perf_counter() - t0
    return out
