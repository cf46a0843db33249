"""bam(discrete=True) on streamed sources (Parquet folders, CSV, polars, pyarrow Datasets, Dask) equals
the in-memory bam of the same rows; its exact cross-tabulations do not depend on how rows are cut."""

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pymlm as ml
from pymlm.errors import DataError, MissingDataWarning, OptionError

FORMULA = 'y ~ arm + fac + s(x0, bs = "cr") + s(x1, by = fac) + s(xr, k = 8) + s(g, bs = "re")'


def _frame(n=3000, seed=1) -> pd.DataFrame:
    df = ml.datasets.load("gamsim_re").iloc[:n].copy().reset_index(drop=True)
    rng = np.random.default_rng(seed)
    df["arm"] = rng.choice(["b", "a", "c"], n)
    df["fac"] = pd.Categorical(rng.choice(["u", "v"], n))
    df["w"] = rng.uniform(0.5, 2.0, n)
    df["off"] = rng.normal(0.0, 0.3, n)
    df["xr"] = np.round(df["x3"] * 20) / 20  # 21 distinct values: kept as they are
    df["z"] = rng.uniform(0.5, 1.5, n)
    df.loc[rng.choice(n, 25, replace=False), "x1"] = np.nan
    return df[["y", "x0", "x1", "x2", "xr", "g", "arm", "fac", "w", "off", "z"]]


def _write(folder, df, parts=3, row_group_size=400):
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(parts):
        sub = df.iloc[k * len(df) // parts:(k + 1) * len(df) // parts]
        pq.write_table(pa.Table.from_pandas(sub, preserve_index=False), folder / f"part-{k}.parquet",
                       row_group_size=row_group_size)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    df = _frame()
    root = tmp_path_factory.mktemp("bamstream")
    folder = _write(root / "parts", df)
    csv = root / "rows.csv"
    df.to_csv(csv, index=False)
    return df, folder, csv


def _fit(formula, source, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        return ml.bam(formula, source, progress=False, **kw)


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))


def _agree(m, s, tol=1e-8):
    assert list(s.coef.index) == list(m.coef.index)
    assert list(s.edf.index) == list(m.edf.index) and list(s.sp.index) == list(m.sp.index)
    assert _rel(m.coef, s.coef) < tol
    assert _rel(m.edf, s.edf) < tol
    assert _rel(m.sp, s.sp) < tol
    assert abs(s.scale / m.scale - 1) < tol
    assert abs(s.reml_score / m.reml_score - 1) < 1e-10
    for what in ("r_sq", "dev_expl", "loglik", "deviance", "null_deviance"):
        assert abs(getattr(s, what) / getattr(m, what) - 1) < tol, what
    assert s.nobs == m.nobs and s.n_dropped == m.n_dropped


@pytest.mark.parametrize("kw", [{}, {"weights": "w"}, {"offset": "off"}])
def test_a_parquet_folder_equals_the_in_memory_fit(data, kw):
    df, folder, _ = data
    m = _fit(FORMULA, df, **kw)
    s = _fit(FORMULA, str(folder), chunk_size=700, **kw)
    _agree(m, s)
    assert s.n_dropped == 25
    # the summary table is built from the same estimates
    pd.testing.assert_frame_equal(s.s_table, m.s_table, rtol=1e-6)


def test_a_streamed_fit_is_mgcvs_bam_discrete(tmp_path):
    import json
    from pathlib import Path

    sim = ml.datasets.load("gamsim_re")
    folder = _write(tmp_path / "gamsim", sim, parts=4, row_group_size=2500)
    ref = json.loads((Path(__file__).parents[1] / "reference" / "gam_gamsim_re.json").read_text())
    r = ref["fits"]["bam_discrete"]  # mgcv 1.8-41 (tests/reference/gam_reference.R)
    s = ml.bam(ref["formula"].replace("  ", " "), str(folder), progress=False)
    assert list(s.edf.index) == list(r["edf"])
    np.testing.assert_allclose(s.edf, list(r["edf"].values()), atol=2e-4)
    assert abs(s.reml_score - r["score"]) < 1e-3
    np.testing.assert_allclose(s.scale, r["scale"], rtol=1e-6)
    np.testing.assert_allclose([s.r_sq, s.dev_expl], [r["r_sq"], r["dev_expl"]], rtol=1e-5)
    np.testing.assert_allclose(s.coef.to_numpy(), list(r["coefficients_all"].values()), atol=2e-3)


