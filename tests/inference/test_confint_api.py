"""m.confint(): methods, levels, options and the attributes every interval carries."""

import numpy as np
import pandas as pd
import pytest

from pymlm.errors import OptionError


@pytest.fixture(scope="module")
def m_pen(reference_fits):
    return reference_fits("penicillin")


def test_unknown_method_is_named(m_pen):
    with pytest.raises(OptionError, match=r"method must be one of 'wald', 'profile', 'boot', 'blb', 'split'; "
                                          r"got 'bootstrap'"):
        m_pen.confint("bootstrap")
    with pytest.raises(OptionError, match="method must be one of"):
        m_pen.confint(None)


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.2, 95, "0.95", True, np.nan])
@pytest.mark.parametrize("method", ["wald", "profile", "boot"])
def test_levels_outside_the_unit_interval_are_rejected(m_pen, method, level):
    with pytest.raises(OptionError, match="level must be a number strictly between 0 and 1, such as 0.95"):
        m_pen.confint(method, level=level)


@pytest.mark.parametrize("method, option", [("wald", "nsim"), ("profile", "nsim"), ("boot", "delta"),
                                            ("boot", "level2")])
def test_each_method_names_the_options_it_does_not_take(m_pen, method, option):
    with pytest.raises(OptionError, match=rf"\['{option}'\]"):
        m_pen.confint(method, **{option: 1})


@pytest.mark.parametrize("method, options", [("wald", {}), ("profile", {}), ("boot", {"nsim": 40})])
def test_interval_layout_and_attributes(m_pen, method, options):
    ci = m_pen.confint(method, level=0.8, seed=3, progress=False, **options)
    assert list(ci.columns) == ["10 %", "90 %"]
    assert list(ci.index) == [".sig01", ".sig02", ".sigma", "(Intercept)"]
    assert ci.attrs["method"] == method and ci.attrs["level"] == 0.8
    assert ci.attrs["seed"] == 3 and ci.attrs["seconds"] >= 0
    assert isinstance(ci.attrs["settings"], dict)
    est = m_pen.problem.estimates()
    fixed = ci.loc["(Intercept)"]
    assert fixed.iloc[0] < est[-1] < fixed.iloc[1]
    if method == "boot":
        assert ci.attrs["replicates"].shape == (40, 4)
        assert ci.attrs["settings"]["nsim"] == 40
    if method == "profile":
        assert ci.attrs["profile"].traces.keys() == set(ci.index)


def test_method_names_are_case_insensitive_and_levels_name_the_columns(m_pen):
    a = m_pen.confint("Wald", level=0.99)
    assert list(a.columns) == ["0.5 %", "99.5 %"]
    assert a.attrs["method"] == "wald"


def test_profile_intervals_are_reused_across_levels(m_pen):
    """The profile does not depend on the level: a second level reads the same traces."""
    a = m_pen.confint("profile", level=0.95, progress=False)
    b = m_pen.confint("profile", level=0.5, progress=False)
    pa, pb = a.attrs["profile"], b.attrs["profile"]
    assert pa.seconds == pb.seconds and pa is not pb        # computed once, handed out as copies
    for name in pa.traces:
        pd.testing.assert_frame_equal(pa.traces[name], pb.traces[name])
    assert np.all(b.iloc[:, 0] > a.iloc[:, 0]) and np.all(b.iloc[:, 1] < a.iloc[:, 1])


def test_default_method_is_the_profile_as_lme4(m_pen):
    ci = m_pen.confint()
    assert ci.attrs["method"] == "profile"
    assert np.isfinite(ci.loc[[".sig01", ".sig02", ".sigma"]].to_numpy()).all()
