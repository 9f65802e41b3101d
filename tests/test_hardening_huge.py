"""Hardening: arrays of more than 2^31 elements (SPEC: "Arrays with more than 2^31 elements work").

A 32-bit element count or index anywhere (a kernel loop, a thread's chunk bounds, a byte offset
computed in int, an nditer chunk count) would show up as wrong or untouched elements at or past
index 2^31, or as a crash.  Each test allocates at most ~8.6 GB (one array at a time, freed at the
end) and is skipped when the machine has less than 12 GiB available.  Only a few regions are
filled with known values (start, end, around 2^31, around the threads' chunk boundaries); the
kernels still read and write every element.  All slow.
"""

import gc
import os

import numpy as np
import pytest

import fastselu

# one worker at a time under pytest-xdist (.ci/run): two of these at once could exhaust memory
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("huge")]

GiB = 1 << 30
NEED = 12 * GiB
BIG = 2**31 + 2**20 + 17  # odd length: the kernels' vector tails run too
W = 4096  # width of each checked region


def available_memory():
    """MemAvailable (or free pages), capped by a cgroup memory limit if one is set."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return 0
    for path, used_path in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            with open(path) as f:
                limit = f.read().strip()
            with open(used_path) as f:
                used = int(f.read().strip())
        except OSError:
            continue
        if limit.isdigit():
            avail = min(avail, int(limit) - used)
    return avail


@pytest.fixture(autouse=True)
def enough_memory():
    gc.collect()
    have = available_memory()
    if have < NEED:
        pytest.skip(f"needs {NEED / GiB:.0f} GiB available, have {have / GiB:.1f} GiB")
    yield
    gc.collect()


@pytest.fixture
def threads():
    from fastselu import _config

    saved = _config._num_threads
    yield
    _config._num_threads = saved


def pattern(n=W, dtype=np.float32, seed=0):
    """Both branches, the saturating tail, and special values."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(n) * 5
    v[::3] = rng.uniform(-120, 0, v[::3].size)
    v[:8] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -1e-40, 3e38]
    with np.errstate(over="ignore"):
        return v.astype(dtype)


def starts(n, nthreads_list=(2, 3)):
    """Region starts: the ends, 2^31, and every thread's chunk boundary (16-element aligned,
    as in _kernels.pyx) for the thread counts used."""
    points = {0, n - W, 2**31 - W // 2}
    for nt in nthreads_list:
        for i in range(1, nt):
            b = (n // nt) * i
            points.add(b - b % 16 - W // 2)
    return sorted(p for p in points if 0 <= p <= n - W)


def fill(x, regions, values):
    for s in regions:
        x[s : s + W] = values


def check(x, regions, want, what):
    bad = []
    for s in regions:
        got = x[s : s + W]
        same = np.array_equal(got, want, equal_nan=True) and np.array_equal(
            np.signbit(got), np.signbit(want)
        )
        if not same:
            k = int(np.flatnonzero(~((got == want) | (np.isnan(got) & np.isnan(want))))[:1].sum())
            bad.append(f"region at {s} (first bad index {s + k}: {got[k]!r} != {want[k]!r})")
    assert not bad, f"{what}: " + "; ".join(bad)


def test_inplace_float32_over_2_31_elements(backend, threads):
    """The issue's case: selu_ on a contiguous float32 array of more than 2^31 elements (the
    compiled fast path), then backward passes on the same memory (fast path with out=g=y, and
    the chunked path with a broadcast grad_output)."""
    x = np.empty(BIG, np.float32)
    try:
        v = pattern()
        regions = starts(BIG)
        fastselu.set_num_threads(2)
        fill(x, regions, v)
        assert fastselu.selu_(x) is x
        check(x, regions, fastselu.selu(v), "selu_ (2 threads)")
        if backend == "numpy":
            return  # one pass is ~1 minute on the reference backend
        fastselu.set_num_threads(3)
        fill(x, regions, v)
        fastselu.selu_backward(x, x, is_result=True, out=x)
        check(x, regions, fastselu.selu_backward(v, v, is_result=True), "backward_y out=g=y")
        fill(x, regions, v)
        g = np.broadcast_to(np.float32(-1.5), x.shape)  # stride 0: chunked path
        fastselu.selu_backward(g, x, out=x)
        check(
            x,
            regions,
            fastselu.selu_backward(np.full(W, -1.5, np.float32), v),
            "backward_x with a broadcast grad_output (chunked)",
        )
    finally:
        del x


def test_strided_inplace_float16_over_2_31_elements(backend, threads):
    """A strided float16 view of more than 2^31 elements (the chunked nditer path), in place:
    every other element changes, the ones in between do not."""
    if backend == "numpy":
        pytest.skip("the chunked path is the front end's; tested with the compiled backends")
    base = np.empty(2 * BIG, np.float16)  # 8.6 GB
    try:
        view = base[::2]
        assert view.size == BIG
        v16 = pattern(dtype=np.float16)
        regions = starts(BIG)
        fill(view, regions, v16)
        sentinel = np.float16(12.5)
        odd = base[1::2]
        fill(odd, regions, sentinel)
        fastselu.set_num_threads(1)  # nditer chunks of 2^17: one parallel region per chunk
        assert fastselu.selu_(view) is view  # would crawl on a busy machine, and test nothing more
        check(view, regions, fastselu.selu(v16), "selu_ on a strided float16 view")
        check(odd, regions, np.full(W, sentinel), "elements between the view's")
    finally:
        del base


def test_out_of_place_result_over_2_31_elements(backend, threads):
    """An out-of-place result of more than 2^31 elements allocated by fastselu: from a
    broadcast float16 input (no input memory), through the chunked path."""
    if backend == "numpy":
        pytest.skip("the chunked path is the front end's; tested with the compiled backends")
    v16 = pattern(8192, np.float16, seed=1)
    rows = -(-(2**31 + 12345) // v16.size)
    x = np.broadcast_to(v16, (rows, v16.size))
    fastselu.set_num_threads(1)  # (as above: the chunked path)
    y = fastselu.selu(x)
    try:
        assert y.shape == x.shape and y.dtype == np.float16 and y.size > 2**31
        flat = y.reshape(-1)
        want = fastselu.selu(v16)
        for r in (
            0,
            (2**31) // v16.size - 1,
            (2**31) // v16.size,
            (2**31) // v16.size + 1,
            rows // 2,
            rows - 1,
        ):
            check(flat, [r * v16.size], want[:W], f"row {r}")
            check(flat, [r * v16.size + W], want[W:], f"row {r}")
    finally:
        del y
