"""The printed summary against lme4's and lmerTest's, line by line; lmerTest's df
and p-values; confidence intervals beside the estimates.

R's lines come from tests/reference/make_summary_reference.R
(summary_print.json). Each printed line must equal R's; where the optima
differ (pymlm's REML/ML optimum and lme4's agree to about 1e-5 relative in
theta, so variances and sds can differ in their last printed digit), a
number may differ from R's by up to 1e-4 relative if it has the same width
and decimals (tests/results/_printed.py). Two texts differ on purpose:
pymlm names its own optimizer (``optimizer (L-BFGS-B) ...`` where lme4
says ``nloptwrap``) and its singular-fit message points at ``is_singular``
rather than R's ``help('isSingular')``; the test substitutes both in R's
lines and compares the rest. ``Data:`` is printed when ``data_name`` is
given (as here); without it that one line is missing and the rest are equal.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from _printed import compare_lines, table_header

import pymlm as ml
from pymlm.errors import OptionError, SingularFitWarning

REF_FILE = Path(__file__).resolve().parents[1] / "reference" / "summary_print.json"
REF = json.loads(REF_FILE.read_text())
LMER_CASES = sorted(k for k, v in REF["cases"].items() if v["engine"] == "lmer")
ANOVA_CASES = sorted(k for k, v in REF["cases"].items() if v["engine"] == "anova")
# deliberate differences: pymlm's own optimizer, pymlm's own help pointer
SUBSTITUTE = {"optimizer (nloptwrap)": "optimizer (L-BFGS-B)",
              "see help('isSingular')": "see is_singular"}


def r_lines(case: str) -> list[str]:
    lines = REF["cases"][case]["lines"]
    out = []
    for line in lines:
        for a, b in SUBSTITUTE.items():
            line = line.replace(a, b)
        out.append(line)
    return out


def load_case_data(name: str):
    if name == "sleepstudy2":
        d = ml.datasets.load("sleepstudy").copy()
        d["Days2"] = 2 * d["Days"]
        return d
    return ml.datasets.load(name)


_FITS: dict = {}


def fit_case(case: str):
    if case not in _FITS:
        c = REF["cases"][case]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[case] = ml.lmer(c["formula"], load_case_data(c["data"]), REML=c["REML"],
                                  data_name=c["data"])
    return _FITS[case]


def printed(case: str, **kw) -> list[str]:
    c = REF["cases"][case]
    kw.setdefault("correlation", c.get("correlation"))
    return fit_case(case).summary(ddf=c.get("ddf"), **kw).lines()


@pytest.mark.parametrize("case", LMER_CASES)
def test_summary_prints_as_lme4(case):
    ours, ref = printed(case), r_lines(case)
    cmp = compare_lines(ours, ref, header_of=table_header(ref))
    assert cmp.bad == []
    # the numbers that differ are few: the last digit of a variance, an sd, a residual quantile
    assert cmp.exact >= len(ref) - 4


def test_without_data_name_only_the_data_line_is_missing():
    c = REF["cases"]["penicillin_crossed"]
    m = ml.lmer(c["formula"], ml.datasets.load(c["data"]))
    ref = [line for line in r_lines("penicillin_crossed") if not line.startswith("   Data:")]
    assert compare_lines(m.summary().lines(), ref).bad == []
    assert str(m) == str(m.summary())


def test_formula_echo_expands_double_bars_as_lme4():
    assert printed("sleepstudy_uncorrelated")[1] == \
        "Formula: Reaction ~ Days + ((1 | Subject) + (0 + Days | Subject))"
    m = ml.lmer("Reaction ~ Days + (1 + Days || Subject)", ml.datasets.load("sleepstudy"))
    assert m.summary().lines()[1] == \
        "Formula: Reaction ~ Days + ((1 | Subject) + (0 + Days | Subject))"


def test_many_fixed_effects_hide_the_correlation_as_lme4():
    lines = printed("sleepstudy_p18")
    assert "Correlation matrix not shown by default, as p = 18 > 12." in lines
    assert "Correlation of Fixed Effects:" not in lines
    shown = printed("sleepstudy_p18", correlation=True)
    at = shown.index("Correlation of Fixed Effects:")
    assert shown[at + 1].split()[:3] == ["(Intr)", "Sbj309", "Sbj310"]
    with pytest.raises(OptionError, match="correlation must be None, True or False"):
        fit_case("sleepstudy_p18").summary(correlation="yes")


@pytest.mark.parametrize("case", ANOVA_CASES)
def test_anova_prints_as_lme4(case):
    c = REF["cases"][case]
    d = ml.datasets.load(c["data"])
    models = [ml.lmer(f, d, data_name=c["data"]) for f in c["formulas"]]
    assert ml.anova(*models, names=c["models"]).__str__().splitlines() == c["lines"]


def test_singular_fit_names_pymlms_optimizer():
    lines = printed("dyestuff2_singular")
    assert lines[-3:] == ["optimizer (L-BFGS-B) convergence code: 0 (OK)",
                          "boundary (singular) fit: see is_singular", ""]


@pytest.fixture(scope="module")
def m_sleep():
    return ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"), data_name="sleepstudy")


@pytest.fixture(scope="module")
def m_pen():
    return ml.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", ml.datasets.load("Penicillin"))


def test_satterthwaite_columns_in_lmertests_order(m_sleep):
    s = m_sleep.summary(ddf="Satterthwaite")
    assert list(s.fixed.columns) == ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    text = str(s)
    assert "Linear mixed model fit by REML. t-tests use Satterthwaite's method" in text
    header = next(line for line in text.splitlines() if "Estimate" in line)
    assert header.split() == ["Estimate", "Std.", "Error", "df", "t", "value", "Pr(>|t|)"]
    fixed_part = text.split("Fixed effects:")[1].split("Correlation of Fixed Effects")[0]
    days = next(line for line in fixed_part.splitlines() if line.strip().startswith("Days"))
    assert "17.00" in days and "3.26e-06" in days and days.rstrip().endswith("***")


def test_kenward_roger_title(m_pen):
    assert "t-tests use Kenward-Roger's method" in str(m_pen.summary(ddf="Kenward-Roger"))


def test_profile_intervals_beside_every_estimate(m_sleep):
    s = m_sleep.summary(ddf="Satterthwaite", ci="profile")
    ci = m_sleep.confint("profile", progress=False)
    assert list(s.fixed.columns) == ["Estimate", "Std. Error", "2.5 %", "97.5 %", "df", "t value", "Pr(>|t|)"]
    np.testing.assert_allclose(s.fixed[["2.5 %", "97.5 %"]].to_numpy(),
                               ci.loc[["(Intercept)", "Days"]].to_numpy())
    r = s.random
    assert list(r.columns) == ["Groups", "Name", "Variance", "Std.Dev.", "2.5 %", "97.5 %", "Corr", "Corr CI"]
    # rows: Subject (Intercept), Days, Residual <- .sig01, .sig03, .sigma; the correlation .sig02
    np.testing.assert_allclose(r["2.5 %"], ci.loc[[".sig01", ".sig03", ".sigma"], "2.5 %"])
    np.testing.assert_allclose(r["97.5 %"], ci.loc[[".sig01", ".sig03", ".sigma"], "97.5 %"])
    assert r["Corr CI"].iloc[1][0] == pytest.approx(tuple(ci.loc[".sig02"]))
    text = str(s)
    assert "0.07 (-0.48, 0.68)" in text
    assert "Confidence intervals: 95% profile likelihood (ML deviance, as lme4)" in text
    subject = next(line for line in text.splitlines() if line.strip().startswith("Subject"))
    assert "14.381" in subject and "37.716" in subject


def test_interval_columns_follow_the_level(m_pen):
    s = m_pen.summary(ci="wald", level=0.9)
    assert list(s.fixed.columns) == ["Estimate", "Std. Error", "5 %", "95 %", "t value"]
    # Wald gives no variance-component intervals (as lme4): NA in the table
    assert s.random["5 %"].isna().all()
    text = str(s)
    assert "Confidence intervals: 90% Wald" in text
    assert "NA" in next(line for line in text.splitlines() if line.strip().startswith("plate"))


def test_bootstrap_summary_names_its_settings(m_pen):
    s = m_pen.summary(ci="boot", nsim=30, seed=5)
    assert "Confidence intervals: 95% parametric bootstrap, 30 replicates (perc), seed 5" in str(s)
    assert s.intervals.attrs["replicates"].shape == (30, 4)
    assert np.all(s.random["2.5 %"] < s.random["Std.Dev."])


def test_summary_options_are_checked(m_pen):
    with pytest.raises(OptionError, match=r"interval options \['nsim'\] need ci="):
        m_pen.summary(nsim=10)
    with pytest.raises(OptionError, match="ddf must be one of"):
        m_pen.summary(ddf="KR2")
    with pytest.raises(OptionError, match="method must be one of"):
        m_pen.summary(ci="jackknife")
    with pytest.raises(OptionError, match="level must be a number strictly between 0 and 1"):
        m_pen.summary(ci="wald", level=95)


def test_singular_fit_summary_warns_and_prints_the_one_sided_interval():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        m = ml.lmer("Yield ~ 1 + (1 | Batch)", ml.datasets.load("Dyestuff2"))
    with pytest.warns(SingularFitWarning, match="one-sided"):
        s = m.summary(ci="profile")
    assert s.random["2.5 %"].iloc[0] == 0.0
    assert "boundary (singular) fit" in str(s)


def test_plain_summary_is_unchanged(m_sleep):
    s = m_sleep.summary()
    assert list(s.fixed.columns) == ["Estimate", "Std. Error", "t value"]
    assert list(s.random.columns) == ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    assert "Confidence intervals" not in str(s) and "t-tests use" not in str(s)
