"""The ``pymlm`` command: ``pymlm fit FORMULA --data NAME_OR_PATH [--engine ...]`` and ``pymlm datasets``."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from . import datasets
from .errors import DataError, PymlmError, PymlmWarning

__all__ = ["main"]


#: Files larger than this are streamed by ``pymlm fit`` (lmer and bam engines) rather than read whole.
STREAM_BYTES = 2 * 1024 ** 3


def _streams(spec: str, engine: str, stream: bool) -> bool:
    """Whether ``--data`` is passed to lmer or bam as a path, to be streamed: a folder of Parquet
    files, a file larger than :data:`STREAM_BYTES`, or any path with ``--stream``."""
    path = Path(spec)
    if engine not in ("lmer", "bam") or not path.exists():
        return False
    return stream or path.is_dir() or path.stat().st_size > STREAM_BYTES


def _read_data(spec: str):
    import pandas as pd

    path = Path(spec)
    suffix = path.suffix.lower()
    if path.is_dir():
        from .sources import as_source

        source = as_source(path)
        return source.read(source.columns)
    if suffix in (".csv", ".parquet", ".pq"):
        if not path.exists():
            raise DataError(f"no file {spec!r}; give an existing CSV or parquet path, or a bundled dataset name")
        if path.stat().st_size == 0:
            raise DataError(f"the file {spec!r} is empty; it needs a header line with the column "
                            "names and one line per observation")
        try:
            frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
        except pd.errors.EmptyDataError as exc:
            raise DataError(f"the file {spec!r} has no columns (only blank lines?); it needs a "
                            "header line with the column names and one line per observation") from exc
        except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
            kind = "CSV" if suffix == ".csv" else "parquet"
            raise DataError(f"cannot read {spec!r} as a {kind} file: {exc}") from exc
        if len(frame) == 0:
            header = ", ".join(map(str, frame.columns[:8]))
            raise DataError(f"the file {spec!r} has a header ({header}) but no rows of data")
        return frame
    return datasets.load(spec)


def _version() -> str:
    from . import __version__

    return __version__


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pymlm", description="Fit multilevel models with R's formula language.")
    parser.add_argument("--version", action="version", version=f"pymlm {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit a model and print its summary")
    fit.add_argument("formula", help='lme4 formula, e.g. "Reaction ~ Days + (Days | Subject)"')
    fit.add_argument("--data", required=True,
                     help="bundled dataset name, a CSV / parquet file or a folder of parquet files")
    fit.add_argument("--stream", action="store_true",
                     help="lmer, bam: stream the file in batches (folders and files over 2 GB always are)")
    fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML (lmer)")
    fit.add_argument("--engine", choices=["lmer", "glmer", "gam", "bam"], default="lmer",
                     help="lmer or glmer (lme4), gam or bam (mgcv; smooths s(), te() and lme4 bars)")
    fit.add_argument("--family", default=None,
                     help="response family: glmer binomial (default), poisson, Gamma, inverse.gaussian; "
                          "gam/bam gaussian (default), binomial, poisson, Gamma")
    fit.add_argument("--nagq", type=int, default=1, metavar="N",
                     help="glmer: 1 Laplace (default), 0 fast first stage, 2..25 adaptive Gauss-Hermite")
    fit.add_argument("--ci", metavar="METHOD", default=None,
                     help="lmer: add confidence intervals (wald, profile, boot, blb, split)")
    fit.add_argument("--design", action="store_true", help="print the parsed design instead of fitting")
    sub.add_parser("datasets", help="list the bundled datasets")
    federated = sub.add_parser("federated", help="fits across sites that cannot share rows")
    fed_sub = federated.add_subparsers(dest="federated_command", required=True)
    demo = fed_sub.add_parser("demo", help="split sleepstudy over sites, fit federated and pooled, compare")
    demo.add_argument("--sites", type=int, default=4, help="number of sites (2..6; default 4)")
    demo.add_argument("--transport", choices=["auto", "flower", "processes"], default="auto",
                      help="a Flower SuperLink and SuperNodes on 127.0.0.1 (auto: when flwr is installed) "
                           "or one process per site")
    args = parser.parse_args(argv)
    try:
        if args.command == "federated":
            from ._api import lmer
            from .federated._demo import demo as run_demo

            run_demo(lmer, args.sites, args.transport)
            return 0
        if args.command == "datasets":
            for name in datasets.names():
                print(name)
            return 0
        data = args.data if _streams(args.data, args.engine, args.stream) else _read_data(args.data)
        if args.design:
            from ._api import lformula

            print(lformula(args.formula, data))
            return 0
        with warnings.catch_warnings():
            # the summary prints every message, so the warnings are not repeated on stderr
            warnings.simplefilter("ignore", PymlmWarning)
            if args.engine == "lmer":
                from ._api import lmer

                model = lmer(args.formula, data, REML=not args.ml, data_name=Path(args.data).stem, progress=False)
                print(model.summary(ci=args.ci) if args.ci else model)
            elif args.engine == "glmer":
                from ._api import glmer

                print(glmer(args.formula, data, family=args.family or "binomial", nAGQ=args.nagq,
                            data_name=Path(args.data).stem))
            else:
                from ._api import bam, gam

                fitter = gam if args.engine == "gam" else bam
                print(fitter(args.formula, data, family=args.family or "gaussian"))
        return 0
    except PymlmError as exc:
        print(f"pymlm: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
