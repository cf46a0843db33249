#!/usr/bin/env python3
"""bam / gam benchmarks: pymlm side by side with mgcv.

The model is the gamsim-plus-random-intercept GAMM of the reference fits,

    y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2, bs = "cr") + s(x3, bs = "cr") + s(g, bs = "re")

on data simulated by ``bench/gamm_sims.R`` (mgcv's ``gamSim(1)`` with scale 2
plus a 200-level random intercept of sd 1) at n = 20k, 200k and 2M rows.
Fitters: pymlm ``bam(discrete=True)``, ``bam(discrete=False)`` and ``gam``;
mgcv ``bam(discrete = TRUE)``, ``bam`` and ``gam`` (``bench/bam_mgcv.R``).

Every fit runs in a fresh process that first loads the data into a data
frame (R: ``readRDS``; Python: a ``.npz`` file of the same numbers, the
factor as a Categorical) and then times the fit call alone. Memory is the
whole process's peak resident set size, from ``/usr/bin/time -v`` (its
"Maximum resident set size") with the process's own ``VmHWM`` as a
fallback, and the resident size after loading the data beside it. mgcv's
``gam`` is skipped above 20k rows (about 2 minutes at 20k on this machine,
growing faster than n; at 2M rows its 2M x 237 model matrix and QR
workspaces alone would need several GB) and a configuration that exceeds
``--timeout`` is recorded as such.

The child processes import a copy of the pymlm source taken when the run
starts, so that edits made during a long run do not mix two versions.
Results go to ``bench/results/bam.json``; ``--report --markdown`` prints the
table for ``bench/README.md``.

Examples
--------
Everything (about 15 minutes on 2 cores, most of it mgcv's bam without
discretization at 2M rows and its gam at 20k)::

    python bench/bench_bam.py

pymlm only, small sizes, one run each::

    python bench/bench_bam.py --sizes 20000 200000 --no-r --repeats 1

The stored results as Markdown::

    python bench/bench_bam.py --report --markdown
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
RESULTS = HERE / "results" / "bam.json"
R_SCRIPT = HERE / "bam_mgcv.R"
MARKER = "BENCH_JSON "
FORMULA = 'y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2, bs = "cr") + s(x3, bs = "cr") + s(g, bs = "re")'
SIZES = (20_000, 200_000, 2_000_000)
FITTERS = ("bam_discrete", "bam", "gam")
# mgcv configurations not run, with the reason recorded in the results
MGCV_SKIP = {
    ("gam", 200_000): "mgcv gam skipped: about 2 minutes at 20k rows and super-linear in n (QR of the "
                      "n x 237 model matrix at every smoothing-parameter step)",
    ("gam", 2_000_000): "mgcv gam skipped: the 2M x 237 model matrix (3.8 GB) and its QR workspaces "
                        "exceed what a single fit can reasonably use here; hours of run time",
}


# ----------------------------------------------------------------------------- data


def paths(n: int) -> dict[str, Path]:
    stem = CACHE / f"gamsim_re_{n}"
    return {"csv": stem.with_suffix(".csv"), "rds": stem.with_suffix(".rds"), "npz": stem.with_suffix(".npz")}


def ensure_data(n: int) -> dict[str, Path]:
    """Simulate the data (R) and write the CSV, the RDS for mgcv and the npz for pymlm."""
    p = paths(n)
    CACHE.mkdir(parents=True, exist_ok=True)
    if not (p["csv"].exists() and p["rds"].exists()):
        if shutil.which("Rscript") is None:
            raise SystemExit("the data are simulated by bench/gamm_sims.R: Rscript is needed once")
        print(f"  simulating n = {n} with bench/gamm_sims.R ...", flush=True)
        subprocess.run(["Rscript", str(R_SCRIPT), "generate", str(n), str(p["csv"]), str(p["rds"])], check=True)
    if not p["npz"].exists():
        import numpy as np
        import pandas as pd

        print(f"  converting {p['csv'].name} -> {p['npz'].name} ...", flush=True)
        d = pd.read_csv(p["csv"], dtype={"g": "category"})
        levels = [f"g{i:03d}" for i in range(1, 201)]
        g = pd.Categorical(d["g"].astype(str), categories=levels)
        np.savez(p["npz"], **{c: d[c].to_numpy(dtype=float) for c in ("y", "x0", "x1", "x2", "x3")},
                 g_codes=np.asarray(g.codes, dtype=np.int32), g_levels=np.array(levels))
    return p


# ----------------------------------------------------------------------------- children


def _vm(key: str) -> float:
    """A /proc/self/status entry in MiB (Linux); NaN elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def child(fitter: str, npz: str) -> None:
    """Load the data, time one fit, print the result line (runs in a fresh process)."""
    import numpy as np
    import pandas as pd

    z = np.load(npz)
    d = pd.DataFrame({c: z[c] for c in ("y", "x0", "x1", "x2", "x3")})
    d["g"] = pd.Categorical.from_codes(z["g_codes"], categories=list(z["g_levels"]))
    del z
    gc.collect()
    import pymlm as ml

    rss_loaded = _vm("VmRSS")
    t0 = time.perf_counter()
    if fitter == "bam_discrete":
        m = ml.bam(FORMULA, d, discrete=True)
    elif fitter == "bam":
        m = ml.bam(FORMULA, d, discrete=False)
    elif fitter == "gam":
        m = ml.gam(FORMULA, d)
    else:
        raise SystemExit(f"unknown fitter {fitter}")
    secs = time.perf_counter() - t0
    out = {
        "fitter": fitter, "n": len(d), "seconds": secs, "rss_loaded_mb": rss_loaded, "peak_mb": _vm("VmHWM"),
        "edf": {k: float(v) for k, v in m.edf.items()}, "scale": m.scale, "score": m.reml_score,
        "fitted_head": [float(v) for v in m.fitted[:10]],
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
                     "pymlm": ml.__version__},
    }
    print(MARKER + json.dumps(out), flush=True)


