"""The generated pages of the site (docs/_ext/pymlm_docs.py), on fake modules and on pymlm."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import types
import zlib

import pytest
from _docsite import DOCS

pytestmark = pytest.mark.docs

_spec = importlib.util.spec_from_file_location("pymlm_docs", DOCS / "_ext" / "pymlm_docs.py")
pd_ext = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("pymlm_docs", pd_ext)
_spec.loader.exec_module(pd_ext)


def _function(name, module):
    def f(ax=None):
        """Draw something."""

    f.__name__ = f.__qualname__ = name
    f.__module__ = module
    return f


def _class(name, module, base=object):
    return type(name, (base,), {"__module__": module, "__doc__": f"The {name}."})


def _module(name, **members):
    mod = types.ModuleType(name)
    for key, value in members.items():
        setattr(mod, key, value)
    mod.__all__ = list(members)
    return mod


@pytest.fixture
def fake():
    """A package laid out as pymlm: re-exports at the top, a plot module with frame twins."""
    fit = _function("fit", "fake._fit")
    err = _class("BadInput", "fake.errors", ValueError)
    res = _class("Result", "fake.results.one")  # exported by the top level only
    summary = _class("Summary", "fake.results.one")
    ranef = _function("ranef", "fake.plot._ranef")
    ranef_frame = _function("ranef_frame", "fake.plot._ranef")
    qq_frame = _function("qq_frame", "fake.plot._qq")
    methods = {"wald": "wald"}
    return {
        "fake": _module("fake", fit=fit, BadInput=err, Result=res),
        "fake.results": _module("fake.results", Summary=summary),
        "fake.inference": _module("fake.inference", METHODS=methods),
        "fake.plot": _module("fake.plot", ranef=ranef, ranef_frame=ranef_frame, qq_frame=qq_frame,
                             PALETTE=("#000000",)),
        "fake.errors": _module("fake.errors", BadInput=err),
    }


def test_every_object_is_documented_once_on_its_module_page(fake):
    entries = pd_ext.api_entries(fake, plot_module="fake.plot")
    got = {e.target: (e.home, e.kind, e.page) for e in entries}
    assert got == {
        "fake.fit": ("fake", "function", True),
        "fake.errors.BadInput": ("fake.errors", "exception", True),  # not also as fake.BadInput
        "fake.Result": ("fake.results", "class", True),  # defined in results, exported at the top
        "fake.results.Summary": ("fake.results", "class", True),
        "fake.inference.METHODS": ("fake.inference", "data", True),
        "fake.plot.ranef": ("fake.plot", "function", False),  # documented on the Plots pages
        "fake.plot.ranef_frame": ("fake.plot", "function", False),
        "fake.plot.qq_frame": ("fake.plot", "function", False),
        "fake.plot.PALETTE": ("fake.plot", "data", True),
    }


def test_module_page_sets_the_module_of_each_table(fake):
    entries = [e for e in pd_ext.api_entries(fake, "fake.plot") if e.home == "fake.results"]
    page = pd_ext.module_page("fake.results", "Results", "Fits.", entries)
    assert ".. currentmodule:: fake\n\n.. autosummary::\n   :toctree: generated" in page
    assert "   Result\n" in page and "   Summary\n" in page
    assert page.index(".. currentmodule:: fake\n") < page.index(".. currentmodule:: fake.results\n")


def test_plot_pages_one_per_plot_with_its_frame_twin(fake):
    pages = pd_ext.plot_pages(fake["fake.plot"], "fake.plot")
    assert set(pages) == {"index.md", "ranef.md", "qq_frame.md"}
    assert ".. autofunction:: ranef\n\n.. autofunction:: ranef_frame" in pages["ranef.md"]
    assert pages["ranef.md"].startswith("# ranef\n")
    assert ".. autofunction:: qq_frame" in pages["qq_frame.md"]
    index = pages["index.md"]
    assert ":hidden:\n\nqq_frame\nranef\n```" in index
    assert "   qq_frame\n   ranef\n   ranef_frame\n" in index


def test_plot_section_without_the_module():
    pages = pd_ext.plot_pages(None, "fake.plot")
    assert list(pages) == ["index.md"]
    assert "``fake.plot`` is not part of this version of pymlm yet." in pages["index.md"]
    assert "autosummary" not in pages["index.md"]


def test_mirror_copies_new_keeps_unchanged_and_removes_stale(tmp_path):
    src, dest = tmp_path / "vignettes", tmp_path / "docs" / "vignettes"
    src.mkdir()
    (src / "a.md").write_text("# A\n")
    (src / "notes.txt").write_text("not a vignette")
    assert pd_ext.mirror_vignettes(src, dest) == ["a"]
    os.utime(dest / "a.md", ns=(1, 1))
    (dest / "gone.md").write_text("# stale\n")
    (src / "b.md").write_text("# B\n")
    assert pd_ext.mirror_vignettes(src, dest) == ["a", "b"]
    assert sorted(p.name for p in dest.iterdir()) == ["a.md", "b.md"]
    assert (dest / "a.md").stat().st_mtime_ns == 1  # unchanged bytes: not rewritten
    assert (dest / "b.md").read_text() == "# B\n"


def test_pinned_kernel_is_found_first(tmp_path, monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager

    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "elsewhere"))
    spec_dir = pd_ext.pin_kernel(tmp_path / "jupyter")
    assert os.environ["JUPYTER_PATH"].split(os.pathsep)[0] == str(tmp_path / "jupyter")
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert spec.resource_dir == str(spec_dir)
    assert spec.argv[:3] == [sys.executable, "-m", "ipykernel_launcher"]
    env = json.loads((spec_dir / "kernel.json").read_text())["env"]
    assert env["MPLBACKEND"].endswith("backend_inline")


def test_module_docstring_headings_become_rubrics():
    lines = ["Summary.", "", "Examples", "--------", ">>> 1", "1"]
    pd_ext.module_sections_as_rubrics(None, "module", "m", None, {}, lines)
    assert lines == ["Summary.", "", ".. rubric:: Examples", "", ">>> 1", "1"]
    other = ["Examples", "--------"]
    pd_ext.module_sections_as_rubrics(None, "function", "f", None, {}, other)
    assert other == ["Examples", "--------"]


def test_every_public_name_of_pymlm_is_in_the_built_site(site):
    # objects.inv: four header lines, then zlib-compressed "name domain:role priority uri ..."
    raw = (site.html / "objects.inv").read_bytes()
    body = zlib.decompress(raw.split(b"\n", 4)[4]).decode("utf-8")
    documented = {line.split(" ", 1)[0] for line in body.splitlines() if " py:" in line}
    targets = {e.target for e in pd_ext.api_entries(pd_ext.public_modules())}
    assert {"pymlm.lmer", "pymlm.errors.DataError", "pymlm.results.LmerResult"} <= targets
    assert {"pymlm.glmer", "pymlm.glmer_nb", "pymlm.results.GlmerResult"} <= targets
    assert targets - documented == set()
