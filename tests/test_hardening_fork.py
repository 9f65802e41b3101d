"""Hardening: children made by fork (os.fork, multiprocessing 'fork'), forkserver and spawn.

GNU OpenMP cannot rebuild its thread pool in a child created by fork(): a child that enters a
parallel region after the parent used one may hang forever (FACTS.md).  The SPEC's answer is that
such a child runs kernels on one thread and still returns right results.  Every scenario here runs
in a fresh interpreter under a timeout, with a watchdog inside as well, so a hang is reported as a
failure and never blocks the suite.

In every scenario the parent first runs threaded kernels (set_num_threads(2), arrays of 10^6
elements, far above the one-thread threshold), then its children compute every public function on
the fast path (plain C-contiguous float arrays) and on the chunked path (strided, byte-swapped,
float16).  Each child's results must be bit-for-bit those of the parent (SPEC: identical whatever
the thread count) and within 1 ULP-ish of the NumPy reference backend.  The test for the plain
os.fork forward case of tests/test_threads_config.py is not repeated here.
"""

import json

import pytest

import fastselu
from util import run_python

BACKENDS = fastselu.available_backends()
DEFAULT = "cython" if "cython" in BACKENDS else BACKENDS[0]


def _backend_params():
    """The default backend runs in the quick suite; the others (each scenario is a fresh
    interpreter that must import numba or run the slow NumPy reference) are marked slow."""
    return [pytest.param(b, id=b, marks=() if b == DEFAULT else pytest.mark.slow) for b in BACKENDS]


