"""The site pieces add up to the pooled evaluator's; the coordinator's sum evaluator is the pooled one."""

import numpy as np
import pandas as pd
import pytest
from _fed_data import longitudinal, longitudinal_sites, sleepstudy_sites

import pymlm as ml
import pymlm.federated as fed
from pymlm.federated import Coordinator, SiteSumEvaluator
from pymlm.fit.deviance import evaluator_for

FORMULA = "Reaction ~ Days + (Days | Subject)"


def _coordinator(sites, formula=FORMULA, reml=True, **kw):
    co = Coordinator(sites, formula, reml, **kw)
    co.describe()
    co.setup()
    return co


@pytest.mark.parametrize("kind", ["dense", "single", "blocked"])
def test_site_pieces_gradient_matches_differences(kind):
    m = ml.lmer(FORMULA, ml.datasets.load("sleepstudy"))
    ev = evaluator_for(m.crossprod, True, m.problem.tmap, kind)
    theta = np.array([0.9, 0.1, 0.3])
    sp = ev.site_pieces(theta, grad=True)
    assert np.allclose(sp.D, ev.at(theta).L_XX @ ev.at(theta).L_XX.T)
    for i in range(3):
        h = np.zeros(3)
        h[i] = 1e-5
        fd = (ev.site_pieces(theta + h).D - ev.site_pieces(theta - h).D) / 2e-5
        assert np.max(np.abs(fd - sp.dD[i])) < 1e-6 * np.max(np.abs(fd))


@pytest.mark.parametrize("reml", [True, False])
def test_sum_evaluator_equals_pooled_value_and_gradient(reml):
    df, sites = sleepstudy_sites()
    co = _coordinator(sites, reml=reml)
    ev = SiteSumEvaluator(co, reml)
    m = ml.lmer(FORMULA, df, REML=reml)
    pooled = evaluator_for(m.crossprod, reml, m.problem.tmap)
    for theta in ([0.9, 0.1, 0.3], [1.0, 0.0, 1.0], [0.2, -0.5, 0.05]):
        f, g = ev.value_and_grad(np.array(theta))
        f0, g0 = pooled.value_and_grad(np.array(theta))
        assert f == pytest.approx(f0, rel=1e-12)
        assert np.allclose(g, g0, rtol=1e-8, atol=1e-8 * np.max(np.abs(g0)))
    assert co.n == 180 and co.nlevels == {"Subject": 18}


def test_agreed_factor_levels_when_a_site_lacks_one():
    df = longitudinal(200)
    pooled, sites = longitudinal_sites(df, 4)
    co = _coordinator(sites, "y ~ time + arm + age + (time | subject)")
    m = ml.lmer("y ~ time + arm + age + (time | subject)", pooled)
    assert co.X_names == list(m.fixef.index) == ["(Intercept)", "time", "armhigh", "armlow", "age"]
    ev = SiteSumEvaluator(co, True)
    pe = evaluator_for(m.crossprod, True, m.problem.tmap)
    assert ev(np.array([0.8, 0.1, 0.4])) == pytest.approx(pe(np.array([0.8, 0.1, 0.4])), rel=1e-12)


def test_levels_spanning_sites_are_refused():
    df = ml.datasets.load("Penicillin")
    plates = sorted(df.plate.astype(str).unique())
    sites = [
        fed.LocalSite(df[df.plate.astype(str).isin(plates[i::2])], name=f"S{i}") for i in range(2)
    ]
    # 'sample' is crossed with 'plate': every sample has rows at both sites
    with pytest.raises(fed.FederationError, match="grouping factor 'sample' have rows at sites"):
        fed.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", sites)


def test_disclosure_filters_and_round_budget():
    _, sites = sleepstudy_sites()
    with pytest.raises(fed.FederationError, match="fewer than min_groups=7 levels of 'Subject'"):
        fed.lmer(FORMULA, sites, min_groups=7)
    with pytest.raises(fed.FederationError, match="fewer than min_rows=61"):
        fed.lmer(FORMULA, sites, min_rows=61)
    with pytest.raises(fed.FederationError, match="round budget max_rounds=5"):
        fed.lmer(FORMULA, sites, max_rounds=5)


def test_bad_options():
    df, sites = sleepstudy_sites()
    with pytest.raises(ml.OptionError, match="topology must be"):
        fed.lmer(FORMULA, sites, topology="mesh")
    with pytest.raises(ml.OptionError, match="on_failure must be"):
        fed.lmer(FORMULA, sites, on_failure="ignore")
    with pytest.raises(ml.OptionError, match="site names must be unique"):
        fed.lmer(FORMULA, [sites[0], fed.LocalSite(df, name="A")])


def test_stateful_transforms_are_refused():
    _, sites = sleepstudy_sites()
    with pytest.raises(fed.FederationError, match="data-dependent transforms"):
        fed.lmer("Reaction ~ scale(Days) + (Days | Subject)", sites)


def test_user_supplied_levels_set_the_columns():
    df = longitudinal(200)
    pooled, sites = longitudinal_sites(df, 4)
    order = ["low", "ctrl", "high"]
    formula = "y ~ time + arm + (time | subject)"
    f = fed.lmer(formula, sites, levels={"arm": order})
    m = ml.lmer(formula, pooled.assign(arm=pd.Categorical(pooled.arm, categories=order)))
    assert (
        list(f.fixef.index) == list(m.fixef.index) == ["(Intercept)", "time", "armctrl", "armhigh"]
    )
    assert np.max(np.abs(f.fixef - m.fixef) / m.fixef_se) <= 1e-8


def test_site_level_random_effects_are_refused_clearly():
    df = longitudinal(90)
    parts = [df.iloc[k * 180 : (k + 1) * 180].assign(hospital=f"h{k}") for k in range(3)]
    sites = [fed.LocalSite(p, name=f"s{k}") for k, p in enumerate(parts)]
    with pytest.raises(
        fed.FederationError, match="grouping factor 'hospital' has one level at site 's0'"
    ):
        fed.lmer("y ~ time + (1 | hospital) + (1 | subject)", sites)
