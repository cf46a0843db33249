"""Thin plate regression splines (mgcv's ``bs = "tp"``, Wood 2003).

For ``d`` covariates and penalty order ``m`` (smallest with ``2m > d + 1``
by default) the full thin plate spline on the unique covariate points
``x_1..x_u`` is ``f(x) = sum_i delta_i eta(||x - x_i||) + sum_j alpha_j
phi_j(x)`` with the radial function

    eta(r) = c r^(2m-d) log(r)   (d even),      eta(r) = c r^(2m-d)   (d odd),

``phi_j`` the ``M = choose(m + d - 1, d)`` polynomials of degree < m that
span the penalty's null space, and the constraint ``T' delta = 0``
(``T[i, j] = phi_j(x_i)``). The regression spline keeps the ``k`` eigen
vectors ``U_k`` of ``E[i, j] = eta(||x_i - x_j||)`` with the largest
eigenvalues in magnitude, ``D_k``, and absorbs ``T' U_k delta_k = 0`` with an
orthogonal null-space basis ``Z``:

    X = [U_k D_k Z, T],   S = [Z' D_k Z, 0; 0, 0].

New points are evaluated through ``UZ`` (``[U_k Z, 0; 0, I_M]``). Columns are
rescaled to unit root mean square, as mgcv does. Covariates are centred on
their construction means. The eigenvectors' signs, arbitrary in the eigen
solver, are fixed (the first clearly nonzero entry of each is positive,
:func:`pymlm.smooth._basis.fix_signs`), so the basis does not depend on the
LAPACK or BLAS kernel.

When there are more than 2000 unique points, mgcv draws 2000 of them at
random with R's generator; pymlm draws its own random subset (seeded, so the
fit is reproducible), so such fits are close to mgcv's but not identical.

References
----------
Wood, S. N. (2003). Thin plate regression splines. JRSS B 65(1), 95-114.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla
import scipy.sparse.linalg as ssl

from ..errors import DataError
from ._basis import Basis, RawBasis, blas_threads_for, fix_signs

__all__ = ["ThinPlateSpline", "tps_null_dim", "default_order"]

MAX_KNOTS = 2000
_EVAL_BLOCK = 4096


def default_order(d: int, m: int | None) -> int:
    """mgcv's penalty order: the given ``m`` when ``2m > d``, else smallest with ``2m >= d + 2``."""
    if m is not None and m > 0 and 2 * m > d:
        return int(m)
    m = 1
    while 2 * m < d + 2:
        m += 1
    return m


def tps_null_dim(d: int, m: int) -> int:
    """``M = choose(m + d - 1, d)``, the number of polynomials of degree < m in d variables."""
    return math.comb(m + d - 1, d)


def _poly_powers(d: int, m: int) -> np.ndarray:
    """Exponents of the null-space polynomials, mgcv's order (``gen_tps_poly_powers``)."""
    M = tps_null_dim(d, m)
    out = np.zeros((M, d), dtype=int)
    index = [0] * d
    for i in range(M):
        out[i] = index
        total = sum(index)
        if total < m - 1:
            index[0] += 1
        else:
            total -= index[0]
            index[0] = 0
            for j in range(1, d):
                index[j] += 1
                total += 1
                if total == m:
                    total -= index[j]
                    index[j] = 0
                else:
                    break
    return out


