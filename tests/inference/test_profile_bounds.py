"""Profile intervals at the edge of the parameter space against lme4's confint(profile(m))
(tests/reference/profile_bounds_reference.json, made by
tests/reference/make_profile_bounds_reference.R).

Every bounded parameter follows one rule: where its profile stops at the bound
(0 for an sd, -1 or 1 for a correlation) before it reaches the level, the end
of the interval is the bound; an estimate on the bound is profiled inwards only.
"""

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import pymlm as ml
from pymlm.errors import ConvergenceWarning, PymlmInternalWarning, PymlmWarning, SingularFitWarning
from pymlm.inference.profile import LmmProfile, back_spline, zeta

REF_FILE = Path(__file__).parents[1] / "reference" / "profile_bounds_reference.json"
REF = json.loads(REF_FILE.read_text())
CASES = [name for name in REF if name != "versions"]
LEVELS = {"95": 0.95, "80": 0.80, "99": 0.99}
BOUNDS = (0.0, -1.0, 1.0)


def _data(case):
    if "subjects" not in case:
        return ml.datasets.load("Dyestuff2")
    df = ml.datasets.load("sleepstudy")
    late = np.where(df["Days"] >= 5, "late", "early")
    df["late"] = pd.Categorical(late, categories=["early", "late"])
    df = df[df["Subject"].isin(case["subjects"])].copy()
    df["Subject"] = df["Subject"].cat.remove_unused_categories()
    return df


@pytest.fixture(scope="module")
def models():
    out = {}
    for name in CASES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SingularFitWarning)
            out[name] = ml.lmer(REF[name]["formula"], _data(REF[name]), REML=True)
    return out


def _lme4(name, key):
    """lme4's intervals as {parameter: (lower, upper)}, NaN where lme4 gives NA."""
    return {r["parm"]: tuple(np.nan if v is None else v for v in (r["lower"], r["upper"]))
            for r in REF[name][key]}


def _confint(m, level, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PymlmWarning)
        return m.profile(**kw).confint(level)


def _assert_ends(got, want, tol, what):
    """Ends lme4 puts on a bound exactly there; the others within tol of lme4's interval width."""
    width = want[1] - want[0]
    for g, w in zip(got, want):
        if w in BOUNDS:
            assert g == w, f"{what}: {got} vs lme4 {want}"
        else:
            assert abs(g - w) <= tol * width, f"{what}: {got} vs lme4 {want}"


# the correlation (or sd) at the edge of its range, in every case lme4 reads it
FOCUS = [name for name in CASES if name not in ("cor_at_minus_one", "sds_at_zero")]


@pytest.mark.parametrize("case", FOCUS)
@pytest.mark.parametrize("level", list(LEVELS))
def test_bounded_parameter_interval_matches_lme4(models, case, level):
    m, focus = models[case], REF[case]["focus"]
    want = _lme4(case, "confint_" + level)[focus]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PymlmWarning)
        via_confint = m.confint("profile", level=LEVELS[level], progress=False).loc[focus]
    via_profile = _confint(m, LEVELS[level]).loc[focus]
    pd.testing.assert_series_equal(via_confint, via_profile)
    # within 0.01% of the width, as the other profile tests; bounds exactly
    _assert_ends(tuple(via_profile), want, 1e-4, f"{case} {focus} at {level}%")


def test_the_cases_reach_the_bounds_lme4_reports():
    """The reference cases cover what they are meant to: ends at -1, 1 and 0 below the level."""
    ends = {(case, end) for case in FOCUS for lev in LEVELS
            for end in _lme4(case, "confint_" + lev)[REF[case]["focus"]] if end in BOUNDS}
    assert {end for _, end in ends} == set(BOUNDS)
    # upper end 1 with the lower one inside (-1, 1), in a case where lme4 warns about nothing
    lo, hi = _lme4("cor_short", "confint_95")[".sig02"]
    assert hi == 1.0 and -1.0 < lo and REF["cor_short"]["confint_95_warnings"] == []


