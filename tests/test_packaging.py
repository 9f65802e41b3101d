"""Packaging: one version source; `python -m build` gives an sdist and a wheel that installs in a
fresh virtual environment and passes the test suite there (slow)."""

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import fastselu
from fastselu import _version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None

from util import run_python

REPO = Path(__file__).resolve().parent.parent


def test_import_pulls_in_no_optional_framework():
    r = run_python(
        "import sys, fastselu; fastselu.selu(1.0); "
        "print(sorted(m for m in ('torch', 'dask', 'distributed', 'numba', 'mypy') "
        "if m in sys.modules))"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_single_version_source():
    assert fastselu.__version__ == _version.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)*", fastselu.__version__)
    path = REPO / "pyproject.toml"
    if not (REPO / "setup.py").is_file() or tomllib is None:
        pytest.skip("not run from a source checkout (or no tomllib)")
    with open(path, "rb") as f:
        config = tomllib.load(f)
    assert "version" not in config["project"]  # no second, static version
    assert "version" in config["project"]["dynamic"]
    dynamic = config["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "fastselu._version.__version__"}
    assert "version=" not in (REPO / "setup.py").read_text()
    assert f'__version__ = "{fastselu.__version__}"' in Path(_version.__file__).read_text()


SDIST_MUST_HAVE = [
    "fastselu/_kernels.pyx",
    "fastselu/_selu_kernels.h",
    "fastselu/_selu_constants.h",
    "fastselu/_dispatch.c",
    "fastselu/_dispatch.h",
    "fastselu/_simd_avx512.c",
    "fastselu/_simd_avx2.c",
    "fastselu/_simd_baseline.c",
    "fastselu/_simd_neon.c",
    "fastselu/_simd_sve.c",
    "fastselu/_targets.py",
    "tools/test_aarch64.sh",
    "tools/bitcompare.c",
    "fastselu/__init__.pyi",
    "fastselu/py.typed",
    "fastselu/torch.py",
    "fastselu/dask.py",
    "setup.py",
    "pyproject.toml",
    "README.md",
    "tests/conftest.py",
    "tests/util.py",
    "examples/typing_example.py",
]
WHEEL_MUST_HAVE = [
    "fastselu/__init__.py",
    "fastselu/__init__.pyi",
    "fastselu/py.typed",
    "fastselu/torch.py",
    "fastselu/dask.py",
    "fastselu/_threadpool.py",
    "fastselu/_version.py",
]


def _run(cmd, cwd, timeout, env=None):
    r = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def _venv_env():
    # Nothing of this checkout or of the calling environment leaks into the venv's Python.
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
        and not k.startswith(("FASTSELU_", "OMP_"))
    }


@pytest.mark.slow
def test_build_install_and_test_in_fresh_venv(tmp_path):
    pytest.importorskip("build")
    if not (REPO / "setup.py").is_file():
        pytest.skip("not run from a source checkout")
    version = _version.__version__
    dist = tmp_path / "dist"
    # No --sdist/--wheel: build makes the sdist, then the wheel *from the sdist*, so a file
    # missing from the sdist breaks the build here rather than for users.
    egg_info = REPO / "fastselu.egg-info"
    had_egg_info = egg_info.exists()
    try:
        _run([sys.executable, "-m", "build", "--outdir", dist, REPO], REPO, 600)
    finally:
        if not had_egg_info:  # setuptools writes it into the checkout; leave no trace
            shutil.rmtree(egg_info, ignore_errors=True)
    [sdist] = dist.glob("*.tar.gz")
    [wheel] = dist.glob("*.whl")
    assert sdist.name == f"fastselu-{version}.tar.gz"
    assert wheel.name.startswith(f"fastselu-{version}-")

    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    missing = [f for f in SDIST_MUST_HAVE if f not in names]
    assert not missing, missing
    assert not [n for n in names if n.endswith((".so", ".o", ".pyc"))]

    with zipfile.ZipFile(wheel) as zf:
        wnames = set(zf.namelist())
        metadata = zf.read(f"fastselu-{version}.dist-info/METADATA").decode()
    assert not [f for f in WHEEL_MUST_HAVE if f not in wnames]
    assert [n for n in wnames if re.fullmatch(r"fastselu/_kernels\..*\.(so|pyd)", n)]
    assert f"Version: {version}" in metadata
    for extra in ("torch", "dask", "test", "numba"):
        assert f"Provides-Extra: {extra}" in metadata

    # A fresh venv (no system site-packages): numpy and the test tools come from the index.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp_path, 300)
    py = venv / "bin" / "python"
    env = _venv_env()
    _run([py, "-m", "pip", "install", "-q", f"{wheel}[test]"], tmp_path, 900, env)

    # Run from a directory without the source tree, so the installed copy is what loads.
    work = tmp_path / "work"
    work.mkdir()
    r = _run(
        [
            py,
            "-c",
            "import fastselu, numpy as np; fastselu.show_config(); "
            "print(fastselu.__file__); "
            "x = np.linspace(-5, 5, 100001, dtype=np.float32); "
            "assert np.allclose(fastselu.selu(x), fastselu.SCALE * np.where("
            "x > 0, x, fastselu.ALPHA * np.expm1(x)), rtol=1e-6, atol=0)",
        ],
        work,
        120,
        env,
    )
    assert "backend: cython" in r.stdout
    assert f"fastselu {version}" in r.stdout
    assert str(venv) in r.stdout and str(REPO) not in r.stdout
    r = _run([py, "-m", "fastselu", "info"], work, 120, env)
    assert "openmp: on" in r.stdout

    # The test suite (default selection: not slow) against the installed wheel.
    shutil.copytree(
        REPO / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__", ".hypothesis")
    )
    shutil.copytree(REPO / "examples", work / "examples")
    shutil.copy(REPO / "pyproject.toml", work / "pyproject.toml")  # markers and addopts
    assert not (work / "fastselu").exists()  # so `import fastselu` in the tests is the wheel's
    r = _run([venv / "bin" / "pytest", "-q", "-p", "no:cacheprovider", "-x"], work, 900, env)
    assert re.search(r"\d+ passed", r.stdout), r.stdout[-2000:]
