"""The ``pymlm`` command: ``pymlm fit FORMULA --data NAME_OR_PATH`` and ``pymlm datasets``."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from . import datasets
from .errors import PymlmError, PymlmWarning

__all__ = ["main"]


def _read_data(spec: str):
    import pandas as pd

    path = Path(spec)
    if path.suffix.lower() == ".csv" and path.exists():
        return pd.read_csv(path)
    if path.suffix.lower() in (".parquet", ".pq") and path.exists():
        return pd.read_parquet(path)
    return datasets.load(spec)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pymlm", description="Fit multilevel models with R's formula language.")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit a model and print its summary")
    fit.add_argument("formula", help='lme4 formula, e.g. "Reaction ~ Days + (Days | Subject)"')
    fit.add_argument("--data", required=True, help="bundled dataset name, or a CSV / parquet path")
    fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    fit.add_argument("--design", action="store_true", help="print the parsed design instead of fitting")
    sub.add_parser("datasets", help="list the bundled datasets")
    args = parser.parse_args(argv)
    try:
        if args.command == "datasets":
            for name in datasets.names():
                print(name)
            return 0
        data = _read_data(args.data)
        if args.design:
            from .design import lformula

            print(lformula(args.formula, data))
            return 0
        from ._lmer import lmer

        with warnings.catch_warnings():
            # the summary prints every message, so the warnings are not repeated on stderr
            warnings.simplefilter("ignore", PymlmWarning)
            model = lmer(args.formula, data, REML=not args.ml, data_name=Path(args.data).stem)
        print(model)
        return 0
    except PymlmError as exc:
        print(f"pymlm: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
