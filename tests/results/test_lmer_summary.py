"""The summary with lmerTest's df and p-values and with confidence intervals."""

import warnings

import numpy as np
import pytest

import pymlm as ml
from pymlm.errors import OptionError, SingularFitWarning


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