@pytest.mark.parametrize("case", [c for c in CASES if c != "sds_at_zero"])
def test_other_parameters_match_lme4(models, case):
    """The sds, sigma and fixed effects of the same fits: bounds exactly, the rest closely.

    On these small subsets (3 to 6 subjects) lme4's inner optimizer (bobyqa)
    stops early at some profile points (a deviance up to ~0.01 above ours at
    the same value), which moves its spline; 0.3% of the width covers that
    (the largest is 0.24%, the slope sd of cor_at_one).
    """
    m = models[case]
    for level in LEVELS:
        ci = _confint(m, LEVELS[level])
        for parm, want in _lme4(case, "confint_" + level).items():
            if parm == REF[case]["focus"] or np.isnan(want).any():
                continue
            _assert_ends(tuple(ci.loc[parm]), want, 3e-3, f"{case} {parm} at {level}%")


def test_lme4_reads_no_variance_interval_when_a_correlation_is_at_minus_one(models):
    """lme4 starts the profile of a correlation at -1 at -1.01, outside its range (NA deviance),
    and reads none of the variance parameters (NA); profiled alone the correlation gets
    [-1, 1]. pymlm profiles it inwards from -1 and reads every interval."""
    m = models["cor_at_minus_one"]
    trace = REF["cor_at_minus_one"]["focus_trace"]
    assert trace["value"] == [-1.01, -1] and trace["zeta"][0] is None
    for level in LEVELS:
        lme4 = _lme4("cor_at_minus_one", "confint_" + level)
        assert np.isnan(lme4[".sig01"]).all() and np.isnan(lme4[".sigma"]).all()
        ci = _confint(m, LEVELS[level])
        assert np.isfinite(ci.loc[[".sig01", ".sig03", ".sigma"]].to_numpy()).all()
        assert ci.loc[".sig03", ci.columns[0]] == 0.0          # the slope sd's profile reaches 0
        alone = _lme4("cor_at_minus_one", "focus_confint_" + level)[".sig02"]
        assert tuple(ci.loc[".sig02"]) == alone == (-1.0, 1.0)


@pytest.mark.parametrize("case, bound", [("cor_at_one", 1.0), ("cor_at_minus_one", -1.0)])
def test_a_correlation_on_its_bound_is_profiled_inwards(models, case, bound):
    """One rule for an estimate on a bound (an sd at 0, a correlation at -1 or 1): the profile
    runs inwards only, and the interval is the bound on one side and, on the other, where
    zeta crosses the level (or the far bound, when it does not)."""
    m = models[case]
    pr = m.profile()
    assert pr.estimates[".sig02"] == bound
    tr = pr.traces[".sig02"]
    inside = tr[".sig02"].between(-1.0, 1.0, inclusive="neither")
    assert inside.sum() >= 3 and (np.sign(tr["zeta"]) != np.sign(bound)).all()
    # at 95% the profile stays below the level up to the far bound: [-1, 1], as lme4
    assert tuple(_confint(m, 0.95).loc[".sig02"]) == (-1.0, 1.0)
    # at 50% it crosses inside; the end is where zeta(value) = -/+ z
    z = stats.norm.ppf(0.75)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        ci = pr.confint(0.5)
    pattern = rf"\.sig02 is on its bound {bound:g} .*one-sided"
    assert any(issubclass(w.category, SingularFitWarning) and re.search(pattern, str(w.message))
               for w in got)
    lo, hi = ci.loc[".sig02"]
    end, want = (lo, -z) if bound == 1.0 else (hi, z)
    assert (hi if bound == 1.0 else lo) == bound
    assert -1.0 < end < 1.0
    assert zeta(m.problem, ".sig02", [end])[0] == pytest.approx(want, abs=0.02)