def test_missing_rows_are_counted_and_reported(data):
    _, folder, _ = data
    with pytest.warns(MissingDataWarning, match="25 of 3000 rows dropped"):
        s = ml.bam(FORMULA, str(folder), progress=False)
    assert s.nobs == 2975


def test_csv_polars_and_arrow_dataset_sources(data):
    pl = pytest.importorskip("polars")
    import pyarrow.dataset as ds

    df, folder, csv = data
    f = 'y ~ arm + s(x0, bs = "cr") + s(x2, bs = "ps") + s(xr, k = 8)'
    m = _fit(f, df)
    fits = [_fit(f, str(csv)), _fit(f, pl.scan_csv(csv)), _fit(f, ds.dataset(folder)), _fit(f, str(folder))]
    for s in fits:
        _agree(m, s)
    # exact sums: every source gives the same bits
    for s in fits[1:]:
        assert s.coef.to_numpy().tobytes() == fits[0].coef.to_numpy().tobytes()


def test_bars_numeric_by_cyclic_smooths_and_an_offset_term(data):
    df, folder, _ = data
    f = 'y ~ x2 + s(x0, by = z) + s(xr, bs = "cc", k = 6) + offset(off) + (1 | g) + (0 + x2 | g)'
    _agree(_fit(f, df, weights="w"), _fit(f, str(folder), weights="w"))


def test_correlated_random_slopes(data):
    df, folder, _ = data
    f = 'y ~ s(x0) + (1 + x2 | g)'
    m, s = _fit(f, df, weights="w"), _fit(f, str(folder), weights="w")
    # the same cross products to rounding; the criterion is flat in the slope correlation, so
    # the optimizer's stopping point moves the estimates more than the criterion
    np.testing.assert_allclose(s.fit_.XtWX, m.fit_.XtWX, rtol=0, atol=1e-12 * np.abs(m.fit_.XtWX).max())
    assert abs(s.reml_score / m.reml_score - 1) < 1e-10
    assert _rel(m.coef, s.coef) < 1e-5


@pytest.mark.parametrize("formula", [
    'y ~ te(x0, x2) + s(xr)',
    'y ~ s(x0) + s(x2) + ti(x0, x2, k = 4)',
    'y ~ te(x0, xr, x2, k = 3, by = fac) + fac',
    'y ~ s(x0, arm, bs = "fs", k = 5) + s(x2)',
    'y ~ s(x0, x2, k = 15) + s(x1)',
    'y ~ s(x0, xr, x2, k = 20) + arm',
    'y ~ s(x0) + s(x2, g, bs = "re") + s(g, arm, bs = "re")',
])
def test_tensor_products_factor_smooths_several_covariates_and_random_slopes(data, formula):
    # the occupied combinations of the margins' cells (te, ti, fs) and the distinct rows of a
    # smooth of several covariates are found in the passes, as in memory
    df, folder, _ = data
    _agree(_fit(formula, df), _fit(formula, str(folder), chunk_size=900))


@pytest.mark.parametrize("kw", [{"select": True}, {"knots": {"x2": [0.0, 1.0]}}, {"discrete_m": 50},
                                {"sp": [1.0, 2.0, 3.0]}])
def test_options_of_the_smooths_apply_to_streams(data, kw):
    df, folder, _ = data
    f = 'y ~ s(x0, bs = "cr") + s(x2, bs = "cc") + s(xr)'
    _agree(_fit(f, df, **kw), _fit(f, str(folder), **kw))


def test_a_joint_smooth_beyond_its_distinct_rows_rounds_to_the_grid(tmp_path):
    sim = ml.datasets.load("gamsim_re")
    folder = _write(tmp_path / "gamsim", sim, parts=2, row_group_size=5000)
    f = 'y ~ s(x0, x2) + s(x1)'
    m, s = _fit(f, sim), _fit(f, str(folder))
    _agree(m, s)
    # 20,000 distinct rows > 100^2: each covariate on its 100-point grid, the occupied pairs kept
    assert 100 < s.design.terms[0].cov[0].size < 100 ** 2


