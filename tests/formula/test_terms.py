"""R's term expansion (``terms.formula``) against R's own term labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymlm.errors import FormulaError
from pymlm.formula import expand_terms, parse_expression, parse_formula

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "design_cases.json"
TERM_CASES = json.loads(REFERENCE.read_text())["term_cases"]


def _expand(rhs: str):
    return expand_terms(parse_formula("y " + rhs).fixed_terms)


@pytest.mark.parametrize("case", TERM_CASES, ids=[c["formula"] for c in TERM_CASES])
def test_term_labels_match_r(case):
    tl = _expand(case["formula"])
    labels = case["labels"] if isinstance(case["labels"], list) else [case["labels"]]
    assert tl.labels == labels
    assert tl.intercept is case["intercept"]


def test_variables_in_order_of_appearance():
    tl = _expand("~ x:f + f + log(z)")
    assert [v.text for v in tl.variables] == ["x", "f", "log(z)"]
    assert tl.labels == ["f", "log(z)", "x:f"]


@pytest.mark.parametrize(
    "rhs, term, variable, contrasts",
    [
        ("~ x * f", 2, 1, True),       # x:f after x: f by contrasts
        ("~ f:x", 0, 0, False),        # no margin x: f by indicators
        ("~ f + f:o", 1, 0, False),    # f:o has margin f for o, not o for f
        ("~ f + f:o", 1, 1, True),
        ("~ f", 0, 0, True),           # alone: contrasts (the intercept rule is applied later)
        ("~ a + b + a:b:c", 2, 2, False),
    ],
)
def test_contrast_or_indicator_rule(rhs, term, variable, contrasts):
    assert _expand(rhs).contrast_coded(term, variable) is contrasts


@pytest.mark.parametrize(
    "rhs, message",
    [
        ("~ x + 2", r"the number 2 cannot be a term"),
        ("~ (a + b)^x", r"power of a formula term must be a positive whole number"),
        ("~ (a + b)^0", r"power of a formula term must be a positive whole number"),
        ("~ a + .", r"'\.' \(all other columns\) is not supported"),
        ("~ a == b", r"'==' is not a formula operator; wrap arithmetic in I\(\), e\.g\. I\(a == b\)"),
        ("~ a + 'b'", r"a string cannot be a term"),
    ],
)
def test_bad_terms(rhs, message):
    with pytest.raises(FormulaError, match=message) as info:
        _expand(rhs)
    assert "^" in str(info.value).splitlines()[-1]


names = st.sampled_from(["a", "b", "c", "d"])


@st.composite
def rhs_exprs(draw, depth=0):
    if depth > 2 or draw(st.booleans()):
        return draw(names)
    op = draw(st.sampled_from(["+", ":", "*", "/", "%in%"]))
    return f"({draw(rhs_exprs(depth + 1))} {op} {draw(rhs_exprs(depth + 1))})"


@settings(max_examples=60, deadline=None)
@given(rhs_exprs())
def test_expansion_is_a_fixed_point(rhs):
    """Writing the expanded terms back as a formula gives the same terms."""
    tl = _expand("~ " + rhs)
    again = _expand("~ " + " + ".join(tl.labels))

    def as_sets(labels):
        return {frozenset(label.split(":")) for label in labels}

    assert as_sets(again.labels) == as_sets(tl.labels)
    assert len(tl.labels) == len(as_sets(tl.labels))  # no term twice
    assert [len(t) for t in tl.terms] == sorted(len(t) for t in tl.terms)


@settings(max_examples=60, deadline=None)
@given(rhs_exprs(), rhs_exprs())
def test_star_is_sum_plus_interaction(left, right):
    star = _expand(f"~ ({left}) * ({right})")
    spelled = _expand(f"~ ({left}) + ({right}) + ({left}):({right})")
    assert star.labels == spelled.labels


def test_parse_expression_roundtrip_for_labels():
    tl = _expand("~ log(z) * I(x^2)")
    assert tl.labels == ["log(z)", "I(x^2)", "log(z):I(x^2)"]
    assert parse_expression(tl.labels[2]).value == ":"
