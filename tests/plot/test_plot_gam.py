"""GAM plots and checks against mgcv: plot.gam's curves, k.check, gam.check, vis.gam.

mgcv reference (tests/reference/make_plot_reference.R) on the data of
tests/reference/smooth_cases_data.csv: the curves ``plot.gam`` computes
(its ``se`` is the standard error times 2 for 1-D smooths, times 1 for 2-D
ones), with ``seWithMean``, and the partial residuals; ``k.check`` with
``n.rep = 400`` and, for the p-value's expectation, ``n.rep = 20000``; the
grid and prediction ``vis.gam`` draws.

Tolerances follow the fits: most of these fits agree with mgcv to about
1e-7, ``te(x, z)``, the factor smooth and the nearly linear binomial
``s(z)`` (flat REML criteria) to about 1e-3.
"""

import matplotlib
import numpy as np
import pandas as pd
import pytest
from _smooth_data import smooth_cases
from matplotlib.collections import LineCollection, PathCollection, QuadMesh
from scipy import stats

import pymlm as ml

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def d():
    return smooth_cases()


_FITS: dict = {}


def fit(d, formula, family="gaussian"):
    key = (formula, family)
    if key not in _FITS:
        _FITS[key] = ml.gam(formula, d, family=family)
    return _FITS[key]


def _num(values):
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy()


# ------------------------------------------------------------------ plot.gam
@pytest.mark.parametrize("case", ["cr_ps", "by_fac", "te", "tp2", "binomial"])
def test_smooths_frame_matches_plot_gam(d, plot_ref, case):
    ref = plot_ref["plot_gam"][case]
    b = fit(d, ref["formula"], ref["family"])
    f = ml.plot.smooths_frame(b)
    fw = ml.plot.smooths_frame(b, se_with_mean=True)
    pr = ml.plot.partial_residuals_frame(b)
    flat = case == "te"
    for t in ref["terms"]:
        sub, subw = f[f.term == t["label"]], fw[fw.term == t["label"]]
        mult = 2 if t["dim"] == 1 else 1
        rfit, rse, rsew = _num(t["fit"]), _num(t["se"]), _num(t["se_with_mean"])
        if t["dim"] == 1:
            np.testing.assert_allclose(sub["x"], t["x"], rtol=1e-14)
            assert (sub["type"] == "1d").all()
        else:
            np.testing.assert_allclose(sub["x"], np.tile(t["x"], len(t["y"])), rtol=1e-14)
            np.testing.assert_allclose(sub["z"], np.repeat(t["y"], len(t["x"])), rtol=1e-14)
        # the grid points mgcv leaves out (too.far = 0.1) are NaN here too
        np.testing.assert_array_equal(np.isnan(sub["estimate"]), np.isnan(rfit))
        scale = np.nanmax(np.abs(rfit))
        np.testing.assert_allclose(
            sub["estimate"], rfit, rtol=0, atol=(1e-3 if flat else 1e-5) * scale
        )
        wide = flat or (case == "binomial" and t["label"] == "s(z)")
        tol = (5e-3 if wide else 1e-5) * np.nanmax(rse)
        np.testing.assert_allclose(mult * sub["se"], rse, rtol=0, atol=tol)
        np.testing.assert_allclose(mult * subw["se"], rsew, rtol=0, atol=tol)
        np.testing.assert_allclose(sub["upper"] - sub["estimate"], 2 * sub["se"], rtol=1e-12)
        if t["dim"] == 1 and ":" not in t["label"]:
            p = pr[pr.term == t["label"]]
            np.testing.assert_allclose(
                p["residual"], t["p_resid"], rtol=0, atol=1e-4 * np.ptp(t["p_resid"])
            )


def test_smooth_estimates_add_up_to_predict(d):
    b = fit(d, 'y ~ s(x, bs = "cr") + s(z, bs = "ps")')
    f = b.plot.smooths_frame()
    fx, fz = f[f.term == "s(x)"], f[f.term == "s(z)"]
    nd = pd.DataFrame({"x": fx["x"].to_numpy(), "z": fz["x"].to_numpy()})
    pred = b.predict(nd)
    np.testing.assert_allclose(
        fx["estimate"].to_numpy() + fz["estimate"].to_numpy() + b.coef["(Intercept)"],
        pred,
        rtol=1e-12,
        atol=1e-12,
    )