@pytest.mark.parametrize("family", ["gaussian", "poisson"])
def test_linearly_dependent_parametric_columns_are_dropped_as_in_memory(tmp_path, data, family):
    df = _counts(data[0])
    df["x4"] = 2 * df["x2"] - 1.0
    folder = _write(tmp_path / "dependent", df)
    f = f'{"y" if family == "gaussian" else "yp"} ~ x2 + x4 + arm + s(x0)'
    from pymlm.errors import RankDeficiencyWarning

    with pytest.warns(RankDeficiencyWarning, match="dropping x4"):
        m = _fit(f, df, family=family)
    with pytest.warns(RankDeficiencyWarning, match="dropping x4"):
        s = _fit(f, str(folder), family=family)
    assert "x4" not in s.coef.index
    _agree(m, s)


def test_the_discretization_and_knots_are_those_of_all_rows(data):
    df, folder, _ = data
    m = _fit(FORMULA, df)
    s = _fit(FORMULA, str(folder), chunk_size=500)
    for tm, ts in zip(m.design.terms, s.design.terms):
        assert tm.label == ts.label and tm.cols == ts.cols
        if tm.smooth is not None and hasattr(tm.smooth.basis, "knots"):
            np.testing.assert_array_equal(ts.smooth.basis.knots, tm.smooth.basis.knots)
    # x0 has more than 1000 distinct values (rounded to a grid of its range), xr 21 (kept)
    blocks = {b.cols.start: b for b in m.design.blocks[1:]}
    for t in s.design.terms:
        if t.label in ("s(x0)", "s(xr)"):
            assert np.asarray(t.cov[0]).size == blocks[t.start].nrow_u
    assert np.asarray(next(t for t in s.design.terms if t.label == "s(xr)").cov[0]).size == 21


def test_independent_of_the_batch_size(data):
    _, folder, _ = data
    a = _fit(FORMULA, str(folder), chunk_size=257, weights="w")
    b = _fit(FORMULA, str(folder), chunk_size=100_000, weights="w")
    # exact integer sums: not only within 1e-10, the same bits
    assert a.coef.to_numpy().tobytes() == b.coef.to_numpy().tobytes()
    assert a.reml_score == b.reml_score and a.scale == b.scale and a.r_sq == b.r_sq


def _counts(df, seed=3):
    rng = np.random.default_rng(seed)
    out = df.copy()
    eta = np.sin(2 * np.pi * out["x0"]) * 0.8 + (out["x2"] - 0.5)
    out["yp"] = rng.poisson(np.exp(eta)).astype(float)
    out["tot"] = rng.integers(1, 6, len(out)).astype(float)
    out["succ"] = rng.binomial(out["tot"].astype(int), 1 / (1 + np.exp(-eta))).astype(float)
    out["fail"] = out["tot"] - out["succ"]
    return out


@pytest.mark.parametrize(("response", "family"), [("yp", "poisson"), ("cbind(succ, fail)", "binomial")])
def test_other_families_by_performance_iteration(tmp_path, data, response, family):
    df = _counts(data[0])
    folder = _write(tmp_path / "counts", df)
    f = f'{response} ~ arm + s(x0, bs = "cr") + s(x2) + s(g, bs = "re")'
    m = _fit(f, df, family=family)
    s = _fit(f, str(folder), family=family, chunk_size=800)
    assert s.fit_.iterations == m.fit_.iterations and s.converged
    _agree(m, s)
    assert s.scale == m.scale == 1.0


def test_what_needs_the_rows_is_refused_and_predict_takes_new_rows(data):
    df, folder, _ = data
    m, s = _fit(FORMULA, df), _fit(FORMULA, str(folder))
    for what in ("fitted", "residuals", "linear_predictors"):
        with pytest.raises(DataError, match="streamed from .* predict\\(newdata\\)"):
            getattr(s, what)
    with pytest.raises(DataError, match="predict\\(\\) without newdata"):
        s.predict()
    new = df.dropna().iloc[:50]
    np.testing.assert_allclose(s.predict(new), m.predict(new), rtol=1e-9)


def test_the_command_line_streams_a_folder_for_bam(data, capsys):
    from pymlm.cli import main

    df, folder, _ = data
    f = 'y ~ s(x0, bs = "cr") + s(x2)'
    assert main(["fit", f, "--data", str(folder), "--engine", "bam"]) == 0
    out = capsys.readouterr().out
    m = _fit(f, df)
    assert "s(x0)" in out and f"n = {m.nobs}" in out and f"{m.scale:.5g}" in out


