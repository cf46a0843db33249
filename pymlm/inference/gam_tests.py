"""Approximate significance of smooth terms, as mgcv 1.8-41's ``summary.gam``.

- :func:`term_test`: the test of one term of a fitted GAM (a
  :class:`~pymlm.fit.gam.GamFit` and the design's terms), by one of the two below.
- :func:`smooth_test`: mgcv's ``testStat(type = 0)``. For a term with
  coefficients ``b`` and Bayesian covariance ``V`` (``Vp``), the statistic
  ``T = b' V_r^- b`` uses a rank-``r`` pseudo-inverse of ``V`` in the metric
  of the term's columns, where ``r = min(k, edf1)`` (Wood 2013a, "On
  p-values for smooth components of an extended generalized additive model",
  Biometrika 100, 221-228). For fractional ``r`` the last two
  eigen-directions are blended and the p-value comes from a weighted sum of
  chi-squares; for whole ``r`` from the F (scale estimated) or chi-square
  (scale known) distribution. ``F = T / r`` is reported when the scale is
  estimated.
- :func:`random_effect_test`: mgcv's ``reTest`` for a term whose whole basis
  is penalized (random effects, factor-smooth interactions): the test of
  ``H0: b = 0`` of Wood (2013b, "A simple test for random effects in
  regression models", Biometrika 100, 1005-1010), ``T = b' R_m'R_m b / phi``
  against a weighted sum of chi-squares with the eigenvalues of
  ``R_m V_e R_m' / phi`` as weights, ``V_e`` the frequentist covariance.
- :func:`psum_chisq`: the upper tail of a weighted sum of chi-squares by
  Davies' (1980) algorithm with mgcv's accuracy (2e-5, absolute) and its
  fall-back to Liu, Tang & Zhang's (2009) approximation (:func:`liu_tail`)
  when the algorithm fails. mgcv reports these values, so pymlm does: p-values
  below about 1e-4 carry the algorithm's absolute error (a tail of 6.9e-7 by
  exact numerical inversion is reported as 1.1e-6), and are to be read as
  "small", as in R.

Everything is written in terms of ``X'WX`` instead of mgcv's ``R`` factor
(``R'R = X'WX``); every quantity mgcv computes from ``R`` depends on it only
through ``R'R``.

References
----------
Davies, R. B. (1980). Algorithm AS 155: The distribution of a linear
combination of chi-squared random variables. Applied Statistics 29, 323-333.

Liu, H., Tang, Y. and Zhang, H. H. (2009). A new chi-square approximation to
the distribution of non-negative definite quadratic forms in non-central
normal variables. Computational Statistics & Data Analysis 53, 853-856.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.stats as st

from ..errors import OptionError

__all__ = ["concurvity", "davies", "liu_tail", "psum_chisq", "random_effect_test", "smooth_test", "term_test"]

_EPS = np.finfo(float).eps
_LOG28 = 0.0866  # log(2) / 8, to the algorithm's four digits
_ROWS = 2048  # integration points evaluated at once


def liu_tail(x: float, lam: np.ndarray, h: np.ndarray | None = None) -> float:
    """Liu, Tang & Zhang's (2009) ``P(sum_j lam_j chi2_{h_j} > x)`` (mgcv's ``liu2``).

    Examples
    --------
    >>> round(liu_tail(3.84, [1.0]), 4)
    0.05
    """
    lam = np.asarray(lam, dtype=float)
    h = np.ones_like(lam) if h is None else np.asarray(h, dtype=float)
    lh = lam * h
    mu = lh.sum()
    lh = lh * lam
    c2 = lh.sum()
    lh = lh * lam
    c3 = lh.sum()
    if x <= 0 or c2 <= 0:
        return 1.0
    s1 = c3 / c2**1.5
    s2 = np.sum(lh * lam) / c2**2
    sig = np.sqrt(2 * c2)
    t = (x - mu) / sig
    if s1**2 > s2:
        a = 1 / (s1 - np.sqrt(s1**2 - s2))
        delta = s1 * a**3 - a**2
        l = a**2 - 2 * delta
    else:
        a = 1 / s1
        delta = 0.0
        if c3 == 0:
            return 1.0
        l = c2**3 / c3**2
    mux = l + delta
    sigx = np.sqrt(2) * a
    q = t * sigx + mux
    if delta > 0:
        return float(st.ncx2.sf(q, l, delta))
    return float(st.chi2.sf(q, l))


# ------------------------------------------------------------------ Davies (1980)
class _DaviesFault(Exception):
    """The algorithm stopped: 1 accuracy not reached in ``lim`` terms, 4 out of evaluations."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _exp1(x: float) -> float:
    return 0.0 if x < -50.0 else float(np.exp(x))


