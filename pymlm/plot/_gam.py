"""Plots and checks of a fitted GAM: mgcv's ``plot.gam``, ``gam.check``, ``k.check``, ``vis.gam``.

The data steps follow mgcv, so that the frames can be compared with R:

- :func:`smooths_frame` evaluates each smooth on mgcv's grid (100 points
  from the covariate's minimum to its maximum; a 40 x 40 grid for 2-D
  smooths, with mgcv's ``too.far`` exclusion), with standard errors from
  the Bayesian covariance ``Vp`` of the term's coefficients, or with
  ``se_with_mean`` of the intercept and the other terms' column means too
  (mgcv's ``seWithMean``); random effects as a QQ plot of their
  coefficients, factor smooths as one curve per level;
- :func:`partial_residuals_frame`: the term at the data plus the weighted
  working residuals (mgcv's partial residuals);
- :func:`k_check`: mgcv's basis dimension check, with a seeded
  randomization test;
- :func:`vis_frame`: the model's prediction on a grid of two covariates,
  the others at mgcv's typical values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from ..errors import DataError, OptionError, PymlmWarning, option_error, warn
from ._checks import as_gam, ppoints
from ._style import BAND, INK, POINT, colors, finish, new_axes, new_panels

__all__ = [
    "gam_check",
    "gam_check_frame",
    "k_check",
    "partial_residuals_frame",
    "smooths",
    "smooths_frame",
    "vis",
    "vis_frame",
]


# ------------------------------------------------------------------ helpers
def _factor_class():
    from ..smooth import Factor

    return Factor


def _chosen(b, terms):
    all_terms = list(b.design.terms)
    if terms is None:
        return all_terms
    if isinstance(terms, str):
        terms = [terms]
    chosen = [t for t in all_terms if t.label in terms]
    missing = set(terms) - {t.label for t in chosen}
    if missing:
        raise DataError(
            f"no term(s) {sorted(missing)} in the model; terms are {[t.label for t in all_terms]}"
        )
    return chosen


def _kind(t) -> str:
    """How a term is drawn: "re", "1d", "2d", "fs" or "none"."""
    if t.is_random:
        return "re"
    Factor = _factor_class()
    numeric = [c for c in t.cov if not isinstance(c, Factor)]
    n_fac = len(t.cov) - len(numeric)
    if n_fac == 0 and len(numeric) == 1:
        return "1d"
    if n_fac == 0 and len(numeric) == 2:
        return "2d"
    if n_fac == 1 and len(numeric) == 1:
        return "fs"
    return "none"


def _by_one(sm, m: int):
    """The ``by`` variable at 1 (numeric) or at the term's level (factor), as mgcv plots."""
    if sm.by_kind == "numeric":
        return np.ones(m)
    if sm.by_kind == "factor":
        Factor = _factor_class()
        return Factor(np.full(m, sm.by_levels.index(sm.by_level)), tuple(sm.by_levels))
    return None


def _dense(X):
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def _term_fit(b, t, cols, se_with_mean=False, col_means=None):
    """The term's values and standard errors on ``cols`` (the by variable at 1)."""
    m = len(cols[0])
    X = _dense(t.smooth.matrix(cols, _by_one(t.smooth, m)))
    beta = b.fit_.beta
    Vp = b.fit_.Vp
    f = X @ beta[t.cols]
    if se_with_mean and t.smooth.Z is not None:
        X1 = np.repeat(col_means[None, :], m, axis=0)
        X1[:, t.cols] = X
        se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", X1, Vp, X1), 0.0))
    else:
        V = Vp[t.cols, t.cols]
        se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", X, V, X), 0.0))
    return f, se


def _column_means(b) -> np.ndarray:
    """Column means of the whole model matrix (mgcv's ``cmX``), one pass over row blocks."""
    d = b.design
    n = d.n
    total = np.zeros(d.p)
    for s in range(0, n, 50_000):
        e = min(n, s + 50_000)
        parts = [np.asarray(d.parametric_rows(s, e)).sum(axis=0)]
        for t in d.terms:
            M = t.rows(s, e)
            parts.append(np.asarray(M.sum(axis=0)).ravel())
        total += np.concatenate(parts)
    return total / n


def too_far(gx, gz, dx, dz, dist: float) -> np.ndarray:
    """mgcv's ``exclude.too.far``: grid points farther than ``dist`` from every data point.

    Both axes are scaled so that the grid spans the unit square.

    Returns
    -------
    ndarray of bool (len(gx),)
    """
    from scipy.spatial import cKDTree

    gx, gz, dx, dz = (np.asarray(v, dtype=float) for v in (gx, gz, dx, dz))
    if dist <= 0:
        return np.zeros(gx.size, dtype=bool)
    sx = np.ptp(gx) or 1.0
    sz = np.ptp(gz) or 1.0
    grid = np.column_stack([(gx - gx.min()) / sx, (gz - gz.min()) / sz])
    data = np.column_stack([(dx - gx.min()) / sx, (dz - gz.min()) / sz])
    d, _ = cKDTree(data).query(grid, k=1)
    return d > dist