def test_a_column_missing_from_one_file_names_the_file_and_column(tmp_path, data):
    df = data[0]
    folder = _write(tmp_path / "bad", df, parts=2)
    pq.write_table(pa.Table.from_pandas(df.drop(columns="x0").iloc[:100], preserve_index=False),
                   folder / "part-9.parquet")
    with pytest.raises(DataError, match=r"column 'x0' is not in the file '.*part-9\.parquet'"):
        ml.bam('y ~ s(x0)', str(folder), progress=False)


def test_options_and_terms_not_streamed_get_clear_errors(data):
    _, folder, _ = data
    with pytest.raises(OptionError, match="needs discrete=True; got discrete=False, whose smooths place their "
                                          "knots at quantiles"):
        ml.bam('y ~ s(x0)', str(folder), discrete=False, progress=False)
    with pytest.raises(DataError, match=r"te\(x0,arm\): te\(\) margins must be numeric; arm is a factor"):
        ml.bam('y ~ te(x0, arm)', str(folder), progress=False)
    with pytest.raises(OptionError, match=r"gam\(\) keeps every row.*fit bam\(formula, data, discrete=True\)"):
        ml.gam('y ~ s(x0)', str(folder), progress=False)
    with pytest.raises(DataError, match="weights must be a column name"):
        ml.bam('y ~ s(x0)', str(folder), weights=np.ones(3), progress=False)


# ----------------------------------------------------------------------------- Dask


dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=None, silence_logs=40)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def test_dask_equals_in_memory_bitwise_for_any_partitioning_and_runs_on_the_workers(client, data):
    df = data[0]
    f = 'y ~ arm + s(x0, bs = "cr") + s(x1, by = fac) + s(g, bs = "re")'
    m = _fit(f, df, weights="w")
    with distributed.get_task_stream(client) as ts:
        a = _fit(f, dd.from_pandas(df, npartitions=4), weights="w")
    b = _fit(f, dd.from_pandas(df.sample(frac=1.0, random_state=4), npartitions=7), weights="w")
    _agree(m, a)
    assert a.coef.to_numpy().tobytes() == b.coef.to_numpy().tobytes()
    assert a.sp.to_numpy().tobytes() == b.sp.to_numpy().tobytes()
    assert a.reml_score == b.reml_score and a.scale == b.scale
    workers = set(client.scheduler_info()["workers"])
    assert len(workers) == 2 and set(a.workers) == workers
    ran = {}
    for task in ts.data:
        name = task["key"][0] if isinstance(task["key"], tuple) else task["key"]
        ran.setdefault(str(name).split("-")[0], set()).add(task["worker"])
    assert ran["scan_part"] == workers and ran["_partition_pass"] == workers


def test_dask_poisson_equals_in_memory_and_is_bitwise_equal_across_partitionings(client, data):
    df = _counts(data[0]).iloc[:1500]
    f = 'yp ~ s(x0, bs = "cr") + s(g, bs = "re")'
    m = _fit(f, df, family="poisson")
    a = _fit(f, dd.from_pandas(df, npartitions=2), family="poisson")
    b = _fit(f, dd.from_pandas(df.iloc[::-1], npartitions=3), family="poisson")
    _agree(m, a)
    assert a.coef.to_numpy().tobytes() == b.coef.to_numpy().tobytes()
    assert a.deviance == b.deviance and a.reml_score == b.reml_score and a.r_sq == b.r_sq
    assert len(a.workers) == 2


def _slow(part):
    import time

    time.sleep(0.15)
    return part


def test_dask_a_worker_killed_mid_computation_changes_nothing(client, data):
    import os
    import signal
    import threading
    import time

    df = data[0]
    f = 'y ~ s(x0, bs = "cr") + s(g, bs = "re")'
    frame = dd.from_pandas(df, npartitions=12)
    ref = _fit(f, frame)
    slow = frame.map_partitions(_slow, meta=frame._meta)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("fit", _fit(f, slow)))
    t.start()
    time.sleep(1.0)  # the first pass is under way on both workers
    victim = min(client.scheduler_info()["workers"])
    pid = client.run(os.getpid, workers=[victim])[victim]
    assert t.is_alive()
    os.kill(pid, signal.SIGKILL)  # the worker process dies; its nanny starts a new one
    t.join(120)
    assert not t.is_alive()
    assert out["fit"].coef.to_numpy().tobytes() == ref.coef.to_numpy().tobytes()
    assert out["fit"].reml_score == ref.reml_score
    client.wait_for_workers(2, timeout=60)
