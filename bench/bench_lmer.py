#!/usr/bin/env python3
"""lmer benchmarks: pymlm side by side with lme4.

Each case is fitted by pymlm and, where ``Rscript`` with lme4 is installed,
by lme4 (``bench/lmer_lme4.R``). Every fit runs in a fresh subprocess that
first loads the data into a data frame and then times the fit call alone
("from a data frame already in memory to a fitted model"). Memory is the
whole process's peak resident set size (``ru_maxrss`` in Python, ``VmHWM``
and ``/usr/bin/time -v`` for R), with the resident set size after loading
the data recorded beside it so that the fit's own footprint is visible.

Cases
-----
sleepstudy   ``Reaction ~ Days + (Days | Subject)``, REML
penicillin   ``diameter ~ 1 + (1 | plate) + (1 | sample)``, REML
insteval     ``y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)``, ML
sim10k, sim100k, sim1m
             simulated longitudinal data, N subjects x 20 observations,
             ``y ~ x1 + ... + x20 + (1 + x1 | id)``, REML (N = 1e4, 1e5, 1e6);
             lme4 is skipped at N = 1e6 (it needs more memory than 24 GB).

The pymlm side runs with the default OpenBLAS threading and with
``OPENBLAS_NUM_THREADS=1``; each configuration is repeated (default 3 runs,
fewer when a configuration exceeds ``--budget`` seconds) and the 1-minute
load average is recorded before and after every run, since timings on a
shared machine are noisy.

The fit processes import a copy of the pymlm source taken when the run
starts (``--no-snapshot`` to import the working tree), so that edits made
during a long run do not mix two versions of the code.

Results go to ``bench/results/lmer.json`` (cases not run keep their previous
entries) and a table is printed.

Examples
--------
Everything (takes about an hour on 2 cores, most of it lme4 at N = 1e5)::

    python bench/bench_lmer.py

The small cases, pymlm only, one run each::

    python bench/bench_lmer.py --cases sleepstudy penicillin --no-r --repeats 1

Print the stored results again, as Markdown, and rewrite the results block
of ``bench/README.md``::

    python bench/bench_lmer.py --report --markdown --readme
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
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
RESULTS = HERE / "results" / "lmer.json"
README = HERE / "README.md"
README_START = "<!-- lmer-results:start (written by bench_lmer.py --readme) -->"
README_END = "<!-- lmer-results:end -->"
R_SCRIPT = HERE / "lmer_lme4.R"
SIM_TOOL = HERE / "sim_longitudinal.py"
MARKER = "BENCH_JSON "

SIM_OBS = 20
SIM_COVARIATES = 20
SIM_SEED = 1
SIM_FORMULA = "y ~ " + " + ".join(f"x{k}" for k in range(1, SIM_COVARIATES + 1)) + " + (1 + x1 | id)"

THREADS_DEFAULT = "default"
THREADS_ONE = "1"


@dataclass(frozen=True)
class Case:
    """One benchmark case.

    Attributes
    ----------
    name : str
        Key used on the command line and in the results file.
    formula : str
        lme4 formula.
    reml : bool
        REML (True) or ML (False).
    dataset : str or None
        Bundled dataset (``pymlm.datasets.load``), or None for simulated data.
    n_subjects : int or None
        Subjects of the simulated longitudinal data (20 rows each).
    warm : int
        Extra fits after the timed one, in the same process, reported as the
        warm-call time (for small cases, where one-time costs dominate).
    lme4 : bool
        Whether lme4 is run on this case by default.
    """

    name: str
    formula: str
    reml: bool
    dataset: str | None = None
    n_subjects: int | None = None
    warm: int = 0
    lme4: bool = True

    @property
    def criterion_name(self) -> str:
        """``"REML criterion"`` or ``"deviance"``, the objective compared."""
        return "REML criterion" if self.reml else "deviance"


CASES = {
    c.name: c
    for c in (
        Case("sleepstudy", "Reaction ~ Days + (Days | Subject)", True, dataset="sleepstudy", warm=5),
        Case("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", True, dataset="Penicillin", warm=5),
        Case("insteval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)", False, dataset="InstEval"),
        Case("sim10k", SIM_FORMULA, True, n_subjects=10_000),
        Case("sim100k", SIM_FORMULA, True, n_subjects=100_000),
        Case("sim1m", SIM_FORMULA, True, n_subjects=1_000_000, lme4=False),
    )
}

LME4_SKIP_NOTE = (
    "lme4 skipped: N = 1e6 (20M rows) cannot be fitted by lme4 in 24 GB; its peak memory at "
    "N = 1e5 (2M rows) scales linearly with the rows (see bench/README.md). Run with --lme4-1m "
    "to try it under a memory cap and a time limit."
)

# Targets from the project's performance goals; checked and printed after a run.
TARGETS = {
    "insteval": "pymlm >= 10x faster than lme4",
    "sim100k": "pymlm fit < 6 s, whole-process peak < 2 GB",
    "sim1m": "pymlm fit < 90 s, whole-process peak < 12 GB",
    "sleepstudy": "pymlm no slower than lme4",
}


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------

def sim_paths(n_subjects: int) -> tuple[Path, Path]:
    """The CSV and parquet paths of a simulated data set in ``bench/.cache``.

    Parameters
    ----------
    n_subjects : int
        Number of subjects N.

    Returns
    -------
    csv, parquet : pathlib.Path
    """
    stem = CACHE / f"longitudinal_N{n_subjects}"
    return stem.with_suffix(".csv"), stem.with_suffix(".parquet")


def _run_generator(n_subjects: int, out: Path) -> None:
    cmd = [sys.executable, str(SIM_TOOL), str(n_subjects), str(SIM_OBS), str(SIM_COVARIATES),
           str(SIM_SEED), str(out)]
    print(f"  generating {out.name} ...", flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def _csv_to_parquet(csv: Path, parquet: Path) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    print(f"  converting {csv.name} -> {parquet.name} ...", flush=True)
    pq.write_table(pacsv.read_csv(csv), parquet)


def ensure_sim_data(n_subjects: int, need_csv: bool) -> tuple[Path, Path]:
    """Generate the simulated data set if it is not cached yet.

    The generator (``bench/sim_longitudinal.py``) writes doubles with 10
    significant digits to CSV, the format R reads. When the CSV exists the
    parquet file is made from it, so that pymlm and lme4 fit bit-identical
    numbers; without R (or at N = 1e6) the parquet file is written directly
    at full precision.

    Parameters
    ----------
    n_subjects : int
        Number of subjects N (20 rows each).
    need_csv : bool
        Whether the CSV is needed (lme4 will be run on it).

    Returns
    -------
    csv, parquet : pathlib.Path
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    csv, parquet = sim_paths(n_subjects)
    if need_csv and not csv.exists():
        _run_generator(n_subjects, csv)
        _csv_to_parquet(csv, parquet)
    elif not parquet.exists():
        if csv.exists():
            _csv_to_parquet(csv, parquet)
        else:
            _run_generator(n_subjects, parquet)
    return csv, parquet


