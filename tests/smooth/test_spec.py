"""Reading s() and te() calls: options, defaults, labels and errors."""

import pytest

from pymlm.errors import FormulaError
from pymlm.formula import parse_formula
from pymlm.smooth import parse_smooth


def spec_of(text):
    return parse_smooth(parse_formula("y ~ " + text).smooths[0].node)


def test_s_defaults_and_options():
    s = spec_of("s(x0)")
    assert (s.function, s.terms, s.bs, s.k, s.by, s.fx, s.label) == ("s", ("x0",), ("tp",), (-1,), None, False, "s(x0)")
    s = spec_of('s(x, bs = "cr", k = 8, by = fac)')
    assert s.bs == ("cr",) and s.k == (8,) and s.by == "fac" and s.label == "s(x)"
    s = spec_of('s(x, z, k = 20, m = 2)')
    assert s.label == "s(x,z)" and s.m == (2,) and s.dim == 2
    s = spec_of('s(x, bs = "ps", m = c(3, 1))')
    assert s.m == ((3, 1),)
    s = spec_of('s(x, g, bs = "fs", xt = "cr")')
    assert s.bs == ("fs",) and s.xt == "cr"
    assert spec_of("s(log(x))").label == "s(log(x))"
    assert spec_of("s(x, fx = TRUE)").fx is True


def test_te_margins():
    s = spec_of("te(x1, x2)")
    assert s.label == "te(x1,x2)" and s.bs == ("cr", "cr") and s.k == (-1, -1)
    s = spec_of('te(x1, x2, bs = c("ps", "cr"), k = c(6, 4))')
    assert s.bs == ("ps", "cr") and s.k == (6, 4)
    assert spec_of("te(a, b, k = 7)").k == (7, 7)


@pytest.mark.parametrize(
    "text, message",
    [
        ('s(x, bs = "xx")', r"unknown basis 'xx' in s\(\): s\(x, bs = \"xx\"\); use one of 'cr', 'tp'"),
        ('s(x, knots = 3)', r"unknown option 'knots' in s\(x, knots = 3\); s\(\) takes k, bs, m, by, fx, xt"),
        ("s(x, k = 2.5)", r"k in s\(x, k = 2.5\) must be a positive whole number"),
        ("s(x, k = a)", r"must be a literal value"),
        ("s()", r"s\(\) has no covariate"),
        ("s(x, x)", r"repeats a covariate"),
        ("t2(x, z)", r"t2\(\) tensor products are not supported; use te\(\)"),
        ("t2(x, z)", r"t2\(\) tensor products are not supported"),
        ('s(x, z, bs = "cr")', r"the 'cr' basis is one-dimensional.*use bs = \"tp\" or te\(\)"),
        ("te(x)", r"te\(x\) has one covariate; use s\(\)"),
        ('te(x, z, k = c(3, 4, 5))', r"k of te\(x, z, k = c\(3, 4, 5\)\) has 3 values for 2 margins"),
        ("s(x, id = 1)", r"linked smoothing parameters"),
        ('s(x, xt = "cr")', r"xt in .* is only used to name the base basis of an 'fs' term"),
    ],
)
def test_bad_smooth_calls_are_formula_errors(text, message):
    with pytest.raises(FormulaError, match=message):
        spec_of(text)


def test_error_marks_the_offending_argument():
    with pytest.raises(FormulaError) as info:
        spec_of('s(x, bs = "xx")')
    lines = str(info.value).splitlines()
    caret = lines[-1]
    formula = lines[-2]
    assert formula.strip() == 'y ~ s(x, bs = "xx")'
    start = caret.index("^")
    assert formula[start:start + 4] == '"xx"'
