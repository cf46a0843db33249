"""The R expression parser: precedence, deparsing as R does, Python rendering."""

from __future__ import annotations

import pytest

from pymlm.errors import FormulaError
from pymlm.formula import deparse, names_in, parse_expression, to_python


@pytest.mark.parametrize(
    "source, expected",
    [
        ("log(x+1)", "log(x + 1)"),
        ("I(x ^ 2)", "I(x^2)"),
        ("I(z^-1)", "I(z^-1)"),
        ("a:b:c", "a:b:c"),
        ("a:(b:c)", "a:(b:c)"),
        ("poly(x,2)", "poly(x, 2)"),
        ("bs(x, df=3)", "bs(x, df = 3)"),
        ("I(x>0)", "I(x > 0)"),
        ("`my var`", "`my var`"),
        ("a - (b - c)", "a - (b - c)"),
        ("x**2", "x^2"),
        ("exp(x / 10)", "exp(x/10)"),
        ("a %in% b", "a %in% b"),
        ("a %% b", "a%%b"),
        ("a * b", "a * b"),
    ],
)
def test_deparse_as_r(source, expected):
    assert deparse(parse_expression(source)) == expected


def test_precedence():
    # ^ binds tighter than unary minus, : tighter than * and /, which bind tighter than + and -
    assert deparse(parse_expression("-a^2")) == "-a^2"
    node = parse_expression("a + b:c * d")
    assert node.value == "+" and node.args[1].value == "*" and node.args[1].args[0].value == ":"
    assert parse_expression("y ~ a | b").value == "~"
    assert parse_expression("a ^ b ^ c").args[1].value == "^"  # right associative


def test_to_python():
    assert to_python(parse_expression("I(x^2)")) == "I(x ** 2)"
    assert to_python(parse_expression("log(`my var`)")) == "log(`my var`)"
    assert to_python(parse_expression("pmax(x, TRUE)")) == "pmax(x, True)"


def test_names_in():
    assert [n.value for n in names_in(parse_expression("log(x + y) ~ s(z, k = w)"))] == ["x", "y", "z", "w"]


@pytest.mark.parametrize(
    "source, message, caret",
    [
        ("y ~ x $ 1", r"unexpected '\$'", 6),
        ("y ~ x #", r"unexpected character '#'", 6),
        ("y ~ x +", r"the operator '\+' has nothing on its right", 6),
        ("", r"the formula is empty", None),
    ],
)
def test_tokenizer_and_parser_errors(source, message, caret):
    with pytest.raises(FormulaError, match=message) as info:
        parse_expression(source)
    if caret is not None:
        assert str(info.value).splitlines()[-1].index("^") - 4 == caret
