"""Sphinx configuration of pymlm's site: ``make docs`` builds it, ``make docs-check`` checks it.

The site works offline: MathJax is bundled (sphinx-mathjax-offline copies
MathJax 3 into ``_static``), the theme's fonts and icons are its own static
files, no analytics, no intersphinx (it would download other projects'
inventories), no ipywidgets JavaScript from a CDN. ``tests/docs`` checks this
in a browser.

Notebooks (the vignettes, ``getting-started.md``) are executed at every build
(``nb_execution_mode = "force"``); a cell error fails the build. Pass
``-D nb_execution_mode=off`` to sphinx-build for a quick look at the prose.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(ROOT))

project = "pymlm"
author = "pymlm developers"
copyright = "pymlm developers"
release = importlib.import_module("pymlm").__version__  # this checkout's pymlm (path above)
version = release

extensions = [
    "pymlm_docs",  # first: generates vignette copies, API and Plots pages at config-inited
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
    "matplotlib.sphinxext.plot_directive",
]

root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "README.md"]
suppress_warnings: list[str] = []

# -- autodoc / autosummary / numpydoc
autosummary_generate = True
autosummary_generate_overwrite = True
autodoc_typehints = "none"  # the numpydoc Parameters section gives the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False  # autodoc lists them (_templates/autosummary/entry.rst)
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_use_plots = True  # an Examples section that imports matplotlib is drawn
numpydoc_validation_checks: set[str] = set()
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 96)]

# -- MyST and notebooks
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "force"
nb_execution_timeout = 300  # seconds per cell; vignettes run in seconds
nb_execution_raise_on_error = True
nb_execution_allow_errors = False
nb_execution_show_tb = True
nb_execution_in_temp = False  # cells run in the page's folder
nb_merge_streams = True
nb_ipywidgets_js: dict = {}  # never load the widget manager from a CDN

# -- HTML
html_theme = "pydata_sphinx_theme"
html_title = f"pymlm {release}"
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"
html_show_sourcelink = True
html_last_updated_fmt = None
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "use_edit_page_button": False,
    "icon_links": [],
    "analytics": {},
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}
# pages without subpages: no (empty) section navigation, a wider text column
html_sidebars = {
    page: [] for page in ("index", "getting-started", "execution", "search", "genindex")
}
