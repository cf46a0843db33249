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
    problem : LmmProblem or GlmmInference
        For an LMM the standard errors come from sigma^2 (R_X'R_X)^{-1};
        for a GLMM from the fit's covariance of beta (by default twice the
        inverse Hessian of the Laplace / AGQ deviance in (theta, beta), its
        beta block; lme4 uses the R_X approximation, ``se="RX"``).
    level : float

    Returns
    -------
    DataFrame
    """
    if options:
        raise OptionError(f"the Wald method takes no options; got {sorted(options)}")
    from . import interval_frame

    beta = problem.fixef_hat
    se = np.sqrt(np.diag(problem.fixef_vcov()))
    z = stats.norm.ppf(0.5 + level / 2.0)
    n_var = problem.n_var
    lower = np.concatenate([np.full(n_var, np.nan), beta - z * se])
    upper = np.concatenate([np.full(n_var, np.nan), beta + z * se])
    out = interval_frame(problem, lower, upper, level)
    out.attrs["settings"] = {}
    return out
