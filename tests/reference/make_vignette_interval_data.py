"""Write the simulated data that lme4 fits for two vignettes' reference values.

Run from the project root, before the two R scripts that read the files::

    python tests/reference/make_vignette_interval_data.py
    Rscript tests/reference/make_vignette_big_longitudinal_data_reference.R
    Rscript tests/reference/make_vignette_do_the_intervals_cover_reference.R

The data come from the benchmarks' own generators, which the vignettes
repeat with numpy (their hidden cells check that they draw the same numbers):

- ``vignette_big_longitudinal_data.csv``: the first 50 subjects, occasions
  t = 0..9, of ``bench/sim_longitudinal.py`` with N = 10,000 subjects x 20
  occasions, p = 20 covariates, seed 1 (the vignette "Big longitudinal
  data" fits all 200,000 rows); written as that generator writes CSV, with
  10 significant digits.
- ``vignette_do_the_intervals_cover.csv``: replicate 1 of
  ``bench/bench_coverage.py`` (the generator ``SeedSequence(20240601).spawn(n)[0]``),
  with 17 significant digits, so that R reads exactly the doubles of the
  simulation.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "reference"

LONG_N, LONG_OCC, LONG_P, LONG_SEED = 10_000, 20, 20, 1
LONG_SUBJECTS, LONG_KEEP_OCC = 50, 10
COVERAGE_SEED = 20240601


def _bench(name: str):
    """A module of bench/ (imported from its file: bench/ is no package)."""
    bench = str(ROOT / "bench")
    if bench not in sys.path:            # bench_coverage imports its sibling _readme
        sys.path.insert(0, bench)
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def longitudinal_subset():
    """The subset of the 200,000-row simulation that lme4 fits (a DataFrame)."""
    import pandas as pd

    cols, _ = _bench("sim_longitudinal").simulate(LONG_N, LONG_OCC, LONG_P, LONG_SEED)
    df = pd.DataFrame(cols)
    return df[(df["id"] <= LONG_SUBJECTS) & (df["t"] < LONG_KEEP_OCC)]


def coverage_replicate(i: int = 0):
    """Replicate ``i`` of the coverage study's simulation (a DataFrame)."""
    return _bench("bench_coverage").simulate(np.random.default_rng(np.random.SeedSequence(COVERAGE_SEED).spawn(i + 1)[i]))


def main() -> int:
    longitudinal_subset().to_csv(OUT / "vignette_big_longitudinal_data.csv", index=False, float_format="%.10g")
    rep = coverage_replicate(0)
    rep.assign(g=rep["g"].astype(int)).to_csv(OUT / "vignette_do_the_intervals_cover.csv", index=False,
                                              float_format="%.17g")
    return 0


if __name__ == "__main__":
    sys.exit(main())
