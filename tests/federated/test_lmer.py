"""fed.lmer equals the pooled lmer; every schedule, order and masking gives the same bits."""

import pickle

import numpy as np
import pandas as pd
import pytest
from _fed_data import longitudinal, longitudinal_sites, sleepstudy_sites

import pymlm as ml
import pymlm.federated as fed
from pymlm.federated import Coordinator

SLEEP = "Reaction ~ Days + (Days | Subject)"
LONG = "y ~ time + arm + age + (time | subject)"


@pytest.fixture(scope="module")
def long_data():
    return longitudinal(1000)


def _agree(f, m):
    assert list(f.fixef.index) == list(m.fixef.index)
    assert np.max(np.abs(f.fixef - m.fixef) / m.fixef_se) <= 1e-8
    assert np.max(np.abs(f.theta - m.theta)) <= 1e-7
    assert abs(f.sigma / m.sigma - 1) <= 1e-8
    assert np.allclose(f.fixef_se, m.fixef_se, rtol=1e-7)
    crit = f.reml_criterion if f.reml else f.deviance
    assert crit == pytest.approx(m.reml_criterion if m.reml else m.deviance, rel=1e-10)
    assert f.loglik == pytest.approx(m.loglik, rel=1e-10)
    assert f.rounds <= 60


@pytest.mark.parametrize("reml", [True, False])
def test_sleepstudy_over_three_sites_equals_pooled(reml):
    df, sites = sleepstudy_sites()
    f = fed.lmer(SLEEP, sites, REML=reml)
    m = ml.lmer(SLEEP, df, REML=reml)
    _agree(f, m)
    assert f.sites_used == ["A", "B", "C"] and not f.estimand_changed
    assert f.nobs == 180 and f.ngroups == {"Subject": 18}
    cols = ["grp", "var1", "var2"]
    assert (
        f.varcorr[cols].fillna("").to_numpy().tolist()
        == m.varcorr[cols].fillna("").to_numpy().tolist()
    )
    assert np.allclose(f.varcorr[["vcov", "sdcor"]], m.varcorr[["vcov", "sdcor"]], rtol=1e-7)


@pytest.mark.parametrize("reml", [True, False])
def test_longitudinal_over_five_sites_equals_pooled(long_data, reml):
    pooled, sites = longitudinal_sites(long_data, 5)
    f = fed.lmer(LONG, sites, REML=reml)
    m = ml.lmer(LONG, pooled, REML=reml)
    _agree(f, m)
    assert f.ngroups == m.ngroups == {"subject": 932}


def test_schedules_masking_and_site_order_are_bitwise_equal(long_data):
    fits = []
    for secure, topology, order in [
        (True, "ring", None),
        (False, "ring", None),
        (True, "tree", None),
        (True, "star", [4, 2, 0, 3, 1]),
        (False, "tree", [1, 3, 0, 4, 2]),
    ]:
        _, sites = longitudinal_sites(long_data, 5, order=order)
        fits.append(fed.lmer(LONG, sites, secure=secure, topology=topology))
    first = fits[0]
    for f in fits[1:]:
        assert f.theta.tobytes() == first.theta.tobytes()
        assert f.fixef.to_numpy().tobytes() == first.fixef.to_numpy().tobytes()
        assert f.fixef_se.to_numpy().tobytes() == first.fixef_se.to_numpy().tobytes()
        assert np.float64(f.sigma).tobytes() == np.float64(first.sigma).tobytes()
        assert f.rounds == first.rounds


def test_bytes_and_transcript():
    _, sites = sleepstudy_sites()
    f = fed.lmer(SLEEP, sites, topology="ring")
    # per evaluation round a site sends 1 + 6 values (ldL2, the lower triangle of D), with the
    # gradient 1 + 6 + 3 * 7 = 28, of 24 bytes each (a double needs 8)
    pieces = [m for m in f.transcript if m.kind == "pieces"]
    assert {m.nbytes for m in pieces} <= {7 * 24, 28 * 24}
    assert sum(m.nbytes == 28 * 24 for m in pieces) >= 3 * 10
    rounds = {m.round for m in f.transcript}
    assert max(rounds) == f.rounds
    # the ring: A -> B -> C -> coordinator, once per round
    hops = [(m.sender, m.receiver) for m in pieces if m.round == pieces[0].round]
    assert hops == [("A", "B"), ("B", "C"), ("C", "coordinator")]
    assert sum(f.bytes_per_site.values()) == sum(
        m.nbytes for m in f.transcript if m.sender in "ABC"
    )


