"""Lint: the source tree passes `ruff check`, `ruff format --check` and `cython-lint` (configured
in pyproject.toml), and the modules listed under [tool.mypy] pass `mypy --strict`.  The suite may
run against an installed wheel, without the source tree: then there is nothing to lint."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(
    not ((REPO / "pyproject.toml").is_file() and (REPO / "fastselu").is_dir()),
    reason="no source tree (pyproject.toml next to fastselu/) above tests/: nothing to lint",
)


def tool(name):
    """Command line for console script `name` from this interpreter's environment, else PATH."""
    here = Path(sys.executable).parent / name
    path = str(here) if here.is_file() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (it comes with the 'test' extra)")
    return [path]


def run(cmd):
    # This environment's scripts first on PATH: cython-lint runs `pycodestyle` by name, and the
    # suite may run from a venv that is not activated.
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}:\n{r.stdout}{r.stderr}"


def test_ruff_check():
    run([*tool("ruff"), "check", "--no-cache", "."])


def test_ruff_format():
    run([*tool("ruff"), "format", "--check", "--no-cache", "."])


def test_cython_lint():
    sources = sorted(
        str(p.relative_to(REPO))
        for ext in ("pyx", "pxd", "pxi")
        for p in (REPO / "fastselu").glob(f"*.{ext}")
    )
    assert sources, "no Cython sources found"
    run([*tool("cython-lint"), *sources])


@pytest.mark.slow
def test_mypy_strict_on_the_typed_modules(tmp_path):
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (it comes with the 'test' extra)")
    run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path)])
