"""Split-sample estimation: subsets, combination rules, scores, reproducibility, errors."""

import warnings

import numpy as np
import pandas as pd
import pytest

import pymlm as ml
from pymlm.errors import OptionError, SingularFitWarning
from pymlm.inference import split

FORMULA = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep(reference_fits):
    return ml.datasets.load("sleepstudy"), reference_fits("sleepstudy")


def _fit(formula, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        return ml.lmer(formula, data)


def _natural(m):
    P = m.problem
    return split.natural_parameters(P, P.fit.theta, P.fit.sigma, P.fit.beta)


def _simulate(n_groups, n_obs, seed, sd=(1.0, 0.3), rho=0.3, sigma=1.0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), n_obs)
    t = np.tile(np.arange(n_obs, dtype=float), n_groups)
    x = rng.standard_normal(g.size)
    cov = np.array([[sd[0] ** 2, rho * sd[0] * sd[1]], [rho * sd[0] * sd[1], sd[1] ** 2]])
    b = rng.standard_normal((n_groups, 2)) @ np.linalg.cholesky(cov).T
    y = 1 + 0.5 * t - 0.3 * x + b[g, 0] + b[g, 1] * t + sigma * rng.standard_normal(g.size)
    return pd.DataFrame({"y": y, "t": t, "x": x, "g": pd.Categorical(g)})


def test_independent_split_averages_direct_fits_of_the_subsets(sleep):
    df, m = sleep
    ci = m.confint("split", n_splits=3, seed=4, progress=False)
    part = ci.attrs["assignment"]
    assert sorted(np.bincount(part)) == [6, 6, 6]
    codes = m.problem.codes[0]
    reps = ci.attrs["replicates"]
    psis = []
    for j in range(3):
        direct = _fit(FORMULA, df[part[codes] == j])
        psis.append(_natural(direct))
        np.testing.assert_allclose(reps.loc[j, m.problem.param_names].to_numpy(float),
                                   m.problem.estimates(direct.fit), rtol=1e-4, atol=1e-6)
        assert reps.loc[j, "ngroups"] == 6 and reps.loc[j, "nobs"] == 60
    psi = np.mean(psis, axis=0)
    est = ci.attrs["estimates"]
    np.testing.assert_allclose(est[["(Intercept)", "Days"]], psi[-2:], rtol=1e-5)
    np.testing.assert_allclose(est[[".sig01", ".sig03", ".sigma"]], np.sqrt(psi[[0, 2, 3]]), rtol=1e-4)
    np.testing.assert_allclose(est[".sig02"], psi[1] / np.sqrt(psi[0] * psi[2]), rtol=1e-3, atol=1e-4)
    # fixed effects: mean +/- t_{M-1} sd / sqrt(M)
    b = np.array(psis)[:, -1]
    half = 4.302652729911275 * b.std(ddof=1) / np.sqrt(3)
    np.testing.assert_allclose(ci.loc["Days"], [b.mean() - half, b.mean() + half], rtol=1e-4)
    assert np.all(ci.attrs["df"] == 2)


def test_dependent_and_overlapping_subsamples_are_direct_fits(sleep):
    df, m = sleep
    codes = m.problem.codes[0]
    dep = m.confint("split", n_splits=2, mode="dependent", seed=3, progress=False)
    lab = dep.attrs["assignment"]
    counts = np.stack([np.bincount(codes[lab == j], minlength=18) for j in range(2)])
    assert np.all(counts == 5)                               # 10 rows per subject dealt 5 / 5
    for j in range(2):
        direct = _fit(FORMULA, df[lab == j])
        np.testing.assert_allclose(dep.attrs["replicates"].loc[j, m.problem.param_names].to_numpy(float),
                                   m.problem.estimates(direct.fit), rtol=1e-4, atol=1e-6)
    ov = m.confint("split", n_splits=4, mode="overlapping", progress=False)
    block = ov.attrs["assignment"]
    # consecutive rows (Days 0..9) cut into 4 blocks of 3, 2, 3, 2 days
    np.testing.assert_array_equal(block[codes == 0], [0, 0, 0, 1, 1, 2, 2, 2, 3, 3])
    reps = ov.attrs["replicates"]
    assert list(reps.blocks) == ["1+2", "1+3", "1+4", "2+3", "2+4", "3+4"]
    assert reps.nobs.sum() == 3 * 180                        # each row in K - 1 = 3 pairs
    direct = _fit(FORMULA, df[np.isin(block, [1, 3])])
    np.testing.assert_allclose(reps.loc[4, m.problem.param_names].to_numpy(float),
                               m.problem.estimates(direct.fit), rtol=1e-4, atol=1e-6)


