"""Data sources -> batches of rows: paths, Parquet folders, Arrow datasets, polars and Dask frames."""

from ._sources import Source, as_source, is_streamed

__all__ = ["Source", "as_source", "is_streamed"]
