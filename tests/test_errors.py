"""Exceptions: builtin bases, carets under the formula, option messages."""

from __future__ import annotations

import pickle

import pytest

from pymlm.errors import DataError, FormulaError, OptionError, PymlmError, option_error


def test_exceptions_subclass_the_matching_builtin():
    for cls in (FormulaError, DataError, OptionError):
        assert issubclass(cls, PymlmError) and issubclass(cls, ValueError)


def test_carets_mark_the_span():
    err = FormulaError("bad term", "y ~ x + (1 | g", (8, 9))
    assert str(err) == "bad term\n    y ~ x + (1 | g\n            ^"
    assert (err.formula, err.span) == ("y ~ x + (1 | g", (8, 9))
    assert str(DataError("no column", "y ~ xx", (4, 6))).splitlines()[-1] == "        ^^"


def test_span_is_clipped_and_never_empty():
    assert str(FormulaError("m", "y ~ x", (5, 5))).splitlines()[-1] == "    " + " " * 5 + "^"
    assert str(FormulaError("m", "y ~ x", (-3, 99))).splitlines()[-1] == "    ^^^^^"


def test_without_formula_the_message_is_unchanged():
    assert str(DataError("plain")) == "plain"
    assert str(FormulaError("plain", "y ~ x")) == "plain"


def test_errors_pickle():
    err = pickle.loads(pickle.dumps(FormulaError("bad", "y ~ (", (4, 5))))
    assert isinstance(err, FormulaError) and "^" in str(err)


def test_option_error_message():
    assert str(option_error("method", ["wald", "profile"], "walt")) == (
        "method must be one of 'wald', 'profile'; got 'walt'"
    )
    with pytest.raises(OptionError, match=r"REML must be a bool; got 'yes'"):
        raise option_error("REML", "a bool", "yes")
