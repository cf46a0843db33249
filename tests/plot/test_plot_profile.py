"""Profile zeta and density plots, bootstrap densities: drawn = frame = profile / replicates / lme4.

lme4 reference (tests/reference/make_plot_reference.R): the sleepstudy
profile (``as.data.frame(profile(m))``) with the densities of
``densityplot(profile(m))`` (lme4's ``dens``), and R's ``density()`` of a
fixed vector.
"""

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from scipy import stats

import pymlm as ml
from pymlm.inference.profile import LmmProfile

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def sleep(reference_fits):
    return reference_fits("sleepstudy")


@pytest.fixture(scope="module")
def profile(sleep):
    return sleep.profile()


@pytest.fixture(scope="module")
def dyestuff2():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ml.SingularFitWarning)
        return ml.lmer("Yield ~ 1 + (1 | Batch)", ml.datasets.load("Dyestuff2"))


@pytest.fixture(scope="module")
def boot(sleep):
    return sleep.confint("boot", nsim=200, seed=11, progress=False)


def _r_profile(plot_ref) -> LmmProfile:
    """lme4's sleepstudy profile as an LmmProfile."""
    p = plot_ref["lme4"]["profile"]
    long = pd.DataFrame(p["values"])
    long.insert(0, "zeta", p["zeta"])
    long["par"] = p["par"]
    names = list(p["values"])
    traces = {
        nm: long[long.par == nm].drop(columns="par").sort_values(nm).reset_index(drop=True)
        for nm in names
    }
    est = pd.Series({nm: float(tr.loc[tr.zeta.abs().idxmin(), nm]) for nm, tr in traces.items()})
    lower = pd.Series([0.0, -1.0, 0.0, 0.0, -np.inf, -np.inf], index=names)
    upper = pd.Series([np.inf, 1.0, np.inf, np.inf, np.inf, np.inf], index=names)
    return LmmProfile(traces, est, lower, upper, deviance=np.nan, cutoff=np.nan)


# ------------------------------------------------------------------------ zeta
def test_zeta_interval_points_are_the_profile_intervals(profile):
    f = ml.plot.zeta_frame(profile, conf=(0.8, 0.95))
    pts = f[f.kind == "interval"]
    for conf in (0.8, 0.95):
        ci = profile.confint(conf)
        z = np.sqrt(stats.chi2.ppf(conf, 1))
        for name in profile.traces:
            sub = pts[(pts.parameter == name) & (pts.conf == conf)].sort_values("zeta")
            np.testing.assert_allclose(sub["value"], ci.loc[name].to_numpy(), rtol=1e-14)
            np.testing.assert_allclose(sub["zeta"], [-z, z], rtol=1e-14)


def test_zeta_curve_interpolates_the_trace(profile):
    f = ml.plot.zeta_frame(profile, which=[".sig01", "Days"], n=51)
    assert list(f["parameter"].cat.categories) == [".sig01", "Days"]
    for name in (".sig01", "Days"):
        tr = profile.traces[name]
        cur = f[(f.parameter == name) & (f.kind == "curve")]
        assert len(cur) == 51
        assert cur["value"].iloc[0] == tr[name].min() and cur["value"].iloc[-1] == tr[name].max()
        np.testing.assert_allclose(cur["zeta"].iloc[[0, -1]], tr["zeta"].iloc[[0, -1]], atol=1e-12)
    a = ml.plot.zeta_frame(profile, which=["Days"], absolute=True)
    assert (a["zeta"] >= 0).all()


def test_zeta_draws_the_frame(sleep, profile):
    f = ml.plot.zeta_frame(profile)
    fig = sleep.plot.zeta(profile=profile)
    assert [a.get_title() for a in fig.axes] == list(profile.traces)
    for a, name in zip(fig.axes, profile.traces):
        cur = f[(f.parameter == name) & (f.kind == "curve")]
        pts = f[(f.parameter == name) & (f.kind == "interval")]
        np.testing.assert_allclose(a.lines[0].get_xydata(), cur[["value", "zeta"]].to_numpy())
        (seg,) = [c for c in a.collections if isinstance(c, LineCollection)]
        segs = np.array(seg.get_segments())
        np.testing.assert_allclose(segs[:, 0], pts[["value", "zeta"]].to_numpy())
        np.testing.assert_allclose(segs[:, 1], np.column_stack([pts["value"], np.zeros(len(pts))]))


def test_zeta_of_a_singular_fit_leaves_out_the_missing_lower_ends(dyestuff2):
    pr = dyestuff2.profile(which=[".sig01"])
    f = ml.plot.zeta_frame(pr)
    pts = f[f.kind == "interval"]
    # the sd is estimated at 0: the profile has no lower crossings, only upper ones
    assert (pts["zeta"] > 0).all() and len(pts) == 5


def test_zeta_input_checks(sleep, profile):
    with pytest.raises(ml.OptionError, match=r"no profiled parameter\(s\) \['Dayz'\]"):
        ml.plot.zeta_frame(profile, which=["Dayz"])
    with pytest.raises(ml.OptionError, match=r"conf must hold levels strictly between 0 and 1"):
        ml.plot.zeta_frame(profile, conf=(0.5, 95))
    with pytest.raises(ml.OptionError, match=r"zeta needs a likelihood profile"):
        ml.plot.zeta(sleep.confint("wald"))
    # the confint table of the profile method carries its profile
    ci = sleep.confint("profile", progress=False)
    assert ml.plot.zeta_frame(ci).equals(ml.plot.zeta_frame(profile))


