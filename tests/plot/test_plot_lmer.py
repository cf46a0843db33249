"""Plots of linear mixed models: the drawing equals the frame, the frame the model and lme4.

lme4 reference (tests/reference/make_plot_reference.R): the level order of
``dotplot(ranef(m, condVar = TRUE))`` (``reorder`` by the first column),
``coef(lmList(Reaction ~ Days | Subject))`` for the shrinkage plot's
unshrunk estimates, and lattice's quartile line of ``qqmath(m)``.
"""

import matplotlib
import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.quiver import Quiver
from scipy import stats

import pymlm as ml

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def sleep(reference_fits):
    return reference_fits("sleepstudy")


@pytest.fixture(scope="module")
def dyestuff(reference_fits):
    return reference_fits("dyestuff")


@pytest.fixture(scope="module")
def penicillin(reference_fits):
    return reference_fits("penicillin")


def _collections(ax, kind):
    return [c for c in ax.collections if type(c) is kind]


# ------------------------------------------------------------------ caterpillar
def test_caterpillar_frame_is_the_conditional_modes_and_sds(sleep, plot_ref):
    f = sleep.plot.caterpillar_frame(level=0.9)
    modes, pv = sleep.get_ranef(cond_var=True)["Subject"]
    z = stats.norm.ppf(0.95)
    for j, term in enumerate(modes.columns):
        sub = f[f.term == term].set_index("level")
        np.testing.assert_allclose(sub.loc[modes.index, "estimate"], modes[term], rtol=0, atol=0)
        np.testing.assert_allclose(sub.loc[modes.index, "sd"], np.sqrt(pv[:, j, j]), rtol=1e-15)
        np.testing.assert_allclose(sub["upper"] - sub["estimate"], z * sub["sd"], rtol=1e-12)
        np.testing.assert_allclose(sub["estimate"] - sub["lower"], z * sub["sd"], rtol=1e-12)
    # levels in lme4's order: by the mode of the first column, the same in every panel
    assert list(f["level"].cat.categories) == plot_ref["lme4"]["sleepstudy_order"]
    for term in modes.columns:
        assert list(f[f.term == term]["level"]) == plot_ref["lme4"]["sleepstudy_order"]


def test_caterpillar_order_of_crossed_factors_matches_lme4(penicillin, plot_ref):
    for group in ("plate", "sample"):
        f = penicillin.plot.caterpillar_frame(group)
        est = f.set_index("level")["estimate"]
        # Penicillin is balanced: several plates have the same mode, which lme4 orders by
        # rounding noise; lme4's order must sort ours, and ties keep the level order
        ref = est.loc[plot_ref["lme4"]["penicillin_order"][group]].to_numpy()
        assert np.all(np.diff(ref) > -1e-10)
        assert np.all(np.diff(f["estimate"]) > -1e-10)
        ties = np.abs(np.diff(f["estimate"])) < 1e-10
        labels = list(f["level"])
        assert all(labels[i] < labels[i + 1] for i in np.flatnonzero(ties))
    # the default grouping factor is the model's first, as MixedModelsMakie
    assert penicillin.plot.caterpillar_frame()["group"].iloc[0] == next(iter(penicillin.ranef))


def test_caterpillar_draws_the_frame(sleep):
    f = sleep.plot.caterpillar_frame()
    fig = sleep.plot.caterpillar()
    assert [a.get_title() for a in fig.axes] == ["(Intercept)", "Days"]
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == list(f["level"].cat.categories)
    for a, term in zip(fig.axes, ["(Intercept)", "Days"]):
        sub = f[f.term == term]
        (seg,) = _collections(a, LineCollection)
        segs = np.array(seg.get_segments())
        np.testing.assert_allclose(segs[:, 0, 0], sub["lower"], rtol=1e-13)
        np.testing.assert_allclose(segs[:, 1, 0], sub["upper"], rtol=1e-13)
        np.testing.assert_array_equal(segs[:, 0, 1], np.arange(len(sub)))
        (pts,) = _collections(a, PathCollection)
        np.testing.assert_allclose(
            pts.get_offsets(), np.column_stack([sub["estimate"], sub["position"]])
        )


