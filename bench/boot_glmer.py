#!/usr/bin/env python3
"""Parametric bootstrap of a 100,000-row Bernoulli GLMM: pymlm against lme4's bootMer, in the same run.

The model ``y ~ x + (1 + x | g)`` with 10,000 groups of 10 rows, simulated
with numpy from the parameters of ``sim_bin()`` in ``../shared/tools/glmm_sim.R``
(beta = (-0.5, 0.8), sds 1 and 0.5, correlation 0.3). pymlm fits it once,
then times ``confint(method="boot", nsim=200)``: each replicate simulates a
response and refits from the estimates with PIRLS started at the fit's
conditional modes. lme4's ``bootMer`` of the same data (written to a
temporary CSV) is timed on ``--lme4-reps`` replicates (default 5) and
extrapolated to 200, with the time of its fit. The load average is recorded
(the machine is shared). Results go to ``bench/results/boot_glmer.json``.

Examples
--------
::

    python bench/boot_glmer.py                  # 200 replicates, 2 processes, lme4 5 replicates
    python bench/boot_glmer.py --nsim 20 --lme4-reps 0
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
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import pymlm as ml  # noqa: E402

R_BOOT = r"""
suppressMessages(library(lme4))
args <- commandArgs(TRUE)
d <- read.csv(args[1]); d$g <- factor(d$g)
nsim <- as.integer(args[2])
t0 <- proc.time()[["elapsed"]]
m <- glmer(y ~ x + (1 + x | g), data = d, family = binomial)
t_fit <- proc.time()[["elapsed"]] - t0
t0 <- proc.time()[["elapsed"]]
b <- bootMer(m, function(f) c(getME(f, "theta"), fixef(f)), nsim = nsim, seed = 1L)
t_boot <- proc.time()[["elapsed"]] - t0
cat(sprintf('{"fit_seconds": %.3f, "boot_seconds": %.3f, "nsim": %d, "lme4": "%s"}\n', t_fit, t_boot, nsim,
            as.character(packageVersion("lme4"))))
"""


def simulate(groups: int = 10_000, m: int = 10, seed: int = 20261122) -> pd.DataFrame:
    """sim_bin's model drawn with numpy (same parameters, numpy's stream)."""
    rng = np.random.default_rng(seed)
    n = groups * m
    g = np.repeat(np.arange(groups), m)
    x = rng.standard_normal(n)
    S = np.array([[1.0, 0.15], [0.15, 0.25]])
    b = rng.standard_normal((groups, 2)) @ np.linalg.cholesky(S).T
    eta = -0.5 + 0.8 * x + b[g, 0] + b[g, 1] * x
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta)))
    return pd.DataFrame({"y": y.astype(float), "x": x, "g": (g + 1).astype(str)})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nsim", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--lme4-reps", type=int, default=5)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "boot_glmer.json")
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--readme-only", action="store_true", help="rewrite the README section from --out")
    a = ap.parse_args(argv)
    if a.readme_only:
        write_readme(readme_section(json.loads(a.out.read_text())))
        return 0
    df = simulate(a.groups)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    m = ml.glmer("y ~ x + (1 + x | g)", df, family="binomial")
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    ci = m.confint(method="boot", nsim=a.nsim, seed=1, n_jobs=a.jobs, progress=False)
    t_boot = time.perf_counter() - t0
    out = {
        "model": "y ~ x + (1 + x | g)", "rows": int(len(df)), "groups": a.groups,
        "pymlm": {"fit_seconds": t_fit, "boot_seconds": t_boot, "nsim": a.nsim, "n_jobs": a.jobs,
                  "seconds_per_replicate": t_boot / a.nsim, "failed": int(ci.attrs["failed"]),
                  "interval": {k: [float(v) for v in ci.loc[k]] for k in ci.index},
                  "estimates": dict(zip(m.problem.param_names, map(float, m.problem.estimates())))},
        "load_average_start": load0,
    }
    if a.lme4_reps > 0:
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "sim.csv"
            df.to_csv(csv, index=False)
            script = Path(tmp) / "boot.R"
            script.write_text(R_BOOT)
            res = subprocess.run(["Rscript", str(script), str(csv), str(a.lme4_reps)], capture_output=True,
                                 text=True, check=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        r["extrapolated_200_seconds"] = r["boot_seconds"] / r["nsim"] * 200
        out["lme4"] = r
    out["load_average_end"] = os.getloadavg()[0]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    if not a.no_readme:
        write_readme(readme_section(out))
    return 0


SECTION = "## GLMM parametric bootstrap at scale"


def readme_section(out: dict) -> str:
    p = out["pymlm"]
    lines = [SECTION, "",
             f"`python bench/boot_glmer.py --nsim {p['nsim']} --jobs {p['n_jobs']}"
             f"{'' if out.get('lme4') else ' --lme4-reps 0'}` ({out['rows']:,} rows, {out['groups']:,} groups, `{out['model']}`, "
             f"Bernoulli; load average {out['load_average_start']:.1f} at the start and "
             f"{out['load_average_end']:.1f} at the end: the machine was shared).", "",
             "| | fit (s) | bootstrap (s) | replicates | s per replicate | 200 replicates (min) |",
             "|---|---|---|---|---|---|",
             f"| pymlm ({p['n_jobs']} process{'es' if p['n_jobs'] > 1 else ''}) | {p['fit_seconds']:.1f} | {p['boot_seconds']:.1f} | {p['nsim']} | "
             f"{p['seconds_per_replicate']:.2f} | {p['seconds_per_replicate'] * 200 / 60:.1f} |"]
    r = out.get("lme4")
    if r:
        lines.append(f"| lme4 {r['lme4']} `bootMer` (1 process) | {r['fit_seconds']:.1f} | {r['boot_seconds']:.1f} | "
                     f"{r['nsim']} | {r['boot_seconds'] / r['nsim']:.2f} | "
                     f"{r['extrapolated_200_seconds'] / 60:.1f} (extrapolated) |")
    lines += ["", f"pymlm's {p['nsim']} refits: {p['failed']} failed the convergence test. Each replicate is "
              "simulated, then refitted from the estimates with PIRLS started at the fit's conditional modes; "
              "lme4's `bootMer` refits each replicate by its two-stage search.", ""]
    return "\n".join(lines) + "\n"


def write_readme(section: str) -> None:
    path = HERE / "README.md"
    text = path.read_text()
    if SECTION in text:
        start = text.index(SECTION)
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + ("" if nxt < 0 else text[nxt + 1:])
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
