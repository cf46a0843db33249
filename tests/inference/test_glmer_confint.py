"""GlmerResult.confint: Wald, profile (against lme4) and the parametric bootstrap."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import pymlm as ml
from pymlm.errors import OptionError

REF = json.loads((Path(__file__).resolve().parents[1] / "reference" / "glmer_inference_reference.json").read_text())


def _ref(case, key):
    r = REF[case][key]
    lo = np.array([np.nan if v == "NA" else v for v in r["lower"]], dtype=float)
    hi = np.array([np.nan if v == "NA" else v for v in r["upper"]], dtype=float)
    return r["names"], lo, hi


@pytest.fixture(scope="module")
def cbpp():
    return ml.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", ml.datasets.load("cbpp"))


def test_wald_layout_and_values(cbpp):
    ci = cbpp.confint()
    names, lo, hi = _ref("cbpp", "wald_95")
    assert list(ci.index) == names and list(ci.columns) == ["2.5 %", "97.5 %"]
    assert ci.loc[".sig01"].isna().all()
    z = stats.norm.ppf(0.975)
    beta, se = cbpp.fixef.to_numpy(), cbpp.fixef_se.to_numpy()
    np.testing.assert_allclose(ci.iloc[1:, 0], beta - z * se, rtol=1e-12)
    np.testing.assert_allclose(ci.iloc[1:, 1], beta + z * se, rtol=1e-12)
    # lme4's SEs come from a finite-difference Hessian (about 1% off the exact one on cbpp)
    half = (hi[1:] - lo[1:]) / 2
    np.testing.assert_allclose((ci.iloc[1:, 1] - ci.iloc[1:, 0]) / 2, half, rtol=2e-2)
    np.testing.assert_allclose((ci.iloc[1:, 1] + ci.iloc[1:, 0]) / 2, (hi[1:] + lo[1:]) / 2, atol=3e-3)


@pytest.mark.parametrize("level,key", [(0.95, "profile_95"), (0.8, "profile_80")])
def test_profile_matches_lme4_cbpp(cbpp, level, key):
    ci = cbpp.confint(method="profile", level=level, progress=False)
    names, lo, hi = _ref("cbpp", key)
    assert list(ci.index) == names
    np.testing.assert_allclose(ci.iloc[:, 0], lo, rtol=1e-3)
    np.testing.assert_allclose(ci.iloc[:, 1], hi, rtol=1e-3)


def test_profile_matches_lme4_poisson():
    m = ml.glmer("TICKS ~ YEAR + (1 | BROOD)", ml.datasets.load("grouseticks"), family="poisson")
    ci = m.confint(method="profile", progress=False)
    names, lo, hi = _ref("grouseticks", "profile_95")
    assert list(ci.index) == names
    np.testing.assert_allclose(ci.iloc[:, 0], lo, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(ci.iloc[:, 1], hi, rtol=1e-3, atol=1e-4)


def test_parm_selects_rows_and_profiles_only_them(cbpp):
    ci = cbpp.confint(parm=["period2"], method="profile", progress=False)
    assert list(ci.index) == ["period2"]
    assert list(ci.attrs["profile"].traces) == ["period2"]
    _, lo, hi = _ref("cbpp", "profile_95")
    np.testing.assert_allclose(ci.iloc[0].to_numpy(), [lo[2], hi[2]], rtol=1e-3)
    assert list(cbpp.confint(parm="theta_").index) == [".sig01"]
    with pytest.raises(OptionError, match="parm names parameters the model does not have"):
        cbpp.confint(parm=["period9"])
    with pytest.raises(OptionError, match="method"):
        cbpp.confint(method="bogus")


def test_profile_traces_are_signed_root_deviance(cbpp):
    pr = cbpp.profile(which=["(Intercept)"])
    tr = pr.traces["(Intercept)"]
    # zeta increases through 0 at the estimate and is the signed root of the objective's increase
    assert np.all(np.diff(tr["zeta"]) > 0)
    est = cbpp.fixef["(Intercept)"]
    z0 = np.interp(est, tr["(Intercept)"], tr["zeta"])
    assert abs(z0) < 1e-3
    assert tr["zeta"].min() < -2.5 and tr["zeta"].max() > 2.5


def test_boot_reproducible_and_near_profile(cbpp):
    ci = cbpp.confint(method="boot", nsim=120, seed=3, progress=False)
    again = cbpp.confint(method="boot", nsim=120, seed=3, n_jobs=2, progress=False)
    np.testing.assert_array_equal(ci.to_numpy(), again.to_numpy())
    other = cbpp.confint(method="boot", nsim=120, seed=4, progress=False)
    assert not np.allclose(ci.to_numpy(), other.to_numpy())
    reps = ci.attrs["replicates"]
    assert reps.shape == (120, 5) and ci.attrs["failed"] == 0
    prof = _ref("cbpp", "profile_95")
    # the fixed effects with many events: percentile ends within 4 Monte Carlo
    # standard errors of the profile's (quantile se = sqrt(a(1-a)/R) / phi(z) sd)
    for name in ["(Intercept)", "period2", "period3"]:
        i = prof[0].index(name)
        sd = reps[name].std()
        mc = np.sqrt(0.025 * 0.975 / 120) / stats.norm.pdf(1.96) * sd
        assert abs(ci.loc[name].iloc[0] - prof[1][i]) < 4 * mc + 0.02
        assert abs(ci.loc[name].iloc[1] - prof[2][i]) < 4 * mc + 0.02
    # the replicates centre on the estimates (bias of a fixed effect well below its sd)
    assert abs(reps["period2"].mean() - cbpp.fixef["period2"]) < 0.3 * reps["period2"].std()