def _log1p_minus_x(x: np.ndarray) -> np.ndarray:
    """``log(1 + x) - x`` without cancellation for small ``|x|`` (x > -1).

    With ``y = x / (2 + x)``, ``log(1 + x) = 2 atanh(y) = 2 (y + y^3/3 + ...)``
    and ``x = 2y / (1 - y)``, so ``log(1 + x) - x = -x y + 2 y^3/3 + 2 y^5/5 + ...``.
    """
    x = np.asarray(x, dtype=float)
    out = np.log1p(x) - x
    small = np.abs(x) <= 0.1
    if np.any(small):
        xs = x[small]
        y = xs / (2.0 + xs)
        y2 = y * y
        term = 2.0 * y * y2
        s = -xs * y
        for k in range(3, 41, 2):  # |y| <= 0.053: y^40 is far below rounding
            s = s + term / k
            term = term * y2
        out[small] = s
    return out


class _Davies:
    """One evaluation of ``P(Q < c)``, ``Q = sum_j lam_j chi2(df_j, nc_j) + sigma Z``.

    Davies' method numerically inverts the characteristic function of ``Q``
    (trapezoidal rule on an interval and truncation point chosen from
    bounds on the two errors, with a convergence factor when it shortens
    the sum); the routine's structure and constants follow the published
    algorithm so that the same ``acc`` gives R's numbers. Sums over the
    weights and over the integration points are vectorized.
    """

    def __init__(self, lam, nc, df, sigma, c, lim, acc):
        self.lam, self.nc, self.df = lam, nc, df
        self.c, self.lim, self.acc = c, lim, acc
        self.sigma = sigma
        self.sigsq = sigma * sigma
        self.count = 0
        self.fail = False
        self.by_size = np.argsort(-np.abs(lam), kind="stable")  # largest |lam| first
        self.lmax = max(0.0, float(lam.max()))
        self.lmin = min(0.0, float(lam.min()))
        self.mean = float(np.sum(lam * (df + nc)))
        self.intl = 0.0
        self.ersm = 0.0

    def _tick(self):
        self.count += 1
        if self.count > self.lim:
            raise _DaviesFault(4)

    def errbd(self, u: float):
        """Chernoff bound on a tail probability at ``u``, and the matching cut-off point."""
        self._tick()
        lam, nc, df = self.lam, self.nc, self.df
        xconst = u * self.sigsq
        sum1 = u * xconst
        x = 2.0 * u * lam
        y = 1.0 - x
        xconst += float(np.sum(lam * (nc / y + df) / y))
        sum1 += float(np.sum(nc * (x / y) ** 2 + df * (x * x / y + _log1p_minus_x(-x))))
        return _exp1(-0.5 * sum1), xconst

    def ctff(self, accx: float, upn: float):
        """A point beyond which the tail (upper if ``upn > 0``) is under ``accx``; new ``upn``."""
        u2, u1, c1 = upn, 0.0, self.mean
        rb = 2.0 * (self.lmax if u2 > 0.0 else self.lmin)
        e, c2 = self.errbd(u2 / (1.0 + u2 * rb))
        while e > accx:
            u1, c1, u2 = u2, c2, 2.0 * u2
            e, c2 = self.errbd(u2 / (1.0 + u2 * rb))
        while (c1 - self.mean) / (c2 - self.mean) < 0.9:
            u = (u1 + u2) / 2.0
            e, xconst = self.errbd(u / (1.0 + u * rb))
            if e > accx:
                u1, c1 = u, xconst
            else:
                u2, c2 = u, xconst
        return c2, u2

    def truncation(self, u: float, tausq: float) -> float:
        """Bound on the integration error from truncating at ``u``."""
        self._tick()
        lam, nc, df = self.lam, self.nc, self.df
        sum2 = (self.sigsq + tausq) * u * u
        x = (2.0 * u * lam) ** 2
        sum1 = 0.5 * float(np.sum(nc * x / (1.0 + x)))
        big = x > 1.0
        lx = np.log1p(x)
        prod1 = 2.0 * sum2 + float(np.sum(df[~big] * lx[~big]))
        prod2 = prod1 + float(np.sum(df[big] * np.log(x[big])))
        prod3 = prod1 + float(np.sum(df[big] * lx[big]))
        s = float(np.sum(df[big]))
        x = _exp1(-sum1 - 0.25 * prod2) / np.pi
        y = _exp1(-sum1 - 0.25 * prod3) / np.pi
        err1 = 1.0 if s == 0 else x * 2.0 / s
        err2 = 2.5 * y if prod3 > 1.0 else 1.0
        err1 = min(err1, err2)
        half = 0.5 * sum2
        err2 = 1.0 if half <= y else y / half
        return min(err1, err2)

    def findu(self, utx: float, accx: float) -> float:
        """``u`` with ``truncation(u) <= accx`` and ``truncation(u / 1.2) > accx`` (roughly)."""
        ut = utx
        u = ut / 4.0
        if self.truncation(u, 0.0) > accx:
            while self.truncation(ut, 0.0) > accx:
                ut *= 4.0
        else:
            ut = u
            u /= 4.0
            while self.truncation(u, 0.0) <= accx:
                ut = u
                u /= 4.0
        for divisor in (2.0, 1.4, 1.2, 1.1):
            u = ut / divisor
            if self.truncation(u, 0.0) <= accx:
                ut = u
        return ut

    def cfe(self, x: float) -> float:
        """Coefficient of ``tausq`` in the error at ``x`` of the factor ``exp(-tausq u^2 / 2)``."""
        self._tick()
        lam, n = self.lam, self.df + self.nc
        axl = abs(x)
        sxl = 1.0 if x > 0.0 else -1.0
        sum1 = 0.0
        order = self.by_size
        for j in range(lam.size - 1, -1, -1):  # smallest |lam| first
            t = order[j]
            if lam[t] * sxl > 0.0:
                lj = abs(lam[t])
                axl1 = axl - lj * n[t]
                axl2 = lj / _LOG28
                if axl1 > axl2:
                    axl = axl1
                else:
                    axl = min(axl, axl2)
                    sum1 = (axl - axl1) / lj + float(np.sum(n[order[:j]]))
                    break
        if sum1 > 100.0:
            self.fail = True
            return 1.0
        return 2.0 ** (sum1 / 4.0) / (np.pi * axl * axl)

    def integrate(self, nterm: int, interv: float, tausq: float, main: bool):
        """Add ``nterm + 1`` terms of the trapezoidal rule at step ``interv`` to the integral.

        Away from the main integration the integrand is multiplied by
        ``1 - exp(-tausq u^2 / 2)``.
        """
        lam, nc, df = self.lam, self.nc, self.df
        ks = np.arange(nterm, -1, -1, dtype=float)
        for s in range(0, ks.size, _ROWS):
            u = (ks[s:s + _ROWS] + 0.5) * interv
            x = 2.0 * u[:, None] * lam[None, :]
            y = x * x
            sum3 = -0.5 * self.sigsq * u * u - 0.25 * (np.log1p(y) @ df)
            y = nc[None, :] * x / (1.0 + y)
            z = df[None, :] * np.arctan(x) + y
            sum1 = -2.0 * u * self.c + z.sum(axis=1)
            sum2 = np.abs(2.0 * u * self.c) + np.abs(z).sum(axis=1)
            sum3 = sum3 - 0.5 * (x * y).sum(axis=1)
            w = (interv / np.pi) * np.where(sum3 < -50.0, 0.0, np.exp(np.maximum(sum3, -50.0))) / u
            if not main:
                a = -0.5 * tausq * u * u
                w = w * (1.0 - np.where(a < -50.0, 0.0, np.exp(np.maximum(a, -50.0))))
            self.intl += float(np.sum(np.sin(0.5 * sum1) * w))
            self.ersm += float(np.sum(0.5 * sum2 * w))

    def run(self):
        """``(P(Q < c), fault)``; fault 2 flags possible round-off. Raises :class:`_DaviesFault`."""
        lam, nc, df, c = self.lam, self.nc, self.df, self.c
        sd = self.sigsq + float(np.sum(lam * lam * (2.0 * df + 4.0 * nc)))
        if sd == 0.0:
            return (1.0 if c > 0.0 else 0.0), 0
        if self.lmin == 0.0 and self.lmax == 0.0 and self.sigma == 0.0:
            raise _DaviesFault(3)
        sd = np.sqrt(sd)
        almx = max(self.lmax, -self.lmin)
        acc1 = self.acc
        xlim = float(self.lim)
        up = 4.5 / sd
        un = -up
        # truncation point without a convergence factor; then with one, if it helps
        utx = self.findu(16.0 / sd, 0.5 * acc1)
        if c != 0.0 and almx > 0.07 * sd:
            tausq = 0.25 * acc1 / self.cfe(c)
            if self.fail:
                self.fail = False
            elif self.truncation(utx, tausq) < 0.2 * acc1:
                self.sigsq += tausq
                utx = self.findu(utx, 0.25 * acc1)
        acc1 *= 0.5
        while True:
            # the range of the distribution: outside it the answer is 0 or 1
            cut, up = self.ctff(acc1, up)
            d1 = cut - c
            if d1 < 0.0:
                return 1.0, 0
            cut, un = self.ctff(acc1, un)
            d2 = c - cut
            if d2 < 0.0:
                return 0.0, 0
            intv = 2.0 * np.pi / max(d1, d2)
            xnt = utx / intv
            xntm = 3.0 / np.sqrt(acc1)
            if xnt <= xntm * 1.5:
                break
            # too many terms: an auxiliary integration with a convergence factor first
            if xntm > xlim:
                raise _DaviesFault(1)
            ntm = int(np.floor(xntm + 0.5))
            intv1 = utx / ntm
            x = 2.0 * np.pi / intv1
            if x <= abs(c):
                break
            tausq = 0.33 * acc1 / (1.1 * (self.cfe(c - x) + self.cfe(c + x)))
            if self.fail:
                break
            acc1 *= 0.67
            self.integrate(ntm, intv1, tausq, False)
            xlim -= xntm
            self.sigsq += tausq
            utx = self.findu(utx, 0.25 * acc1)
            acc1 *= 0.75
        if xnt > xlim:
            raise _DaviesFault(1)
        self.integrate(int(np.floor(xnt + 0.5)), intv, 0.0, True)
        value = 0.5 - self.intl
        # could round-off matter? (the accuracy is lost in the error sum)
        x = self.ersm + self.acc / 10.0
        fault = 2 if any(r * x == r * self.ersm for r in (1.0, 2.0, 4.0, 8.0)) else 0
        return value, fault


