"""A site failing mid-fit: bypassed (the fit is then the survivors' pooled fit) or retried."""

import os
import signal

import numpy as np
import pandas as pd
import pytest
from _fed_data import sleepstudy_sites

import pymlm as ml
import pymlm.federated as fed

SLEEP = "Reaction ~ Days + (Days | Subject)"


class FlakySite(fed.LocalSite):
    """Stops answering after ``ok`` piece requests, for ``down`` requests (forever by default)."""

    def __init__(self, data, name, ok, down=None):
        super().__init__(data, name)
        self.ok, self.down, self.calls = ok, down, 0

    def pieces(self, *args, **kw):
        self.calls += 1
        if self.calls > self.ok and (self.down is None or self.calls <= self.ok + self.down):
            raise fed.SiteUnavailable(f"site {self.name!r} is down")
        return super().pieces(*args, **kw)


def _sites(ok, down=None):
    df, sites = sleepstudy_sites()
    flaky = FlakySite(sites[1]._data, "B", ok, down)
    return df, [sites[0], flaky, sites[2]]


def test_bypass_fits_the_survivors_pooled_data():
    _, sites = _sites(ok=5)
    with pytest.warns(fed.SiteBypassedWarning, match=r"site\(s\) 'B' stopped answering"):
        f = fed.lmer(SLEEP, sites, on_failure="bypass")
    assert f.sites_used == ["A", "C"] and f.estimand_changed
    survivors = pd.concat([sites[0]._data, sites[2]._data])
    m = ml.lmer(SLEEP, survivors)
    assert np.max(np.abs(f.fixef - m.fixef) / m.fixef_se) < 1e-6
    assert np.max(np.abs(f.theta - m.theta)) < 1e-5
    assert f.nobs == 120 and f.ngroups == {"Subject": 12}


def test_retry_rides_out_a_short_outage_bitwise():
    _, sites = _sites(ok=5, down=2)
    f = fed.lmer(SLEEP, sites, on_failure="retry", retries=2)
    _, clean = sleepstudy_sites()
    g = fed.lmer(SLEEP, clean)
    assert f.sites_used == ["A", "B", "C"] and not f.estimand_changed
    assert f.theta.tobytes() == g.theta.tobytes()
    assert f.fixef.to_numpy().tobytes() == g.fixef.to_numpy().tobytes()


def test_retry_gives_up_on_a_dead_site():
    _, sites = _sites(ok=5)
    with pytest.raises(
        fed.FederationError, match="site 'B' did not answer the pieces request after 3 tries"
    ):
        fed.lmer(SLEEP, sites, on_failure="retry", retries=2)


class KilledSite(fed.ProcessSite):
    """A site in its own process that is killed (SIGKILL) at its ``at``-th piece request."""

    def __init__(self, source, name, at):
        super().__init__(source, name)
        self.at, self.calls = at, 0

    def pieces(self, *args, **kw):
        self.calls += 1
        if self.calls == self.at:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.join(10)
        return super().pieces(*args, **kw)


@pytest.fixture
def process_sites(tmp_path):
    df, sites = sleepstudy_sites()
    paths = []
    for s in sites:
        path = tmp_path / f"{s.name}.parquet"
        s._data.to_parquet(path)
        paths.append(path)
    out = [
        fed.ProcessSite(paths[0], "A"),
        KilledSite(paths[1], "B", at=6),
        fed.ProcessSite(paths[2], "C"),
    ]
    yield df, sites, out
    for s in out:
        s.close()


def test_a_killed_site_process_is_bypassed(process_sites):
    _, local, sites = process_sites
    with pytest.warns(fed.SiteBypassedWarning, match=r"site\(s\) 'B' stopped answering"):
        f = fed.lmer(SLEEP, sites, on_failure="bypass")
    assert not sites[1].process.is_alive() and sites[1].process.exitcode == -signal.SIGKILL
    assert f.sites_used == ["A", "C"] and f.estimand_changed
    m = ml.lmer(SLEEP, pd.concat([local[0]._data, local[2]._data]))
    assert np.max(np.abs(f.fixef - m.fixef) / m.fixef_se) < 1e-6
    assert f.nobs == 120


def test_a_killed_site_process_stops_a_retrying_fit(process_sites):
    _, _, sites = process_sites
    with pytest.raises(
        fed.FederationError, match="site 'B' did not answer the pieces request after 3 tries"
    ):
        fed.lmer(SLEEP, sites, on_failure="retry", retries=2)


def test_process_sites_give_the_in_process_bits(process_sites):
    _, local, sites = process_sites
    sites[1].at = -1  # never killed
    f = fed.lmer(SLEEP, sites)
    g = fed.lmer(SLEEP, local)
    assert f.theta.tobytes() == g.theta.tobytes()
    assert f.fixef.to_numpy().tobytes() == g.fixef.to_numpy().tobytes()


def test_a_killed_site_process_under_mask_recovery(process_sites):
    _, local, sites = process_sites
    with pytest.warns(fed.SiteBypassedWarning, match=r"site\(s\) 'B' stopped answering"):
        f = fed.lmer(SLEEP, sites, on_failure="recover", threshold=1)
    assert sites[1].process.exitcode == -signal.SIGKILL
    assert f.sites_used == ["A", "C"] and f.estimand_changed
    assert any(m.kind == "reveal-share" for m in f.transcript)
    m = ml.lmer(SLEEP, pd.concat([local[0]._data, local[2]._data]))
    assert np.max(np.abs(f.fixef - m.fixef) / m.fixef_se) < 1e-6
