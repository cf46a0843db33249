"""Plots of likelihood profiles and bootstrap replicates of a linear mixed model.

- :func:`zeta`: lme4's ``xyplot(profile(m))`` (MixedModelsMakie's
  ``zetaplot``): the signed root deviance zeta against each parameter, with
  the parameter values where zeta crosses -/+ sqrt(qchisq(conf, 1));
- :func:`profile_density`: lme4's ``densityplot(profile(m))``
  (``profiledensity``): the density implied by the profile,
  ``phi(zeta(x)) zeta'(x)``;
- :func:`boot_density`: densities of parametric bootstrap replicates, with
  the replicates of a singular fit (an sd at 0) drawn as a spike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.interpolate import CubicSpline

from ..errors import OptionError, PymlmWarning, warn
from ._checks import check_terms
from ._style import INK, POINT, finish, new_axes, new_panels

__all__ = [
    "boot_density",
    "boot_density_frame",
    "kde",
    "profile_density",
    "profile_density_frame",
    "zeta",
    "zeta_frame",
]

#: lme4's default confidence levels of the zeta plot
CONF = (0.5, 0.8, 0.9, 0.95, 0.99)


def _as_profile(obj, which, what):
    """An LmmProfile from a profile, a profile confint table, or a fitted model."""
    if hasattr(obj, "traces") and hasattr(obj, "estimates"):
        return obj
    if isinstance(obj, pd.DataFrame) and "profile" in obj.attrs:
        return obj.attrs["profile"]
    if hasattr(obj, "profile") and hasattr(obj, "get_ranef"):
        opts = {} if which is None else {"which": which}
        return obj.profile(**opts)
    raise OptionError(
        f"{what} needs a likelihood profile: m.profile(), m.confint('profile') or a model "
        f"fitted by pymlm.lmer(); got {type(obj).__name__}"
    )


def _trace(pr, name):
    tr = pr.traces[name]
    x = tr[name].to_numpy(dtype=float)
    z = tr["zeta"].to_numpy(dtype=float)
    ok = np.isfinite(x) & np.isfinite(z)
    x, z = x[ok], z[ok]
    x, idx = np.unique(x, return_index=True)
    return x, z[idx]


def _forward(x, z):
    """zeta as a function of the parameter: R's ``interpSpline`` (natural cubic), or None."""
    if x.size < 4:
        return None
    return CubicSpline(x, z, bc_type="natural")


def _selected(pr, which):
    traced = list(pr.traces)
    if which is None or isinstance(which, str) and which in ("theta_", "beta_"):
        if which is None:
            return traced
        nvp = [n for n in traced if n.startswith(".sig")]
        return nvp if which == "theta_" else [n for n in traced if n not in nvp]
    return check_terms(which, traced, "profiled parameter")