# ------------------------------------------------------------ profile density
def test_profile_density_of_lme4s_profile_equals_lme4s_density(plot_ref):
    ref = pd.DataFrame(plot_ref["lme4"]["profile_density"])
    f = ml.plot.profile_density_frame(_r_profile(plot_ref))
    assert list(f["parameter"].cat.categories) == list(dict.fromkeys(ref["par"]))
    np.testing.assert_allclose(f["value"], ref["value"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(f["density"], ref["density"], rtol=1e-7, atol=1e-12)


def test_profile_density_of_our_profile_is_close_to_lme4s(profile, plot_ref):
    ref = pd.DataFrame(plot_ref["lme4"]["profile_density"])
    f = ml.plot.profile_density_frame(profile)
    for name in profile.traces:
        r = ref[ref.par == name]
        ours = f[f.parameter == name]
        # a different grid of profile points: the same density up to the splines' error
        d = np.interp(r["value"], ours["value"], ours["density"], left=0, right=0)
        assert np.max(np.abs(d - r["density"])) < 0.02 * r["density"].max()
        # a density integrates to about 1 over [qnorm(0.001), qnorm(0.999)] in zeta
        assert np.trapezoid(ours["density"], ours["value"]) == pytest.approx(0.998, abs=0.01)


def test_profile_density_draws_the_frame(profile):
    f = ml.plot.profile_density_frame(profile, which=[".sigma", "Days"], npts=101)
    fig = ml.plot.profile_density(profile, which=[".sigma", "Days"], npts=101)
    for a, name in zip(fig.axes, [".sigma", "Days"]):
        np.testing.assert_allclose(
            a.lines[0].get_xydata(), f[f.parameter == name][["value", "density"]].to_numpy()
        )
        assert a.get_title() == name


# ---------------------------------------------------------- bootstrap density
def test_kde_matches_r_density(plot_ref):
    ref = plot_ref["density"]
    grid, dens, bw = ml.plot.kde(ref["x"])
    assert bw == pytest.approx(ref["bw"], rel=1e-12)
    np.testing.assert_allclose(grid, ref["grid"], rtol=1e-12)
    # R's density() bins the data on a grid before its FFT; ours is the exact sum
    np.testing.assert_allclose(dens, ref["y"], rtol=0, atol=2e-3 * max(ref["y"]))


def test_boot_density_frame_is_the_kde_of_the_replicates(sleep, boot):
    reps = boot.attrs["replicates"]
    f = ml.plot.boot_density_frame(boot, model=sleep)
    assert list(f["parameter"].cat.categories) == list(reps.columns)
    for name in reps.columns:
        sub = f[(f.parameter == name) & (f.kind == "density")]
        v = reps[name].dropna().to_numpy()
        bw = 0.9 * min(v.std(ddof=1), stats.iqr(v) / 1.34) * v.size**-0.2
        direct = (
            stats.norm.pdf((sub["value"].to_numpy()[:, None] - v[None, :]) / bw).mean(axis=1) / bw
        )
        np.testing.assert_allclose(sub["density"], direct, rtol=1e-12)
        assert len(sub) == 512 and (sub["n_singular"] == 0).all()


def test_boot_density_marks_singular_replicates(dyestuff2):
    ci = dyestuff2.confint("boot", nsim=100, seed=5, progress=False)
    reps = ci.attrs["replicates"]
    f = ml.plot.boot_density_frame(ci, model=dyestuff2)
    singular = int((reps[".sig01"] < 1e-4 * reps[".sigma"]).sum())
    assert 0 < singular < 100
    spike = f[(f.parameter == ".sig01") & (f.kind == "spike")]
    assert spike[["value", "density", "n_singular", "n_replicates"]].to_numpy().tolist() == [
        [0.0, singular / 100, singular, 100]
    ]
    den = f[(f.parameter == ".sig01") & (f.kind == "density")]
    # density and spike share the probability: the curve integrates to the non-singular share
    assert np.trapezoid(den["density"], den["value"]) == pytest.approx(1 - singular / 100, abs=2e-3)
    ax = dyestuff2.plot.boot_density(ci, which=[".sig01"])
    np.testing.assert_allclose(ax.lines[0].get_xydata(), den[["value", "density"]].to_numpy())
    (bar,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    seg = np.array(bar.get_segments())[0]
    np.testing.assert_allclose(seg, [[0.0, 0.0], [0.0, den["density"].max()]])
    assert ax.texts[0].get_text() == f"{singular} of 100 at 0"


def test_boot_density_tells_correlations_from_sds_without_the_model(sleep, boot):
    with_model = ml.plot.boot_density_frame(boot, model=sleep)
    without = ml.plot.boot_density_frame(boot)
    pd.testing.assert_frame_equal(with_model, without)


def test_boot_density_needs_bootstrap_replicates(sleep):
    with pytest.raises(
        ml.OptionError, match=r"boot_density needs the intervals of m.confint\('boot'\)"
    ):
        ml.plot.boot_density(sleep.confint("wald"))
    with pytest.raises(ml.OptionError, match=r"no parameter\(s\) \['sigma'\]"):
        ml.plot.boot_density_frame(
            sleep.confint("boot", nsim=20, seed=1, progress=False), which=["sigma"]
        )
