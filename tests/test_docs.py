"""The documentation: every public name has a runnable example, and the site builds.

The site build is skipped when the ``docs`` extra (Sphinx and its extensions) is
not installed.
"""

import ast
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_MODULES = [
    "skcl",
    "skcl.penalties",
    "skcl.replay",
    "skcl.plasticity",
    "skcl.metrics",
    "skcl.datasets",
    "skcl.callbacks",
    "skcl.modules",
    "skcl.model_selection",
]
PUBLIC_NAMES = [
    (module, name)
    for module in PUBLIC_MODULES
    for name in importlib.import_module(module).__all__
    if not name.startswith("__")
]
# A numpydoc section header: a title line underlined by at least as many dashes.
_HEADER = re.compile(r"^[ \t]*(\S.*?)[ \t]*\n[ \t]*(-+)[ \t]*$", re.MULTILINE)


def _sections(doc):
    """Return the numpydoc sections of ``doc``: title -> body."""
    headers = [m for m in _HEADER.finditer(doc) if len(m[2]) >= len(m[1])]
    ends = [m.start() for m in headers[1:]] + [len(doc)]
    return {m[1]: doc[m.end() : end] for m, end in zip(headers, ends)}


@pytest.mark.parametrize(
    ("module", "name"), PUBLIC_NAMES, ids=[f"{m}.{n}" for m, n in PUBLIC_NAMES]
)
def test_public_name_has_a_numpydoc_docstring_with_examples(module, name):
    obj = getattr(importlib.import_module(module), name)
    doc = inspect.getdoc(obj)
    assert doc, f"{module}.{name} has no docstring"
    examples = _sections(doc).get("Examples", "")
    run = [
        line
        for line in examples.splitlines()
        if line.lstrip().startswith(">>>") and "doctest: +SKIP" not in line
    ]
    assert run, f"{module}.{name} has no Examples section with a doctest that runs"


def _readme_quickstart():
    text = (ROOT / "README.md").read_text()
    match = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert match, "README.md has no ```python block"
    return match.group(1)


def test_readme_quickstart_runs(tmp_path):
    """The code of the README, which the Getting started page includes, runs."""
    code = _readme_quickstart()
    ast.parse(code)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    average_accuracy, forgetting = map(float, result.stdout.split())
    assert 0 <= average_accuracy <= 1 and -1 <= forgetting <= 1


def test_docs_build_without_warnings(tmp_path):
    """``sphinx-build -W`` succeeds, and every public name has its API page.

    The sources are copied so that the build's generated files (API stubs, the
    gallery's pages) stay out of the repository. The gallery's examples are not
    run here (``plot_gallery=0``): ``tests/test_examples.py`` runs them.
    """
    for extension in ("sphinx", "numpydoc", "sphinx_gallery", "myst_parser", "furo"):
        pytest.importorskip(extension)
    generated = shutil.ignore_patterns("_build", "generated", "auto_examples")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=generated)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    out = tmp_path / "html"
    sphinx = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    result = subprocess.run(
        [*sphinx, "-D", "plot_gallery=0", tmp_path / "docs", out],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    for module, name in PUBLIC_NAMES:
        assert (out / "generated" / f"{module}.{name}.html").is_file(), (module, name)
    for script in (ROOT / "examples").glob("*.py"):
        assert (out / "auto_examples" / f"{script.stem}.html").is_file(), script
    for page in ("getting_started", "api", "user_guide/index", "performance"):
        assert (out / f"{page}.html").is_file(), page