def test_an_undefined_correlation_gets_its_whole_range(models):
    """Both sds at 0: their correlation is undefined (0, as lme4 takes it) and its profile
    flat, so the interval is [-1, 1] at every level. lme4 cannot read that profile at all
    (approxfun needs two distinct zeta values)."""
    case = REF["sds_at_zero"]
    assert case["ml_sdcor"][:2] == [0, pytest.approx(0, abs=1e-6)]
    assert case["confint_95_error_parm"] == ".sig02"
    assert "need at least two non-NA values" in case["confint_95_error"]
    m = models["sds_at_zero"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PymlmInternalWarning)
        pr = m.profile()
    assert pr.estimates[".sig02"] == 0.0
    for level in LEVELS:
        ci = _confint(m, LEVELS[level])
        assert tuple(ci.loc[".sig02"]) == (-1.0, 1.0)
        lme4 = _lme4("sds_at_zero", "confint_" + level)
        for parm in (".sig01", ".sig03"):
            assert ci.loc[parm].iloc[0] == lme4[parm][0] == 0.0
        _assert_ends(tuple(ci.loc[".sigma"]), lme4[".sigma"], 1e-4, f".sigma at {level}%")
    # lme4's inner optimizer keeps the other sd at 0 (a stationary point) when it profiles
    # one of them, so its upper ends are too low: ours has a much lower deviance there
    z = stats.norm.ppf(0.975)
    for parm in (".sig01", ".sig03"):
        upper = _lme4("sds_at_zero", "confint_95")[parm][1]
        assert zeta(m.problem, parm, [upper])[0] < z - 0.5


# what each case warns in lme4 (profile() and confint()), and what pymlm warns instead
WARNS = {
    "cor_short": None,
    "cor_dip": (ConvergenceWarning,
                r"non-monotonic profile for \.sig02: zeta falls by 0\.78.*linear interpolation"),
    "cor_flat": (PymlmWarning, r"profile of \.sig02 is flat from 0\.72\d* to 1 .*linear interp"),
    "cor_near_minus_one": (PymlmWarning, r"profile of \.sig02 is flat .* to 1 .*linear interp"),
    "factor_slope": (PymlmWarning, r"profile of \.sig02 is flat from -1 .*linear interpolation"),
    "cor_at_one": (SingularFitWarning, r"\.sig02 is on its bound 1 \(a singular fit\).*one-sided"),
    "cor_at_minus_one": (SingularFitWarning,
                         r"\.sig02 is on its bound -1 \(a singular fit\).*one-sided"),
}


@pytest.mark.parametrize("case", list(WARNS))
def test_warnings_where_lme4_warns(models, case):
    lme4 = REF[case]["confint_95_warnings"]
    lme4 = [lme4] if isinstance(lme4, str) else lme4
    pr = models[case].profile()
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        pr.confint(0.95)
    messages = [str(w.message) for w in got]
    if WARNS[case] is None:
        assert lme4 == [] and messages == []
        return
    assert lme4, "lme4 warns in every case but cor_short"
    category, pattern = WARNS[case]
    assert any(issubclass(w.category, category) and re.search(pattern, str(w.message))
               for w in got), messages
    if case != "cor_dip":
        # flat against a bound, or an estimate on it: not a non-monotonic profile
        assert not any("non-monotonic" in msg for msg in messages), messages
    assert all(issubclass(w.category, PymlmWarning) for w in got)


def test_a_flat_profile_steps_to_the_bound(models):
    """A flat stretch (zeta equal to rounding) goes straight to the bound. lme4 crawls by
    steps of 1e-6 until maxpts runs out (198 points within 0.0011 of the estimate, never
    reaching a bound) on the undefined correlation of sds_at_zero."""
    lme4 = REF["sds_at_zero"]["focus_trace"]
    assert len(lme4["value"]) > 150 and max(np.abs(lme4["value"])) < 2e-3
    pr = models["sds_at_zero"].profile()
    tr = pr.traces[".sig02"]
    assert len(tr) < 20 and tr[".sig02"].min() == -1.0 and tr[".sig02"].max() == 1.0
    for bound in ("-1", "1"):
        assert any("flat" in msg and msg.endswith(f"stepped to the bound {bound}")
                   for msg in pr.messages)
    np.testing.assert_allclose(tr["zeta"], 0.0, atol=1e-6)
    # and no profile of any case runs long
    assert all(len(t) < 40 for m in models.values() for t in m.profile().traces.values())


