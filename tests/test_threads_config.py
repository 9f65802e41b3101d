"""Backends, threads, environment variables, show_config and the command line."""

import os

import numpy as np
import pytest

import fastselu
from fastselu import _config
from util import run_python, same_floats

HAS_CYTHON = "cython" in fastselu.available_backends()


# ---- backends -----------------------------------------------------------------------------------


def test_available_backends():
    names = fastselu.available_backends()
    assert isinstance(names, tuple) and "numpy" in names
    assert set(names) <= {"cython", "numba", "numpy"}
    assert list(names) == [n for n in ("cython", "numba", "numpy") if n in names]


def test_set_backend_unknown_name():
    before = fastselu.get_backend()
    for bad in ("nope", "", "NumPy", None, 3):
        with pytest.raises(ValueError) as info:
            fastselu.set_backend(bad)
        for valid in ("cython", "numba", "numpy"):
            assert valid in str(info.value)
    assert fastselu.get_backend() == before


def test_set_backend_that_cannot_load(monkeypatch):
    before = fastselu.get_backend()
    monkeypatch.setitem(_config.BACKENDS, "broken", "fastselu._no_such_backend_module")
    with pytest.raises(ImportError, match="_no_such_backend_module"):
        fastselu.set_backend("broken")
    assert fastselu.get_backend() == before
    assert "broken" not in fastselu.available_backends()


def test_set_backend_numba_missing_says_why():
    if "numba" in fastselu.available_backends():
        pytest.skip("numba loads here")
    with pytest.raises(ImportError, match="numba"):
        fastselu.set_backend("numba")


def test_env_backend_numpy():
    r = run_python(
        "import fastselu; print(fastselu.get_backend())", "-W", "error", FASTSELU_BACKEND="numpy"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "numpy" and "Warning" not in r.stderr


def test_default_backend_prefers_cython():
    r = run_python("import fastselu; print(fastselu.get_backend())")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("cython" if HAS_CYTHON else fastselu.get_backend())


def test_fallback_warns_with_reason():
    code = (
        "import sys, warnings; sys.modules['fastselu._kernels'] = None\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    import fastselu\n"
        "print(fastselu.get_backend()); print([str(x.category.__name__) for x in w]);"
        "print([str(x.message) for x in w])"
    )
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    name, categories, messages = r.stdout.strip().splitlines()
    assert name in ("numba", "numpy")
    assert "RuntimeWarning" in categories
    assert "cython" in messages and "fastselu._kernels" in messages


def test_explicit_backend_that_cannot_load_falls_back_with_warning():
    code = (
        "import sys; sys.modules['fastselu._kernels'] = None\n"
        "import fastselu; print(fastselu.get_backend())"
    )
    r = run_python(code, FASTSELU_BACKEND="cython")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("numba", "numpy")
    assert "RuntimeWarning" in r.stderr and "cython" in r.stderr


def test_import_does_not_import_numba():
    if not HAS_CYTHON:
        pytest.skip("only meaningful when the compiled backend loads")
    r = run_python(
        "import sys, fastselu; fastselu.selu(1.0); "
        "print(fastselu.get_backend(), 'numba' in sys.modules)"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["cython", "False"]


@pytest.mark.parametrize(
    "var, value, expected",
    [
        ("FASTSELU_BACKEND", "nope", ["cython", "numba", "numpy"]),
        ("FASTSELU_BACKEND", "NUMPY", ["cython", "numba", "numpy"]),
        ("FASTSELU_SIMD", "sse2", ["avx512", "avx2", "neon", "sve", "baseline"]),
        ("FASTSELU_SIMD", "AVX2", ["avx512", "avx2", "neon", "sve", "baseline"]),
        ("FASTSELU_NUM_THREADS", "0", ["positive integer"]),
        ("FASTSELU_NUM_THREADS", "-2", ["positive integer"]),
        ("FASTSELU_NUM_THREADS", "two", ["positive integer"]),
        ("FASTSELU_NUM_THREADS", "1.5", ["positive integer"]),
    ],
)
def test_invalid_environment_raises_importerror(var, value, expected):
    r = run_python("import fastselu", **{var: value})
    assert r.returncode != 0
    assert "ImportError" in r.stderr and var in r.stderr and repr(value) in r.stderr
    for word in expected:
        assert word in r.stderr


@pytest.mark.parametrize("value", ["avx512", "avx2", "neon", "sve", "baseline", ""])
def test_valid_simd_values_import(value):
    r = run_python("import fastselu; print(fastselu.get_backend())", FASTSELU_SIMD=value)
    assert r.returncode == 0, r.stderr


# ---- threads ------------------------------------------------------------------------------------


def _expected_default_threads():
    n = len(os.sched_getaffinity(0))
    limit = _config.cgroup_cpu_limit()
    return min(n, limit) if limit else n


def test_default_threads_is_available_cpus():
    r = run_python("import fastselu; print(fastselu.get_num_threads())")
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == _expected_default_threads() == _config.available_cpus()


def test_default_threads_follow_affinity():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPUs")
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "import fastselu; print(fastselu.get_num_threads())"
    )
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"FASTSELU_NUM_THREADS": "3"}, 3),
        ({"OMP_NUM_THREADS": "5"}, 5),
        ({"OMP_NUM_THREADS": "4,2"}, 4),
        ({"FASTSELU_NUM_THREADS": "7", "OMP_NUM_THREADS": "5"}, 7),
        ({"FASTSELU_NUM_THREADS": " 6 "}, 6),
    ],
)
def test_thread_environment_overrides(env, expected):
    r = run_python("import fastselu; print(fastselu.get_num_threads())", **env)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == expected


