"""`python -m fastselu bench`: a quick end-to-end run, and the table / ratio formatting."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastselu
from fastselu import _bench

# The directory holding the package under test, so the subprocess imports this very copy.
PACKAGE_PARENT = str(Path(fastselu.__file__).resolve().parent.parent)
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


def test_cli_quick_run_writes_json_and_plot(tmp_path):
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    cmd = [sys.executable, "-m", "fastselu", "bench", "--quick", "--sizes", "1,1000",
           "--dtypes", "float32", "--repeat", "3", "--json", str(out)]
    if HAVE_MPL:
        cmd += ["--plot", str(png)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTSELU_")}
    env["PYTHONPATH"] = PACKAGE_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "fastselu[cython]" in proc.stdout and "vs torch" in proc.stdout

    doc = json.loads(out.read_text())
    assert set(doc) == {"meta", "results"}
    meta = doc["meta"]
    for key in ("date", "fastselu", "numpy", "torch", "cpu", "threads", "settings", "python"):
        assert key in meta, key
    assert meta["fastselu"]["version"] == fastselu.__version__
    assert meta["threads"]["fastselu"] >= 1
    assert meta["settings"]["sizes"] == [1, 1000] and meta["settings"]["rounds"] == 3
    res = doc["results"]
    keys = {"op", "dtype", "n", "impl", "kind", "median_s", "mean_s", "times_s", "inner",
            "batches", "gbps", "vs_torch",
            "vs_ref"}
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


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    assert _bench.main(["--plot", str(tmp_path / "x.png"), "--sizes", "1"]) == 2
    assert "matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("argv", [["--sizes", "0"], ["--sizes", "1,x"], ["--sizes", "1.5"],
                                  ["--dtypes", "float16"], ["--repeat", "0"], ["--threads", "0"],
                                  ["--nope"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        _bench.main(argv)
    assert exc.value.code == 2


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
    assert [_bench.format_n(n) for n in (1, 10, 100, 1000, 2500, 10**7)] == \
        ["1", "10", "100", "1e3", "2500", "1e7"]
    assert _bench._sizes("1,1e3, 100000") == [1, 1000, 100000]


def test_ratios_and_table():
    recs = [{"op": "forward_out", "dtype": "float32", "n": 10**6, "impl": i, "median_s": t}
            for i, t in (("fastselu[cython]", 2e-4), ("torch", 8e-4), ("copy", 1e-4))]
    recs += [{"op": "inplace", "dtype": "float32", "n": 10**6, "impl": "fastselu[cython]",
              "median_s": 3e-4},
             {"op": "backward_out", "dtype": "float64", "n": 10, "impl": "fastselu[cython]",
              "median_s": 1e-6}]
    recs = _bench.add_ratios(recs)
    fs, torch, copy, inpl, bwd = recs
    assert fs["bytes"] == 2 * 4 * 10**6 and fs["gbps"] == pytest.approx(40.0)
    assert fs["vs_torch"] == pytest.approx(0.25) and fs["vs_ref"] == pytest.approx(2.0)
    assert torch["vs_torch"] == pytest.approx(1.0) and copy["vs_ref"] == pytest.approx(1.0)
    assert inpl["vs_torch"] is None and inpl["vs_ref"] == pytest.approx(3.0)  # ref: forward copy
    assert bwd["bytes"] == 3 * 8 * 10 and bwd["vs_torch"] is None and bwd["vs_ref"] is None

    lines = _bench.format_table(recs).splitlines()
    assert lines[0].split() == ["op", "dtype", "n", "impl", "time", "GB/s", "vs", "torch", "vs",
                                "ref"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["forward_out", "float32", "1e6", "fastselu[cython]", "200", "µs",
                                "40", "0.25x", "2.00x"]
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
        ("forward_out", "copy"), ("backward_out", "add")}
    # Every entry computes what its op says, and the backend is left as it was found.
    before = fastselu.get_backend()
    for dtype in _bench.DTYPES:
        _bench.check(impls, dtype, n=100)
    assert fastselu.get_backend() == before


def test_check_catches_a_wrong_call():
    bad = _bench.Impl("forward_out", "bogus", "peer", lambda d: lambda: d.o.__setitem__(..., d.x))
    with pytest.raises(RuntimeError, match="bogus"):
        _bench.check([bad], "float32", n=10)