def _like(v, lam: np.ndarray) -> np.ndarray:
    """``v`` as floats, broadcast to the shape of ``lam``."""
    return np.broadcast_to(np.asarray(v, dtype=float), lam.shape)


def davies(q: float, lam, df=None, nc=None, sigma: float = 0.0, lim: int = 100_000,
           acc: float = 2e-5) -> tuple[float, int]:
    """Davies' (1980) ``P(Q < q)`` for ``Q = sum_j lam_j chi2(df_j, nc_j) + sigma Z``.

    Parameters
    ----------
    q : float
    lam : array-like (r,)
        Weights, of any sign.
    df : array-like (r,), optional
        Whole degrees of freedom (default 1).
    nc : array-like (r,), optional
        Non-centrality parameters (default 0).
    sigma : float
        Standard deviation of an added normal term.
    lim : int
        Largest number of integration terms (and of bound evaluations).
    acc : float
        Absolute accuracy sought.

    Returns
    -------
    cdf : float
        ``P(Q < q)``, or NaN if the algorithm failed.
    fault : int
        0 success; 1 ``acc`` not reached within ``lim`` terms; 2 round-off
        may be significant (``cdf`` is still returned); 3 invalid input;
        4 ``lim`` bound evaluations used up.

    Examples
    --------
    >>> cdf, fault = davies(3.84, [1.0])
    >>> round(1 - cdf, 4), fault
    (0.05, 0)
    """
    lam = np.atleast_1d(np.asarray(lam, dtype=float))
    df = np.ones_like(lam) if df is None else _like(df, lam)
    nc = np.zeros_like(lam) if nc is None else _like(nc, lam)
    if np.any(df < 0) or np.any(nc < 0):
        return float("nan"), 3
    try:
        return _Davies(lam, nc, df, float(sigma), float(q), int(lim), float(acc)).run()
    except _DaviesFault as fault:
        return float("nan"), fault.code