def _snapshot() -> Path:
    """A copy of the pymlm source for the children (edits during a run do not leak in)."""
    digest = hashlib.sha1()
    for f in sorted((ROOT / "pymlm").rglob("*.py")):
        digest.update(f.read_bytes())
    dst = CACHE / f"pymlm-bam-{digest.hexdigest()[:12]}"
    if not dst.exists():
        shutil.copytree(ROOT / "pymlm", dst / "pymlm", ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def _time_prefix() -> list[str]:
    return ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []


def _max_rss_mb(stderr: str) -> float | None:
    hit = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    return int(hit.group(1)) / 1024 if hit else None


def run_one(engine: str, fitter: str, n: int, data: dict, snapshot: Path, timeout: float) -> dict:
    """One fit in a fresh process; the parsed result, or an error / timeout record."""
    if engine == "pymlm":
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", fitter, str(data["npz"])]
        env = dict(os.environ, PYTHONPATH=str(snapshot))
    else:
        cmd = ["Rscript", str(R_SCRIPT), "fit", fitter, str(data["rds"])]
        env = dict(os.environ)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(_time_prefix() + cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "note": f"did not finish within {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)), None)
    if proc.returncode != 0 or line is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"status": "error", "note": " | ".join(tail)[-400:]}
    out = json.loads(line[len(MARKER):])
    peak = _max_rss_mb(proc.stderr)
    out["peak_vmhwm_mb"] = out.get("peak_mb")
    if peak is not None:
        out["peak_mb"] = peak
    out.update(status="ok", process_seconds=wall, loadavg_before=load0, loadavg_after=os.getloadavg()[0])
    return out


# ----------------------------------------------------------------------------- driver


def _summarize(runs: list[dict]) -> dict:
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        return {"status": runs[-1].get("status", "error"), "note": runs[-1].get("note", ""), "runs": runs}
    best = min(ok, key=lambda r: r["seconds"])
    return {
        "status": "ok",
        "seconds": statistics.median(r["seconds"] for r in ok),
        "seconds_all": [r["seconds"] for r in ok],
        "peak_mb": statistics.median(r["peak_mb"] for r in ok),
        "rss_loaded_mb": statistics.median(r["rss_loaded_mb"] for r in ok),
        "edf": best["edf"], "scale": best["scale"], "score": best["score"], "fitted_head": best["fitted_head"],
        "loadavg": [(r["loadavg_before"], r["loadavg_after"]) for r in ok],
        "versions": best.get("versions"),
    }


def run(sizes, fitters, repeats: int, with_r: bool, timeout: float, budget: float) -> dict:
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.setdefault("cases", {})
    snapshot = _snapshot()
    for n in sizes:
        data = ensure_data(n)
        for fitter in fitters:
            for engine in ("pymlm", "mgcv"):
                key = f"{engine}:{fitter}:{n}"
                if engine == "mgcv" and not with_r:
                    continue
                if engine == "mgcv" and (fitter, n) in MGCV_SKIP:
                    results["cases"][key] = {"status": "skipped", "note": MGCV_SKIP[(fitter, n)]}
                    print(f"  {key:<28} skipped", flush=True)
                    continue
                runs = []
                for i in range(repeats):
                    r = run_one(engine, fitter, n, data, snapshot, timeout)
                    runs.append(r)
                    msg = f"{r['seconds']:8.2f} s  {r['peak_mb']:7.0f} MB" if r.get("status") == "ok" else r["status"]
                    print(f"  {key:<28} run {i + 1}: {msg}", flush=True)
                    if r.get("status") != "ok" or r["seconds"] > budget:
                        break  # one run is enough for slow or failed configurations
                results["cases"][key] = _summarize(runs)
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                RESULTS.write_text(json.dumps(results, indent=1))
    results["machine"] = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"), "platform": platform.platform(),
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
        "r": _r_version() if with_r else None, "formula": FORMULA,
    }
    RESULTS.write_text(json.dumps(results, indent=1))
    return results


