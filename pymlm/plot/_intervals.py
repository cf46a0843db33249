"""Forest plot of confidence intervals from several methods, side by side."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import OptionError, option_error
from ._style import INK, colors, finish, new_panels

__all__ = ["intervals", "intervals_frame"]

_PANELS = {"variance": "variance components", "fixed": "fixed effects"}


def _is_variance(name: str) -> bool:
    return name.startswith(".sig")


def _as_mapping(cis) -> dict:
    if isinstance(cis, pd.DataFrame):
        return {str(cis.attrs.get("method", "interval")): cis}
    if not isinstance(cis, dict) or not cis:
        raise OptionError(
            "intervals needs a dict of interval tables, e.g. {'profile': m.confint('profile'), "
            f"'boot': m.confint('boot')}}; got {type(cis).__name__}"
        )
    for k, v in cis.items():
        if not isinstance(v, pd.DataFrame) or v.shape[1] < 2:
            raise OptionError(
                f"intervals: the entry {k!r} must be an interval table (a DataFrame with the "
                f"lower and upper bounds as its first two columns); got {type(v).__name__}"
            )
    return dict(cis)


def _estimates_of(ci: pd.DataFrame):
    est = ci.attrs.get("estimates")
    if est is None and "profile" in ci.attrs:
        est = getattr(ci.attrs["profile"], "estimates", None)
    return None if est is None else pd.Series(est)


def _as_series(values, what):
    if values is None:
        return None
    if isinstance(values, dict):
        return pd.Series(values, dtype=float)
    if isinstance(values, pd.Series):
        return values.astype(float)
    raise OptionError(
        f"{what} must be a dict or a pandas Series keyed by parameter name; got "
        f"{type(values).__name__}"
    )


def intervals_frame(cis, truth=None, estimates=None) -> pd.DataFrame:
    """The intervals :func:`intervals` draws, one row per parameter and method.

    Parameters
    ----------
    cis : dict of str -> DataFrame, or DataFrame
        Interval tables as :meth:`pymlm.LmerResult.confint` returns them
        (lower and upper bounds in the first two columns, indexed by
        parameter), keyed by the name to show (``"profile"``, ``"boot"``...).
    truth : dict or Series, optional
        True values by parameter name (a simulation's), drawn as markers.
    estimates : dict or Series, optional
        Point estimates by parameter name, shown for every method; by default
        each table's own (``attrs["estimates"]`` of the BLB and split
        intervals, the ML estimates of a profile), else none.

    Returns
    -------
    DataFrame
        ``parameter`` (a Categorical in the order of the tables),
        ``method``, ``panel`` (``"variance"`` for ``.sigNN``/``.sigma``,
        ``"fixed"`` otherwise), ``estimate``, ``lower``, ``upper``,
        ``width``, ``truth``. Rows without any finite bound (the Wald
        method's variance components) are left out.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> f = ml.plot.intervals_frame({"wald": m.confint("wald")}, estimates=m.fixef)
    >>> f[["parameter", "estimate", "width"]].round(2).to_numpy().tolist()
    [['(Intercept)', 251.41, 26.75], ['Days', 10.47, 6.06]]
    """
    cis = _as_mapping(cis)
    truth = _as_series(truth, "truth")
    given = _as_series(estimates, "estimates")
    rows = []
    order: list[str] = []
    for method, ci in cis.items():
        est = given if given is not None else _estimates_of(ci)
        lo = ci.iloc[:, 0].astype(float)
        hi = ci.iloc[:, 1].astype(float)
        for name in ci.index:
            a, b = float(lo[name]), float(hi[name])
            if not (np.isfinite(a) or np.isfinite(b)):
                continue
            if name not in order:
                order.append(name)
            e = float(est[name]) if est is not None and name in est.index else np.nan
            t = float(truth[name]) if truth is not None and name in truth.index else np.nan
            rows.append(
                (
                    str(name),
                    str(method),
                    "variance" if _is_variance(str(name)) else "fixed",
                    e,
                    a,
                    b,
                    b - a,
                    t,
                )
            )
    out = pd.DataFrame(
        rows,
        columns=["parameter", "method", "panel", "estimate", "lower", "upper", "width", "truth"],
    )
    if truth is not None:
        unknown = [t for t in truth.index if t not in order]
        if unknown:
            raise OptionError(
                f"truth names parameters without intervals: {unknown}; the intervals are of {order}"
            )
    out["parameter"] = pd.Categorical(out["parameter"], categories=[str(n) for n in order])
    return out


def intervals(
    cis, truth=None, estimates=None, panels: str = "kind", ncols: int | None = None, ax=None
):
    """Forest plot of intervals by method: variance components and fixed effects in two panels.

    Each parameter has a row; the methods' intervals are dodged within it
    (one colour each, with the estimate as a point when known), and a
    vertical black mark shows the true value when ``truth`` is given.

    Parameters
    ----------
    cis, truth, estimates
        See :func:`intervals_frame`.
    panels : {"kind", "parameter"}
        Two panels, the variance components and the fixed effects (``"kind"``),
        or one panel per parameter, each on its own scale (``"parameter"``:
        for parameters of very different sizes).
    ncols : int, optional
        Panels per row with ``panels="parameter"`` (default 3).
    ax : sequence of Axes, optional
        One Axes per panel.

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pymlm as ml
    >>> m = ml.lmer("Yield ~ 1 + (1 | Batch)", ml.datasets.load("Dyestuff"))
    >>> cis = {"wald": m.confint("wald"), "profile": m.confint("profile", progress=False)}
    >>> fig = ml.plot.intervals(cis)
    >>> [a.get_title() for a in fig.axes]
    ['variance components', 'fixed effects']
    """
    frame = intervals_frame(cis, truth, estimates)
    if frame.empty:
        raise OptionError("no interval has a finite bound to draw")
    if panels not in ("kind", "parameter"):
        raise option_error("panels", ["kind", "parameter"], panels)
    methods = list(dict.fromkeys(frame["method"]))
    cols = dict(zip(methods, colors(len(methods))))
    k = len(methods)
    dodge = {mth: (i - (k - 1) / 2) * (0.7 / max(k, 1)) for i, mth in enumerate(methods)}
    if panels == "kind":
        groups = [
            (_PANELS[p], frame[frame["panel"] == p])
            for p in ("variance", "fixed")
            if (frame["panel"] == p).any()
        ]
        height = 0.9 + 0.45 * max(sub["parameter"].nunique() for _, sub in groups)
        fig, axes = new_panels(len(groups), ncols=1, ax=ax, panel_size=(6.0, height))
    else:
        groups = [
            (str(p), frame[frame["parameter"] == p]) for p in frame["parameter"].cat.categories
        ]
        fig, axes = new_panels(len(groups), ncols=ncols, ax=ax, panel_size=(3.6, 0.9 + 0.3 * k))
    for a, (title, sub) in zip(axes, groups):
        params = [p for p in frame["parameter"].cat.categories if p in set(sub["parameter"])]
        _forest(a, sub, params, methods, dodge, cols)
        if panels == "kind":
            a.set_yticks(np.arange(len(params)), labels=params)
        else:
            a.set_yticks([dodge[mth] for mth in methods], labels=methods)
        a.set_ylim(len(params) - 0.5, -0.5)  # the first parameter (method) on top
        a.set_title(title)
    handles, labels = axes[0].get_legend_handles_labels()
    for a in axes[1:]:
        for h, lab in zip(*a.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    # beside the panels, never over them: right of the first panel (two stacked panels) or
    # of the last one (a grid of parameters, whose last row usually has a free cell)
    (axes[0] if panels == "kind" else axes[-1]).legend(
        handles,
        labels,
        fontsize="small",
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    return finish(fig)


def _forest(a, sub, params, methods, dodge, cols):
    """One panel: a segment (and point) per method and parameter, the truth as a vertical mark."""
    from matplotlib.collections import LineCollection

    pos = {p: i for i, p in enumerate(params)}
    for mth in methods:
        s = sub[sub["method"] == mth]
        if s.empty:
            continue
        y = np.array([pos[p] for p in s["parameter"]], dtype=float) + dodge[mth]
        lo = np.where(np.isfinite(s["lower"]), s["lower"], s["estimate"])
        hi = np.where(np.isfinite(s["upper"]), s["upper"], s["estimate"])
        seg = np.stack([np.column_stack([lo, y]), np.column_stack([hi, y])], axis=1)
        a.add_collection(LineCollection(seg, colors=cols[mth], linewidths=2.0, label=mth))
        if s["estimate"].notna().any():
            a.scatter(
                s["estimate"], y, s=16, color=cols[mth], edgecolors=INK, linewidths=0.5, zorder=3
            )
    tr = sub.drop_duplicates("parameter")
    tr = tr[tr["truth"].notna()]
    if len(tr):
        yt = np.array([pos[p] for p in tr["parameter"]], dtype=float)
        seg = np.stack(
            [np.column_stack([tr["truth"], yt - 0.42]), np.column_stack([tr["truth"], yt + 0.42])],
            axis=1,
        )
        a.add_collection(LineCollection(seg, colors=INK, linewidths=1.5, label="truth"))
    a.autoscale_view(scaley=False)