def psum_chisq(q: float, lam, df=None, nc=None, tol: float = 2e-5, lim: int = 100_000) -> float:
    """``P(sum_j lam_j X_j > q)``, ``X_j`` independent chi-squares with ``df_j`` degrees of freedom.

    mgcv's ``psum.chisq``: Davies' algorithm (:func:`davies`) with absolute
    accuracy ``tol``; when it fails (faults 1, 3, 4), Liu et al.'s
    approximation (:func:`liu_tail`) for central chi-squares, NaN otherwise.

    Parameters
    ----------
    q : float
    lam : array-like (r,)
        Weights, of any sign, not all zero.
    df : array-like (r,), optional
        Degrees of freedom, rounded to whole numbers, at least 1 (default 1).
    nc : array-like (r,), optional
        Non-centrality parameters (default 0).

    Returns
    -------
    float

    Raises
    ------
    OptionError
        Degrees of freedom below 1, or all weights zero.

    Examples
    --------
    >>> round(psum_chisq(3.84, [1.0]), 4)
    0.05
    >>> round(psum_chisq(0.0, [1.0, -3.84]), 4)  # P(chi2_1 > 3.84 chi2_1) = P(F(1, 1) > 3.84)
    0.3004
    """
    lam = np.atleast_1d(np.asarray(lam, dtype=float))
    df = np.ones_like(lam) if df is None else np.round(_like(df, lam))
    nc = np.zeros_like(lam) if nc is None else _like(nc, lam)
    if np.any(df < 1):
        raise OptionError(f"psum_chisq: df must be whole numbers >= 1; got {df.tolist()}")
    if np.all(lam == 0):
        raise OptionError("psum_chisq: at least one weight in lam must be non-zero")
    cdf, fault = davies(q, lam, df, nc, 0.0, lim, tol)
    if fault in (0, 2):
        return 1.0 - cdf
    return liu_tail(q, lam, df) if np.all(nc == 0) else float("nan")


