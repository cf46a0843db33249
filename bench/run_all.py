#!/usr/bin/env python3
"""Run every benchmark script in ``bench/`` (``make bench``).

Each ``bench/bench_*.py`` runs in its own process with the interpreter that
runs this script, one after the other (never in parallel: they time
themselves). Each writes its results under ``bench/results/`` and prints its
table.

Examples
--------
All benchmarks::

    python bench/run_all.py

Only the lmer benchmarks, passing options through to the script::

    python bench/run_all.py lmer -- --no-r --repeats 1
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def scripts() -> dict[str, Path]:
    """The benchmark scripts, keyed by name (``bench_lmer.py`` -> ``lmer``).

    Returns
    -------
    dict of str to pathlib.Path
        In alphabetical order.
    """
    return {p.stem[len("bench_"):]: p for p in sorted(HERE.glob("bench_*.py"))}


def main(argv=None) -> int:
    """Run the selected benchmark scripts; the exit status is 1 if any failed."""
    argv = sys.argv[1:] if argv is None else list(argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    found = scripts()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all of {', '.join(found) or 'none found'})")
    parser.add_argument("--list", action="store_true", help="list the benchmark scripts and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(f"{name:<12} {path.relative_to(HERE.parent)}" for name, path in found.items()))
        return 0
    unknown = [n for n in args.names if n not in found]
    if unknown:
        parser.error(f"no benchmark named {', '.join(map(repr, unknown))}; available: {', '.join(found)}")
    failed = []
    for name in args.names or list(found):
        print(f"=== {name}: {found[name].relative_to(HERE.parent)} {' '.join(extra)}".rstrip(), flush=True)
        t0 = time.perf_counter()
        status = subprocess.run([sys.executable, str(found[name]), *extra], check=False).returncode
        print(f"=== {name}: exit status {status} after {time.perf_counter() - t0:.0f} s", flush=True)
        if status != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