SCRIPT = r'''
import hashlib, json, os, pickle, signal, sys, threading, time
import multiprocessing as mp
import numpy as np
import fastselu
from fastselu import _backend_numpy as REF, _config

N = 262_147              # 8 x 32768 and more: threaded in a normal process (fast and chunked)
WATCHDOG_S = 40          # a hung child is killed and reported long before run_python's timeout


def data(seed, n=N, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * 6
    x[::7] = rng.uniform(-120, 0, x[::7].size)      # the saturating tail of the negative branch
    return x.astype(dtype)


def digest(a):
    a = np.ascontiguousarray(a)
    return hashlib.sha256(a.dtype.str.encode() + repr(a.shape).encode() + a.tobytes()).hexdigest()


def ulp_key(a):
    """Monotone integer key of float bits: adjacent floats differ by 1."""
    a = np.ascontiguousarray(a)
    it = {2: np.int16, 4: np.int32, 8: np.int64}[a.dtype.itemsize]
    i = a.view(it).astype(object)
    imin = int(np.iinfo(it).min)
    return np.array([v if v >= 0 else imin - v for v in i.ravel()], dtype=object)


def max_ulp_distance(got, want, sample=4001):
    """Max distance in ULPs on an evenly spaced sample (object arithmetic: no overflow)."""
    got, want = np.asarray(got).ravel(), np.asarray(want).ravel()
    idx = np.linspace(0, got.size - 1, min(sample, got.size)).astype(np.int64)
    g, w = got[idx], want[idx]
    nan = np.isnan(g) | np.isnan(w)
    if (np.isnan(g) != np.isnan(w)).any():
        return float("inf")
    g, w = g[~nan], w[~nan]
    if g.size == 0:
        return 0
    return int(max(abs(p - q) for p, q in zip(ulp_key(g), ulp_key(w))))


def reference_forward(x):
    rdt = x.dtype.newbyteorder("=")
    cdt = np.float32 if rdt == np.float16 else rdt
    flat = np.ascontiguousarray(x, dtype=cdt).ravel()
    out = np.empty_like(flat)
    REF.forward(flat, out, 1)
    with np.errstate(over="ignore"):
        return out.astype(rdt).reshape(x.shape)


def reference_backward(g, x, is_result=False):
    flat_g, flat_x = np.ascontiguousarray(g).ravel(), np.ascontiguousarray(x).ravel()
    out = np.empty_like(flat_x)
    (REF.backward_y if is_result else REF.backward_x)(flat_g, flat_x, out, 1)
    return out.reshape(x.shape)


def workload(seed):
    """Every public function on both paths; returns thread counts, digests, reference errors."""
    x = data(seed)
    x64 = data(seed + 1, n=N // 2, dtype=np.float64)
    g = data(seed + 2)
    y = fastselu.selu(x)
    results = {
        "selu_f32": y,
        "selu_f64": fastselu.selu(x64),
        "selu_inplace": fastselu.selu_(x.copy()),
        "selu_out": fastselu.selu(x, out=np.empty_like(x)),
        "module": fastselu.SELU()(x64),
        "backward_x": fastselu.selu_backward(g, x),
        "backward_y": fastselu.selu_backward(g, y, is_result=True),
        "backward_out": fastselu.selu_backward(g, x, out=g.copy()),
        # the chunked (nditer) path
        "strided": fastselu.selu(x[::3]),
        "byteswapped": fastselu.selu(x.astype(">f4")),
        "float16_inplace": fastselu.selu_(x.astype(np.float16)),
        "backward_strided": fastselu.selu_backward(g[::-2], x[::2], is_result=True),
    }
    errors = {
        "selu_f32": max_ulp_distance(results["selu_f32"], reference_forward(x)),
        "selu_f64": max_ulp_distance(results["selu_f64"], reference_forward(x64)),
        "strided": max_ulp_distance(results["strided"], reference_forward(x[::3])),
        "backward_x": max_ulp_distance(results["backward_x"], reference_backward(g, x)),
        "backward_y": max_ulp_distance(results["backward_y"], reference_backward(g, y, True)),
    }
    threads_before = fastselu.get_num_threads()
    fastselu.set_num_threads(2)          # asking for more must not undo the fork rule
    threads_after = fastselu.get_num_threads()
    return {"pid": os.getpid(), "threads": threads_before, "threads_after_set": threads_after,
            "digests": {k: digest(v) for k, v in results.items()}, "errors": errors}


def run_child_with_watchdog(fn):
    """os.fork(): run fn() in the child, return its result or {'hang': True} after WATCHDOG_S."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            payload = pickle.dumps(("ok", fn()))
        except BaseException as exc:
            payload = pickle.dumps(("error", repr(exc)))
        with os.fdopen(w, "wb") as f:
            f.write(payload)
        os._exit(0)
    os.close(w)
    deadline = time.monotonic() + WATCHDOG_S
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
        return {"hang": True}
    with os.fdopen(r, "rb") as f:
        data_ = f.read()
    if not data_:
        return {"crash": os.waitstatus_to_exitcode(status)}
    kind, value = pickle.loads(data_)
    return value if kind == "ok" else {"error": value}


def pool_map(method, seeds, preload=None):
    ctx = mp.get_context(method)
    if preload is not None:
        ctx.set_forkserver_preload(preload)
    with ctx.Pool(2) as pool:
        try:
            return pool.map_async(workload, seeds).get(timeout=WATCHDOG_S)
        except mp.TimeoutError:
            pool.terminate()
            return [{"hang": True}]


def main():
    scenario = sys.argv[1]
    fastselu.set_num_threads(2)
    warm = data(9, n=2_000_000)        # threaded kernels in the parent (10^6 elements and more)
    fastselu.selu_backward(warm, fastselu.selu(warm), is_result=True)
    parent = workload(0)               # more threaded kernels, and the expected bits
    assert parent["threads"] == 2, parent["threads"]
    out = {"parent": parent, "cpus": _config.available_cpus(), "backend": fastselu.get_backend()}
    if scenario == "os_fork":
        out["children"] = [run_child_with_watchdog(lambda: workload(0))]
        # a grandchild: forked from a forked child
        out["children"].append(run_child_with_watchdog(
            lambda: run_child_with_watchdog(lambda: workload(0))))
    elif scenario in ("fork", "forkserver", "spawn"):
        out["children"] = pool_map(scenario, [0, 0])
    elif scenario == "forkserver_preload":
        out["children"] = pool_map("forkserver", [0, 0], preload=["fastselu"])
    elif scenario == "fork_during_kernel":
        # Fork while another thread is inside threaded kernels (a parallel region in flight).
        stop = threading.Event()
        big = data(5, n=4 * N)

        def busy():
            while not stop.is_set():
                fastselu.selu(big)
                fastselu.selu_backward(big, big)
        t = threading.Thread(target=busy, daemon=True)
        t.start()
        time.sleep(0.05)
        out["children"] = []
        for _ in range(3):
            out["children"].append(run_child_with_watchdog(lambda: workload(0)))
            time.sleep(0.003)
        stop.set()
        t.join()
    else:
        raise SystemExit("unknown scenario " + scenario)
    out["parent_after"] = {"threads": fastselu.get_num_threads(),
                           "digests": workload(0)["digests"]}
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
'''


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    # A file, not `python -c`: spawn and forkserver children import the worker from __main__.
    path = tmp_path_factory.mktemp("fork") / "fork_worker.py"
    path.write_text(SCRIPT)
    return str(path)


