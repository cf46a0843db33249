"""A fit interrupted after k rounds resumes from the coordinator's round log, bitwise."""

import pytest
from _fed_data import sleepstudy_sites

import pymlm.federated as fed

SLEEP = "Reaction ~ Days + (Days | Subject)"


class Counting(fed.LocalSite):
    def __init__(self, data, name):
        super().__init__(data, name)
        self.calls = 0

    def pieces(self, *args, **kw):
        self.calls += 1
        return super().pieces(*args, **kw)


def _sites():
    _, sites = sleepstudy_sites()
    return [Counting(s._data, s.name) for s in sites]


def test_an_interrupted_fit_resumes_bitwise(tmp_path):
    full = fed.lmer(SLEEP, _sites())
    log = tmp_path / "rounds.jsonl"
    with pytest.raises(fed.FederationError, match="round budget"):
        fed.lmer(SLEEP, _sites(), round_log=log, max_rounds=12)  # stops after 10 evaluations
    with log.open("a") as f:
        f.write('{"theta": ["0x1.0p')  # the interruption cut the last line short
    sites = _sites()
    resumed = fed.lmer(SLEEP, sites, round_log=log)
    assert resumed.theta.tobytes() == full.theta.tobytes()
    assert resumed.fixef.to_numpy().tobytes() == full.fixef.to_numpy().tobytes()
    assert resumed.sigma == full.sigma and resumed.rounds == full.rounds
    # the logged rounds were not asked again
    assert all(s.calls == full.rounds - 2 - 10 for s in sites)


def test_a_log_of_another_model_is_refused(tmp_path):
    log = tmp_path / "rounds.jsonl"
    fed.lmer(SLEEP, _sites(), round_log=log, max_rounds=200)
    with pytest.raises(fed.FederationError, match="another model"):
        fed.lmer("Reaction ~ Days + (1 | Subject)", _sites(), round_log=log)
