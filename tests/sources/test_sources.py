"""Data sources as batches of rows: every kind gives the same rows, only the asked columns,
and unreadable sources get errors naming the file and the column."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pymlm.errors import DataError
from pymlm.sources import as_source, is_streamed

from ._data import write_parts


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parts")
    df = write_parts(folder, N=120, n_i=5, per=40, row_group_size=70)
    (folder / "_truth.json").write_text("{}")  # not data: skipped as pyarrow skips it
    return folder, df


def _rows(source, columns, batch_size):
    return pd.concat(list(source.batches(columns, batch_size)), ignore_index=True)


def test_a_folder_a_file_and_a_dataset_give_the_rows_in_order(parts):
    folder, df = parts
    cols = ["id", "y", "x1"]
    for data in (folder, str(folder), ds.dataset(folder)):
        got = _rows(as_source(data), cols, 33)
        pd.testing.assert_frame_equal(got, df[cols])
    one = min(folder.glob("*.parquet"))
    pd.testing.assert_frame_equal(_rows(as_source(one), cols, 1000), df[cols].iloc[:200])


def test_only_the_asked_columns_are_read(parts):
    folder, _ = parts
    for batch in as_source(folder).batches(["x2"], 50):
        assert list(batch.columns) == ["x2"]
        assert len(batch) <= 50


def test_batch_size_changes_batches_not_rows(parts):
    folder, df = parts
    src = as_source(folder)
    sizes = [len(b) for b in src.batches(["y"], 16)]
    assert max(sizes) <= 16 and sum(sizes) == len(df)
    assert src.n_parts == sum(pq.ParquetFile(f).num_row_groups for f in folder.glob("*.parquet"))


def test_in_memory_kinds(parts):
    _, df = parts
    import polars as pl

    for data in (df, pa.Table.from_pandas(df), pl.from_pandas(df)):
        src = as_source(data)
        assert not src.streamed and not is_streamed(data)
        pd.testing.assert_frame_equal(src.read(["id", "y"]), df[["id", "y"]], check_dtype=False)
    lazy = pl.from_pandas(df).lazy()
    assert is_streamed(lazy)
    pd.testing.assert_frame_equal(_rows(as_source(lazy), ["id", "y"], 77), df[["id", "y"]])


def test_csv_reads_integers_as_numbers(tmp_path):
    df = pd.DataFrame({"g": [1, 2, 3, 4] * 50, "x": np.r_[np.arange(199), 0.5]})
    df.to_csv(tmp_path / "d.csv", index=False)
    got = _rows(as_source(tmp_path / "d.csv"), ["g", "x"], 64)
    np.testing.assert_array_equal(got["x"].to_numpy(), df["x"].to_numpy())
    np.testing.assert_array_equal(got["g"].to_numpy(), df["g"].to_numpy())


def test_dask_partitions_in_order(parts):
    import dask.dataframe as dd

    _, df = parts
    d = dd.from_pandas(df, npartitions=4)
    src = as_source(d)
    assert src.streamed and src.n_parts == 4
    pd.testing.assert_frame_equal(_rows(src, ["id", "x3"], 50), df[["id", "x3"]])


def test_hive_partitions_become_columns(tmp_path):
    df = pd.DataFrame({"x": np.arange(12.0), "site": ["A", "B", "C"] * 4, "year": [2020, 2021] * 6})
    pq.write_to_dataset(pa.Table.from_pandas(df), tmp_path / "hive", partition_cols=["site", "year"])
    got = _rows(as_source(tmp_path / "hive"), ["x", "site", "year"], 5).sort_values("x", ignore_index=True)
    assert got["site"].tolist() == df["site"].tolist()
    assert got["year"].tolist() == df["year"].tolist()
    assert pd.api.types.is_integer_dtype(got["year"].dtype)


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(DataError, match="no file or folder .*nowhere"):
        as_source(tmp_path / "nowhere")
    with pytest.raises(DataError, match="holds no Parquet files"):
        as_source(tmp_path)


def test_a_column_absent_from_one_file_names_file_and_column(tmp_path):
    pq.write_table(pa.table({"y": [1.0, 2.0], "x": [1.0, 2.0]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"y": [1.0, 2.0]}), tmp_path / "b.parquet")
    src = as_source(tmp_path)
    with pytest.raises(DataError, match=r"column 'x' is not in the file '.*b\.parquet' \(it is in '.*a\.parquet'\)"):
        list(src.batches(["y", "x"], 10))
    assert len(list(src.batches(["y"], 10))) == 2


def test_mismatched_types_across_files_name_both(tmp_path):
    pq.write_table(pa.table({"g": ["a", "b"], "x": [1, 2]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"g": [1, 2], "x": [1.5, 2.5]}), tmp_path / "b.parquet")
    src = as_source(tmp_path)
    with pytest.raises(DataError, match=r"column 'g' has mismatched types across files: string .*a\.parquet.* "
                                        r"int64 .*b\.parquet"):
        list(src.batches(["g"], 10))
    # integers in one file and floats in another are numbers in both: read as float64
    x = _rows(src, ["x"], 10)["x"]
    assert x.dtype == np.float64 and x.tolist() == [1.0, 2.0, 1.5, 2.5]


def test_a_csv_column_changing_type_names_file_and_column(tmp_path):
    df = pd.DataFrame({"id": np.repeat(np.arange(300), 10), "x": np.linspace(0, 1, 3000), "y": np.ones(3000)})
    df = df.astype({"x": object})
    df.loc[2900, "x"] = "abc"
    df.to_csv(tmp_path / "bad.csv", index=False)
    src = as_source(tmp_path / "bad.csv")
    src._block = 1 << 12  # the first block infers x as numbers, a later one holds text
    with pytest.raises(DataError, match=r"cannot read '.*bad\.csv' as CSV in column 'x': .*invalid value 'abc'"):
        list(src.batches(["id", "x", "y"], 100))


def test_not_a_source():
    with pytest.raises(DataError, match="data must be a pandas DataFrame.*got int"):
        as_source(3)
