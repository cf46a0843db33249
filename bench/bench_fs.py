#!/usr/bin/env python3
"""Factor-smooth GAM benchmark: pymlm side by side with mgcv.

The model is the README's factor-smooth example on the bundled gamsim_re data
(20000 rows, 200 levels of g):

    y ~ te(x1, x2) + s(x0, g, bs = "fs")

a 5 x 5 tensor product (2 penalties) and one thin plate curve of x0 per level
(k = 10: 2000 coefficients, 3 penalties), fitted by REML with pymlm's
``gam`` and mgcv 1.8-41's ``gam(method = "REML")``, on the rows of the first
20, 50 and all 200 groups (``--groups``). mgcv fits twice: its own
``bs = "fs"`` (whose null-space basis is a rotation left to rounding) and
through ``tests/reference/fs_null_basis.R``, the null-space basis pymlm uses,
which is the fit pymlm should equal. mgcv runs only up to ``--r-max-groups``
groups (50): its gam takes a QR decomposition of the n x p model matrix, and
at 200 groups (20000 x 2026) that is expected to take hours on this machine
(its 237-coefficient gam of the same rows takes about 2 minutes).

Every fit runs in a fresh process that first reads the data and then times
the fit call alone; configurations run ``--repeats`` times and the median is
reported with the 1-minute load average seen at the start (the machine may be
shared). The children import a copy of the pymlm source taken when the run
starts. ``--pymlm-src DIR`` times another pymlm source tree as well (for a
before / after comparison of a change). Results go to
``bench/results/fs.json``.

Examples
--------
pymlm and mgcv::

    python bench/bench_fs.py

pymlm only, all groups, against an older checkout's source::

    python bench/bench_fs.py --no-r --groups 200 --pymlm-src /tmp/old
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORMULA = "y ~ te(x1, x2) + s(x0, g, bs = 'fs')"
R_FORMULA = 'y ~ te(x1, x2) + s(x0, g, bs = "fs")'

PY_CHILD = r"""
import json, sys, time
import pandas as pd
import pymlm as ml
d = pd.read_csv(sys.argv[1])
d = d[d["g"].isin(["g%03d" % i for i in range(1, int(sys.argv[3]) + 1)])].reset_index(drop=True)
d["g"] = pd.Categorical(d["g"])
t0 = time.perf_counter()
kw = {"progress": False} if "progress" in ml.gam.__code__.co_varnames else {}
m = ml.gam(sys.argv[2], d, **kw)
secs = time.perf_counter() - t0
print(json.dumps({"seconds": secs, "edf": {k: float(v) for k, v in m.edf.items()},
                  "score": float(m.reml_score), "fitted_head": [float(v) for v in m.fitted[:20]]}))
"""

R_CHILD = r"""
suppressPackageStartupMessages({library(mgcv); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
source(args[3])
d <- read.csv(args[1])
d <- d[d$g %in% sprintf("g%03d", seq_len(as.integer(args[5]))), ]
d$g <- factor(d$g)
f <- as.formula(args[2])
if (args[4] == "fixed") f <- fs_fixed_formula(f)
t0 <- proc.time()[["elapsed"]]
m <- gam(f, data = d, method = "REML")
secs <- proc.time()[["elapsed"]] - t0
st <- summary(m)$s.table
cat(toJSON(list(seconds = secs, edf = as.list(setNames(st[, "edf"], rownames(st))),
                score = as.numeric(m$gcv.ubre), fitted_head = as.numeric(fitted(m))[1:20]),
           auto_unbox = TRUE, digits = 15), "\n")
"""


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _run(cmd, env=None, timeout=None) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_pymlm(src: Path, csv: Path, groups: int, repeats: int, timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(PY_CHILD)
    runs = [_run([sys.executable, fh.name, str(csv), FORMULA, str(groups)], env, timeout)
            for _ in range(repeats)]
    Path(fh.name).unlink()
    return _summary(runs)


def time_mgcv(csv: Path, groups: int, variant: str, repeats: int, timeout: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(R_CHILD)
    wrapper = ROOT / "tests" / "reference" / "fs_null_basis.R"
    try:
        runs = [_run(["Rscript", fh.name, str(csv), R_FORMULA, str(wrapper), variant, str(groups)],
                     timeout=timeout) for _ in range(repeats)]
    except subprocess.TimeoutExpired:
        return {"seconds": None, "note": f"over the {timeout:.0f} s timeout"}
    finally:
        Path(fh.name).unlink()
    return _summary(runs)


def _summary(runs: list) -> dict:
    out = dict(runs[0])
    out["seconds_all"] = [r["seconds"] for r in runs]
    out["seconds"] = statistics.median(out["seconds_all"])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, nargs="+", default=[20, 50, 200],
                    help="fit the rows of the first N groups (g001 ... gN)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--r-repeats", type=int, default=1, help="repeats of each mgcv fit")
    ap.add_argument("--r-max-groups", type=int, default=50, help="largest size mgcv fits")
    ap.add_argument("--no-r", action="store_true", help="skip mgcv")
    ap.add_argument("--pymlm-src", type=Path, default=None, help="also time the pymlm found in this folder")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fs.json")
    args = ap.parse_args(argv)
    csv = ROOT / "data" / "gamsim_re.csv"
    result = {"formula": FORMULA, "data": "data/gamsim_re.csv", "load_at_start": _load(),
              "python": sys.version.split()[0], "sizes": {}}
    # the children import a copy of the source taken now, so that edits during a run do not mix in
    snapshot = Path(tempfile.mkdtemp(prefix="pymlm_bench_fs_"))
    shutil.copytree(ROOT / "pymlm", snapshot / "pymlm")
    try:
        for groups in args.groups:
            fits = result["sizes"][str(groups)] = {}
            fits["pymlm"] = time_pymlm(snapshot, csv, groups, args.repeats, args.timeout)
            print(f"{groups} groups: pymlm gam {fits['pymlm']['seconds']:.2f} s")
            if args.pymlm_src is not None:
                other = time_pymlm(args.pymlm_src.resolve(), csv, groups, args.repeats, args.timeout)
                fits["pymlm_other_src"] = dict(other, src=str(args.pymlm_src))
                print(f"{groups} groups: pymlm gam ({args.pymlm_src}) {other['seconds']:.2f} s")
            if args.no_r or not shutil.which("Rscript") or groups > args.r_max_groups:
                continue
            for variant in ("fixed", "own"):
                r = time_mgcv(csv, groups, variant, args.r_repeats, args.timeout)
                fits[f"mgcv_{variant}"] = r
                secs = r["seconds"]
                print(f"{groups} groups: mgcv gam ({variant} null space) "
                      + ("timeout" if secs is None else f"{secs:.2f} s"))
            ref, mine = fits["mgcv_fixed"], fits["pymlm"]
            if ref.get("seconds") is not None:
                fits["agreement"] = {
                    "max_abs_edf": max(abs(mine["edf"][k] - v) for k, v in ref["edf"].items()),
                    "score_rel": abs(mine["score"] - ref["score"]) / abs(ref["score"]),
                }
                print(f"{groups} groups: agreement with mgcv (same null space)", fits["agreement"])
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)
    result["load_at_end"] = _load()
    result["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