def load_frame(case: Case):
    """The case's data as a pandas DataFrame (the Python side's input).

    Bundled data come from ``pymlm.datasets.load`` (factors in R's level
    order). Simulated data are read from parquet with pyarrow and converted
    column by column (``self_destruct``) so that loading does not hold two
    copies of a multi-gigabyte table; Arrow's allocator then returns its
    scratch memory to the system.
    """
    if case.dataset is not None:
        import pymlm

        return pymlm.datasets.load(case.dataset)
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(sim_paths(case.n_subjects)[1])
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    # Arrow's allocator keeps freed conversion buffers; hand them back so the
    # baseline is the data frame, not the reader's scratch space.
    pa.default_memory_pool().release_unused()
    return frame


def package_hash() -> str:
    """SHA-1 of the pymlm package source as it is now (paths and contents)."""
    digest = hashlib.sha1()
    for path in sorted((ROOT / "pymlm").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def snapshot_package() -> tuple[Path, str]:
    """Freeze the pymlm source for the duration of a run.

    The package may be edited while a long benchmark runs; the fit processes
    import a copy taken at the start (``bench/.cache/pymlm-<hash>``, with a
    link to ``data/``), so every run of one invocation measures the same code.

    Returns
    -------
    path : pathlib.Path
        Folder to put first on ``PYTHONPATH``.
    digest : str
        :func:`package_hash` of the copied source.
    """
    digest = package_hash()
    dest = CACHE / f"pymlm-{digest[:12]}"
    if not (dest / "pymlm").is_dir():
        tmp = CACHE / f"pymlm-{digest[:12]}.{os.getpid()}.tmp"
        shutil.copytree(ROOT / "pymlm", tmp / "pymlm", ignore=shutil.ignore_patterns("__pycache__"))
        (tmp / "data").symlink_to(ROOT / "data")
        try:
            tmp.rename(dest)
        except OSError:  # another run made the same copy meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
    return dest, digest


# ----------------------------------------------------------------------------
# One fit in this process (the --worker mode)
# ----------------------------------------------------------------------------

def _status_mb(field: str) -> float | None:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in MiB."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _blas_info() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{k: d.get(k) for k in ("internal_api", "version", "num_threads", "filepath")}
            for d in threadpool_info() if d.get("user_api") == "blas"]


