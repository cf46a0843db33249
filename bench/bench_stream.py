#!/usr/bin/env python3
"""lmer from a folder of Parquet files, streamed, beside the same fit in memory.

The nested longitudinal design (N subjects x 20 observations, p = 20
covariates, a random intercept and slope on x1), written as a folder of
Parquet files in bounded memory by ``../shared/tools/sim_longitudinal_parts.py``
(10,000 subjects per file; block k seeded with seed + k). Each fit runs in a
child process of its own, so its peak resident memory (``ru_maxrss`` of that
child, from ``os.wait4``) is the whole process's:

- ``path``: ``pymlm.lmer(formula, folder)``, two passes over the files
  (levels and missing rows, then the cross-products batch by batch);
- ``memory``: ``pandas.read_parquet(folder, columns=...)`` then ``pymlm.lmer``
  on the frame (skipped with ``--no-memory``, e.g. where it would not fit).

Recorded per fit: wall seconds (reading included), peak RSS, rows per
second, the estimates; for a pair, the largest |beta_path - beta_memory| in
standard errors and |theta_path - theta_memory|. Results go to
``bench/results/stream.json`` (runs keyed by N, the last kept) and the section
"## Streamed fits from Parquet" of ``bench/README.md``.

Examples
--------
::

    python bench/bench_stream.py --subjects 100000 --data /tmp/stream_100k
    python bench/bench_stream.py --subjects 1000000 --data /tmp/stream_1m --no-memory
    python bench/bench_stream.py --subjects 2000000 --data /tmp/stream_2m --no-memory --blb
    python bench/bench_stream.py --report
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _readme import write_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "stream.json"
SECTION = "## Streamed fits from Parquet"
GENERATOR = ROOT.parent / "shared" / "tools" / "sim_longitudinal_parts.py"
N_OBS, N_COV, SEED, PER_FILE = 20, 20, 2024, 10_000
FORMULA = "y ~ " + " + ".join(f"x{k}" for k in range(1, N_COV + 1)) + " + (1 + x1 | id)"

CHILD = r"""
import json, sys, time, warnings
import pandas as pd
import pymlm as ml
mode, folder, formula, out = sys.argv[1:5]
t0 = time.perf_counter()
if mode == "path":
    m = ml.lmer(formula, folder, progress=False)
else:
    cols = ["id", "y"] + [f"x{k}" for k in range(1, 21)]
    df = pd.read_parquet(folder, columns=cols)
    m = ml.lmer(formula, df)
sec = time.perf_counter() - t0
res = {"seconds": sec, "nobs": m.nobs, "theta": m.theta.tolist(), "sigma": m.sigma,
       "fixef": m.fixef.tolist(), "fixef_se": m.fixef_se.tolist(), "deviance": m.deviance}
