"""lmer on a Dask DataFrame, computed on a real two-process local cluster.

The cross-products are summed in exact integer arithmetic, so the fit is bitwise the same for any
partitioning, row order, reduction tree or retried task, and equals the in-memory fit.
"""

import os
import signal
import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest

import pymlm as ml
from pymlm.errors import MissingDataWarning

from ._data import block

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

FORMULA = "y ~ x1 + x2 + x3 + (1 + x1 | id)"


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=None, silence_logs=40)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def df():
    return pd.concat([block(1 + 100 * k, 100, 6, 3, 11 + k) for k in range(3)], ignore_index=True)


def _same_bits(a, b):
    assert a.fixef.to_numpy().tobytes() == b.fixef.to_numpy().tobytes()
    assert a.theta.tobytes() == b.theta.tobytes()
    assert a.deviance == b.deviance and a.sigma == b.sigma


def test_the_fit_equals_the_in_memory_fit_and_runs_on_the_workers(client, df):
    m = ml.lmer(FORMULA, df)
    with distributed.get_task_stream(client) as ts:
        md = ml.lmer(FORMULA, dd.from_pandas(df, npartitions=6), progress=False)
    assert np.all(np.abs(md.fixef - m.fixef) <= 1e-6 * m.fixef_se)
    np.testing.assert_allclose(md.theta, m.theta, rtol=0, atol=1e-6)
    np.testing.assert_allclose(md.deviance, m.deviance, rtol=1e-10)
    assert md.nobs == m.nobs and md.ngroups == m.ngroups
    workers = set(client.scheduler_info()["workers"])
    assert set(md.design.workers) == workers and len(workers) == 2
    ran = {}
    for task in ts.data:
        name = task["key"][0] if isinstance(task["key"], tuple) else task["key"]
        ran.setdefault(str(name).split("-")[0], set()).add(task["worker"])
    # the first pass, the scales and the per-partition cross-products ran on both workers
    assert ran["scan_part"] == workers and ran["_partition_cross_products"] == workers


def test_bitwise_equal_for_any_partitioning_order_and_scheduler(client, df):
    import dask

    a = ml.lmer(FORMULA, dd.from_pandas(df, npartitions=3), progress=False)
    b = ml.lmer(FORMULA, dd.from_pandas(df.sample(frac=1.0, random_state=3), npartitions=7), progress=False)
    _same_bits(a, b)
    with dask.config.set(scheduler="synchronous"):
        c = ml.lmer(FORMULA, dd.from_pandas(df.iloc[::-1], npartitions=1), progress=False)
    _same_bits(a, c)
    assert c.design.workers == ("local",)


def test_factors_weights_crossed_terms_and_missing_values(client, df):
    rng = np.random.default_rng(5)
    d = df.copy()
    d["arm"] = rng.choice(["b", "a", "c"], len(d))
    d["w"] = rng.uniform(0.5, 2.0, len(d))
    d["site"] = d["id"] % 7
    d["y"] += rng.normal(0.0, 1.0, 7)[d["site"]]
    d.loc[rng.choice(len(d), 20, replace=False), "x2"] = np.nan
    f = "y ~ x1 + x2 + arm + (1 + x1 | id) + (1 | site)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        m = ml.lmer(f, d, weights="w")
        md = ml.lmer(f, dd.from_pandas(d, npartitions=4), weights="w", progress=False)
        md2 = ml.lmer(f, dd.from_pandas(d.sample(frac=1.0, random_state=8), npartitions=9), weights="w",
                      progress=False)
    assert md.fixef.index.tolist() == m.fixef.index.tolist() and md.n_dropped == m.n_dropped == 20
    assert np.all(np.abs(md.fixef - m.fixef) <= 1e-6 * m.fixef_se)
    np.testing.assert_allclose(md.theta, m.theta, rtol=0, atol=1e-6)
    np.testing.assert_allclose(md.deviance, m.deviance, rtol=1e-10)
    _same_bits(md, md2)


def _slow(part):
    time.sleep(0.15)
    return part


def test_a_worker_killed_mid_computation_changes_nothing(client, df):
    frame = dd.from_pandas(df, npartitions=12)
    ref = ml.lmer(FORMULA, frame, progress=False)
    slow = frame.map_partitions(_slow, meta=frame._meta)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("fit", ml.lmer(FORMULA, slow, progress=False)))
    t.start()
    time.sleep(1.0)  # the first pass is under way on both workers
    victim = min(client.scheduler_info()["workers"])
    pid = client.run(os.getpid, workers=[victim])[victim]
    assert t.is_alive()  # mid-computation
    os.kill(pid, signal.SIGKILL)  # the worker process dies; its nanny starts a new one
    t.join(120)
    assert not t.is_alive()
    _same_bits(out["fit"], ref)
    client.wait_for_workers(2, timeout=60)
    assert victim not in client.scheduler_info()["workers"]