def _eta_const(m: int, d: int) -> float:
    if d % 2 == 0:
        f = -1.0 if (m + 1 + d // 2) % 2 else 1.0
        f /= 2.0 ** (2 * m - 1)
        f /= math.pi ** (d // 2)
        f /= math.factorial(m - 1)
        f /= math.factorial(m - d // 2)
        return f
    return math.gamma(d / 2 - m) / (2.0 ** (2 * m) * math.pi ** (d / 2) * math.factorial(m - 1))


def _eta(r2: np.ndarray, m: int, d: int, c: float) -> np.ndarray:
    """eta from squared distances (zero at r = 0)."""
    if d % 2 == 0:
        # r^(2m-d) log r = r2^(m - d/2) log(r2) / 2, and 0 at r = 0
        logr2 = np.log(np.where(r2 > 0, r2, 1.0))
        return (0.5 * c) * logr2 * _power(r2, m - d // 2)
    out = np.sqrt(r2)  # in place from here: these are (rows, knots) blocks
    k = m - d // 2 - 1
    if k:
        out *= _power(r2, k)
    out *= c
    return out


def _power(a: np.ndarray, k: int) -> np.ndarray:
    """a**k for a small non-negative integer k, by multiplication."""
    if k == 0:
        return np.ones_like(a)
    out = a
    for _ in range(k - 1):
        out = out * a
    return out


def _poly(x: np.ndarray, powers: np.ndarray) -> np.ndarray:
    T = np.ones((x.shape[0], powers.shape[0]))
    for j, pw in enumerate(powers):
        for a, p in enumerate(pw):
            if p:
                T[:, j] *= x[:, a] ** p
    return T


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape[1] == 1:
        diff = a[:, 0:1] - b[None, :, 0]
        return np.multiply(diff, diff, out=diff)
    out = np.zeros((a.shape[0], b.shape[0]))
    for j in range(a.shape[1]):
        diff = a[:, j:j + 1] - b[None, :, j]
        out += diff * diff
    return out


def _top_eigen(E: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` eigenpairs of symmetric ``E`` largest in magnitude, by decreasing value.

    Small matrices use a full decomposition; larger ones Lanczos iterations
    (as mgcv does), which need only products with ``E``.
    """
    n = E.shape[0]
    if n <= 400 or k >= n // 4:
        vals, vecs = sla.eigh(E)
        order = np.argsort(-np.abs(vals), kind="stable")[:k]
    else:
        v0 = np.random.default_rng(12345).uniform(0.5, 1.5, size=n)
        vals, vecs = ssl.eigsh(E, k=k, which="LM", v0=v0, tol=0)
        order = np.arange(k)
    order = order[np.argsort(-vals[order], kind="stable")]  # mgcv's order: by value
    # eigenvector signs are arbitrary (LAPACK, ARPACK's start): fix them, so that the
    # basis and its coefficients are the same on every machine
    return vals[order], fix_signs(vecs[:, order])


class ThinPlateSpline(Basis):
    """mgcv's ``"tp"`` basis for one or more covariates.

    Parameters
    ----------
    k : int
        Basis dimension; ``-1`` for mgcv's default ``M + (8, 27, 100)[d - 1]``.
    m : int or None
        Penalty order (default: smallest with ``2m > d + 1``).
    seed : int
        Seed of the random subset of knots used when there are more than
        2000 unique covariate points.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> raw = ThinPlateSpline(k=6).construct([rng.uniform(size=50)])
    >>> raw.ncol, raw.rank, raw.null_space_dim
    (6, [4], 2)
    """

    name = "tp"

    def __init__(self, k: int = -1, m=None, label: str = "", terms=("x",), seed: int = 1):
        self.d = len(terms)
        if isinstance(m, (tuple, list)):
            m = m[0]
        self.m = default_order(self.d, m)
        self.M = tps_null_dim(self.d, self.m)
        default_k = self.M + (8, 27, 100)[min(self.d, 3) - 1]
        self.k = default_k if k is None or k < 0 else max(int(k), self.M + 1)
        self.label = label
        self.terms = tuple(terms)
        self.seed = seed
        self.powers = _poly_powers(self.d, self.m)
        self.c = _eta_const(self.m, self.d)

    def construct(self, cols: list) -> RawBasis:
        with blas_threads_for(min(MAX_KNOTS, len(cols[0]))):
            return self._construct(cols)

    def _construct(self, cols: list) -> RawBasis:
        x = np.column_stack([np.asarray(c, dtype=float) for c in cols])
        self.shift = x.mean(axis=0)
        x = x - self.shift
        xu = np.unique(x, axis=0)
        nu = xu.shape[0]
        if nu < self.k:
            what = self.terms[0] if self.d == 1 else "(" + ", ".join(self.terms) + ")"
            raise DataError(
                f"{self.label}: {what} has {nu} distinct values, fewer than k = {self.k} "
                f"basis functions; lower k to at most {nu}"
            )
        if nu > MAX_KNOTS:
            rng = np.random.default_rng(self.seed)
            xu = xu[np.sort(rng.choice(nu, MAX_KNOTS, replace=False))]
            nu = MAX_KNOTS
        self.knots = xu
        k, M = self.k, self.M
        T = _poly(xu, self.powers)
        if nu == k:  # the basis dimension is the number of knots: no truncation
            E = _eta(_sq_dist(xu, xu), self.m, self.d, self.c)
            Q, _ = np.linalg.qr(T, mode="complete")
            Z = Q[:, M:]
            UZ_top = Z
            Spen = Z.T @ E @ Z
        else:
            E = _eta(_sq_dist(xu, xu), self.m, self.d, self.c)
            v, U = _top_eigen(E, k)
            TU = T.T @ U  # (M, k): the constraint T'U delta = 0
            Q, _ = np.linalg.qr(TU.T, mode="complete")
            Z = Q[:, M:]  # (k, k - M) orthonormal null-space basis
            UZ_top = U @ Z
            Spen = Z.T @ (v[:, None] * Z)
        self.UZ = np.zeros((nu + M, k))
        self.UZ[:nu, : k - M] = UZ_top
        self.UZ[nu:, k - M:] = np.eye(M)
        S = np.zeros((k, k))
        S[: k - M, : k - M] = (Spen + Spen.T) / 2
        # columns scaled to unit root mean square over the data, one block of rows at a time
        self.colscale = np.ones(k)
        ss = np.zeros(k)
        for s in range(0, x.shape[0], _EVAL_BLOCK):
            Xb = self._evaluate(x[s:s + _EVAL_BLOCK])
            ss += np.sum(Xb * Xb, axis=0)
        w = np.sqrt(ss / x.shape[0])
        w[w == 0] = 1.0
        self.colscale = w
        S = S / w[:, None] / w[None, :]
        return RawBasis(k, [S], [k - M], M)

    def _evaluate(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        out = np.empty((n, self.k))
        for s in range(0, n, _EVAL_BLOCK):  # bounded memory: blocks of rows
            xb = x[s:s + _EVAL_BLOCK]
            nu = self.knots.shape[0]
            # [eta, T] @ UZ without stacking the (rows, knots) block next to T
            out[s:s + _EVAL_BLOCK] = (_eta(_sq_dist(xb, self.knots), self.m, self.d, self.c) @ self.UZ[:nu]
                                      + _poly(xb, self.powers) @ self.UZ[nu:])
        return out / self.colscale

    def predict(self, cols: list) -> np.ndarray:
        x = np.column_stack([np.asarray(c, dtype=float) for c in cols]) - self.shift
        return self._evaluate(x)
