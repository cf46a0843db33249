"""Wald intervals for the fixed effects (lme4's ``confint(method = "Wald")``)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..errors import OptionError

__all__ = ["interval"]


def interval(problem, level: float = 0.95, seed=None, n_jobs: int = 1, progress: bool = True, **options):
    """beta_j -/+ z_{(1+level)/2} se_j for the fixed effects; variance parameters NaN, as lme4.

    Parameters
    ----------
    problem : LmmProblem
    level : float

    Returns
    -------
    DataFrame
    """
    if options:
        raise OptionError(f"the Wald method takes no options; got {sorted(options)}")
    from . import interval_frame

    f = problem.fit
    se = np.sqrt(np.diag(f.vcov_beta()))
    z = stats.norm.ppf(0.5 + level / 2.0)
    n_var = problem.n_sig + 1
    lower = np.concatenate([np.full(n_var, np.nan), f.beta - z * se])
    upper = np.concatenate([np.full(n_var, np.nan), f.beta + z * se])
    out = interval_frame(problem, lower, upper, level)
    out.attrs["settings"] = {}
    return out
