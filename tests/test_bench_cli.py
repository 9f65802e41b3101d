"""`python -m fastselu bench`: a quick end-to-end run, and the table / ratio formatting."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastselu
from fastselu import _bench

# The directory holding the package under test, so the subprocess imports this very copy.
PACKAGE_PARENT = str(Path(fastselu.__file__).resolve().parent.parent)
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_ML_DTYPES = importlib.util.find_spec("ml_dtypes") is not None
COMPILED = "cython" in fastselu.available_backends()


def bench(tmp_path, *args, timeout=120):
    """Run `python -m fastselu bench args...` in a clean environment; return (process, JSON)."""
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable,
        "-m",
        "fastselu",
        "bench",
        "--quick",
        "--repeat",
        "1",
        *args,
        "--json",
        str(out),
    ]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FASTSELU_") and k != "ATEN_CPU_CAPABILITY"
    }
    env["PYTHONPATH"] = PACKAGE_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, json.loads(out.read_text())


def test_cli_quick_run_writes_json_and_plot(tmp_path):
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    cmd = [
        sys.executable,
        "-m",
        "fastselu",
        "bench",
        "--quick",
        "--sizes",
        "1,1000",
        "--dtypes",
        "float32",
        "--repeat",
        "3",
        "--json",
        str(out),
    ]
    if HAVE_MPL:
        cmd += ["--plot", str(png)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTSELU_")}
    env["PYTHONPATH"] = PACKAGE_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "fastselu[cython]" in proc.stdout and "vs torch" in proc.stdout
    assert f"CPU: {_bench.cpu_model()}" in proc.stdout

    doc = json.loads(out.read_text())
    assert set(doc) == {"meta", "results"}
    meta = doc["meta"]
    for key in ("date", "fastselu", "numpy", "torch", "cpu", "threads", "settings", "python"):
        assert key in meta, key
    assert meta["fastselu"]["version"] == fastselu.__version__
    assert meta["threads"]["fastselu"] >= 1
    assert meta["settings"]["sizes"] == [1, 1000] and meta["settings"]["rounds"] == 3
    res = doc["results"]
    keys = {
        "op",
        "dtype",
        "n",
        "impl",
        "kind",
        "median_s",
        "mean_s",
        "times_s",
        "inner",
        "batches",
        "gbps",
        "vs_torch",
        "vs_ref",
    }
    assert all(keys <= set(r) for r in res)
    assert {r["op"] for r in res} == set(_bench.OPS)
    assert {r["n"] for r in res} == {1, 1000} and {r["dtype"] for r in res} == {"float32"}
    assert all(len(r["times_s"]) == 3 and r["median_s"] > 0 for r in res)
    impls = {r["impl"] for r in res}
    assert {f"fastselu[{b}]" for b in fastselu.available_backends()} <= impls
    if "cython" in fastselu.available_backends():
        assert {"copy", "add"} <= impls and all(r["vs_ref"] > 0 for r in res)
    if importlib.util.find_spec("torch") is not None:
        assert "torch" in impls and meta["torch"] and meta["threads"]["torch"] >= 1
        assert all(r["vs_torch"] > 0 for r in res)
    if HAVE_MPL:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Without --simd: the variant in use, measured in one child process, every backend.
    (variant,) = meta["variants"]
    assert {r["variant"] for r in res} == {variant["variant"]}
    if COMPILED:
        assert variant["variant"] == variant["fastselu_simd"] == fastselu._kernels.simd()
    if HAVE_TORCH and COMPILED:
        assert variant["aten_cpu_capability"] == _bench.TORCH_CAPABILITY[variant["variant"]]


@pytest.mark.skipif(not COMPILED, reason="--simd picks variants of the compiled backend")
def test_simd_all_runs_each_variant_beside_torch_at_its_capability(tmp_path):
    from fastselu import _kernels

    proc, doc = bench(tmp_path, "--simd", "all", "--sizes", "10", "--dtype", "float32")
    measured = [v["variant"] for v in doc["meta"]["variants"]]
    assert measured == [v for v in _kernels.VARIANTS if v in _kernels.SUPPORTED]
    for v in doc["meta"]["variants"]:
        assert v["fastselu_simd"] == v["variant"]  # the child really ran that variant
        rows = [r for r in doc["results"] if r["variant"] == v["variant"]]
        assert {r["impl"] for r in rows} >= {"fastselu[cython]", "copy", "add"}
        assert not {r["impl"] for r in rows} & {"numpy", "numexpr", "fastselu[numpy]"}
        if HAVE_TORCH:
            cap = _bench.TORCH_CAPABILITY[v["variant"]]
            assert v["aten_cpu_capability"] == cap and v["torch_capability"].lower() == cap
            assert all(r["vs_torch"] > 0 for r in rows)
        assert f"FASTSELU_SIMD={v['variant']}" in proc.stdout  # one table per variant
    for v in _kernels.VARIANTS:
        if v not in _kernels.SUPPORTED:
            assert f"note: {v} skipped: this CPU cannot run it" in proc.stdout
    assert proc.stdout.count(_bench.cpu_model()) == 1 + len(measured)


def test_half_dtypes(tmp_path):
    proc, doc = bench(tmp_path, "--sizes", "10", "--dtype", "float16,bfloat16")
    res = doc["results"]
    f16 = {r["impl"] for r in res if r["dtype"] == "float16"}
    assert "fastselu[numpy]" in f16 or "fastselu[cython]" in f16
    assert all(r["bytes"] == 2 * 10 * _bench.OPS[r["op"]][1] for r in res)
    bf16 = {r["impl"] for r in res if r["dtype"] == "bfloat16"}
    if HAVE_TORCH:
        assert "torch" in f16 and "numexpr" not in f16
    if not HAVE_ML_DTYPES:
        assert not bf16 and "note: bfloat16 skipped: it needs ml_dtypes" in proc.stdout
    else:
        assert ("torch" in bf16) == HAVE_TORCH
        # fastselu either times bfloat16 or says why not (before its bfloat16 kernels)
        for b in fastselu.available_backends():
            name = f"fastselu[{b}]"
            assert name in bf16 or f"{name} not timed for bfloat16" in proc.stdout


def test_plan_variants():
    plan = _bench.plan_variants
    built, runs = ("avx512", "avx2", "baseline"), ("avx2", "baseline")
    assert plan(None, built, runs, "avx2") == (["avx2"], [])
    assert plan("all", built, runs, "avx2") == (
        ["avx2", "baseline"],
        ["avx512 skipped: this CPU cannot run it (it runs avx2, baseline)"],
    )
    assert plan("baseline", built, runs, "avx2") == (["baseline"], [])
    variants, notes = plan("neon", built, runs, "avx2")
    assert variants == [] and "not built for this platform" in notes[0]
    variants, notes = plan("all", None, (), None)  # no compiled backend: the one in use
    assert variants == [None] and "not available" in notes[0]


def test_child_env_matches_torch_capability(monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx512")
    for variant, cap in (("avx512", "avx512"), ("avx2", "avx2"), ("baseline", "default")):
        env = _bench.child_env(variant)
        assert env["FASTSELU_SIMD"] == variant and env["ATEN_CPU_CAPABILITY"] == cap
        assert env["PYTHONPATH"].split(os.pathsep)[0] == PACKAGE_PARENT
    assert _bench.child_env(None)["ATEN_CPU_CAPABILITY"] == "avx512"  # left as it was


def test_cpu_model_names_family_and_model():
    name = _bench.cpu_model()
    assert name and name == name.strip()
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return
    if "cpu family" in info:
        assert re.search(r"\(family \d+, model \d+\)$", name), name


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    assert _bench.main(["--plot", str(tmp_path / "x.png"), "--sizes", "1"]) == 2
    assert "matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--sizes", "0"],
        ["--sizes", "1,x"],
        ["--sizes", "1.5"],
        ["--dtypes", "float8"],
        ["--dtype", "float32,int8"],
        ["--dtype", ""],
        ["--simd", "sse9"],
        ["--simd", "ALL"],
        ["--repeat", "0"],
        ["--threads", "0"],
        ["--nope"],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        _bench.main(argv)
    assert exc.value.code == 2


def test_argument_parsing():
    args = _bench.parser().parse_args([])
    assert args.simd is None and args.dtypes == ["float32", "float64"]
    args = _bench.parser().parse_args(["--simd", "all", "--dtype", "float16, bfloat16,float16"])
    assert args.simd == "all" and args.dtypes == ["float16", "bfloat16"]
    assert _bench.parser().parse_args(["--simd", "baseline"]).simd == "baseline"
    assert _bench.parser().parse_args(["--dtypes", "float64"]).dtypes == ["float64"]  # old name


def test_number_formatting():
    assert _bench.format_time(8.02e-3) == "8.02 ms"
    assert _bench.format_time(2.441e-7) == "244 ns"
    assert _bench.format_time(1.5e-6) == "1.5 µs"
    assert _bench.format_time(0.9996e-3) == "1 ms"
    assert _bench.format_time(123456e-9) == "123 µs"
    assert _bench.format_time(2.0) == "2 s"
    assert _bench.format_time(None) == "-"
    assert _bench.format_ratio(0.5) == "0.50x"
    assert _bench.format_ratio(34.83) == "34.8x"
    assert _bench.format_ratio(215.4) == "215x"
    assert _bench.format_ratio(None) == "-"
    assert [_bench.format_n(n) for n in (1, 10, 100, 1000, 2500, 10**7)] == [
        "1",
        "10",
        "100",
        "1e3",
        "2500",
        "1e7",
    ]
    assert _bench._sizes("1,1e3, 100000") == [1, 1000, 100000]


def test_ratios_and_table():
    recs = [
        {"op": "forward_out", "dtype": "float32", "n": 10**6, "impl": i, "median_s": t}
        for i, t in (("fastselu[cython]", 2e-4), ("torch", 8e-4), ("copy", 1e-4))
    ]
    recs += [
        {
            "op": "inplace",
            "dtype": "float32",
            "n": 10**6,
            "impl": "fastselu[cython]",
            "median_s": 3e-4,
        },
        {
            "op": "backward_out",
            "dtype": "float64",
            "n": 10,
            "impl": "fastselu[cython]",
            "median_s": 1e-6,
        },
    ]
    recs = _bench.add_ratios(recs)
    fs, torch, copy, inpl, bwd = recs
    assert fs["bytes"] == 2 * 4 * 10**6 and fs["gbps"] == pytest.approx(40.0)
    assert fs["vs_torch"] == pytest.approx(0.25) and fs["vs_ref"] == pytest.approx(2.0)
    assert torch["vs_torch"] == pytest.approx(1.0) and copy["vs_ref"] == pytest.approx(1.0)
    assert inpl["vs_torch"] is None and inpl["vs_ref"] == pytest.approx(3.0)  # ref: forward copy
    assert bwd["bytes"] == 3 * 8 * 10 and bwd["vs_torch"] is None and bwd["vs_ref"] is None

    lines = _bench.format_table(recs).splitlines()
    assert lines[0].split() == [
        "op",
        "dtype",
        "n",
        "impl",
        "time",
        "GB/s",
        "vs",
        "torch",
        "vs",
        "ref",
    ]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == [
        "forward_out",
        "float32",
        "1e6",
        "fastselu[cython]",
        "200",
        "µs",
        "40",
        "0.25x",
        "2.00x",
    ]
    assert lines[4].split()[3:] == ["copy", "100", "µs", "80", "0.12x", "1.00x"]
    assert lines[5] == ""  # a blank line between (op, dtype, n) blocks
    assert lines[6].split()[-2:] == ["-", "3.00x"]
    assert lines[-1].split()[:3] == ["backward_out", "float64", "10"]
    widths = {len(ln) for ln in lines[2:5]}
    assert len(widths) == 1  # columns line up


def test_table_drives_every_backend(monkeypatch):
    # Keep torch and numexpr out of this process (torch brings its own OpenMP runtime, which
    # other tests' thread-pool and fork checks should not see); the subprocess test covers them.
    for name in ("torch", "numexpr"):
        if name not in sys.modules:
            monkeypatch.setitem(sys.modules, name, None)
    impls = _bench.implementations()
    for op in _bench.OPS:
        names = {i.name for i in impls if i.op == op}
        assert {f"fastselu[{b}]" for b in fastselu.available_backends()} <= names
    assert {(i.op, i.name) for i in impls if i.kind == "reference"} == {
        ("forward_out", "copy"),
        ("backward_out", "add"),
    }
    # Every entry computes what its op says, and the backend is left as it was found.
    before = fastselu.get_backend()
    for dtype in _bench.DTYPES:
        if _bench.numpy_dtype(dtype) is None:
            continue  # bfloat16 without ml_dtypes
        refused = _bench.check([i for i in impls if i.applies(100, dtype)], dtype, n=100)
        # Only fastselu may refuse a dtype (bfloat16 before its kernels), and only by TypeError.
        assert all(i.kind == "fastselu" and dtype == "bfloat16" for i, _ in refused), refused
    assert fastselu.get_backend() == before
    # --simd: the compiled backend, torch (if a test before this one imported it) and references
    allowed = {"fastselu[cython]", "torch", "copy", "add"}
    if "cython" not in fastselu.available_backends():
        allowed |= {"fastselu[numba]", "fastselu[numpy]"}
    assert {i.name for i in _bench.implementations(compiled_only=True)} <= allowed


def test_check_catches_a_wrong_call():
    bad = _bench.Impl("forward_out", "bogus", "peer", lambda d: lambda: d.o.__setitem__(..., d.x))
    with pytest.raises(RuntimeError, match="bogus"):
        _bench.check([bad], "float32", n=10)
