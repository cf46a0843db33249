"""Input checks shared by the API functions."""

from __future__ import annotations

import difflib
import numbers
import os

import numpy as np
import pandas as pd

from .errors import DataError, FormulaError, OptionError, option_error

__all__ = [
    "as_frame",
    "check_bool",
    "check_choice",
    "check_formula",
    "check_level",
    "check_n_jobs",
    "check_positive_int",
    "check_seed",
    "seed_sequence",
    "unknown_column_error",
]


def as_frame(data, what: str = "data") -> pd.DataFrame:
    """Accept a pandas DataFrame, a pyarrow Table or a dict of columns.

    Raises
    ------
    DataError
        Anything else, or an empty frame.
    """
    if isinstance(data, pd.DataFrame):
        frame = data
    elif hasattr(data, "to_pandas") and hasattr(data, "schema"):  # pyarrow.Table
        frame = data.to_pandas()
    elif isinstance(data, dict):
        frame = _dict_frame(data, what)
    else:
        raise DataError(
            f"{what} must be a pandas DataFrame, a pyarrow Table or a dict of columns; "
            f"got {type(data).__name__}"
        )
    if frame.shape[0] == 0:
        raise DataError(f"{what} has no rows")
    if not frame.columns.is_unique:
        dup = frame.columns[frame.columns.duplicated()].unique().tolist()
        raise DataError(f"{what} has duplicated column names {dup}; rename them")
    return frame


def _dict_frame(data: dict, what: str) -> pd.DataFrame:
    """A dict of columns as a DataFrame; columns of different lengths are named."""
    lengths = {}
    for key, value in data.items():
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            lengths[key] = None  # a scalar: pandas would broadcast it, or fail without an index
        else:
            lengths[key] = len(value)
    sized = {k: v for k, v in lengths.items() if v is not None}
    if not sized and data:
        raise DataError(
            f"{what} is a dict of single values ({', '.join(repr(k) for k in list(data)[:5])}); "
            "give one list or array of values per column, one value per row"
        )
    if len(set(sized.values())) > 1:
        shown = ", ".join(f"{k!r} has {v}" for k, v in list(sized.items())[:8])
        more = ", ..." if len(sized) > 8 else ""
        raise DataError(
            f"the columns of {what} have different lengths ({shown}{more}); "
            "every column needs one value per row"
        )
    try:
        return pd.DataFrame(data)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} cannot be made into a table of columns: {exc}") from exc


def check_formula(formula):
    """Return ``formula`` if it is a string; the one type check of every entry point.

    Raises
    ------
    FormulaError
        Anything but a string (``None``, a number, a list of formulas...).

    Examples
    --------
    >>> check_formula("y ~ x + (1 | g)")
    'y ~ x + (1 | g)'
    """
    if isinstance(formula, str):
        return str(formula)
    hint = ""
    if isinstance(formula, (list, tuple)) and formula and all(isinstance(f, str) for f in formula):
        hint = "; fit one formula at a time"
    raise FormulaError(
        f"the formula must be a string such as 'y ~ x + (1 | g)'; got {type(formula).__name__} "
        f"{_short_repr(formula)}{hint}"
    )


def _short_repr(value, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def unknown_column_error(name: str, where: str, columns, formula: str | None = None,
                         span: tuple[int, int] | None = None, data: str = "the data") -> DataError:
    """A DataError naming the column, where it is used, and the closest names.

    Parameters
    ----------
    name : str
        The missing column.
    where : str
        Where it is used, e.g. ``"term (Days | Subjct)"`` or ``"weights"``.
    columns : sequence
        The data's columns, searched for close names.
    formula, span : optional
        Mark the name in the formula (see :class:`pymlm.errors.PymlmError`).
    data : str
        What is searched, e.g. ``"the new data"``.

    Examples
    --------
    >>> str(unknown_column_error("Subjct", "term (Days | Subjct)", ["Reaction", "Subject"]))
    "column 'Subjct' in term (Days | Subjct) is not in the data; did you mean 'Subject'?"
    """
    columns = [str(c) for c in columns]
    close = difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
    if not close:
        lower = {c.lower(): c for c in columns}
        close = [lower[c] for c in difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.6)]
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else (
        f"; {data} has columns {columns[:12]}{'...' if len(columns) > 12 else ''}"
    )
    return DataError(f"column {name!r} in {where} is not in {data}{hint}", formula, span)


def check_choice(name: str, value, allowed):
    """Return ``value`` if it is in ``allowed`` (case-insensitive for strings)."""
    if isinstance(value, str):
        for a in allowed:
            if isinstance(a, str) and a.lower() == value.lower():
                return a
    elif value in allowed:
        return value
    raise option_error(name, allowed, value)


def check_level(level) -> float:
    """A confidence level strictly between 0 and 1."""
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < float(level) < 1:
        raise OptionError(f"level must be a number strictly between 0 and 1, such as 0.95; got {level!r}")
    return float(level)


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)) or value < minimum:
        raise OptionError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def check_bool(name: str, value) -> bool:
    """``value`` if it is True or False (``"no"`` is refused, not read as truthy)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise OptionError(f"{name} must be True or False; got {value!r}")


def check_seed(seed, name: str = "seed"):
    """A random seed: ``None``, a non-negative integer, a numpy ``SeedSequence`` or ``Generator``.

    ``None`` draws fresh entropy; the same integer or ``SeedSequence`` gives
    the same draws; a ``Generator`` is used as it stands (its state advances).

    Returns
    -------
    None, int, numpy.random.SeedSequence or numpy.random.Generator

    Raises
    ------
    OptionError
        A string, a negative or non-integer number, anything else.

    Examples
    --------
    >>> check_seed(7), check_seed(None)
    (7, None)
    """
    if seed is None or isinstance(seed, (np.random.SeedSequence, np.random.Generator)):
        return seed
    if isinstance(seed, (numbers.Integral, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        if seed >= 0:
            return int(seed)
    raise OptionError(
        f"{name} must be None, a non-negative integer, a numpy SeedSequence or a numpy Generator; "
        f"got {_short_repr(seed)}"
    )


def seed_sequence(seed) -> np.random.SeedSequence:
    """The root ``SeedSequence`` of a validated seed (see :func:`check_seed`).

    A ``SeedSequence`` is copied, so spawning children from the root does
    not change the caller's object and the same seed gives the same streams
    every time; a ``Generator`` gives the root from its next draws.
    """
    seed = check_seed(seed)
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key,
                                      pool_size=seed.pool_size)
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(seed.integers(0, 2**63, size=4, dtype=np.uint64).tolist())
    return np.random.SeedSequence(seed)


def check_n_jobs(n_jobs, name: str = "n_jobs") -> int:
    """The number of worker processes: a positive integer, or -1 for one per CPU (as joblib).

    Returns
    -------
    int
        The number of processes (``os.cpu_count()`` for -1).

    Raises
    ------
    OptionError
        0, other negative numbers, non-integers, booleans.

    Examples
    --------
    >>> check_n_jobs(2)
    2
    """
    integer = isinstance(n_jobs, (numbers.Integral, np.integer))
    if integer and not isinstance(n_jobs, (bool, np.bool_)):
        if n_jobs >= 1:
            return int(n_jobs)
        if n_jobs == -1:
            return os.cpu_count() or 1
    raise OptionError(
        f"{name} must be an integer >= 1 (the number of processes) or -1 (one per CPU); "
        f"got {_short_repr(n_jobs)}"
    )
