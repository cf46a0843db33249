"""Cubic regression splines (mgcv's ``bs = "cr"``).

The spline is parametrized by its values ``beta_j`` at ``k`` knots
``x_1 < ... < x_k``; its second derivatives ``delta`` at the knots are
``delta = F beta`` with the natural end conditions ``delta_1 = delta_k = 0``.
With knot spacings ``h_j = x_{j+1} - x_j``, the interior second derivatives
solve ``B delta_{2:k-1} = D beta`` where ``D`` is (k-2) x k with
``D[i, i] = 1/h_i``, ``D[i, i+1] = -1/h_i - 1/h_{i+1}``,
``D[i, i+2] = 1/h_{i+1}``, and ``B`` is symmetric tridiagonal with
``B[i, i] = (h_i + h_{i+1})/3``, ``B[i, i+1] = h_{i+1}/6``. Then

    F = [0; B^{-1} D; 0]  (k x k),     S = D' B^{-1} D  (the penalty
    integral of f''(x)^2).

On ``[x_j, x_{j+1}]`` the spline is
``a_- beta_j + a_+ beta_{j+1} + c_- delta_j + c_+ delta_{j+1}`` with
``a_- = (x_{j+1} - x)/h``, ``a_+ = (x - x_j)/h``,
``c_- = ((x_{j+1} - x)^3/h - h (x_{j+1} - x))/6`` and
``c_+ = ((x - x_j)^3/h - h (x - x_j))/6``; outside the knots it continues
linearly. Knots default to the quantiles of the unique covariate values.

References
----------
Wood, S. N. (2017). Generalized Additive Models: An Introduction with R,
2nd ed., section 5.3.1.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_banded

from ..errors import DataError
from ._basis import Basis, RawBasis, r_seq

__all__ = [
    "CubicRegressionSpline",
    "CyclicCubicSpline",
    "cc_bd",
    "cc_design",
    "cr_design",
    "cr_fs",
    "cr_knots",
    "cr_values",
    "place_knots",
]


def cr_knots(x: np.ndarray, k: int) -> np.ndarray:
    """mgcv's default knots: ``quantile(unique(x), seq(0, 1, length = k))`` (type 7)."""
    xu = np.unique(x)
    n = xu.shape[0]
    probs = r_seq(0.0, 1.0, k)
    index = (n - 1) * probs  # 0-based version of R's 1 + (n - 1) * p
    lo = np.floor(index).astype(int)
    hi = np.minimum(np.ceil(index).astype(int), n - 1)
    h = index - lo
    q = xu[lo].copy()
    inner = (index > lo) & (xu[hi] != q)
    q[inner] = (1 - h[inner]) * q[inner] + h[inner] * xu[hi[inner]]
    return q


