"""Profile-likelihood intervals, as lme4's ``profile()`` and ``confint(method = "profile")``.

For each parameter phi (a random-effect sd or correlation, the residual sd
sigma, or a fixed effect), lme4's profile fixes phi on a grid, minimizes the
deviance over all the other parameters, and records the signed square root of
the deviance increase,

    zeta(phi) = sign(phi - phi_hat) sqrt(d(phi) - d(phi_hat)).

The interval at ``level`` is where zeta crosses -/+ z, z = qnorm((1 + level)/2),
read off an interpolating spline of zeta. As lme4 does, the profile is of the
maximum-likelihood deviance: a REML fit is refitted by ML first.

- Random-effect parameters and sigma: the deviance is the ML deviance at the
  sds/correlations s and sigma, profiled over beta only,

      d(s, sigma) = ldL2(theta) + pwrss(theta) / sigma^2 + n log(2 pi sigma^2) - sum log w,
      theta = vech(diag(sd) chol(R)) / sigma        (per term, R the correlations),

  minimized over the free elements of (s, sigma) within lme4's bounds (sd >= 0,
  |cor| <= 1, sigma > 0), by L-BFGS-B with the analytic gradient in theta
  (:mod:`pymlm.fit.deviance`) and the chain rule through the map above.
- A fixed effect beta_j at value b: x_j b moves into the offset, which
  changes only the [X y] rows of the cross-products, and the ML criterion is
  minimized over theta (sigma and the other fixed effects profiled out).

The grid follows lme4: a first step of 1% of the estimate (0.001 when it is 0;
``delta`` standard errors for a fixed effect), then steps of ``delta`` in zeta
predicted from the secant slope (at most ``maxmult`` times the previous step),
until |zeta| exceeds sqrt(qchisq(1 - alphamax, n_par)) or a bound is reached.
The interval is read from the inverse spline (``splines::backSpline`` of the
natural interpolating spline of zeta on phi), or, where zeta is not strictly
increasing, by linear interpolation of phi on zeta (lme4's fallback).

Bounds: one rule for every bounded parameter (an sd or sigma at 0, a
correlation at -1 or 1), as lme4's ``confint.thpr``: where the profile stops
at the bound before it reaches the level, the end of the interval is the
bound (a correlation whose profile stays below the cutoff up to 1 gets 1, an
sd whose profile reaches 0 gets 0). A fixed effect has no bound, so an end its
profile does not reach is NaN (lme4's NA). An estimate on its bound is
profiled inwards only, from a first step of 0.001, so a singular fit has a
one-sided interval ([0, upper] for an sd at 0, [lower, 1] for a correlation
at 1). Where this departs from lme4 1.1-31:

- lme4's first step for a correlation at -1 or 1 (1% beyond it) leaves the
  range, so lme4 never profiles it: [-1, 1] at every level, or NA for every
  variance parameter when the step's deviance is NA. Profiled inwards, the
  interval is [-1, 1] while the profile stays below the level (as lme4) and
  ends where zeta crosses the level otherwise.
- A flat stretch (equal zeta to rounding: a correlation once one of its sds is
  0 at the optimum is not identified) is followed straight to the bound,
  where lme4 steps by 1e-6 until ``maxpts`` runs out.
- An end never leaves the parameter's range (a spline through a steep last
  step can overshoot -1).

References
----------
Bates, D., Maechler, M., Bolker, B. and Walker, S. (2015). Fitting linear
mixed-effects models using lme4. J. Stat. Softw. 67(1), section 5.1.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from scipy.interpolate import CubicSpline

from .._validation import check_level, check_n_jobs, check_positive_int
from ..crossprod import offset_cross_products
from ..errors import (
    ConvergenceWarning,
    OptionError,
    PymlmInternalWarning,
    PymlmWarning,
    SingularFitWarning,
)
from ..errors import warn as warn_user
from ..fit._optimize import lift_start, minimize_box, refit
from ..fit.deviance import LOG_2PI, evaluator_for, single_threaded
from ..linalg import ThetaMap
from ._parallel import run_replicates

__all__ = ["OPTIONS", "LmmProfile", "back_spline", "interval", "profile", "zeta"]

#: options of ``confint(method="profile")`` and ``profile()``, with lme4's defaults
OPTIONS = {"which": None, "alphamax": 0.01, "maxpts": 100, "delta": None, "delta_cutoff": 1 / 8,
           "maxmult": 10.0}


# zeta steps this small are rounding on a flat profile (the plateau of a correlation
# once one of its sds is 0 differs by ~1e-12 from point to point), not an increase
_FLAT = 1e-8


# ------------------------------------------------------------- back spline (R's splines)
def back_spline(x, zeta):
    """R's ``backSpline(interpSpline(zeta ~ x))``: the inverse of a monotone natural spline.

    Parameters
    ----------
    x, zeta : ndarray (k,), k >= 4
        Parameter values (increasing) and their zeta (strictly increasing).

    Returns
    -------
    callable
        zeta -> x; NaN outside [zeta_1, zeta_k] (as R's ``predict.polySpline``).

    Raises
    ------
    ValueError
        Fewer than 4 points, or zeta not strictly monotone.

    Notes
    -----
    On each interval [zeta_i, zeta_{i+1}] the inverse is the cubic with the
    values x_i, x_{i+1} and slopes 1 / zeta'(x_i), 1 / zeta'(x_{i+1}) (cubic
    Hermite); the two end intervals are quadratics that keep the inner slope,
    replaced by straight lines where the quadratic would bend the wrong way.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(zeta, dtype=float)
    nk = x.size
    if nk < 4:
        raise ValueError("an interpolating cubic spline needs at least 4 points")
    if np.any(np.diff(x) <= 0):
        raise ValueError("knot positions must be strictly increasing")
    slope = CubicSpline(x, y, bc_type="natural")(x, 1)
    adiff = np.diff(y)
    if not (np.all(adiff > 0) or np.all(adiff < 0)):
        raise ValueError("spline must be monotone")
    kdiff = np.diff(x)
    b2 = 1.0 / slope                          # slopes of the inverse at the knots
    # Hermite cubic on every interval: c3 a^2 + c4 a^3 = kdiff - a b2_i; 2 c3 a + 3 c4 a^2 = b2_{i+1} - b2_i
    r1 = kdiff - adiff * b2[:-1]
    r2 = b2[1:] - b2[:-1]
    c4 = (r2 * adiff - 2.0 * r1) / adiff ** 3
    c3 = (r1 - c4 * adiff ** 3) / adiff ** 2
    c1 = x[:-1].copy()
    c2 = b2[:-1].copy()
    # first interval: a quadratic through both knots with the second knot's slope
    a0 = adiff[0]
    c4[0] = 0.0
    c3[0] = (b2[1] * a0 - kdiff[0]) / a0 ** 2
    c2[0] = (kdiff[0] - c3[0] * a0 ** 2) / a0
    # last interval: a quadratic with the inner knot's slope
    c4[-1] = 0.0
    c3[-1] = (kdiff[-1] - adiff[-1] * c2[-1]) / adiff[-1] ** 2
    if c3[0] > 0:
        c3[0] = 0.0
        c2[0] = kdiff[0] / a0
    if c3[-1] < 0:
        c3[-1] = 0.0
        c2[-1] = kdiff[-1] / adiff[-1]
    knots = y
    if adiff[0] < 0:   # decreasing: R reverses the knots
        raise ValueError("spline must be increasing")

    def predict(z):
        z = np.atleast_1d(np.asarray(z, dtype=float))
        # R's cut(): right-closed intervals (k_i, k_{i+1}], the first knot in the first interval
        i = np.searchsorted(knots, z, side="left") - 1
        i = np.where(z == knots[0], 0, i)
        ok = (i >= 0) & (i < nk - 1) & np.isfinite(z)
        ii = np.clip(i, 0, nk - 2)
        d = z - knots[ii]
        out = c1[ii] + d * (c2[ii] + d * (c3[ii] + d * c4[ii]))
        return np.where(ok, out, np.nan)

    return predict


# --------------------------------------------------------------------- the profile
@dataclass
class LmmProfile:
    """A likelihood profile of every (chosen) parameter, as lme4's ``profile()``.

    Attributes
    ----------
    traces : dict of str -> DataFrame
        Per profiled parameter, one row per grid point sorted by its value:
        ``zeta`` then every parameter (lme4's ``.sig01``..., ``.sigma``, fixed
        effects) at the constrained optimum.
    estimates : Series
        The ML estimates (zeta = 0).
    lower, upper : Series
        Bounds of each parameter (0 for sds and sigma, -1/1 for correlations,
        infinite for fixed effects).
    deviance : float
        The ML deviance at the estimates.
    messages : list of str
        Problems met while profiling (non-monotone profile, steps that went wrong).
    """

    traces: dict
    estimates: pd.Series
    lower: pd.Series
    upper: pd.Series
    deviance: float
    cutoff: float
    messages: list = field(default_factory=list)
    seconds: float = 0.0

    def __repr__(self) -> str:
        names = list(self.traces)
        shown = ", ".join(names[:6]) + (f", ... ({len(names)} in all)" if len(names) > 6 else "")
        points = sum(len(t) for t in self.traces.values())
        issues = f", {len(self.messages)} message(s)" if self.messages else ""
        return (f"<LmmProfile of {shown}: {points} points, ML deviance {self.deviance:.4f}, "
                f"{self.seconds:.2f} s{issues}; .confint(level) for intervals>")

    def as_frame(self) -> pd.DataFrame:
        """lme4's long layout: ``.zeta``, every parameter, and ``.par`` (the profiled one)."""
        parts = []
        for name, tr in self.traces.items():
            df = tr.rename(columns={"zeta": ".zeta"}).copy()
            df[".par"] = name
            parts.append(df)
        return pd.concat(parts, ignore_index=True)

    def confint(self, level: float = 0.95, non_mono_tol: float = 0.01, warn: bool = True) -> pd.DataFrame:
        """Intervals where zeta = -/+ qnorm((1 + level)/2) (lme4's ``confint(profile)``).

        Parameters
        ----------
        level : float
            Confidence level in (0, 1).
        non_mono_tol : float
            A decrease of zeta along the profile larger than this is reported
            as a non-monotonic profile (smaller ones are rounding on a flat part).
        warn : bool
            Issue the warnings below.

        Returns
        -------
        DataFrame
            lme4's layout: one row per parameter, NaN for those not profiled.

        Warns
        -----
        SingularFitWarning
            An estimate on its bound: the interval is one-sided.
        ConvergenceWarning
            A non-monotonic profile (an inner optimization stopped at a local
            optimum): read by linear interpolation, or no interval at all. A
            profile that stops before both the level and the bound.
        PymlmWarning
            A profile flat in places, or with fewer than 4 points: read by
            linear interpolation.

        Notes
        -----
        One rule for every parameter (lme4's ``confint.thpr``): the end on each
        side is where the profile crosses the level; where the profile stops
        before the level (it reached the parameter's bound: 0 for an sd or
        sigma, -1 or 1 for a correlation), the end is that bound. A fixed
        effect has no bound, so an end its profile does not reach is NaN (NA in
        lme4). A profile that is not strictly increasing (flat against a bound,
        or with a dip where an inner optimization stopped at a local optimum)
        is read by linear interpolation of the parameter against zeta, with
        points of equal zeta averaged (R's ``approxfun``), as lme4 does; NaN
        only when zeta has fewer than two finite values or falls at every step.
        An end is never outside the bounds.
        """
        level = check_level(level)
        from . import interval_columns

        z = stats.norm.ppf(0.5 + level / 2.0)
        names = list(self.estimates.index)
        lo = np.full(len(names), np.nan)
        hi = np.full(len(names), np.nan)
        for name, tr in self.traces.items():
            i = names.index(name)
            ends = _read_interval(tr[name].to_numpy(), tr["zeta"].to_numpy(), z, name, non_mono_tol,
                                  warn=warn)
            if ends is None:
                continue
            # beyond the profile: the bound (infinite for a fixed effect: no end, NaN)
            bounds = np.array([self.lower[name], self.upper[name]])
            got = np.where(np.isnan(ends), np.where(np.isfinite(bounds), bounds, np.nan), ends)
            # a spline through a steep last step can overshoot a bound: an end lies within them
            got = np.clip(got, bounds[0], bounds[1])
            lo[i], hi[i] = got
            a, b = ends
            if warn:
                _warn_short(tr, name, ends, bounds, level)
            est = self.estimates[name]
            # on the boundary as lme4's isSingular sees it: an sd below 1e-4 sigma, |cor| = 1
            sigma = float(self.estimates[".sigma"]) if ".sigma" in self.estimates.index else 1.0
            tol = 1e-4 * sigma if self.lower[name] == 0 else 1e-6
            low, high = est - self.lower[name] <= tol, self.upper[name] - est <= tol
            if warn and name != ".sigma" and ((low and np.isnan(a)) or (high and np.isnan(b))):
                bound = self.lower[name] if low else self.upper[name]
                warn_user(
                    f"the estimate of {name} is on its bound {bound:g} (a singular fit), so its profile "
                    f"interval is one-sided: [{lo[i]:.4g}, {hi[i]:.4g}]. Consider a simpler random-effects "
                    "structure.", SingularFitWarning)
        cols = interval_columns(level)
        return pd.DataFrame({cols[0]: lo, cols[1]: hi}, index=pd.Index(names))


def _warn_short(tr, name, ends, bounds, level):
    """Warn about an end the profile does not reach because it stopped short of the bound.

    Reaching the bound below the level is the normal one-sided case; stopping
    before both (``maxpts`` points, or a level beyond ``alphamax``) leaves the
    end unknown: lme4 reports the bound (NA for a fixed effect), silently.
    """
    ok = np.isfinite(tr["zeta"].to_numpy())
    x, zeta = tr[name].to_numpy()[ok], tr["zeta"].to_numpy()[ok]
    for end, bound, k in ((ends[0], bounds[0], 0), (ends[1], bounds[1], -1)):
        if np.isnan(end) and x.size and x[k] != bound:
            what = "the bound, as lme4 reports it" if np.isfinite(bound) else "NaN"
            warn_user(f"the profile of {name} ends at {x[k]:.4g} (zeta {zeta[k]:.3g}) before it "
                      f"reaches the {100 * level:g}% level or the bound {bound:g}, so that end is "
                      f"{what}; profile again with a larger maxpts (or a smaller alphamax for a "
                      "level this high)", ConvergenceWarning)


def _read_interval(x, zeta, z, name, non_mono_tol, warn=True):
    """Where the profile (x increasing, zeta) crosses -z and z; NaN where it does not reach.

    None when the profile gives no interval (lme4's NA): fewer than two finite
    points, or zeta falling at every step.
    """
    ok = np.isfinite(zeta) & np.isfinite(x)
    x, zeta = x[ok], zeta[ok]
    if zeta.size < 2:
        if warn:
            warn_user(f"bad profile for {name}: fewer than two points with a finite deviance, "
                      "so no interval; refit the model and profile again", ConvergenceWarning)
        return None
    steps = np.diff(zeta)
    # strictly increasing beyond rounding: otherwise the spline of a flat stretch
    # (equal zeta to 1e-12) is inverted through noise
    if np.all(steps > _FLAT):
        try:
            return tuple(back_spline(x, zeta)(np.array([-z, z])))
        except ValueError:     # fewer than 4 points
            pass
    if np.all(steps < -non_mono_tol):
        if warn:
            warn_user(f"non-monotonic profile for {name}: zeta decreases along the whole "
                      "profile, so no interval", ConvergenceWarning)
        return None
    if warn:
        k = int(np.argmin(steps))
        if steps[k] < -non_mono_tol:
            warn_user(f"non-monotonic profile for {name}: zeta falls by {-steps[k]:.3g} from "
                      f"{x[k]:.4g} to {x[k + 1]:.4g} (the optimization at a profile point probably "
                      "stopped at a local optimum); the interval is read by linear interpolation, "
                      "as lme4 does", ConvergenceWarning)
        elif np.any(steps <= _FLAT):
            flat = np.flatnonzero(steps <= _FLAT)
            warn_user(f"the profile of {name} is flat from {x[flat[0]]:.4g} to "
                      f"{x[flat[-1] + 1]:.4g} (the data do not identify it there), so it cannot be "
                      "inverted by a spline; the interval is read by linear interpolation, as lme4 "
                      "does", PymlmWarning)
        else:
            warn_user(f"the profile of {name} has {zeta.size} points, too few for a spline; the "
                      "interval is read by linear interpolation, as lme4 does", PymlmWarning)
    # R's approxfun(zeta, x): sorted by zeta, x averaged over equal zeta (to rounding:
    # lme4's plateau points are equal, ours differ by ~1e-12), NA outside the range
    order = np.argsort(zeta, kind="stable")
    zs, xs = zeta[order], x[order]
    group = np.concatenate([[0], np.cumsum(np.diff(zs) > _FLAT)])
    n = np.bincount(group)
    zu, xu = np.bincount(group, weights=zs) / n, np.bincount(group, weights=xs) / n
    return tuple(np.interp([-z, z], zu, xu, left=np.nan, right=np.nan))


@dataclass(frozen=True, eq=False)
class _Setup:
    """What each parameter's profile needs (sent once to each worker process)."""

    dev: object
    tmap: ThetaMap
    lower_theta: np.ndarray
    opt: np.ndarray          # ML estimates: sdcor, sigma, beta
    theta_hat: np.ndarray
    stderr: np.ndarray
    base: float
    lower: np.ndarray        # bounds of every parameter
    upper: np.ndarray
    scale: np.ndarray        # typical size of each variance parameter, for the optimizer
    n_sig: int
    p: int
    cutoff: float
    delta: float
    maxpts: int
    maxmult: float
    devtol: float

    @property
    def nvp(self) -> int:
        """Variance parameters (sds, correlations, sigma): the first entries of ``opt``."""
        return self.n_sig + 1

    def zeta_var(self, w, value, start):
        return _zeta_var(self, w, value, start)

    def zeta_fixed(self, j, value, start):
        return _zeta_fixed(self, j, value, start)

    def start_var(self, w):
        return np.delete(self.opt[:self.nvp], w)

    def start_fixed(self):
        return self.theta_hat


@dataclass(frozen=True, eq=False)
class _GlmmSetup:
    """A GLMM's profile: the Laplace / AGQ objective over (sds and correlations, beta).

    lme4's ``profile.merMod`` for a glmer fit: a random-effect parameter is
    fixed on the sd / correlation scale (theta = vech(diag(sd) chol(R)) per
    term, no sigma) and the objective minimized over the other variance
    parameters and every fixed effect; a fixed effect beta_j is fixed and the
    objective minimized over theta and the other fixed effects. Each inner
    search is L-BFGS-B with the objective's gradient in (theta, beta) (the
    analytic Laplace gradient where the family has it) chained through
    d theta / d sdcor, and PIRLS warm-started at the previous point's modes.
    """

    glmm: object             # GlmmInference
    obj: object              # GlmmObjective over (theta, beta), warm-started
    tmap: ThetaMap
    opt: np.ndarray          # sdcor, beta at the optimum
    theta_hat: np.ndarray
    stderr: np.ndarray
    base: float
    lower: np.ndarray
    upper: np.ndarray
    scale: np.ndarray        # typical size of every parameter, for the optimizer
    n_sig: int
    p: int
    cutoff: float
    delta: float
    maxpts: int
    maxmult: float
    devtol: float

    @property
    def nvp(self) -> int:
        return self.n_sig

    def start_var(self, w):
        return np.delete(self.opt, w)

    def start_fixed(self):
        return np.concatenate([self.theta_hat, self.opt[self.n_sig:]])

    def _value_grad(self, theta, beta, J=None):
        f, g = self.obj.value_and_grad(np.concatenate([theta, beta]))
        if not np.isfinite(f) or g is None:
            return np.inf, None
        if J is not None:
            g = np.concatenate([g[:self.n_sig] @ J[:, :-1], g[self.n_sig:]])
        return float(f), g

    def zeta_var(self, w, value, start):
        nt = self.n_sig
        free = np.flatnonzero(np.arange(self.opt.size) != w)
        sc = self.scale[free]
        full = self.opt.copy()
        full[w] = value
        lo, hi = self.lower[free] / sc, self.upper[free] / sc

        def fg(x):
            s = full.copy()
            s[free] = x * sc
            theta, J = self.tmap.theta_from_sdcor(s[:nt], 1.0, jacobian=True)
            f, g = self._value_grad(theta, s[nt:], J)
            if g is None:
                return 1e300, np.zeros_like(x)
            return f, g[free] * sc

        x0 = np.asarray(start, dtype=float).copy()
        # an sd at 0 is a stationary point of the even objective: start it off the bound
        sd_free = (free < nt) & self.tmap.is_diag[np.minimum(free, max(nt - 1, 0))]
        x0 = np.where(sd_free & (x0 < 0.05), 0.05, x0)
        x0 = np.clip(x0 / sc, lo, hi)
        row = np.full(1 + self.opt.size, np.nan)
        x = minimize_box(fg, x0, lo, hi, ftol=1e-13, gtol=1e-8, maxiter=1000) if free.size else x0
        s = full.copy()
        s[free] = x * sc
        val = self.obj(np.concatenate([self.tmap.theta_from_sdcor(s[:nt], 1.0), s[nt:]]))
        if not np.isfinite(val):
            return row, start, None
        row[1:] = s
        return row, s[free], val - self.base

    def zeta_fixed(self, j, value, start):
        nt = self.n_sig
        keep = np.flatnonzero(np.arange(self.p) != j)
        k = nt + keep.size
        sc = np.concatenate([np.ones(nt), self.stderr[keep]])
        lo = np.concatenate([self.tmap.lower, np.full(keep.size, -np.inf)]) / sc
        hi = np.full(k, np.inf)

        def split(x):
            y = x * sc
            return y[:nt], np.insert(y[nt:], j, value)

        def fg(x):
            theta, beta = split(x)
            f, g = self._value_grad(theta, beta)
            if g is None:
                return 1e300, np.zeros_like(x)
            return f, np.concatenate([g[:nt], g[nt:][keep]]) * sc

        st = np.asarray(start, dtype=float)
        x0 = np.concatenate([lift_start(st[:nt], self.tmap.lower), np.delete(st[nt:], j)]) / sc
        row = np.full(1 + self.opt.size, np.nan)
        x = minimize_box(fg, x0, lo, hi, ftol=1e-13, gtol=1e-8, maxiter=1000)
        theta, beta = split(x)
        val = self.obj(np.concatenate([theta, beta]))
        if not np.isfinite(val):
            return row, start, None
        row[1:1 + nt] = self.tmap.sdcor(theta, 1.0, undefined=0.0)
        row[1 + nt:] = beta
        return row, np.concatenate([theta, beta]), val - self.base


def _glmm_setup(glmm, opts) -> _GlmmSetup:
    if glmm.has_sigma:
        raise OptionError(f"the profile of a {glmm.problem.family.name} GLMM (a family with a dispersion) is not "
                          "available; use method='Wald' or 'boot'")
    tmap = glmm.tmap
    obj = glmm.objective()
    x_hat = glmm.x_hat
    nt = tmap.n_theta
    base = float(obj(x_hat))
    # a search from the estimates that finds a lower objective: start there (the fit had stopped short)
    x2, _, _ = glmm.refit(glmm.problem, x_hat)
    f2 = float(obj(x2))
    if f2 < base:
        x_hat, base = x2, f2
        obj(x_hat)
    theta = x_hat[:nt]
    sdcor = tmap.sdcor(theta, 1.0, undefined=0.0)
    sdcor[tmap.is_diag & (sdcor < 1e-6)] = 0.0
    at_one = ~tmap.is_diag & (np.abs(np.abs(sdcor) - 1.0) < 1e-10)
    sdcor[at_one] = np.sign(sdcor[at_one])
    beta = x_hat[nt:]
    p = beta.size
    opt = np.concatenate([sdcor, beta])
    stderr = np.sqrt(np.diag(glmm.fixef_vcov())) if p else np.zeros(0)
    lower = np.concatenate([np.where(tmap.is_diag, 0.0, -1.0), np.full(p, -np.inf)])
    upper = np.concatenate([np.where(tmap.is_diag, np.inf, 1.0), np.full(p, np.inf)])
    scale = np.concatenate([np.where(tmap.is_diag, np.maximum(np.abs(sdcor), 1e-2), 1.0),
                            np.where(stderr > 0, stderr, 1.0)])
    cutoff = float(np.sqrt(stats.chi2.ppf(1.0 - opts["alphamax"], opt.size)))
    delta = opts["delta"] if opts["delta"] is not None else cutoff * opts["delta_cutoff"]
    return _GlmmSetup(glmm, obj, tmap, opt, np.asarray(theta, dtype=float), stderr, base, lower, upper, scale,
                      nt, p, cutoff, float(delta), int(opts["maxpts"]), float(opts["maxmult"]), 1e-6)


def _varpar_deviance(setup: _Setup, s: np.ndarray, grad: bool):
    """d(s, sigma) and its gradient in (s, sigma); s holds the sds/correlations then sigma."""
    dev = setup.dev
    sigma = s[-1]
    if grad:
        theta, J = setup.tmap.theta_from_sdcor(s[:-1], sigma, jacobian=True)
    else:
        theta = setup.tmap.theta_from_sdcor(s[:-1], sigma)
    pt = dev.at(theta, grad=grad)
    s2 = sigma * sigma
    val = pt.ldL2 + pt.pwrss / s2 + dev.n * (LOG_2PI + np.log(s2)) - dev.sum_log_w
    if not grad:
        return val, None, pt
    g_theta = pt.combination(1.0, 0.0, pt.pwrss / s2)
    g = g_theta @ J
    g[-1] += -2.0 * pt.pwrss / (s2 * sigma) + 2.0 * dev.n / sigma
    return val, g, pt


def _zeta_var(setup: _Setup, w: int, value: float, start: np.ndarray):
    """zeta at variance parameter w = value, the others minimized from ``start``."""
    nvp = setup.n_sig + 1
    free = np.flatnonzero(np.arange(nvp) != w)
    sc = setup.scale[free]
    full = setup.opt[:nvp].copy()
    full[w] = value
    lo = setup.lower[free] / sc
    hi = setup.upper[free] / sc
    # sigma must stay positive for the deviance to be finite
    is_sigma = free == nvp - 1
    lo = np.where(is_sigma, 1e-8 * setup.opt[nvp - 1] / sc, lo)

    def fg(x):
        s = full.copy()
        s[free] = x * sc
        try:
            v, g, _ = _varpar_deviance(setup, s, True)
        except np.linalg.LinAlgError:
            return 1e300, np.zeros_like(x)
        return v, g[free] * sc

    x0 = np.clip(np.asarray(start, dtype=float) / sc, lo, hi)
    # an sd at 0 is a stationary point of the even criterion: start it off the
    # bound so that the optimizer can leave it (see fit._optimize.lift_start)
    sd_free = setup.tmap.is_diag[np.minimum(free, setup.n_sig - 1)] & (free < setup.n_sig)
    x0 = np.where(sd_free & (x0 * sc < 0.1 * setup.opt[nvp - 1]), 0.1 * setup.opt[nvp - 1] / sc, x0)
    row = np.full(1 + nvp + setup.p, np.nan)
    try:
        if free.size:
            x = minimize_box(fg, x0, lo, hi, ftol=1e-13, gtol=1e-8, maxiter=1000)
        else:
            x = x0
        s = full.copy()
        s[free] = x * sc
        val, _, pt = _varpar_deviance(setup, s, False)
    except np.linalg.LinAlgError:
        return row, start, None
    row[1:1 + nvp] = s
    row[1 + nvp:] = pt.beta
    return row, s[free], val - setup.base


def _zeta_fixed(setup: _Setup, j: int, value: float, start_theta: np.ndarray):
    """zeta at fixed effect j = value: x_j value in the offset, theta re-optimized (ML)."""
    dev_j = setup.dev.with_cp(offset_cross_products(setup.dev.cp, j, value))
    nvp = setup.n_sig + 1
    row = np.full(1 + nvp + setup.p, np.nan)
    try:
        theta, pt, _ = refit(dev_j, start_theta, tol=1e-13)
    except np.linalg.LinAlgError:
        return row, start_theta, None
    fv = pt.deviance
    sigma = pt.sigma
    row[1:1 + setup.n_sig] = setup.tmap.sdcor(theta, sigma, undefined=0.0)
    row[nvp] = sigma
    row[1 + nvp:] = np.insert(pt.beta, j, value)
    return row, theta, fv - setup.base


def _nextpar(prev, last, col, delta, lowcut, upcut, maxmult, msgs, name, minstep=1e-6):
    """lme4's ``nextpar``: a step of ``delta`` in zeta along the secant, capped and clamped.

    One departure: where the last two points have the same zeta (within
    rounding, ``_FLAT``, over a step that is not itself negligible) and the
    parameter is bounded on that side, the step goes straight to the bound. A
    flat profile is a parameter the data no longer identify (a correlation
    once one of its sds is 0 at the optimum): it stays flat up to the bound,
    where lme4 crawls by ``minstep`` until ``maxpts`` runs out.
    """
    num = last[col] - prev[col]
    denom = last[0] - prev[0]
    bound = upcut if num > 0 else lowcut
    # flat: zeta unchanged (to rounding) over a step that is not itself negligible
    flat = (np.isfinite(denom) and abs(denom) <= _FLAT
            and abs(num) >= 1e-6 * max(1.0, abs(last[col])))
    if flat and np.isfinite(bound):
        msgs.append(f"{name}: the profile is flat from {prev[col]:.6g} to {last[col]:.6g}; "
                    f"stepped to the bound {bound:g}")
        return bound
    if not np.isfinite(denom) or denom == 0:
        msgs.append(f"{name}: last two points have identical or NaN zeta; a minimal step was used")
        step = minstep
    else:
        step = delta * num / denom
        if step < 0:
            msgs.append(f"{name}: unexpected decrease in the profile; a minimal step was used")
            step = minstep
        elif abs(step) > maxmult * abs(num):
            step = maxmult * abs(num)
    return min(upcut, max(lowcut, last[col] + np.sign(num) * step))


def _profile_one(setup: _Setup, rng, w: int):
    """The trace of parameter w (index into the parameter vector) and its messages."""
    nvp = setup.nvp
    col = 1 + w
    opt_row = np.concatenate([[0.0], setup.opt])
    msgs: list[str] = []
    pw = setup.opt[w]
    lowcut, upcut = setup.lower[w], setup.upper[w]
    if w < nvp:
        def zeta_fn(value, start):
            row, state, dd = setup.zeta_var(w, value, start)
            return _finish(row, state, dd, value, pw, setup, msgs, w)
        start0 = setup.start_var(w)
        shift = 0.001 if pw == 0 else pw * 1.01
    else:
        j = w - nvp

        def zeta_fn(value, start):
            row, state, dd = setup.zeta_fixed(j, value, start)
            return _finish(row, state, dd, value, pw, setup, msgs, w)
        start0 = setup.start_fixed()
        shift = pw + setup.delta * setup.stderr[j]
    # an estimate on a bound (an sd at 0, a correlation at -1 or 1) is profiled
    # inwards only, from a first step of 0.001 (lme4's step for an sd at 0); a
    # first step beyond a bound is clamped to it (lme4 evaluates it outside)
    at_low, at_high = not pw > lowcut, not pw < upcut
    if at_low:
        shift = pw + 0.001
    elif at_high:
        shift = pw - 0.001
    first, s_first = zeta_fn(min(upcut, max(lowcut, shift)), start0)
    sides = [([opt_row, first], [start0, s_first])]
    if not (at_low or at_high):
        sides.append(([first, opt_row], [s_first, start0]))
    for rows, states in sides:
        while (len(rows) < setup.maxpts and lowcut < rows[-1][col] < upcut
               and not abs(rows[-1][0]) > setup.cutoff):
            x = _nextpar(rows[-2], rows[-1], col, setup.delta, lowcut, upcut, setup.maxmult, msgs,
                         f"parameter {w}")
            row, st = zeta_fn(x, states[-1])
            rows.append(row)
            states.append(st)
    table = np.unique(np.vstack([r for rows, _ in sides for r in rows]), axis=0)
    table = table[np.argsort(table[:, col], kind="stable")]
    return table, msgs


def _finish(row, state, dd, value, pw, setup, msgs, w):
    if dd is None or not np.isfinite(dd):
        msgs.append(f"parameter {w}: NaN deviance in profiling at {value:.6g}")
        row[0] = np.nan
        return row, state
    if dd < -setup.devtol:
        msgs.append(f"profiling found a deviance {-dd:.3g} below the ML optimum at {value:.6g}: "
                    "the fit had not converged")
    row[0] = np.sign(value - pw) * np.sqrt(max(dd, 0.0))
    return row, state


def _which(problem, which) -> list[int]:
    return select_params(problem, which, "which")


def select_params(problem, which, option: str = "which") -> list[int]:
    """Positions in ``problem.param_names`` of None (all), ``"theta_"``, ``"beta_"`` or a list of names.

    Raises
    ------
    OptionError
        An empty list or a name the model does not have.
    """
    names = problem.param_names
    nvp = problem.n_var
    if which is None:
        return list(range(len(names)))
    if isinstance(which, str):
        if which == "theta_":
            return list(range(nvp))
        if which == "beta_":
            return list(range(nvp, len(names)))
        which = [which]
    try:
        which = list(which)
    except TypeError:
        raise OptionError(f"{option} must be None, 'theta_', 'beta_' or a list of parameter names; got {which!r}")
    bad = [w for w in which if w not in names]
    if not which:
        raise OptionError(f"{option} is empty; name at least one of the parameters {names}")
    if bad:
        raise OptionError(f"{option} names parameters the model does not have: {bad}; its parameters are {names}")
    return sorted(names.index(w) for w in which)


def _check_options(options: dict) -> dict:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise OptionError(f"the profile method does not take the option(s) {unknown}; "
                          f"it takes {sorted(OPTIONS)}")
    out = dict(OPTIONS)
    out.update(options)
    a = out["alphamax"]
    if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a < 1:
        raise OptionError(f"alphamax must be a number in (0, 1), such as 0.01; got {a!r}")
    out["maxpts"] = check_positive_int("maxpts", out["maxpts"], minimum=3)
    for key in ("delta_cutoff", "maxmult") + (("delta",) if out["delta"] is not None else ()):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise OptionError(f"{key} must be a positive number; got {v!r}")
    return out


def _setup(problem, opts, kind="auto") -> _Setup:
    dev = evaluator_for(problem.cp, False, problem.tmap, kind)
    lower_theta = np.asarray(problem.lower, dtype=float)
    # as lme4's profile: the ML fit (refitted from the REML estimates when needed)
    if problem.reml:
        theta, _, _ = refit(dev, problem.fit.theta, tol=1e-13)
    else:
        theta = problem.fit.theta
        theta2, _, _ = refit(dev, theta, tol=1e-13)
        if dev(theta2) < dev(theta):
            theta = theta2
    pt = dev.at(theta)
    sigma = pt.sigma
    base = pt.deviance
    tmap = problem.tmap
    sdcor = tmap.sdcor(theta, sigma, undefined=0.0)
    # an estimate on its bound stays exactly there, so that its profile runs inwards
    # only: an sd the optimizer left at (numerically) 0 (theta below 1e-6, well inside
    # lme4's isSingular tolerance of 1e-4), a correlation from a zero diagonal of theta
    # (+-1 up to rounding)
    sdcor[tmap.is_diag & (sdcor < 1e-6 * sigma)] = 0.0
    at_one = ~tmap.is_diag & (np.abs(np.abs(sdcor) - 1.0) < 1e-10)
    sdcor[at_one] = np.sign(sdcor[at_one])
    beta = pt.beta
    opt = np.concatenate([sdcor, [sigma], beta])
    stderr = sigma * np.sqrt(np.diag(pt.vcov_unscaled)) if dev.p else np.zeros(0)
    n_sig = tmap.n_theta
    lower = np.concatenate([np.where(tmap.is_diag, 0.0, -1.0), [0.0], np.full(dev.p, -np.inf)])
    upper = np.concatenate([np.where(tmap.is_diag, np.inf, 1.0), [np.inf], np.full(dev.p, np.inf)])
    scale = np.concatenate([np.where(tmap.is_diag, np.maximum(np.abs(sdcor), 1e-2 * sigma), 1.0), [sigma]])
    nptot = opt.size
    cutoff = float(np.sqrt(stats.chi2.ppf(1.0 - opts["alphamax"], nptot)))
    delta = opts["delta"] if opts["delta"] is not None else cutoff * opts["delta_cutoff"]
    setup = _Setup(dev, tmap, lower_theta, opt, np.asarray(theta, dtype=float), stderr, float(base), lower,
                   upper, scale, n_sig, dev.p, cutoff, float(delta), int(opts["maxpts"]),
                   float(opts["maxmult"]),
                   1e-9)
    check, _, _ = _varpar_deviance(setup, opt[:n_sig + 1], False)
    if not np.isclose(check, base, rtol=1e-8, atol=1e-8):
        warn_user(f"profile: the deviance at the sds and sigma ({check}) differs from the profiled one "
                      f"({base})", PymlmInternalWarning)
    return setup


def _run(setup, rng, w):
    with single_threaded():
        return _profile_one(setup, rng, w)


def profile(problem, n_jobs: int = 1, progress: bool = False, _kind: str = "auto", **options) -> LmmProfile:
    """Profile the ML deviance of each parameter (lme4's ``profile()``).

    Parameters
    ----------
    problem : LmmProblem
    n_jobs : int
        Processes; parameters are profiled in parallel.
    progress : bool
        A progress bar over the parameters.
    **options
        ``which`` (None: all; ``"theta_"``: the random-effect parameters and
        sigma; ``"beta_"``: the fixed effects; or a list of names),
        ``alphamax`` (0.01: profile until |zeta| > sqrt(qchisq(1 - alphamax,
        n_par))), ``maxpts`` (100 points per direction), ``delta`` (zeta step;
        default ``delta_cutoff`` times the cutoff), ``delta_cutoff`` (1/8),
        ``maxmult`` (10: at most this multiple of the previous step).

    Returns
    -------
    LmmProfile

    Raises
    ------
    OptionError
        An unknown option or a bad value.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> pr = m.profile(which=["Days"])
    >>> pr.confint(0.95).loc["Days"].round(2).tolist()
    [7.36, 13.58]
    """
    n_jobs = check_n_jobs(n_jobs)
    opts = _check_options(options)
    # a summary and confint of one fit share the profile: it is kept in the problem's
    # memo (per fit and options), and every caller gets its own copy
    key = ("profile", id(problem.fit), id(getattr(problem, "cp", problem.fit)), tuple(sorted((k, repr(v)) for k, v in opts.items())), _kind)
    if key in problem.memo:
        return copy.deepcopy(problem.memo[key])
    t0 = time.perf_counter()
    chosen = _which(problem, opts["which"])
    with single_threaded():
        setup = _glmm_setup(problem, opts) if problem.is_glmm else _setup(problem, opts, _kind)
    results = run_replicates(_run_chosen, (setup, chosen), len(chosen), seed=0, n_jobs=n_jobs,
                             progress=progress, desc="profile")
    names = problem.param_names
    cols = ["zeta"] + list(names)
    traces, messages = {}, []
    for w, (table, msgs) in zip(chosen, results):
        traces[names[w]] = pd.DataFrame(table, columns=cols).reset_index(drop=True)
        messages.extend(m.replace(f"parameter {w}:", f"{names[w]}:") if isinstance(m, str) else m for m in msgs)
    bad = [m for m in messages if "below the ML optimum" in m]
    if bad:
        warn_user("profile: " + bad[0] + "; refit the model (e.g. with another optimizer) and profile again",
                      ConvergenceWarning)
    out = LmmProfile(traces, pd.Series(setup.opt, index=names), pd.Series(setup.lower, index=names),
                     pd.Series(setup.upper, index=names), setup.base, setup.cutoff, messages,
                     time.perf_counter() - t0)
    problem.memo[key] = out
    return copy.deepcopy(out)


def zeta(problem, name: str, values, **options) -> np.ndarray:
    """The profile's zeta at given values of one parameter, each re-optimized from the estimates.

    Parameters
    ----------
    problem : LmmProblem
    name : str
        A parameter name (``.sig01``..., ``.sigma`` or a fixed effect).
    values : array_like
        Values of that parameter.

    Returns
    -------
    ndarray
        sign(value - estimate) sqrt(deviance increase), as in the traces.

    Raises
    ------
    OptionError
        An unknown parameter name.
    """
    names = problem.param_names
    if name not in names:
        raise OptionError(f"name must be one of the parameters {names}; got {name!r}")
    opts = _check_options(options)
    with single_threaded():
        setup = _glmm_setup(problem, opts) if problem.is_glmm else _setup(problem, opts)
        w = names.index(name)
        nvp = setup.nvp
        out = []
        for v in np.atleast_1d(np.asarray(values, dtype=float)):
            if w < nvp:
                _, _, dd = setup.zeta_var(w, float(v), setup.start_var(w))
            else:
                _, _, dd = setup.zeta_fixed(w - nvp, float(v), setup.start_fixed())
            out.append(np.nan if dd is None else np.sign(v - setup.opt[w]) * np.sqrt(max(dd, 0.0)))
    return np.asarray(out)


def _run_chosen(payload, rng, i):
    setup, chosen = payload
    return _run(setup, rng, chosen[i])


def interval(problem, level: float = 0.95, seed=None, n_jobs: int = 1, progress: bool = True, **options):
    """Profile-likelihood intervals of every parameter (lme4's ``confint(method = "profile")``).

    Parameters
    ----------
    problem : LmmProblem
    level : float
    seed : ignored
        The profile is deterministic.
    n_jobs : int
        Processes (one parameter per task).
    progress : bool
    **options
        See :func:`profile`.

    Returns
    -------
    DataFrame
        lme4's layout; ``attrs["profile"]`` holds the :class:`LmmProfile`.
    """
    pr = profile(problem, n_jobs=n_jobs, progress=progress, **options)
    out = pr.confint(level)
    out.attrs["settings"] = {k: v for k, v in _check_options(options).items()}
    out.attrs["profile"] = pr
    if pr.messages:
        out.attrs["messages"] = list(pr.messages)
    return out