def test_smooths_draws_the_frame(d):
    b = fit(
        d, 'y ~ s(x, bs = "cr") + te(x, z, k = 4) + s(x, fac, bs = "fs", k = 4) + s(g, bs = "re")'
    )
    f = b.plot.smooths_frame()
    res = b.plot.partial_residuals_frame()
    fig = b.plot(residuals=True)  # mgcv's plot(b)
    axes = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    one, two, fs, re = axes
    # 1-D: estimate and the +-2 SE lines, the rug, the partial residuals
    s1 = f[f.term == "s(x)"]
    est, hi, lo = one.lines
    np.testing.assert_allclose(est.get_xydata(), s1[["x", "estimate"]].to_numpy())
    np.testing.assert_allclose(hi.get_ydata(), s1["upper"])
    np.testing.assert_allclose(lo.get_ydata(), s1["lower"])
    (rug,) = [c for c in one.collections if isinstance(c, LineCollection)]
    np.testing.assert_allclose(np.array(rug.get_segments())[:, 0, 0], d["x"])
    (pts,) = [c for c in one.collections if isinstance(c, PathCollection)]
    np.testing.assert_allclose(
        pts.get_offsets(), res[res.term == "s(x)"][["x", "residual"]].to_numpy()
    )
    assert one.get_ylabel() == f"s(x,{round(float(b.edf['s(x)']), 2):g})"
    # 2-D: the image holds the estimates on the grid, x varying fastest
    s2 = f[f.term == "te(x,z)"]
    (mesh,) = [c for c in two.collections if isinstance(c, QuadMesh)]
    np.testing.assert_allclose(
        mesh.get_array().filled(np.nan).ravel(), s2["estimate"], equal_nan=True
    )
    assert (two.get_xlabel(), two.get_ylabel()) == ("x", "z")
    # factor smooth: one curve per level
    s3 = f[f.term == "s(x,fac)"]
    assert [ln.get_label() for ln in fs.lines] == ["a", "b", "c", "d"]
    for ln, lev in zip(fs.lines, "abcd"):
        np.testing.assert_allclose(ln.get_ydata(), s3[s3.level == lev]["estimate"])
    # random effect: a QQ plot of the predicted effects
    s4 = f[f.term == "s(g)"]
    np.testing.assert_allclose(
        s4["estimate"], np.sort(b.ranef["s(g)"]["(Intercept)"]), rtol=0, atol=0
    )
    np.testing.assert_allclose(s4["x"], stats.norm.ppf((np.arange(1, 13) - 0.5) / 12), rtol=1e-14)
    (qq,) = [c for c in re.collections if isinstance(c, PathCollection)]
    np.testing.assert_allclose(qq.get_offsets(), s4[["x", "estimate"]].to_numpy())


def test_smooths_of_a_bar_term_and_one_panel(d):
    b = ml.gam('y ~ x + s(z, bs = "cr") + (1 + x | g)', d)
    f = b.plot.smooths_frame(terms=["(1 + x | g)"])
    assert list(dict.fromkeys(f["level"])) == ["(Intercept)", "x"]
    est = f[f.level == "x"]["estimate"].to_numpy()
    np.testing.assert_allclose(est, np.sort(b.ranef["(1 + x | g)"]["x"]), rtol=0, atol=0)
    ax = b.plot(terms=["s(z)"], rug=False)
    assert ax.get_xlabel() == "z" and len(ax.collections) == 0
    with pytest.raises(ml.DataError, match=r"no term\(s\) \['s\(w\)'\] in the model"):
        b.plot.smooths_frame(terms=["s(w)"])
    with pytest.raises(
        ml.OptionError, match=r"smooths needs a model fitted by pymlm.gam\(\) or pymlm.bam\(\)"
    ):
        ml.plot.smooths(ml.lmer("y ~ x + (1 | g)", d))


# ------------------------------------------------------------------ k.check
@pytest.mark.parametrize(
    "case", ["cr_ps", "low_k", "tp2", "te", "by_fac", "tp_re", "fs", "poisson"]
)
def test_k_check_matches_mgcv(d, plot_ref, case):
    ref = plot_ref["k_check"][case]
    b = fit(d, ref["formula"], ref["family"])
    k = ml.plot.k_check(b, seed=1)
    assert list(k.columns) == ["k'", "edf", "k-index", "p-value"]
    assert list(k.index) == [r["term"] for r in ref["table"]]
    flat = case in ("te", "fs", "poisson")  # poisson: s(z) is linear, its sp tends to infinity
    for r, p_big in zip(ref["table"], np.atleast_1d(_num(ref["p_value_20000"]))):
        row = k.loc[r["term"]]
        assert row["k'"] == r["k"]
        assert row["edf"] == pytest.approx(r["edf"], abs=5e-3 if flat else 2e-4)
        k_index = _num([r["k_index"]])[0]
        if np.isnan(k_index):  # random effects: no ordering of a factor
            assert np.isnan(row["k-index"]) and np.isnan(row["p-value"])
            continue
        # the k-index is exact given the residuals: to the precision of the fit
        assert row["k-index"] == pytest.approx(k_index, abs=1e-3 if flat else 2e-6)
        # the p-value is a 400-permutation estimate of mgcv's 20000-permutation one
        sd = np.sqrt(p_big * (1 - p_big) / 400)
        assert abs(row["p-value"] - p_big) < 4.5 * sd + 0.01


