"""GLMM bag of little bootstraps and split-sample intervals: clusters resampled by multiplicity."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import pymlm as ml
from pymlm.errors import OptionError
from pymlm.inference._glmm import ClusterWeightedObjective

SIM = Path(__file__).resolve().parents[1] / "reference" / "glmer_sim_bin.csv"


@pytest.fixture(scope="module")
def cbpp():
    return ml.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", ml.datasets.load("cbpp"))


@pytest.fixture(scope="module")
def sim():
    d = pd.read_csv(SIM, dtype={"g": str})
    return ml.glmer("y ~ x + (1 | g)", d, family="binomial")


@pytest.mark.parametrize("copies", [1, 3])
def test_multiplicity_objective_equals_copies_of_clusters(cbpp, copies):
    # c independent copies of every herd (new levels), fitted as data: the same objective up to a constant
    d = ml.datasets.load("cbpp")
    parts = []
    for c in range(copies):
        dc = d.copy()
        dc["herd"] = dc["herd"].astype(str) + f"_{c}"
        parts.append(dc)
    big = ml.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", pd.concat(parts))
    g = cbpp.problem
    w = ClusterWeightedObjective(g.objective(), np.full(15, float(copies)))
    full = big.problem.objective()
    x = g.x_hat
    diffs = [full(x + h) - w(x + h) for h in (0.0, 0.07, -0.11)]
    np.testing.assert_allclose(diffs, diffs[0], atol=1e-8)
    # ... and unlike frequency weights on the rows, which change the random effect's share
    counts = np.zeros(15)
    counts[:5] = 2.0
    counts[5:] = 1.0
    w2 = ClusterWeightedObjective(g.objective(), counts)
    rows = g.cluster_rows(np.arange(15))[0]
    from dataclasses import replace
    fw = g.objective(replace(rows, prior_weights=rows.prior_weights * counts[rows.codes[0]]))
    d2 = [fw(x + h) - w2(x + h) for h in (0.0, 0.3)]
    assert abs(d2[1] - d2[0]) > 1e-3


def test_blb_reproducible_and_shaped(cbpp):
    ci = cbpp.confint("blb", seed=5, n_subsets=2, n_boots=8, subset_size=10, progress=False)
    again = cbpp.confint("blb", seed=5, n_subsets=2, n_boots=8, subset_size=10, n_jobs=2, progress=False)
    np.testing.assert_array_equal(ci.to_numpy(), again.to_numpy())
    assert list(ci.index) == cbpp.problem.param_names
    assert ci.attrs["replicates"].shape == (16, 2 + 5)
    assert ci.attrs["settings"]["subset_size"] == 10 and ci.attrs["failed"] == 0
    assert (ci.iloc[:, 0] < ci.iloc[:, 1]).all() and ci.loc[".sig01"].iloc[0] >= 0
    est = cbpp.problem.estimates()
    assert np.all((ci.iloc[1:, 0] < est[1:]) & (est[1:] < ci.iloc[1:, 1]))


@pytest.mark.slow
def test_blb_width_close_to_cluster_bootstrap_sd(sim):
    # 200 groups: the BLB interval of the slope has about the width of the Wald interval
    ci = sim.confint("blb", seed=2, n_subsets=4, n_boots=40, progress=False, n_jobs=2)
    wald = sim.confint()
    w_blb = ci.loc["x"].diff().iloc[-1]
    w_wald = wald.loc["x"].diff().iloc[-1]
    assert 0.75 < w_blb / w_wald < 1.3


def test_split_independent_is_a_t_interval(sim):
    ci = sim.confint("split", n_splits=4, seed=3, progress=False)
    reps = ci.attrs["replicates"]
    assert list(reps["subset"]) == [1, 2, 3, 4] and reps["ngroups"].sum() == 200 and reps["nobs"].sum() == 2000
    for name in ["(Intercept)", "x"]:
        v = reps[name].to_numpy()
        q = stats.t.ppf(0.975, 3) * v.std(ddof=1) / 2
        np.testing.assert_allclose(ci.loc[name].to_numpy(), [v.mean() - q, v.mean() + q], rtol=1e-10)
    # the sd: the root of the interval of the averaged variance
    var = reps[".sig01"].to_numpy() ** 2
    q = stats.t.ppf(0.975, 3) * var.std(ddof=1) / 2
    np.testing.assert_allclose(ci.loc[".sig01"].to_numpy(),
                               np.sqrt(np.maximum([var.mean() - q, var.mean() + q], 0)), rtol=1e-10)
    again = sim.confint("split", n_splits=4, seed=3, progress=False, n_jobs=2)
    np.testing.assert_array_equal(ci.to_numpy(), again.to_numpy())
    with pytest.raises(OptionError, match="mode='independent'"):
        sim.confint("split", mode="dependent")


def test_multiplicity_gradient_matches_differences(sim):
    # y ~ x + (1 | g) on 200 groups: the count-weighted closed-form gradient against central differences
    g = sim.problem
    counts = np.random.default_rng(2).multinomial(200, np.full(200, 1 / 200)).astype(float)
    w = ClusterWeightedObjective(g.objective(), counts)
    x = g.x_hat + 0.03
    _, grad = w.value_and_grad(x)
    fd = np.array([(w(x + 1e-5 * e) - w(x - 1e-5 * e)) / 2e-5 for e in np.eye(x.size)])
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-4)
