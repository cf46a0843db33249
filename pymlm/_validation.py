"""Input checks shared by the API functions."""

from __future__ import annotations

import difflib
import numbers

import numpy as np
import pandas as pd

from .errors import DataError, OptionError, option_error

__all__ = [
    "as_frame",
    "check_choice",
    "check_level",
    "check_positive_int",
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
        frame = pd.DataFrame(data)
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


def unknown_column_error(name: str, where: str, columns, formula: str | None = None,
                         span: tuple[int, int] | None = None) -> DataError:
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
        f"; the data has columns {columns[:12]}{'...' if len(columns) > 12 else ''}"
    )
    return DataError(f"column {name!r} in {where} is not in the data{hint}", formula, span)


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