def _chol_or_root(M: np.ndarray) -> np.ndarray:
    """An R with R'R = M: upper-triangular (Cholesky), or a symmetric root if M is singular."""
    try:
        return np.linalg.cholesky(M).T
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh((M + M.T) / 2)
        vals = np.maximum(vals, 0.0)
        return (vecs * np.sqrt(vals)) @ vecs.T


def _clip(p: float) -> float:
    """A p-value in [0, 1]: Davies' ``1 - P(Q < q)`` can stray outside by its error."""
    return float(min(1.0, max(0.0, p)))


def smooth_test(beta: np.ndarray, XtX: np.ndarray, V: np.ndarray, rank: float, res_df: float = -1.0):
    """mgcv's ``testStat(type = 0)`` for one smooth.

    Parameters
    ----------
    beta : ndarray (k,)
        The term's coefficients.
    XtX : ndarray (k, k)
        The term's block of X'WX (mgcv's ``crossprod(R[, ind])``).
    V : ndarray (k, k)
        The term's block of the Bayesian covariance ``Vp``.
    rank : float
        ``min(k, edf1)``: the (fractional) rank of the test.
    res_df : float
        Residual degrees of freedom ``n - sum(edf)`` when the scale is
        estimated (F test), or <= 0 (chi-square test).

    Returns
    -------
    stat, pval, ref_df : float
        ``T``, its p-value and the rank used (mgcv's ``Ref.df``).

    Notes
    -----
    With ``k = floor(rank)`` and ``nu = rank - k > 0``, the first ``k - 1``
    eigen-directions of ``R V R'`` are used whole and the ``k``-th and
    ``(k+1)``-th are blended, which gives two statistics (for the two signs
    of the blend) whose p-values, from a weighted sum of chi-squares (an F
    analogue when the scale is estimated, with ``round(res_df)`` degrees of
    freedom), are averaged. A whole rank uses the F or chi-square
    distribution. The p-value is not refined in the far tail: mgcv does not.
    """
    R = _chol_or_root(XtX)
    Vr = R @ V @ R.T
    Vr = (Vr + Vr.T) / 2
    vals, vecs = np.linalg.eigh(Vr)
    order = np.argsort(-vals, kind="stable")
    vals, vecs = vals[order], vecs[:, order]
    siv = np.sign(vecs[0, :])
    siv[siv == 0] = 1
    vecs = vecs * siv
    k = max(0, int(np.floor(rank)))
    nu = abs(rank - k)
    k1 = k + 1 if nu > 0 else k
    r_est = int(np.sum(vals > np.max(vals) * _EPS**0.9))
    if r_est < k1:
        k1 = k = r_est
        nu = 0.0
        rank = float(r_est)
    vec = vecs[:, :k1].copy() if k1 < vecs.shape[1] else vecs.copy()
    if nu > 0 and k > 0:
        if k > 1:
            vec[:, : k - 1] = vec[:, : k - 1] / np.sqrt(vals[: k - 1])
        b12 = np.sqrt(max(0.5 * nu * (1 - nu), 0.0))
        B = np.array([[1.0, b12], [b12, nu]])
        ev = np.diag(vals[k - 1:k1] ** -0.5)
        B = ev @ B @ ev
        eb_vals, eb_vecs = np.linalg.eigh(B)
        rB = eb_vecs @ np.diag(np.sqrt(np.maximum(eb_vals, 0.0))) @ eb_vecs.T
        vec1 = vec.copy()
        vec1[:, k - 1:k1] = (rB @ np.diag([-1.0, 1.0]) @ vec[:, k - 1:k1].T).T
        vec[:, k - 1:k1] = (rB @ vec[:, k - 1:k1].T).T
    else:
        if k == 0:
            vec = vec * np.sqrt(1 / vals[0])
        else:
            vec = vec / np.sqrt(vals[:k])
        vec1 = vec
        if k == 1:
            rank = 1.0
    Rb = R @ beta
    d = float(np.sum((vec.T @ Rb) ** 2))
    d1 = float(np.sum((vec1.T @ Rb) ** 2))
    rank1 = rank
    pval = 2.0  # a whole rank: the F or chi-square reference below
    if nu > 0:
        if k1 == 1:
            rank1 = 1.0
            val = np.array([1.0])
        else:
            val = np.ones(k1)
            rp = nu + 1
            val[k - 1] = (rp + np.sqrt(rp * (2 - rp))) / 2
            val[k1 - 1] = rp - val[k - 1]
        if res_df <= 0:
            pval = (psum_chisq(d, val) + psum_chisq(d1, val)) / 2
        else:
            k0 = max(1, int(round(res_df)))
            dfs = np.concatenate([np.ones(val.shape[0]), [k0]])
            pval = (psum_chisq(0.0, np.concatenate([val, [-d / k0]]), dfs)
                    + psum_chisq(0.0, np.concatenate([val, [-d1 / k0]]), dfs)) / 2
    if pval > 1:
        if res_df <= 0:
            pval = (st.chi2.sf(d, rank1) + st.chi2.sf(d1, rank1)) / 2
        else:
            pval = (st.f.sf(d / rank1, rank1, res_df) + st.f.sf(d1 / rank1, rank1, res_df)) / 2
    return d, _clip(pval), float(rank)


