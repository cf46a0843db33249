"""A real Flower federation on 127.0.0.1: a SuperLink, three SuperNodes with their own Parquet files."""

import _flower_run
import numpy as np
import pytest
from _fed_data import sleepstudy_sites

import pymlm as ml
import pymlm.federated as fed

SLEEP = "Reaction ~ Days + (Days | Subject)"


@pytest.mark.slow
def test_flower_loopback_federation_equals_the_pooled_fit():
    # started in the background when the session was collected (tests/conftest.py)
    got = _flower_run.result()
    df = sleepstudy_sites()[0]
    pooled = ml.lmer(SLEEP, df)
    beta = np.array([got["fixef"][k] for k in pooled.fixef.index])
    assert np.max(np.abs(beta - pooled.fixef.to_numpy()) / pooled.fixef_se.to_numpy()) <= 1e-8
    assert np.max(np.abs(np.array(got["theta"]) - pooled.theta)) <= 1e-7
    assert abs(got["sigma"] / pooled.sigma - 1) <= 1e-8
    assert got["rounds"] <= 60 and sorted(got["sites_used"]) == ["A", "B", "C"]
    # one protocol: the Flower transport gives the in-process fit's bits
    local = fed.lmer(SLEEP, sleepstudy_sites()[1])
    assert got["theta"] == [float(v) for v in local.theta]
    assert got["fixef"] == {k: float(v) for k, v in local.fixef.items()}
