"""R's formatting rules (pymlm.results._format) against R 4.2.2's own output.

The reference strings come from tests/reference/make_format_reference.R
(format_reference.json): format(), format.pval(), formatC(), round(),
signif(), zapsmall(), abbreviate(), printCoefmat(), print() of named
vectors and character matrices, cat(fill = TRUE), strwrap() and deparse()
of formulas. Every comparison is of exact strings (or exact doubles).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from pymlm.formula import parse_expression
from pymlm.results import _format as F

REF_FILE = Path(__file__).resolve().parents[1] / "reference" / "format_reference.json"
REF = json.loads(REF_FILE.read_text())


def vec(v):
    """A JSON vector (length-one vectors are scalars) as a list."""
    return v if isinstance(v, list) else [v]


def num(v):
    """R's numbers written as text: None for NA."""
    return [None if s == "NA" else float(s) for s in vec(v)]


def floats(v):
    return np.array([np.nan if s == "NA" else float(s) for s in vec(v)])


def test_format_matches_r():
    cases = REF["format"]
    assert len(cases) > 400
    bad = []
    for c in cases:
        got = F.format_real(num(c["x"]), c["digits"], c["nsmall"])
        if got != vec(c["out"]):
            bad.append((c["x"], c["digits"], c["nsmall"], got, vec(c["out"])))
    assert bad == []


def test_format_examples_from_summaries():
    # Pastes variances, Penicillin residual quantiles, a REML criterion of 247.0
    assert F.format_real([2.9041 ** 2, 1.2874 ** 2, 0.8234 ** 2], 4) == ["8.434", "1.657", "0.678"]
    assert F.format_real([-2.07923, -0.67140, 0.06292, 0.58377, 2.97959], 4)[0] == "-2.07923"
    assert F.format_number(247.0) == "247"
    assert F.format_real([None, float("nan"), 1.0]) == [" NA", "NaN", "  1"]
    assert F.format_real([float("nan"), 1.0], nan_as_na=True) == ["NA", " 1"]


def test_format_pval_matches_r():
    bad = []
    for c in REF["format_pval"]:
        got = F.format_pval(num(c["p"]), c["digits"])
        if got != vec(c["out"]):
            bad.append((c["p"], c["digits"], got, vec(c["out"])))
    assert bad == []


@pytest.mark.parametrize("kind", ["round", "signif", "zapsmall"])
def test_rounding_matches_r_to_the_bit(kind):
    fun = {"round": F.round_r, "signif": F.signif, "zapsmall": F.zapsmall}[kind]
    bad = []
    for c in REF[kind]:
        x, want = floats(c["x"]), floats(c["out"])
        got = fun(x, c["digits"])
        miss = ~((got == want) | (np.isnan(got) & np.isnan(want)))
        bad += [(c["digits"], x[i], got[i], want[i]) for i in np.flatnonzero(miss)]
    assert bad == []


def test_round_differs_from_sprintf_rounding_as_r_does():
    # R >= 4.0.0 measures which neighbour is closer; signif() rounds x * 10^e
    assert F.round_r([0.15], 1)[0] == 0.1 and F.signif([0.15], 1)[0] == 0.2


def test_formatc_matches_r():
    bad = []
    for c in REF["formatC"]:
        got = F.format_c(num(c["x"])[0], c["digits"], c["width"], c["flag"])
        if got != c["out"]:
            bad.append((c, got))
    assert bad == []


def test_abbreviate_matches_r():
    bad = []
    for c in REF["abbreviate"]:
        for name, want in zip(vec(c["names"]), vec(c["out"])):
            got = F.abbreviate(name, c["minlength"])
            if got != want:
                bad.append((name, c["minlength"], got, want))
    assert bad == []
    for c in REF["abbreviate_vector"]:
        assert F.abbreviate_all(vec(c["names"]), c["minlength"]) == vec(c["out"])


def test_print_coefmat_matches_r():
    for c in REF["print_coefmat"]:
        x = np.array([floats(row) for row in c["x"]])
        cs = None if c["cs_ind"] is None else vec(c["cs_ind"])
        kw = {} if cs is None else dict(cs_ind=cs, has_pvalue=True)
        got = F.print_coefmat(x, vec(c["rownames"]), vec(c["colnames"]), digits=4, **kw)
        assert got == vec(c["lines"])


def test_print_coefmat_stars_follow_symnum():
    # symnum's intervals are closed on the right: p = 0.05 is '*', p = 0.001 '***'
    assert [F.signif_stars(p) for p in (0.001, 0.0011, 0.05, 0.1, 0.2, float("nan"))] == \
        ["***", "**", "*", ".", " ", ""]
    lines = F.print_coefmat(np.array([[1.0, 2.0, 0.5]]), ["a"], ["Estimate", "t value", "Pr(>|t|)"])
    assert "Signif. codes" not in "\n".join(lines)  # no p-value below 0.1: no stars, no legend


def test_print_named_and_matrix_match_r():
    for c in REF["print_named"]:
        vals = F.format_real(num(c["x"]), c["digits"])
        assert F.print_named(vals, vec(c["names"])) == vec(c["lines"])
    for c in REF["print_matrix"]:
        cells = [vec(row) for row in c["cells"]]
        got = F.print_matrix(cells, vec(c["rownames"]), vec(c["colnames"]), right=c["right"])
        assert got == vec(c["lines"])


def test_cat_fill_and_strwrap_match_r():
    for c in REF["cat_fill"]:
        assert F.cat_fill(vec(c["items"]), sep=c["sep"]) == vec(c["lines"])
    for c in REF["strwrap"]:
        assert F.strwrap(c["text"], c["width"], exdent=c["exdent"]) == vec(c["out"])


def test_deparse_matches_r():
    bad = []
    for c in REF["deparse"]:
        got = F.deparse_lines(parse_expression(c["formula"]))
        if got != vec(c["lines"]):
            bad.append((c["formula"], got, vec(c["lines"])))
    assert bad == []
