"""EM, Fisher scoring and the two-step estimators over sites; recursive updates."""

import numpy as np
import pandas as pd
import pytest
from _fed_data import longitudinal, longitudinal_sites, sleepstudy_sites

import pymlm as ml
import pymlm.federated as fed

SLEEP = "Reaction ~ Days + (Days | Subject)"
LONG = "y ~ time + arm + age + (time | subject)"


@pytest.fixture(scope="module")
def long_sites():
    return longitudinal_sites(longitudinal(1000), 5)


@pytest.mark.parametrize("method", ["em", "fisher"])
def test_em_and_fisher_scoring_reach_the_pooled_ml_fit(method, long_sites):
    df, sites = sleepstudy_sites()
    for data, parts, formula in [(df, sites, SLEEP), (*long_sites, LONG)]:
        m = ml.lmer(formula, data, REML=False)
        f = fed.lmer(formula, parts, REML=False, method=method)
        assert f.method == method and f.converged
        assert np.max(np.abs(f.fixef - m.fixef) / m.fixef_se) <= 1e-5
        assert np.max(np.abs(f.theta - m.theta)) <= 1e-5
        assert f.sigma == pytest.approx(m.sigma, rel=1e-6)
        assert f.deviance == pytest.approx(m.deviance, rel=1e-9)
        assert np.allclose(f.fixef_se, m.fixef_se, rtol=1e-5)
        if method == "fisher":
            assert f.rounds <= 20


def test_scoring_methods_are_ml_and_one_term():
    _, sites = sleepstudy_sites()
    with pytest.raises(ml.OptionError, match="maximum likelihood fit: pass REML=False"):
        fed.lmer(SLEEP, sites, method="em")
    with pytest.raises(ml.OptionError, match="method must be 'pls', 'em' or 'fisher'"):
        fed.lmer(SLEEP, sites, REML=False, method="newton")


def _group_ols(df):
    """Per-subject OLS of Reaction on (1, Days), computed directly."""
    coefs, rss, dof, ainv = [], 0.0, 0, []
    for _, g in df.groupby("Subject", observed=True):
        Z = np.column_stack([np.ones(len(g)), g.Days.to_numpy(float)])
        y = g.Reaction.to_numpy(float)
        b, res, *_ = np.linalg.lstsq(Z, y, rcond=None)
        coefs.append(b)
        rss += float(res[0])
        dof += len(g) - 2
        ainv.append(np.linalg.inv(Z.T @ Z))
    return np.array(coefs), rss / dof, np.array(ainv)


@pytest.mark.parametrize("weighted", [False, True])
def test_two_step_estimators(weighted):
    df, sites = sleepstudy_sites()
    t = fed.two_step(SLEEP, sites, weighted=weighted)
    b, sigma2, ainv = _group_ols(df)
    J = len(b)
    tau = np.cov(b.T) - sigma2 * ainv.mean(0)
    assert t.ngroups == J == 18
    assert t.sigma2 == pytest.approx(sigma2, rel=1e-12)
    assert np.allclose(t.tau.to_numpy(), tau, rtol=1e-10)
    if not weighted:
        assert np.allclose(t.fixef.to_numpy(), b.mean(0), rtol=1e-12)
        assert np.allclose(t.fixef_se.to_numpy(), np.sqrt(np.diag(np.cov(b.T)) / J), rtol=1e-10)
    else:
        vals, vecs = np.linalg.eigh(tau)
        tau_psd = (vecs * np.maximum(vals, 0)) @ vecs.T
        W = np.linalg.inv(tau_psd + sigma2 * ainv)
        expect = np.linalg.solve(W.sum(0), np.einsum("jab,jb->a", W, b))
        assert np.allclose(t.fixef.to_numpy(), expect, rtol=1e-10)
    assert t.rounds == (5 if weighted else 4)  # describe, setup, sums (twice if weighted), shrinkage
    # the empirical Bayes coefficients each site got back, against the pooled per-group OLS
    vals, vecs = np.linalg.eigh(tau)
    T = (vecs * np.maximum(vals, 0)) @ vecs.T
    beta = t.fixef.to_numpy()
    labels = [str(k) for k, _ in df.groupby("Subject", observed=True)]
    expect = {
        lab: beta + T @ np.linalg.solve(T + sigma2 * ainv[j], b[j] - beta)
        for j, lab in enumerate(labels)
    }
    held = pd.concat([s.shrinkage for s in sites])
    assert sorted(map(str, held.index)) == sorted(labels)
    for lab, row in held.iterrows():
        assert np.allclose(row.to_numpy(), expect[str(lab)], rtol=1e-10)
    # shrunk towards beta: never farther from it than the group's own OLS line
    for j, lab in enumerate(labels):
        assert np.linalg.norm(expect[lab] - beta) <= np.linalg.norm(b[j] - beta) + 1e-9
    assert not any(m.sender != "coordinator" and m.kind == "shrinkage" for m in t.transcript)


def test_two_step_needs_the_term_columns_as_fixed_effects():
    df, sites = sleepstudy_sites()
    df = df.assign(x=np.arange(len(df)) % 3)
    with pytest.raises(
        ml.OptionError, match=r"fixed effects must be those columns \(they differ in \['x'\]\)"
    ):
        fed.two_step(
            "Reaction ~ Days + x + (Days | Subject)",
            [fed.LocalSite(s._data.assign(x=1.0 * (s._data.Days % 3)), name=s.name) for s in sites],
        )


def test_recursive_updates_equal_fresh_fits():
    df, sites = sleepstudy_sites()
    first = fed.lmer(SLEEP, sites[:2])
    # a new site, then new rows (a new group) at an existing one; warm-started from the last theta
    extra = sites[2]._data
    new_group, rest = extra[extra.Subject.astype(str) == extra.Subject.astype(str).iloc[0]], extra
    rest = extra[extra.Subject.astype(str) != new_group.Subject.astype(str).iloc[0]]
    third = fed.LocalSite(rest, name="C")
    second = fed.lmer(SLEEP, [*sites[:2], third], start=first.theta)
    sites[0].add_rows(new_group)
    updated = fed.lmer(SLEEP, [sites[0], sites[1], third], start=second.theta)
    for fit, data in [
        (second, pd.concat([s._data for s in (*sites[1:2], third)] + [sites[0]._data.iloc[:60]])),
        (updated, df),
    ]:
        m = ml.lmer(SLEEP, data)
        assert np.max(np.abs(fit.fixef - m.fixef) / m.fixef_se) < 1e-6
        assert np.max(np.abs(fit.theta - m.theta)) < 1e-5
        assert fit.nobs == m.nobs
