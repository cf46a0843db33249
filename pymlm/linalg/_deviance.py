"""The profiled (REML) deviance from the pieces of the PLS factor."""

from __future__ import annotations

import numpy as np

__all__ = ["profiled_deviance", "LOG_2PI"]

LOG_2PI = float(np.log(2.0 * np.pi))


def profiled_deviance(logdet_L: float, L_XX: np.ndarray, n: float, sum_log_w: float, reml: bool):
    """Bates et al. (2015), eqs. 34 and 41, as lme4's ``Laplace``.

    Parameters
    ----------
    logdet_L : float
        log |Lambda'Z'WZ Lambda + I|.
    L_XX : ndarray (k + 1, k + 1)
        Lower Cholesky factor of the [X y] block after the downdate; its
        last diagonal element squared is the penalized weighted RSS, its
        first k diagonal elements give log |R_X'R_X|.
    n : float
        Number of observations.
    sum_log_w : float
        Sum of the log prior weights.
    reml : bool

    Returns
    -------
    deviance : float
    nu : float
        ``n - k`` (REML) or ``n`` (ML): the divisor of r2 in sigma^2.
    pwrss : float
    """
    k = L_XX.shape[0] - 1
    d = np.diag(L_XX)
    pwrss = float(d[k] ** 2)
    if reml:
        nu = n - k
        dev = logdet_L + 2.0 * float(np.sum(np.log(d[:k]))) + nu * (1.0 + LOG_2PI + np.log(pwrss / nu))
    else:
        nu = n
        dev = logdet_L + nu * (1.0 + LOG_2PI + np.log(pwrss / nu))
    return float(dev - sum_log_w), nu, pwrss
