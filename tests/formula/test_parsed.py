"""Splitting formulas as lme4 does: bars, their expansions and names, errors that point."""

from __future__ import annotations

import pytest

from pymlm.errors import FormulaError
from pymlm.formula import deparse, parse_formula


def bars(formula):
    return [(b.lhs_text, b.group_name, b.group_factors) for b in parse_formula(formula).bars]


def caret_span(exc) -> tuple[int, int]:
    """(start, end) of the carets under the formula in an error message."""
    line = str(exc.value).splitlines()[-1][4:]
    start = line.index("^")
    return start, start + line.count("^")


@pytest.mark.parametrize(
    "formula, expected",
    [
        ("y ~ x + (1 + x | g)", [("1 + x", "g", ("g",))]),
        ("y ~ x + (x | g)", [("1 + x", "g", ("g",))]),
        ("y ~ x + (0 + x | g)", [("0 + x", "g", ("g",))]),
        ("y ~ x + (-1 + x | g)", [("0 + x", "g", ("g",))]),
        ("y ~ x + (x - 1 | g)", [("0 + x", "g", ("g",))]),
        ("y ~ (1 | g)", [("1", "g", ("g",))]),
        ("y ~ ((1 | g))", [("1", "g", ("g",))]),
        ("y ~ (x || g)", [("1", "g", ("g",)), ("0 + x", "g", ("g",))]),
        ("y ~ (0 + x + z || g)", [("0 + x", "g", ("g",)), ("0 + z", "g", ("g",))]),
        ("y ~ (1 || g)", [("1", "g", ("g",))]),
        ("y ~ (x * f || g)", [("1", "g", ("g",)), ("0 + x", "g", ("g",)), ("0 + f", "g", ("g",)),
                               ("0 + x:f", "g", ("g",))]),
        ("y ~ (1 | g1/g2)", [("1", "g2:g1", ("g2", "g1")), ("1", "g1", ("g1",))]),
        ("y ~ (1 | g1:g2)", [("1", "g1:g2", ("g1", "g2"))]),
        ("y ~ (1 | a/b/c)", [("1", "c:(b:a)", ("c", "b", "a")), ("1", "b:a", ("b", "a")),
                             ("1", "a", ("a",))]),
        ("y ~ (1 | a/(b:c))", [("1", "(b:c):a", ("b", "c", "a")), ("1", "a", ("a",))]),
        ("y ~ (1 | a:b/c)", [("1", "c:(a:b)", ("c", "a", "b")), ("1", "a:b", ("a", "b"))]),
        ("y ~ (x | a/b)", [("1 + x", "b:a", ("b", "a")), ("1 + x", "a", ("a",))]),
        ("y ~ (x || a/b)", [("1", "b:a", ("b", "a")), ("1", "a", ("a",)),
                            ("0 + x", "b:a", ("b", "a")), ("0 + x", "a", ("a",))]),
        ("y ~ (1 | g) + (1 | h) + (x | k)", [("1", "g", ("g",)), ("1", "h", ("h",)),
                                             ("1 + x", "k", ("k",))]),
    ],
)
def test_bars_expand_as_lme4(formula, expected):
    assert bars(formula) == expected


def test_fixed_part_offsets_and_smooths_are_separated():
    p = parse_formula("cbind(a, b - a) ~ x + offset(log(z)) + s(t, k = 5) + (1 | g) - 1")
    assert p.response_text == "cbind(a, b - a)"
    assert p.fixed_text == "x - 1"
    assert [deparse(o) for o in p.offsets] == ["log(z)"]
    assert [s.label for s in p.smooths] == ["s(t, k = 5)"]
    assert p.variables() == ["a", "b", "x", "z", "t", "g"]


def test_bar_left_side_keeps_formula_positions():
    p = parse_formula("y ~ (x * f || g)")
    lhs = p.bars[3].lhs
    assert deparse(lhs) == "0 + x:f"
    assert lhs.args[1].span == (5, 10)


@pytest.mark.parametrize(
    "formula, message, span",
    [
        ("y ~ x + (1 | g", r"unbalanced parentheses: this '\(' is never closed; add the missing '\)'", (8, 9)),
        ("y ~ x + 1 | g)", r"unbalanced parentheses: this '\)' has no matching '\('", (13, 14)),
        ("y ~ log(x + (1 | g)", r"unbalanced parentheses", (7, 8)),
        ("y ~ x + 1 | g", r"'\|' outside parentheses: write random-effects terms as \(lhs \| group\)", (10, 11)),
        ("y ~ x + x || g", r"'\|\|' outside parentheses", (10, 12)),
        ("y ~ x:(1 | g)", (r"the random-effects term \(1 \| g\) must be joined to the rest of the formula "
                           r"with '\+'"), (6, 13)),
        ("y ~ (x + (1 | g))", r"a random-effects bar must be the whole content of its parentheses", (10, 15)),
        ("y ~ (1 | g + h)", r"the right-hand side of '\|' must be a grouping factor", (9, 14)),
        ("y ~ (1 | log(g))", r"the right-hand side of '\|' must be a grouping factor", (9, 15)),
        ("y ~ (1 | a:(b/c))", r"a nested grouping \(a/b\) cannot be part of an interaction", (9, 16)),
        ("y ~ (0 | g)", r"this random-effects term has no columns", (4, 11)),
        ("y ~ (x - z | g)", r"only '- 1' or '\+ 0' may be subtracted", (9, 10)),
        ("y ~ x - (1 | g)", r"a random-effects term cannot be subtracted", (8, 15)),
        ("(1 | g) ~ x", r"a random-effects bar cannot be on the left of '~'", (1, 6)),
        ("y + x", r"the formula has no '~'", (0, 5)),
        ("y ~ (| g)", r"'\|' needs a left-hand side, as in \(1 \| group\)", (5, 6)),
        ("y ~ (1 |)", r"the operator '\|' has nothing on its right", (7, 8)),
        ("y ~ x + ()", r"unbalanced parentheses: this '\)' has no matching '\(' \(or an empty pair", (9, 10)),
        ("y ~ x (1 | g)", (r"a random-effects term cannot be an argument of x\(\); if 'x' is a column, "
                           r"a '\+' is missing before its '\('"), (4, 13)),
        ("y ~ x + (1 | g) (1 | h)", r"unexpected '\('", (16, 17)),
        ("y ~ offset(a, b)", r"offset\(\) takes exactly one argument", (4, 16)),
    ],
)
def test_formula_errors_mark_the_offending_part(formula, message, span):
    with pytest.raises(FormulaError, match=message) as info:
        parse_formula(formula)
    assert caret_span(info) == span
    assert str(info.value).splitlines()[-2] == "    " + formula
    assert isinstance(info.value, ValueError)


def test_not_a_string():
    with pytest.raises(FormulaError, match=r"the formula must be a string such as 'y ~ x \+ \(1 \| g\)'; got int"):
        parse_formula(3)
