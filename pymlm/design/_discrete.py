"""Discretized covariates and compressed model matrices (mgcv's ``bam(discrete = TRUE)``).

A covariate with more than ``m`` distinct values is rounded to the nearest of
``m`` evenly spaced points between its minimum and maximum (mgcv's
``compress.df``: ``m = 1000`` for one covariate, 100 per covariate for two,
25 for three or more); otherwise its distinct values are kept. A term's
model matrix is then stored as the matrix ``Xu`` of its ``u`` distinct rows
plus an index vector ``k`` (length n), and an optional row multiplier
``by`` (a numeric ``by`` variable, the indicator of a factor ``by`` level,
or a random slope's covariate), a :class:`DiscreteBlock`:

    X[i, :] = by[i] * Xu[k[i], :].

The cross products of such blocks are formed in :mod:`pymlm.crossprod.discrete`.

References
----------
Wood, S. N., Li, Z., Shaddick, G. & Augustin, N. H. (2017). Generalized
additive models for gigadata: modelling the UK black smoke network daily
data. JASA 112(519), 1199-1210.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..smooth._basis import r_seq

__all__ = ["DiscreteBlock", "combine_indices", "default_levels", "discretize", "discretize_joint"]

#: Rows sampled to decide cheaply that a covariate has more than m values.
_PROBE = 20_000


def default_levels(d: int, m: int | None = None) -> int:
    """Grid points per covariate for a term with ``d`` covariates (mgcv's rule).

    Examples
    --------
    >>> default_levels(1), default_levels(2), default_levels(3), default_levels(2, 1000)
    (1000, 100, 25, 33)
    """
    if m is None:
        return 1000 if d == 1 else (100 if d == 2 else 25)
    return int(m) if d == 1 else int(round(m ** (1.0 / d))) + 1


def _few_values(x: np.ndarray, m: int) -> bool:
    """True when x may have at most m distinct values (checked on a strided sample first)."""
    n = x.shape[0]
    if n <= m:
        return True
    if n > 4 * _PROBE:
        probe = x[:: n // _PROBE]
        if pd.unique(probe).shape[0] > m:
            return False
    return pd.unique(x).shape[0] <= m


def _exact(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(x, sort=True)
    return np.asarray(uniques, dtype=float), codes.astype(np.int32)


def _grid_index(x: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest of m evenly spaced points between min and max: (grid, index into grid)."""
    lo, hi = float(np.min(x)), float(np.max(x))
    grid = r_seq(lo, hi, m)
    dx = grid[1] - grid[0]
    if dx <= 0:
        return grid[:1], np.zeros(x.shape[0], dtype=np.int32)
    idx = np.rint((x - lo) / dx).astype(np.int32)
    np.clip(idx, 0, m - 1, out=idx)
    return grid, idx


def _compact(idx: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Occupied cells of an index in [0, size): (occupied cell ids, new index into them)."""
    if size <= 8 * idx.shape[0] + 1_000_000:
        present = np.bincount(idx, minlength=size) > 0
        cells = np.flatnonzero(present)
        remap = np.cumsum(present, dtype=np.int64) - 1
        return cells, remap[idx].astype(np.int32)
    cells, inverse = np.unique(idx, return_inverse=True)
    return cells, inverse.astype(np.int32).ravel()


def discretize(x, m: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Compress one numeric covariate as mgcv's ``bam(discrete = TRUE)`` does.

    Parameters
    ----------
    x : array-like, shape (n,)
    m : int
        Largest number of distinct values kept.

    Returns
    -------
    values : ndarray, shape (u,)
        The distinct (possibly rounded) values, increasing; ``u <= m``.
    index : ndarray of int32, shape (n,)
        ``values[index]`` is the compressed covariate.

    Examples
    --------
    >>> v, k = discretize([0.3, 0.1, 0.3, 0.2])
    >>> v.tolist(), k.tolist()
    ([0.1, 0.2, 0.3], [2, 0, 2, 1])
    >>> v, k = discretize(np.linspace(0, 1, 101), m=11)
    >>> v.shape[0], float(v[k][7])
    (11, 0.1)
    """
    x = np.asarray(x, dtype=float)
    if _few_values(x, m):
        return _exact(x)
    grid, idx = _grid_index(x, m)
    cells, index = _compact(idx, grid.shape[0])
    return grid[cells], index


def discretize_joint(cols: list, m: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Compress several numeric covariates jointly (mgcv's rule for a multi-covariate term).

    The distinct rows are kept when there are at most ``m_d ** d`` of them
    (``m_d = default_levels(d, m)``); otherwise every covariate is rounded to
    its own ``m_d``-point grid first.

    Returns
    -------
    values : ndarray, shape (u, d)
    index : ndarray of int32, shape (n,)
    """
    X = np.column_stack([np.asarray(c, dtype=float) for c in cols])
    d = X.shape[1]
    md = default_levels(d, m)
    codes, uniques = zip(*(pd.factorize(X[:, j], sort=True) for j in range(d)))
    sizes = [len(u) for u in uniques]
    combos, index = combine_indices([c.astype(np.int64) for c in codes], sizes)
    if combos.shape[0] <= md**d:
        vals = np.column_stack([np.asarray(uniques[j], dtype=float)[combos[:, j]] for j in range(d)])
        return vals, index
    grids, idxs = zip(*(_grid_index(X[:, j], md) for j in range(d)))
    combos, index = combine_indices(list(idxs), [g.shape[0] for g in grids])
    vals = np.column_stack([grids[j][combos[:, j]] for j in range(d)])
    return vals, index


def combine_indices(indices: list[np.ndarray], sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct combinations of several index vectors.

    Parameters
    ----------
    indices : list of int arrays, each (n,)
    sizes : list of int
        The range of each index.

    Returns
    -------
    combos : ndarray of int, shape (u, len(indices))
        The occupied combinations.
    index : ndarray of int32, shape (n,)
        Row of ``combos`` for each observation.
    """
    key = np.zeros(indices[0].shape[0], dtype=np.int64)
    for k, s in zip(indices, sizes):
        key = key * s + k
    size = int(np.prod(sizes))
    cells, index = _compact(key, size) if size < 2**31 else np.unique(key, return_inverse=True)
    cells = np.asarray(cells, dtype=np.int64)
    combos = np.empty((cells.shape[0], len(sizes)), dtype=np.int64)
    rem = cells.copy()
    for j in range(len(sizes) - 1, -1, -1):
        combos[:, j] = rem % sizes[j]
        rem //= sizes[j]
    return combos, np.asarray(index, dtype=np.int32).ravel()


@dataclass(frozen=True, eq=False)
class DiscreteBlock:
    """Columns ``start:start+ncol`` of X in compressed form: ``X[i] = by[i] * Xu[k[i]]``.

    Attributes
    ----------
    Xu : ndarray (u, p), scipy.sparse matrix (u, p) or None
        The distinct rows; ``None`` is the identity (``u == p``: each index
        value is its own column, as for a factor's dummy coding).
    k : ndarray of int32, shape (n,) or None
        Row of ``Xu`` per observation; ``None`` when ``Xu`` has the n rows
        itself (parametric columns).
    by : ndarray, shape (n,) or None
        Row multiplier.
    start, ncol : int
        Where the block's columns sit in the full model matrix.
    """

    Xu: object
    k: np.ndarray | None
    by: np.ndarray | None
    start: int
    ncol: int

    @property
    def nrow_u(self) -> int:
        if self.Xu is None:
            return self.ncol
        return self.Xu.shape[0]

    @property
    def cols(self) -> slice:
        return slice(self.start, self.start + self.ncol)
