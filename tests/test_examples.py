"""Every script of examples/ runs to the end, headless, on one torch thread.

This is the one place that runs the examples: the documentation's gallery is
built from them without running them in the test suite (see tests/test_docs.py).
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
MNIST = ROOT.parent / "shared" / "data"
TIMEOUT = 180  # seconds; each example takes well under 20 s on 2 idle cores


def run_example(script, cwd, **env):
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env={**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    env = {"SKCL_DATA": str(MNIST)} if (MNIST / "mnist").is_dir() else {}
    result = run_example(script, tmp_path, **env)
    assert result.returncode == 0, result.stderr[-3000:]
    shows_a_figure = "plt.show()" in script.read_text()
    assert shows_a_figure or result.stdout.strip(), "no figure and no table"
    assert not list(tmp_path.iterdir()), "examples must not write files"


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_has_a_gallery_header(script):
    """sphinx-gallery needs a docstring that opens with a titled section."""
    docstring = ast.get_docstring(ast.parse(script.read_text()), clean=False)
    assert docstring, f"{script.name} has no module docstring"
    lines = docstring.strip("\n").splitlines()
    if set(lines[0]) == {"="}:  # an overlined title
        lines = lines[1:]
    title, underline = lines[0], lines[1]
    assert title.strip() and set(underline) == {"="}, script.name
    assert len(underline) >= len(title), f"{script.name}: title underline too short"


def test_split_mnist_example_falls_back_to_digits(tmp_path):
    """Without the MNIST files the example trains on the embedded digits."""
    script = ROOT / "examples" / "plot_split_mnist.py"
    result = run_example(script, tmp_path, SKCL_DATA=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "8x8 digits" in result.stdout
