"""Typing: py.typed + fastselu/__init__.pyi; `mypy --strict` passes on
examples/typing_example.py."""

import ast
import importlib.util
import inspect
import os
import site
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastselu
from util import run_python

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "typing_example.py"
PKG = Path(fastselu.__file__).resolve().parent
STUB = PKG / "__init__.pyi"

needs_mypy = pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None or int(np.__version__.split(".")[0]) < 2,
    reason="needs mypy, and NumPy >= 2's annotations (NumPy 1.x's np.floating wants a type "
    "argument under --strict)",
)


def mypy(*args, cwd, cache):
    """Run `mypy --strict` in `cwd`, finding the fastselu under test whether installed or not."""
    cmd = [
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--no-color-output",
        "--cache-dir",
        str(cache),
        *map(str, args),
    ]
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    installed = {Path(p).resolve() for p in site.getsitepackages() + [site.getusersitepackages()]}
    if PKG.parent not in installed:  # a source checkout: point mypy at it (never at site-packages)
        env["MYPYPATH"] = str(PKG.parent)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_markers_ship():
    assert (PKG / "py.typed").is_file()
    assert STUB.is_file()


@needs_mypy
def test_mypy_strict_on_the_example(tmp_path):
    r = mypy(EXAMPLE, cwd=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success: no issues found" in r.stdout


def test_example_runs():
    r = run_python(None, str(EXAMPLE))
    assert r.returncode == 0, r.stderr
    assert fastselu.__version__ in r.stdout


BAD = """
import numpy as np
import numpy.typing as npt
import fastselu

x32: npt.NDArray[np.float32] = np.ones(3, np.float32)
wrong: npt.NDArray[np.float64] = fastselu.selu(x32)      # float32 in, float32 out
fastselu.set_num_threads("2")                            # an int
fastselu.selu(x32, inplce=True)                          # no such keyword
n: str = fastselu.get_num_threads()                      # an int
"""


@needs_mypy
def test_mypy_catches_misuse(tmp_path):
    # The stubs are precise, not Any: each wrong line above is reported.
    bad = tmp_path / "bad_usage.py"
    bad.write_text(BAD)
    r = mypy(bad, cwd=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 1, r.stdout + r.stderr
    lines = {int(line.split(":")[1]) for line in r.stdout.splitlines() if ": error:" in line}
    assert lines == {7, 8, 9, 10}, r.stdout


def _stub_defs():
    """name -> the stub's last definition (for overloads: the catch-all) or annotation."""
    tree = ast.parse(STUB.read_text())
    defs = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defs[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defs[node.target.id] = node
    return defs


def test_stub_names_match_the_package():
    public = {name for name in _stub_defs() if not name.startswith("_")} | {"__version__"}
    assert public == set(fastselu.__all__)


def _params(fn):
    args = fn.args
    out = []
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for a, d in zip(positional, defaults):
        out.append((a.arg, "POSITIONAL_OR_KEYWORD", d is not None))
    for a, d in zip(args.kwonlyargs, args.kw_defaults):
        out.append((a.arg, "KEYWORD_ONLY", d is not None))
    return [p for p in out if p[0] != "self"]


def _runtime_params(obj):
    return [
        (p.name, p.kind.name, p.default is not inspect.Parameter.empty)
        for p in inspect.signature(obj).parameters.values()
    ]


@pytest.mark.parametrize(
    "name", sorted(n for n in fastselu.__all__ if callable(getattr(fastselu, n)))
)
def test_stub_signatures_match_runtime(name):
    node = _stub_defs()[name]
    obj = getattr(fastselu, name)
    if isinstance(node, ast.ClassDef):
        methods = {m.name: m for m in node.body if isinstance(m, ast.FunctionDef)}
        assert _params(methods["__init__"]) == _runtime_params(obj)
        assert _params(methods["__call__"]) == _runtime_params(obj.__call__)[1:]
        return
    assert _params(node) == _runtime_params(obj)


@pytest.mark.slow
@needs_mypy
def test_integration_modules_are_strict_clean(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("dask.array")
    pytest.importorskip("threadpoolctl")
    # Third-party packages are analyzed for their types but their own errors are not ours.
    # By module name, not file path: a path inside site-packages makes mypy take that folder
    # for a source root, where typing_extensions.py then "shadows" the library.
    r = mypy(
        "--follow-imports=silent",
        "-m",
        "fastselu.torch",
        "-m",
        "fastselu.dask",
        "-m",
        "fastselu._threadpool",
        cwd=tmp_path,
        cache=tmp_path / "cache",
    )
    assert r.returncode == 0, r.stdout + r.stderr