# ----------------------------------------------------------------------- zeta
def zeta_frame(
    profile, which=None, conf=CONF, absolute: bool = False, n: int = 101
) -> pd.DataFrame:
    """The zeta curves and interval points that :func:`zeta` draws.

    Parameters
    ----------
    profile : LmmProfile, DataFrame or LmerResult
        ``m.profile()``, the table of ``m.confint("profile")`` (its
        ``attrs["profile"]``), or a model (profiled here, with ``which``).
    which : list of str or str, optional
        Parameters to draw (lme4's names: ``.sig01``..., ``.sigma``, fixed
        effects), or ``"theta_"`` / ``"beta_"`` for all variance parameters /
        all fixed effects; default: every profiled one.
    conf : sequence of float
        Confidence levels marked on each curve (lme4's 0.5, 0.8, 0.9, 0.95, 0.99).
    absolute : bool
        Draw ``abs(zeta)`` (lme4's ``absVal = TRUE``).
    n : int
        Points of each curve.

    Returns
    -------
    DataFrame
        ``parameter``, ``kind`` (``"curve"``: the interpolating spline of
        zeta through the profile's points; ``"interval"``: the end points of
        the ``conf`` intervals, where zeta = -/+ sqrt(qchisq(conf, 1))),
        ``value``, ``zeta``, ``conf`` (NaN on curves). An interval end
        beyond the profile (a parameter on its bound) is left out.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> f = ml.plot.zeta_frame(m.profile(which=["Days"]))
    >>> f[(f.kind == "interval") & (f.conf == 0.95)]["value"].round(2).tolist()
    [7.36, 13.58]
    """
    pr = _as_profile(profile, which, "zeta")
    names = _selected(pr, which)
    conf = np.atleast_1d(np.asarray(conf, dtype=float))
    if np.any(~np.isfinite(conf)) or np.any((conf <= 0) | (conf >= 1)):
        raise OptionError(f"conf must hold levels strictly between 0 and 1; got {list(conf)}")
    conf = np.sort(conf)
    parts = []
    for name in names:
        x, z = _trace(pr, name)
        spl = _forward(x, z)
        grid = np.linspace(x[0], x[-1], n) if x.size else x
        zz = spl(grid) if spl is not None else np.interp(grid, x, z)
        parts.append(
            pd.DataFrame(
                {
                    "parameter": name,
                    "kind": "curve",
                    "value": grid,
                    "zeta": np.abs(zz) if absolute else zz,
                    "conf": np.nan,
                }
            )
        )
    rows = []
    for c in conf:
        ci = pr.confint(float(c), warn=False)
        zc = float(np.sqrt(stats.chi2.ppf(c, 1)))
        for name in names:
            for value, sign, bound in (
                (ci.iloc[:, 0][name], -1.0, pr.lower[name]),
                (ci.iloc[:, 1][name], 1.0, pr.upper[name]),
            ):
                # confint gives the bound where the profile does not reach the level
                if np.isfinite(value) and value != bound:
                    rows.append(
                        (name, "interval", float(value), zc if absolute else sign * zc, float(c))
                    )
    parts.append(pd.DataFrame(rows, columns=["parameter", "kind", "value", "zeta", "conf"]))
    out = pd.concat(parts, ignore_index=True)
    out["parameter"] = pd.Categorical(out["parameter"], categories=names)
    return out.sort_values(["parameter", "kind"], kind="stable").reset_index(drop=True)


def zeta(profile, which=None, conf=CONF, absolute: bool = False, ncols: int | None = None, ax=None):
    """Profile zeta plots, one panel per parameter (lme4's ``xyplot(profile(m))``).

    Each panel shows zeta(phi) = sign(phi - phi_hat) sqrt(deviance increase)
    and, at each confidence level, vertical segments from the curve to 0 at
    the interval ends; a straight line means a quadratic log-likelihood
    (Wald intervals would be accurate).

    Parameters
    ----------
    profile, which, conf, absolute
        See :func:`zeta_frame`.
    ncols : int, optional
        Panels per row (default 3).
    ax : Axes or sequence of Axes, optional

    Returns
    -------
    matplotlib Axes (one parameter) or Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> ax = m.plot.zeta(which=["Days"])
    >>> ax.get_title()
    'Days'
    """
    from matplotlib.collections import LineCollection

    frame = zeta_frame(profile, which, conf, absolute)
    names = list(frame["parameter"].cat.categories)
    if len(names) == 1 and not isinstance(ax, (list, tuple, np.ndarray)):
        axes, fig = [new_axes(ax, figsize=(4.0, 3.5))], None
    else:
        fig, axes = new_panels(len(names), ncols=ncols, ax=ax, sharey=True)
    per_row = max(1, min(len(names), 3 if ncols is None else int(ncols)))
    for k, (a, name) in enumerate(zip(axes, names)):
        sub = frame[frame["parameter"] == name]
        cur = sub[sub["kind"] == "curve"]
        pts = sub[sub["kind"] == "interval"]
        a.plot(cur["value"], cur["zeta"], color=INK, lw=1.2)
        seg = np.stack(
            [
                np.column_stack([pts["value"], pts["zeta"]]),
                np.column_stack([pts["value"], np.zeros(len(pts))]),
            ],
            axis=1,
        ).reshape(-1, 2, 2)
        a.add_collection(LineCollection(seg, colors=POINT, linewidths=0.9))
        a.axhline(0.0, color="0.6", lw=0.8)
        a.set_title(name)
        if k % per_row == 0:
            a.set_ylabel("|zeta|" if absolute else "zeta")
    if fig is None:
        return axes[0]
    return finish(fig)


