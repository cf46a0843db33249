"""Plots of a fitted linear mixed model: random effects, residuals, shrinkage.

Each plot is a data step (``*_frame``: a tidy DataFrame) and a drawing step
that draws exactly that frame, as MixedModelsMakie's ``caterpillar!``,
``qqcaterpillar!`` and ``shrinkageplot!`` and lme4's ``dotplot(ranef)``,
``qqmath(ranef)``, ``plot.merMod`` and ``qqmath.merMod``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import OptionError
from ._checks import as_lmer, check_group, check_level, check_terms, ppoints
from ._style import BAND, INK, POINT, finish, new_axes, new_panels

__all__ = [
    "caterpillar",
    "caterpillar_frame",
    "ranef_qq",
    "ranef_qq_frame",
    "residuals_fitted",
    "residuals_fitted_frame",
    "residuals_qq",
    "residuals_qq_frame",
    "shrinkage",
    "shrinkage_frame",
]

#: above this many levels the level names are not written on the axis
MAX_LABELS = 60


def _modes(m, group):
    """Conditional modes (l, p) and their conditional sds (l, p) of one grouping factor."""
    modes, pv = m.get_ranef(cond_var=True)[group]
    sd = np.sqrt(np.maximum(np.einsum("lii->li", pv), 0.0))
    return modes, sd


def _sorted(v: np.ndarray) -> np.ndarray:
    """Ascending order; values equal to 9 digits of the largest keep their order (ties of a
    balanced design then do not depend on rounding)."""
    scale = np.max(np.abs(v)) if v.size and np.max(np.abs(v)) > 0 else 1.0
    return np.argsort(np.round(v / scale, 9), kind="stable")


def _order(modes: pd.DataFrame, order_by) -> np.ndarray:
    if order_by is None:
        return np.arange(len(modes))
    if order_by not in modes.columns:
        raise OptionError(
            f"order_by must be None or one of the columns {list(modes.columns)}; got {order_by!r}"
        )
    return _sorted(modes[order_by].to_numpy())


# --------------------------------------------------------------- caterpillar
def caterpillar_frame(
    m, group: str | None = None, level: float = 0.95, order_by="first"
) -> pd.DataFrame:
    """The conditional modes and intervals that :func:`caterpillar` draws.

    Parameters
    ----------
    m : LmerResult
    group : str, optional
        Grouping factor (default: the model's first, as MixedModelsMakie).
    level : float
        Interval level: mode +- z sd, z = qnorm((1 + level) / 2), sd the
        conditional standard deviation (square root of lme4's ``condVar``).
    order_by : "first", str or None
        Order of the levels: by the mode of the first column (``"first"``,
        as lme4's ``dotplot(ranef)`` and MixedModelsMakie), of the named
        column, or R's level order (``None``). Modes equal to 9 significant
        digits (ties of a balanced design) keep R's level order.

    Returns
    -------
    DataFrame
        One row per level and column: ``group``, ``term`` (the random-effect
        column), ``level`` (a Categorical whose categories are the drawing
        order, bottom to top), ``estimate``, ``sd``, ``lower``, ``upper``,
        ``position`` (0 at the bottom).

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Yield ~ 1 + (1 | Batch)", ml.datasets.load("Dyestuff"))
    >>> f = ml.plot.caterpillar_frame(m)
    >>> list(f["level"].cat.categories)
    ['F', 'D', 'A', 'B', 'C', 'E']
    """
    m = as_lmer(m, "caterpillar")
    group = check_group(m, group, "caterpillar")
    level = check_level(level)
    modes, sd = _modes(m, group)
    order = _order(modes, modes.columns[0] if order_by == "first" else order_by)
    labels = [str(v) for v in modes.index[order]]
    z = stats.norm.ppf(0.5 + level / 2)
    parts = []
    for j, term in enumerate(modes.columns):
        est = modes.iloc[order, j].to_numpy()
        s = sd[order, j]
        parts.append(
            pd.DataFrame(
                {
                    "group": group,
                    "term": term,
                    "level": labels,
                    "estimate": est,
                    "sd": s,
                    "lower": est - z * s,
                    "upper": est + z * s,
                    "position": np.arange(len(labels)),
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    out["level"] = pd.Categorical(out["level"], categories=labels)
    out.attrs["level"] = level
    return out


def _interval_panel(ax, sub: pd.DataFrame, y: np.ndarray):
    """Horizontal interval segments, the estimates as points, a line at 0."""
    from matplotlib.collections import LineCollection

    seg = np.stack([np.column_stack([sub["lower"], y]), np.column_stack([sub["upper"], y])], axis=1)
    ax.add_collection(LineCollection(seg, colors=BAND, linewidths=1.5, label="interval"))
    ax.scatter(sub["estimate"], y, s=14, color=INK, zorder=3, label="estimate")
    ax.axvline(0.0, color="0.6", lw=0.8, ls="--", zorder=0)
    lo, hi = np.nanmin(sub["lower"]), np.nanmax(sub["upper"])
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    ax.set_xlim(lo - pad, hi + pad)


def _level_axis(ax, labels, show):
    n = len(labels)
    ax.set_ylim(-0.7, n - 0.3)
    if show is None:
        show = n <= MAX_LABELS
    if show:
        ax.set_yticks(np.arange(n), labels=labels)
    else:
        ax.set_yticks([])


def caterpillar(
    m, group: str | None = None, level: float = 0.95, order_by="first", labels=None, ax=None
):
    """Conditional modes with their intervals, one panel per random-effect column.

    lme4's ``dotplot(ranef(m, condVar = TRUE))`` and MixedModelsMakie's
    ``caterpillar``: every level of a grouping factor on the vertical axis,
    its conditional mode as a point and mode +- z sd as a segment, in the
    order of the first column's modes (shared by all panels).

    Parameters
    ----------
    m : LmerResult
    group, level, order_by
        See :func:`caterpillar_frame`.
    labels : bool, optional
        Write the level names (default: when there are at most 60 levels).
    ax : Axes or sequence of Axes, optional
        Where to draw (one Axes per column).

    Returns
    -------
    matplotlib Axes (one column) or Figure (one panel per column)

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pymlm as ml
    >>> m = ml.lmer("Yield ~ 1 + (1 | Batch)", ml.datasets.load("Dyestuff"))
    >>> ax = m.plot.caterpillar()
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['F', 'D', 'A', 'B', 'C', 'E']
    """
    frame = caterpillar_frame(m, group, level, order_by)
    terms = list(dict.fromkeys(frame["term"]))
    levels = list(frame["level"].cat.categories)
    if len(terms) == 1 and ax is not None and not isinstance(ax, (list, tuple, np.ndarray)):
        axes, fig = [new_axes(ax)], None
    elif len(terms) == 1 and ax is None:
        axes, fig = [new_axes(None, figsize=(4.5, 0.6 + 0.22 * min(len(levels), 40) + 0.8))], None
    else:
        fig, axes = new_panels(
            len(terms),
            ncols=len(terms),
            ax=ax,
            panel_size=(3.4, 0.6 + 0.22 * min(len(levels), 40) + 0.8),
            sharey=True,
        )
    for k, (a, term) in enumerate(zip(axes, terms)):
        sub = frame[frame["term"] == term]
        _interval_panel(a, sub, sub["position"].to_numpy(dtype=float))
        _level_axis(a, levels, labels)
        a.set_title(term)
        if k == 0:
            a.set_ylabel(frame["group"].iloc[0])
        else:
            a.tick_params(labelleft=False)
    if fig is None:
        return axes[0]
    fig.suptitle(frame["group"].iloc[0])
    return finish(fig)


# ------------------------------------------------------------------ ranef QQ
def ranef_qq_frame(m, group: str | None = None, level: float = 0.95) -> pd.DataFrame:
    """The normal QQ points of the conditional modes that :func:`ranef_qq` draws.

    Each column's modes are sorted separately and paired with the standard
    normal quantiles ``qnorm((i - 0.5) / l)``, as lme4's
    ``qqmath(ranef(m, condVar = TRUE))``.

    Returns
    -------
    DataFrame
        ``group``, ``term``, ``level``, ``estimate``, ``sd``, ``lower``,
        ``upper`` (mode +- z sd) and ``theoretical`` (the normal quantile),
        sorted by estimate within each term.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> f = ml.plot.ranef_qq_frame(m)
    >>> f.groupby("term")["theoretical"].max().round(3).to_dict()
    {'(Intercept)': 1.915, 'Days': 1.915}
    """
    m = as_lmer(m, "ranef_qq")
    group = check_group(m, group, "ranef_qq")
    level = check_level(level)
    modes, sd = _modes(m, group)
    z = stats.norm.ppf(0.5 + level / 2)
    nr = len(modes)
    q = stats.norm.ppf((np.arange(1, nr + 1) - 0.5) / nr)
    parts = []
    for j, term in enumerate(modes.columns):
        order = _sorted(modes.iloc[:, j].to_numpy())
        est = modes.iloc[order, j].to_numpy()
        s = sd[order, j]
        parts.append(
            pd.DataFrame(
                {
                    "group": group,
                    "term": term,
                    "level": [str(v) for v in modes.index[order]],
                    "estimate": est,
                    "sd": s,
                    "lower": est - z * s,
                    "upper": est + z * s,
                    "theoretical": q,
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    out.attrs["level"] = level
    return out


def ranef_qq(m, group: str | None = None, level: float = 0.95, ax=None):
    """Normal QQ plot of the conditional modes, with their intervals.

    lme4's ``qqmath(ranef(m, condVar = TRUE))`` and MixedModelsMakie's
    ``qqcaterpillar``: one panel per random-effect column, the sorted modes
    against standard normal quantiles, each with its mode +- z sd segment.

    Returns
    -------
    matplotlib Axes (one column) or Figure (one panel per column)

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> fig = ml.plot.ranef_qq(m)
    >>> [a.get_title() for a in fig.axes]
    ['(Intercept)', 'Days']
    """
    frame = ranef_qq_frame(m, group, level)
    terms = list(dict.fromkeys(frame["term"]))
    if len(terms) == 1 and not isinstance(ax, (list, tuple, np.ndarray)):
        axes, fig = [new_axes(ax)], None
    else:
        fig, axes = new_panels(len(terms), ncols=len(terms), ax=ax, sharey=True)
    for k, (a, term) in enumerate(zip(axes, terms)):
        sub = frame[frame["term"] == term]
        _interval_panel(a, sub, sub["theoretical"].to_numpy())
        a.set_title(term)
        a.set_xlabel("conditional mode")
        if k == 0:
            a.set_ylabel("standard normal quantiles")
    if fig is None:
        return axes[0]
    fig.suptitle(frame["group"].iloc[0])
    return finish(fig)


# ------------------------------------------------------------------ residuals
def residuals_fitted_frame(m, type: str = "pearson", scaled: bool = False) -> pd.DataFrame:
    """Fitted values and residuals, as :func:`residuals_fitted` draws them.

    Parameters
    ----------
    m : LmerResult
    type : {"pearson", "response"}
        Residual type (lme4's ``plot.merMod`` uses Pearson residuals).
    scaled : bool
        Divide by sigma.

    Returns
    -------
    DataFrame
        ``row`` (observation), ``fitted``, ``residual``.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> ml.plot.residuals_fitted_frame(m).shape
    (180, 3)
    """
    m = as_lmer(m, "residuals_fitted")
    return pd.DataFrame(
        {
            "row": np.arange(m.nobs),
            "fitted": m.fitted,
            "residual": m.residuals(type=type, scaled=scaled),
        }
    )


def residuals_fitted(m, type: str = "pearson", scaled: bool = False, ax=None):
    """Residuals against fitted values (lme4's ``plot(m)``), with a line at 0.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> ax = m.plot.residuals()
    >>> ax.collections[0].get_offsets().shape
    (180, 2)
    """
    frame = residuals_fitted_frame(m, type, scaled)
    ax = new_axes(ax)
    ax.scatter(frame["fitted"], frame["residual"], s=10, color=POINT, alpha=0.8)
    ax.axhline(0.0, color=INK, lw=0.8)
    ax.set_xlabel("fitted values")
    ax.set_ylabel(("scaled " if scaled else "") + f"{type} residuals")
    return ax


def residuals_qq_frame(m) -> pd.DataFrame:
    """The normal QQ points of the scaled residuals that :func:`residuals_qq` draws.

    As lme4's ``qqmath(m)``: standardized (Pearson, divided by sigma)
    residuals, sorted, against ``qnorm(ppoints(n))``; ``attrs["line"]``
    holds the reference line through the quartiles (lattice's
    ``panel.qqmathline``) as ``{"intercept": a, "slope": b}``.

    Returns
    -------
    DataFrame
        ``row`` (observation), ``theoretical``, ``residual``, sorted.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> round(ml.plot.residuals_qq_frame(m).attrs["line"]["slope"], 3)
    0.687
    """
    m = as_lmer(m, "residuals_qq")
    r = m.residuals(type="pearson", scaled=True)
    order = np.argsort(r, kind="stable")
    q = stats.norm.ppf(ppoints(r.size))
    out = pd.DataFrame({"row": order, "theoretical": q, "residual": r[order]})
    yq = np.quantile(r, [0.25, 0.75])
    xq = stats.norm.ppf([0.25, 0.75])
    slope = (yq[1] - yq[0]) / (xq[1] - xq[0])
    out.attrs["line"] = {"intercept": float(yq[0] - slope * xq[0]), "slope": float(slope)}
    return out


def residuals_qq(m, ax=None):
    """Normal QQ plot of the standardized residuals (lme4's ``qqmath(m)``).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> ax = m.plot.qq()
    >>> ax.get_xlabel()
    'standard normal quantiles'
    """
    frame = residuals_qq_frame(m)
    ax = new_axes(ax)
    ax.scatter(frame["theoretical"], frame["residual"], s=10, color=POINT, alpha=0.8)
    line = frame.attrs["line"]
    xr = np.array([frame["theoretical"].iloc[0], frame["theoretical"].iloc[-1]])
    ax.plot(xr, line["intercept"] + line["slope"] * xr, color=INK, lw=0.8)
    ax.set_xlabel("standard normal quantiles")
    ax.set_ylabel("standardized residuals")
    return ax


# ------------------------------------------------------------------ shrinkage
def _group_terms(m, group):
    ks = [k for k, t in enumerate(m.design.re_terms) if t.group == group]
    terms = [m.design.re_terms[k] for k in ks]
    Z = np.hstack([t.X for t in terms])
    return terms[0].codes, Z, terms[0].nlevels


def shrinkage_frame(m, group: str | None = None) -> pd.DataFrame:
    """Per-level unshrunk and conditional estimates, as :func:`shrinkage` draws them.

    The unshrunk estimate of level j is the least-squares fit of the
    random-effect columns to that level's rows with everything else held at
    the fit (the fixed effects and the other grouping factors' modes):
    ``b_j = argmin || W^{1/2} (y_j - fitted_j + Z_j b_j_hat - Z_j b) ||``. For
    a model whose random-effect columns are also fixed effects, such as
    ``Reaction ~ Days + (Days | Subject)``, ``fixef + b_j`` is the per-group
    OLS fit (lme4's ``lmList``). The conditional estimate is ``coef(m)``
    (fixed effects plus conditional modes); the population estimate the
    fixed effect (0 for a column that is not one). A level whose rows
    cannot identify every column (fewer rows than columns) gets NaN.

    Returns
    -------
    DataFrame
        One row per level and column: ``group``, ``level``, ``term``,
        ``ols``, ``conditional``, ``population``.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> f = ml.plot.shrinkage_frame(m)
    >>> f[f.level == "308"][["term", "ols", "conditional"]].round(2).to_numpy().tolist()
    [['(Intercept)', 244.19, 253.66], ['Days', 21.76, 19.67]]
    """
    m = as_lmer(m, "shrinkage")
    group = check_group(m, group, "shrinkage")
    codes, Z, nl = _group_terms(m, group)
    modes = m.ranef[group]
    b = modes.to_numpy()
    p = Z.shape[1]
    y = m.design.y
    w = m.design.weights if m.design.weights is not None else np.ones_like(y)
    r = y - m.fitted + np.einsum("ij,ij->i", Z, b[codes])
    # per-level normal equations, one bincount per pair of columns (p is small)
    A = np.empty((nl, p, p))
    c = np.empty((nl, p))
    for i in range(p):
        c[:, i] = np.bincount(codes, weights=w * Z[:, i] * r, minlength=nl)
        for j in range(i, p):
            A[:, i, j] = A[:, j, i] = np.bincount(
                codes, weights=w * Z[:, i] * Z[:, j], minlength=nl
            )
    scale = np.maximum(np.einsum("lii->l", A), np.finfo(float).tiny)
    ok = np.linalg.matrix_rank(A / scale[:, None, None], tol=1e-10) == p
    ols = np.full((nl, p), np.nan)
    if ok.any():
        ols[ok] = np.linalg.solve(A[ok], c[ok][..., None])[..., 0]
    fe = m.fixef
    pop = np.array([float(fe[cn]) if cn in fe.index else 0.0 for cn in modes.columns])
    levels = [str(v) for v in modes.index]
    return pd.DataFrame(
        {
            "group": group,
            "level": np.repeat(levels, p),
            "term": np.tile(list(modes.columns), nl),
            "ols": (ols + pop).ravel(),
            "conditional": (b + pop).ravel(),
            "population": np.tile(pop, nl),
        }
    )


def shrinkage(m, group: str | None = None, terms=None, ax=None):
    """How far the conditional estimates are pulled from the per-level fits.

    MixedModelsMakie's ``shrinkageplot`` and the sleepstudy figure of Bates'
    lme4 book: for two columns, each level's unshrunk (per-level
    least-squares) estimate as an open point, an arrow to its conditional
    estimate ``coef(m)``, and the population estimate (the fixed effects) as
    a cross; more than two columns give a panel per pair; one column a
    segment per level.

    Parameters
    ----------
    m : LmerResult
    group : str, optional
        Grouping factor (default: the first).
    terms : list of str, optional
        The columns to draw (default: all of the factor's).
    ax : Axes or sequence of Axes, optional

    Returns
    -------
    matplotlib Axes (one or two columns) or Figure (a panel per pair)

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> ax = m.plot.shrinkage()
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('(Intercept)', 'Days')
    """
    frame = shrinkage_frame(m, group)
    available = list(dict.fromkeys(frame["term"]))
    terms = check_terms(terms, available, "random-effect column")
    wide_ols = frame.pivot(index="level", columns="term", values="ols")
    wide_cond = frame.pivot(index="level", columns="term", values="conditional")
    levels = list(dict.fromkeys(frame["level"]))
    wide_ols, wide_cond = wide_ols.loc[levels], wide_cond.loc[levels]
    pop = frame.drop_duplicates("term").set_index("term")["population"]
    if len(terms) == 1:
        return _shrinkage_1d(
            new_axes(ax),
            wide_ols[terms[0]],
            wide_cond[terms[0]],
            pop[terms[0]],
            terms[0],
            frame["group"].iloc[0],
        )
    pairs = [(a, b) for i, a in enumerate(terms) for b in terms[i + 1 :]]
    if len(pairs) == 1 and not isinstance(ax, (list, tuple, np.ndarray)):
        axes, fig = [new_axes(ax, figsize=(5.0, 5.0))], None
    else:
        fig, axes = new_panels(len(pairs), ax=ax, panel_size=(4.0, 4.0))
    for a, (tx, ty) in zip(axes, pairs):
        _shrinkage_2d(
            a,
            wide_ols[[tx, ty]].to_numpy(),
            wide_cond[[tx, ty]].to_numpy(),
            pop[[tx, ty]].to_numpy(),
        )
        a.set_xlabel(tx)
        a.set_ylabel(ty)
    if fig is None:
        axes[0].set_title(frame["group"].iloc[0])
        return axes[0]
    fig.suptitle(frame["group"].iloc[0])
    return finish(fig)


def _shrinkage_2d(ax, ols, cond, pop):
    ok = np.isfinite(ols).all(axis=1)
    d = cond[ok] - ols[ok]
    ax.quiver(
        ols[ok, 0],
        ols[ok, 1],
        d[:, 0],
        d[:, 1],
        angles="xy",
        scale_units="xy",
        scale=1,
        color="0.45",
        width=0.005,
        headwidth=4,
        headlength=5,
        label="shrinkage",
    )
    ax.scatter(
        ols[ok, 0], ols[ok, 1], s=22, facecolors="none", edgecolors=POINT, label="per-level fit"
    )
    ax.scatter(cond[:, 0], cond[:, 1], s=16, color=INK, label="conditional estimate")
    ax.scatter(
        [pop[0]], [pop[1]], s=90, marker="+", color="#D55E00", linewidths=2, label="population"
    )
    ax.legend(fontsize="small", frameon=False)


def _shrinkage_1d(ax, ols, cond, pop, term, group):
    from matplotlib.collections import LineCollection

    order = np.argsort(cond.to_numpy(), kind="stable")
    ols, cond = ols.iloc[order], cond.iloc[order]
    y = np.arange(len(cond), dtype=float)
    ok = np.isfinite(ols.to_numpy())
    seg = np.stack(
        [
            np.column_stack([ols.to_numpy()[ok], y[ok]]),
            np.column_stack([cond.to_numpy()[ok], y[ok]]),
        ],
        axis=1,
    )
    ax.add_collection(LineCollection(seg, colors="0.45", linewidths=1.0))
    ax.scatter(
        ols.to_numpy()[ok], y[ok], s=22, facecolors="none", edgecolors=POINT, label="per-level fit"
    )
    ax.scatter(cond, y, s=16, color=INK, label="conditional estimate")
    ax.axvline(pop, color="#D55E00", lw=1.2, label="population")
    _level_axis(ax, list(cond.index), None)
    ax.set_xlabel(term)
    ax.set_ylabel(group)
    ax.legend(fontsize="small", frameon=False)
    return ax
