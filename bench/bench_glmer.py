#!/usr/bin/env python3
"""glmer benchmarks: pymlm's GLMM engine side by side with lme4's glmer, in the same run.

Cases
-----
cbpp      ``cbind(incidence, size - incidence) ~ period + (1 | herd)``, Laplace
sim_bin   the Bernoulli model ``y ~ x + (1 + x | g)`` with 100,000 rows and
          10,000 groups of ``sim_bin(G = 10000)`` in ``../shared/tools/glmm_sim.R``
          (written by Rscript into a temporary CSV), Laplace
sim_bin_1m  the same model with 1,000,000 rows and 100,000 groups
          (``sim_bin(G = 100000)``), pymlm alone (lme4 would take most of an hour)

cbpp is timed by ``timeit`` (best of ``--repeat`` calls of the public
``pymlm.glmer``, formula and design included, import excluded); the
simulated cases by one call of ``pymlm.glmer`` each.

Each fitter runs in its own process (pymlm, lme4 through Rscript, and
mixedlm 1.3.0 when it is installed: ``pip install mixedlm`` for the
benchmark only, it is no dependency of pymlm), fits cbpp once untimed
(lazy imports, first-call costs), loads the data and times the fit call
alone; the process's peak resident set size is
recorded. pymlm's time includes its Hessian standard errors (lme4's its
finite-difference Hessian). The -2 log-likelihoods are recorded: pymlm's
must not be above lme4's. The 1-minute load average is recorded with each
case (the machine is shared). Results go to ``bench/results/glmer.json``.

Examples
--------
::

    python bench/bench_glmer.py                 # both cases
    python bench/bench_glmer.py --cases cbpp
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# the simulation script of the shared reference set, beside the checkout (or one level up)
SIM_R = next((p / "shared" / "tools" / "glmm_sim.R" for p in (ROOT.parent, ROOT.parent.parent)
              if (p / "shared" / "tools" / "glmm_sim.R").exists()), ROOT.parent / "shared" / "tools" / "glmm_sim.R")

CASES = {
    "cbpp": {"formula": "cbind(incidence, size - incidence) ~ period + (1 | herd)", "family": "binomial"},
    "sim_bin": {"formula": "y ~ x + (1 + x | g)", "family": "binomial", "groups": 10_000},
    "sim_bin_1m": {"formula": "y ~ x + (1 + x | g)", "family": "binomial", "groups": 100_000, "pymlm_only": True},
}

R_FIT = r"""
suppressMessages(library(lme4))
args <- commandArgs(TRUE)
if (args[1] == "cbpp") d <- cbpp else { d <- read.csv(args[2]); d$g <- factor(d$g) }
f <- as.formula(args[3])
invisible(glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp, family = binomial))  # warm-up
t0 <- proc.time()[["elapsed"]]
m <- glmer(f, data = d, family = binomial)
secs <- proc.time()[["elapsed"]] - t0
status <- readLines("/proc/self/status")
hwm <- as.numeric(gsub("[^0-9]", "", grep("^VmHWM", status, value = TRUE))) / 1024
cat(sprintf('{"seconds": %.6f, "minus2loglik": %.10f, "fixef": [%s], "theta": [%s], "feval": %d, ',
            secs, -2 * as.numeric(logLik(m)), paste(sprintf("%.10f", fixef(m)), collapse = ","),
            paste(sprintf("%.10f", getME(m, "theta")), collapse = ","), m@optinfo$feval))