# ------------------------------------------------------------ profile density
def profile_density_frame(
    profile, which=None, npts: int = 201, upper: float = 0.999
) -> pd.DataFrame:
    """The densities that :func:`profile_density` draws (lme4's ``densityplot(profile)``).

    For each parameter, with zeta(x) the interpolating spline of the
    profile, the density ``dnorm(zeta(x)) zeta'(x)`` on ``npts`` points from
    the value where zeta = -qnorm(upper) (the lower bound, 0, when the
    profile stops first) to the value where zeta = qnorm(upper) (or the
    largest level the profile reaches, as lme4).

    Returns
    -------
    DataFrame
        ``parameter``, ``value``, ``density``.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> f = ml.plot.profile_density_frame(m.profile(which=["Days"]))
    >>> round(float(f["value"][f["density"].idxmax()]), 1)
    10.5
    """
    from ..inference.profile import back_spline

    pr = _as_profile(profile, which, "profile_density")
    names = _selected(pr, which)
    if not 0.5 < upper < 1:
        raise OptionError(f"upper must be in (0.5, 1), such as 0.999; got {upper!r}")
    npts = int(npts)
    parts = []
    bad = []
    for name in names:
        x, z = _trace(pr, name)
        spl = _forward(x, z)
        try:
            bsp = back_spline(x, z)
        except ValueError:
            bad.append(name)
            continue
        q = stats.norm.ppf(upper)
        lo, hi = bsp(np.array([-q, q]))
        if np.isnan(lo):
            lo = 0.0
        if np.isnan(hi):
            for upp in 1 - 10.0 ** np.linspace(-4, -1, 21):
                hi = float(bsp(stats.norm.ppf(upp))[0])
                if not np.isnan(hi):
                    break
        if np.isnan(hi):
            bad.append(name)
            continue
        grid = np.linspace(lo, hi, npts)
        dens = stats.norm.pdf(spl(grid)) * spl(grid, 1)
        parts.append(pd.DataFrame({"parameter": name, "value": grid, "density": dens}))
    if bad:
        warn(
            f"unreliable profiles (not monotone, or too short) left out of the density plot: {bad}",
            PymlmWarning,
        )
    if not parts:
        raise OptionError(f"no parameter among {names} has a profile that gives a density")
    out = pd.concat(parts, ignore_index=True)
    out["parameter"] = pd.Categorical(
        out["parameter"], categories=[n for n in names if n not in bad]
    )
    return out


def profile_density(
    profile, which=None, npts: int = 201, upper: float = 0.999, ncols: int | None = None, ax=None
):
    """Densities implied by the likelihood profiles (lme4's ``densityplot(profile(m))``).

    Returns
    -------
    matplotlib Axes (one parameter) or Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> ax = ml.plot.profile_density(m.profile(which=["Days"]))
    >>> len(ax.lines[0].get_xdata())
    201
    """
    frame = profile_density_frame(profile, which, npts, upper)
    names = list(frame["parameter"].cat.categories)
    if len(names) == 1 and not isinstance(ax, (list, tuple, np.ndarray)):
        axes, fig = [new_axes(ax, figsize=(4.0, 3.5))], None
    else:
        fig, axes = new_panels(len(names), ncols=ncols, ax=ax)
    for a, name in zip(axes, names):
        sub = frame[frame["parameter"] == name]
        a.plot(sub["value"], sub["density"], color=INK, lw=1.2)
        a.set_title(name)
        a.set_ylim(bottom=0)
    axes[0].set_ylabel("density")
    return axes[0] if fig is None else finish(fig)


# ------------------------------------------------------------- boot densities
def bw_nrd0(x: np.ndarray) -> float:
    """R's ``bw.nrd0``: 0.9 min(sd, IQR / 1.34) n^(-1/5), with R's fallbacks."""
    x = np.asarray(x, dtype=float)
    hi = np.std(x, ddof=1) if x.size > 1 else 0.0
    iqr = np.subtract(*np.quantile(x, [0.75, 0.25]))
    lo = min(hi, iqr / 1.34)
    if not lo > 0:
        lo = hi if hi > 0 else (abs(x[0]) if x.size and x[0] != 0 else 1.0)
    return float(0.9 * lo * x.size**-0.2)