class _Recorder(Coordinator):
    """A coordinator that keeps every payload it receives (for the test to search)."""

    received: list

    def _sum_round(self, kind, request, request_bytes=16):
        def spy(site, participants, round_id, attempt):
            out = request(site, participants, round_id, attempt)
            self.received.append(out[-1] if isinstance(out, tuple) else out)
            return out

        return super()._sum_round(kind, spy, request_bytes)


@pytest.mark.parametrize("secure", [True, False])
def test_coordinator_never_holds_a_site_value(secure):
    """The payloads the coordinator receives are masked: no site's encoded values appear in them
    nor in the coordinator's state; with secure=False they do (the test can fail)."""
    _, sites = sleepstudy_sites()
    co = _Recorder(sites, SLEEP, True, secure=secure, topology="star")
    co.received = []
    co.describe()
    co.setup()
    theta = np.array([0.9, 0.1, 0.3])
    co.pieces(theta, True)
    plain = set()
    for s in sites:
        sp = s._evaluator.site_pieces(theta, True)
        from pymlm.federated._sites import pack_pieces

        sp = type(sp)(sp.ldL2, sp.D - np.diag(s._ridge), sp.n, sp.sum_log_w, sp.d_ldL2, sp.dD)
        plain |= {int(v) for v in co.codec.encode(pack_pieces(sp, True), 3)}
        plain |= {int(v) for v in co.codec.encode([s._cp.n, s._cp.sum_log_w], 3)} - {0}
    seen = {int(v) for payload in co.received for v in payload}
    state = pickle.dumps({k: v for k, v in vars(co).items() if k not in ("_sites", "received")})
    leaked = [v for v in plain if v.to_bytes(24, "little") in state or v in seen]
    if secure:
        assert leaked == []
        assert all(m.nbytes >= 0 and not hasattr(m, "payload") for m in co.transcript)
    else:
        assert len(leaked) > 0


@pytest.mark.parametrize("reml", [True, False])
def test_one_round_mode_equals_pooled(long_data, reml):
    pooled, sites = longitudinal_sites(long_data, 5)
    f = fed.lmer(LONG, sites, REML=reml, one_round=True)
    m = ml.lmer(LONG, pooled, REML=reml)
    _agree(f, m)
    assert f.rounds == 3
    kinds = {m.kind for m in f.transcript if m.receiver == "coordinator"}
    assert "cross-products" in kinds and "pieces" not in kinds


def test_one_round_mode_with_nested_terms():
    df = ml.datasets.load("Pastes")
    batches = sorted(df.batch.astype(str).unique())
    sites = [
        fed.LocalSite(df[df.batch.astype(str).isin(batches[i::3])], name=f"S{i}") for i in range(3)
    ]
    formula = "strength ~ 1 + (1 | batch/cask)"
    m = ml.lmer(formula, df)
    for one_round in (True, False):
        f = fed.lmer(formula, sites, one_round=one_round, min_groups=2)
        assert f.ngroups == m.ngroups
        assert np.max(np.abs(f.theta - m.theta)) < 1e-6
        assert f.reml_criterion == pytest.approx(m.reml_criterion, rel=1e-10)


def test_site_level_covariates_and_one_level_factors():
    """A covariate constant at each site and a factor with one level per site: singular at every
    site alone, estimable pooled."""
    _, sites = longitudinal_sites(longitudinal(300), 3)
    parts = [
        s._data.assign(size=[120.0, 80.0, 95.0][k], region=["north", "south", "north"][k])
        for k, s in enumerate(sites)
    ]
    formula = "y ~ time + arm + size + region + (time | subject)"
    m = ml.lmer(formula, pd.concat(parts))
    f = fed.lmer(formula, [fed.LocalSite(p, name=f"s{k}") for k, p in enumerate(parts)])
    assert list(f.fixef.index) == list(m.fixef.index)
    assert np.max(np.abs(f.fixef - m.fixef) / m.fixef_se) <= 1e-8
    assert np.max(np.abs(f.theta - m.theta)) <= 1e-7