def test_invalid_omp_num_threads_is_ignored():
    r = run_python("import fastselu; print(fastselu.get_num_threads())", OMP_NUM_THREADS="lots")
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == _expected_default_threads()


def test_set_num_threads(restore_threads):
    fastselu.set_num_threads(3)
    assert fastselu.get_num_threads() == 3
    fastselu.set_num_threads(np.int64(1))
    assert fastselu.get_num_threads() == 1
    for bad in (0, -1, -100):
        with pytest.raises(ValueError, match=">= 1"):
            fastselu.set_num_threads(bad)
    for bad in (True, False, np.bool_(True), 2.0, "2", None, [2]):
        with pytest.raises(TypeError, match="int"):
            fastselu.set_num_threads(bad)
    assert fastselu.get_num_threads() == 1


def test_threadpool_limit_hook(restore_threads):
    fastselu.set_num_threads(4)
    _config.set_threadpool_limit(2)
    assert fastselu.get_num_threads() == 2 == _config.effective_num_threads()
    _config.set_threadpool_limit(8)
    assert fastselu.get_num_threads() == 4
    _config.set_threadpool_limit(None)
    assert fastselu.get_num_threads() == 4


def test_results_identical_for_any_thread_count(backend, restore_threads):
    rng = np.random.default_rng(2)
    for dtype in (np.float32, np.float64):
        x = (rng.standard_normal(1_000_003) * 10).astype(dtype)
        results = []
        for n in (1, 2, 3, 8):
            fastselu.set_num_threads(n)
            results.append(
                (
                    fastselu.selu(x),
                    fastselu.selu_backward(x, x),
                    fastselu.selu(x[::3]),
                    fastselu.selu(x)[::3],
                )
            )
        for r in results[1:]:
            assert all(same_floats(a, b) for a, b in zip(r, results[0]))
        assert same_floats(results[0][2], results[0][3])  # strided view == contiguous result


def test_kernels_get_the_effective_thread_count(monkeypatch, restore_threads):
    seen = []
    backend = fastselu._backends.active
    monkeypatch.setattr(
        fastselu._backends,
        "active",
        type(
            "Spy",
            (),
            {
                "forward": staticmethod(
                    lambda x, out, n: (seen.append(n), backend.forward(x, out, n))
                ),
            },
        ),
    )
    monkeypatch.setattr(fastselu._backends, "fast_forward", lambda *args: NotImplemented)
    fastselu.set_num_threads(3)
    fastselu.selu(np.zeros(10))
    fastselu.selu(np.zeros(10)[::2])
    _config.set_threadpool_limit(1)
    fastselu.selu(np.zeros(10))
    assert seen == [3, 3, 1]


