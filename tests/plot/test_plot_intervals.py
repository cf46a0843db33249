"""The forest plot of intervals: the frame is the interval tables, the drawing is the frame."""

import matplotlib
import numpy as np
import pytest
from matplotlib.collections import LineCollection

import pymlm as ml

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def sleep():
    return ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def cis(sleep):
    return {
        "wald": sleep.confint("wald"),
        "profile": sleep.confint("profile", progress=False),
        "boot": sleep.confint("boot", nsim=100, seed=2, progress=False),
        "blb": sleep.confint("blb", seed=3, progress=False, n_subsets=3, n_boots=20),
    }


def test_frame_is_long_and_equals_the_tables(cis):
    f = ml.plot.intervals_frame(cis, truth={"Days": 10.0, ".sigma": 25.0})
    assert list(f.columns) == [
        "parameter",
        "method",
        "panel",
        "estimate",
        "lower",
        "upper",
        "width",
        "truth",
    ]
    for method, ci in cis.items():
        sub = f[f.method == method].set_index("parameter")
        shown = ci.dropna(how="all")
        assert list(sub.index) == list(shown.index)
        np.testing.assert_array_equal(sub["lower"], shown.iloc[:, 0])
        np.testing.assert_array_equal(sub["upper"], shown.iloc[:, 1])
        np.testing.assert_allclose(sub["width"], shown.iloc[:, 1] - shown.iloc[:, 0], rtol=1e-15)
    # the Wald method has no variance components
    assert set(f[f.method == "wald"]["panel"]) == {"fixed"}
    assert set(f[f.panel == "variance"]["parameter"]) == {".sig01", ".sig02", ".sig03", ".sigma"}
    # estimates: the BLB table's own, the profile's ML estimates, none for boot and Wald
    blb = f[f.method == "blb"].set_index("parameter")["estimate"]
    np.testing.assert_array_equal(blb, cis["blb"].attrs["estimates"].loc[blb.index])
    prof = f[f.method == "profile"].set_index("parameter")["estimate"]
    np.testing.assert_array_equal(prof, cis["profile"].attrs["profile"].estimates.loc[prof.index])
    assert f[f.method.isin(["boot", "wald"])]["estimate"].isna().all()
    assert f.set_index(["parameter", "method"])["truth"].loc[("Days", "boot")] == 10.0
    assert f[~f.parameter.isin(["Days", ".sigma"])]["truth"].isna().all()


def test_model_accessor_gives_the_model_estimates(sleep, cis):
    f = sleep.plot.intervals_frame(cis)
    est = f.drop_duplicates("parameter").set_index("parameter")["estimate"]
    assert est["Days"] == sleep.fixef["Days"]
    assert est[".sigma"] == pytest.approx(sleep.sigma, rel=1e-14)
    assert est[".sig01"] == pytest.approx(np.sqrt(sleep.varcorr["vcov"][0]), rel=1e-12)


def test_forest_draws_the_frame(sleep, cis):
    truth = {"Days": 10.0, ".sig01": 24.0}
    f = sleep.plot.intervals_frame(cis, truth=truth)
    fig = sleep.plot.intervals(cis, truth=truth)
    assert [a.get_title() for a in fig.axes] == ["variance components", "fixed effects"]
    methods = list(cis)
    for a, panel in zip(fig.axes, ["variance", "fixed"]):
        sub = f[f.panel == panel]
        params = list(dict.fromkeys(sub["parameter"]))
        assert [t.get_text() for t in a.get_yticklabels()] == params
        assert a.get_ylim()[0] > a.get_ylim()[1]  # the first parameter on top
        segs = {
            c.get_label(): np.array(c.get_segments())
            for c in a.collections
            if isinstance(c, LineCollection)
        }
        for method in methods:
            s = sub[sub.method == method]
            if s.empty:
                assert method not in segs
                continue
            seg = segs[method]
            np.testing.assert_array_equal(seg[:, 0, 0], s["lower"])
            np.testing.assert_array_equal(seg[:, 1, 0], s["upper"])
            # dodged: each method on its own offset inside the parameter's row
            offset = seg[:, 0, 1] - np.array([params.index(p) for p in s["parameter"]])
            assert np.ptp(offset) < 1e-12 and abs(offset[0]) < 0.5
        tr = segs["truth"]
        want = [truth[p] for p in params if p in truth]
        np.testing.assert_array_equal(tr[:, 0, 0], want)
        np.testing.assert_array_equal(tr[:, 1, 0], want)


def test_one_panel_per_parameter(cis):
    fig = ml.plot.intervals(cis, panels="parameter")
    f = ml.plot.intervals_frame(cis)
    assert [a.get_title() for a in fig.axes if a.get_visible()] == list(
        f["parameter"].cat.categories
    )
    days = next(a for a in fig.axes if a.get_title() == "Days")
    assert [t.get_text() for t in days.get_yticklabels()] == list(cis)


def test_the_legend_of_a_parameter_grid_is_beside_the_panels(cis):
    truth = {"Days": 10.0, ".sigma": 25.0}
    fig = ml.plot.intervals(cis, truth=truth, panels="parameter", ncols=3)
    panels = [a for a in fig.axes if a.get_visible()]
    legends = [a.get_legend() for a in panels if a.get_legend() is not None]
    assert len(legends) == 1
    # every method (wald has no interval in the last panel) and the truth
    assert [t.get_text() for t in legends[0].get_texts()] == [*cis, "truth"]
    fig.canvas.draw()
    box = legends[0].get_window_extent()
    for a in panels:
        inner = a.get_window_extent()
        overlap_x = min(box.x1, inner.x1) - max(box.x0, inner.x0)
        overlap_y = min(box.y1, inner.y1) - max(box.y0, inner.y0)
        assert overlap_x <= 0 or overlap_y <= 0, f"the legend covers the panel {a.get_title()}"


def test_a_single_table_and_bad_input(sleep, cis):
    fig = ml.plot.intervals(cis["wald"])
    assert [a.get_title() for a in fig.axes if a.get_visible()] == ["fixed effects"]
    with pytest.raises(ml.OptionError, match=r"intervals needs a dict of interval tables"):
        ml.plot.intervals([cis["wald"]])
    with pytest.raises(
        ml.OptionError, match=r"truth names parameters without intervals: \['days'\]"
    ):
        ml.plot.intervals_frame(cis, truth={"days": 10})
    with pytest.raises(
        ml.OptionError, match=r"panels must be one of 'kind', 'parameter'; got 'param'"
    ):
        ml.plot.intervals(cis, panels="param")
    with pytest.raises(ml.OptionError, match=r"the entry 'x' must be an interval table"):
        ml.plot.intervals_frame({"x": sleep.fixef})
