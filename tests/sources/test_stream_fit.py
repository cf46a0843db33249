"""lmer on a streamed source equals lmer on the same rows in memory, whatever the batch size."""

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pymlm as ml
from pymlm.design import StreamDesign
from pymlm.errors import DataError, FormulaError, MissingDataWarning, RankDeficiencyWarning

from ._data import write_parts

FORMULA = "y ~ x1 + x2 + x3 + (1 + x1 | id)"


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream")
    df = write_parts(folder, N=300, n_i=6, per=100, row_group_size=250)
    return folder, df


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    """Factors (a pandas Categorical with its own level order, strings), missing values, weights,
    a site column as hive partition folders, and a rank-deficient column."""
    folder = tmp_path_factory.mktemp("rich")
    rng = np.random.default_rng(7)
    df = write_parts(folder / "tmp", N=240, n_i=5, per=80)
    df["arm"] = pd.Categorical(rng.choice(["b", "a", "c"], len(df)), categories=["c", "b", "a"])
    df["sex"] = rng.choice(["m", "f"], len(df))
    df["w"] = rng.uniform(0.5, 2.0, len(df))
    df["x4"] = df["x1"] + df["x2"]
    df["site"] = (df["id"] % 4).map({0: "north", 1: "east", 2: "south", 3: "west"})
    df.loc[rng.choice(len(df), 25, replace=False), "x2"] = np.nan
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_to_dataset(table, folder / "hive", partition_cols=["site"], row_group_size=150)
    # the hive folder returns the rows grouped by site, in site order; compare with that frame
    back = pd.concat([df[df.site == s] for s in sorted(df.site.unique())], ignore_index=True)
    return folder / "hive", back


def _close(ms, m):
    assert ms.fixef.index.tolist() == m.fixef.index.tolist()
    assert np.all(np.abs(ms.fixef - m.fixef) <= 1e-6 * m.fixef_se)
    np.testing.assert_allclose(ms.theta, m.theta, rtol=0, atol=1e-6)
    assert ms.nobs == m.nobs and ms.ngroups == m.ngroups and ms.n_dropped == m.n_dropped
    np.testing.assert_allclose(ms.sigma, m.sigma, rtol=1e-7)
    np.testing.assert_allclose(ms.deviance, m.deviance, rtol=1e-10)


@pytest.mark.parametrize("reml", [True, False])
def test_folder_fit_equals_the_in_memory_fit(parts, reml):
    folder, df = parts
    ms = ml.lmer(FORMULA, folder, REML=reml, progress=False)
    m = ml.lmer(FORMULA, df, REML=reml)
    _close(ms, m)
    assert not ms.rows_in_memory and ms.data_name == str(folder)
    pd.testing.assert_frame_equal(ms.ranef["id"], m.ranef["id"], rtol=1e-5, atol=1e-6)
    pd.testing.assert_frame_equal(ms.varcorr, m.varcorr, rtol=1e-5, atol=1e-8)


def test_batch_size_changes_nothing(parts):
    folder, _ = parts
    fits = [ml.lmer(FORMULA, folder, chunk_size=c, progress=False) for c in (37, 250, 1_000_000)]
    for other in fits[1:]:
        np.testing.assert_allclose(other.theta, fits[0].theta, rtol=1e-10, atol=0)
        np.testing.assert_allclose(other.fixef, fits[0].fixef, rtol=1e-10, atol=0)
        np.testing.assert_allclose(other.deviance, fits[0].deviance, rtol=1e-12)


def test_factors_missing_values_weights_and_hive_partitions(rich):
    folder, df = rich
    f = "y ~ x1 + x2 + arm * sex + (1 + x1 | id) + (1 | site)"
    with pytest.warns(MissingDataWarning, match="25 of 1200 rows dropped for missing values \\(in x2\\)"):
        ms = ml.lmer(f, folder, weights="w", progress=False, chunk_size=101)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        m = ml.lmer(f, df, weights="w")
    # the Categorical's own level order, strings by code point, the sites of the folder names
    assert "armb" in ms.fixef.index and ms.fixef.index.tolist() == m.fixef.index.tolist()
    assert ms.ngroups == {"id": 240, "site": 4}
    _close(ms, m)


def test_rank_deficient_columns_are_dropped_as_in_memory(rich):
    folder, df = rich
    f = "y ~ x1 + x2 + x4 + (1 | id)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        with pytest.warns(RankDeficiencyWarning, match="dropping 1 column.*x4"):
            ms = ml.lmer(f, folder, progress=False)
        with pytest.warns(RankDeficiencyWarning):
            m = ml.lmer(f, df)
    assert ms.design.dropped_columns == ["x4"]
    _close(ms, m)


