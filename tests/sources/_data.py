"""Small longitudinal data written as Parquet parts: the design of the project's simulation
tool (subjects in blocks, each with its own seed; y = 1 + sum x + b0 + b1 x1 + e)."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def block(first_id: int, n_subj: int, n_i: int, p: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_subj * n_i
    X = rng.standard_normal((n, p))
    L = np.linalg.cholesky(np.array([[1.0, 0.5], [0.5, 2.0]]))
    b = rng.standard_normal((n_subj, 2)) @ L.T
    idx = np.repeat(np.arange(n_subj), n_i)
    y = 1.0 + X.sum(axis=1) + b[idx, 0] + b[idx, 1] * X[:, 0] + rng.standard_normal(n)
    cols = {"id": (idx + first_id).astype(np.int64), "t": np.tile(np.arange(n_i), n_subj), "y": y}
    cols.update({f"x{k + 1}": X[:, k] for k in range(p)})
    return pd.DataFrame(cols)


def write_parts(folder, N=300, n_i=6, p=3, seed=1, per=100, row_group_size=250) -> pd.DataFrame:
    """Write N subjects as files of ``per`` subjects; return the whole frame (file order)."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for k, first in enumerate(range(0, N, per)):
        df = block(first + 1, min(per, N - first), n_i, p, seed + k)
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), folder / f"part-{k:05d}.parquet",
                       row_group_size=row_group_size)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