def random_effect_test(beta: np.ndarray, Rm: np.ndarray, B: np.ndarray, scale: float,
                       scale_estimated: bool, res_df: float):
    """mgcv's ``reTest``: statistic, p-value and rank for a fully penalized term.

    Parameters
    ----------
    beta : ndarray (k,)
        The term's coefficients.
    Rm : ndarray (k, k)
        Any root (``Rm'Rm``) of the inverse of the term's block of
        ``(X'WX + S)^{-1}`` with the other random terms integrated out
        (mgcv's ``recov``).
    B : ndarray (m, k)
        Any root (``B'B``) of the term's block of the frequentist covariance
        ``Ve`` (the same integration).
    scale : float
        ``phi``.
    scale_estimated : bool
    res_df : float
        The residual degrees of freedom ``n - sum(edf)``.

    Returns
    -------
    stat, pval : float
    rank : int
        The number of weights above ``eps^0.8`` of the largest (mgcv's
        ``Ref.df``).

    Notes
    -----
    ``T = |Rm beta|^2 / phi``; the weights ``ev`` are the eigenvalues of
    ``Rm Ve Rm' / phi``, computed as squared singular values of ``B Rm'``.
    The p-value is ``P(sum_j ev_j chi2_1 > T)`` (known scale) or
    ``P(sum_j ev_j chi2_1 - T chi2_k / k > 0)``, ``k = round(res_df)``
    (estimated scale), by :func:`psum_chisq`, with no other tail
    refinement: mgcv's choices.
    """
    d = Rm @ beta
    stat = float(d @ d) / scale
    ev = np.linalg.svd(B @ Rm.T, compute_uv=False) ** 2 / scale
    rank = int(np.sum(ev > np.max(ev) * _EPS**0.8)) if ev.size else 0
    ev = ev[ev > 0]
    if ev.size == 0:
        return stat, 1.0, rank
    if scale_estimated:
        k = max(1, int(round(res_df)))
        lam = np.concatenate([ev, [-stat / k]])
        pval = psum_chisq(0.0, lam, np.concatenate([np.ones(ev.size), [k]]))
    else:
        pval = psum_chisq(stat, ev)
    return stat, _clip(pval), rank


def term_test(fit, terms, t, res_df: float, edf1: np.ndarray):
    """mgcv's ``summary.gam`` test of one smooth or random-effects term.

    Parameters
    ----------
    fit : pymlm.fit.gam.GamFit
    terms : list of pymlm.design.GamTerm
        All the model's penalized terms (the other random effects are
        integrated out of a random-effect test).
    t : GamTerm
        The term tested (one of ``terms``).
    res_df : float
        Residual degrees of freedom ``n - sum(edf)``.
    edf1 : ndarray (p,)
        mgcv's per-coefficient ``edf1`` (``GamFit.edf1``).

    Returns
    -------
    stat, pval, ref_df : float
        A fully penalized term (random effects, factor-smooth interactions)
        gets :func:`random_effect_test`, any other term :func:`smooth_test`
        of rank ``min(k, edf1)``.
    """
    if t.penalty is not None and t.null_space_dim == 0:
        return _integrated_random_test(fit, terms, t, res_df)
    cols = t.cols
    rank = min(t.ncol, float(edf1[cols].sum()))
    return smooth_test(fit.beta[cols], fit.XtWX[cols, cols], fit.Vp[cols, cols], rank,
                       res_df if fit.scale_estimated else -1.0)