def kde(x, n: int = 512, cut: float = 3.0, bw: float | None = None):
    """Gaussian kernel density on a grid, as R's ``density(x)`` (evaluated exactly).

    Parameters
    ----------
    x : array_like (m,)
    n : int
        Grid points, from ``min(x) - cut bw`` to ``max(x) + cut bw``.
    cut : float
    bw : float, optional
        Bandwidth (default R's ``bw.nrd0``).

    Returns
    -------
    grid, density : ndarray (n,)
    bw : float

    Examples
    --------
    >>> g, d, bw = kde([1.0, 2.0, 3.0, 4.0])
    >>> round(bw, 4), d.size
    (0.7635, 512)
    """
    x = np.asarray(x, dtype=float)
    bw = bw_nrd0(x) if bw is None else float(bw)
    grid = np.linspace(x.min() - cut * bw, x.max() + cut * bw, n)
    dens = np.zeros(n)
    for s in range(0, x.size, 2000):  # blocks of replicates bound the (n, block) work array
        dens += stats.norm.pdf((grid[:, None] - x[None, s : s + 2000]) / bw).sum(axis=1)
    return grid, dens / (x.size * bw), bw


def _sd_columns(reps: pd.DataFrame, model) -> dict:
    """Which ``.sigNN`` columns are standard deviations (the others are correlations)."""
    sig = [c for c in reps.columns if c.startswith(".sig") and c != ".sigma"]
    if model is not None:
        return {name: bool(v) for name, v in zip(sig, model.problem.tmap.is_diag)}
    out = {}
    for c in sig:
        v = reps[c].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        # a correlation lies in [-1, 1] (up to rounding) and is NaN when one of its sds is 0
        out[c] = not (reps[c].isna().any() or (v.size and v.min() < 0 and v.max() <= 1 + 1e-8))
    return out


def boot_density_frame(ci, model=None, which=None, tol: float = 1e-4, n: int = 512) -> pd.DataFrame:
    """Kernel densities of bootstrap replicates, as :func:`boot_density` draws them.

    Parameters
    ----------
    ci : DataFrame
        ``m.confint("boot")``: its ``attrs["replicates"]`` holds one row per
        replicate.
    model : LmerResult, optional
        The fitted model: tells which ``.sigNN`` are standard deviations and
        which correlations. Without it, a ``.sigNN`` column with negative
        replicates (all at most 1) or NaN ones is taken for a correlation.
    which : list of str, optional
        Parameters (default: all).
    tol : float
        A replicate's sd counts as 0 (a singular refit, as lme4's
        ``isSingular``) when below ``tol`` times that replicate's sigma.
    n : int
        Grid points per density (R's ``density``: 512).

    Returns
    -------
    DataFrame
        ``parameter``, ``kind``, ``value``, ``density``, ``n_singular``,
        ``n_replicates``. ``kind == "density"`` rows are a Gaussian kernel
        density (R's ``bw.nrd0`` bandwidth) of the finite, non-singular
        replicates, scaled by their share of the replicates so that the
        density and the spike add up to 1; a ``kind == "spike"`` row (only
        where some replicates are singular) at value 0 holds, in
        ``density``, the fraction of replicates at 0 (a probability).
        ``n_singular`` counts those replicates, ``n_replicates`` the finite ones.

    Raises
    ------
    OptionError
        ``ci`` has no bootstrap replicates.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Yield ~ 1 + (1 | Batch)", ml.datasets.load("Dyestuff"))
    >>> ci = m.confint("boot", nsim=100, seed=3, progress=False)
    >>> f = ml.plot.boot_density_frame(ci, model=m)
    >>> sorted(f["kind"].unique())
    ['density', 'spike']
    """
    reps = ci.attrs.get("replicates") if isinstance(ci, pd.DataFrame) else None
    if reps is None or ci.attrs.get("method", "boot") != "boot":
        raise OptionError(
            "boot_density needs the intervals of m.confint('boot'), whose attrs['replicates'] "
            "holds the bootstrap replicates"
        )
    names = check_terms(which, list(reps.columns), "parameter")
    is_sd = _sd_columns(reps, model)
    sigma = reps[".sigma"].to_numpy(dtype=float) if ".sigma" in reps.columns else None
    parts = []
    for name in names:
        v = reps[name].to_numpy(dtype=float)
        fin = np.isfinite(v)
        singular = np.zeros(v.size, dtype=bool)
        if is_sd.get(name, False):
            ref = sigma if sigma is not None else np.full(v.size, np.nanmax(v))
            singular = fin & (v < tol * ref)
        keep = v[fin & ~singular]
        n_fin, n_sing = int(fin.sum()), int(singular.sum())
        if keep.size >= 2 and np.ptp(keep) > 0:
            grid, dens, _ = kde(keep, n=n)
            parts.append(
                pd.DataFrame(
                    {
                        "parameter": name,
                        "kind": "density",
                        "value": grid,
                        "density": dens * keep.size / n_fin,
                        "n_singular": n_sing,
                        "n_replicates": n_fin,
                    }
                )
            )
        if n_sing:
            parts.append(
                pd.DataFrame(
                    {
                        "parameter": [name],
                        "kind": ["spike"],
                        "value": [0.0],
                        "density": [n_sing / n_fin],
                        "n_singular": [n_sing],
                        "n_replicates": [n_fin],
                    }
                )
            )
    out = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(
            columns=["parameter", "kind", "value", "density", "n_singular", "n_replicates"]
        )
    )
    present = [nm for nm in names if nm in set(out["parameter"])]
    out["parameter"] = pd.Categorical(out["parameter"], categories=present)
    return out


