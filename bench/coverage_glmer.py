#!/usr/bin/env python3
"""Coverage of pymlm's GLMM interval methods on data simulated from a known binomial GLMM.

Model (the truth)
-----------------
G = 40 groups, 5 rows each, 10 trials per row, one row-level covariate
x ~ N(0, 1):

    successes_ij ~ Binomial(10, p_ij),  logit(p_ij) = beta_0 + beta_x x_ij + b_i,  b_i ~ N(0, sd^2),

beta = (-0.5, 0.5), sd = 0.7, fitted by Laplace with
``cbind(s, 10 - s) ~ x + (1 | g)``: parameters ``.sig01`` (the sd),
``(Intercept)`` and ``x``.

Every data set is drawn from its own generator
(``SeedSequence(seed).spawn(reps)[i]``), fitted once, and each method gives
95% intervals: ``wald`` (fixed effects only, as lme4), ``profile``,
``boot`` (parametric bootstrap, ``--nsim`` replicates), ``blb`` (bag of
little bootstraps over the groups, ``--blb-subsets`` subsets of
b = G^0.7 groups, ``--blb-boots`` resamples each) and ``split`` (random
partition of the groups into ``--splits`` subsets). Reported per method and
parameter: coverage (share of intervals containing the truth) with its
binomial standard error, mean width, and mean seconds per ``confint`` call;
and the BLB width over the bootstrap width per parameter. Data sets run in
``--jobs`` processes (each method single-process inside).

Results: ``bench/results/coverage_glmer.json``, and the section
"## GLMM coverage of interval methods" of ``bench/README.md`` is rewritten.

Examples
--------
::

    python bench/coverage_glmer.py --reps 200 --jobs 2
    python bench/coverage_glmer.py --reps 4 --no-readme       # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import pymlm as ml  # noqa: E402

TRUTH = {".sig01": 0.7, "(Intercept)": -0.5, "x": 0.5}
G, M, TRIALS = 40, 5, 10
FORMULA = "cbind(s, f) ~ x + (1 | g)"
METHODS = ("wald", "profile", "boot", "blb", "split")
SECTION = "## GLMM coverage of interval methods"


def simulate(rng: np.random.Generator) -> pd.DataFrame:
    g = np.repeat(np.arange(G), M)
    x = rng.standard_normal(G * M)
    b = TRUTH[".sig01"] * rng.standard_normal(G)
    eta = TRUTH["(Intercept)"] + TRUTH["x"] * x + b[g]
    s = rng.binomial(TRIALS, 1.0 / (1.0 + np.exp(-eta)))
    return pd.DataFrame({"s": s.astype(float), "f": (TRIALS - s).astype(float), "x": x,
                         "g": [f"g{k:02d}" for k in g]})


def one(args):
    i, ss, opts = args
    rng = np.random.default_rng(ss)
    df = simulate(rng)
    out = {"rep": i}
    t_start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = ml.glmer(FORMULA, df, family="binomial")
        out["estimates"] = dict(zip(m.problem.param_names, map(float, m.problem.estimates())))
        for method in METHODS:
            kw = {"progress": False}
            if method == "boot":
                kw.update(nsim=opts["nsim"], seed=i + 1)
            elif method == "blb":
                kw.update(seed=i + 1, n_subsets=opts["blb_subsets"], n_boots=opts["blb_boots"])
            elif method == "split":
                kw.update(seed=i + 1, n_splits=opts["splits"])
            t0 = time.perf_counter()
            try:
                ci = m.confint(method=method, **kw)
                out[method] = {k: [float(v) for v in ci.loc[k]] for k in ci.index}
            except Exception as exc:       # a failed method is recorded, never hidden
                out[method] = {"error": f"{type(exc).__name__}: {exc}"}
            out[method + "_seconds"] = time.perf_counter() - t0
    out["wall"] = time.perf_counter() - t_start
    return out


def summarize(rows: list[dict]) -> dict:
    summary = {}
    for method in METHODS:
        per = {}
        for name, truth in TRUTH.items():
            ends = np.array([r[method][name] for r in rows if name in r[method]], dtype=float)
            ok = np.isfinite(ends).all(axis=1)
            if not ok.any():
                continue
            e = ends[ok]
            cov = float(np.mean((e[:, 0] <= truth) & (truth <= e[:, 1])))
            per[name] = {"coverage": cov, "se": float(np.sqrt(cov * (1 - cov) / ok.sum())), "n": int(ok.sum()),
                         "mean_width": float(np.mean(e[:, 1] - e[:, 0])),
                         "below": float(np.mean(truth < e[:, 0])), "above": float(np.mean(truth > e[:, 1]))}
        summary[method] = {"parameters": per,
                           "seconds": float(np.mean([r[method + "_seconds"] for r in rows])),
                           "errors": int(sum("error" in r[method] for r in rows))}
    ratio = {}
    for name in TRUTH:
        b = summary["boot"]["parameters"].get(name)
        lb = summary["blb"]["parameters"].get(name)
        if b and lb:
            ratio[name] = lb["mean_width"] / b["mean_width"]
    summary["blb_over_boot_width"] = ratio
    return summary


def readme_section(res: dict) -> str:
    s = res["summary"]
    o = res["settings"]
    lines = [SECTION, "",
             f"`python bench/coverage_glmer.py --reps {o['reps']} --jobs {o['jobs']}` "
             f"({res['seconds'] / 60:.1f} min wall on 2 cores; 1-minute load average {res['load_average_start']:.1f} "
             f"at the start, {res['load_average_end']:.1f} at the end). The truth: "
             f"`{FORMULA}` with {G} groups of {M} rows of {TRIALS} trials, beta = (-0.5, 0.5), sd = 0.7; "
             f"{o['reps']} data sets, 95% intervals; boot {o['nsim']} replicates, BLB {o['blb_subsets']} subsets x "
             f"{o['blb_boots']} resamples of b = G^0.7 groups, split {o['splits']} subsets of groups.", "",
             "| method | parameter | coverage | (se) | below / above | mean width | s per call |",
             "|---|---|---|---|---|---|---|"]
    for method in METHODS:
        for name, p in s[method]["parameters"].items():
            lines.append(f"| {method} | `{name}` | {100 * p['coverage']:.1f}% | {100 * p['se']:.1f} | "
                         f"{100 * p['below']:.1f}% / {100 * p['above']:.1f}% | {p['mean_width']:.3f} | "
                         f"{s[method]['seconds']:.2f} |")
    lines += ["", "BLB width / bootstrap width: " + ", ".join(f"`{k}` {v:.3f}" for k, v in
                                                             s["blb_over_boot_width"].items()), ""]
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20261203)
    ap.add_argument("--nsim", type=int, default=200)
    ap.add_argument("--blb-subsets", type=int, default=5)
    ap.add_argument("--blb-boots", type=int, default=100)
    ap.add_argument("--splits", type=int, default=4)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "coverage_glmer.json")
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--summarize-only", action="store_true",
                    help="report the data sets of the JSON-lines file of an earlier (possibly interrupted) run")
    a = ap.parse_args(argv)
    opts = {"nsim": a.nsim, "blb_subsets": a.blb_subsets, "blb_boots": a.blb_boots, "splits": a.splits}
    seeds = np.random.SeedSequence(a.seed).spawn(a.reps)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    tasks = [(i, ss, opts) for i, ss in enumerate(seeds)]
    # every finished data set is appended to a JSON-lines file, so an interrupted run keeps its
    # data sets and --summarize-only reports them
    partial = a.out.with_suffix(".jsonl")
    if a.summarize_only:
        rows = [json.loads(line) for line in partial.read_text().splitlines() if line.strip()]
        rows = sorted(rows, key=lambda r: r["rep"])
        a.reps = len(rows)
    else:
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text("")
        rows = []
        with partial.open("a") as fh:
            if a.jobs > 1:
                with ProcessPoolExecutor(max_workers=a.jobs) as pool:
                    for r in pool.map(one, tasks, chunksize=1):
                        rows.append(r)
                        fh.write(json.dumps(r) + "\n")
                        fh.flush()
            else:
                for t in tasks:
                    rows.append(one(t))
                    fh.write(json.dumps(rows[-1]) + "\n")
                    fh.flush()
    res = {"settings": {"reps": a.reps, "jobs": a.jobs, "seed": a.seed, **opts, "truth": TRUTH,
                        "groups": G, "rows_per_group": M, "trials": TRIALS, "formula": FORMULA},
           "seconds": (sum(r["wall"] for r in rows) / max(a.jobs, 1)) if a.summarize_only
           else time.perf_counter() - t0, "load_average_start": load0,
           "load_average_end": os.getloadavg()[0], "summary": summarize(rows), "replicates": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1) + "\n")
    section = readme_section(res)
    print(section)
    if not a.no_readme:
        write_readme(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