def run_worker(case: Case) -> dict:
    """Load the case's data, then time one ``pymlm.lmer`` call (plus warm calls).

    Returns
    -------
    dict
        ``fit_seconds`` (the first fit in this process), ``warm_seconds``,
        ``import_seconds`` (``import pymlm``, not part of the fit time),
        ``rss_after_load_mb`` (VmRSS after loading and a full collection),
        ``peak_after_load_mb`` (peak RSS up to then), ``peak_rss_mb``
        (``ru_maxrss`` at the end: the whole process's peak), the estimates
        and the BLAS threading in effect.
    """
    import numpy as np

    t0 = time.perf_counter()
    import pymlm

    import_seconds = time.perf_counter() - t0
    frame = load_frame(case)
    gc.collect()
    rss_after_load = _status_mb("VmRSS")
    peak_after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    t0 = time.perf_counter()
    model = pymlm.lmer(case.formula, frame, REML=case.reml)
    seconds = time.perf_counter() - t0

    warm = []
    for _ in range(case.warm):
        t0 = time.perf_counter()
        pymlm.lmer(case.formula, frame, REML=case.reml)
        warm.append(time.perf_counter() - t0)

    criterion = model.reml_criterion if case.reml else model.deviance
    return {
        "side": "pymlm",
        "fit_seconds": seconds,
        "warm_seconds": warm,
        "import_seconds": import_seconds,
        "rss_after_load_mb": rss_after_load,
        "peak_after_load_mb": peak_after_load,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "nobs": int(model.nobs),
        "theta": np.asarray(model.theta, dtype=float).tolist(),
        "fixef": {str(k): float(v) for k, v in model.fixef.items()},
        "sigma": float(model.sigma),
        "criterion": float(criterion),
        "loglik": float(model.loglik),
        "converged": bool(model.converged),
        "blas": _blas_info(),
        "versions": {"pymlm": pymlm.__version__, "numpy": np.__version__},
        "pymlm_path": str(Path(pymlm.__file__).parent),
    }


# ----------------------------------------------------------------------------
# Running configurations in subprocesses
# ----------------------------------------------------------------------------

def _load1() -> float:
    return round(os.getloadavg()[0], 2)


