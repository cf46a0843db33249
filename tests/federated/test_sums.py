"""Fixed-point sums are exact and order-free; masks cancel; the range is guarded."""

import itertools
import math

import numpy as np
import pytest

import pymlm.federated as fed
from pymlm.federated._sums import Message, SiteKeys, aggregate, masked


def _vectors(seed=3, sites=5, m=200):
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.uniform(-6, 20, size=(sites, m))
    return rng.normal(size=(sites, m)) * scale


def test_decoded_sum_is_the_correctly_rounded_exact_sum():
    codec = fed.FixedPoint()
    x = _vectors()
    M = codec.modulus
    total = sum(codec.encode(v, len(x)) for v in x) % M
    got = codec.decode(total)
    want = np.array([math.fsum(col) for col in x.T])
    assert got.tobytes() == want.tobytes()
    # a plain floating-point sum in another order differs in some elements
    assert not np.array_equal(x[::-1].sum(axis=0), want) or not np.array_equal(x.sum(axis=0), want)


@pytest.mark.parametrize("topology", ["ring", "tree", "star"])
def test_masked_sums_in_every_order_and_schedule_are_equal(topology):
    codec = fed.FixedPoint()
    x = _vectors(sites=4, m=30)
    names = ["a", "b", "c", "d"]
    keys = {n: SiteKeys() for n in names}
    public = {n: k.public for n, k in keys.items()}
    seeds = {n: keys[n].seeds(n, public, b"session") for n in names}
    enc = {n: codec.encode(v, 4) for n, v in zip(names, x)}
    plain = codec.decode(sum(enc.values()) % codec.modulus)
    for order in itertools.permutations(names):
        payloads = {n: masked(n, enc[n], seeds[n], sorted(names), 7, 0, codec) for n in names}
        assert all(not np.array_equal(payloads[n], enc[n]) for n in names)
        log = []
        total = aggregate(payloads, order, topology, codec, log.append, 7, "pieces")
        assert codec.decode(total).tobytes() == plain.tobytes()
        assert all(isinstance(m, Message) and m.nbytes == 30 * 24 for m in log)
        assert log[-1].receiver == "coordinator"


def test_the_range_is_guarded():
    codec = fed.FixedPoint(frac_bits=32, total_bits=64)
    assert codec.bound(5) == 2.0 ** (64 - 1 - 32 - 3)
    codec.encode([2.0**27], 5)
    with pytest.raises(fed.FederationError, match="outside the exact fixed-point range"):
        codec.encode([2.0**28], 5)
    with pytest.raises(fed.FederationError, match="outside the exact fixed-point range"):
        codec.encode([np.nan], 5)


def test_secure_summation_needs_two_sites():
    from _fed_data import sleepstudy_sites

    df, _ = sleepstudy_sites()
    with pytest.raises(fed.FederationError, match="secure summation needs at least 2"):
        fed.lmer("Reaction ~ Days + (Days | Subject)", [fed.LocalSite(df, name="all")])
    f = fed.lmer(
        "Reaction ~ Days + (Days | Subject)", [fed.LocalSite(df, name="all")], secure=False
    )
    assert f.reml_criterion == pytest.approx(1743.628, abs=1e-3)
