"""What every plot shares: the lazy matplotlib import, the palette, panels.

matplotlib is an optional dependency (the ``plot`` extra); it is imported
only when something is drawn, so the data steps (``*_frame``) and
``import pymlm`` work without it.
"""

from __future__ import annotations

import numpy as np

from ..errors import OptionError

__all__ = ["OKABE_ITO", "colors", "new_axes", "new_panels", "pyplot"]

#: Okabe & Ito's colour-blind safe palette (orange, sky blue, bluish green,
#: yellow, blue, vermillion, reddish purple, black)
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")

#: the colour of estimates and reference lines
INK = "#000000"
#: the colour of intervals and bands
BAND = "#56B4E9"
#: the colour of data points
POINT = "#0072B2"


def pyplot():
    """``matplotlib.pyplot``, or an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("pymlm's plots need matplotlib: pip install 'pymlm[plot]'") from exc
    return plt


def colors(n: int) -> list[str]:
    """``n`` colours of the Okabe-Ito palette, black last, recycled when ``n > 8``."""
    order = OKABE_ITO[:7] if n < 8 else OKABE_ITO
    return [order[i % len(order)] for i in range(n)]


def new_axes(ax=None, figsize=(5.0, 4.0)):
    """``ax``, or the Axes of a new figure."""
    if ax is not None:
        if not hasattr(ax, "plot") or not hasattr(ax, "figure"):
            raise OptionError(f"ax must be a matplotlib Axes; got {type(ax).__name__}")
        return ax
    plt = pyplot()
    _, ax = plt.subplots(figsize=figsize)
    return ax


def new_panels(
    n: int, ncols: int | None = None, ax=None, panel_size=(3.6, 3.2), sharex=False, sharey=False
):
    """A figure with ``n`` panels; returns ``(fig, [Axes] * n)``, unused panels hidden.

    Parameters
    ----------
    n : int
        Panels needed.
    ncols : int, optional
        Panels per row (default: all in one row up to 3).
    ax : sequence of Axes, optional
        Draw into these instead of a new figure (at least ``n`` of them).
    """
    if ax is not None:
        axes = list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) < n or not all(hasattr(a, "plot") for a in axes):
            raise OptionError(
                f"ax must be a sequence of at least {n} matplotlib Axes (one per panel); got {ax!r}"
            )
        return axes[0].figure, axes[:n]
    plt = pyplot()
    nc = max(1, min(n, 3 if ncols is None else int(ncols)))
    nr = int(np.ceil(n / nc))
    fig, grid = plt.subplots(
        nr,
        nc,
        figsize=(panel_size[0] * nc, panel_size[1] * nr),
        squeeze=False,
        sharex=sharex,
        sharey=sharey,
    )
    axes = list(grid.ravel())
    for a in axes[n:]:
        a.set_visible(False)
    return fig, axes[:n]


def finish(fig):
    """Tight layout, quietly (a layout that cannot be tightened is drawn as it is)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig.tight_layout()
    return fig
