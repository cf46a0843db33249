"""Split-sample intervals of a streamed fit equal those of the same rows in memory (same seed)."""

import numpy as np
import pandas as pd
import pytest

import pymlm as ml
from pymlm.errors import OptionError

from ._data import write_parts

FORMULA = "y ~ x1 + x2 + x3 + (1 + x1 | id)"


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("split")
    df = write_parts(folder, N=300, n_i=6, per=100, row_group_size=250)
    return folder, df


def test_independent_split_on_a_stream_equals_the_in_memory_split(parts):
    folder, df = parts
    ms = ml.lmer(FORMULA, folder, progress=False, chunk_size=333)
    m = ml.lmer(FORMULA, df)
    got = ms.confint("split", n_splits=5, seed=4, progress=False)
    want = m.confint("split", n_splits=5, seed=4, progress=False)
    pd.testing.assert_frame_equal(got, want, rtol=1e-7)
    np.testing.assert_array_equal(got.attrs["assignment"], want.attrs["assignment"])
    pd.testing.assert_frame_equal(got.attrs["replicates"], want.attrs["replicates"], rtol=1e-7)
    assert got.attrs["replicates"]["nobs"].sum() == 1800 and got.attrs["method"] == "split"
    other = ms.confint("split", n_splits=5, seed=5, progress=False)
    assert not np.allclose(other.to_numpy(), got.to_numpy())


def test_weighted_split_on_a_stream(tmp_path):
    df = write_parts(tmp_path / "w", N=120, n_i=5, per=60)
    df["w"] = np.random.default_rng(2).uniform(0.5, 2.0, len(df))
    df.to_parquet(tmp_path / "w.parquet")
    ms = ml.lmer("y ~ x1 + (1 | id)", tmp_path / "w.parquet", weights="w", progress=False)
    m = ml.lmer("y ~ x1 + (1 | id)", df, weights="w")
    pd.testing.assert_frame_equal(ms.confint("split", n_splits=3, seed=1, progress=False),
                                  m.confint("split", n_splits=3, seed=1, progress=False), rtol=1e-7)


def test_other_split_variances_on_a_stream_are_refused_with_the_reason(parts):
    folder, _ = parts
    ms = ml.lmer(FORMULA, folder, progress=False)
    with pytest.raises(OptionError, match="partition its groups .*got mode='independent', variance='sandwich'"):
        ms.confint("split", variance="sandwich", progress=False)
    with pytest.raises(OptionError, match="n_splits <= 150"):
        ms.confint("split", n_splits=200, progress=False)
