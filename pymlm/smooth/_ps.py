"""P-splines (mgcv's ``bs = "ps"``): B-splines on evenly spaced knots with a difference penalty.

With ``m = (m1, m2)`` (default ``(2, 2)``) the basis is ``k`` B-splines of
order ``m1 + 2`` (cubic by default) on ``k + m1 + 2`` evenly spaced knots
that extend ``m1 + 1`` spacings beyond the data range (itself widened by
0.1% on each side), and the penalty is ``S = D'D`` with ``D`` the
``m2``-th order difference matrix (Eilers & Marx 1996). Outside the inner
knot range the basis continues linearly, as in mgcv's prediction code.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import BSpline

from ..errors import DataError
from ._basis import Basis, RawBasis, r_seq

__all__ = ["PSpline", "bspline_design"]


def bspline_design(x: np.ndarray, knots: np.ndarray, order: int, deriv: int = 0) -> np.ndarray:
    """B-spline basis (or its derivative) at ``x`` inside the knots, shape (n, len(knots) - order)."""
    degree = order - 1
    nb = knots.shape[0] - order
    if deriv == 0:
        return BSpline.design_matrix(x, knots, degree).toarray()
    out = np.empty((x.shape[0], nb))
    eye = np.eye(nb)
    for j in range(nb):  # nb is the basis dimension (small), not the data size
        out[:, j] = BSpline(knots, eye[j], degree).derivative(deriv)(x)
    return out


class PSpline(Basis):
    """mgcv's ``"ps"`` basis.

    Parameters
    ----------
    k : int
        Basis dimension; ``-1`` for ``max(10, m1 + 1)``.
    m : int, tuple or None
        ``m1`` (spline order minus 2) and ``m2`` (difference order); one
        number sets both.

    Examples
    --------
    >>> import numpy as np
    >>> raw = PSpline(k=8).construct([np.linspace(0, 1, 30)])
    >>> raw.ncol, raw.rank, raw.null_space_dim
    (8, [6], 2)
    """

    name = "ps"

    def __init__(self, k: int = -1, m=None, label: str = "", term: str = "x"):
        if m is None:
            m = (2, 2)
        elif not isinstance(m, (tuple, list)):
            m = (int(m), int(m))
        m = tuple(2 if v is None else int(v) for v in m)
        if len(m) == 1:
            m = (m[0], m[0])
        self.m = m
        self.k = max(10, m[0] + 1) if k is None or k < 0 else int(k)
        self.label = label
        self.term = term
        self.knots = None

    def construct(self, cols: list) -> RawBasis:
        (x,) = cols
        m1, m2 = self.m
        nk = self.k - m1
        if nk <= 0:
            raise DataError(
                f"{self.label}: basis dimension k = {self.k} is too small for B-splines of order "
                f"{m1 + 2}; use k >= {m1 + 2}"
            )
        n_unique = np.unique(x).shape[0]
        if n_unique < self.k:
            raise DataError(
                f"{self.label}: {self.term} has {n_unique} distinct values, fewer than "
                f"k = {self.k} basis functions; lower k to at most {n_unique}"
            )
        xl, xu = float(np.min(x)), float(np.max(x))
        xr = xu - xl
        xl -= xr * 0.001
        xu += xr * 0.001
        dx = (xu - xl) / (nk - 1)
        self.knots = r_seq(xl - dx * (m1 + 1), xu + dx * (m1 + 1), nk + 2 * m1 + 2)
        if m2 > 0:
            Dm = np.diff(np.eye(self.k), n=m2, axis=0)
        else:
            Dm = np.eye(self.k)
        S = Dm.T @ Dm
        return RawBasis(self.k, [S], [self.k - m2], m2)

    def predict(self, cols: list) -> np.ndarray:
        (x,) = cols
        x = np.asarray(x, dtype=float)
        order = self.m[0] + 2
        t = self.knots
        ll = t[self.m[0] + 1]
        ul = t[t.shape[0] - self.m[0] - 2]
        inside = (x >= ll) & (x <= ul)
        if inside.all():
            return bspline_design(x, t, order)
        X = np.zeros((x.shape[0], self.k))
        if inside.any():
            X[inside] = bspline_design(x[inside], t, order)
        ends = np.array([ll, ul])
        val = bspline_design(ends, t, order)
        slope = bspline_design(ends, t, order, deriv=1)
        below = x < ll
        if below.any():
            X[below] = val[0] + (x[below] - ll)[:, None] * slope[0]
        above = x > ul
        if above.any():
            X[above] = val[1] + (x[above] - ul)[:, None] * slope[1]
        return X
