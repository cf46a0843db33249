#!/usr/bin/env python3
"""bam(discrete=True) from a folder of Parquet files, streamed, beside the same fit in memory.

mgcv's ``gamSim(1)`` design with a random intercept (four covariates on
[0, 1], ``f0 + f1 + f2`` plus a 200-level group effect and N(0, 2^2) noise),
N rows written as Parquet files of 1,000,000 rows each (block k seeded with
seed + k, so the data are a function of N and the seed). Each fit runs in a
child process of its own; its peak resident memory is ``ru_maxrss`` of that
child:

- ``path``: ``pymlm.bam(formula, folder)``: the first pass (ranges, distinct
  values, levels), a pass of maxima and a pass of exact cross-tabulations;
- ``memory``: ``pandas.read_parquet(folder)`` then ``pymlm.bam`` on the frame
  (skipped with ``--no-memory``);
- ``dask`` (with ``--dask``): ``pymlm.bam(formula, dask.dataframe.read_parquet(folder))``
  on a two-worker local cluster; its coefficients are compared bit for bit
  with the ``path`` fit's (the same exact integer sums).

Recorded per fit: wall seconds (reading included), peak RSS, the edf, the
smoothing parameters, the fREML score; for a pair, the largest relative
difference of the coefficients. Results go to ``bench/results/bam_stream.json``
(runs keyed by N, the last kept).

Examples
--------
::

    python bench/bench_bam_stream.py --rows 2000000 --data /tmp/bam_2m
    python bench/bench_bam_stream.py --rows 10000000 --data /tmp/bam_10m --no-memory
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "bam_stream.json"
PER_FILE, SEED = 1_000_000, 2026
FORMULA = ('y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2, bs = "cr") + s(x3, bs = "cr")'
           ' + s(g, bs = "re")')

CHILD = r"""
import json, resource, sys, time, warnings
import numpy as np
import pandas as pd
import pymlm as ml
mode, folder, formula, out = sys.argv[1:5]
t0 = time.perf_counter()
extra = {}
if mode == "path":
    b = ml.bam(formula, folder, progress=False)
elif mode == "dask":
    import dask.dataframe as dd
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                           silence_logs=40)
    client = Client(cluster)
    t0 = time.perf_counter()  # the cluster's start is not the fit's
    b = ml.bam(formula, dd.read_parquet(folder), progress=False)
    extra = {"workers": list(b.workers)}
else:
    b = ml.bam(formula, pd.read_parquet(folder), progress=False)
seconds = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
json.dump({"seconds": seconds, "peak_rss_gb": rss, "nobs": b.nobs, "coef": b.coef.tolist(),
           "edf": b.edf.to_dict(), "sp": b.sp.to_dict(), "reml_score": b.reml_score, "scale": b.scale, **extra},
          open(out, "w"))
"""


def write_data(folder: Path, rows: int) -> None:
    """N rows of the gamSim(1) design with a group effect, a file of PER_FILE rows at a time."""
    import numpy as np
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    for k, start in enumerate(range(0, rows, PER_FILE)):
        path = folder / f"part-{k:05d}.parquet"
        if path.exists():
            continue
        n = min(PER_FILE, rows - start)
        rng = np.random.default_rng(SEED + k)
        x = rng.uniform(size=(n, 4))
        f = (2 * np.sin(np.pi * x[:, 0]) + np.exp(2 * x[:, 1])
             + 0.2 * x[:, 2] ** 11 * (10 * (1 - x[:, 2])) ** 6 + 10 * (10 * x[:, 2]) ** 3 * (1 - x[:, 2]) ** 10)
        g = rng.integers(0, 200, n)
        b = np.random.default_rng(SEED).normal(0.0, 1.0, 200)
        frame = pd.DataFrame({"y": f + b[g] + rng.normal(0.0, 2.0, n), "x0": x[:, 0], "x1": x[:, 1],
                              "x2": x[:, 2], "x3": x[:, 3],
                              "g": pd.Categorical([f"g{v:03d}" for v in g],
                                                  categories=[f"g{v:03d}" for v in range(200)])})
        frame.to_parquet(path, row_group_size=250_000, index=False)


def run(mode: str, folder: Path) -> dict:
    out = folder.parent / f"{folder.name}-{mode}.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", CHILD, mode, str(folder), FORMULA, str(out)], check=True, env=env)
    return json.loads(out.read_text())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--data", type=Path, required=True, help="folder for the Parquet files (reused)")
    ap.add_argument("--no-memory", action="store_true", help="skip the in-memory fit")
    ap.add_argument("--dask", action="store_true",
                    help="also fit a Dask DataFrame of the folder on a 2-worker local cluster (peak RSS: the "
                         "client process only)")
    args = ap.parse_args(argv)
    write_data(args.data, args.rows)
    record = {"rows": args.rows, "formula": FORMULA, "cpus": os.cpu_count(),
              "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "path": run("path", args.data)}
    if not args.no_memory:
        import numpy as np

        record["memory"] = run("memory", args.data)
        a, b = np.array(record["memory"]["coef"]), np.array(record["path"]["coef"])
        record["max_rel_coef_diff"] = float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
    if args.dask:
        record["dask"] = run("dask", args.data)
        record["dask_equals_path_bitwise"] = record["dask"]["coef"] == record["path"]["coef"]
    for mode in ("path", "memory", "dask"):
        if mode in record:
            record[mode].pop("coef")
    runs = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs[str(args.rows)] = record
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(runs, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