cat(sprintf('"peak_rss_mb": %.1f, "version": "%s"}\n', hwm, as.character(packageVersion("lme4"))))
"""


def simulate(path: Path, groups: int = 10_000) -> None:
    code = f'source("{SIM_R}"); d <- sim_bin(G = {groups}L); write.csv(d, "{path}", row.names = FALSE)'
    subprocess.run(["Rscript", "-e", code], check=True, capture_output=True)


def load(case: str, csv: Path | None):
    import pandas as pd

    import pymlm as ml

    if case == "cbpp":
        return ml.datasets.load("cbpp")
    df = pd.read_csv(csv)
    df["g"] = pd.Categorical(df["g"].astype(str))
    return df


def fit_pymlm(case: str, df, repeat: int = 1) -> dict:
    import timeit

    import pymlm as ml

    spec = CASES[case]
    box = {}

    def call():
        box["m"] = ml.glmer(spec["formula"], df, family=spec["family"])

    cpu0 = time.process_time()
    times = timeit.repeat(call, number=1, repeat=repeat)
    cpu = (time.process_time() - cpu0) / repeat
    fit = box["m"].fit
    return {"seconds": min(times), "seconds_median": float(np.median(times)), "repeat": repeat,
            "cpu_seconds_mean": cpu, "minus2loglik": fit.minus2loglik, "fixef": fit.beta.tolist(),
            "theta": fit.theta.tolist(), "n_eval": int(fit.opt.nfev),
            "se": np.sqrt(np.diag(fit.vcov)).tolist()}


def fit_mixedlm(case: str, df) -> dict:
    import mixedlm
    from mixedlm.families import Binomial

    spec = CASES[case]
    formula, weights = spec["formula"], None
    if case == "cbpp":      # mixedlm's formulas have no cbind(): the proportion with the trials as weights
        df = df.assign(prop=df["incidence"] / df["size"], herd=df["herd"].astype(str),
                       period=df["period"].astype(str))
        formula, weights = "prop ~ period + (1 | herd)", df["size"].to_numpy(dtype=float)
    else:
        df = df.assign(g=df["g"].astype(str))
    t0 = time.perf_counter()
    m = mixedlm.glmer(formula, df, family=Binomial(), weights=weights)
    secs = time.perf_counter() - t0
    fe = m.fixef()
    return {"seconds": secs, "minus2loglik": -2.0 * float(m.logLik().value), "fixef": [float(v) for v in fe.values()],
            "version": mixedlm.__version__}


def worker(side: str, case: str, csv: str, repeat: int = 1) -> None:
    """One fit in this process: the data loaded first, then the fit timed; JSON on stdout."""
    import resource

    fit = fit_pymlm if side == "pymlm" else fit_mixedlm
    fit("cbpp", load("cbpp", None))        # warm-up: lazy imports and first-call costs are not the fit's
    df = load(case, Path(csv) if csv else None)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = fit(case, df, repeat) if side == "pymlm" else fit(case, df)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out["rss_after_load_mb"] = rss0
    print(json.dumps(out))


def in_process(side: str, case: str, csv: Path | None, repeat: int = 1) -> dict | None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", side, case, str(csv or ""),
                              str(repeat)],
                             check=True, capture_output=True, text=True, env=env)
    except subprocess.CalledProcessError as exc:
        if side == "pymlm":
            raise RuntimeError(exc.stderr) from exc
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def fit_lme4(case: str, csv: Path | None) -> dict | None:
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(R_FIT)
        script = fh.name
    try:
        out = subprocess.run(["Rscript", script, case, str(csv or ""), CASES[case]["formula"]],
                             check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    finally:
        os.unlink(script)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    ap.add_argument("--repeat", type=int, default=3, help="runs of the small case per fitter (the best is kept)")
    ap.add_argument("--timeit", type=int, default=30, help="pymlm's timeit calls of the small case (the best is kept)")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(*args.worker[:3], int(args.worker[3]))
        return 0
    results_path = HERE / "results" / "glmer.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            csv = None
            if case != "cbpp":
                csv = Path(tmp) / f"{case}.csv"
                simulate(csv, CASES[case]["groups"])
            reps = args.repeat if case == "cbpp" else 1
            entry = {"loadavg_before": os.getloadavg()[0]}
            sides = ("pymlm",) if CASES[case].get("pymlm_only") else ("pymlm", "lme4", "mixedlm")
            entry.update({side: None for side in ("lme4", "mixedlm") if side not in sides})
            for side in sides:
                if side == "pymlm":
                    entry[side] = in_process(side, case, csv, args.timeit if case == "cbpp" else 1)
                    continue
                runs = [fit_lme4(case, csv) if side == "lme4" else in_process(side, case, csv) for _ in range(reps)]
                runs = [r for r in runs if r is not None]
                entry[side] = min(runs, key=lambda r: r["seconds"]) if runs else None
            entry["loadavg_after"] = os.getloadavg()[0]
            ours, r = entry["pymlm"], entry["lme4"]
            if r is not None:
                entry["time_ratio_vs_lme4"] = ours["seconds"] / r["seconds"]
                entry["minus2loglik_minus_lme4"] = ours["minus2loglik"] - r["minus2loglik"]
            if entry["mixedlm"] is not None:
                entry["time_ratio_vs_mixedlm"] = ours["seconds"] / entry["mixedlm"]["seconds"]
            results[case] = entry
            line = f"{case:8s} pymlm {ours['seconds']:.3f}s ({ours['n_eval']} evaluations, {ours['peak_rss_mb']:.0f} MB)"
            for side in ("lme4", "mixedlm"):
                if entry[side] is not None:
                    line += f"  {side} {entry[side]['seconds']:.3f}s"
            line += f"  -2logLik pymlm {ours['minus2loglik']:.4f}" + (f" lme4 {r['minus2loglik']:.4f}" if r else "")
            print(line)
    results_path.parent.mkdir(exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