@pytest.mark.skipif("cython" not in fastselu.available_backends(), reason="no compiled backend")
def test_compiled_fast_path_asks_for_threads_only_when_large(monkeypatch, restore_threads):
    kernels = fastselu._backends.load("cython")
    monkeypatch.setattr(fastselu._backends, "active_name", "cython")
    monkeypatch.setattr(fastselu._backends, "fast_forward", kernels.fast_forward)
    asked = []
    kernels.set_thread_source(lambda: asked.append(1) or _config.effective_num_threads())
    try:
        fastselu.selu(np.zeros(1000))
        assert asked == []  # small: one thread, no question asked
        fastselu.selu(np.zeros(1 << 20))
        assert asked == [1]
    finally:
        kernels.set_thread_source(_config.effective_num_threads)


FORK_SCRIPT = """
import os, sys, numpy as np, fastselu
fastselu.set_num_threads(2)
x = np.random.default_rng(0).standard_normal(3_000_000).astype(np.float32)
want = fastselu.selu(x)  # the parent runs threaded kernels first
pid = os.fork()
if pid == 0:
    ok = fastselu.get_num_threads() == 1 and np.array_equal(fastselu.selu(x), want)
    fastselu.set_num_threads(2)
    ok = ok and fastselu.get_num_threads() == 1 and np.array_equal(fastselu.selu(x), want)
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status), "parent", fastselu.get_num_threads())
"""


@pytest.mark.parametrize("name", fastselu.available_backends())
def test_forked_child_runs_single_threaded_without_hanging(name):
    r = run_python(FORK_SCRIPT, timeout=60, FASTSELU_BACKEND=name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["child", "0", "parent", "2"]


# ---- show_config and the command line ------------------------------------------------------------


def test_show_config(capsys):
    fastselu.show_config()
    text = capsys.readouterr().out
    lines = dict(line.split(": ", 1) for line in text.splitlines()[1:])
    assert text.splitlines()[0] == f"fastselu {fastselu.__version__}"
    assert lines["backend"].startswith(fastselu.get_backend())
    info = fastselu._backends.active.info()
    assert lines["simd"].split()[0] == (info["simd"] or "none")
    if info["simd"] is not None:
        assert info["simd"] in _config.SIMD_NAMES
    assert lines["openmp"] == ("on" if info["openmp"] else "off")
    assert lines["threads"].split()[0] == str(fastselu.get_num_threads())
    assert lines["numpy"] == np.__version__
    from importlib.metadata import PackageNotFoundError, version

    try:
        numba_version = version("numba")
    except PackageNotFoundError:
        numba_version = "not installed"
    assert lines["numba"] == numba_version


def test_show_config_reports_numpy_backend(capsys, backend):
    fastselu.show_config()
    out = capsys.readouterr().out
    assert f"backend: {backend}" in out


def test_cli_info_matches_show_config():
    cli = run_python(None, "-m", "fastselu", "info")
    direct = run_python("import fastselu; fastselu.show_config()")
    assert cli.returncode == 0 and direct.returncode == 0, cli.stderr + direct.stderr
    assert cli.stdout == direct.stdout and cli.stdout.startswith("fastselu ")


def test_cli_info_with_environment():
    r = run_python(
        None, "-m", "fastselu", "info", FASTSELU_BACKEND="numpy", FASTSELU_NUM_THREADS="3"
    )
    assert r.returncode == 0, r.stderr
    assert "backend: numpy" in r.stdout and "threads: 3" in r.stdout and "openmp: off" in r.stdout


def test_cli_usage_errors():
    for args in ([], ["frobnicate"], ["info", "extra"]):
        r = run_python(None, "-m", "fastselu", *args)
        assert r.returncode == 2 and "usage" in r.stderr.lower()


def test_cli_bench_without_bench_module():
    import importlib.util

    if importlib.util.find_spec("fastselu._bench") is not None:
        pytest.skip("fastselu._bench exists")
    r = run_python(None, "-m", "fastselu", "bench", "--json", "x.json")
    assert r.returncode == 2 and "fastselu._bench" in r.stderr
