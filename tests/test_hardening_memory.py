"""Hardening: the SPEC's memory rules, reference leaks, and running out of memory.

SPEC: an out-of-place call allocates the result; an in-place call or one with out= allocates
nothing for native contiguous float32/float64 arrays; other layouts, float16 and byte-swapped
arrays use at most chunk-sized scratch (a few MB), never a full-size temporary; only an `out`
that partly overlaps the input may copy the input.  tracemalloc sees NumPy's data allocations.

tests/test_dtypes_layouts.py::test_scratch_memory_is_bounded checks selu() on five layouts at
2*10^6 elements; here: selu_backward (both modes), F order, negative strides, unaligned data,
mixed orders of input and out, the overlap copy and the no-copy cases next to it, the issue's
10^7-element sizes (slow), reference counts and memory growth over many calls, and failing
allocations (result, scratch, and OpenMP worker threads) under an address-space limit.
"""

import gc
import sys
import tracemalloc

import numpy as np
import pytest

import fastselu
from fastselu import _api, _config
from util import run_python, same_floats

BACKENDS = fastselu.available_backends()
DEFAULT = "cython" if "cython" in BACKENDS else BACKENDS[0]


def _backend_params():
    """The default backend in the quick suite, the others slow (the rules are the front end's;
    the backends only add their own scratch)."""
    return [pytest.param(b, id=b, marks=() if b == DEFAULT else pytest.mark.slow) for b in BACKENDS]


@pytest.fixture
def backend(request):
    """Select the backend; one kernel thread unless the test is slow (memory does not depend on
    the thread count, and 2-thread parallel regions per chunk crawl on an oversubscribed
    machine)."""
    previous, threads = fastselu.get_backend(), _config._num_threads
    fastselu.set_backend(request.param)
    if request.node.get_closest_marker("slow") is None:
        fastselu.set_num_threads(1)
    yield request.param
    fastselu.set_backend(previous)
    _config._num_threads = threads


each_backend = pytest.mark.parametrize("backend", _backend_params(), indirect=True)

KiB, MiB = 1 << 10, 1 << 20
N = 1 << 21  # 2 Mi elements: a full-size temporary (8-16 MiB) stands out from scratch


def scratch_limit(backend):
    """nditer buffers: at most 3 operands x CHUNK x 8 bytes (3 MiB); the NumPy backend adds its
    own blocks of 64 Ki wide elements (long double: 1 MiB each, a few at a time)."""
    base = 3 * _api.CHUNK * 8 + 256 * KiB
    return base + (5 * MiB if backend == "numpy" else 0)


