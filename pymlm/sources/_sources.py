"""Data sources -> batches of rows, with only the columns a model uses read.

A model is fitted from a pandas DataFrame in memory, or streamed in bounded
memory from a source that may not fit in it: a CSV file, a Parquet file, a
folder of Parquet files (hive partitions ``key=value/`` included), a
``pyarrow.dataset.Dataset``, a polars LazyFrame or a Dask DataFrame. A pyarrow
Table and a polars DataFrame are in memory already and are read as frames of
the model's columns.

:func:`as_source` wraps any of them in a :class:`Source`; ``source.batches(
columns, batch_size)`` yields pandas DataFrames of those columns, in the
source's row order, whatever the batch size. Parquet files are read one row
group at a time with ``pre_buffer=False`` (the default pre-buffering of
pyarrow reads most of a file ahead into memory), so the memory a pass needs is
one batch of the model's columns.

A Dask DataFrame is not read in the client: the passes of a fit run on its
partitions where the scheduler places them, and only per-partition
summaries and exact integer cross-products travel (see :mod:`._dask`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._progress import progress_bar
from ..errors import DataError

__all__ = ["Source", "as_source", "is_streamed"]

_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz")


def _module(obj) -> str:
    return type(obj).__module__ or ""


def _is_polars(obj) -> bool:
    return _module(obj).startswith("polars")


def _is_dask(obj) -> bool:
    return _module(obj).startswith("dask") and hasattr(obj, "npartitions")


def _is_arrow_dataset(obj) -> bool:
    return _module(obj).startswith("pyarrow") and hasattr(obj, "get_fragments") and hasattr(obj, "schema")


def is_streamed(data) -> bool:
    """Whether ``data`` is read batch by batch rather than held in memory: a path
    (str or ``os.PathLike``), a pyarrow Dataset, a polars LazyFrame or a Dask DataFrame."""
    if isinstance(data, (str, os.PathLike)):
        return True
    if _is_polars(data):
        return type(data).__name__ == "LazyFrame"
    return _is_dask(data) or _is_arrow_dataset(data)


# ----------------------------------------------------------------------------- arrow types


def _kind(t) -> str:
    """The family of an Arrow type: types of one family may be mixed across files."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return _kind(t.value_type)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", lambda _: False)(t):
        return "string"
    if pa.types.is_boolean(t):
        return "logical"
    if pa.types.is_temporal(t):
        return "date/time"
    if pa.types.is_null(t):
        return "null"
    return str(t)


def _unify(column: str, typed: list[tuple[str, object]]):
    """The Arrow type to read ``column`` as, given its type in each file.

    Integers and floats mix (read as float64); strings and dictionaries of
    strings mix; anything else must agree.

    Raises
    ------
    DataError
        Two files hold the column with types of different families.
    """
    import pyarrow as pa

    kinds = {}
    for where, t in typed:
        k = _kind(t)
        if k != "null":
            kinds.setdefault(k, (where, t))
    if len(kinds) > 1:
        (k1, (w1, t1)), (k2, (w2, t2)) = list(kinds.items())[:2]
        raise DataError(
            f"column {column!r} has mismatched types across files: {t1} ({k1}) in {w1} but {t2} ({k2}) "
            f"in {w2}; every file needs the same type for a column: rewrite the files, or cast the "
            "column when reading them (e.g. a pyarrow.dataset.Dataset with an explicit schema)")
    types = {str(t): t for _, t in typed if _kind(t) != "null"}
    if len(types) <= 1:
        return None
    if "number" in kinds:
        return pa.float64()
    if "string" in kinds:
        return pa.string()
    return None


def _batch_frame(batch, cast: dict, constants: dict | None = None) -> pd.DataFrame:
    """A pyarrow RecordBatch/Table as pandas, cast to the unified types, constants added."""
    import pyarrow as pa

    if cast:
        arrays = []
        for name, arr in zip(batch.schema.names, batch.columns):
            target = cast.get(name)
            if target is not None and arr.type != target:
                if pa.types.is_dictionary(arr.type):
                    arr = arr.dictionary_decode() if hasattr(arr, "dictionary_decode") else arr.cast(arr.type.value_type)
                arr = arr.cast(target)
            arrays.append(arr)
        batch = pa.RecordBatch.from_arrays(arrays, names=batch.schema.names) if isinstance(batch, pa.RecordBatch) \
            else pa.table(dict(zip(batch.schema.names, arrays)))
    frame = batch.to_pandas()
    for name, value in (constants or {}).items():
        frame[name] = value
    return frame


