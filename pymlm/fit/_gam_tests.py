"""Approximate significance of smooth terms (Wood 2013), as mgcv's ``summary.gam``.

- :func:`smooth_test`: for a term with coefficients ``b`` and Bayesian
  covariance ``V``, the statistic ``T = b' V_r^- b`` uses a rank-``r``
  pseudo-inverse of ``V`` in the metric of the term's columns, where ``r``
  is the term's effective degrees of freedom ``edf1`` (Wood 2013a,
  "On p-values for smooth components of an extended generalized additive
  model", Biometrika 100, 221-228). For fractional ``r`` the last two
  eigen-directions are blended and the p-value comes from a mixture of
  chi-squares; ``F = T / r`` is reported when the scale is estimated.
- :func:`random_effect_test`: for a term whose whole basis is penalized
  (random effects, factor-smooth interactions), mgcv's test of
  ``H0: b = 0`` (Wood 2013b, "A simple test for random effects in
  regression models", Biometrika 100, 1005-1010): ``T = b' R_m'R_m b / phi``
  against a weighted sum of chi-squares with the eigenvalues of
  ``R_m V_e R_m' / phi`` as weights.
- :func:`psum_chisq`: upper tail of a weighted sum of independent
  chi-squares (Imhof's inversion formula, numerically integrated), with
  Liu, Tang & Zhang's (2009) approximation for the far tail.

Everything is written in terms of ``X'WX`` instead of mgcv's ``R`` factor
(``R'R = X'WX``); every quantity mgcv computes from ``R`` depends on it only
through ``R'R``.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.integrate as si
import scipy.stats as st

__all__ = ["smooth_test", "random_effect_test", "psum_chisq", "liu_tail"]

_EPS = np.finfo(float).eps


def liu_tail(x: float, lam: np.ndarray, h: np.ndarray | None = None) -> float:
    """Liu, Tang & Zhang (2009) approximation of P(sum lam_j chi2_{h_j} > x), lam > 0."""
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


def psum_chisq(q: float, lam, df=None) -> float:
    """P(sum_j lam_j X_j > q), X_j independent chi-square with ``df_j`` degrees of freedom.

    Weights may be negative. Computed by Imhof's (1961) formula

        P = 1/2 + (1/pi) int_0^inf sin(theta(u)) / (u rho(u)) du,
        theta(u) = sum_j df_j atan(lam_j u) / 2 - q u / 2,
        rho(u) = prod_j (1 + lam_j^2 u^2)^(df_j / 4),

    with adaptive quadrature; accurate to about 1e-9 absolute, so tails
    below that are taken from :func:`liu_tail` (all-positive weights) or
    reported as that bound.

    Examples
    --------
    >>> round(psum_chisq(3.84, [1.0]), 4)
    0.05
    """
    lam = np.asarray(lam, dtype=float)
    df = np.ones_like(lam) if df is None else np.asarray(df, dtype=float)
    keep = lam != 0
    lam, df = lam[keep], df[keep]
    if lam.size == 0:
        return 0.0 if q >= 0 else 1.0

    def integrand(u):
        if u == 0:
            return 0.5 * (np.sum(df * lam) - q) / np.pi
        theta = 0.5 * np.sum(df * np.arctan(lam * u)) - 0.5 * q * u
        logrho = 0.25 * np.sum(df * np.log1p((lam * u) ** 2))
        return np.sin(theta) * np.exp(-logrho) / (u * np.pi)

    def amp(u, trig):
        a = 0.5 * np.sum(df * np.arctan(lam * u))
        logrho = 0.25 * np.sum(df * np.log1p((lam * u) ** 2))
        return trig(a) * np.exp(-logrho) / (u * np.pi)

    scale = 1.0 / max(np.max(np.abs(lam)), 1e-300)
    cut = 64.0 * scale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", si.IntegrationWarning)
        total = 0.0
        edges = [0.0] + [f * scale for f in (0.25, 1.0, 4.0, 16.0, 64.0)]
        for a, b in zip(edges[:-1], edges[1:]):
            total += si.quad(integrand, a, b, limit=400, epsabs=1e-13, epsrel=1e-10)[0]
        if q > 0:
            # sin(A - q u / 2) = sin A cos(q u / 2) - cos A sin(q u / 2): Fourier integrals (QAWF)
            w = 0.5 * q
            tail = si.quad(amp, cut, np.inf, args=(np.sin,), weight="cos", wvar=w, limlst=100)[0] \
                - si.quad(amp, cut, np.inf, args=(np.cos,), weight="sin", wvar=w, limlst=100)[0]
        else:
            tail = si.quad(integrand, cut, np.inf, limit=400, epsabs=1e-13)[0]
    p = 0.5 + total + tail
    if p < 1e-8:
        if np.all(lam > 0):
            return max(liu_tail(q, lam, df), 0.0)
        return max(p, 0.0)
    return float(min(max(p, 0.0), 1.0))


def _chol_or_root(M: np.ndarray) -> np.ndarray:
    """An upper-triangular R with R'R = M (Cholesky), or a symmetric root if M is singular."""
    try:
        return np.linalg.cholesky(M).T
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh((M + M.T) / 2)
        vals = np.maximum(vals, 0.0)
        return (vecs * np.sqrt(vals)) @ vecs.T


