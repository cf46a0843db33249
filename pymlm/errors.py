"""Exceptions and warnings raised by pymlm.

Every exception subclasses the matching builtin, so ``except ValueError``
keeps working, and carries a message that says what is wrong, where (term,
column or grouping factor) and what to do.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "FormulaError",
    "MissingDataWarning",
    "OptionError",
    "PymlmError",
    "PymlmInternalWarning",
    "PymlmWarning",
    "RankDeficiencyWarning",
    "SingularFitWarning",
    "warn",
]


def mark_span(message: str, formula: str | None, span: tuple[int, int] | None) -> str:
    """``message`` followed by the formula and carets under ``span``.

    Examples
    --------
    >>> print(mark_span("no such column", "y ~ xx", (4, 6)))
    no such column
        y ~ xx
            ^^
    """
    if formula is None or span is None:
        return message
    start, end = span
    start = max(0, min(start, len(formula)))
    end = max(start + 1, min(end, len(formula)))
    return f"{message}\n    {formula}\n    {' ' * start}{'^' * (end - start)}"


class PymlmError(Exception):
    """Base class of every error pymlm raises on purpose.

    Parameters
    ----------
    message : str
        What is wrong and what to do.
    formula : str, optional
        The formula; when given with ``span`` the message gains a line that
        marks the offending part with carets.
    span : tuple of int, optional
        ``(start, end)`` character offsets into ``formula``.
    """

    def __init__(self, message: str = "", formula: str | None = None,
                 span: tuple[int, int] | None = None):
        self.formula = formula
        self.span = span
        super().__init__(mark_span(message, formula, span))


class FormulaError(PymlmError, ValueError):
    """The formula cannot be parsed or does not fit the data."""


class DataError(PymlmError, ValueError):
    """The data cannot serve the model (missing column, wrong type, too few levels...).

    When the problem is tied to a part of the formula (an unknown column, a
    factor with one level), ``formula`` and ``span`` mark it.
    """


class OptionError(PymlmError, ValueError):
    """A keyword argument has a value outside what is allowed."""


class PymlmWarning(UserWarning):
    """Base class of pymlm's warnings."""


class ConvergenceWarning(PymlmWarning):
    """The optimizer stopped without meeting the convergence checks."""


class SingularFitWarning(PymlmWarning):
    """The estimated random-effects covariance is singular (on the boundary)."""


class RankDeficiencyWarning(PymlmWarning):
    """Fixed-effect columns were dropped because the model matrix is rank deficient."""


class MissingDataWarning(PymlmWarning):
    """Rows with missing values were dropped."""


class PymlmInternalWarning(PymlmWarning):
    """Something that should not happen; the test suite turns it into an error."""


def option_error(name: str, allowed, got) -> OptionError:
    """Build the standard message for a bad keyword value.

    Examples
    --------
    >>> str(option_error("method", ["wald", "profile"], "walt"))
    "method must be one of 'wald', 'profile'; got 'walt'"
    """
    if isinstance(allowed, str):
        what = allowed
    else:
        what = "one of " + ", ".join(repr(a) for a in allowed)
    return OptionError(f"{name} must be {what}; got {got!r}")


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def warn(message: str, category: type[Warning] = PymlmWarning) -> None:
    """Issue a warning attributed to the first caller outside the pymlm package.

    Every pymlm warning goes through here, so that it points at the user's
    line (``m = ml.lmer(...)``, ``m.confint(...)``) whatever the route into
    the package: a fixed ``stacklevel`` would point inside pymlm whenever a
    public function is reached through another one (``summary`` ->
    ``confint`` -> ``profile``).

    Parameters
    ----------
    message : str
        What happened and what to do.
    category : type
        A subclass of :class:`PymlmWarning`.
    """
    level = 2
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE + os.sep):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