def _r_version() -> str | None:
    if shutil.which("Rscript") is None:
        return None
    out = subprocess.run(["Rscript", "-e", 'cat(R.version.string, "mgcv", as.character(packageVersion("mgcv")))'],
                         capture_output=True, text=True)
    return out.stdout.strip() or None


def _fmt_n(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def report(results: dict, markdown: bool) -> str:
    """The results as a table: times, peak memory and mgcv / pymlm ratios, with agreement."""
    cases = results.get("cases", {})
    sizes = sorted({int(k.split(":")[2]) for k in cases})
    rows = []
    notes = []
    for n in sizes:
        for fitter in FITTERS:
            p = cases.get(f"pymlm:{fitter}:{n}")
            r = cases.get(f"mgcv:{fitter}:{n}")
            if p is None and r is None:
                continue
            label = {"bam_discrete": "bam(discrete=TRUE)", "bam": "bam", "gam": "gam"}[fitter]

            def cell(c, what):
                if c is None:
                    return "not run"
                if c.get("status") != "ok":
                    notes.append(c.get("note", c.get("status")))
                    return c.get("status")
                return f"{c['seconds']:.2f} s" if what == "t" else f"{c['peak_mb']:.0f} MB"

            ok = p is not None and r is not None and p.get("status") == "ok" and r.get("status") == "ok"
            t_ratio = f"{r['seconds'] / p['seconds']:.1f}x" if ok else "-"
            m_ratio = f"{r['peak_mb'] / p['peak_mb']:.2f}x" if ok else "-"
            agree = "-"
            if ok:
                de = max(abs(p["edf"][k] - r["edf"][k]) for k in r["edf"])
                ds = abs(p["scale"] / r["scale"] - 1)
                agree = f"edf {de:.1e}, scale {ds:.1e}"
            rows.append([_fmt_n(n), label, cell(p, "t"), cell(r, "t"), t_ratio, cell(p, "m"), cell(r, "m"), m_ratio,
                         agree])
    head = ["n", "fitter", "pymlm time", "mgcv time", "mgcv/pymlm time", "pymlm peak", "mgcv peak",
            "mgcv/pymlm memory", "max difference"]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)] if rows else [len(h) for h in head]
        lines = ["  ".join(str(x).ljust(w) for x, w in zip(head, widths))]
        lines += ["  ".join(str(x).ljust(w) for x, w in zip(r, widths)) for r in rows]
    loads = [x for c in cases.values() for pair in (c.get("loadavg") or []) for x in pair]
    if loads:
        notes.append(f"1-minute load average during the runs: {min(loads):.1f} to {max(loads):.1f} "
                     f"on {results.get('machine', {}).get('cpus', '?')} cores (the machine was shared)")
    for note in dict.fromkeys(notes):
        lines.append(f"\n{note}" if markdown else f"note: {note}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    ap.add_argument("--fitters", nargs="*", default=list(FITTERS), choices=FITTERS)
    ap.add_argument("--repeats", type=int, default=3, help="runs per configuration (median reported)")
    ap.add_argument("--budget", type=float, default=60.0, help="configurations slower than this run once")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds before a fit is abandoned")
    ap.add_argument("--no-r", action="store_true", help="pymlm only")
    ap.add_argument("--report", action="store_true", help="print the stored results and exit")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("FITTER", "NPZ"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    if not args.report:
        with_r = not args.no_r and shutil.which("Rscript") is not None
        if not args.no_r and not with_r:
            print("Rscript not found: running pymlm only", flush=True)
        run(args.sizes, args.fitters, args.repeats, with_r, args.timeout, args.budget)
    if not RESULTS.exists():
        print("no results yet; run without --report first")
        return 1
    print(report(json.loads(RESULTS.read_text()), args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
