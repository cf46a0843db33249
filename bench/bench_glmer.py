#!/usr/bin/env python3
"""glmer benchmarks: pymlm's GLMM engine side by side with lme4's glmer, in the same run.

Cases
-----
cbpp      ``cbind(incidence, size - incidence) ~ period + (1 | herd)``, Laplace
sim_bin   the Bernoulli model ``y ~ x + (1 + x | g)`` with 100,000 rows and
          10,000 groups of ``sim_bin(G = 10000)`` in ``../shared/tools/glmm_sim.R``
          (written by Rscript into a temporary CSV), Laplace

Each side loads the data first and times the fit call alone. pymlm's time
includes its Hessian standard errors (lme4's includes its finite-difference
Hessian too). The -2 log-likelihoods of both are recorded: pymlm's must not
be above lme4's. Results go to ``bench/results/glmer.json``.

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
    "sim_bin": {"formula": "y ~ x + (1 + x | g)", "family": "binomial"},
}

R_FIT = r"""
suppressMessages(library(lme4))
args <- commandArgs(TRUE)
if (args[1] == "cbpp") d <- cbpp else { d <- read.csv(args[2]); d$g <- factor(d$g) }
f <- as.formula(args[3])
t0 <- proc.time()[["elapsed"]]
m <- glmer(f, data = d, family = binomial)
secs <- proc.time()[["elapsed"]] - t0
cat(sprintf('{"seconds": %.6f, "minus2loglik": %.10f, "fixef": [%s], "theta": [%s], "feval": %d}\n',
            secs, -2 * as.numeric(logLik(m)), paste(sprintf("%.10f", fixef(m)), collapse = ","),
            paste(sprintf("%.10f", getME(m, "theta")), collapse = ","), m@optinfo$feval))
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


def fit_pymlm(case: str, df) -> dict:
    from pymlm.design import build_design
    from pymlm.fit.glmm import fit_glmm, problem_from_design

    spec = CASES[case]
    t0 = time.perf_counter()
    design = build_design(spec["formula"], df, check="glmer", require_numeric_response=False)
    problem, merge = problem_from_design(design, spec["family"])
    fit = fit_glmm(problem, merge=merge)
    secs = time.perf_counter() - t0
    return {"seconds": secs, "minus2loglik": fit.minus2loglik, "fixef": fit.beta.tolist(),
            "theta": fit.theta.tolist(), "n_eval": int(fit.opt.nfev),
            "se": np.sqrt(np.diag(fit.vcov)).tolist()}


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
    ap.add_argument("--repeat", type=int, default=3, help="pymlm runs of the small case (the best is kept)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    results_path = HERE / "results" / "glmer.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            csv = None
            if case == "sim_bin":
                csv = Path(tmp) / "sim_bin.csv"
                simulate(csv)
            df = load(case, csv)
            runs = [fit_pymlm(case, df) for _ in range(args.repeat if case == "cbpp" else 1)]
            ours = min(runs, key=lambda r: r["seconds"])
            r = fit_lme4(case, csv)
            entry = {"pymlm": ours, "lme4": r, "loadavg": os.getloadavg()[0]}
            if r is not None:
                entry["time_ratio"] = ours["seconds"] / r["seconds"]
                entry["minus2loglik_diff"] = ours["minus2loglik"] - r["minus2loglik"]
            results[case] = entry
            lme4_s = f"{r['seconds']:.3f}s" if r else "n/a"
            print(f"{case:8s} pymlm {ours['seconds']:.3f}s ({ours['n_eval']} evaluations)  lme4 {lme4_s}  "
                  f"-2logLik pymlm {ours['minus2loglik']:.4f}" + (f" lme4 {r['minus2loglik']:.4f}" if r else ""))
    results_path.parent.mkdir(exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
