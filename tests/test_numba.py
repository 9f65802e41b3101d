"""The numba backend: bit parity with the compiled (cython) kernels, accuracy, the public API on
it, environment selection and fallback, fork safety and calls from many threads."""

import importlib
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

numba = pytest.importorskip("numba")

import fastselu  # noqa: E402
from fastselu._ulp import (  # noqa: E402
    exact_selu,
    exact_selu_backward,
    exact_selu_backward_result,
    hard_inputs,
    neighbours,
    ulp_error,
)
from util import LONGDOUBLE_IS_80BIT, fast_path_inputs, oracle_dtypes, run_python  # noqa: E402

NB = importlib.import_module("fastselu._backend_numba")
try:
    K = importlib.import_module("fastselu._kernels")
except ImportError:  # compiled backend not built: parity tests skip, the rest still run
    K = None
needs_cython = pytest.mark.skipif(
    K is None, reason="compiled backend (fastselu._kernels) not built"
)

# Enough elements for the parallel path with 2 threads (GRAIN elements per thread at least).
N_PAR = 3 * NB.GRAIN + 37

DTYPES = [np.float32, np.float64]
KINDS = ["forward", "backward_x", "backward_y"]
UINT = {
    np.dtype(np.float16): np.uint16,
    np.dtype(np.float32): np.uint32,
    np.dtype(np.float64): np.uint64,
}


# ---- inputs -------------------------------------------------------------------------------------


