"""The datasets bundled with pymlm.

The CSV files live in the project's top-level ``data/`` folder, which the
wheel ships as ``pymlm/data``. Factors come back as pandas Categoricals in
R's level order (``factor_levels.json``), ordered where R's are ordered, so
that contrasts, baselines and the order of random effects match lme4.

Examples
--------
>>> import pymlm as ml
>>> df = ml.datasets.load("sleepstudy")
>>> df.shape
(180, 3)
>>> list(df["Subject"].cat.categories[:3])
['308', '309', '310']
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from pathlib import Path

import pandas as pd

from .errors import DataError

__all__ = ["data_dir", "load", "names"]


def data_dir() -> Path:
    """The folder that holds the bundled CSV files.

    Returns
    -------
    pathlib.Path
        ``pymlm/data`` inside an installed wheel, or the top-level ``data/``
        folder of a source checkout.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "data", here.parent / "data"):
        if (candidate / "factor_levels.json").is_file():
            return candidate
    raise DataError(
        "cannot find pymlm's bundled data folder (looked in "
        f"{here / 'data'} and {here.parent / 'data'}); reinstall pymlm"
    )


@lru_cache(maxsize=1)
def _levels() -> dict:
    return json.loads((data_dir() / "factor_levels.json").read_text())


def names() -> list[str]:
    """Names of the bundled datasets, sorted case-insensitively.

    Examples
    --------
    >>> "Penicillin" in names()
    True
    """
    return sorted((p.stem for p in data_dir().glob("*.csv")), key=str.lower)


def _resolve(name: str) -> str:
    available = names()
    if name in available:
        return name
    by_lower = {n.lower(): n for n in available}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(by_lower[c]) for c in close)}?" if close else "."
    raise DataError(
        f"no bundled dataset named {name!r}{hint} Available: {', '.join(available)}"
    )


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset as a pandas DataFrame.

    Parameters
    ----------
    name : str
        Dataset name, e.g. ``"sleepstudy"`` or ``"InstEval"``; case is ignored.

    Returns
    -------
    pandas.DataFrame
        Factors as Categoricals in R's level order (ordered where R's are).

    Raises
    ------
    DataError
        The name is not one of :func:`names` (the message suggests close
        names and lists the available ones).

    Examples
    --------
    >>> load("cbpp")["herd"].cat.categories[:3].tolist()
    ['1', '2', '3']
    """
    stem = _resolve(name)
    df = pd.read_csv(data_dir() / f"{stem}.csv")
    for column, spec in _levels().get(stem, {}).items():
        if column not in df.columns:
            continue
        categories = [str(level) for level in spec["levels"]]
        values = df[column].astype("string")
        cat = pd.Categorical(values, categories=categories, ordered=bool(spec.get("ordered")))
        lost = values.notna().to_numpy() & (cat.codes < 0)
        if lost.any():
            raise DataError(
                f"the bundled {stem}.csv has values of {column!r} that are not among its levels in "
                f"factor_levels.json (e.g. {values[lost].iloc[0]!r}); reinstall pymlm"
            )
        df[column] = cat
    return df