def smooth_test(b: np.ndarray, XtX: np.ndarray, V: np.ndarray, rank: float, res_df: float = -1.0):
    """mgcv's ``testStat(type = 0)`` for one smooth.

    Parameters
    ----------
    b : ndarray (k,)
        The term's coefficients.
    XtX : ndarray (k, k)
        The term's block of X'WX.
    V : ndarray (k, k)
        The term's block of the Bayesian covariance Vp.
    rank : float
        ``min(k, edf1)``: the (fractional) rank of the test.
    res_df : float
        Residual degrees of freedom when the scale is estimated (F test),
        or <= 0 (chi-square test).

    Returns
    -------
    stat, pval, ref_df : float
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
    Rb = R @ b
    d = float(np.sum((vec.T @ Rb) ** 2))
    d1 = float(np.sum((vec1.T @ Rb) ** 2))
    rank1 = rank
    pval = 2.0
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
    if pval > 1 or pval < 1e-8:
        # integer rank, or beyond the quadrature's accuracy: F / chi-square reference
        if res_df <= 0:
            pval2 = (st.chi2.sf(d, rank1) + st.chi2.sf(d1, rank1)) / 2
        else:
            pval2 = (st.f.sf(d / rank1, rank1, res_df) + st.f.sf(d1 / rank1, rank1, res_df)) / 2
        pval = pval2 if pval > 1 else min(pval, pval2) if pval > 0 else pval2
    return d, float(min(1.0, pval)), float(rank)


def random_effect_test(b: np.ndarray, Rm: np.ndarray, Ve_mm: np.ndarray, scale: float,
                       scale_estimated: bool, res_df: float):
    """mgcv's ``reTest``: statistic, p-value and rank for a fully penalized term.

    Parameters
    ----------
    b : ndarray (k,)
    Rm : ndarray (k, k)
        Upper-triangular with ``Rm'Rm`` the term's block of the inverse of
        ``(A^{-1})_mm`` (the other coefficients profiled out).
    Ve_mm : ndarray (k, k)
        The term's block of the frequentist covariance.
    """
    d = Rm @ b
    stat = float(d @ d) / scale
    M = Rm @ Ve_mm @ Rm.T / scale
    ev = np.linalg.eigvalsh((M + M.T) / 2)
    ev[ev < 0] = 0.0
    rank = int(np.sum(ev > np.max(ev) * _EPS**0.8)) if ev.size else 0
    if scale_estimated:
        k = max(1, int(round(res_df)))
        pval = psum_chisq(0.0, np.concatenate([ev, [-stat / k]]), np.concatenate([np.ones(ev.size), [k]]))
        if pval < 1e-8:
            r = max(rank, 1)
            pval = min(pval, st.f.sf(stat / r, r, k)) if pval > 0 else st.f.sf(stat / r, r, k)
    else:
        pval = psum_chisq(stat, ev)
        if pval < 1e-8:
            pval = liu_tail(stat, ev[ev > 0]) if np.any(ev > 0) else pval
    return stat, float(min(max(pval, 0.0), 1.0)), rank
