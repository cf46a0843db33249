#!/usr/bin/env python3
"""Before/after timing of the architecture rework: this tree against a baseline checkout.

One run times the same cases with two versions of pymlm, each in fresh
subprocesses whose ``PYTHONPATH`` points at that version's source: the
current tree (a snapshot of ``pymlm/`` taken when the run starts, so that
edits during a run do not leak in) and a baseline worktree (by default the
commit before the rework, ``git worktree add /work/wt/baseline d6f0992``).
Runs are interleaved A, B, A, B, ... so that the load other jobs put on a
shared machine falls on both versions alike; the medians over the rounds
are reported, with each child's peak resident set size (``ru_maxrss`` of
the child, or of its worker processes when larger).

Cases
-----
insteval        ``lmer(y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service), REML=False)``
                on the bundled InstEval data (73,421 rows)
longitudinal    ``lmer(y ~ x1 + ... + x20 + (1 + x1 | id))`` (REML) on the 2M-row nested
                longitudinal data of ``bench/sim_longitudinal.py`` (100,000 subjects x 20)
blb             ``confint("blb", n_subsets=10, n_boots=200, subset_exponent=0.6, n_jobs=2)``
                of that fit (as ``bench/bench_blb.py``; the fit itself is not timed)
bam             ``bam(..., discrete=True)`` at 2M rows (as ``bench/bench_bam.py``)
blb_small       sleepstudy ``confint("blb", seed=1, n_subsets=3, n_boots=50)``
boot_small      sleepstudy ``confint("boot", nsim=200, seed=1)``
profile_small   sleepstudy ``confint("profile")`` (the profile memo emptied before each call)

The small cases run ``--inner`` timed calls per child after one warm-up call
and report their median; the big cases time one call per child. Wall-clock
seconds and the child's CPU seconds of the timed calls are both kept: on a
shared machine the CPU time is the steadier of the two for the single-threaded
small cases. ``OPENBLAS_CORETYPE`` and the BLAS threading are taken from the
environment unchanged.

Results go to ``bench/results/arch.json`` and the section "## Architecture
rework: before/after" of ``bench/README.md``.

Examples
--------
::

    python bench/bench_arch.py --cases blb_small boot_small profile_small --rounds 5
    python bench/bench_arch.py --cases insteval longitudinal blb bam --rounds 2
    python bench/bench_arch.py --report        # rewrite the README section from the JSON
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _readme import write_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
RESULTS = HERE / "results" / "arch.json"
SECTION = "## Architecture rework: before/after"
MARKER = "BENCH_ARCH "
DEFAULT_BASELINE = Path("/work/wt/baseline")
BASELINE_COMMIT = "d6f0992"

SIM_N, SIM_OBS, SIM_COV, SIM_SEED = 100_000, 20, 20, 1
SIM_FORMULA = "y ~ " + " + ".join(f"x{k}" for k in range(1, SIM_COV + 1)) + " + (1 + x1 | id)"
INSTEVAL_FORMULA = "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)"
BAM_N = 2_000_000
BAM_FORMULA = 'y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2, bs = "cr") + s(x3, bs = "cr") + s(g, bs = "re")'
BLB = {"n_subsets": 10, "n_boots": 200, "subset_exponent": 0.6, "n_jobs": 2}
SLEEP = "Reaction ~ Days + (Days | Subject)"

CASES = {
    "insteval": "InstEval ML crossed fit (73k rows)",
    "longitudinal": "nested longitudinal fit, 2M rows",
    "blb": "BLB, 100k subjects (s = 10, r = 200, b = 1000, 2 processes)",
    "bam": "bam(discrete=TRUE), 2M rows",
    "blb_small": "sleepstudy BLB (s = 3, r = 50)",
    "boot_small": "sleepstudy parametric bootstrap, nsim = 200",
    "profile_small": "sleepstudy profile confint",
}
SMALL = ("blb_small", "boot_small", "profile_small")


# ----------------------------------------------------------------------------- data
def longitudinal_parquet() -> Path:
    """The 2M-row longitudinal data set, generated into ``bench/.cache`` when missing."""
    path = CACHE / f"longitudinal_N{SIM_N}.parquet"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"generating {path.name} ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                str(HERE / "sim_longitudinal.py"),
                str(SIM_N),
                str(SIM_OBS),
                str(SIM_COV),
                str(SIM_SEED),
                str(path),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return path


def bam_npz() -> Path:
    """The 2M-row GAMM data of ``bench/bench_bam.py`` (simulated by R once)."""
    import bench_bam

    return bench_bam.ensure_data(BAM_N)["npz"]


def _load_parquet(path: Path):
    import bench_blb

    return bench_blb.load_frame(path)


def _load_npz(path: Path):
    import numpy as np
    import pandas as pd

    z = np.load(path)
    d = pd.DataFrame({c: z[c] for c in ("y", "x0", "x1", "x2", "x3")})
    d["g"] = pd.Categorical.from_codes(z["g_codes"], categories=list(z["g_levels"]))
    return d


# ----------------------------------------------------------------------------- child
def child(case: str, inner: int, data: str | None) -> None:
    """Run one case in this (fresh) process and print its timings as one JSON line."""
    import warnings

    import numpy as np

    import pymlm as ml

    warnings.simplefilter("ignore")
    calls = 1
    if case == "insteval":
        frame = ml.datasets.load("InstEval")

        def call():
            return ml.lmer(INSTEVAL_FORMULA, frame, REML=False).deviance
    elif case in ("longitudinal", "blb"):
        frame = _load_parquet(Path(data))
        if case == "longitudinal":

            def call():
                return ml.lmer(SIM_FORMULA, frame).reml_criterion
        else:
            m = ml.lmer(SIM_FORMULA, frame)

            def call():
                ci = m.confint("blb", seed=1, progress=False, **BLB)
                return float(ci.iloc[0, 0])
    elif case == "bam":
        frame = _load_npz(Path(data))

        def call():
            return ml.bam(BAM_FORMULA, frame, discrete=True).reml_score
    else:
        m = ml.lmer(SLEEP, ml.datasets.load("sleepstudy"))
        calls = inner

        def call():
            if case == "blb_small":
                return float(
                    m.confint("blb", seed=1, n_subsets=3, n_boots=50, progress=False).iloc[0, 0]
                )
            if case == "boot_small":
                return float(m.confint("boot", nsim=200, seed=1, progress=False).iloc[0, 0])
            import pymlm.inference.profile as prof

            getattr(prof, "_CACHE", {}).clear()  # the baseline's module-level memo
            getattr(m.problem, "memo", {}).clear()  # the current per-fit memo
            return float(m.confint("profile").iloc[0, 0])

        call()  # warm-up: imports, caches
    wall, cpu = [], []
    for _ in range(calls):
        t0, c0 = time.perf_counter(), time.process_time()
        value = call()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    # ru_maxrss (KiB on Linux) of this process and of its reaped worker processes
    peak = (
        max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        )
        / 1024
    )
    print(
        MARKER
        + json.dumps(
            {
                "wall": float(np.median(wall)),
                "cpu": float(np.median(cpu)),
                "value": float(value),
                "peak_mb": peak,
                "pymlm": str(Path(ml.__file__).parent),
            }
        ),
        flush=True,
    )


# ----------------------------------------------------------------------------- parent
def snapshot() -> Path:
    """A copy of this tree's ``pymlm/`` for the run (see ``bench_lmer.snapshot_package``)."""
    import bench_lmer

    return bench_lmer.snapshot_package()[0]