def cr_fs(knots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``F`` (knot values -> second derivatives) and the penalty ``S``, both (k, k)."""
    k = knots.shape[0]
    h = np.diff(knots)
    D = np.zeros((k - 2, k))
    i = np.arange(k - 2)
    D[i, i] = 1.0 / h[:-1]
    D[i, i + 2] = 1.0 / h[1:]
    D[i, i + 1] = -D[i, i] - D[i, i + 2]
    ab = np.zeros((3, k - 2))  # banded storage of the tridiagonal B
    ab[1] = (h[:-1] + h[1:]) / 3.0
    ab[0, 1:] = h[1:-1] / 6.0
    ab[2, :-1] = h[1:-1] / 6.0
    BinvD = solve_banded((1, 1), ab, D)
    F = np.zeros((k, k))
    F[1:-1] = BinvD
    S = D.T @ BinvD
    return F, (S + S.T) / 2.0


def _locate(x: np.ndarray, knots: np.ndarray):
    """Interval index j (x in [knots[j], knots[j+1]]) and the four weights of a cr spline."""
    k = knots.shape[0]
    j = np.searchsorted(knots, x, side="left") - 1
    np.clip(j, 0, k - 2, out=j)
    xj = knots[j]
    xj1 = knots[j + 1]
    h = xj1 - xj
    am = xj1 - x
    ap = x - xj
    cm = am * (am * am / h - h) / 6.0
    cp = ap * (ap * ap / h - h) / 6.0
    return j, am / h, ap / h, cm, cp


def cr_design(x: np.ndarray, knots: np.ndarray, F: np.ndarray) -> np.ndarray:
    """The cubic regression spline basis at ``x``, shape (n, k).

    Vectorized over the data; points outside the knot range get mgcv's linear
    extrapolation.
    """
    x = np.asarray(x, dtype=float)
    k = knots.shape[0]
    n = x.shape[0]
    lo, hi = knots[0], knots[-1]
    inside = (x >= lo) & (x <= hi)
    rows = np.arange(n)
    if inside.all():
        j, am, ap, cm, cp = _locate(x, knots)
        X = cm[:, None] * F[j]
        X += cp[:, None] * F[j + 1]
        X[rows, j] += am
        X[rows, j + 1] += ap
        return X
    X = np.zeros((n, k))
    if inside.any():
        r = rows[inside]
        j, am, ap, cm, cp = _locate(x[inside], knots)
        X[r] = cm[:, None] * F[j] + cp[:, None] * F[j + 1]
        X[r, j] += am
        X[r, j + 1] += ap
    below = x < lo
    if below.any():
        r = rows[below]
        h = knots[1] - lo
        xik = x[below] - lo
        X[r] = (-xik * h / 3.0)[:, None] * F[0] + (-xik * h / 6.0)[:, None] * F[1]
        X[r, 0] += 1.0 - xik / h
        X[r, 1] += xik / h
    above = x > hi
    if above.any():
        r = rows[above]
        h = hi - knots[k - 2]
        xik = x[above] - hi
        X[r] = (xik * h / 6.0)[:, None] * F[k - 2] + (xik * h / 3.0)[:, None] * F[k - 1]
        X[r, k - 2] -= xik / h
        X[r, k - 1] += 1.0 + xik / h
    nan = np.isnan(x)
    if nan.any():
        X[nan] = np.nan
    return X


def cr_values(x: np.ndarray, knots: np.ndarray, F: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``cr_design(x) @ beta`` in O(n) instead of O(n k).

    ``beta`` holds the spline's values at the knots, ``delta = F beta`` its
    second derivatives, and the spline is evaluated directly from them.
    """
    x = np.asarray(x, dtype=float)
    lo, hi = knots[0], knots[-1]
    if not ((x >= lo) & (x <= hi)).all():
        return cr_design(x, knots, F) @ beta
    delta = F @ beta
    j, am, ap, cm, cp = _locate(x, knots)
    return am * beta[j] + ap * beta[j + 1] + cm * delta[j] + cp * delta[j + 1]


class CubicRegressionSpline(Basis):
    """mgcv's ``"cr"`` basis: ``k`` knots, penalty on the integrated squared second derivative.

    Parameters
    ----------
    k : int
        Basis dimension (number of knots); ``-1`` for mgcv's default 10.
    label : str
        Term label, for error messages.
    knots : array-like, optional
        Knot locations (sorted); default: quantiles of the unique values.

    Examples
    --------
    >>> import numpy as np
    >>> b = CubicRegressionSpline(k=5, label="s(x)")
    >>> raw = b.construct([np.linspace(0, 1, 20)])
    >>> raw.ncol, raw.rank, raw.null_space_dim
    (5, [3], 2)
    >>> bool(np.allclose(b.predict([np.linspace(0, 1, 20)]).sum(axis=1), 1))
    True
    """

    name = "cr"
    noterp = True

    def __init__(self, k: int = -1, label: str = "", knots=None, term: str = "x"):
        self.k = 10 if k is None or k < 0 else int(k)
        self.label = label
        self.term = term
        self.knots = None if knots is None else np.sort(np.asarray(knots, dtype=float))
        self.F = None

    def construct(self, cols: list) -> RawBasis:
        (x,) = cols
        if self.k < 3:
            raise DataError(f"{self.label}: a cubic regression spline needs k >= 3; got k = {self.k}")
        if self.knots is None:
            n_unique = np.unique(x).shape[0]
            if n_unique < self.k:
                raise DataError(
                    f"{self.label}: {self.term} has {n_unique} distinct values, fewer than "
                    f"k = {self.k} basis functions; lower k to at most {n_unique}"
                )
            self.knots = cr_knots(x, self.k)
        elif self.knots.shape[0] != self.k:
            raise DataError(f"{self.label}: {self.knots.shape[0]} knots given for k = {self.k}")
        self.F, S = cr_fs(self.knots)
        return RawBasis(self.k, [S], [self.k - 2], 2)

    def predict(self, cols: list) -> np.ndarray:
        (x,) = cols
        return cr_design(x, self.knots, self.F)

    def predict_dot(self, cols: list, coef: np.ndarray) -> np.ndarray:
        """``predict(cols) @ coef`` without forming the basis."""
        (x,) = cols
        return cr_values(x, self.knots, self.F, coef)


def place_knots(x: np.ndarray, nk: int) -> np.ndarray:
    """mgcv's ``place.knots``: ``nk`` knots evenly spread through the sorted unique values."""
    xu = np.unique(x)
    n = xu.shape[0]
    if nk == 2:
        return xu[[0, -1]].astype(float)
    delta = (n - 1) / (nk - 1)
    i = np.arange(1, nk - 1)
    lbi = np.floor(delta * i).astype(int)  # 0-based index of the lower value
    frac = delta * i - lbi
    knots = np.empty(nk)
    knots[0], knots[-1] = xu[0], xu[-1]
    knots[1:-1] = xu[lbi] * (1 - frac) + xu[np.minimum(lbi + 1, n - 1)] * frac
    return knots


def cc_bd(knots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``B^{-1} D`` (knot values -> second derivatives) and the penalty of a cyclic spline.

    With ``n = k - 1`` free values (the last knot is the first) and spacings
    ``h``, ``B`` and ``D`` are the cyclic versions of the natural spline's
    tridiagonal matrices (wrapping around at both ends).
    """
    h = np.diff(knots)
    n = h.shape[0]
    i = np.arange(n)
    ip = (i + 1) % n
    im = (i - 1) % n
    B = np.zeros((n, n))
    D = np.zeros((n, n))
    B[i, i] = (h[im] + h) / 3.0
    B[i, ip] += h / 6.0
    B[i, im] += h[im] / 6.0
    D[i, i] = -(1.0 / h[im] + 1.0 / h)
    D[i, ip] += 1.0 / h
    D[i, im] += 1.0 / h[im]
    BD = np.linalg.solve(B, D)
    S = D.T @ BD
    return BD, (S + S.T) / 2.0


def cc_design(x: np.ndarray, knots: np.ndarray, BD: np.ndarray) -> np.ndarray:
    """The cyclic cubic spline basis at ``x`` (n, k - 1); values outside the knots wrap around."""
    x = np.asarray(x, dtype=float).copy()
    lo, hi = knots[0], knots[-1]
    period = hi - lo
    above, below = x > hi, x < lo
    x[above] = lo + np.mod(x[above] - hi, period)
    x[below] = hi - np.mod(lo - x[below], period)
    n = knots.shape[0]
    i0 = np.clip(np.searchsorted(knots, x, side="left"), 1, n - 1)
    j1 = i0 - 1
    j = np.where(i0 == n - 1, 0, i0)
    h = knots[j1 + 1] - knots[j1]
    am = knots[j1 + 1] - x
    ap = x - knots[j1]
    X = (BD[j1] * ((am**3 / (6 * h)) - h * am / 6)[:, None]
         + BD[j] * ((ap**3 / (6 * h)) - h * ap / 6)[:, None])
    rows = np.arange(x.shape[0])
    X[rows, j1] += am / h
    X[rows, j] += ap / h
    return X


class CyclicCubicSpline(Basis):
    """mgcv's ``"cc"`` basis: a cubic regression spline whose value and first two derivatives
    match at the two ends (for time of day, day of year, angles).

    Parameters
    ----------
    k : int
        Number of knots, ends included (``-1``: mgcv's 10); the basis has
        ``k - 1`` functions (the last knot repeats the first), ``k - 2``
        after the sum-to-zero constraint.
    label, term : str
        For error messages.
    knots : array-like, optional
        ``k`` knots, or two values giving the ends of the period (the
        interior knots are then spread through the data and these ends).

    Examples
    --------
    >>> import numpy as np
    >>> b = CyclicCubicSpline(k=6, label="s(x)")
    >>> raw = b.construct([np.linspace(0, 1, 30)])
    >>> raw.ncol, raw.null_space_dim
    (5, 1)
    >>> X = b.predict([np.array([0.0, 1.0])])
    >>> bool(np.allclose(X[0], X[1]))
    True
    """

    name = "cc"
    noterp = True

    def __init__(self, k: int = -1, label: str = "", knots=None, term: str = "x"):
        self.k = 10 if k is None or k < 0 else int(k)
        self.label = label
        self.term = term
        self.given = None if knots is None else np.sort(np.asarray(knots, dtype=float))
        self.knots = None
        self.BD = None

    def construct(self, cols: list) -> RawBasis:
        (x,) = cols
        if self.k < 4:
            raise DataError(f"{self.label}: a cyclic cubic spline needs k >= 4; got k = {self.k}")
        if self.given is None or self.given.shape[0] == 2:
            pool = x if self.given is None else np.concatenate([self.given, x])
            n_unique = np.unique(pool).shape[0]
            if n_unique < self.k:
                raise DataError(
                    f"{self.label}: {self.term} has {n_unique} distinct values, fewer than "
                    f"k = {self.k} knots; lower k to at most {n_unique}")
            self.knots = place_knots(pool, self.k)
        elif self.given.shape[0] != self.k:
            raise DataError(f"{self.label}: {self.given.shape[0]} knots given for a cc smooth with k = {self.k}; "
                            "give k knots (ends included) or the two ends of the period")
        else:
            self.knots = self.given
        self.BD, S = cc_bd(self.knots)
        return RawBasis(self.k - 1, [S], [self.k - 2], 1)

    def predict(self, cols: list) -> np.ndarray:
        (x,) = cols
        return cc_design(x, self.knots, self.BD)
