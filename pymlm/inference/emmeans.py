"""Estimated marginal means (emmeans' defaults) as linear functions of the fixed effects.

The reference grid holds every combination of the levels of the factors in
the model, with each numeric covariate at its mean. The model matrix of the
grid, X_g, gives the predictions X_g beta; the marginal mean of one level
(or combination) of the factors of interest averages the grid rows that
have it, with equal weights over the other factors: L = W X_g, W the
averaging matrix. Each mean is L_i beta with standard error
sqrt(L_i V L_i'), and a t reference with Satterthwaite (or Kenward-Roger)
df; a contrast of means is (c'L) beta.

References
----------
Searle, S. R., Speed, F. M. and Milliken, G. A. (1980). Population marginal
means in the linear model: an alternative to least squares means. The
American Statistician 34, 216-221.
Lenth, R. V. emmeans: Estimated Marginal Means, aka Least-Squares Means
(R package).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["averaging_matrix", "linear_function_table", "pairwise_matrix"]


def averaging_matrix(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equal-weight averaging of grid rows by key.

    Parameters
    ----------
    keys : ndarray (g,) of int
        The cell of interest of each grid row (0..k-1).

    Returns
    -------
    W : ndarray (k, g)
        Row i averages the grid rows with key i.
    counts : ndarray (k,)
    """
    keys = np.asarray(keys)
    k = int(keys.max()) + 1
    W = np.zeros((k, keys.size))
    W[keys, np.arange(keys.size)] = 1.0
    counts = W.sum(axis=1)
    return W / counts[:, None], counts


def pairwise_matrix(k: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The (k(k-1)/2, k) matrix of differences ``mean_i - mean_j``, i < j, in emmeans' order."""
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    C = np.zeros((len(pairs), k))
    for r, (i, j) in enumerate(pairs):
        C[r, i], C[r, j] = 1.0, -1.0
    return C, pairs


def linear_function_table(L: np.ndarray, beta: np.ndarray, vcov: np.ndarray, df: np.ndarray,
                          level: float | None = 0.95) -> dict:
    """Estimates L beta, standard errors, df, t ratios, p-values and t intervals.

    Parameters
    ----------
    L : ndarray (m, p)
    beta : ndarray (p,)
    vcov : ndarray (p, p)
    df : ndarray (m,)
    level : float or None
        Confidence level (None: no interval).

    Returns
    -------
    dict of ndarray (m,)
        ``estimate``, ``SE``, ``df``, ``t``, ``p``, and with ``level`` ``lower``, ``upper``.
    """
    L = np.atleast_2d(L)
    est = L @ beta
    se = np.sqrt(np.einsum("ma,ab,mb->m", L, vcov, L))
    df = np.asarray(df, dtype=float)
    t = est / se
    out = {"estimate": est, "SE": se, "df": df, "t": t, "p": 2 * stats.t.sf(np.abs(t), df)}
    if level is not None:
        h = stats.t.ppf(0.5 + level / 2, df) * se
        out.update(lower=est - h, upper=est + h)
    return out
