"""A site dropping after the others masked: its masks are recovered from Shamir shares of its key."""

import pickle

import numpy as np
import pytest

import pymlm as ml
import pymlm.federated as fed
from pymlm.federated import Coordinator
from pymlm.federated._sites import pack_pieces
from pymlm.federated._sums import shamir_combine, shamir_split

SLEEP = "Reaction ~ Days + (Days | Subject)"


class DropsAt(fed.LocalSite):
    """Computes its masked answer at its ``at``-th piece request, then never delivers it."""

    def __init__(self, data, name, at):
        super().__init__(data, name)
        self.at, self.calls, self.unsent = at, 0, None

    def pieces(self, theta, grad, *args, **kw):
        self.calls += 1
        out = super().pieces(theta, grad, *args, **kw)
        if self.calls >= self.at:
            sp = self._evaluator.site_pieces(np.asarray(theta, dtype=float), grad)
            self.unsent = pack_pieces(sp, grad)
            raise fed.SiteUnavailable(f"site {self.name!r} dropped")
        return out


def _four(at):
    df = ml.datasets.load("sleepstudy")
    subjects = sorted(df.Subject.astype(str).unique())
    parts = [df[df.Subject.astype(str).isin(subjects[i::4])] for i in range(4)]
    sites = [fed.LocalSite(p, name=n) for p, n in zip(parts[:3], "ABC")]
    return df, parts, sites + [DropsAt(parts[3], "D", at)]


def test_shamir_threshold():
    secret = bytes(range(32))
    shares = shamir_split(secret, 5, 3)
    assert shamir_combine(shares[1:4]) == secret
    assert shamir_combine([shares[0], shares[4], shares[2]]) == secret
    with pytest.raises(fed.FederationError, match="fewer than the threshold"):
        shamir_combine(shares[:2])  # below the threshold: a random field element, not a key


def test_the_survivors_sum_is_exact_and_the_dropped_value_never_reaches_the_coordinator():
    _, parts, sites = _four(at=1)
    co = Coordinator(sites, SLEEP, True, on_failure="recover")
    co.describe()
    co.setup()
    co.share_keys()
    theta = np.array([0.9, 0.1, 0.2])
    total, _ = co._sum_round("pieces", lambda s, g, r, a: s.pieces(theta, True, g, r, a))
    assert co.recovered == ["D"] and co.dropped == ["D"]
    # the same survivors' sum in plain, from a federation of the three alone
    plain = Coordinator([fed.LocalSite(p, name=n) for p, n in zip(parts[:3], "ABC")], SLEEP, True,
                        secure=False)
    plain.describe()
    plain.setup()
    expect, _ = plain._sum_round("pieces", lambda s, g, r, a: s.pieces(theta, True, g, r, a))
    assert total.tobytes() == expect.tobytes()
    # D's own values, encoded, appear nowhere in what the coordinator holds
    enc = co.codec.encode(sites[3].unsent, 4)
    held = pickle.dumps({k: v for k, v in vars(co).items() if k != "_sites"})
    for v in enc[:20]:
        if v:
            assert int(v).to_bytes(24, "little") not in held
    assert not any(m.sender == "D" and m.kind == "pieces" for m in co.transcript)


def test_recover_policy_fits_the_survivors_pooled_data():
    df, parts, sites = _four(at=4)
    with pytest.warns(fed.SiteBypassedWarning):
        f = fed.lmer(SLEEP, sites, on_failure="recover")
    assert f.sites_used == ["A", "B", "C"] and f.estimand_changed
    keep = df[df.Subject.isin(np.concatenate([p.Subject.unique() for p in parts[:3]]))]
    m = ml.lmer(SLEEP, keep)
    # the search restarts from the last theta, so agreement is to the optimizer's tolerance
    assert np.max(np.abs(f.fixef - m.fixef) / m.fixef_se) < 1e-6
    assert np.max(np.abs(f.theta - m.theta)) < 1e-5


def test_too_few_survivors_for_the_threshold():
    _, _, sites = _four(at=1)
    co = Coordinator(sites, SLEEP, True, on_failure="recover", threshold=3)
    co.describe()
    co.setup()
    co.share_keys()
    sites[2].pieces = lambda *a, **k: (_ for _ in ()).throw(fed.SiteUnavailable("C down"))
    with pytest.raises(fed.FederationError, match="fewer than the threshold 3"):
        co._sum_round("pieces", lambda s, g, r, a: s.pieces(np.ones(3), False, g, r, a))