def _edf_label(label: str, edf: float) -> str:
    """mgcv's ``sub.edf``: ``s(x)`` -> ``s(x,5.19)``, ``s(x):fb`` -> ``s(x,3.2):fb``."""
    e = f"{round(edf, 2):g}"
    if not (label.startswith(("s(", "te("))):
        return f"{label}, edf {e}"
    pos = label.find(":")
    if pos < 0:
        return f"{label[:-1]},{e})"
    return f"{label[: pos - 1]},{e}{label[pos - 1 :]}"


def _random_coefs(b, t):
    """(column name or None, coefficients) of a random-effects term, one pair per column."""
    beta = b.fit_.beta[t.cols]
    if t.re is not None and t.re.p > 1:
        lv = t.re.nlevels
        return [(str(c), beta[r * lv : (r + 1) * lv]) for r, c in enumerate(t.re.cnms)]
    return [(None, beta)]


# ---------------------------------------------------------------- smooths
def smooths_frame(
    b,
    terms=None,
    n: int = 100,
    n2: int = 40,
    se_mult: float = 2.0,
    se_with_mean: bool = False,
    too_far_dist: float = 0.1,
) -> pd.DataFrame:
    """The smooth estimates that :func:`smooths` draws (mgcv's ``plot.gam`` data; gratia's
    ``smooth_estimates``).

    Parameters
    ----------
    b : GamResult
    terms : list of str, optional
        Term labels (default: every smooth and random-effects term).
    n : int
        Grid points of a 1-D smooth (from the covariate's minimum to its maximum).
    n2 : int
        Grid points per axis of a 2-D smooth (at least 10, as mgcv).
    se_mult : float
        ``lower``/``upper`` are the estimate -/+ ``se_mult`` standard errors.
    se_with_mean : bool
        Include the uncertainty of the overall mean in the standard errors of
        constrained smooths (mgcv's ``seWithMean = TRUE``): the term's rows
        are completed with the column means of the whole model matrix.
    too_far_dist : float
        Grid points of a 2-D smooth farther than this from every data point
        (on the unit square) get NaN estimates (mgcv's ``too.far``; 0 keeps all).

    Returns
    -------
    DataFrame
        ``term``, ``type`` (``"1d"``, ``"2d"``, ``"fs"``, ``"re"``),
        ``level`` (the factor level of an ``fs`` curve or a factor ``by``
        copy, the column of a random-effects term with several; else None),
        ``xvar``, ``x``, ``zvar``, ``z`` (covariate names and grid values; a
        random effect's ``x`` is the normal quantile ``qnorm(ppoints(l))``),
        ``estimate``, ``se``, ``lower``, ``upper``. A 2-D grid runs over
        ``x`` first.

    Raises
    ------
    DataError
        A term label the model does not have.

    Examples
    --------
    >>> import pymlm as ml
    >>> b = ml.gam("y ~ s(x0, bs = 'cr')", ml.datasets.load("gamsim_re").head(400))
    >>> f = ml.plot.smooths_frame(b)
    >>> f.shape, list(f.columns[:4])
    ((100, 11), ['term', 'type', 'level', 'xvar'])
    """
    b = as_gam(b, "smooths")
    Factor = _factor_class()
    col_means = _column_means(b) if se_with_mean else None
    parts = []
    skipped = []
    for t in _chosen(b, terms):
        kind = _kind(t)
        sm = t.smooth
        if kind == "none":
            skipped.append(t.label)
            continue
        if kind == "re":
            for col, coef in _random_coefs(b, t):
                est = np.sort(coef)
                parts.append(
                    pd.DataFrame(
                        {
                            "term": t.label,
                            "type": "re",
                            "level": col,
                            "xvar": "theoretical quantiles",
                            "x": stats.norm.ppf(ppoints(est.size)),
                            "zvar": None,
                            "z": np.nan,
                            "estimate": est,
                            "se": np.nan,
                        }
                    )
                )
            continue
        level = sm.by_level if sm.by_kind == "factor" else None
        if kind == "1d":
            x = np.linspace(np.min(t.cov[0]), np.max(t.cov[0]), n)
            f, se = _term_fit(b, t, [x], se_with_mean, col_means)
            parts.append(
                pd.DataFrame(
                    {
                        "term": t.label,
                        "type": "1d",
                        "level": level,
                        "xvar": sm.spec.terms[0],
                        "x": x,
                        "zvar": None,
                        "z": np.nan,
                        "estimate": f,
                        "se": se,
                    }
                )
            )
        elif kind == "2d":
            m = max(10, int(n2))
            xm = np.linspace(np.min(t.cov[0]), np.max(t.cov[0]), m)
            zm = np.linspace(np.min(t.cov[1]), np.max(t.cov[1]), m)
            xx, zz = np.tile(xm, m), np.repeat(zm, m)
            f, se = _term_fit(b, t, [xx, zz], se_with_mean, col_means)
            out = too_far(xx, zz, t.cov[0], t.cov[1], too_far_dist)
            f[out] = np.nan
            se[out] = np.nan
            parts.append(
                pd.DataFrame(
                    {
                        "term": t.label,
                        "type": "2d",
                        "level": level,
                        "xvar": sm.spec.terms[0],
                        "x": xx,
                        "zvar": sm.spec.terms[1],
                        "z": zz,
                        "estimate": f,
                        "se": se,
                    }
                )
            )
        elif kind == "fs":
            pos = next(i for i, c in enumerate(t.cov) if isinstance(c, Factor))
            fac, xcov = t.cov[pos], t.cov[1 - pos]
            x = np.linspace(np.min(xcov), np.max(xcov), n)
            for j, lev in enumerate(fac.levels):
                cols = [None, None]
                cols[pos] = Factor(np.full(n, j), tuple(fac.levels))
                cols[1 - pos] = x
                f, se = _term_fit(b, t, cols)
                parts.append(
                    pd.DataFrame(
                        {
                            "term": t.label,
                            "type": "fs",
                            "level": str(lev),
                            "xvar": sm.spec.terms[1 - pos],
                            "x": x,
                            "zvar": None,
                            "z": np.nan,
                            "estimate": f,
                            "se": se,
                        }
                    )
                )
    if skipped:
        warn(
            f"smooths of three or more covariates are not drawn: {skipped}; use vis() for a "
            "slice of two",
            PymlmWarning,
        )
    if not parts:
        raise DataError("the model has no smooth or random-effects term to draw")
    out = pd.concat(parts, ignore_index=True)
    out["lower"] = out["estimate"] - se_mult * out["se"]
    out["upper"] = out["estimate"] + se_mult * out["se"]
    return out