def _integrated_random_test(fit, terms, t, res_df: float):
    """mgcv's ``reTest`` for a fully penalized term ``t`` (with ``recov``'s integration).

    The other random-effect terms (set ``r``, penalties ``S_r``) are
    integrated out: with ``W'W = S_r^-``,

    - ``G = X_o'X_o + (W X_r'X_o)'(W X_r'X_o) + S_o`` on the remaining
      coefficients ``o`` (``S_o``: every other penalty, ``t``'s included),
      and ``Rm'Rm`` its Schur complement on ``t``'s block (the trailing
      block of the Cholesky factor with ``t``'s columns last);
    - ``Ve = phi PP H PP``, ``H = X'X + (W X_r'X)'(W X_r'X)``, passed as
      the root ``B = sqrt(phi) H^{1/2} PP[:, t]`` (``B'B = Ve_tt``).

    The weights of the test are the squared singular values of
    ``B Rm'``: working with roots keeps the exact zero weight of a term
    confounded with the intercept (``s(g, bs = "re")`` beside
    ``(Intercept)``) at rounding level squared, so it does not count in
    the rank (``Ref.df``: levels - 1, as mgcv).
    """
    XX = (fit.XtWX + fit.XtWX.T) / 2
    p = XX.shape[0]
    rho = fit.rho
    S_other = np.zeros((p, p))
    random_blocks = []
    at = 0
    for u in terms:
        pen = u.penalty
        if pen is None:
            continue
        Su = pen.matrix(rho[at:at + pen.n_par])
        at += pen.n_par
        if u is not t and u.is_random:
            random_blocks.append((u.cols, (Su + Su.T) / 2))
        else:
            S_other[u.cols, u.cols] += Su
    rmask = np.zeros(p, dtype=bool)
    for cols, _ in random_blocks:
        rmask[cols] = True
    H = XX
    keep = ~rmask
    G = XX[np.ix_(keep, keep)] + S_other[np.ix_(keep, keep)]
    if random_blocks:
        # W: rows sqrt(1/ev) v' per random block; eigenvalues below eps^0.8 of the largest
        # are dropped (mgcv's recov)
        eig = [np.linalg.eigh(Sb) for _, Sb in random_blocks]
        top = max(float(np.max(vals)) for vals, _ in eig)
        W = np.zeros((int(rmask.sum()), int(rmask.sum())))
        pos = np.cumsum([0] + [Sb.shape[0] for _, Sb in random_blocks])
        for (vals, vecs), a0, a1 in zip(eig, pos[:-1], pos[1:]):
            ok = vals > top * np.finfo(float).eps ** 0.8
            inv = np.zeros_like(vals)
            inv[ok] = 1.0 / vals[ok]
            W[a0:a1, a0:a1] = np.sqrt(inv)[:, None] * vecs.T
        WX = W @ XX[rmask, :]
        H = XX + WX.T @ WX
        WXo = WX[:, keep]
        G = G + WXo.T @ WXo
    idx = np.flatnonzero(keep)
    mine = (idx >= t.start) & (idx < t.start + t.ncol)
    order = np.concatenate([np.flatnonzero(~mine), np.flatnonzero(mine)])
    Gp = G[np.ix_(order, order)]
    try:
        Rm = np.linalg.cholesky((Gp + Gp.T) / 2).T[-t.ncol:, -t.ncol:]
    except np.linalg.LinAlgError:  # G singular: the Schur complement from a pseudo-inverse
        Gi = np.linalg.pinv((Gp + Gp.T) / 2)[-t.ncol:, -t.ncol:]
        schur = np.linalg.pinv((Gi + Gi.T) / 2)
        vals, vecs = np.linalg.eigh((schur + schur.T) / 2)
        Rm = np.sqrt(np.maximum(vals, 0.0))[:, None] * vecs.T
    hv, hU = np.linalg.eigh((H + H.T) / 2)
    hv = np.where(hv > hv[-1] * p * np.finfo(float).eps, hv, 0.0)
    B = np.sqrt(fit.scale) * (np.sqrt(hv)[:, None] * (hU.T @ fit.PP[:, t.cols]))
    return random_effect_test(fit.beta[t.cols], Rm, B, fit.scale, fit.scale_estimated, res_df)