def test_caterpillar_one_column_is_an_axes_and_accepts_ax(dyestuff):
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    out = dyestuff.plot.caterpillar(ax=ax, order_by=None)
    assert out is ax
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A", "B", "C", "D", "E", "F"]
    f = ml.plot.caterpillar_frame(dyestuff, order_by=None)
    assert list(f["level"]) == ["A", "B", "C", "D", "E", "F"]


def test_caterpillar_order_by_another_column(sleep):
    f = ml.plot.caterpillar_frame(sleep, order_by="Days")
    days = f[f.term == "Days"]["estimate"].to_numpy()
    assert np.all(np.diff(days) >= 0)
    with pytest.raises(ml.OptionError, match=r"order_by must be None or one of the columns"):
        ml.plot.caterpillar_frame(sleep, order_by="Dayz")


def test_caterpillar_bad_input(sleep):
    with pytest.raises(
        ml.OptionError, match=r"group \(of caterpillar\) must be one of 'Subject'; got 'Subj'"
    ):
        sleep.plot.caterpillar("Subj")
    with pytest.raises(ml.OptionError, match=r"level must be a number in \(0, 1\)"):
        sleep.plot.caterpillar(level=95)
    with pytest.raises(
        ml.OptionError, match=r"caterpillar needs a model fitted by pymlm.lmer\(\); got DataFrame"
    ):
        ml.plot.caterpillar(ml.datasets.load("sleepstudy"))


def test_ranef_is_an_alias_of_caterpillar(sleep):
    fig = sleep.plot.ranef()
    assert [a.get_title() for a in fig.axes] == ["(Intercept)", "Days"]


# ------------------------------------------------------------------- ranef QQ
def test_ranef_qq_frame_and_drawing(sleep):
    f = sleep.plot.ranef_qq_frame()
    modes = sleep.ranef["Subject"]
    q = stats.norm.ppf((np.arange(1, 19) - 0.5) / 18)
    fig = sleep.plot.ranef_qq()
    for a, term in zip(fig.axes, modes.columns):
        sub = f[f.term == term]
        np.testing.assert_allclose(sub["estimate"], np.sort(modes[term]), rtol=0, atol=0)
        np.testing.assert_allclose(sub["theoretical"], q, rtol=1e-14)
        (seg,) = _collections(a, LineCollection)
        segs = np.array(seg.get_segments())
        np.testing.assert_allclose(segs[:, 0], np.column_stack([sub["lower"], q]), rtol=1e-13)
        np.testing.assert_allclose(segs[:, 1], np.column_stack([sub["upper"], q]), rtol=1e-13)


# ------------------------------------------------------------------ residuals
def test_residuals_fitted_draws_pearson_residuals(sleep):
    f = sleep.plot.residuals_frame()
    np.testing.assert_allclose(f["fitted"], sleep.fitted, rtol=0, atol=0)
    np.testing.assert_allclose(f["residual"], sleep.residuals(type="pearson"), rtol=0, atol=0)
    ax = sleep.plot()  # lme4's plot(m)
    (pts,) = _collections(ax, PathCollection)
    np.testing.assert_allclose(pts.get_offsets(), f[["fitted", "residual"]].to_numpy())
    assert ax.get_ylabel() == "pearson residuals"


def test_residuals_qq_matches_lattice(sleep, plot_ref):
    f = sleep.plot.qq_frame()
    r = sleep.residuals(type="pearson", scaled=True)
    np.testing.assert_allclose(f["residual"], np.sort(r), rtol=0, atol=0)
    np.testing.assert_allclose(f["residual"], r[f["row"]], rtol=0, atol=0)
    n = r.size
    np.testing.assert_allclose(
        f["theoretical"], stats.norm.ppf((np.arange(1, n + 1) - 0.5) / n), rtol=1e-14
    )
    ref = plot_ref["lme4"]["qq_line"]
    assert f.attrs["line"]["slope"] == pytest.approx(ref["slope"], rel=1e-6)
    # the residuals agree with lme4's to the optimizer's precision
    assert f.attrs["line"]["intercept"] == pytest.approx(ref["intercept"], abs=1e-5)
    ax = sleep.plot.qq()
    (pts,) = _collections(ax, PathCollection)
    np.testing.assert_allclose(pts.get_offsets(), f[["theoretical", "residual"]].to_numpy())
    (line,) = ax.lines
    xy = line.get_xydata()
    np.testing.assert_allclose(
        xy[:, 1], f.attrs["line"]["intercept"] + f.attrs["line"]["slope"] * xy[:, 0]
    )


