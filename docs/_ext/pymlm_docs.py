"""Sphinx glue for pymlm's site: the pages that are generated rather than written.

At ``config-inited`` (before autosummary writes its stubs and before Sphinx
lists the source files) this extension

* copies every ``vignettes/*.md`` of the repository into ``docs/vignettes/``,
  byte for byte, so that myst-nb reads and executes the vignettes where they
  live for users (a top-level folder) without a symlink; stale copies are
  removed;
* writes the API reference (``docs/api/``): one page per public module, each
  listing that module's ``__all__``; an object exported in several places
  (``pymlm.DataError`` is ``pymlm.errors.DataError``) is documented once, on the
  page of the module it is defined in;
* writes the Plots section (``docs/plots/``): one page per plot function of
  ``pymlm.plot.__all__`` with its ``*_frame`` twin, or a note while the module
  does not exist;
* points the Jupyter kernel ``python3`` at the interpreter running Sphinx, so
  the vignettes run against the same pymlm whatever kernels the user has
  registered.

All of these outputs are ignored by git. The page writers are plain functions
(``api_entries``, ``plot_pages``) so that tests can call them on fake modules.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

#: Public modules with a page in the API reference: (module, title, blurb), in page order.
API_MODULES = (
    ("pymlm", "Fitting", "Fit models, build designs, compare fits: what a user calls first."),
    ("pymlm.results", "Results", "Fitted models: estimates, tables, predictions and summaries."),
    ("pymlm.inference", "Inference", "Confidence intervals and the fit-level view they rest on."),
    ("pymlm.plot", "Plotting", "Figures of fits and intervals (each has its page under Plots)."),
    ("pymlm.datasets", "Datasets", "The bundled data sets."),
    ("pymlm.errors", "Errors and warnings", "What pymlm raises and warns, and the warning helper."),
)

PLOT_MODULE = "pymlm.plot"


def _write(path: Path, text: str | bytes) -> None:
    """Write ``path`` only when its content changes (keeps Sphinx's mtimes meaningful)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    if path.is_file() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _prune(folder: Path, keep: set[Path]) -> None:
    """Delete the files of ``folder`` (recursively) that are not in ``keep``."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file() and path not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


# ----------------------------------------------------------------------------- vignettes


def mirror_vignettes(source: Path, dest: Path) -> list[str]:
    """Copy ``source/*.md`` into ``dest`` (unchanged files untouched, stale ones removed).

    Returns the vignette names (file stems), sorted.
    """
    files = sorted(source.glob("*.md")) if source.is_dir() else []
    keep = set()
    for path in files:
        target = dest / path.name
        _write(target, path.read_bytes())
        keep.add(target)
    _prune(dest, keep)
    return [p.stem for p in files]


# ----------------------------------------------------------------------------- kernel


def pin_kernel(folder: Path) -> Path:
    """Register a ``python3`` kernel running this interpreter, ahead of any other.

    The kernelspec is written under ``folder/kernels/python3`` and ``folder`` is put
    first on ``JUPYTER_PATH``, which Jupyter searches before the user's and the
    environment's kernels. The inline matplotlib backend is forced because a
    caller's ``MPLBACKEND=Agg`` (set by test runners) would hide every figure.
    """
    spec_dir = folder / "kernels" / "python3"
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (pymlm docs)",
        "language": "python",
        "env": {"MPLBACKEND": "module://matplotlib_inline.backend_inline"},
        "metadata": {"debugger": False},
    }
    _write(spec_dir / "kernel.json", json.dumps(spec, indent=1) + "\n")
    paths = [str(folder)] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(dict.fromkeys(paths))
    return spec_dir


# ----------------------------------------------------------------------------- API pages


@dataclass(frozen=True)
class Entry:
    """One documented object: where it is listed and under which name it is documented."""

    name: str  # the exported name, e.g. "DataError"
    target: str  # the documented full name, e.g. "pymlm.errors.DataError"
    kind: str  # "function", "class", "exception", "data"
    home: str  # the API module page that documents it
    page: bool  # True: autosummary writes its page; False: documented elsewhere (plot pages)


def _kind(obj) -> str:
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if callable(obj):
        return "function"
    return "data"


def _defining_module(obj) -> str | None:
    if inspect.isclass(obj) or inspect.isroutine(obj):
        return getattr(obj, "__module__", None)
    return None


def _longest_prefix(name: str | None, modules) -> str | None:
    best = None
    for mod in modules:
        inside = name is not None and (name == mod or name.startswith(mod + "."))
        if inside and (best is None or len(mod) > len(best)):
            best = mod
    return best


def api_entries(modules: dict[str, ModuleType], plot_module: str = PLOT_MODULE) -> list[Entry]:
    """Every public object of ``modules`` (name -> module), each once, with its home page.

    An object's home is the listed module its ``__module__`` lies under (the
    longest such name), else the most specific module that exports it. It is
    documented under ``home.name`` when ``home`` exports it, else under the
    name of the most specific module that does. Submodules are not entries
    (they have pages of their own). Plot functions are documented on the
    Plots pages, so their entries have ``page=False``.
    """
    listed: dict[int, list[tuple[str, str, object]]] = {}
    for modname, mod in modules.items():
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if inspect.ismodule(obj):
                continue
            listed.setdefault(id(obj), []).append((modname, name, obj))
    entries = []
    for places in listed.values():
        obj = places[0][2]
        exporters = sorted({m for m, _, _ in places}, key=len)
        home = _longest_prefix(_defining_module(obj), modules) or exporters[-1]
        names = {m: n for m, n, _ in places}
        where = home if home in names else exporters[-1]
        name = names[where]
        kind = _kind(obj)
        page = not (home == plot_module and kind == "function")
        entries.append(Entry(name, f"{where}.{name}", kind, home, page))
    return sorted(entries, key=lambda e: (e.home, e.name.lower()))


_KIND_TITLES = (
    ("function", "Functions"),
    ("class", "Classes"),
    ("exception", "Exceptions and warnings"),
    ("data", "Constants"),
)


def _autosummary(entries: list[Entry], toctree: bool) -> str:
    """autosummary tables of ``entries``, one per documented module (autosummary
    resolves a name relative to the current module, so each table sets it)."""
    out = []
    for where in dict.fromkeys(e.target.rpartition(".")[0] for e in entries):
        lines = ["```{eval-rst}", f".. currentmodule:: {where}", "", ".. autosummary::"]
        if toctree:
            lines += ["   :toctree: generated", "   :template: entry.rst"]
        lines += ["   :nosignatures:", ""]
        lines += [f"   {e.name}" for e in entries if e.target.rpartition(".")[0] == where]
        out.append("\n".join(lines + ["```", ""]))
    return "\n".join(out)


def module_page(modname: str, title: str, blurb: str, entries: list[Entry]) -> str:
    """The Markdown source of one API page: the module's docstring, then its objects by kind."""
    out = [f"# {title}: `{modname}`", "", blurb, ""]
    out += ["```{eval-rst}", f".. automodule:: {modname}", "   :no-members:", "```", ""]
    for kind, heading in _KIND_TITLES:
        mine = [e for e in entries if e.kind == kind]
        if not mine:
            continue
        out += [f"## {heading}", ""]
        documented_here = [e for e in mine if e.page]
        elsewhere = [e for e in mine if not e.page]
        if documented_here:
            out.append(_autosummary(documented_here, toctree=True))
        if elsewhere:
            out.append(_autosummary(elsewhere, toctree=False))
    return "\n".join(out)


def write_api_pages(folder: Path, modules: dict[str, ModuleType]) -> list[Path]:
    """Write ``folder/index.md`` and one page per module; returns the pages written."""
    entries = api_entries(modules)
    titles = {m: (t, b) for m, t, b in API_MODULES}
    pages = []
    for modname in modules:
        title, blurb = titles.get(modname, (modname, ""))
        mine = [e for e in entries if e.home == modname]
        path = folder / f"{modname}.md"
        _write(path, module_page(modname, title, blurb, mine))
        pages.append(path)
    index = [
        "# API reference",
        "",
        "Names exported at the top level (``ml.DataError``, ``ml.LmerResult``) are",
        "documented once, on the page of the module that defines them.",
        "",
        "```{toctree}",
        ":maxdepth: 1",
        "",
        *[p.stem for p in pages],
        "```",
        "",
    ]
    _write(folder / "index.md", "\n".join(index))
    # autosummary's stubs are regenerated at every build: a name removed from
    # __all__ must not leave an orphan page behind.
    shutil.rmtree(folder / "generated", ignore_errors=True)
    _prune(folder, set(pages) | {folder / "index.md"})
    return pages


# ----------------------------------------------------------------------------- plot pages


def plot_pages(module: ModuleType | None, modname: str = PLOT_MODULE) -> dict[str, str]:
    """The Plots section as {file name: Markdown source}.

    One page per plot function of ``module.__all__`` (a callable whose name does
    not end in ``_frame``), documenting it and, when exported, its tidy-data twin
    ``<name>_frame``. A ``*_frame`` function without a plot gets a page of its
    own. Without the module the section says so.
    """
    intro = [
        "# Plots",
        "",
        "Each plot function takes ``ax=None`` and returns the matplotlib ``Axes`` (or a",
        "``Figure`` for several panels); its ``*_frame`` twin returns the tidy DataFrame",
        "the plot draws. Fitted models expose them as ``m.plot.<name>()``.",
        "",
    ]
    if module is None:
        text = intro + [f"``{modname}`` is not part of this version of pymlm yet.", ""]
        return {"index.md": "\n".join(text)}
    names = list(getattr(module, "__all__", ()))
    functions = [n for n in names
                 if callable(getattr(module, n)) and not inspect.isclass(getattr(module, n))]
    plots = [n for n in functions if not n.endswith("_frame")]
    orphans = [n for n in functions if n.endswith("_frame") and n[: -len("_frame")] not in plots]
    pages = {}
    for name in sorted(plots + orphans, key=str.lower):
        twin = f"{name}_frame"
        directives = [f".. autofunction:: {name}"]
        if twin in functions and name in plots:
            directives += ["", f".. autofunction:: {twin}"]
        body = [
            f"# {name}",
            "",
            "```{eval-rst}",
            f".. currentmodule:: {modname}",
            "",
            *directives,
            "```",
            "",
        ]
        pages[f"{name}.md"] = "\n".join(body)
    index = intro + (
        ["```{eval-rst}", f".. currentmodule:: {modname}", "", ".. autosummary::",
         "   :nosignatures:", "", *[f"   {n}" for n in sorted(functions, key=str.lower)], "```", "",
         "```{toctree}", ":hidden:", "", *[p[:-3] for p in pages], "```", ""]
        if pages else [f"``{modname}`` exports no plot function yet.", ""]
    )
    pages["index.md"] = "\n".join(index)
    return pages


def write_plot_pages(folder: Path) -> list[Path]:
    """Write the Plots section from ``pymlm.plot`` (importing it fails loudly if it is broken)."""
    module = None
    if importlib.util.find_spec(PLOT_MODULE) is not None:
        module = importlib.import_module(PLOT_MODULE)
    written = []
    for name, text in plot_pages(module).items():
        _write(folder / name, text)
        written.append(folder / name)
    _prune(folder, set(written))
    return written


def public_modules() -> dict[str, ModuleType]:
    """The modules of :data:`API_MODULES` that exist (one that fails to import raises)."""
    found = {}
    for modname, _, _ in API_MODULES:
        if importlib.util.find_spec(modname) is None:
            continue
        found[modname] = importlib.import_module(modname)
    return found


# ----------------------------------------------------------------------------- Sphinx


def module_sections_as_rubrics(app, what, name, obj, options, lines) -> None:
    """Turn the numpydoc headings of a *module* docstring into rubrics.

    numpydoc rewrites the docstrings of functions and classes (``Examples`` and
    ``--------`` become a rubric) but leaves modules alone, so their headings
    would become document sections, with duplicate labels across pages.
    """
    if what != "module":
        return
    for i in range(len(lines) - 1):
        title, rule = lines[i].strip(), lines[i + 1].strip()
        if title and rule and set(rule) == {"-"} and len(rule) >= len(title):
            lines[i], lines[i + 1] = f".. rubric:: {title}", ""


def _generate(app, config) -> None:
    if config.nb_execution_mode == "off":
        # a quick build without execution (-D nb_execution_mode=off) has no glued values
        config.suppress_warnings = [*config.suppress_warnings, "mystnb.glue"]
    srcdir = Path(app.srcdir)
    root = srcdir.parent
    pin_kernel(Path(app.outdir).parent / ".jupyter")
    mirror_vignettes(root / "vignettes", srcdir / "vignettes")
    write_api_pages(srcdir / "api", public_modules())
    write_plot_pages(srcdir / "plots")


def setup(app):
    # priority < 500: before any other config-inited handler, and config-inited
    # itself precedes Sphinx's search for source files and autosummary's stubs.
    app.connect("config-inited", _generate, priority=100)
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("autodoc-process-docstring", module_sections_as_rubrics)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
