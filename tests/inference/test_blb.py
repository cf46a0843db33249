"""Bag of little bootstraps: resample fits, reproducibility, the interval rule, errors."""

import warnings

import numpy as np
import pandas as pd
import pytest

import pymlm as ml
from pymlm.errors import OptionError, SingularFitWarning
from pymlm.fit.deviance import ClusterEvaluator, evaluator_for
from pymlm.inference import blb

FORMULA = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep(reference_fits):
    return ml.datasets.load("sleepstudy"), reference_fits("sleepstudy")


def _copies(df, codes, clusters, counts):
    """The data set holding counts[j] copies of cluster clusters[j], each copy a group of its own."""
    parts = []
    for cl, c in zip(clusters, counts):
        for k in range(int(c)):
            d = df[codes == cl].copy()
            d["Subject"] = f"{cl}_{k}"
            parts.append(d)
    return pd.concat(parts, ignore_index=True)


def test_one_full_subset_is_the_cluster_bootstrap_by_repeated_rows(sleep):
    df, m = sleep
    N = 18
    ci = m.confint("blb", seed=11, n_subsets=1, subset_size=N, n_boots=3, progress=False)
    subsets, counts = blb.draws(11, N, 1, 3, N)
    np.testing.assert_array_equal(ci.attrs["subsets"], subsets)
    assert sorted(subsets[0]) == list(range(N))          # b = N: every cluster, in a random order
    P = m.problem
    reps = ci.attrs["replicates"]
    regular = 0
    for k in range(3):
        assert counts[0, k].sum() == N
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SingularFitWarning)
            direct = ml.lmer(FORMULA, _copies(df, P.codes[0], subsets[0], counts[0, k]))
        got = reps.loc[reps.replicate == k + 1, P.param_names].to_numpy()[0]
        theta, again = blb.fit_resample(P, P.clusters, counts[0, k], subsets[0], P.fit.theta)
        np.testing.assert_allclose(again, got, rtol=1e-5)
        # the same deviance function, and an optimum at least as good as lmer's on the copies
        obj = ClusterEvaluator(P.clusters, counts[0, k], subsets[0], True, P.tmap)
        dev_direct = evaluator_for(direct.crossprod, True, P.tmap)(direct.theta)
        assert obj(direct.theta) == pytest.approx(dev_direct, rel=1e-10)
        assert obj(theta) <= dev_direct + 1e-6
        if not direct.is_singular:
            regular += 1
            np.testing.assert_allclose(got, P.estimates(direct.fit), rtol=2e-4, atol=1e-3)
    assert regular >= 2


def test_resample_objective_counts_copies_as_separate_groups(sleep):
    df, m = sleep
    P = m.problem
    C = P.clusters
    counts = np.array([0, 3, 1, 0, 2] + [1] * 13)
    obj = ClusterEvaluator(C, counts, np.arange(18), True, P.tmap)
    direct = ml.lmer(FORMULA, _copies(df, P.codes[0], np.arange(18), counts))
    theta = direct.theta * 1.1
    ref = evaluator_for(direct.crossprod, True, P.tmap)(theta)
    assert obj(theta) == pytest.approx(ref, rel=1e-10)
    # one level with its blocks counted three times is a different model
    assert evaluator_for(C.combine(counts), True, P.tmap)(theta) != pytest.approx(ref, rel=1e-6)
    _, grad = obj.value_and_grad(theta)
    h = 1e-6
    num = [(obj(theta + h * e) - obj(theta - h * e)) / (2 * h) for e in np.eye(theta.size)]
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-4)
    # unit counts: the ordinary deviance
    ones = ClusterEvaluator(C, np.ones(18), np.arange(18), True, P.tmap)
    assert ones(theta) == pytest.approx(evaluator_for(P.cp, True, P.tmap)(theta), rel=1e-10)


def test_same_results_for_any_number_of_processes(sleep):
    _, m = sleep
    opts = dict(n_subsets=3, n_boots=6, progress=False)
    a = m.confint("blb", seed=5, n_jobs=1, **opts)
    b = m.confint("blb", seed=5, n_jobs=2, **opts)
    c = m.confint("blb", seed=6, n_jobs=1, **opts)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a.attrs["replicates"], b.attrs["replicates"])
    assert not np.allclose(a.to_numpy(), c.to_numpy())
    seq = np.random.SeedSequence(5)
    d = m.confint("blb", seed=seq, n_jobs=1, **opts)
    e = m.confint("blb", seed=seq, n_jobs=1, **opts)       # the caller's SeedSequence is not consumed
    pd.testing.assert_frame_equal(d, e)