if len(sys.argv) > 5 and sys.argv[5] == "blb":
    import resource
    res["fit_peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    t1 = time.perf_counter()
    ci = m.confint("blb", n_subsets=10, n_boots=200, subset_exponent=0.6, n_jobs=2, seed=2024, progress=False)
    res["blb"] = {"seconds": time.perf_counter() - t1, "subset_size": ci.attrs["settings"].get("subset_size"),
                  "index": ci.index.tolist(), "lower": ci.iloc[:, 0].tolist(), "upper": ci.iloc[:, 1].tolist(),
                  "process_peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2,
                  "largest_worker_peak_rss_gb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2}
open(out, "w").write(json.dumps(res))
"""

TRUTH = {".sig01": 1.0, ".sig02": 0.5 / 2 ** 0.5, ".sig03": 2 ** 0.5, ".sigma": 1.0}


def _load1() -> float:
    return os.getloadavg()[0]


def run_measured(mode: str, folder: Path, blb: bool = False) -> dict:
    """One fit (and with ``blb`` its BLB intervals) in a child process; its own peak RSS read by ``os.wait4``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    before = _load1()
    out_path = folder.parent / f".bench_stream_{mode}.json"
    cmd = [sys.executable, "-c", CHILD, mode, str(folder), FORMULA, str(out_path)] + (["blb"] if blb else [])
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if status != 0:
        raise RuntimeError(f"{mode} fit failed ({status}): {err[-2000:]}")
    res = json.loads(out_path.read_text())
    out_path.unlink()
    res.update(wall_seconds=wall, peak_rss_gb=usage.ru_maxrss / 1024 ** 2, load1_before=before, load1_after=_load1(),
               rows_per_second=res["nobs"] / res["seconds"])
    if "blb" in res:
        # BLB's two worker processes are children of the fit's process: their peaks are reported apart
        # (the fit process's peak plus twice the largest worker's bounds the sum)
        res["blb"]["missed"] = _missed(res["blb"])
    return res


def _missed(blb: dict) -> list:
    """The parameters whose BLB interval misses the simulation's truth (fixed effects all 1)."""
    out = []
    for name, lo, hi in zip(blb["index"], blb["lower"], blb["upper"]):
        truth = TRUTH.get(name, 1.0)
        if not lo <= truth <= hi:
            out.append(name)
    return out


def generate(folder: Path, n: int):
    if (folder / "_truth.json").exists():
        return
    subprocess.run([sys.executable, str(GENERATOR), str(n), str(N_OBS), str(N_COV), str(SEED), str(folder),
                    str(PER_FILE)], check=True)


def compare(a: dict, b: dict) -> dict:
    dbeta = max(abs(x - y) / s for x, y, s in zip(a["fixef"], b["fixef"], b["fixef_se"]))
    dtheta = max(abs(x - y) for x, y in zip(a["theta"], b["theta"]))
    return {"max_dbeta_in_se": dbeta, "max_dtheta": dtheta}


def report(results: dict) -> str:
    intro = ("`python bench/bench_stream.py --subjects N --data FOLDER`: `lmer(y ~ x1 + ... + x20 + (1 + x1 | id), "
             "folder)` streamed from a folder of Parquet files (written by "
             "`../shared/tools/sim_longitudinal_parts.py N 20 20 2024 FOLDER 10000`), beside "
             "`pandas.read_parquet` + `lmer` in memory; each fit in a child process of its own (time "
             "includes reading; peak RSS of that process).")
    lines = [SECTION, "", intro, "",
             ("| N subjects | rows | source | seconds (reading included) | peak RSS (GB) | rows / s | max abs(beta diff) / SE "
              "| max abs(theta diff) | load average | measured |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(results, key=int):
        r = results[key]
        for mode in ("path", "memory"):
            if mode not in r:
                continue
            x = r[mode]
            diff = r.get("agreement", {})
            d1 = f"{diff['max_dbeta_in_se']:.1e}" if diff and mode == "path" else ""
            d2 = f"{diff['max_dtheta']:.1e}" if diff and mode == "path" else ""
            peak = x.get("fit_peak_rss_gb", x["peak_rss_gb"])  # with --blb, the fit's peak before BLB
            lines.append(f"| {int(key):,} | {x['nobs']:,} | {mode} | {x['seconds']:.1f} | {peak:.2f} | "
                         f"{x['rows_per_second']:,.0f} | {d1} | {d2} | {x['load1_before']:.1f} -> "
                         f"{x['load1_after']:.1f} | {r.get('measured_at', '')[:10]} |")
    blb = [(k, results[k]["path"]) for k in sorted(results, key=int) if "blb" in results[k].get("path", {})]
    if blb:
        lines += ["", ("BLB on the streamed fit (`--blb`: b = N^0.6 subjects, s = 10 subsets, r = 200 resamples, "
                       "2 processes; one more pass reads the rows of the s b subjects drawn). Peak RSS: the fit's "
                       "process, and the largest of BLB's two worker processes."), "",
                  ("| N subjects | fit seconds | fit peak RSS (GB) | BLB seconds | process peak RSS (GB) "
                   "| largest worker peak RSS (GB) | intervals missing the truth |"),
                  "|---|---|---|---|---|---|---|"]
        for key, x in blb:
            b = x["blb"]
            missed = ", ".join(b["missed"]) or "none"
            lines.append(f"| {int(key):,} | {x['seconds']:.1f} | {x['fit_peak_rss_gb']:.2f} | {b['seconds']:.1f} | "
                         f"{b['process_peak_rss_gb']:.2f} | {b['largest_worker_peak_rss_gb']:.2f} | "
                         f"{len(b['missed'])} of {len(b['index'])} ({missed}) |")
    note = (f"Measured on {os.cpu_count()} cores shared with other jobs (1-minute load average before -> "
            "after each fit).")
    lines += ["", note, ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subjects", type=int, default=100_000)
    ap.add_argument("--data", type=Path, default=None, help="the Parquet folder (generated when absent)")
    ap.add_argument("--no-memory", action="store_true", help="skip the in-memory fit")
    ap.add_argument("--report", action="store_true", help="only rewrite the README section")
    ap.add_argument("--blb", action="store_true",
                    help="after the streamed fit, BLB intervals (b = N^0.6, s = 10, r = 200, 2 processes)")
    args = ap.parse_args(argv)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if not args.report:
        folder = args.data or Path("/tmp") / f"stream_N{args.subjects}"
        generate(folder, args.subjects)
        entry = {"measured_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                 "folder_gb": sum(f.stat().st_size for f in folder.glob("*.parquet")) / 1e9,
                 "path": run_measured("path", folder, blb=args.blb)}
        if not args.no_memory:
            entry["memory"] = run_measured("memory", folder)
            entry["agreement"] = compare(entry["path"], entry["memory"])
        results[str(args.subjects)] = entry
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
        print(json.dumps({k: v for k, v in entry.items()}, indent=1)[:3000])
    write_section(SECTION, report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