def _synthetic(x, z, name=".sig02", lower=-1.0, upper=1.0):
    names = [name, ".sigma"]
    est = float(x[np.argmin(np.abs(z))])
    tr = pd.DataFrame({"zeta": z, name: x, ".sigma": 1.0})
    return LmmProfile({name: tr}, pd.Series([est, 1.0], index=names),
                      pd.Series([lower, 0.0], index=names), pd.Series([upper, np.inf], index=names),
                      0.0, 4.0)


def test_ties_to_rounding_are_averaged_as_lme4s_exact_ties():
    """A flat stretch whose zeta differ by 1e-12 is read as lme4 reads exactly equal zeta:
    linear interpolation with the parameter averaged over the tied points (approxfun)."""
    x = np.array([-1.0, -0.99, -0.84, -0.62, -0.55, -0.25, 0.07, 0.49, 1.0])
    z = np.array([-1.6478, -1.6478 + 1e-12, -0.9144, -0.1359, 0.0, 0.5253, 0.9172, 1.3023, 1.5444])
    with pytest.warns(PymlmWarning, match=r"profile of \.sig02 is flat from -1 to -0\.99"):
        ci = _synthetic(x, z).confint(0.8)
    q = stats.norm.ppf(0.9)
    tied = (-1.0 - 0.99) / 2
    want_lo = tied + (-q + 1.6478) / (-0.9144 + 1.6478) * (-0.84 - tied)
    want_hi = 0.07 + (q - 0.9172) / (1.3023 - 0.9172) * (0.49 - 0.07)
    np.testing.assert_allclose(ci.iloc[0].to_numpy(), [want_lo, want_hi], rtol=1e-12)
    # beyond the plateau (zeta never reaches 1.96 on either side): the bounds
    with pytest.warns(PymlmWarning, match="flat"):
        assert tuple(_synthetic(x, z).confint(0.95).iloc[0]) == (-1.0, 1.0)


def test_an_end_never_leaves_the_parameter_range():
    """A spline through a steep last step can overshoot the bound (R's backSpline does the
    same on this profile); the end is the bound."""
    x = np.array([-1.0, -0.8858, -0.6316, -0.3254, -0.0130, 0.1168, 0.1297, 0.1310, 0.1440, 0.2737,
                  0.5738, 0.8330, 0.9997, 1.0])
    z = np.array([-4.1560, -2.2439, -1.3747, -0.7572, -0.2344, -0.0215, 0.0, 0.0022, 0.0238, 0.2454,
                  0.8388, 1.6354, 3.4331, 3.4343])
    assert back_spline(x, z)(np.array([-1.96]))[0] < -1.0
    lo, hi = _synthetic(x, z).confint(0.95).iloc[0]
    assert lo == -1.0 and -1.0 < hi < 1.0


def test_a_fixed_effect_profile_that_stops_short_gives_nan_as_lme4s_na(models):
    """A fixed effect has no bound: an end its profile does not reach is NaN (lme4: NA), not
    an infinite bound; a variance parameter's is its bound (lme4's rule)."""
    m = models["cor_short"]
    pr = m.profile(which=["Days", ".sigma"], maxpts=3)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        ci = pr.confint(0.95)
    assert ci.loc["Days"].isna().all()
    assert ci.loc[".sigma"].iloc[0] == 0.0
    # not silently, as lme4: the profile stopped before both the level and the bound
    said = [str(w.message) for w in got if issubclass(w.category, ConvergenceWarning)]
    for pattern in (r"profile of Days ends at .* before it reaches the 95% level or the bound -inf, "
                    r"so that end is NaN",
                    r"profile of \.sigma ends at .* or the bound 0, so that end is the bound"):
        assert any(re.search(pattern, msg) for msg in said), said
    # an end at a bound the profile reaches below the level is the normal case: no such warning
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        for model in models.values():
            for level in LEVELS.values():
                model.profile().confint(level)
    assert not [w for w in got if "ends at" in str(w.message)]