def boot_density(ci, model=None, which=None, tol: float = 1e-4, ncols: int | None = None, ax=None):
    """Densities of the parametric bootstrap replicates, one panel per parameter.

    The sampling distribution behind ``confint(method = "boot")``; for a
    standard deviation, the replicates whose refit was singular (sd 0) form
    a spike at 0, drawn as a vertical bar labelled with their count (a
    point mass that a kernel density would smear into negative values).

    Parameters
    ----------
    ci, model, which, tol
        See :func:`boot_density_frame`.
    ncols : int, optional
    ax : Axes or sequence of Axes, optional

    Returns
    -------
    matplotlib Axes (one parameter) or Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pymlm as ml
    >>> m = ml.lmer("Yield ~ 1 + (1 | Batch)", ml.datasets.load("Dyestuff"))
    >>> ci = m.confint("boot", nsim=100, seed=3, progress=False)
    >>> ax = ml.plot.boot_density(ci, model=m, which=[".sig01"])
    >>> ax.texts[0].get_text().endswith("of 100 at 0")
    True
    """
    frame = boot_density_frame(ci, model, which, tol)
    names = list(frame["parameter"].cat.categories)
    if not names:
        raise OptionError("no parameter has finite bootstrap replicates to draw")
    if len(names) == 1 and not isinstance(ax, (list, tuple, np.ndarray)):
        axes, fig = [new_axes(ax, figsize=(4.0, 3.5))], None
    else:
        fig, axes = new_panels(len(names), ncols=ncols, ax=ax)
    for a, name in zip(axes, names):
        sub = frame[frame["parameter"] == name]
        den = sub[sub["kind"] == "density"]
        spike = sub[sub["kind"] == "spike"]
        if len(den):
            a.plot(den["value"], den["density"], color=INK, lw=1.2)
        if len(spike):
            top = float(den["density"].max()) if len(den) else 1.0
            a.vlines([0.0], 0.0, top, colors="#D55E00", linewidths=3)
            k, n_all = int(spike["n_singular"].iloc[0]), int(spike["n_replicates"].iloc[0])
            a.text(
                0.0,
                top,
                f"{k} of {n_all} at 0",
                ha="left",
                va="bottom",
                fontsize="small",
                color="#D55E00",
            )
        a.set_title(name)
        a.set_ylim(bottom=0)
    axes[0].set_ylabel("density")
    return axes[0] if fig is None else finish(fig)