def peak(fn):
    """Peak traced bytes during fn() (after one warm-up call: lazy imports, numba caches)."""
    fn()
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def values(n, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(n) * 4
    v[::5] = -np.abs(v[::5]) * 20
    return v.astype(dtype)


def layouts(n):
    """name -> input array of n elements (result dtype float64 unless float16/float32)."""
    raw = np.zeros(n * 8 + 1, np.uint8)
    unaligned = raw[1:].view(np.float64)
    unaligned[...] = values(n)
    two = values(2 * n)
    made = {
        "C f64": values(n),
        "F f64": np.asfortranarray(values(n).reshape(128, -1)),  # 128 divides 2^21 and 10^7
        "C f32": values(n, np.float32),
        "strided f64": two[::2],
        "negative f32": values(n, np.float32)[::-1],
        "byteswapped >f8": values(n, ">f8"),
        "float16": values(n, np.float16),
        "unaligned f64": unaligned,
        "int32": (values(n) * 100).astype(np.int32),
    }
    assert list(made) == LAYOUTS
    return made


LAYOUTS = [
    "C f64",
    "F f64",
    "C f32",
    "strided f64",
    "negative f32",
    "byteswapped >f8",
    "float16",
    "unaligned f64",
    "int32",
]


def result_dtype(x):
    return np.dtype(np.float64) if x.dtype.kind in "biu" else x.dtype.newbyteorder("=")


# ---- out of place: the result and nothing else --------------------------------------------------


@pytest.mark.parametrize("name", LAYOUTS)
@each_backend
def test_out_of_place_allocates_the_result_only(backend, name):
    x = layouts(N)[name]
    g = np.ones(x.shape, x.dtype)
    result_bytes = x.size * result_dtype(x).itemsize
    limit = scratch_limit(backend)
    for label, call in (
        ("selu", lambda: fastselu.selu(x)),
        ("backward_x", lambda: fastselu.selu_backward(g, x)),
        ("backward_y", lambda: fastselu.selu_backward(g, x, is_result=True)),
    ):
        p = peak(call)
        assert result_bytes <= p < result_bytes + limit, (
            f"{label} on {name}: peak {p / MiB:.1f} MiB for a {result_bytes / MiB:.1f} MiB result"
        )


# ---- in place and out=: nothing (native contiguous) or chunk-sized scratch --------------------


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@each_backend
def test_native_contiguous_in_place_and_out_allocate_nothing(backend, dtype, order):
    x = np.asarray(values(N, dtype).reshape(512, -1), order=order)
    g = np.asarray(values(N, dtype, seed=1).reshape(512, -1), order=order)
    out = np.empty_like(x)
    limit = 64 * KiB if backend != "numpy" else scratch_limit(backend)
    calls = {
        "selu out": lambda: fastselu.selu(x, out=out),
        "selu out=x": lambda: fastselu.selu(out, out=out),
        "selu_": lambda: fastselu.selu_(out),
        "SELU(inplace)": lambda: fastselu.SELU(inplace=True)(out),
        "backward_x out": lambda: fastselu.selu_backward(g, x, out=out),
        "backward_y out": lambda: fastselu.selu_backward(g, x, is_result=True, out=out),
        "backward out=g": lambda: fastselu.selu_backward(out, x, out=out),
        "backward out=x": lambda: fastselu.selu_backward(g, out, out=out),
    }
    for label, call in calls.items():
        p = peak(call)
        assert p < limit, f"{label}: {p / KiB:.0f} KiB allocated"


@pytest.mark.parametrize("name", [n for n in LAYOUTS if n not in ("C f64", "C f32", "int32")])
@each_backend
def test_other_layouts_use_chunk_sized_scratch(backend, name):
    x = layouts(N)[name]
    rdt = result_dtype(x)
    limit = scratch_limit(backend)
    out_c = np.empty(x.shape, rdt)  # C order (x may be F order)
    out_swapped = np.empty(x.shape, rdt.newbyteorder())  # the other byte order
    out_strided = np.empty(x.shape + (2,), rdt)[..., 0]  # every other element
    g = np.ones(x.shape, x.dtype)
    calls = {
        "in place": lambda: fastselu.selu_(x),
        "out C": lambda: fastselu.selu(x, out=out_c),
        "out byteswapped": lambda: fastselu.selu(x, out=out_swapped),
        "out strided": lambda: fastselu.selu(x, out=out_strided),
        "backward_x out": lambda: fastselu.selu_backward(g, x, out=out_c),
        "backward_y out=x": lambda: fastselu.selu_backward(g, x, is_result=True, out=x),
    }
    for label, call in calls.items():
        p = peak(call)
        assert p < limit, (
            f"{label} on {name}: {p / MiB:.2f} MiB of scratch (limit {limit / MiB:.2f})"
        )


@each_backend
def test_overlap_copies_at_most_the_input(backend):
    """Only an out that partly overlaps the input may copy the input first."""
    a = values(N + 1)
    x, out = a[:-1], a[1:]  # out one element ahead: a real partial overlap
    want = fastselu.selu(x.copy())
    p = peak(lambda: fastselu.selu(x, out=out))
    # (the warm-up call inside peak() changed a; the second call must still be right for its
    # own input, so recompute the expectation from a fresh copy)
    a = values(N + 1)
    x, out = a[:-1], a[1:]
    assert same_floats(fastselu.selu(x, out=out), want)
    assert p < x.nbytes + scratch_limit(backend), f"{p / MiB:.1f} MiB"


@each_backend
def test_interleaved_views_share_a_buffer_but_need_no_copy(backend):
    """x = a[::2], out = a[1::2]: the same buffer, no common element.  np.may_share_memory says
    yes, the exact test says no: no copy of the input is made."""
    a = values(2 * N)
    x, out = a[::2], a[1::2]
    x0 = x.copy()
    p = peak(lambda: fastselu.selu(x, out=out))
    assert p < scratch_limit(backend), f"{p / MiB:.1f} MiB: the input was copied"
    assert same_floats(out, fastselu.selu(x0)) and same_floats(x, x0)


@pytest.mark.slow
@pytest.mark.parametrize("name", LAYOUTS)
@each_backend
def test_ten_million_elements(backend, name):
    """The issue's sizes: 10^7 elements, every function and mode."""
    n = 10**7
    x = layouts(n)[name]
    rdt = result_dtype(x)
    result_bytes = n * rdt.itemsize
    limit = scratch_limit(backend)
    if backend != "numpy" and name in ("C f64", "C f32"):
        small = 64 * KiB  # native contiguous: nothing at all
    else:
        small = limit
    g = np.ones(x.shape, x.dtype)
    out = np.empty(x.shape, rdt)
    assert result_bytes <= peak(lambda: fastselu.selu(x)) < result_bytes + limit
    assert result_bytes <= peak(lambda: fastselu.selu_backward(g, x)) < result_bytes + limit
    same_layout = np.empty_like(x, dtype=rdt) if x.dtype == rdt else out
    assert peak(lambda: fastselu.selu(x, out=same_layout)) < small
    assert peak(lambda: fastselu.selu_backward(g, x, is_result=True, out=same_layout)) < small
    assert peak(lambda: fastselu.selu(x, out=out)) < limit
    if x.dtype.kind == "f":
        assert peak(lambda: fastselu.selu_(x)) < small


# ---- reference counts and growth over many calls --------------------------------------------


@each_backend
def test_no_reference_leaks(backend):
    """Every call path (fast path, chunked path, scalars, errors) leaves the reference counts of
    its arguments as they were: a leaked reference would keep every array alive forever."""
    x = values(1000)
    g = values(1000, seed=1)
    out = np.empty_like(x)
    xs = x[::2]
    f16 = x.astype(np.float16)
    bad_out = np.empty(999)

    def all_calls():
        fastselu.selu(x)
        fastselu.selu(x, out=out)
        fastselu.selu_(out)
        fastselu.selu(xs)
        fastselu.selu_(f16)
        fastselu.selu_backward(g, x)
        fastselu.selu_backward(g, x, out=out)
        fastselu.selu_backward(g, x, is_result=True)
        fastselu.selu_backward(g[::2], xs, is_result=True)
        fastselu.selu(x[0])
        fastselu.SELU()(x)
        for bad in (
            lambda: fastselu.selu(x, out=bad_out),
            lambda: fastselu.selu_backward(g, bad_out),
            lambda: fastselu.selu(x, out=out, inplace=True),
        ):
            try:
                bad()
            except (TypeError, ValueError):
                pass

    objects = (x, g, out, xs, f16, bad_out)
    all_calls()
    before = [sys.getrefcount(o) for o in objects]
    for _ in range(200):
        all_calls()
    after = [sys.getrefcount(o) for o in objects]
    assert after == before
    r = fastselu.selu(x)
    assert sys.getrefcount(r) == 2  # a fresh result: only `r` and getrefcount's argument


@each_backend
def test_many_calls_do_not_grow_memory(backend):
    x = values(5000, np.float32)
    xs = values(10_000)[::2]
    g = values(5000, np.float32)
    out = np.empty_like(x)

    def calls():
        for _ in range(50):
            fastselu.selu(x)
            fastselu.selu(xs)
            fastselu.selu(x, out=out)
            fastselu.selu_backward(g, x, is_result=True)
            fastselu.selu(np.float32(-1.0))
            try:
                fastselu.selu(x, out=out[:-1])
            except ValueError:
                pass

    calls()
    gc.collect()
    tracemalloc.start()
    try:
        calls()
        gc.collect()
        first = tracemalloc.get_traced_memory()[0]
        for _ in range(4):
            calls()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - first
    finally:
        tracemalloc.stop()
    assert grown < 64 * KiB, f"{grown / KiB:.0f} KiB kept after 1200 more calls"


# ---- out of memory ----------------------------------------------------------------------------

LIMITED = r"""
import resource, sys, threading
import numpy as np
import fastselu

fastselu.set_num_threads(2)


def vm_size():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024


def limit_address_space(extra):
    cur = vm_size() + extra
    resource.setrlimit(resource.RLIMIT_AS, (cur, resource.RLIM_INFINITY))

scenario = sys.argv[1]
x = np.linspace(-6, 6, 4_000_000, dtype=np.float32)    # 16 MB: threaded normally
want = fastselu.selu(x[:4096].copy())                    # small: no threads started yet
if scenario == "threads":
    # Everything the call needs is allocated; only an OpenMP worker's stack (8 MB of address
    # space) is not: the first threaded call must not take the process down.
    limit_address_space(1 << 20)
    try:
        fastselu.selu_(x)
        ok = np.array_equal(x[:4096], want)
        print("RESULT", "right" if ok else "wrong")
    except Exception as exc:
        print("RESULT exception", type(exc).__name__)
elif scenario == "result":
    # The result (16 MB, or 200 MB for the broadcast float16 input) cannot be allocated.
    original = x[:4096].copy()
    limit_address_space(4 << 20)
    try:  # qemu-user does not apply RLIMIT_AS to the guest (it would limit the emulator too)
        np.ones(64 << 20, dtype=np.uint8)
        print("RESULT limit not enforced")
        sys.exit(0)
    except MemoryError:
        pass
    calls = {
        "selu": lambda: fastselu.selu(x),
        "strided": lambda: fastselu.selu(x[::2]),
        "backward": lambda: fastselu.selu_backward(x, x),
        "float16": lambda: fastselu.selu(np.broadcast_to(np.float16(1), (10**8,))),
    }
    for name, call in calls.items():
        try:
            call()
            print(name, "no error?!")
        except MemoryError:
            print(name, "MemoryError")
    print("RESULT", "unchanged" if np.array_equal(x[:4096], original) else "modified")
"""


@pytest.mark.parametrize("backend_name", [b for b in fastselu.available_backends() if b != "numpy"])
def test_thread_creation_failure_is_not_fatal(backend_name):
    """Under an address-space limit (ulimit -v, uwsgi limit-as, ...) or a task limit
    (pids cgroup), the OS can refuse to create OpenMP worker threads.  GNU OpenMP then prints
    "libgomp: Thread creation failed" and exits the whole process.  fastselu must not take its
    host process down: run on fewer threads (right result) or raise a Python exception."""
    r = run_python(LIMITED, "threads", timeout=60, FASTSELU_BACKEND=backend_name)
    assert "Thread creation failed" not in r.stderr, (
        f"the process was killed by libgomp (exit {r.returncode}): {r.stderr.strip()[-300:]}"
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "RESULT right" in r.stdout or "RESULT exception" in r.stdout, r.stdout


@pytest.mark.parametrize("backend_name", _backend_params())
def test_failing_result_allocation_raises_memoryerror(backend_name):
    r = run_python(LIMITED, "result", timeout=60, FASTSELU_BACKEND=backend_name)
    assert r.returncode == 0, r.stderr[-2000:]
    if "RESULT limit not enforced" in r.stdout:
        pytest.skip("the address-space limit is not enforced here (qemu-user ignores RLIMIT_AS)")
    for name in ("selu", "strided", "backward", "float16"):
        assert f"{name} MemoryError" in r.stdout, r.stdout
    assert "RESULT unchanged" in r.stdout