def _parse_marked(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    raise ValueError("no result line in the output")


def _time_v_max_rss_mb(stderr: str) -> float | None:
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    return int(m.group(1)) / 1024 if m else None


def _memory_cap(limit_bytes: int | None):
    if not limit_bytes:
        return None

    def preexec():
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return preexec


def run_subprocess(cmd: list[str], env: dict, timeout: float, memory_cap: int | None = None) -> dict:
    """Run one fit in a fresh process and return its result record.

    The record gets the 1-minute load average before and after the run; on
    failure (error, time limit, memory cap) it holds ``error`` instead of
    estimates.
    """
    use_time = Path("/usr/bin/time").exists()
    full = (["/usr/bin/time", "-v"] if use_time else []) + cmd
    record: dict = {"load1_before": _load1()}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(full, env=env, capture_output=True, text=True, timeout=timeout, check=False,
                              preexec_fn=_memory_cap(memory_cap))
    except subprocess.TimeoutExpired:
        record.update(error=f"time limit of {timeout:.0f} s reached", process_seconds=timeout)
        record["load1_after"] = _load1()
        return record
    record["process_seconds"] = round(time.perf_counter() - t0, 3)
    record["load1_after"] = _load1()
    if use_time:
        record["time_v_max_rss_mb"] = _time_v_max_rss_mb(proc.stderr)
    try:
        record.update(_parse_marked(proc.stdout))
    except ValueError:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        record.update(error=f"exit status {proc.returncode}: {tail}")
    return record


def _python_env(threads: str, snapshot: Path | None) -> dict:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(var, None)
    if threads != THREADS_DEFAULT:
        env["OPENBLAS_NUM_THREADS"] = threads
    if snapshot is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(snapshot)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def pymlm_command(case: Case) -> list[str]:
    """The command that fits ``case`` with pymlm in a fresh process."""
    return [sys.executable, str(Path(__file__).resolve()), "--worker", case.name]


def lme4_command(case: Case, rscript: str) -> list[str]:
    """The command that fits ``case`` with lme4 in a fresh process."""
    if case.dataset is not None:
        csv = ROOT / "data" / f"{case.dataset}.csv"
        levels, key = str(ROOT / "data" / "factor_levels.json"), case.dataset
    else:
        csv, levels, key = sim_paths(case.n_subjects)[0], "", ""
    return [rscript, str(R_SCRIPT), case.formula, "TRUE" if case.reml else "FALSE", str(csv), levels, key,
            str(case.warm)]


def repeat(label: str, cmd: list[str], env: dict, repeats: int, budget: float, timeout: float,
           memory_cap: int | None = None) -> list[dict]:
    """Run a configuration up to ``repeats`` times, stopping early once the
    runs so far took more than ``budget`` seconds or one failed."""
    runs, spent = [], 0.0
    for i in range(repeats):
        rec = run_subprocess(cmd, env, timeout, memory_cap)
        runs.append(rec)
        spent += rec.get("process_seconds", 0.0)
        if "error" in rec:
            print(f"    {label} run {i + 1}: FAILED ({rec['error'].splitlines()[0]})", flush=True)
            break
        print(f"    {label} run {i + 1}: fit {rec['fit_seconds']:.3f} s, peak {rec['peak_rss_mb']:.0f} MiB, "
              f"load {rec['load1_before']:.2f}->{rec['load1_after']:.2f}", flush=True)
        if spent > budget and i + 1 < repeats:
            print(f"    {label}: {spent:.0f} s spent, over the {budget:.0f} s budget; stopping at {i + 1} run(s)",
                  flush=True)
            break
    return runs


# ----------------------------------------------------------------------------
# Summaries, agreement, targets
# ----------------------------------------------------------------------------

def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(runs: list[dict]) -> dict | None:
    """Median fit time and memory of the successful runs of one configuration."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return None
    warm = [w for r in ok for w in r.get("warm_seconds", [])]
    return {
        "runs": len(ok),
        "fit_seconds": _median(r["fit_seconds"] for r in ok),
        "fit_seconds_min": min(r["fit_seconds"] for r in ok),
        "fit_seconds_max": max(r["fit_seconds"] for r in ok),
        "warm_seconds": _median(warm),
        "peak_rss_mb": _median(r["peak_rss_mb"] for r in ok),
        "rss_after_load_mb": _median(r["rss_after_load_mb"] for r in ok),
        "peak_after_load_mb": _median(r["peak_after_load_mb"] for r in ok),
        "load1": [r["load1_before"] for r in ok],
    }


def agreement(py: dict, r: dict) -> dict:
    """pymlm minus lme4: criterion, max |theta|, max |beta| and sigma differences."""
    import numpy as np

    th_py, th_r = np.asarray(py["theta"]), np.asarray(r["theta"])
    common = [k for k in py["fixef"] if k in r["fixef"]]
    return {
        "criterion_diff": py["criterion"] - r["criterion"],
        "theta_max_abs_diff": float(np.max(np.abs(th_py - th_r))) if th_py.shape == th_r.shape else None,
        "fixef_max_abs_diff": max(abs(py["fixef"][k] - r["fixef"][k]) for k in common) if common else None,
        "sigma_diff": py["sigma"] - r["sigma"],
    }


def _first_ok(runs):
    return next((r for r in runs if "error" not in r), None)


def check_targets(name: str, entry: dict) -> list[tuple[str, str, str, str, str]]:
    """Whether the case's target is met, for each pymlm configuration.

    Returns
    -------
    list of (case, configuration, target, "met" or "MISSED", detail)
    """
    if name not in TARGETS:
        return []
    lines = []
    summ = entry.get("summary", {})
    lme4 = summ.get("lme4")
    for config, s in summ.items():
        if not config.startswith("pymlm") or s is None:
            continue
        if name == "insteval":
            if lme4 is None:
                continue
            ratio = lme4["fit_seconds"] / s["fit_seconds"]
            ok = ratio >= 10
            detail = f"lme4/pymlm = {ratio:.1f}x"
        elif name == "sleepstudy":
            if lme4 is None:
                continue
            cold = s["fit_seconds"] <= lme4["fit_seconds"]
            warm = s["warm_seconds"] is not None and lme4["warm_seconds"] is not None \
                and s["warm_seconds"] <= lme4["warm_seconds"]
            ok = cold and warm
            detail = (f"first call {s['fit_seconds'] * 1e3:.0f} ms vs {lme4['fit_seconds'] * 1e3:.0f} ms, "
                      f"warm {s['warm_seconds'] * 1e3:.0f} ms vs {lme4['warm_seconds'] * 1e3:.0f} ms")
        else:
            # Decimal gigabytes (the stricter reading of "GB"); peaks are stored in MiB.
            limit_s, limit_gb = (6.0, 2.0) if name == "sim100k" else (90.0, 12.0)
            peak_gb = s["peak_rss_mb"] * 2 ** 20 / 1e9
            ok = s["fit_seconds"] < limit_s and peak_gb < limit_gb
            detail = f"fit {s['fit_seconds']:.1f} s, peak {peak_gb:.2f} GB"
        lines.append((name, config, TARGETS[name], "met" if ok else "MISSED", detail))
    return lines


# ----------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------

def _fmt_s(x):
    if x is None:
        return "-"
    return f"{x * 1e3:.0f} ms" if x < 1 else f"{x:.2f} s" if x < 100 else f"{x:.0f} s"


def _fmt_mb(x):
    return "-" if x is None else f"{x:.0f}"


def _fmt_load(loads):
    if not loads:
        return "-"
    return f"{min(loads):.2f}" if min(loads) == max(loads) else f"{min(loads):.2f}-{max(loads):.2f}"


def table_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """Rows of the timing table: one per case and configuration."""
    head = ["case", "side", "runs", "fit (median)", "min-max", "warm call", "peak RSS MiB",
            "RSS after load MiB", "lme4/pymlm time", "lme4/pymlm peak", "load avg (1 min)"]
    rows = []
    for name, entry in results.get("cases", {}).items():
        summ = entry.get("summary", {})
        lme4 = summ.get("lme4")
        for config, s in summ.items():
            if s is None:
                rows.append([name, config, "0", "failed", "", "", "", "", "", "", ""])
                continue
            t_ratio = m_ratio = ""
            if config.startswith("pymlm") and lme4 is not None:
                t_ratio = f"{lme4['fit_seconds'] / s['fit_seconds']:.1f}"
                m_ratio = f"{lme4['peak_rss_mb'] / s['peak_rss_mb']:.2f}"
            rows.append([name, config, str(s["runs"]), _fmt_s(s["fit_seconds"]),
                         f"{_fmt_s(s['fit_seconds_min'])}-{_fmt_s(s['fit_seconds_max'])}",
                         _fmt_s(s["warm_seconds"]), _fmt_mb(s["peak_rss_mb"]), _fmt_mb(s["rss_after_load_mb"]),
                         t_ratio, m_ratio, _fmt_load(s["load1"])])
        if entry.get("lme4_note"):
            rows.append([name, "lme4", "0", "skipped", "", "", "", "", "", "", ""])
    return head, rows


def agreement_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """Rows of the agreement table: pymlm (default threads) minus lme4."""
    head = ["case", "objective", "pymlm", "pymlm - lme4", "max |theta diff|", "max |beta diff|", "converged"]
    rows = []
    for name, entry in results.get("cases", {}).items():
        agr = entry.get("agreement")
        py = entry.get("pymlm_estimates")
        if py is None:
            continue
        conv = "pymlm " + ("yes" if py["converged"] else "NO")
        if agr is None:
            rows.append([name, entry["criterion_name"], f"{py['criterion']:.6f}", "-", "-", "-", conv])
            continue
        conv += ", lme4 " + ("yes" if entry["lme4_estimates"]["converged"] else "NO")
        rows.append([name, entry["criterion_name"], f"{py['criterion']:.6f}", f"{agr['criterion_diff']:+.2e}",
                     f"{agr['theta_max_abs_diff']:.1e}", f"{agr['fixef_max_abs_diff']:.1e}", conv])
    return head, rows


def render(head: list[str], rows: list[list[str]], markdown: bool) -> str:
    """A plain-text or Markdown table."""
    if markdown:
        def cells(row):
            return "| " + " | ".join(str(x).replace("|", "\\|") for x in row) + " |"

        return "\n".join([cells(head), "|" + "|".join("---" for _ in head) + "|"] + [cells(r) for r in rows])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows])


def report(results: dict, markdown: bool = False) -> str:
    """The timing table, the agreement table and the target checks."""
    parts = [render(*table_rows(results), markdown), "", render(*agreement_rows(results), markdown), ""]
    targets = [line for name, entry in results.get("cases", {}).items() for line in check_targets(name, entry)]
    if targets:
        if markdown:
            parts += ["Targets:", ""] + [f"- {c} ({cfg}), {t}: **{v}** ({d})" for c, cfg, t, v, d in targets]
        else:
            parts += ["Targets:"] + [f"  {c:<11} {cfg:<18} {t}: {v} ({d})" for c, cfg, t, v, d in targets]
    notes = [f"{name}: {entry['lme4_note']}" for name, entry in results.get("cases", {}).items()
             if entry.get("lme4_note")]
    if notes:
        parts += ["", "Notes:", ""] + [f"- {n}" for n in notes] if markdown else ["", "Notes:"] + [f"  {n}" for n in notes]
    return "\n".join(parts)


def _blas_versions(results: dict) -> str:
    versions = sorted({b["version"] for e in results.get("cases", {}).values() for runs in e["runs"].values()
                       for r in runs for b in r.get("blas", []) if b.get("version")})
    return ", ".join(versions) or "unknown"


def measured_on(results: dict) -> str:
    """One paragraph: when and on what the stored results were measured."""
    m = results.get("machine", {})
    cases = results.get("cases", {})
    dates = sorted(e["measured_at"] for e in cases.values() if e.get("measured_at"))
    loads = [x for e in cases.values() for s in e.get("summary", {}).values() if s for x in s["load1"]]
    lme4 = next((e["lme4_versions"] for e in cases.values() if e.get("lme4_versions")), None)
    shas = sorted({e.get("pymlm_source_sha1", "")[:12] for e in cases.values()} - {""})
    parts = [f"Measured {dates[0]} to {dates[-1]}" if dates else "Measured",
             (f" on {m.get('cpu')} ({m.get('cores')} cores, {m.get('memory_gib')} GiB), {m.get('platform')}; "
              f"Python {m.get('python')}, numpy {m.get('numpy')}, scipy {m.get('scipy')}, "
              f"pandas {m.get('pandas')}, OpenBLAS {_blas_versions(results)}")]
    if lme4:
        parts.append(f"; R {lme4.get('R')}, lme4 {lme4.get('lme4')}, BLAS {lme4.get('BLAS')}")
    parts.append(f"; pymlm source sha1 {', '.join(shas) or '?'} (after commit {m.get('pymlm_commit')}).")
    if loads:
        parts.append(f" 1-minute load average at the start of the runs: {min(loads):.2f} to {max(loads):.2f} "
                     f"(median {statistics.median(loads):.2f}) on {m.get('cores')} cores.")
    return "".join(parts)


def update_readme(results: dict, path: Path = README) -> None:
    """Rewrite the generated results block of the README's lmer section.

    Raises
    ------
    SystemExit
        The README has no block delimited by ``README_START`` / ``README_END``.
    """
    text = path.read_text() if path.exists() else ""
    if README_START not in text or README_END not in text:
        raise SystemExit(f"{path} has no {README_START!r} ... {README_END!r} block to rewrite")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    block = "\n".join([README_START, "", measured_on(results), "", report(results, markdown=True), "",
                       README_END])
    path.write_text(head + block + tail)


# ----------------------------------------------------------------------------
# Machine description
# ----------------------------------------------------------------------------

def _git(*args) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_info() -> dict:
    """CPU, memory, software versions and the pymlm checkout being measured."""
    cpu = None
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), None)
    except OSError:
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo") as fh:
            mem_gib = round(int(fh.readline().split()[1]) / 1024 ** 2, 1)
    except (OSError, ValueError, IndexError):
        pass
    import numpy
    import pandas
    import scipy

    dirty = _git("status", "--porcelain", "--", "pymlm")
    return {
        "pymlm_source_sha1": package_hash(),
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem_gib, "platform": platform.platform(),
        "python": platform.python_version(), "numpy": numpy.__version__, "scipy": scipy.__version__,
        "pandas": pandas.__version__, "pymlm_commit": _git("rev-parse", "--short", "HEAD"),
        "pymlm_tree_modified": bool(dirty) if dirty is not None else None,
    }


# ----------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------

def run_case(case: Case, args, rscript: str | None, snapshot: Path | None = None) -> dict:
    """All configurations of one case; returns its results entry."""
    print(f"{case.name}: {case.formula} ({'REML' if case.reml else 'ML'})", flush=True)
    run_r = rscript is not None and (case.lme4 or (case.name == "sim1m" and args.lme4_1m))
    if case.n_subjects is not None:
        ensure_sim_data(case.n_subjects, need_csv=run_r)
    entry = {"formula": case.formula, "REML": case.reml, "criterion_name": case.criterion_name,
             "measured_at": _dt.datetime.now().isoformat(timespec="seconds"), "runs": {}, "summary": {}}
    for threads in args.blas_threads:
        label = "pymlm" if threads == THREADS_DEFAULT else f"pymlm[OPENBLAS={threads}]"
        entry["runs"][label] = repeat(label, pymlm_command(case), _python_env(threads, snapshot), args.repeats,
                                      args.budget, args.timeout)
    if run_r:
        cap = int(args.r_memory_cap_gb * 1024 ** 3) if case.name == "sim1m" else None
        entry["runs"]["lme4"] = repeat("lme4", lme4_command(case, rscript), dict(os.environ), args.repeats,
                                       args.budget, args.timeout, memory_cap=cap)
    elif case.name == "sim1m" and rscript is not None:
        entry["lme4_note"] = LME4_SKIP_NOTE
    entry["summary"] = {label: summarize(runs) for label, runs in entry["runs"].items()}
    py = next((_first_ok(runs) for label, runs in entry["runs"].items() if label.startswith("pymlm")
               and _first_ok(runs)), None)
    r = _first_ok(entry["runs"].get("lme4", []))
    if py is not None:
        entry["pymlm_estimates"] = {k: py[k] for k in ("nobs", "theta", "fixef", "sigma", "criterion", "converged")}
    if r is not None:
        entry["lme4_estimates"] = {k: r[k] for k in ("nobs", "theta", "fixef", "sigma", "criterion", "converged",
                                                    "feval", "messages")}
        entry["lme4_versions"] = r.get("versions")
    if py is not None and r is not None:
        entry["agreement"] = agreement(py, r)
    return entry


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES), metavar="CASE",
                   help=f"cases to run (default: all of {', '.join(CASES)})")
    p.add_argument("--no-r", action="store_true", help="skip lme4 even when Rscript is installed")
    p.add_argument("--repeats", type=int, default=3, help="runs per configuration (default 3)")
    p.add_argument("--budget", type=float, default=900.0,
                   help="stop repeating a configuration once its runs took this many seconds (default 900)")
    p.add_argument("--timeout", type=float, default=3600.0, help="time limit of one run in seconds (default 3600)")
    p.add_argument("--blas-threads", nargs="+", default=[THREADS_DEFAULT, THREADS_ONE], metavar="T",
                   help="pymlm configurations: 'default' (OpenBLAS chooses) and/or a thread count set "
                        "through OPENBLAS_NUM_THREADS (default: default 1)")
    p.add_argument("--lme4-1m", action="store_true",
                   help="also try lme4 at N = 1e6, under --r-memory-cap-gb and --timeout")
    p.add_argument("--r-memory-cap-gb", type=float, default=20.0,
                   help="address-space limit for lme4 at N = 1e6 (default 20)")
    p.add_argument("--no-snapshot", action="store_true",
                   help="import pymlm from the working tree in every fit process instead of a copy taken "
                        "at the start of the run")
    p.add_argument("--output", type=Path, default=RESULTS, help=f"results file (default {RESULTS.relative_to(ROOT)})")
    p.add_argument("--report", action="store_true", help="print the stored results and exit")
    p.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    p.add_argument("--readme", action="store_true",
                   help="also rewrite the results block of the lmer section of bench/README.md")
    p.add_argument("--worker", choices=list(CASES), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Run the selected cases, update the results file and print the tables."""
    args = parse_args(argv)
    if args.worker:
        print(MARKER + json.dumps(run_worker(CASES[args.worker])), flush=True)
        return 0
    results = json.loads(args.output.read_text()) if args.output.exists() else {}
    if args.report:
        print(report(results, args.markdown))
        if args.readme:
            update_readme(results)
        return 0
    rscript = None if args.no_r else shutil.which("Rscript")
    if rscript is None and not args.no_r:
        print("Rscript not found: running the pymlm side only", flush=True)
    results.setdefault("cases", {})
    results["machine"] = machine_info()
    snapshot = None
    if not args.no_snapshot:
        snapshot, _ = snapshot_package()
        print(f"pymlm source frozen in {snapshot.relative_to(ROOT)}", flush=True)
    results["settings"] = {"repeats": args.repeats, "budget_s": args.budget, "blas_threads": args.blas_threads,
                           "memory": "peak RSS of the whole fit process: ru_maxrss (Python), VmHWM and "
                                     "/usr/bin/time -v (R); MiB",
                           "timing": "wall time of the fit call only, first call in a fresh process"}
    for name in args.cases:
        results["cases"][name] = run_case(CASES[name], args, rscript, snapshot)
        results["cases"][name]["pymlm_source_sha1"] = results["machine"]["pymlm_source_sha1"]
        results["cases"] = {k: results["cases"][k] for k in CASES if k in results["cases"]}
        args.output.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.output.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(results, indent=1) + "\n")
        tmp.replace(args.output)
    print()
    print(report(results, args.markdown))
    if args.readme:
        update_readme(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