# ------------------------------------------------------------------ shrinkage
def test_shrinkage_frame_unshrunk_is_lmlist_and_conditional_is_coef(sleep, plot_ref):
    f = sleep.plot.shrinkage_frame()
    ref = plot_ref["lme4"]["lmlist"]
    coef = sleep.coef["Subject"]
    for term, key in (("(Intercept)", "intercept"), ("Days", "Days")):
        sub = f[f.term == term].set_index("level")
        np.testing.assert_allclose(sub.loc[ref["level"], "ols"], ref[key], rtol=1e-10)
        np.testing.assert_allclose(sub.loc[coef.index, "conditional"], coef[term], rtol=1e-14)
        assert (sub["population"] == sleep.fixef[term]).all()


def test_shrinkage_one_column_is_the_group_mean(dyestuff):
    d = ml.datasets.load("Dyestuff")
    f = ml.plot.shrinkage_frame(dyestuff)
    means = d.groupby("Batch", observed=True)["Yield"].mean()
    np.testing.assert_allclose(f.set_index("level").loc[means.index, "ols"], means, rtol=1e-12)
    ax = dyestuff.plot.shrinkage()
    (seg,) = _collections(ax, LineCollection)
    order = np.argsort(f["conditional"].to_numpy(), kind="stable")
    segs = np.array(seg.get_segments())
    np.testing.assert_allclose(segs[:, 0, 0], f["ols"].to_numpy()[order], rtol=1e-13)
    np.testing.assert_allclose(segs[:, 1, 0], f["conditional"].to_numpy()[order], rtol=1e-13)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(f["level"].to_numpy()[order])


def test_shrinkage_arrows_go_from_ols_to_conditional(sleep):
    f = sleep.plot.shrinkage_frame()
    ax = sleep.plot.shrinkage()
    (q,) = [c for c in ax.collections if isinstance(c, Quiver)]
    ols = f.pivot(index="level", columns="term", values="ols").loc[list(dict.fromkeys(f.level))]
    cond = f.pivot(index="level", columns="term", values="conditional").loc[ols.index]
    np.testing.assert_allclose(q.get_offsets(), ols[["(Intercept)", "Days"]].to_numpy(), rtol=1e-13)
    np.testing.assert_allclose(
        q.get_offsets() + np.column_stack([q.U, q.V]),
        cond[["(Intercept)", "Days"]].to_numpy(),
        rtol=1e-12,
    )
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("(Intercept)", "Days")
    pop = next(c for c in _collections(ax, PathCollection) if c.get_label() == "population")
    np.testing.assert_allclose(pop.get_offsets(), [sleep.fixef.to_numpy()])


def test_shrinkage_of_one_factor_of_a_crossed_model(penicillin):
    d = ml.datasets.load("Penicillin")
    f = penicillin.plot.shrinkage_frame("sample")
    # the unshrunk estimate of a sample: the mean of its rows after removing the plate effects
    plate = penicillin.ranef["plate"]["(Intercept)"]
    adj = d["diameter"] - plate.loc[d["plate"].astype(str)].to_numpy()
    means = adj.groupby(d["sample"], observed=True).mean()
    np.testing.assert_allclose(f.set_index("level").loc[means.index, "ols"], means, rtol=1e-12)
    with pytest.raises(ml.OptionError, match=r"no random-effect column\(s\) \['Days'\]"):
        penicillin.plot.shrinkage("sample", terms=["Days"])