def test_nested_factors_are_split_by_the_outer_one():
    df = ml.datasets.load("Pastes")
    f = "strength ~ 1 + (1 | batch/cask)"
    m = ml.lmer(f, df)
    ci = m.confint("split", n_splits=2, seed=1, progress=False)
    reps = ci.attrs["replicates"]
    assert list(reps.ngroups) == [5, 5]
    batches = m.problem.codes[1]
    part = ci.attrs["assignment"]
    direct = _fit(f, df[part[batches] == 0])
    np.testing.assert_allclose(reps.loc[0, m.problem.param_names].to_numpy(float),
                               m.problem.estimates(direct.fit), rtol=1e-4, atol=1e-6)


def test_same_results_for_a_seed_and_any_number_of_processes(sleep):
    _, m = sleep
    for mode, k in [("independent", 3), ("dependent", 2)]:
        a = m.confint("split", n_splits=k, mode=mode, seed=8, n_jobs=1, progress=False)
        b = m.confint("split", n_splits=k, mode=mode, seed=8, n_jobs=2, progress=False)
        c = m.confint("split", n_splits=k, mode=mode, seed=9, n_jobs=1, progress=False)
        pd.testing.assert_frame_equal(a, b)
        pd.testing.assert_frame_equal(a.attrs["replicates"], b.attrs["replicates"])
        assert not np.allclose(a.to_numpy(), c.to_numpy())


def test_group_scores_are_the_loglik_gradient_and_fisher_information():
    df = _simulate(12, 6, seed=2)
    m = _fit("y ~ t + x + (t | g)", df)
    P = m.problem
    psi = _natural(m) + np.array([0.1, 0.02, -0.01, 0.2, 0.1, 0.05, -0.1])
    st = split.group_stats(P, np.arange(P.y.size), beta=psi[4:])
    U, info = split.group_scores(P, st, psi)
    groups = [P.codes[0] == i for i in range(12)]

    def loglik(v):
        S = np.array([[v[0], v[1]], [v[1], v[2]]])
        out = 0.0
        for r in groups:
            Z, X = P.Xs[0][r], P.X[r]
            V = v[3] * np.eye(r.sum()) + Z @ S @ Z.T
            e = P.y[r] - X @ v[4:]
            out -= 0.5 * (np.linalg.slogdet(V)[1] + e @ np.linalg.solve(V, e))
        return out

    h = 1e-6
    num = [(loglik(psi + h * e) - loglik(psi - h * e)) / (2 * h) for e in np.eye(psi.size)]
    np.testing.assert_allclose(U.sum(axis=0), num, rtol=1e-5, atol=1e-6)
    ref = np.zeros((7, 7))
    E = [np.array([[1.0, 0], [0, 0]]), np.array([[0, 1.0], [1, 0]]), np.array([[0, 0], [0, 1.0]])]
    S = np.array([[psi[0], psi[1]], [psi[1], psi[2]]])
    for r in groups:
        Z, X = P.Xs[0][r], P.X[r]
        Vi = np.linalg.inv(psi[3] * np.eye(r.sum()) + Z @ S @ Z.T)
        dV = [Z @ e @ Z.T for e in E] + [np.eye(r.sum())]
        ref[:4, :4] += [[0.5 * np.trace(Vi @ a @ Vi @ b) for b in dV] for a in dV]
        ref[4:, 4:] += X.T @ Vi @ X
    np.testing.assert_allclose(info, ref, rtol=1e-10, atol=1e-10)


def test_shared_parts_of_a_balanced_one_way_model():
    rng = np.random.default_rng(0)
    N, n = 40, 6
    df = pd.DataFrame({"y": np.repeat(rng.normal(size=N), n) + rng.normal(size=N * n),
                       "g": np.repeat(np.arange(N), n).astype(str)})
    m = ml.lmer("y ~ 1 + (1 | g)", df)
    P = m.problem
    psi = _natural(m)
    lab = split.split_rows(P.codes[0], 3, np.random.default_rng(1))
    st = [split.group_stats(P, np.flatnonzero(lab == j)) for j in range(3)]
    # the intercept's shared error is the mean of the N random effects
    np.testing.assert_allclose(split._shared_beta_cov(P, st, psi), [[psi[0] / N]], rtol=1e-12)
    np.testing.assert_allclose(split._shared_sigma_cov(P, psi, N), [[2 * psi[0] ** 2 / N]], rtol=1e-12)