def run_scenario(script, scenario, backend, timeout=90):
    r = run_python(None, script, scenario, timeout=timeout, FASTSELU_BACKEND=backend)
    assert r.returncode == 0, f"{scenario}/{backend} exited {r.returncode}:\n{r.stderr[-3000:]}"
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, r.stdout[-2000:] + r.stderr[-2000:]
    out = json.loads(line[-1][len("RESULT ") :])
    assert out["backend"] == backend
    return out


def check_children(out, expected_threads):
    parent = out["parent"]
    for name, err in parent["errors"].items():
        assert err <= 2, f"parent {name}: {err} ULP from the NumPy reference"
    assert out["children"], "no child reported"
    for child in out["children"]:
        assert "hang" not in child, "a child hung (killed by the watchdog)"
        assert "crash" not in child and "error" not in child, child
        assert child["pid"] != parent["pid"]
        assert child["threads"] == expected_threads, child["threads"]
        if expected_threads == 1:
            assert child["threads_after_set"] == 1  # set_num_threads cannot undo the fork rule
        mismatched = [k for k, v in parent["digests"].items() if child["digests"][k] != v]
        assert not mismatched, f"child results differ from the parent's: {mismatched}"
        for name, err in child["errors"].items():
            assert err <= 2, f"child {name}: {err} ULP from the NumPy reference"
    # the parent keeps its threads and its results after forking
    assert out["parent_after"]["threads"] == 2
    assert out["parent_after"]["digests"] == parent["digests"]


@pytest.mark.parametrize("backend", _backend_params())
def test_os_fork_child_and_grandchild(script, backend):
    out = run_scenario(script, "os_fork", backend)
    check_children(out, expected_threads=1)
    assert len(out["children"]) == 2


@pytest.mark.parametrize("backend", _backend_params())
def test_multiprocessing_fork_pool(script, backend):
    out = run_scenario(script, "fork", backend)
    check_children(out, expected_threads=1)


@pytest.mark.parametrize("backend", _backend_params())
def test_fork_while_another_thread_runs_threaded_kernels(script, backend):
    out = run_scenario(script, "fork_during_kernel", backend)
    check_children(out, expected_threads=1)
    assert len(out["children"]) == 3


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
@pytest.mark.parametrize("backend", _backend_params())
def test_forkserver_and_spawn_children_get_full_threads(script, backend, method):
    out = run_scenario(script, method, backend)
    # A fresh interpreter: the default thread count (CPUs available), threaded kernels.
    check_children(out, expected_threads=out["cpus"])


@pytest.mark.parametrize("backend", _backend_params())
def test_forkserver_with_fastselu_preloaded(script, backend):
    """set_forkserver_preload(['fastselu']): the server imports fastselu (but never runs a
    kernel) and forks the workers.  They must be right and must not hang.  They run on one
    thread: fastselu cannot know whether another library in the server used the same libgomp
    before forking, so every fork child is single-threaded (conservative, documented choice)."""
    out = run_scenario(script, "forkserver_preload", backend)
    check_children(out, expected_threads=1)
