"""The one progress bar of pymlm: shown only for runs that last more than a couple of seconds."""

from __future__ import annotations

__all__ = ["DELAY_SECONDS", "progress_bar"]

#: A bar appears only once a run has lasted this long (tqdm's ``delay``).
DELAY_SECONDS = 2.0


def progress_bar(total: int | None, desc: str, enabled: bool = True):
    """A tqdm bar over ``total`` steps that stays hidden for the first :data:`DELAY_SECONDS`.

    Parameters
    ----------
    total : int or None
        Number of steps (None when unknown, e.g. optimizer iterations).
    desc : str
        Label shown before the bar.
    enabled : bool
        False hides the bar whatever the run time (``progress=False``).

    Returns
    -------
    tqdm.tqdm
        Use ``.update(k)`` and ``.close()`` (or a ``with`` block).

    Examples
    --------
    >>> with progress_bar(3, "replicates") as bar:
    ...     for _ in range(3):
    ...         _ = bar.update(1)
    >>> bar.n
    3
    """
    if enabled:
        from tqdm.auto import tqdm
    else:
        # tqdm.auto warns on import in a Jupyter kernel without ipywidgets (TqdmWarning:
        # IProgress not found), a line of stderr on every notebook page that asked for no bar
        from tqdm.std import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, delay=DELAY_SECONDS)