def test_standard_errors_match_the_full_fit_on_simulated_data():
    df = _simulate(300, 8, seed=5)
    m = ml.lmer("y ~ t + x + (t | g)", df)
    wald = m.fixef_se.to_numpy()
    ratios = {}
    for mode, k, variance in [("independent", 10, None), ("dependent", 4, None), ("overlapping", 4, None),
                              ("independent", 10, "sandwich"), ("dependent", 4, "sandwich")]:
        ci = m.confint("split", n_splits=k, mode=mode, variance=variance, seed=2, progress=False)
        se = np.sqrt(np.diag(ci.attrs["vcov"].to_numpy())[-3:])
        ratios[mode, variance] = se / wald
        if variance == "sandwich" or mode == "overlapping":
            assert np.all(ci.attrs["df"] == 299)
        est = ci.attrs["estimates"]
        assert np.all((ci.iloc[:, 0] <= est) & (est <= ci.iloc[:, 1]))
        assert np.all(np.abs(est.iloc[-3:] - m.fixef.to_numpy()) < 3 * wald)
    for key, r in ratios.items():
        assert 0.6 < np.mean(r) < 1.5, (key, r)
    for key in [("independent", "sandwich"), ("dependent", "sandwich"), ("overlapping", None)]:
        assert np.all((ratios[key] > 0.8) & (ratios[key] < 1.4)), (key, ratios[key])
    # without the shared (between-group) part the dependent split's intercept se would be a third of this
    assert ratios["dependent", None][0] > 0.8


def test_reasonable_intervals_on_sleepstudy(sleep):
    _, m = sleep
    wald = m.confint("wald")
    for mode, k in [("independent", 3), ("dependent", 2), ("overlapping", 3)]:
        ci = m.confint("split", n_splits=k, mode=mode, seed=1, progress=False)
        assert list(ci.index) == m.problem.param_names
        for name in ("(Intercept)", "Days"):
            lo, hi = ci.loc[name]
            assert lo < m.fixef[name] < hi
            assert 0.5 < (hi - lo) / (wald.loc[name].iloc[1] - wald.loc[name].iloc[0]) < 5
        assert ci.loc[".sig01"].iloc[1] > 10 and -1 <= ci.loc[".sig02"].iloc[0] <= ci.loc[".sig02"].iloc[1] <= 1
        assert ci.attrs["settings"]["mode"] == mode


@pytest.mark.parametrize("opts, message", [
    (dict(n_splits=10), r"splits the 18 groups of the grouping factor into 10 subsets; each subset needs "
                        r"at least 2 groups, so use n_splits <= 9"),
    (dict(n_splits=20), r"splits the 18 groups .* into 20 subsets"),
    (dict(n_splits=1), "n_splits must be an integer >= 2; got 1"),
    (dict(n_splits=2.5), "n_splits must be an integer >= 2; got 2.5"),
    (dict(mode="random"), "mode must be one of 'independent', 'dependent', 'overlapping'; got 'random'"),
    (dict(n_splits=11, mode="dependent"), "the largest group has 10 observations; use n_splits <= 10"),
    (dict(n_splits=11, mode="overlapping"), "the largest group has 10 observations; use n_splits <= 10"),
    (dict(n_boots=10), r"the split method takes the options n_splits, mode, variance; got unknown option\(s\) "
                       r"n_boots"),
    (dict(variance="jackknife"), "variance must be one of 'spread', 'sandwich'; got 'jackknife'"),
    (dict(mode="overlapping", n_splits=3, variance="spread"),
     "variance='spread' does not apply to mode='overlapping'"),
])
def test_bad_options_are_named(sleep, opts, message):
    _, m = sleep
    with pytest.raises(OptionError, match=message):
        m.confint("split", seed=1, progress=False, **opts)


@pytest.mark.parametrize("level", [0, 1, 2.0, -0.5, None])
def test_level_outside_the_unit_interval(sleep, level):
    _, m = sleep
    with pytest.raises(OptionError, match="level must be a number strictly between 0 and 1"):
        m.confint("split", level=level, progress=False)
    with pytest.raises(OptionError, match="level must be a number strictly between 0 and 1"):
        split.interval(m.problem, level=level, progress=False)


def test_grouping_structures_that_cannot_be_split():
    m = ml.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", ml.datasets.load("Penicillin"))
    with pytest.raises(OptionError, match="crossed grouping factors"):
        m.confint("split", n_splits=2, progress=False)
    with pytest.raises(OptionError, match="mode='dependent' .* needs every random term on one grouping factor"):
        m.confint("split", n_splits=2, mode="dependent", progress=False)
    with pytest.raises(OptionError, match="mode='overlapping' .* needs every random term on one grouping factor"):
        m.confint("split", n_splits=2, mode="overlapping", progress=False)
    with pytest.raises(OptionError, match="variance='sandwich' sums per-group scores and needs every random term"):
        m.confint("split", n_splits=2, variance="sandwich", progress=False)