def test_what_needs_no_rows_works(parts):
    folder, df = parts
    ms = ml.lmer(FORMULA, folder, progress=False)
    m = ml.lmer(FORMULA, df)
    text = str(ms.summary())
    assert "Number of obs: 1800, groups:  id, 300" in text and "not kept (rows streamed" in text
    pd.testing.assert_frame_equal(ms.confint("wald"), m.confint("wald"), rtol=1e-6)
    pd.testing.assert_frame_equal(ms.confint("profile", progress=False), m.confint("profile", progress=False),
                                  rtol=1e-4)
    m0s = ml.lmer("y ~ x1 + x2 + (1 + x1 | id)", folder, progress=False)
    m0 = ml.lmer("y ~ x1 + x2 + (1 + x1 | id)", df)
    np.testing.assert_allclose(ml.anova(m0s, ms).table["Chisq"].iloc[1], ml.anova(m0, m).table["Chisq"].iloc[1],
                               rtol=1e-6)
    np.testing.assert_allclose(ms.predict(df.iloc[:10]), m.predict(df.iloc[:10]), rtol=1e-6)
    np.testing.assert_allclose(ms.coef_table("Satterthwaite")["df"], m.coef_table("Satterthwaite")["df"], rtol=1e-4)


@pytest.mark.parametrize("call", [lambda m: m.fitted, lambda m: m.residuals(), lambda m: m.predict(),
                                  lambda m: m.simulate(), lambda m: m.refit(np.zeros(m.nobs)),
                                  lambda m: m.confint("boot"), lambda m: m.confint("split", mode="dependent")])
def test_what_needs_rows_says_how_to_get_them(parts, call):
    folder, _ = parts
    ms = ml.lmer(FORMULA, folder, progress=False)
    with pytest.raises(DataError, match="streamed them from .* m.predict\\(batch\\)"):
        call(ms)


def test_devfun_and_lformula_on_a_folder(parts):
    folder, df = parts
    fs = ml.lmer_devfun(FORMULA, folder, progress=False)
    f = ml.lmer_devfun(FORMULA, df)
    for theta in ([1.0, 0.0, 1.0], [0.7, 0.2, 1.3]):
        np.testing.assert_allclose(fs(theta), f(theta), rtol=1e-12)
    d = ml.lformula(FORMULA, folder, progress=False)
    d0 = ml.lformula(FORMULA, df)
    assert isinstance(d, StreamDesign)
    assert d.X_names == d0.X_names and d.theta_names == d0.theta_names and d.ngroups == d0.ngroups
    assert d.nobs == d0.nobs
    with pytest.raises(DataError, match="no Z matrix"):
        _ = d.Z


def test_streamed_inputs_refused_with_reasons(parts):
    folder, df = parts
    with pytest.raises(FormulaError, match="scale\\(x1\\).*computed from all rows"):
        ml.lmer("y ~ scale(x1) + (1 | id)", folder, progress=False)
    with pytest.raises(DataError, match="weights must be a column name when the data are streamed"):
        ml.lmer(FORMULA, folder, weights=np.ones(len(df)), progress=False)
    with pytest.raises(DataError, match="'x9' .* not in the data"):
        ml.lmer("y ~ x9 + (1 | id)", folder, progress=False)


def test_blb_on_a_stream_reads_only_its_clusters_and_equals_the_in_memory_blb(parts):
    folder, df = parts
    ms = ml.lmer(FORMULA, folder, progress=False)
    m = ml.lmer(FORMULA, df)
    opts = {"seed": 11, "n_subsets": 3, "n_boots": 30, "subset_size": 40, "progress": False}
    got = ms.confint("blb", **opts)
    want = m.confint("blb", **opts)
    pd.testing.assert_frame_equal(got, want, rtol=1e-8)
    assert got.attrs["seed"] == 11 and got.attrs["settings"]["n_clusters"] == 300
    # another seed draws other subsets
    assert not np.allclose(ms.confint("blb", **{**opts, "seed": 12}).to_numpy(), got.to_numpy())


def test_blb_on_a_stream_needs_one_grouping_factor(rich):
    folder, _ = rich
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        ms = ml.lmer("y ~ x1 + (1 | id) + (1 | site)", folder, progress=False)
    with pytest.raises(ml.errors.OptionError, match="needs every random term on one grouping factor"):
        ms.confint("blb", progress=False)


def test_a_progress_bar_over_row_groups(parts, monkeypatch):
    from pymlm.sources import _sources

    folder, _ = parts
    seen = []
    real = _sources.progress_bar

    def spy(total, desc, enabled=True):
        bar = real(total, desc, enabled)
        seen.append((total, desc, enabled, bar))
        return bar

    monkeypatch.setattr(_sources, "progress_bar", spy)
    n_groups = sum(pq.ParquetFile(f).num_row_groups for f in folder.glob("*.parquet"))
    ml.lmer(FORMULA, folder)
    assert [(t, d, e) for t, d, e, _ in seen] == [(n_groups, "levels", True), (n_groups, "cross-products", True)]
    assert all(bar.n == n_groups for *_, bar in seen)
    seen.clear()
    ml.lmer(FORMULA, folder, progress=False)
    assert [e for _, _, e, _ in seen] == [False, False]
