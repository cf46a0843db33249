"""Performance iteration for a streamed ``bam``: two passes over the source per iteration.

:func:`pymlm.fit.gam.fit_gam` fits non-Gaussian models by performance
iteration (Wood, Goude & Shaw 2015): at each step the working weights and
response of penalized IRLS give a working linear model whose smoothing
parameters and coefficients are re-estimated. On a stream the per-row state
(``eta``, ``mu``) is not kept but recomputed, batch by batch, from the
coefficients: ``eta = X beta + offset`` from the batch's indices and the
terms' rows on their cells. Each iteration makes

1. a pass of maxima, at the new coefficients: of the next working model's
   statistics (the scales of its exact sums) and of the per-row values of
   the deviance and summaries; non-finite values (a step too far) halve the
   step, as ``fit_gam`` does;
2. a pass of exact sums: the deviance and the summaries at the new
   coefficients, and the cross-tabulations of the next working model.

The first iteration starts from mgcv's initial means, so it needs no
coefficients; its pass also counts the occupied cells, after which the
smooths are constructed. Every sum is exact, so a Dask DataFrame gives the
same bits for any partitioning, and the fit follows the in-memory iteration
step for step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.special as sc

from ..crossprod._exact import power_scale
from ..crossprod._gam_stream import (
    add_row_sums,
    batch_maxima,
    batch_tables,
    cross_stats,
    max_maxima,
    occupied_cells,
    row_sums,
    run_pass,
    scales_of,
)
from ..design._gam_stream import finish_gam_design, with_parametric_columns
from ..errors import DataError, OptionError
from ..linalg._threads import blas_threads
from ._gam_reml import null_dim
from .gam import SINGLE_THREAD_MAX, GamFit, _check_response, _initial_mu, _optimize, _rho_hessian

__all__ = ["ROW_NAMES", "fit_gam_stream_pirls"]

#: The per-row values summed at each iteration's coefficients (prior weights ``p``).
ROW_NAMES = ("p", "py", "pyy", "sp", "spy", "dev", "ndev", "r", "rr", "ll1", "ll2", "ll3")


@dataclass(frozen=True, eq=False)
class _Working:
    """The working model of one iteration, computed on a batch from the coefficients.

    ``beta`` None: mgcv's initial means (the first iteration). ``mu0``: the null model's mean
    (None before it is known; ``"offset"`` without an intercept)."""

    family: object
    beta: np.ndarray | None = None
    mats: list | None = None
    mu0: object = None

    def eta(self, plan, gb) -> np.ndarray:
        pp = plan.pp
        eta = gb.P @ self.beta[:pp] + (gb.y - gb.z)
        for j, b in enumerate(plan.blocks):
            Xu, start, ncol, cells = self.mats[j]
            coef = self.beta[start:start + ncol]
            cell = coef if Xu is None else np.asarray(Xu @ coef).ravel()
            k = gb.codes[b.space]
            pos = np.maximum(k, 0) if cells is None else np.searchsorted(cells, np.maximum(k, 0))
            part = np.where(k >= 0, cell[np.minimum(pos, cell.size - 1)], 0.0)
            if gb.by[j] is not None:
                part = part * gb.by[j]
            eta = eta + part
        return eta

    def apply(self, plan, gb):
        """(the working batch, the per-row values of :data:`ROW_NAMES`, whether they are finite)."""
        fam = self.family
        link = fam.link
        y = gb.y
        prior = np.ones(y.shape[0]) if gb.w is None else np.asarray(gb.w, dtype=float)
        off = gb.y - gb.z
        if self.beta is None:
            _check_response(fam, y, prior)
            mu = _initial_mu(fam, y, prior)
            eta = link(mu)
        else:
            eta = self.eta(plan, gb)
            mu = link.inverse(eta)
        d = link.deriv(mu)
        ww = prior / (fam.variance(mu) * d * d)
        ww = np.where(np.isfinite(ww), ww, 0.0)
        z = (eta - off) + (y - mu) * d
        wgb = replace(gb, w=ww, z=z)
        with np.errstate(all="ignore"):
            dev = fam._resid_dev(y, mu) * prior  # the terms of fam.deviance(y, mu, var_weights=prior)
            finite = bool(np.all(np.isfinite(dev)) and np.all(np.isfinite(mu)))
            if self.mu0 is None:
                ndev = np.zeros_like(y)
            else:
                mu0 = link.inverse(off) if isinstance(self.mu0, str) else np.full_like(y, self.mu0)
                ndev = fam._resid_dev(y, mu0) * prior
            sp_ = np.sqrt(prior)
            r = sp_ * (y - mu)
            ll = _loglik_terms(fam, y, mu, prior)
            R = np.column_stack([prior, prior * y, prior * y * y, sp_, sp_ * y, dev, ndev, r, r * r, *ll])
        R = np.where(np.isfinite(R), R, 0.0)
        return wgb, R, finite


def _loglik_terms(fam, y, mu, prior):
    """Per-row terms of mgcv's log-likelihood (R's ``family()$aic``): binomial and Poisson their
    log-probabilities; Gamma the sums its dispersion-dependent formula needs."""
    name = type(fam).__name__
    zero = np.zeros_like(y)
    if name == "Binomial":
        k, n = np.round(prior * y), np.round(prior)
        with np.errstate(divide="ignore", invalid="ignore"):
            lp = sc.xlogy(k, mu) + sc.xlog1py(n - k, -mu) + sc.gammaln(n + 1) - sc.gammaln(k + 1) \
                - sc.gammaln(n - k + 1)
        return lp, zero, zero
    if name == "Poisson":
        with np.errstate(divide="ignore", invalid="ignore"):
            return prior * (sc.xlogy(y, mu) - mu - sc.gammaln(y + 1)), zero, zero
    if name == "Gamma":
        with np.errstate(divide="ignore", invalid="ignore"):
            return prior * np.log(y), prior * y / mu, prior * np.log(mu)
    return zero, zero, zero


class _WorkMaxima:
    def __init__(self, work: _Working):
        self.work = work

    def __call__(self, plan, gb, acc):
        wgb, R, finite = self.work.apply(plan, gb)
        m = batch_maxima(plan, wgb)
        m["rows"] = np.abs(R).max(axis=0) if R.shape[0] else np.zeros(R.shape[1])
        m["bad"] = np.array([0.0 if finite else 1.0])  # combined by maxima: any batch with a non-finite value
        return max_maxima(acc, m)


class _WorkTables:
    def __init__(self, work: _Working, scales: dict):
        self.work, self.scales = work, scales

    def __call__(self, plan, gb, acc):
        wgb, R, _ = self.work.apply(plan, gb)
        acc = batch_tables(plan, wgb, self.scales, acc)
        return add_row_sums(acc, "rows", R, self.scales["rows"])


def _maxima(plan, source, batch_size, work, progress):
    mx = run_pass(plan, source, batch_size, _WorkMaxima(work), progress=progress, desc="scales")
    if mx is None:
        raise DataError(f"{source.name!r} has no complete rows")
    return mx


def _scales(plan, mx):
    out = scales_of(plan, {k: v for k, v in mx.items() if k not in ("rows", "bad")})
    out["rows"] = power_scale(mx["rows"])
    return out


def fit_gam_stream_pirls(plan, source, family, *, batch_size: int, sp=None, optimizer: str = "newton",
                         max_iter: int = 200, epsilon: float = 1e-7, progress: bool = False, on_step=None,
                         check_rank=None):
    """Fit a non-Gaussian ``bam(discrete = TRUE)`` on a streamed source by performance iteration.

    Parameters
    ----------
    plan : GamStreamPlan
    source : pymlm.sources.Source
    family : statsmodels family
    batch_size : int
    sp : ndarray, optional
        Fixed smoothing parameters.
    optimizer : {"newton", "fs"}
    max_iter, epsilon
        As :func:`pymlm.fit.gam.fit_gam`.
    progress : bool
    on_step : callable, optional
    check_rank : callable, optional
        ``check_rank(plan, tables, scales)``: the parametric columns to keep when they are
        linearly dependent (None: all), from the first iteration's tables.

    Returns
    -------
    design : StreamGamDesign
        With ``summary`` holding ``r_sq`` and ``loglik``.
    fit : GamFit
        Its rows (``eta``, ``mu``, weights) are empty.
    """
    from .gam import resolve_family

    fam, fam_name, link_name = resolve_family(family)
    scale_known = fam_name in ("binomial", "poisson")
    work = _Working(fam)
    mx = _maxima(plan, source, batch_size, work, progress)
    scales = _scales(plan, mx)
    tables = run_pass(plan, source, batch_size, _WorkTables(work, scales), progress=progress, desc="iteration 1")
    keep = None if check_rank is None else check_rank(plan, tables, scales)
    if keep is not None:
        plan = with_parametric_columns(plan, keep)
        mx = _maxima(plan, source, batch_size, work, progress)
        scales = _scales(plan, mx)
        tables = run_pass(plan, source, batch_size, _WorkTables(work, scales), progress=progress,
                          desc="iteration 1")
    sums = dict(zip(ROW_NAMES, row_sums(tables, "rows", scales["rows"])))
    design, mats = finish_gam_design(plan, occupied_cells(plan, tables), source.name, plan.design.formula)
    if sp is not None:
        n_par = sum(b.n_par for b in design.penalties)
        sp = np.atleast_1d(np.asarray(sp, dtype=float))
        if sp.shape[0] != n_par or np.any(sp <= 0):
            raise OptionError(f"sp must hold {n_par} positive smoothing parameters (one per penalty); got "
                              f"{sp.tolist()}")
    has_intercept = "(Intercept)" in design.p_names
    mu0 = sums["py"] / sums["p"] if has_intercept else "offset"
    penalties = design.penalties
    Mp = null_dim(design.p, penalties)
    rho = None
    beta_old = None
    dev_old = np.inf
    converged = False
    best = stats = None
    nit, conv, msg = 0, True, ""
    it = 0
    final = None
    for it in range(1, max_iter + 1):
        stats, _ = cross_stats(plan, design, mats, tables, scales)
        with blas_threads(1 if design.p <= SINGLE_THREAD_MAX else None):
            best, nit, conv, msg = _optimize(stats, penalties, rho, 1.0 if scale_known else None, sp, optimizer,
                                             on_step, False)
        rho = best.rho
        beta = best.beta
        work = _Working(fam, beta, mats, mu0)
        mx = _maxima(plan, source, batch_size, work, False)
        halvings = 0
        while float(mx["bad"][0]) > 0 and halvings < 30 and beta_old is not None:
            beta = (beta + beta_old) / 2
            work = _Working(fam, beta, mats, mu0)
            mx = _maxima(plan, source, batch_size, work, False)
            halvings += 1
        scales_next = _scales(plan, mx)
        tables_next = run_pass(plan, source, batch_size, _WorkTables(work, scales_next), progress=progress,
                               desc=f"iteration {it + 1}")
        final = dict(zip(ROW_NAMES, row_sums(tables_next, "rows", scales_next["rows"])))
        final["beta"] = beta
        dev = final["dev"]
        if abs(dev - dev_old) < epsilon * (abs(dev) + 0.1):
            converged = True
            break
        dev_old = dev
        beta_old = beta
        tables, scales = tables_next, scales_next
    ok = converged and conv
    msg_out = "full convergence" if ok else (
        msg if not conv else f"performance iteration did not converge in {max_iter} iterations")
    n = int(tables.n)
    summary = _summaries(fam_name, final, n, float(np.sum(best.PP * stats.XtWX.T)))
    design = replace(design, summary=summary, workers=tuple(sorted(tables.workers | tables_next.workers)))
    empty = np.zeros(0)
    fit = GamFit(beta=final["beta"], PP=best.PP, XtWX=stats.XtWX, scale=1.0 if scale_known else best.phi,
                 scale_estimated=not scale_known, reml_score=best.score, rho=best.rho, eta=empty, mu=empty,
                 deviance=float(final["dev"]), null_deviance=float(final["ndev"]), prior_weights=empty,
                 working_weights=None, iterations=it, newton_iterations=nit, converged=ok, message=msg_out,
                 Mp=Mp, family=fam, family_name=fam_name, link_name=link_name, method="fREML",
                 penalties=tuple(penalties),
                 rho_hess=_rho_hessian(best, penalties, n, Mp, not scale_known, sp),
                 warnings=() if ok else (f"the fit did not converge: {msg_out}",))
    return design, fit


def _summaries(fam_name: str, s: dict, n: int, edf_total: float) -> dict:
    """R-squared (mgcv's, from the prior-weighted residuals) and the log-likelihood from the row sums."""
    mean_y = s["py"] / s["p"]
    num = s["rr"] - s["r"] ** 2 / n
    sum_b2 = s["pyy"] - 2 * mean_y * s["py"] + mean_y ** 2 * s["p"]
    sum_b = s["spy"] - mean_y * s["sp"]
    den = (sum_b2 - sum_b ** 2 / n) / (n - 1) * (n - edf_total)
    r_sq = float(1 - num / den) if den > 0 else float("nan")
    if fam_name in ("binomial", "poisson"):
        ll = float(s["ll1"])
    elif fam_name == "Gamma":
        disp = s["dev"] / s["p"]
        a = 1.0 / disp
        ll = float((a - 1) * s["ll1"] - s["ll2"] / disp - a * s["ll3"] - a * np.log(disp) * s["p"]
                   - sc.gammaln(a) * s["p"])
    else:
        ll = float("nan")
    return {"r_sq": r_sq, "loglik": ll, "n": n}