def hard_grads(dtype, size, seed=1, specials=True):
    """grad_output values: random over many magnitudes with both signs, and some specials."""
    dtype = np.dtype(dtype).type
    rng = np.random.default_rng(seed)
    info = np.finfo(dtype)
    e = rng.uniform(np.log(float(info.smallest_subnormal)), np.log(float(info.max)), size)
    with np.errstate(all="ignore"):
        g = (np.exp(e) * rng.choice([-1.0, 1.0], size)).astype(dtype)
    if specials:
        values = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan], dtype)
        idx = rng.integers(0, size, size // 50)
        g[idx] = rng.choice(values, idx.size)
    return g


def near_minus_sa(dtype, n=2000, seed=2):
    """y values near -SCALE*ALPHA, where y + SCALE*ALPHA cancels."""
    dtype = np.dtype(dtype).type
    return neighbours([-fastselu.SCALE * fastselu.ALPHA], dtype, n // 2)


def args_for(kind, x, g):
    if kind == "forward":
        return (x,)
    if kind == "backward_y":
        y = np.empty_like(x)
        NB.forward(x, y, 1)  # realistic y values, plus the cancellation region
        y = np.concatenate([y, near_minus_sa(x.dtype)])
        gg = np.resize(g, y.size)
        return gg, y
    return g, x


def call(module, kind, *arrays, nthreads=1, out=None):
    if out is None:
        out = np.empty_like(arrays[-1])
    getattr(module, kind)(*arrays, out, nthreads)
    return out


def same_bits(a, b):
    """Identical bits (both backends return every NaN as the default quiet NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    a, b = a.astype(a.dtype.newbyteorder("=")), b.astype(b.dtype.newbyteorder("="))
    return bool(np.array_equal(a.view(UINT[a.dtype]), b.view(UINT[b.dtype])))


def first_mismatch(a, b, *inputs):
    ua, ub = a.view(UINT[a.dtype]), b.view(UINT[b.dtype])
    bad = np.flatnonzero(ua != ub)
    if bad.size == 0:
        return "no mismatch"
    i = bad[0]
    return (
        f"{bad.size} mismatches; first at inputs {[float(v[i]) for v in inputs]}: "
        f"{float(a[i])!r} vs {float(b[i])!r}"
    )


# ---- bit parity with the compiled backend -------------------------------------------------------


@needs_cython
@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bit_parity_with_cython(dtype, kind, nthreads):
    x = hard_inputs(dtype)
    g = hard_grads(dtype, x.size)
    args = args_for(kind, x, g)
    got = call(NB, kind, *args, nthreads=nthreads)
    want = call(K, kind, *args, nthreads=1)
    assert same_bits(got, want), first_mismatch(got, want, *args)


@needs_cython
@pytest.mark.parametrize("dtype", DTYPES)
def test_bit_parity_backward_fast_path(dtype):
    """Data without hard x (x >= -80 in float32, x > -700 in float64), so that whole blocks take
    the backward's table-driven fast path; then one hard element among them."""
    g, x = fast_path_inputs(dtype, n=6000, seed=4)
    for gi, xi in ((1.0, 2.0), (0.0, -1.0), (np.nan, -1.0), (1.0, -750.0)):
        g[1234], x[1234] = gi, xi
        got = call(NB, "backward_x", g, x)
        want = call(K, "backward_x", g, x)
        assert same_bits(got, want), first_mismatch(got, want, g, x)


@needs_cython
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bit_parity_parallel_path(dtype, kind, monkeypatch):
    """Arrays large enough for the parallel kernels (checked: it really runs threaded)."""
    x = np.resize(hard_inputs(dtype), N_PAR)
    g = hard_grads(dtype, N_PAR)
    args = args_for(kind, x, g)
    launched = []
    real = NB._call_parallel
    monkeypatch.setattr(
        NB, "_call_parallel", lambda kernel, a, nt: (launched.append(nt), real(kernel, a, nt))
    )
    got = call(NB, kind, *args, nthreads=2)
    assert launched == [2] or NB._MAX_THREADS < 2 or NB._in_forked_child
    want = call(K, kind, *args, nthreads=2)
    assert same_bits(got, want), first_mismatch(got, want, *args)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_serial_and_parallel_agree(dtype, kind):
    x = np.resize(hard_inputs(dtype, n=20_000), N_PAR)
    g = hard_grads(dtype, N_PAR)
    args = args_for(kind, x, g)
    one = call(NB, kind, *args, nthreads=1)
    for nt in (2, 3, 8):
        assert same_bits(call(NB, kind, *args, nthreads=nt), one), nt


@pytest.mark.parametrize("n", [N_PAR, 1000])
@pytest.mark.parametrize("dtype", DTYPES)
def test_aliasing_cases(dtype, n):
    """out may be x, g, or both, and g may be x: every case gives the out-of-place bits, also
    where a block holds a hard element (whose block the kernels redo)."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(n) * 8).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    x[[5, n // 2]] = np.nan, -np.inf
    g[n // 3] = np.inf
    for nt in (1, 2):
        want = call(NB, "forward", x, nthreads=nt)
        a = x.copy()
        NB.forward(a, a, nt)
        assert same_bits(a, want)
        for kind in ("backward_x", "backward_y"):
            want = call(NB, kind, g, x, nthreads=nt)
            a, b = g.copy(), x.copy()
            getattr(NB, kind)(a, b, a, nt)  # out is g
            assert same_bits(a, want), kind
            a, b = g.copy(), x.copy()
            getattr(NB, kind)(a, b, b, nt)  # out is x
            assert same_bits(b, want), kind
            want = call(NB, kind, x, x, nthreads=nt)
            a = x.copy()
            assert same_bits(call(NB, kind, a, a, nthreads=nt), want), kind  # g is x
            getattr(NB, kind)(a, a, a, nt)  # all three the same buffer
            assert same_bits(a, want), kind


def test_readonly_inputs():
    x = np.linspace(-5, 5, 1001)
    want = call(NB, "forward", x)
    x.flags.writeable = False
    assert same_bits(call(NB, "forward", x), want)
    assert same_bits(call(NB, "backward_x", x, x), call(NB, "backward_x", x.copy(), x.copy()))


def test_empty_arrays():
    for dtype in DTYPES:
        e = np.empty(0, dtype)
        NB.forward(e, e, 4)
        NB.backward_x(e, e, e, 4)
        NB.backward_y(e, e, e, 4)


# ---- accuracy against the exact function --------------------------------------------------------


@pytest.mark.parametrize("dtype", oracle_dtypes(*DTYPES))
def test_accuracy_bounds(dtype):
    """SPEC bounds for every x and finite nonzero grad_output (special g: the next test)."""
    x = hard_inputs(dtype)
    g = hard_grads(dtype, x.size, specials=False)
    one = np.ones_like(x)
    y = call(NB, "forward", x)
    assert ulp_error(y, exact_selu(x), dtype).max() <= 1.0
    err = ulp_error(call(NB, "backward_x", one, x), exact_selu_backward(one, x), dtype)
    assert err.max() <= 1.0
    assert ulp_error(call(NB, "backward_x", g, x), exact_selu_backward(g, x), dtype).max() <= 1.5
    yy = np.concatenate([y, near_minus_sa(dtype)])
    gg = np.resize(g, yy.size)
    one = np.ones_like(yy)
    # Long double's SCALE*ALPHA (64 bits) is not exact enough for float64 right at y = -SA (the
    # mpmath check in fastselu.check covers that); elsewhere it is.
    if np.dtype(dtype) == np.float64:
        sa = np.longdouble(fastselu.SCALE) * np.longdouble(fastselu.ALPHA)
        with np.errstate(invalid="ignore"):
            keep = ~(np.abs(yy.astype(np.longdouble) + sa) < 1e-12)
        yy, gg, one = yy[keep], gg[keep], one[keep]
    err1 = ulp_error(call(NB, "backward_y", one, yy), exact_selu_backward_result(one, yy), dtype)
    errg = ulp_error(call(NB, "backward_y", gg, yy), exact_selu_backward_result(gg, yy), dtype)
    assert err1.max() <= 1.0
    assert errg.max() <= 1.5


SPECIAL_G = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 1e-310, 1e300, 3e38]
SPECIAL_X = [
    -np.inf,
    -3000.0,
    -800.0,
    -745.2,
    -100.0,
    -1.0,
    -0.1,
    -1e-320,
    -0.0,
    0.0,
    1e-320,
    1.0,
    1e300,
    np.inf,
    np.nan,
    -1.7580993408473768,
    -1.7580993,
    -1.0507,
]


@pytest.mark.parametrize("kind", ["backward_x", "backward_y"])
@pytest.mark.parametrize("dtype", oracle_dtypes(*DTYPES))
def test_special_grads(dtype, kind):
    """grad_output in {+-0, +-inf, NaN, ...} against every special x (or y): NaN where the exact
    value is NaN, infinities and signed zeros as the exact product has them."""
    with np.errstate(over="ignore"):  # 1e300 -> inf in float32
        gs, xs = np.array(SPECIAL_G, dtype), np.array(SPECIAL_X, dtype)
    g, x = (a.ravel() for a in np.meshgrid(gs, xs))
    exact = exact_selu_backward if kind == "backward_x" else exact_selu_backward_result
    for backend in (NB, K) if K is not None else (NB,):
        got = call(backend, kind, g, x)
        err = ulp_error(got, exact(g, x), dtype)
        bad = np.flatnonzero(err > 1.5)
        assert bad.size == 0, [(float(g[i]), float(x[i]), float(got[i])) for i in bad]


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -1e4], dtype)
    y = call(NB, "forward", x)
    canonical = np.array([np.nan], dtype).view(UINT[np.dtype(dtype)])[0]  # default quiet NaN
    payload = np.array([-np.nan], dtype).view(UINT[np.dtype(dtype)]) | 0x3  # negative, payload
    weird = payload.view(dtype)
    for kind in KINDS:
        r = call(NB, kind, *((weird,) if kind == "forward" else (weird, weird)))
        # forward passes on its one input's (quiet) NaN; backward results are canonical
        want = payload[0] if kind == "forward" else canonical
        assert r.view(UINT[np.dtype(dtype)])[0] == want, kind
    sa = np.dtype(dtype).type(float.fromhex("0x1.c212cc640f031p+0"))  # SA rounded once
    assert np.isnan(y[0]) and y[1] == np.inf and y[2] == -sa and y[5] == -sa
    assert y[3] == 0 and not np.signbit(y[3]) and y[4] == 0 and np.signbit(y[4])
    d = call(NB, "backward_x", np.ones_like(x), x)
    assert np.isnan(d[0]) and d[1] == np.dtype(dtype).type(fastselu.SCALE) and d[2] == 0
    assert d[3] == sa and d[4] == sa  # SELU'(0) = SCALE*ALPHA
    big = np.array([np.finfo(dtype).max], dtype)
    assert call(NB, "forward", big)[0] == np.inf
    below = np.array([np.finfo(dtype).max / np.dtype(dtype).type(fastselu.SCALE)], dtype)
    assert np.isfinite(call(NB, "forward", np.nextafter(below, 0))[0])


def test_floating_point_flags_untouched():
    if not sys.platform.startswith("linux"):
        pytest.skip("uses glibc's fetestexcept")
    import ctypes

    libm = ctypes.CDLL("libm.so.6")
    fe_all = 0x3D if os.uname().machine in ("x86_64", "i686") else 0x1F
    x = np.array([-1e4, 3e38, np.nan, -1e-40, 0.5, -745.5, 1e300] * 1000, dtype=np.float64)
    for dtype in DTYPES:
        with np.errstate(over="ignore"):
            xx = x.astype(dtype)
        for kind in KINDS:
            args = (xx,) if kind == "forward" else (xx, xx)
            call(NB, kind, *args)  # compile first: compiling may raise flags of its own
            libm.feclearexcept(fe_all)
            call(NB, kind, *args)
            assert libm.fetestexcept(fe_all) == 0, (dtype, kind)


def test_info():
    info = NB.info()
    assert info["simd"] is None or info["simd"] in ("avx512", "avx2", "neon", "sve", "baseline")
    assert isinstance(info["openmp"], bool)
    assert isinstance(info["threading_layer"], str)
    call(NB, "forward", np.zeros(N_PAR), nthreads=2)
    if NB._MAX_THREADS >= 2:
        assert NB.info()["threading_layer"] in ("omp", "tbb", "workqueue")


# ---- the public API on this backend -------------------------------------------------------------


@pytest.fixture
def numba_backend():
    previous = fastselu.get_backend()
    fastselu.set_backend("numba")
    try:
        yield
    finally:
        fastselu.set_backend(previous)


def test_numba_is_listed_and_used_by_the_shared_suites():
    assert "numba" in fastselu.available_backends()
    conftest = sys.modules.get("conftest")
    if conftest is not None and hasattr(conftest, "BACKENDS"):
        assert "numba" in conftest.BACKENDS  # the `backend` fixture runs the shared suites on it


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, ">f4", np.int32])
def test_public_api_layouts(numba_backend, dtype):
    rng = np.random.default_rng(4)
    base = (rng.standard_normal((64, 70)) * 6).astype(dtype)
    ref_mod = "cython" if K is not None else "numpy"
    for x in (base, np.asfortranarray(base), base[::2, 1::3], base[::-1, ::-2], base.T):
        got = fastselu.selu(x)
        gx = fastselu.selu_backward(x, x)
        gy = fastselu.selu_backward(x, got, is_result=True)
        fastselu.set_backend(ref_mod)
        try:
            want = fastselu.selu(x)
            wgx = fastselu.selu_backward(x, x)
            wgy = fastselu.selu_backward(x, want, is_result=True)
        finally:
            fastselu.set_backend("numba")
        if ref_mod == "cython":
            assert same_bits(got, want) and same_bits(gx, wgx) and same_bits(gy, wgy)
        elif got.dtype != np.float64 or LONGDOUBLE_IS_80BIT:  # the oracle is long double
            rdt = got.dtype
            assert ulp_error(got, exact_selu(np.asarray(x, rdt)), rdt).max() <= 1.0
        if np.dtype(dtype).kind == "f":
            c = np.array(x, copy=True)
            assert fastselu.selu_(c) is c and same_bits(c.astype(got.dtype), got)


def test_public_api_large_parallel(numba_backend, restore_threads):
    fastselu.set_num_threads(2)
    x = np.random.default_rng(5).standard_normal((600, 500)).astype(np.float32)
    y = fastselu.selu(x)
    assert y.shape == x.shape and y.dtype == np.float32
    fastselu.set_num_threads(1)
    assert same_bits(fastselu.selu(x), y)
    out = np.empty_like(x)
    assert fastselu.selu(x, out=out) is out and same_bits(out, y)
    assert same_bits(fastselu.SELU()(x), y)


# ---- selection, fallback and on-disk cache (subprocesses) ---------------------------------------


def test_environment_selects_numba(tmp_path):
    r = run_python(
        """
        import sys, numpy as np, fastselu
        print(fastselu.get_backend(), "numba" in sys.modules, fastselu.selu(np.float32(-1.0)))
    """,
        cwd=tmp_path,
        FASTSELU_BACKEND="numba",
    )
    assert r.returncode == 0, r.stderr
    want = call(NB, "forward", np.array([-1.0], np.float32))[0]
    assert r.stdout.split() == ["numba", "True", str(want)]


def test_environment_numba_results(tmp_path):
    out = tmp_path / "y.npy"
    r = run_python(
        f"""
        import numpy as np, fastselu
        x = np.linspace(-30, 30, 200_001)
        np.save({str(out)!r}, fastselu.selu(x))
        print(fastselu.get_backend())
    """,
        cwd=tmp_path,
        FASTSELU_BACKEND="numba",
        FASTSELU_NUM_THREADS="2",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "numba"
    x = np.linspace(-30, 30, 200_001)
    assert same_bits(np.load(out), call(NB, "forward", x))


BLOCK_KERNELS = """
import sys, warnings
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "fastselu._kernels":
            raise ImportError("simulated: compiled extension unavailable")
        return None
sys.meta_path.insert(0, _Block())
"""


def test_falls_back_to_numba_with_a_warning(tmp_path):
    r = run_python(
        BLOCK_KERNELS
        + """
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastselu
import numpy as np
msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
print(fastselu.get_backend())
print(len(msgs) == 1 and "numba" in msgs[0] and "simulated" in msgs[0])
print(float(fastselu.selu(np.float64(-1.0))))
""",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[:2] == ["numba", "True"], r.stdout + r.stderr
    assert float(lines[2]) == float(call(NB, "forward", np.array([-1.0]))[0])


def test_warm_cache_loads_without_compiling(tmp_path):
    """A second process finds the compiled kernels in numba's on-disk cache."""
    code = """
        import time, numpy as np
        t = time.perf_counter()
        import fastselu
        fastselu.set_backend("numba")
        fastselu.selu(np.ones(10**6, np.float32))
        t = time.perf_counter() - t
        from fastselu import _backend_numba as B
        stats = [B._kernel("forward", "float32", p).stats for p in (False, True)]
        print(sum(len(s.cache_misses) for s in stats), sum(len(s.cache_hits) for s in stats), t)
    """
    first = run_python(code, cwd=tmp_path, FASTSELU_NUM_THREADS="2")
    assert first.returncode == 0, first.stderr
    second = run_python(code, cwd=tmp_path, FASTSELU_NUM_THREADS="2")
    assert second.returncode == 0, second.stderr
    misses, hits, seconds = second.stdout.split()
    assert int(misses) == 0 and int(hits) >= 1, second.stdout
    print("warm-cache first result:", seconds, "s")


# ---- fork and threads ---------------------------------------------------------------------------

FORK_SCRIPT = """
import multiprocessing as mp, os, numpy as np, fastselu
from fastselu import _backend_numba as B
fastselu.set_backend("numba")
fastselu.set_num_threads(2)
x = np.random.default_rng(0).standard_normal(1_000_000)
want = fastselu.selu(x)                      # parallel kernels in the parent first
gwant = fastselu.selu_backward(x, x)

def work(_):
    x32 = x.astype(np.float32)
    ok = np.array_equal(fastselu.selu(x), want)
    ok = ok and np.array_equal(fastselu.selu_backward(x, x), gwant)
    ok = ok and np.array_equal(fastselu.selu(x32), fastselu.selu(x32))
    return bool(ok) and B._in_forked_child

pid = os.fork()
if pid == 0:
    os._exit(0 if work(0) else 3)
_, status = os.waitpid(pid, 0)
print("fork", os.waitstatus_to_exitcode(status))
with mp.get_context("fork").Pool(2) as pool:
    print("pool", all(pool.map(work, range(4))))
print("parent", np.array_equal(fastselu.selu(x), want), B._in_forked_child)
"""


@pytest.mark.parametrize("layer", ["default", "workqueue"])
def test_forked_children_after_parallel_kernels(tmp_path, layer):
    r = run_python(FORK_SCRIPT, cwd=tmp_path, timeout=240, NUMBA_THREADING_LAYER=layer)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["fork", "0", "pool", "True", "parent", "True", "False"], r.stderr


def _hammer(n_threads=16, n=150_000, rounds=3):
    """n_threads Python threads calling every kernel at once on their own arrays."""
    rng = np.random.default_rng(6)
    errors = []
    barrier = threading.Barrier(n_threads)

    def worker(i):
        try:
            dtype = DTYPES[i % 2]
            x = (
                (rng.standard_normal(n) * 5).astype(dtype)
                if i == 0
                else (np.random.default_rng(i).standard_normal(n) * 5).astype(dtype)
            )
            g = np.random.default_rng(100 + i).standard_normal(n).astype(dtype)
            want = [
                call(NB, "forward", x),
                call(NB, "backward_x", g, x),
                call(NB, "backward_y", g, x),
            ]
            barrier.wait()
            for _ in range(rounds):
                got = [
                    call(NB, "forward", x, nthreads=2),
                    call(NB, "backward_x", g, x, nthreads=2),
                    call(NB, "backward_y", g, x, nthreads=2),
                ]
                if not all(same_bits(a, b) for a, b in zip(got, want)):
                    errors.append(f"thread {i}: wrong result")
        except Exception as exc:  # noqa: BLE001  # pragma: no cover - reported below
            errors.append(f"thread {i}: {exc!r}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_sixteen_threads_at_once():
    assert _hammer() == []


@pytest.mark.parametrize("layer", ["workqueue", "omp"])
def test_sixteen_threads_per_threading_layer(tmp_path, layer):
    """In a subprocess (a layer that is not thread-safe aborts the whole process)."""
    here = str(Path(__file__).resolve().parent)
    r = run_python(
        f"""
        import sys
        sys.path.insert(0, {here!r})
        import test_numba as t
        print(t._hammer(rounds=2), t.NB.threading_layer())
    """,
        cwd=tmp_path,
        timeout=240,
        NUMBA_THREADING_LAYER=layer,
    )
    if r.returncode != 0 and layer == "omp" and "omp" in r.stderr and "ValueError" in r.stderr:
        pytest.skip("numba's omp layer is not available here")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["[]", layer], r.stdout + r.stderr


@pytest.mark.parametrize("layer", ["workqueue", "omp"])
def test_info_reports_the_threading_layer(tmp_path, layer):
    """info()['openmp'] is true only under numba's OpenMP layer; 'parallel' under any."""
    r = run_python(
        """
        import numpy as np
        from fastselu import _backend_numba as B
        x = np.linspace(-9, 9, 4 * B.GRAIN)
        B.forward(x, np.empty_like(x), 2)
        info = B.info()
        print(info["threading_layer"], info["openmp"], info["parallel"])
    """,
        cwd=tmp_path,
        NUMBA_THREADING_LAYER=layer,
        FASTSELU_NUM_THREADS="2",
    )
    if r.returncode != 0 and layer == "omp" and "omp" in r.stderr:
        pytest.skip("numba's omp layer is not available here")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [layer, str(layer == "omp"), "True"], r.stdout + r.stderr


def test_missing_threading_layer_runs_serially(tmp_path):
    import importlib.util

    if importlib.util.find_spec("tbb") is not None:
        pytest.skip("TBB is installed here")
    r = run_python(
        """
        import warnings, numpy as np
        from fastselu import _backend_numba as B
        x = np.linspace(-9, 9, 200_001)
        o = np.empty_like(x)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            B.forward(x, o, 2)
            B.forward(x, o, 2)
        want = np.empty_like(x)
        B.forward(x, want, 1)
        print(len(w), np.array_equal(o, want), B.info()["openmp"])
    """,
        cwd=tmp_path,
        NUMBA_THREADING_LAYER="tbb",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "True", "False"]


def test_works_without_a_writable_cache_directory(tmp_path):
    """numba refuses cache=True when no cache directory is writable: compile without caching."""
    r = run_python(
        """
        import numpy as np
        import numba.core.caching as caching
        impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
        if not hasattr(impl, "_locator_classes"):
            print("SKIP")
            raise SystemExit
        impl._locator_classes = []  # numba internals: as if no cache directory were writable
        from fastselu import _backend_numba as B
        x = np.linspace(-5, 5, 1001, dtype=np.float32)
        o = np.empty_like(x)
        B.forward(x, o, 1)
        print(repr(float(o[0])))
    """,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    if r.stdout.strip() == "SKIP":
        pytest.skip("this numba version arranges its cache locators differently")
    want = call(NB, "forward", np.linspace(-5, 5, 1001, dtype=np.float32))[0]
    assert float(r.stdout.split()[-1]) == float(want)