@pytest.mark.parametrize("case", ["cr_ps", "tp2", "te", "poisson"])
def test_k_check_p_value_converges_to_mgcvs(d, plot_ref, case):
    ref = plot_ref["k_check"][case]
    b = fit(d, ref["formula"], ref["family"])
    k = ml.plot.k_check(b, n_rep=20000, seed=2)
    p_r = np.atleast_1d(_num(ref["p_value_20000"]))
    sd = np.sqrt(2 * p_r * (1 - p_r) / 20000)  # two independent estimates
    assert np.all(np.abs(k["p-value"].to_numpy() - p_r) < 4.5 * sd + 0.005)


def test_k_check_is_reproducible_and_subsamples(d):
    b = fit(d, 'y ~ s(x, bs = "cr") + s(z, bs = "ps")')
    a1, a2 = ml.plot.k_check(b, seed=7), ml.plot.k_check(b, seed=7)
    pd.testing.assert_frame_equal(a1, a2)
    assert not ml.plot.k_check(b, seed=8)["p-value"].equals(a1["p-value"])
    sub = ml.plot.k_check(b, subsample=150, seed=1)
    assert np.all(np.abs(sub["k-index"] - a1["k-index"]) < 0.3)
    with pytest.raises(ml.OptionError, match=r"n_rep must be a positive integer; got 0"):
        ml.plot.k_check(b, n_rep=0)


# ------------------------------------------------------------------ gam.check
def test_gam_check_frame_gaussian(d):
    b = fit(d, 'y ~ s(x, bs = "cr") + s(z, bs = "ps")')
    f = b.plot.check_frame()
    np.testing.assert_allclose(f["residual"], d["y"] - b.fitted, rtol=0, atol=0)
    np.testing.assert_allclose(f["linear_predictor"], b.linear_predictors, rtol=0, atol=0)
    np.testing.assert_allclose(f["response"], d["y"], rtol=0, atol=0)
    # qq.gam's quantiles of a Gaussian model, sqrt(scale) qnorm((i - 0.5) / n), at each rank
    n = len(d)
    rank = stats.rankdata(f["residual"], method="ordinal")
    np.testing.assert_allclose(
        f["theoretical"], np.sqrt(b.scale) * stats.norm.ppf((rank - 0.5) / n), rtol=1e-10
    )


def test_gam_check_frame_poisson_uses_deviance_residuals(d):
    b = fit(d, 'yc ~ s(x, bs = "cr") + s(z, bs = "cr")', "poisson")
    f = ml.plot.gam_check_frame(b, seed=3)
    y, mu = d["yc"].to_numpy(dtype=float), b.fitted
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = 2 * (np.where(y > 0, y * np.log(y / mu), 0.0) - (y - mu))
    np.testing.assert_allclose(f["residual"], np.sign(y - mu) * np.sqrt(dev), rtol=1e-10)
    np.testing.assert_allclose(
        ml.plot.gam_check_frame(b, seed=3)["theoretical"], f["theoretical"], rtol=0
    )
    # the theoretical quantiles are sorted residuals of Poisson quantiles: increasing with the rank
    order = np.argsort(f["residual"].to_numpy(), kind="stable")
    assert np.all(np.diff(f["theoretical"].to_numpy()[order]) >= 0)
    pr = ml.plot.gam_check_frame(b, type="pearson")["residual"]
    np.testing.assert_allclose(pr, (y - mu) / np.sqrt(mu), rtol=1e-12)


def test_gam_check_draws_the_frame(d):
    b = fit(d, 'y ~ s(x, bs = "cr") + s(z, bs = "ps")')
    f = b.plot.check_frame()
    fig = b.plot.check()
    qq, rl, hi, rf = fig.axes
    srt = f.sort_values("theoretical", kind="stable")
    np.testing.assert_allclose(
        qq.collections[0].get_offsets(), srt[["theoretical", "residual"]].to_numpy()
    )
    np.testing.assert_allclose(
        rl.collections[0].get_offsets(), f[["linear_predictor", "residual"]].to_numpy()
    )
    assert sum(p.get_height() for p in hi.patches) == len(d)
    np.testing.assert_allclose(
        rf.collections[0].get_offsets(), f[["fitted", "response"]].to_numpy()
    )


