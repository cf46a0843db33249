"""A site failing mid-fit: bypassed (the fit is then the survivors' pooled fit) or retried."""

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
