"""CrossProducts are additive over rows, and weights mean what they say."""

import numpy as np
import pytest
from _designs import random_designs
from hypothesis import given
from hypothesis import strategies as st

from pymlm.crossprod import cross_products


def _cp(d, rows=None, **kw):
    rows = slice(None) if rows is None else rows
    return cross_products([c[rows] for c in d["codes"]], [X[rows] for X in d["Xs"]], d["levels"],
                          d["X"][rows], d["y"][rows], **kw)


@given(random_designs(), st.integers(1, 4), st.integers(3, 40))
def test_chunks_sum_to_the_whole(d, n_parts, chunk):
    whole = _cp(d)
    n = len(d["y"])
    cuts = np.sort(d["rng"].choice(np.arange(1, n), size=min(n_parts, n - 1), replace=False))
    parts = np.split(np.arange(n), cuts)
    total = None
    for idx in parts:
        cp = _cp(d, idx)
        total = cp if total is None else total + cp
    np.testing.assert_allclose(total.dense(), whole.dense(), atol=1e-10)
    assert total.n == whole.n
    np.testing.assert_allclose(_cp(d, chunk_size=chunk).dense(), whole.dense(), atol=1e-10)


@given(random_designs())
def test_integer_frequency_weights_equal_repeated_rows(d):
    rng = d["rng"]
    fw = rng.integers(1, 4, size=len(d["y"]))
    rep = np.repeat(np.arange(len(d["y"])), fw)
    a = _cp(d, freq_weights=fw)
    b = _cp(d, rep)
    np.testing.assert_allclose(a.dense(), b.dense(), atol=1e-9)
    assert a.n == b.n == fw.sum()


@given(random_designs())
def test_zero_weight_equals_deletion(d):
    rng = d["rng"]
    w = rng.uniform(0.5, 2.0, size=len(d["y"]))
    drop = rng.random(len(d["y"])) < 0.2
    w[drop] = 0.0
    a = _cp(d, weights=w)
    b = _cp(d, np.flatnonzero(~drop), weights=w[~drop])
    np.testing.assert_allclose(a.dense(), b.dense(), atol=1e-10)
    assert a.n == b.n and a.sum_log_w == pytest.approx(b.sum_log_w)


def test_adding_different_models_is_an_error():
    rng = np.random.default_rng(0)
    c = rng.integers(0, 3, 20).astype(np.int32)
    one = cross_products([c], [np.ones((20, 1))], [3], np.ones((20, 1)), rng.standard_normal(20))
    two = cross_products([c], [np.ones((20, 2))], [3], np.ones((20, 1)), rng.standard_normal(20))
    with pytest.raises(ValueError, match="different models"):
        one + two


@given(random_designs(max_terms=1))
def test_cluster_cross_products_combine_to_the_whole(d):
    from pymlm.crossprod import cluster_cross_products

    codes, Xk, lk = d["codes"][0], d["Xs"][0], d["levels"][0]
    cl = cluster_cross_products(codes, Xk, lk, d["X"], d["y"], chunk_size=17)
    whole = _cp(d)
    np.testing.assert_allclose(cl.combine().dense(), whole.dense(), atol=1e-9)
    # counts: a cluster drawn twice equals its rows repeated
    counts = d["rng"].integers(0, 3, size=lk)
    rows = np.concatenate([np.repeat(np.flatnonzero(codes == j), counts[j]) for j in range(lk)])
    if rows.size == 0:
        return
    boot = cl.combine(counts)
    Xy = np.column_stack([d["X"], d["y"]])[rows]
    assert boot.n == pytest.approx(float(rows.size))
    np.testing.assert_allclose(boot.xyxy, Xy.T @ Xy, atol=1e-9)
    kept = np.flatnonzero(counts)
    np.testing.assert_allclose(boot.zz_diag[0], cl.zz[kept] * counts[kept][:, None, None])