# ----------------------------------------------------------------------------- sources


@dataclass
class Source:
    """A data source read as batches of rows.

    Attributes
    ----------
    name : str
        How messages and summaries name it (a path, ``"a pyarrow Dataset"``...).
    columns : list of str
        The columns it holds.
    streamed : bool
        False for data in memory (pandas, a pyarrow Table, a polars DataFrame).
    """

    name: str
    columns: list[str]
    streamed: bool
    _parts: list = field(default_factory=list, repr=False)

    @property
    def n_parts(self) -> int:
        """Units of the progress bar: row groups of Parquet files, partitions of a Dask frame..."""
        return len(self._parts)

    def check_columns(self, columns) -> None:
        """Refuse columns some part of the source lacks or holds with clashing types (see subclasses)."""

    def part_batches(self, part, columns: list[str], batch_size: int):
        raise NotImplementedError

    def batches(self, columns, batch_size: int = 500_000, progress: bool = False, desc: str = "reading"):
        """Yield pandas DataFrames of ``columns``, in row order, at most ``batch_size`` rows each.

        Parameters
        ----------
        columns : sequence of str
        batch_size : int
        progress : bool
            A tqdm bar over the parts (row groups, files, partitions).
        desc : str
            The bar's label.

        Raises
        ------
        DataError
            A part lacks a column, holds it with a clashing type, or cannot be read; the
            message names the file (or part) and the column.
        """
        columns = list(dict.fromkeys(columns))
        self.check_columns(columns)
        with progress_bar(self.n_parts or None, desc, enabled=progress) as bar:
            for part in self._parts:
                for frame in self.part_batches(part, columns, batch_size):
                    if len(frame):
                        yield frame.reset_index(drop=True)
                bar.update(1)

    def read(self, columns) -> pd.DataFrame:
        """All rows of ``columns`` as one pandas DataFrame (for sources in memory)."""
        frames = list(self.batches(columns, batch_size=1 << 30))
        if not frames:
            return pd.DataFrame({c: [] for c in columns})
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


class _FrameSource(Source):
    def __init__(self, frame: pd.DataFrame, name: str):
        super().__init__(name, [str(c) for c in frame.columns], False, [frame])

    def part_batches(self, frame, columns, batch_size):
        sub = frame[columns]
        for s in range(0, max(len(sub), 1), batch_size):
            yield sub.iloc[s:s + batch_size]


class _ArrowTableSource(Source):
    def __init__(self, table, name: str):
        super().__init__(name, list(table.schema.names), False, [table])

    def part_batches(self, table, columns, batch_size):
        sub = table.select(columns)
        for s in range(0, max(sub.num_rows, 1), batch_size):
            yield _batch_frame(sub.slice(s, batch_size), {})


class _PolarsSource(Source):
    def __init__(self, frame, name: str):
        lazy = type(frame).__name__ == "LazyFrame"
        schema = frame.collect_schema() if lazy else frame.schema
        super().__init__(name, list(schema.names()), lazy, [frame])

    def part_batches(self, frame, columns, batch_size):
        sel = frame.select(columns)
        if self.streamed:
            for chunk in sel.collect_batches(chunk_size=min(batch_size, 1 << 31), maintain_order=True):
                yield _batch_frame(chunk.to_arrow(), {})
        else:
            for s in range(0, max(sel.height, 1), batch_size):
                yield _batch_frame(sel.slice(s, batch_size).to_arrow(), {})


class _DaskSource(Source):
    def __init__(self, frame, name: str):
        super().__init__(name, [str(c) for c in frame.columns], True, list(range(frame.npartitions)))
        self._frame = frame

    @property
    def dask_frame(self):
        """The Dask DataFrame: the streamed passes run it on its own cluster (:mod:`._dask`)."""
        return self._frame

    def part_batches(self, i, columns, batch_size):
        part = self._frame.partitions[i][columns].compute()
        for s in range(0, max(len(part), 1), batch_size):
            yield part.iloc[s:s + batch_size]


