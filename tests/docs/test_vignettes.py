"""Every ``vignettes/*.md`` is a MyST notebook that executes without error and is published.

The sources are read with jupytext (the format users open in Jupyter); the
execution is the site build's (see ``conftest.py``): myst-nb runs each
notebook with nbclient in the ``python3`` kernel of this interpreter, raises
on the first cell error, and saves the executed notebook, which is read here.
"""

from __future__ import annotations

import html
import re

import pytest
from _docsite import VIGNETTES

pytestmark = pytest.mark.docs

HIDDEN = {"remove-cell", "remove-input"}
# tqdm's text bar ("12/40 [00:03<00:07, 4.1it/s]"): a vignette must pass progress=False.
PROGRESS_BAR = re.compile(r"\d+/\d+ \[\d\d:\d\d<|\d+(?:\.\d+)?(?:it|s)/(?:s|it)\]")


def _source(path):
    import jupytext  # the docs extra; imported here so that the rest of the suite runs without it

    return jupytext.read(path, fmt="md:myst")


def _tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def _executed(site, path):
    import nbformat

    executed = site.executed / "vignettes" / f"{path.stem}.ipynb"
    assert executed.is_file(), f"the site build saved no executed notebook for {path.name}"
    return nbformat.read(executed, as_version=4)


@pytest.mark.parametrize("path", VIGNETTES, ids=[p.stem for p in VIGNETTES])
def test_vignette_is_a_myst_notebook(path):
    import nbformat

    nb = _source(path)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3", "vignettes run in the python3 kernel"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cell"
    checks = [c for c in code if _tags(c) & HIDDEN and "assert" in c.source]
    assert checks, f"{path.name}: no hidden cell (tags: [remove-cell]) asserts numbers against R"


@pytest.mark.parametrize("path", VIGNETTES, ids=[p.stem for p in VIGNETTES])
def test_vignette_executed_without_error(site, path):
    source = [c for c in _source(path).cells if c.cell_type == "code"]
    run = [c for c in _executed(site, path).cells if c.cell_type == "code"]
    assert [c.source for c in run] == [c.source for c in source]
    assert all(c.execution_count is not None for c in run), "a code cell was not executed"
    for cell in run:
        for out in cell.outputs:
            assert out.output_type != "error", f"{out.ename}: {out.evalue} in\n{cell.source}"
            text = out.get("text", "") if out.output_type == "stream" else ""
            assert "Traceback (most recent call last)" not in text, text
            assert not PROGRESS_BAR.search(text), f"a progress bar in the output of\n{cell.source}"
    assert any(c.outputs for c in run if not _tags(c) & {"remove-cell", "remove-output"})


def _page_text(path) -> str:
    """The text of an HTML page, tags removed (code is split into highlighting spans)."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


def _longest_line(cell) -> str:
    return max(cell.source.splitlines(), key=len).strip()


@pytest.mark.parametrize("path", VIGNETTES, ids=[p.stem for p in VIGNETTES])
def test_hidden_cells_are_not_published(site, path):
    text = _page_text(site.html / "vignettes" / f"{path.stem}.html")
    code = [c for c in _source(path).cells if c.cell_type == "code"]
    for cell in code:
        line = _longest_line(cell)
        if "remove-cell" in _tags(cell) or "remove-input" in _tags(cell):
            assert line not in text, f"a hidden cell was published: {line}"
        else:
            assert line in text, f"a code cell is missing from the page: {line}"