# ------------------------------------------------------------------ vis.gam
def test_vis_frame_matches_vis_gam(d, plot_ref):
    ref = plot_ref["vis_gam"]
    b = fit(d, ref["formula"])
    f = ml.plot.vis_frame(b, view=["x", "z"])
    np.testing.assert_allclose(f["x"], ref["x"], rtol=1e-14)
    np.testing.assert_allclose(f["z"], ref["z"], rtol=1e-14)
    assert (f["fac"] == ref["fac"]).all() and (f["tot"] == ref["tot"]).all()
    sd = np.std(d["y"])
    np.testing.assert_allclose(f["fit"], ref["fit"], rtol=0, atol=1e-3 * sd)
    np.testing.assert_allclose(f["se"], ref["se"], rtol=5e-3)
    # identity: the surface is the model's prediction at the grid
    np.testing.assert_allclose(f["fit"], b.predict(f[["x", "z", "fac", "tot"]]), rtol=1e-14)
    far = ml.plot.vis_frame(b, too_far_dist=0.05)
    np.testing.assert_array_equal(far["fit"].isna(), ref["too_far_0.05"])


def test_vis_draws_the_frame(d):
    b = fit(d, "y ~ fac + te(x, z) + tot")
    f = b.plot.vis_frame(n_grid=20, cond={"fac": "c"})
    assert (f["fac"] == "c").all()
    ax = b.plot.vis(n_grid=20, cond={"fac": "c"})
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    np.testing.assert_allclose(mesh.get_array().ravel(), f["fit"], rtol=1e-15)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "z")
    ax3 = b.plot.vis(kind="surface", n_grid=10)
    assert ax3.name == "3d"
    with pytest.raises(ml.OptionError, match=r"view must name two different numeric variables"):
        b.plot.vis(view=["x", "fac"])
    with pytest.raises(
        ml.OptionError, match=r"cond names variables the model does not use: \['w'\]"
    ):
        b.plot.vis_frame(cond={"w": 1})
    with pytest.raises(ml.OptionError, match=r"kind must be one of 'contour', 'surface'"):
        b.plot.vis(kind="persp")


def test_vis_cond_level_must_exist(d):
    b = fit(d, "y ~ fac + te(x, z) + tot")
    with pytest.raises(
        ml.OptionError, match=r"cond gives fac the value 'e', which is not one of its"
    ):
        b.plot.vis_frame(cond={"fac": "e"})


def test_smooths_of_a_discrete_bam_and_of_three_covariates(d):
    b = ml.bam('y ~ s(x, bs = "cr") + s(g, bs = "re")', d, discrete=True)
    f = b.plot.smooths_frame(terms=["s(x)"])
    nd = pd.DataFrame(
        {
            "x": f["x"].to_numpy(),
            "g": pd.Categorical(["g01"] * len(f), categories=d["g"].cat.categories),
        }
    )
    g01 = b.ranef["s(g)"].loc["g01", "(Intercept)"]
    np.testing.assert_allclose(
        f["estimate"] + b.coef["(Intercept)"] + g01, b.predict(nd), rtol=1e-12
    )
    b3 = ml.gam("y ~ te(x, z, tot, k = 3) + s(g, bs = 're')", d)
    with pytest.warns(
        ml.PymlmWarning, match=r"three or more covariates are not drawn: \['te\(x,z,tot\)'\]"
    ):
        f3 = b3.plot.smooths_frame()
    assert set(f3["term"]) == {"s(g)"}


def test_a_rug_of_many_rows_marks_each_occupied_cell_once():
    from matplotlib.collections import LineCollection

    from pymlm.plot._gam import _RUG_CELLS

    sim = ml.datasets.load("gamsim_re")
    b = ml.bam('y ~ s(x0, bs = "cr") + s(x2, bs = "cr")', sim, discrete=False)
    ax = b.plot(terms=["s(x2)"], rug=True)
    (rug,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    marks = np.array(rug.get_segments())[:, 0, 0]
    x = sim["x2"].to_numpy()
    assert len(marks) <= _RUG_CELLS + 1 < len(x)
    assert np.isin(marks, x).all()  # marks are data values
    assert marks.min() == x.min() and marks.max() == x.max()
    # every value lies within one cell of a mark, and no cell holds two marks
    width = np.ptp(x) / _RUG_CELLS
    nearest = np.abs(x[:, None] - np.sort(marks)[None, :]).min(axis=1)
    assert nearest.max() <= width
    cells = np.floor((marks - x.min()) / np.ptp(x) * _RUG_CELLS)
    assert np.unique(cells).size == marks.size