def test_interval_is_the_documented_average(sleep):
    _, m = sleep
    ci = m.confint("blb", seed=2, n_subsets=3, n_boots=20, level=0.9, progress=False)
    assert list(ci.columns) == ["5 %", "95 %"]
    names = m.problem.param_names
    reps = ci.attrs["replicates"]
    sub = ci.attrs["subset_estimates"]
    assert reps.shape == (60, len(names) + 2) and sub.shape == (3, len(names))
    dev = np.stack([reps.loc[reps.subset == j, names].to_numpy() - sub.loc[j].to_numpy() for j in (1, 2, 3)])
    lower = m.problem.estimates() + np.quantile(dev, 0.05, axis=1).mean(axis=0)
    upper = m.problem.estimates() + np.quantile(dev, 0.95, axis=1).mean(axis=0)
    np.testing.assert_allclose(ci.iloc[:, 0], np.maximum(lower, [0, -1, 0, 0, -np.inf, -np.inf]))
    np.testing.assert_allclose(ci.iloc[:, 1], upper)
    raw = m.confint("blb", seed=2, n_subsets=3, n_boots=20, level=0.9, center="subsets", progress=False)
    pd.testing.assert_frame_equal(raw.attrs["replicates"], reps)
    per = np.stack([np.quantile(reps.loc[reps.subset == j, names], [0.05, 0.95], axis=0) for j in (1, 2, 3)])
    np.testing.assert_allclose(raw.to_numpy().T, per.mean(axis=0))
    assert ci.attrs["settings"]["subset_size"] == round(18 ** 0.7)


def test_reasonable_intervals_on_sleepstudy(sleep):
    _, m = sleep
    ci = m.confint("blb", seed=1, n_subsets=3, n_boots=40, progress=False)
    est = m.problem.estimates()
    assert np.all(ci.iloc[:, 0] <= est) and np.all(est <= ci.iloc[:, 1])
    wald = m.confint("wald")
    w_blb = (ci.iloc[-2:, 1] - ci.iloc[-2:, 0]).to_numpy()
    w_wald = (wald.iloc[-2:, 1] - wald.iloc[-2:, 0]).to_numpy()
    assert np.all((w_blb > 0.5 * w_wald) & (w_blb < 1.6 * w_wald))
    assert ci.loc[".sig01"].iloc[0] > 5 and ci.loc[".sig03"].iloc[0] > 1   # sds clearly away from 0
    assert ci.attrs["failed"] == 0


def test_draws_are_multinomial_on_distinct_clusters():
    subsets, counts = blb.draws(3, 1000, 4, 7, 63)
    assert subsets.shape == (4, 63) and counts.shape == (4, 7, 63)
    assert all(np.unique(s).size == 63 for s in subsets)
    assert np.all(counts.sum(axis=2) == 1000)
    assert blb.subset_size_for(100_000, 0.6) == 1000
    assert blb.subset_size_for(18) == 8 and blb.subset_size_for(18, subset_size=18) == 18


def test_several_grouping_factors_are_refused():
    m = ml.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", ml.datasets.load("Penicillin"))
    with pytest.raises(OptionError, match="needs every random term on one grouping factor"):
        m.confint("blb", seed=1, progress=False)


@pytest.mark.parametrize("opts, message", [
    (dict(n_boots=1), "n_boots must be an integer >= 2"),
    (dict(n_subsets=0), "n_subsets must be an integer >= 1"),
    (dict(subset_size=19), r"subset_size must be at most the number of clusters \(18\); got 19"),
    (dict(subset_size=1), "subset_size must be an integer >= 2"),
    (dict(subset_size=5, subset_exponent=0.6), "give subset_size or subset_exponent, not both"),
    (dict(subset_exponent=1.5), r"subset_exponent must be a number in \(0, 1\]; got 1.5"),
    (dict(center="mean"), "center must be one of 'fit', 'subsets'; got 'mean'"),
    (dict(nsim=10), "the blb method takes the options .*; got unknown option\\(s\\) nsim"),
])
def test_bad_options_are_named(sleep, opts, message):
    _, m = sleep
    with pytest.raises(OptionError, match=message):
        m.confint("blb", seed=1, progress=False, **opts)


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.2, "95%"])
def test_level_outside_the_unit_interval(sleep, level):
    _, m = sleep
    with pytest.raises(OptionError, match="level must be a number strictly between 0 and 1"):
        m.confint("blb", level=level, seed=1, progress=False)
    with pytest.raises(OptionError, match="level must be a number strictly between 0 and 1"):
        blb.interval(m.problem, level=level, seed=1, progress=False)