class _ArrowDatasetSource(Source):
    def __init__(self, dataset, name: str):
        super().__init__(name, list(dataset.schema.names), True, list(dataset.get_fragments()))
        self._dataset = dataset

    def part_batches(self, fragment, columns, batch_size):
        # one fragment at a time, with a read-ahead of one batch: bounded memory
        scanner = fragment.scanner(schema=self._dataset.schema, columns=columns, batch_size=batch_size,
                                   batch_readahead=1, use_threads=True)
        for batch in scanner.to_batches():
            yield _batch_frame(batch, {})


def _hive_values(path: Path, root: Path) -> dict[str, str]:
    out = {}
    for part in path.relative_to(root).parts[:-1]:
        key, eq, value = part.partition("=")
        if eq and key:
            out[key] = value
    return out


def _typed_partitions(raw: list[dict[str, str]]) -> list[dict]:
    """Hive partition values typed as pyarrow's dataset discovery types them: integers when
    every value of a key is one, strings otherwise (``__HIVE_DEFAULT_PARTITION__`` is missing)."""
    keys = list(dict.fromkeys(k for r in raw for k in r))
    out: list[dict] = [{} for _ in raw]
    for key in keys:
        values = [r.get(key) for r in raw]
        present = [v for v in values if v is not None and v != "__HIVE_DEFAULT_PARTITION__"]
        integer = bool(present) and all(v.lstrip("-").isdigit() for v in present)
        for o, v in zip(out, values):
            if v is None or v == "__HIVE_DEFAULT_PARTITION__":
                o[key] = np.nan if integer else None
            else:
                o[key] = int(v) if integer else v
    return out


class _ParquetSource(Source):
    """One Parquet file or a folder of them (recursively; hive ``key=value`` folders give columns)."""

    def __init__(self, path: Path, name: str):
        import pyarrow.parquet as pq

        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _PARQUET_SUFFIXES
                           and not any(s.startswith(("_", ".")) for s in p.relative_to(path).parts))
            if not files:
                raise DataError(f"the folder {str(path)!r} holds no Parquet files (*.parquet); give a folder "
                                "of Parquet files, a Parquet or CSV file")
            partitions = _typed_partitions([_hive_values(f, path) for f in files])
        else:
            files, partitions = [path], [{}]
        self._schemas = {}
        parts = []
        for f, consts in zip(files, partitions):
            try:
                meta = pq.read_metadata(f)
                schema = pq.read_schema(f)
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot read {str(f)!r} as a Parquet file: {exc}") from exc
            clash = sorted(set(consts) & set(schema.names))
            if clash:
                raise DataError(f"the file {str(f)!r} holds column {clash[0]!r}, which its folder "
                                f"({clash[0]}=...) also gives; rename one of them")
            self._schemas[f] = (schema, consts)
            parts += [(f, g, consts) for g in range(meta.num_row_groups)]
        columns = list(dict.fromkeys([n for s, c in self._schemas.values() for n in [*s.names, *c]]))
        super().__init__(name, columns, True, parts)
        self._cast: dict = {}

    def check_columns(self, columns) -> None:
        self._cast = {}
        for c in columns:
            typed = []
            for f, (schema, consts) in self._schemas.items():
                if c in consts:
                    continue
                if c not in schema.names:
                    others = [str(g) for g, (s, k) in self._schemas.items() if c in s.names or c in k]
                    where = f" (it is in {others[0]!r})" if others else ""
                    raise DataError(
                        f"column {c!r} is not in the file {str(f)!r}{where}; every file of {self.name!r} "
                        "needs the model's columns: add it to that file, or leave the file out")
                typed.append((repr(str(f)), schema.field(c).type))
            target = _unify(c, typed)
            if target is not None:
                self._cast[c] = target

    def part_batches(self, part, columns, batch_size):
        import pyarrow.parquet as pq

        f, group, consts = part
        read = [c for c in columns if c not in consts]
        try:
            pf = pq.ParquetFile(f, pre_buffer=False)
            batches = pf.iter_batches(batch_size=batch_size, row_groups=[group], columns=read, use_threads=True)
            for batch in batches:
                yield _batch_frame(batch, self._cast, {c: consts[c] for c in columns if c in consts})
        except (OSError, ValueError) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"cannot read row group {group} of {str(f)!r}: {exc}") from exc