def _working_weighted_residuals(b) -> np.ndarray:
    """Working residuals times the square root of the working weights (mgcv's partial residuals)."""
    fit = b.fit_
    fam = fit.family
    mu = fit.mu
    y = b.design.y
    w = fit.prior_weights
    if fam is None:
        return (y - mu) * np.sqrt(w)
    gprime = fam.link.deriv(mu)
    V = fam.variance(mu)
    return (y - mu) * gprime * np.sqrt(w / (V * gprime**2))


def partial_residuals_frame(b, terms=None) -> pd.DataFrame:
    """Partial residuals of the 1-D smooths, as mgcv's ``plot.gam(residuals = TRUE)``.

    For term j at row i: ``f_j(x_i) + r_i sqrt(w_i)``, r the working
    residuals and w the working weights of the fit (for a Gaussian model,
    ``f_j(x_i) + sqrt(w_i) (y_i - mu_i)``). Terms with a ``by`` variable,
    random effects and 2-D smooths are left out, as mgcv does.

    Returns
    -------
    DataFrame
        ``term``, ``row``, ``x`` (the covariate), ``residual``.

    Examples
    --------
    >>> import pymlm as ml
    >>> b = ml.gam("y ~ s(x0, bs = 'cr')", ml.datasets.load("gamsim_re").head(400))
    >>> ml.plot.partial_residuals_frame(b).shape
    (400, 4)
    """
    b = as_gam(b, "partial_residuals_frame")
    wr = _working_weighted_residuals(b)
    n = b.nobs
    parts = []
    for t in _chosen(b, terms):
        if _kind(t) != "1d" or t.smooth.by_kind is not None:
            continue
        f = t.rows_dot(0, n, b.fit_.beta[t.cols])
        parts.append(
            pd.DataFrame(
                {
                    "term": t.label,
                    "row": np.arange(n),
                    "x": np.asarray(t.cov[0], dtype=float),
                    "residual": f + wr,
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=["term", "row", "x", "residual"])
    return pd.concat(parts, ignore_index=True)


def smooths(
    b,
    terms=None,
    residuals: bool = False,
    rug=None,
    se_mult: float = 2.0,
    se_with_mean: bool = False,
    n: int = 100,
    n2: int = 40,
    too_far_dist: float = 0.1,
    ncols: int = 2,
    ax=None,
):
    """Each smooth with its +-2 SE band: mgcv's ``plot.gam`` (``plot(b)``).

    1-D smooths are drawn against their covariate (the estimate and dashed
    bands, a rug of the data, optional partial residuals), 2-D smooths as an
    image with contours, random effects as a normal QQ plot of their
    coefficients, factor-smooth interactions (``bs = "fs"``) as one curve
    per level, factor ``by`` smooths as one panel per level.

    Parameters
    ----------
    b : GamResult
    terms : list of str, optional
        Term labels (default: all).
    residuals : bool
        Add the partial residuals (see :func:`partial_residuals_frame`).
    rug : bool, optional
        Mark the data on the covariate axis (default: with at most 10000
        rows, as mgcv). A 1-D rug of more than 2000 values marks one value
        per 1/2000 of the axis that holds data (the same picture, fewer lines).
    se_mult, se_with_mean, n, n2, too_far_dist
        See :func:`smooths_frame`.
    ncols : int
        Panels per row.
    ax : Axes or sequence of Axes, optional
        One per panel.

    Returns
    -------
    matplotlib Axes (one panel) or Figure

    Raises
    ------
    DataError
        A term label the model does not have.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pymlm as ml
    >>> d = ml.datasets.load("gamsim_re").head(400)
    >>> b = ml.gam("y ~ s(x0, bs = 'cr') + s(x1, bs = 'cr')", d)
    >>> fig = b.plot()
    >>> [a.get_ylabel() for a in fig.axes]
    ['s(x0,3.21)', 's(x1,2.13)']
    """
    b = as_gam(b, "smooths")
    frame = smooths_frame(b, terms, n, n2, se_mult, se_with_mean, too_far_dist)
    chosen = [t for t in _chosen(b, terms) if t.label in set(frame["term"])]
    resid = partial_residuals_frame(b, terms) if residuals else None
    if rug is None:
        rug = b.nobs <= 10_000
    if len(chosen) == 1 and not isinstance(ax, (list, tuple, np.ndarray)):
        axes, fig = [new_axes(ax, figsize=(4.8, 3.8))], None
    else:
        fig, axes = new_panels(len(chosen), ncols=ncols, ax=ax, panel_size=(4.5, 3.6))
    for a, t in zip(axes, chosen):
        sub = frame[frame["term"] == t.label]
        label = _edf_label(t.label, float(b.edf[t.label]))
        kind = sub["type"].iloc[0]
        if kind == "1d":
            _draw_1d(
                a, sub, t, rug, None if resid is None else resid[resid["term"] == t.label], label
            )
        elif kind == "2d":
            _draw_2d(a, sub, t, rug, label)
        elif kind == "fs":
            for lev, col in zip(dict.fromkeys(sub["level"]), colors(sub["level"].nunique())):
                s = sub[sub["level"] == lev]
                a.plot(s["x"], s["estimate"], color=col, lw=1.0, label=lev)
            if sub["level"].nunique() <= 8:
                a.legend(fontsize="small", frameon=False)
            a.set_xlabel(sub["xvar"].iloc[0])
            a.set_ylabel(label)
        else:
            _draw_re(a, sub, label)
    if fig is None:
        return axes[0]
    return finish(fig)


def _draw_1d(ax, sub, t, rug, resid, label):
    ax.plot(sub["x"], sub["estimate"], color=INK, lw=1.3)
    ax.plot(sub["x"], sub["upper"], color=INK, lw=0.8, ls="--")
    ax.plot(sub["x"], sub["lower"], color=INK, lw=0.8, ls="--")
    if resid is not None and len(resid):
        ax.scatter(resid["x"], resid["residual"], s=4, color=POINT, alpha=0.5, zorder=0)
    if rug:
        x = _rug_positions(np.asarray(t.cov[0], dtype=float))
        ax.vlines(x, 0.0, 0.03, transform=ax.get_xaxis_transform(), colors="0.3", linewidths=0.5)
    ax.set_xlabel(sub["xvar"].iloc[0])
    ax.set_ylabel(label)


# a 1-D rug of more values than this marks one value per 1/_RUG_CELLS of the axis
_RUG_CELLS = 2000


def _rug_positions(x: np.ndarray, cells: int = _RUG_CELLS) -> np.ndarray:
    """The covariate values a rug marks: all of them, or one per occupied cell of the axis.

    With more than ``cells`` values, the range of ``x`` is cut into ``cells``
    equal cells and the smallest value in each occupied cell is kept (the
    maximum has a cell of its own): every value then lies within one cell
    width (range / ``cells``, below a pixel of a figure panel) of a mark, so
    the rug looks the same and costs at most ``cells + 1`` lines instead of
    one per row.

    Parameters
    ----------
    x : ndarray (n,)
    cells : int

    Returns
    -------
    ndarray (m,), m <= max(n, cells + 1)
        Values of ``x`` (NaN dropped); sorted when thinned.
    """
    x = x[np.isfinite(x)]
    if x.size <= cells:
        return x
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return x[:1]
    xs = np.sort(x)
    cell = np.floor((xs - lo) / (hi - lo) * cells).astype(np.int64)
    _, first = np.unique(cell, return_index=True)
    return xs[first]


def _draw_2d(ax, sub, t, rug, label):
    xm = np.unique(sub["x"].to_numpy())
    zm = np.unique(sub["z"].to_numpy())
    Z = np.ma.masked_invalid(sub["estimate"].to_numpy().reshape(zm.size, xm.size))
    mesh = ax.pcolormesh(xm, zm, Z, shading="nearest", cmap="cividis")
    if np.isfinite(Z.filled(np.nan)).sum() > 3 and np.nanmax(Z.filled(np.nan)) > np.nanmin(
        Z.filled(np.nan)
    ):
        cs = ax.contour(xm, zm, Z, levels=8, colors=INK, linewidths=0.7)
        ax.clabel(cs, fontsize="x-small")
    if rug:
        ax.scatter(t.cov[0], t.cov[1], s=1, color="0.3", alpha=0.5)
    ax.figure.colorbar(mesh, ax=ax)
    ax.set_xlabel(sub["xvar"].iloc[0])
    ax.set_ylabel(sub["zvar"].iloc[0])
    ax.set_title(label)


def _draw_re(ax, sub, label):
    for (lev, s), col in zip(sub.groupby("level", dropna=False, sort=False), colors(8)):
        ax.scatter(
            s["x"],
            s["estimate"],
            s=12,
            color=col if sub["level"].notna().any() else POINT,
            label=None if pd.isna(lev) else lev,
        )
        e = s["estimate"].to_numpy()
        if e.size > 1:
            yq = np.quantile(e, [0.25, 0.75])
            xq = stats.norm.ppf([0.25, 0.75])
            slope = (yq[1] - yq[0]) / (xq[1] - xq[0])
            xr = np.array([s["x"].min(), s["x"].max()])
            ax.plot(xr, yq[0] + slope * (xr - xq[0]), color=INK, lw=0.8)
    if sub["level"].notna().any():
        ax.legend(fontsize="small", frameon=False)
    ax.set_xlabel("Gaussian quantiles")
    ax.set_ylabel("effects")
    ax.set_title(label)


# ---------------------------------------------------------------- residuals
def _family_name(b) -> str:
    return str(getattr(b.fit_, "family_name", "gaussian"))


def residuals(b, type: str = "deviance", y=None) -> np.ndarray:
    """Residuals of a GAM, as mgcv's ``residuals.gam``, optionally for another response ``y``.

    Parameters
    ----------
    b : GamResult
    type : {"deviance", "pearson", "response"}
    y : ndarray, optional
        A response to take in place of the fitted one (the fitted values stay).
    """
    if type not in ("deviance", "pearson", "response"):
        raise option_error("type", ["deviance", "pearson", "response"], type)
    fit = b.fit_
    mu = fit.mu
    y = b.design.y if y is None else y
    w = fit.prior_weights
    if type == "response":
        return y - mu
    fam = fit.family
    if fam is None:
        return np.sqrt(w) * (y - mu)
    if type == "pearson":
        return (y - mu) * np.sqrt(w / fam.variance(mu))
    with np.errstate(divide="ignore", invalid="ignore"):
        return fam.resid_dev(y, mu, var_weights=w)


def _quantile_fn(b):
    """mgcv's ``fix.family.qf``: the response quantile at p, or None for other families."""
    fit = b.fit_
    mu, w, scale = fit.mu, fit.prior_weights, b.scale
    name = _family_name(b).lower()
    if name == "gaussian":
        return lambda p: stats.norm.ppf(p, mu, np.sqrt(scale / w))
    if name == "poisson":
        return lambda p: stats.poisson.ppf(p, mu)
    if name == "binomial":
        wt = np.round(w).astype(int)
        return lambda p: stats.binom.ppf(p, wt, mu) / np.where(wt == 0, 1, wt)
    if name == "gamma":
        return lambda p: stats.gamma.ppf(p, a=1 / scale, scale=mu * scale)
    return None


def _theoretical(b, r, type, s_rep, seed):
    """mgcv's ``qq.gam(rep = 0)``: the sorted residuals of responses at permuted uniform
    quantiles, averaged."""
    n = r.size
    qf = _quantile_fn(b)
    U = (np.arange(1, n + 1) - 0.5) / n
    if qf is None:
        return stats.norm.ppf(ppoints(n)), "normal"
    rng = np.random.default_rng(seed)
    dm = np.empty((n, s_rep))
    for i in range(s_rep):
        U = rng.permutation(U)
        dm[:, i] = np.sort(residuals(b, type, y=qf(U)))
    return np.sort(dm.mean(axis=1)), "family"


def gam_check_frame(b, type: str = "deviance", s_rep: int = 10, seed=None) -> pd.DataFrame:
    """What the four panels of :func:`gam_check` draw, one row per observation.

    Parameters
    ----------
    b : GamResult
    type : {"deviance", "pearson", "response"}
        Residual type (mgcv's default: deviance).
    s_rep : int
        Simulated quantile sets averaged for the QQ plot's theoretical
        quantiles (mgcv's ``qq.gam``: responses at randomly permuted uniform
        quantiles of the fitted distribution, their sorted residuals
        averaged). A Gaussian model's are ``sqrt(scale) qnorm((i - 0.5)/n)``
        exactly; families without a quantile function get normal quantiles.
    seed : int, optional
        Seed of those permutations.

    Returns
    -------
    DataFrame
        ``row``, ``linear_predictor``, ``fitted``, ``response``,
        ``residual``, ``theoretical`` (the QQ plot's theoretical quantile for
        the residual's rank).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import stats
    >>> import pymlm as ml
    >>> b = ml.gam("y ~ s(x0, bs = 'cr')", ml.datasets.load("gamsim_re").head(400))
    >>> f = ml.plot.gam_check_frame(b)
    >>> q = stats.norm.ppf((np.arange(400) + 0.5) / 400)
    >>> bool(np.allclose(np.sort(f["theoretical"]), np.sqrt(b.scale) * q))
    True
    """
    b = as_gam(b, "gam_check")
    r = residuals(b, type)
    q, _ = _theoretical(b, r, type, int(s_rep), seed)
    theo = np.empty(r.size)
    theo[np.argsort(r, kind="stable")] = q
    return pd.DataFrame(
        {
            "row": np.arange(r.size),
            "linear_predictor": b.linear_predictors,
            "fitted": b.fitted,
            "response": b.design.y,
            "residual": r,
            "theoretical": theo,
        }
    )


def gam_check(b, type: str = "deviance", s_rep: int = 10, seed=None, ax=None):
    """mgcv's ``gam.check`` panels: QQ plot, residuals vs linear predictor, histogram, fit.

    The basis dimension table that ``gam.check`` prints is :func:`k_check`.

    Parameters
    ----------
    b : GamResult
    type, s_rep, seed
        See :func:`gam_check_frame`.
    ax : sequence of 4 Axes, optional

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pymlm as ml
    >>> b = ml.gam("y ~ s(x0, bs = 'cr')", ml.datasets.load("gamsim_re").head(400))
    >>> fig = b.plot.check()
    >>> [a.get_title() for a in fig.axes]  # doctest: +NORMALIZE_WHITESPACE
    ['QQ plot of residuals', 'Resids vs. linear pred.', 'Histogram of residuals',
     'Response vs. Fitted Values']
    """
    frame = gam_check_frame(b, type, s_rep, seed)
    fig, axes = new_panels(4, ncols=2, ax=ax, panel_size=(4.2, 3.6))
    qq, rl, hi, rf = axes
    srt = frame.sort_values("theoretical", kind="stable")
    qq.scatter(srt["theoretical"], srt["residual"], s=6, color=POINT)
    ends = np.array([srt["theoretical"].min(), srt["theoretical"].max()])
    qq.plot(ends, ends, color="#D55E00", lw=0.9)
    qq.set_xlabel("theoretical quantiles")
    qq.set_ylabel(f"{type} residuals")
    qq.set_title("QQ plot of residuals")
    rl.scatter(frame["linear_predictor"], frame["residual"], s=6, color=POINT)
    rl.set_xlabel("linear predictor")
    rl.set_ylabel("residuals")
    rl.set_title("Resids vs. linear pred.")
    hi.hist(frame["residual"], bins="sturges", color=BAND, edgecolor=INK, linewidth=0.5)
    hi.set_xlabel("Residuals")
    hi.set_ylabel("Frequency")
    hi.set_title("Histogram of residuals")
    rf.scatter(frame["fitted"], frame["response"], s=6, color=POINT)
    rf.set_xlabel("Fitted Values")
    rf.set_ylabel("Response")
    rf.set_title("Response vs. Fitted Values")
    return finish(fig)


# ----------------------------------------------------------------- k.check
def _k_data(t):
    """The covariates the k-index orders or neighbours on, or None when it is not defined."""
    from ..smooth import FactorSmooth

    Factor = _factor_class()
    if t.is_random or t.smooth is None:
        return None
    if isinstance(t.smooth.basis, FactorSmooth):
        cov = [c for c in t.cov if not isinstance(c, Factor)]
    else:
        cov = list(t.cov)
        if any(isinstance(c, Factor) for c in cov):
            return None
    return [np.asarray(c, dtype=float) for c in cov]


def _gradient_scaled(b, t, dat):
    """mgcv's rescaling of a tensor product's covariates by the mean absolute slope of the fit."""
    m = dat.shape[0]
    beta = b.fit_.beta[t.cols]
    by = _by_one(t.smooth, m)
    f0 = _dense(t.smooth.matrix(list(dat.T), by)) @ beta
    out = dat.copy()
    for i in range(dat.shape[1]):
        dx = np.ptp(dat[:, i]) / 1000
        datp = dat.copy()
        datp[:, i] += dx
        fp = _dense(t.smooth.matrix(list(datp.T), by)) @ beta
        g = np.mean(np.abs(fp - f0)) / dx
        col = dat[:, i] - dat[:, i].min()
        out[:, i] = g * col / col.max()
    return out


def _neighbours(dat: np.ndarray, k: int = 3) -> np.ndarray:
    """The ``k`` nearest neighbours of each row, itself excluded (mgcv's ``nearest``), (m, k)."""
    from scipy.spatial import cKDTree

    m = dat.shape[0]
    _, idx = cKDTree(dat).query(dat, k=k + 1)
    self_hit = idx == np.arange(m)[:, None]
    # a row that did not come back as its own neighbour (exact duplicates) drops its farthest
    none = ~self_hit.any(axis=1)
    self_hit[none, -1] = True
    return idx[~self_hit].reshape(m, k)


def k_check(b, n_rep: int = 400, subsample: int = 5000, seed=None) -> pd.DataFrame:
    """mgcv's basis dimension check (``k.check``, the table ``gam.check`` prints).

    For each smooth, the k-index is the mean squared difference of
    neighbouring residuals (deviance residuals, neighbours in the order of
    the covariate, or the 3 nearest neighbours in 2-D and more; the
    covariates of a tensor product rescaled by the fit's mean absolute
    slope in each), halved and divided by the mean squared residual: about 1
    when the residuals have no pattern left in the covariate, below 1 when k
    may be too low. Its p-value is the share of ``n_rep`` random
    permutations of the residuals with a smaller value. Terms of factors
    (random effects) have none.

    Parameters
    ----------
    b : GamResult
    n_rep : int
        Permutations (mgcv's ``k.check`` default 400; ``gam.check`` uses 200).
    subsample : int
        Above this many rows the check uses a random subsample of them, as mgcv.
    seed : int, optional
        Seed of the permutations (and of the subsample).

    Returns
    -------
    DataFrame
        Indexed by term label; columns ``k'`` (coefficients), ``edf``,
        ``k-index``, ``p-value``.

    Examples
    --------
    >>> import pymlm as ml
    >>> b = ml.gam("y ~ s(x0, bs = 'cr', k = 4)", ml.datasets.load("gamsim_re").head(400))
    >>> ml.plot.k_check(b, seed=1).round(2)
           k'   edf  k-index  p-value
    s(x0)   3  2.64      1.0     0.48
    """
    b = as_gam(b, "k_check")
    if isinstance(n_rep, bool) or not isinstance(n_rep, (int, np.integer)) or n_rep < 1:
        raise OptionError(f"n_rep must be a positive integer; got {n_rep!r}")
    rng = np.random.default_rng(seed)
    rsd = residuals(b, "deviance")
    n = rsd.size
    ind = np.sort(rng.choice(n, size=subsample, replace=False)) if n > subsample else None
    if ind is not None:
        rsd = rsd[ind]
    nr = rsd.size
    ms = np.mean(rsd**2)
    rows = {}
    for t in b.design.terms:
        edf = float(b.edf[t.label])
        cov = _k_data(t)
        if cov is None:
            rows[t.label] = (t.ncol, edf, np.nan, np.nan)
            continue
        dat = np.column_stack(cov)
        if ind is not None:
            dat = dat[ind]
        if dat.shape[1] == 1:
            order = np.argsort(dat[:, 0], kind="stable")
            v_obs = np.mean(np.diff(rsd[order]) ** 2) / 2

            def stat(R):
                return np.mean(np.diff(R, axis=1) ** 2, axis=1) / 2
        else:
            from ..smooth import TensorProduct

            if isinstance(t.smooth.basis, TensorProduct):
                dat = _gradient_scaled(b, t, dat)
            ni = _neighbours(dat)
            v_obs = np.mean((rsd[:, None] - rsd[ni]) ** 2) / 2

            def stat(R, ni=ni):
                return np.mean((R[:, :, None] - R[:, ni]) ** 2, axis=(1, 2)) / 2

        ve = np.empty(n_rep)
        block = max(1, int(2_000_000 // max(nr * (1 if dat.shape[1] == 1 else 3), 1)))
        for s in range(0, n_rep, block):
            k = min(block, n_rep - s)
            R = rng.permuted(np.broadcast_to(rsd, (k, nr)), axis=1)
            ve[s : s + k] = stat(R)
        rows[t.label] = (t.ncol, edf, v_obs / ms, float(np.mean(ve < v_obs)))
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["k'", "edf", "k-index", "p-value"])
    out["k'"] = out["k'"].astype(int)
    return out


# --------------------------------------------------------------------- vis
def _rhs_variables(b) -> list[str]:
    from ..formula._ast import names_in

    parsed = b.design.parsed
    nodes = (
        [n for _, n in parsed.fixed_terms]
        + [bar.node for bar in parsed.bars]
        + [s.node for s in parsed.smooths]
        + list(parsed.offsets)
    )
    data = b.design.frame.data
    seen: dict[str, None] = {}
    for node in nodes:
        for nm in names_in(node):
            if nm.value in data.columns:
                seen.setdefault(nm.value, None)
    return list(seen)


def _typical(col: pd.Series):
    """mgcv's ``variable.summary`` value: the most frequent level, or the type-3 median."""
    if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype.kind in "OSUb":
        counts = col.value_counts(sort=False)
        if isinstance(col.dtype, pd.CategoricalDtype):
            counts = counts.reindex(col.cat.categories)
        else:
            counts = counts.sort_index()
        return counts.idxmax()
    return float(np.quantile(col.to_numpy(dtype=float), 0.5, method="closest_observation"))


def vis_frame(
    b,
    view=None,
    cond=None,
    n_grid: int = 30,
    too_far_dist: float = 0.0,
    type: str = "link",
    se: bool = True,
) -> pd.DataFrame:
    """The prediction surface that :func:`vis` draws (mgcv's ``vis.gam``).

    Parameters
    ----------
    b : GamResult
    view : (str, str), optional
        The two numeric covariates of the grid (default: those of the first
        term with two numeric covariates, else the first two numeric
        variables of the formula).
    cond : dict, optional
        Values of the other variables; those not given are held at mgcv's
        typical values (the most frequent level of a factor; for a number,
        the middle observation, R's ``quantile(type = 3)`` median).
    n_grid : int
        Grid points per axis (from minimum to maximum).
    too_far_dist : float
        Grid points farther than this from the data (unit square) get NaN.
    type : {"link", "response"}
    se : bool
        Add the standard error of the prediction.

    Returns
    -------
    DataFrame
        The grid (``x`` varying fastest) with every variable the model
        needs, then ``fit`` (and ``se``).

    Examples
    --------
    >>> import pymlm as ml
    >>> d = ml.datasets.load("gamsim_re").head(400)
    >>> b = ml.gam("y ~ te(x1, x2, k = 4) + x0", d)
    >>> f = ml.plot.vis_frame(b)
    >>> f.shape, float(f["x0"].iloc[0]) == float(d["x0"].sort_values().iloc[199])
    ((900, 5), True)
    """
    b = as_gam(b, "vis")
    data = b.design.frame.data
    variables = _rhs_variables(b)
    numeric = [v for v in variables if data[v].dtype.kind in "iuf"]
    if view is None:
        Factor = _factor_class()
        view = None
        for t in b.design.terms:
            if t.smooth is not None and sum(not isinstance(c, Factor) for c in t.cov) >= 2:
                names = [nm for nm in t.smooth.spec.terms if nm in numeric]
                if len(names) >= 2:
                    view = names[:2]
                    break
        if view is None:
            if len(numeric) < 2:
                raise OptionError(f"vis needs two numeric covariates; the model has {numeric}")
            view = numeric[:2]
    view = list(view)
    if len(view) != 2 or any(v not in numeric for v in view) or view[0] == view[1]:
        raise OptionError(
            f"view must name two different numeric variables of the model, among {numeric}; "
            f"got {view!r}"
        )
    cond = dict(cond or {})
    unknown = [k for k in cond if k not in variables]
    if unknown:
        raise OptionError(
            f"cond names variables the model does not use: {unknown}; it uses {variables}"
        )
    m1 = np.linspace(data[view[0]].min(), data[view[0]].max(), n_grid)
    m2 = np.linspace(data[view[1]].min(), data[view[1]].max(), n_grid)
    grid = {view[0]: np.tile(m1, n_grid), view[1]: np.repeat(m2, n_grid)}
    size = n_grid * n_grid
    for v in variables:
        if v in view:
            continue
        col = data[v]
        value = cond.get(v, _typical(col))
        if isinstance(col.dtype, pd.CategoricalDtype):
            if value not in set(col.cat.categories):
                raise OptionError(
                    f"cond gives {v} the value {value!r}, which is not one of its levels "
                    f"{list(col.cat.categories)}"
                )
            grid[v] = pd.Categorical(
                [value] * size, categories=col.cat.categories, ordered=col.cat.ordered
            )
        else:
            grid[v] = np.repeat(
                np.asarray([value], dtype=col.dtype if col.dtype.kind != "O" else object), size
            )
    newdata = pd.DataFrame(grid)[[*view, *[v for v in variables if v not in view]]]
    if se:
        fit, sefit = b.predict(newdata, type=type, se_fit=True)
    else:
        fit, sefit = b.predict(newdata, type=type), None
    far = too_far(newdata[view[0]], newdata[view[1]], data[view[0]], data[view[1]], too_far_dist)
    out = newdata.copy()
    out["fit"] = np.where(far, np.nan, fit)
    if se:
        out["se"] = np.where(far, np.nan, sefit)
    out.attrs["view"] = view
    return out


def vis(
    b,
    view=None,
    cond=None,
    n_grid: int = 30,
    too_far_dist: float = 0.0,
    type: str = "link",
    kind: str = "contour",
    ax=None,
):
    """The model's prediction over two covariates (mgcv's ``vis.gam``).

    Parameters
    ----------
    b : GamResult
    view, cond, n_grid, too_far_dist, type
        See :func:`vis_frame`.
    kind : {"contour", "surface"}
        An image with contour lines (mgcv's ``plot.type = "contour"``), or a
        3-D surface (``"persp"``; ``ax`` must then be a 3-D Axes).
    ax : Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pymlm as ml
    >>> b = ml.gam("y ~ te(x1, x2, k = 4)", ml.datasets.load("gamsim_re").head(400))
    >>> ax = b.plot.vis()
    >>> ax.collections[0].get_array().shape
    (30, 30)
    """
    if kind not in ("contour", "surface"):
        raise option_error("kind", ["contour", "surface"], kind)
    frame = vis_frame(b, view, cond, n_grid, too_far_dist, type, se=False)
    vx, vz = frame.attrs["view"]
    xm = frame[vx].to_numpy()[:n_grid]
    zm = frame[vz].to_numpy()[::n_grid]
    Z = frame["fit"].to_numpy().reshape(n_grid, n_grid)
    zlab = "linear predictor" if type == "link" else "response"
    if kind == "surface":
        if ax is None:
            plt = _pyplot()
            fig = plt.figure(figsize=(5.5, 4.5))
            ax = fig.add_subplot(projection="3d")
        elif getattr(ax, "name", "") != "3d":
            raise OptionError(
                "kind='surface' needs a 3-D Axes, e.g. fig.add_subplot(projection='3d')"
            )
        X, Y = np.meshgrid(xm, zm)
        ax.plot_surface(
            X, Y, np.ma.masked_invalid(Z), cmap="cividis", linewidth=0, antialiased=True
        )
        ax.set_zlabel(zlab)
    else:
        ax = new_axes(ax, figsize=(5.5, 4.5))
        Zm = np.ma.masked_invalid(Z)
        mesh = ax.pcolormesh(xm, zm, Zm, shading="nearest", cmap="cividis")
        if np.ptp(Zm.compressed()) > 0:
            cs = ax.contour(xm, zm, Zm, levels=10, colors=INK, linewidths=0.7)
            ax.clabel(cs, fontsize="x-small")
        ax.figure.colorbar(mesh, ax=ax, label=zlab)
    ax.set_xlabel(vx)
    ax.set_ylabel(vz)
    return ax


def _pyplot():
    from ._style import pyplot

    return pyplot()
