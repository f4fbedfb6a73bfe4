"""Sphinx configuration of the skcl documentation.

Build the site (the gallery's examples are run, and their figures shown)::

    python -m sphinx -W -b html docs docs/_build/html

Build it without running the examples (what the test suite does; the examples
are run by ``tests/test_examples.py``)::

    python -m sphinx -W -b html -D plot_gallery=0 docs docs/_build/html
"""

import re
from pathlib import Path

import skcl

DOCS = Path(__file__).resolve().parent

project = "skcl"
author = "skcl developers"
copyright = "skcl developers"
version = release = skcl.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path = ["_templates"]
default_role = "literal"

# API reference: one page per public name, generated from the docstrings.
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Markdown pages (performance.md, benchmarks.md, reliability.md).
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# The examples gallery, generated from examples/. ``-D plot_gallery=0`` builds
# it without running the scripts.
sphinx_gallery_conf = {
    "examples_dirs": str(DOCS.parent / "examples"),
    "gallery_dirs": str(DOCS / "auto_examples"),
    "filename_pattern": r"\.py$",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("skcl",),
    "reference_url": {"skcl": None},
    "backreferences_dir": str(DOCS / "generated" / "backreferences"),
    "download_all_examples": False,
    "write_computation_times": False,
}

html_theme = "furo"
html_title = f"skcl {release}"

_FOREIGN_ROLE = re.compile(r":(?:term|ref):`([^`<]*?)\s*(?:<[^`>]*>)?`")


def _foreign_roles_as_text(app, what, name, obj, options, lines):
    """Turn scikit-learn's glossary and label references into plain text.

    The estimators inherit methods (``set_fit_request``, ``get_metadata_routing``,
    the search's ``predict_proba``...) whose docstrings point into
    scikit-learn's own documentation, which this site does not have.
    """
    target = getattr(obj, "fget", obj)  # a property's getter
    target = getattr(target, "__func__", target)  # a bound method's function
    if (getattr(target, "__module__", None) or "").startswith("skcl"):
        return
    lines[:] = [_FOREIGN_ROLE.sub(r"*\1*", line) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _foreign_roles_as_text)