class _CsvSource(Source):
    """A CSV file read in blocks; integer columns are read as float64, so that a later block with
    a decimal value cannot clash with the type inferred from the first."""

    def __init__(self, path: Path, name: str, block_size: int = 1 << 24):
        import pyarrow.csv as pcsv

        self._path = path
        self._block = block_size
        try:
            reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=block_size))
            schema = reader.schema
            reader.close()
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {str(path)!r} as a CSV file: {exc}") from exc
        self._schema = schema
        super().__init__(name, list(schema.names), True, [path])

    def part_batches(self, path, columns, batch_size):
        import pyarrow as pa
        import pyarrow.csv as pcsv

        types = {c: pa.float64() for c in columns
                 if pa.types.is_integer(self._schema.field(c).type)}
        try:
            reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=self._block),
                                   convert_options=pcsv.ConvertOptions(include_columns=columns, column_types=types))
            buffered: list = []
            rows = 0
            for batch in reader:
                buffered.append(batch)
                rows += batch.num_rows
                while rows >= batch_size:
                    table = pa.Table.from_batches(buffered)
                    yield _batch_frame(table.slice(0, batch_size), {})
                    rest = table.slice(batch_size)
                    buffered, rows = rest.to_batches(), rest.num_rows
            if rows:
                yield _batch_frame(pa.Table.from_batches(buffered), {})
        except pa.ArrowInvalid as exc:
            # pyarrow numbers the column among those read ("In CSV column #1: ..."): name it
            import re

            hit = re.search(r"column #(\d+)", str(exc))
            k = int(hit.group(1)) if hit else -1
            read = [c for c in self._schema.names if c in columns]
            where = f" in column {read[k]!r}" if 0 <= k < len(read) else ""
            raise DataError(f"cannot read {str(path)!r} as CSV{where}: {exc}; the column's values must all have "
                            "one type (numbers or text): fix the file, or read it with pandas and give the "
                            "frame") from exc


def as_source(data, name: str | None = None) -> Source:
    """Wrap data in a :class:`Source`.

    Parameters
    ----------
    data : pandas.DataFrame, dict of columns, pyarrow.Table, str or os.PathLike, \
pyarrow.dataset.Dataset, polars.DataFrame, polars.LazyFrame or dask.dataframe.DataFrame
        A path names a CSV file (``.csv``, ``.tsv``, ``.txt``), a Parquet file or a folder of
        Parquet files (files whose path has a part starting with ``_`` or ``.`` are skipped,
        as pyarrow does; ``key=value`` folders give a column ``key``).
    name : str, optional
        How messages name the source (default: the path, or a description).

    Returns
    -------
    Source

    Raises
    ------
    DataError
        A path that does not exist, a file that cannot be read, a type that is not a data source.

    Examples
    --------
    >>> import pandas as pd
    >>> src = as_source(pd.DataFrame({"x": range(5), "y": range(5)}))
    >>> [len(b) for b in src.batches(["x"], batch_size=2)]
    [2, 2, 1]
    """
    if isinstance(data, pd.DataFrame):
        return _FrameSource(data, name or "a pandas DataFrame")
    if isinstance(data, dict):
        from .._validation import as_frame

        return _FrameSource(as_frame(data), name or "a dict of columns")
    if isinstance(data, (str, os.PathLike)):
        path = Path(data).expanduser()
        label = name or str(data)
        if not path.exists():
            raise DataError(f"no file or folder {str(data)!r}; give an existing CSV or Parquet file, or a "
                            "folder of Parquet files")
        lower = path.name.lower()
        if path.is_dir() or lower.endswith(_PARQUET_SUFFIXES):
            return _ParquetSource(path, label)
        if lower.endswith(_CSV_SUFFIXES):
            return _CsvSource(path, label)
        raise DataError(f"cannot tell the format of {str(data)!r}: give a .csv or .parquet file, or a folder "
                        "of Parquet files")
    if _is_polars(data) and type(data).__name__ in ("DataFrame", "LazyFrame"):
        return _PolarsSource(data, name or f"a polars {type(data).__name__}")
    if _is_dask(data):
        return _DaskSource(data, name or "a Dask DataFrame")
    if _is_arrow_dataset(data):
        return _ArrowDatasetSource(data, name or "a pyarrow Dataset")
    if hasattr(data, "to_pandas") and hasattr(data, "schema") and hasattr(data, "select"):
        return _ArrowTableSource(data, name or "a pyarrow Table")
    raise DataError(
        "data must be a pandas DataFrame, a dict of columns, a pyarrow Table or Dataset, a polars "
        "DataFrame or LazyFrame, a Dask DataFrame, or the path of a CSV file, a Parquet file or a "
        f"folder of Parquet files; got {type(data).__name__}")
