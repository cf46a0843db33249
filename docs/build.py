"""Build pymlm's site into docs/_build/html: ``python docs/build.py [sphinx-build options]``.

The one build command, used by ``make docs`` and by the test suite
(``tests/docs``): a fresh environment (``-E``: every page is read again, so
every notebook is executed again against the current code), warnings as
errors (``-W``), all of them reported (``--keep-going``), and a failing
cell's source and traceback printed (``-T``). The output folder is emptied first. Extra arguments
go to sphinx-build, e.g. ``-D nb_execution_mode=off`` for a quick look.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
OUTDIR = DOCS / "_build" / "html"
SPHINX_OPTIONS = ["-E", "-W", "--keep-going", "-T", "-b", "html"]


def main(argv: list[str] | None = None) -> int:
    from sphinx.cmd.build import build_main

    # Sphinx leaves the pages of removed documents in place: start from nothing, so that
    # the site (and its browser check) holds only what this build made
    shutil.rmtree(OUTDIR, ignore_errors=True)
    shutil.rmtree(OUTDIR.parent / "jupyter_execute", ignore_errors=True)
    extra = list(sys.argv[1:] if argv is None else argv)
    return build_main([*SPHINX_OPTIONS, *extra, str(DOCS), str(OUTDIR)])


if __name__ == "__main__":
    sys.exit(main())