def _r_factor(X: np.ndarray) -> np.ndarray:
    """The R factor (upper triangular, (p, p)) of a QR decomposition without pivoting."""
    return np.linalg.qr(X, mode="r")


def _concurvity_pair(Ri: np.ndarray, Rj: np.ndarray, beta: np.ndarray) -> tuple[float, float, float]:
    """mgcv's three measures of how far the term with R-columns ``Rj`` lies in the span of ``Ri``.

    With ``[R_ii, R_ij; 0, R_jj]`` the R factor of ``[X_i, X_j]``, the part of
    ``X_j`` explained by ``X_i`` is ``R_ij`` and the whole ``[R_ij; R_jj]``:
    ``worst`` is the largest squared canonical correlation ``||R_ij Rt^{-1}||_2^2``
    (``Rt`` the R factor of the whole), ``observed`` ``||R_ij b||^2 / ||Rt b||^2``
    for the fitted coefficients ``b`` and ``estimate`` ``||R_ij||_F^2 / ||[R_ij; R_jj]||_F^2``.
    """
    r = Ri.shape[1]
    R = _r_factor(np.hstack([Ri, Rj]))[:, r:]
    top = R[:r]
    Rt = _r_factor(R)
    M = sla.solve_triangular(Rt, top.T, trans="T", lower=False)  # Rt^{-T} top'
    worst = float(np.linalg.svd(M, compute_uv=False)[0] ** 2)
    observed = float(np.sum((top @ beta) ** 2) / np.sum((Rt @ beta) ** 2))
    estimate = float(np.sum(top**2) / np.sum(R**2))
    return worst, observed, estimate


def concurvity(b, full: bool = True):
    """Concurvity of the smooth terms of a fitted GAM, as mgcv's ``concurvity``.

    Concurvity is the non-linear analogue of collinearity: how far a smooth
    term can be approximated by the other terms of the model. Each measure is
    between 0 (none) and 1 (the term lies in the span of the others):
    ``worst`` (the largest squared canonical correlation between the term's
    space and the others'), ``observed`` (for the fitted function) and
    ``estimate`` (an average over the term's basis). Everything is computed
    from the R factor of the (unweighted) model matrix, as mgcv does.

    Parameters
    ----------
    b : GamResult
    full : bool
        True: each term against all the others (one table); False: each pair
        of terms (one matrix per measure, the term of the row explaining the
        term of the column).

    Returns
    -------
    DataFrame (full) with rows ``worst``, ``observed``, ``estimate`` and one
    column per term (``para`` for the parametric part, when there is one),
    or a dict of three DataFrames (not full).

    Notes
    -----
    As in mgcv 1.8-41, ``para`` is the model matrix' first column only (the
    intercept), not all parametric columns; the other parametric columns
    count among "the other terms" of each smooth.
    """
    import pandas as pd

    design, fit = b.design, b.fit_
    X = b._train_rows(0, design.n)
    X = X[~np.isnan(X).any(axis=1)]
    R = _r_factor(X)
    blocks = [(t.label, t.cols) for t in design.terms]
    if design.pp > 0:
        # mgcv 1.8-41 takes the parametric block as columns 1:(min(start) - 1) after putting
        # 1 into start, i.e. only the first column (the intercept): so does pymlm, to
        # report mgcv's numbers
        blocks.insert(0, ("para", slice(0, 1)))
    labels = [lab for lab, _ in blocks]
    names = ["worst", "observed", "estimate"]
    p = R.shape[1]
    if full:
        out = np.zeros((3, len(blocks)))
        for i, (_, c) in enumerate(blocks):
            rest = np.setdiff1d(np.arange(p), np.arange(p)[c])
            out[:, i] = _concurvity_pair(R[:, rest], R[:, c], fit.beta[c])
        return pd.DataFrame(out, index=names, columns=labels)
    mats = [np.ones((len(blocks), len(blocks))) for _ in names]
    for i, (_, ci) in enumerate(blocks):
        for j, (_, cj) in enumerate(blocks):
            if i != j:
                vals = _concurvity_pair(R[:, ci], R[:, cj], fit.beta[cj])
                for M, v in zip(mats, vals):
                    M[i, j] = v
    return {nm: pd.DataFrame(M, index=labels, columns=labels) for nm, M in zip(names, mats)}
