"""The printed gam/bam summary against mgcv's ``print(summary(b))``, line by line.

R's lines come from tests/reference/make_summary_reference.R
(summary_print.json, mgcv 1.8-41). Every line must equal mgcv's; numbers
may differ from mgcv's by up to 1e-4 relative where they keep mgcv's width
and decimals (the REML optima agree to about that; tests/results/_printed.py).

Numbers that must be compared with a wider tolerance rather than as
strings would be listed in LOOSE, by case, row and column; it is empty: every
statistic prints as mgcv's.
"""

import json
import warnings
from pathlib import Path

import pytest
from _printed import compare_lines, table_header

import pymlm as ml

REF_FILE = Path(__file__).resolve().parents[1] / "reference" / "summary_print.json"
REF = json.loads(REF_FILE.read_text())
GAM_CASES = sorted(k for k, v in REF["cases"].items() if v["engine"] in ("gam", "bam"))

# case -> row label -> {column: relative tolerance}
LOOSE: dict = {}


@pytest.fixture(scope="module")
def fits():
    cache = {}

    def fit(case):
        if case not in cache:
            c = REF["cases"][case]
            d = ml.datasets.load(c["data"])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if c["engine"] == "gam":
                    cache[case] = ml.gam(c["formula"], d, family=c["family"])
                else:
                    cache[case] = ml.bam(c["formula"], d, family=c["family"],
                                         discrete=c["discrete"])
        return cache[case]

    return fit


@pytest.mark.parametrize("case", GAM_CASES)
def test_summary_prints_as_mgcv(case, fits):
    ref = REF["cases"][case]["lines"]
    b = fits(case)
    ours = b.summary().lines()
    cmp = compare_lines(ours, ref, loose=LOOSE.get(case), header_of=table_header(ref))
    assert cmp.bad == []
    assert str(b) == "\n".join(ours) + "\n"


def test_formula_is_printed_as_r_deparses_it(fits):
    b = fits("gamsim_re_bam_discrete")
    lines = b.summary().lines()
    at = lines.index("Formula:")
    assert lines[at + 1:at + 3] == ['y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2, bs = "cr") + ',
                                    '    s(x3, bs = "cr") + s(g, bs = "re")']
    m = ml.gam("cbind(incidence, size-incidence)~period+s(herd,bs='re')", ml.datasets.load("cbpp"),
               family="binomial")
    assert 'cbind(incidence, size - incidence) ~ period + s(herd, bs = "re")' in m.summary().lines()


def test_mgcv_number_formats():
    # formatC as print.summary.gam calls it: %5.3g, %4.3g, %6.5g and %-8.5g
    from pymlm.results._format import format_c

    b_lines = REF["cases"]["cbpp_binomial_gam"]["lines"]
    r2 = "R-sq.(adj) =  " + format_c(0.515, 3, 5) + "   "
    assert r2 + "Deviance explained = " + format_c(53.0, 3, 4) + "%" in b_lines
    score = "-REML = " + format_c(93.199, 5) + "  Scale est. = " + format_c(1.0, 5, 8, "-")
    assert score + "  n = 56" in b_lines