def run_child(tree: Path, case: str, inner: int, data: str | None, timeout: float) -> dict:
    """One child process on ``tree``'s pymlm; its timings and peak memory."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case, "--inner", str(inner)]
    if data:
        cmd += ["--data", data]
    rec = {"load1": round(os.getloadavg()[0], 2)}
    try:
        proc = subprocess.run(
            cmd, check=False, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        rec["error"] = f"timeout after {timeout:.0f} s"
        return rec
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        rec["error"] = (
            (proc.stderr or proc.stdout).strip().splitlines() or [f"exit {proc.returncode}"]
        )[-1]
        return rec
    rec.update(json.loads(lines[-1][len(MARKER) :]))
    if not str(rec["pymlm"]).startswith(str(tree)):
        rec["error"] = f"imported pymlm from {rec['pymlm']}, not from {tree}"
    return rec


def summarize(runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"runs": len(runs), "ok": 0}
    return {
        "runs": len(runs),
        "ok": len(ok),
        "wall": statistics.median(r["wall"] for r in ok),
        "cpu": statistics.median(r["cpu"] for r in ok),
        "peak_mb": statistics.median(r["peak_mb"] for r in ok if r.get("peak_mb") is not None),
    }


def run(cases, rounds: int, inner: int, baseline: Path, timeout: float) -> dict:
    trees = {"after": snapshot(), "before": baseline}
    data = {}
    if {"longitudinal", "blb"} & set(cases):
        data["longitudinal"] = data["blb"] = str(longitudinal_parquet())
    if "bam" in cases:
        data["bam"] = str(bam_npz())
    out = {}
    for case in cases:
        runs = {"before": [], "after": []}
        for k in range(rounds):
            # A/B, then B/A in the next round: neither version always goes first
            order = ("before", "after") if k % 2 == 0 else ("after", "before")
            for side in order:
                rec = run_child(
                    trees[side], case, inner if case in SMALL else 1, data.get(case), timeout
                )
                runs[side].append(rec)
                shown = (
                    f"{rec['wall']:.3f} s wall, {rec['cpu']:.3f} s cpu, {rec['peak_mb']:.0f} MB"
                    if "error" not in rec
                    else f"error: {rec['error']}"
                )
                print(
                    f"{case:14s} round {k + 1} {side:6s}: {shown} (load {rec['load1']:.2f})",
                    flush=True,
                )
        out[case] = {
            "label": CASES[case],
            "before": summarize(runs["before"]),
            "after": summarize(runs["after"]),
            "runs": runs,
        }
    return out


def _git(*args) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], check=False, capture_output=True, text=True
    ).stdout.strip()


# ----------------------------------------------------------------------------- report
def markdown(res: dict) -> str:
    intro = (
        f"`python bench/bench_arch.py` times the current source against the commit before the "
        f"rework ({res.get('baseline_commit', BASELINE_COMMIT)}, a git worktree), in fresh processes "
        "whose `PYTHONPATH` points at each version. The machine has 2 cores shared with other jobs, so "
        "the two versions run interleaved (before, after, then after, before in the next round): load "
        "from other jobs falls on both alike, and the medians over the rounds are compared. Seconds "
        "are the timed call's wall clock (CPU seconds of the child beside them: the steadier measure "
        "for the single-threaded small cases); memory is the child's peak resident set size "
        "(`ru_maxrss`, or its worker processes' when larger), data and interpreter included. "
        f"Measured {res.get('measured_at', '?')}."
    )
    lines = [
        SECTION,
        "",
        intro,
        "",
        "| case | rounds | before | after | after/before | before CPU | after CPU | before peak | after peak |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in res["cases"].values():
        b, a = e["before"], e["after"]
        if not (b.get("ok") and a.get("ok")):
            lines.append(f"| {e['label']} | {b.get('runs', 0)} | failed | | | | | | |")
            continue
        lines.append(
            f"| {e['label']} | {min(b['ok'], a['ok'])} | {b['wall']:.3g} s | {a['wall']:.3g} s | "
            f"{a['wall'] / b['wall']:.2f} | {b['cpu']:.3g} s | {a['cpu']:.3g} s | "
            f"{b['peak_mb']:.0f} MB | {a['peak_mb']:.0f} MB |"
        )
    loads = [
        r["load1"]
        for e in res["cases"].values()
        for side in ("before", "after")
        for r in e["runs"][side]
    ]
    if loads:
        lines += [
            "",
            (
                f"1-minute load average when the children started: {min(loads):.1f} to "
                f"{max(loads):.1f} on {res.get('cpus', '?')} cores: compare the two columns of a "
                "row (measured side by side), not rows measured at different times."
            ),
        ]
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    ap.add_argument("--rounds", type=int, default=3, help="A/B rounds per case (default 3)")
    ap.add_argument(
        "--inner", type=int, default=5, help="timed calls per child for the small cases"
    )
    ap.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument(
        "--report", action="store_true", help="rewrite the README section from the JSON"
    )
    ap.add_argument("--child", choices=list(CASES), help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.inner, args.data)
        return 0
    if not args.report:
        if not (args.baseline / "pymlm").is_dir():
            raise SystemExit(
                f"no baseline checkout at {args.baseline}: git worktree add {args.baseline} "
                f"{BASELINE_COMMIT}"
            )
        res = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"cases": {}}
        res["cases"].update(run(args.cases, args.rounds, args.inner, args.baseline, args.timeout))
        res.update(
            measured_at=_dt.datetime.now().isoformat(timespec="seconds"),
            cpus=os.cpu_count(),
            baseline_commit=_git("-C", str(args.baseline), "rev-parse", "--short", "HEAD")
            or BASELINE_COMMIT,
            after_commit=_git("rev-parse", "--short", "HEAD"),
            openblas_coretype=os.environ.get("OPENBLAS_CORETYPE"),
        )
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(res, indent=1) + "\n")
    res = json.loads(RESULTS.read_text())
    text = markdown(res)
    print(text)
    write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
