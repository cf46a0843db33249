"""The built site, shared by the vignette tests and the browser check (fixture ``site``).

The site is built once per test session with ``docs/build.py`` (the command
``make docs`` runs): Sphinx reads every page afresh and myst-nb executes every
notebook page (the vignettes, getting-started) in a Jupyter kernel through
nbclient, failing on the first cell error. The vignette tests then read the
executed notebooks that myst-nb saved, and the browser check serves the HTML,
so each vignette runs once per session.

``PYMLM_DOCS_SITE=docs/_build/html`` reuses a site built before (``make
docs-check`` sets it after ``make docs``) instead of building again.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
BUILD = DOCS / "_build"
VIGNETTES = sorted((ROOT / "vignettes").glob("*.md"))
SITE_ENV = "PYMLM_DOCS_SITE"


@dataclass(frozen=True)
class Site:
    html: Path  # the HTML output folder
    executed: Path  # myst-nb's executed notebooks, one <docname>.ipynb per notebook page
    log: str  # the build's output ("" for a reused build)
    seconds: float  # wall time of the build (0 for a reused build)


ANSI = re.compile(r"\x1b\[[0-9;]*m")
CELL_ERROR = "An error occurred while executing the following cell"


def failure_excerpt(log: str, lines: int = 60) -> str:
    """The part of a failed build's output that says what failed: a notebook cell's
    source and traceback (nbclient's message) when a cell failed, and the last lines."""
    log = ANSI.sub("", log)
    tail = "\n".join(log.splitlines()[-lines:])
    at = log.find(CELL_ERROR)
    if at < 0:
        return tail
    cell = "\n".join(log[at:].splitlines()[:lines])
    return f"{cell}\n[...]\n{tail}"


def build_site() -> Site:
    """Build the site with docs/build.py, or reuse the one named by ``PYMLM_DOCS_SITE``.

    Raises
    ------
    RuntimeError
        The build failed (its message ends with the end of the build's output), or
        ``PYMLM_DOCS_SITE`` names a folder without a site.
    """
    reuse = os.environ.get(SITE_ENV)
    if reuse:
        html = Path(reuse).resolve()
        if not (html / "index.html").is_file():
            raise RuntimeError(f"{SITE_ENV}={reuse} holds no site (no index.html); run `make docs`")
        return Site(html, html.parent / "jupyter_execute", "", 0.0)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(DOCS / "build.py")],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=1800,
    )
    seconds = time.perf_counter() - t0
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(
            f"the site build (python docs/build.py) failed with exit code {proc.returncode} "
            f"after {seconds:.0f} s:\n{failure_excerpt(log)}"
        )
    return Site(BUILD / "html", BUILD / "jupyter_execute", log, seconds)
