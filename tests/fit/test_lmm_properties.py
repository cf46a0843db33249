"""Properties of the LMM objective and fit: gradient, invariances."""

import warnings

import numpy as np
import pandas as pd
import pytest
from _designs import random_designs
from hypothesis import given
from hypothesis import strategies as st

import pymlm as ml
from pymlm.crossprod import cross_products
from pymlm.fit.deviance import evaluator_for
from pymlm.fit.lmm import fit_lmm


@given(random_designs(), st.booleans(), st.sampled_from(["dense", "single", "blocked"]))
def test_analytic_gradient_matches_finite_differences(d, reml, kernel):
    cp = cross_products(d["codes"], d["Xs"], d["levels"], d["X"], d["y"])
    obj = evaluator_for(cp, reml, kind=kernel)
    value, grad = obj.value_and_grad(d["theta"])
    assert value == pytest.approx(obj(d["theta"]), rel=1e-12)
    assert value == pytest.approx(evaluator_for(cp, reml, kind="blocked")(d["theta"]), rel=1e-10)
    h = 1e-6
    fd = np.array([(obj(d["theta"] + e) - obj(d["theta"] - e)) / (2 * h) for e in np.eye(d["theta"].size) * h])
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-4 * (1 + np.abs(fd).max()))


@given(random_designs(max_terms=2))
def test_frequency_weights_fit_equals_repeated_rows(d):
    fw = d["rng"].integers(1, 3, size=len(d["y"]))
    rep = np.repeat(np.arange(len(d["y"])), fw)
    a = fit_lmm(cross_products(d["codes"], d["Xs"], d["levels"], d["X"], d["y"], freq_weights=fw),
                check_conv=False)
    b = fit_lmm(cross_products([c[rep] for c in d["codes"]], [X[rep] for X in d["Xs"]], d["levels"],
                               d["X"][rep], d["y"][rep]), check_conv=False)
    assert a.deviance == pytest.approx(b.deviance, rel=1e-9)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-5, atol=1e-6)


def test_row_order_and_level_labels_do_not_change_the_fit():
    df = ml.datasets.load("Penicillin")
    base = ml.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", df)
    rng = np.random.default_rng(7)
    shuffled = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
    relabeled = shuffled.copy()
    relabeled["plate"] = "P" + relabeled["plate"].astype(str)
    relabeled["sample"] = pd.Categorical(relabeled["sample"].astype(str)[::-1].to_numpy()[::-1])
    for other in (shuffled, relabeled):
        m = ml.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", other)
        assert m.reml_criterion == pytest.approx(base.reml_criterion, abs=1e-8)
        np.testing.assert_allclose(m.theta, base.theta, atol=1e-5)
        np.testing.assert_allclose(m.fixef, base.fixef, rtol=1e-8)


def test_uncorrelated_terms_share_one_block_and_keep_lme4_theta_order():
    df = ml.datasets.load("sleepstudy")
    a = ml.lmer("Reaction ~ Days + (Days || Subject)", df)
    b = ml.lmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", df)
    assert a.design.theta_names == ["Subject.(Intercept)", "Subject.Days"]
    np.testing.assert_allclose(a.theta, b.theta, atol=1e-8)
    assert list(a.ranef["Subject"].columns) == ["(Intercept)", "Days"]
    assert a.varcorr.grp.tolist() == ["Subject", "Subject.1", "Residual"]


def test_singular_fit_converges_at_the_boundary_from_any_start():
    df = ml.datasets.load("Dyestuff2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ml.SingularFitWarning)
        for start in ("auto", "lme4", [3.0]):
            m = ml.lmer("Yield ~ 1 + (1 | Batch)", df, start=start)
            assert m.theta[0] == 0.0
            assert m.reml_criterion == pytest.approx(161.828277813, abs=1e-6)
