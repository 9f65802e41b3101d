"""pytest-benchmark suite: ``pytest bench/ --benchmark-only`` (not part of the default test run).

Every case comes from the table in `fastselu._bench` (``implementations()``): each op
(forward out=, forward new array, in-place, backward out=) x dtype x size x every fastselu backend,
with the torch / NumPy / numexpr peers that are installed and the memory-speed copy/add
references.  Benchmarks are grouped per (op, dtype, n), so each group compares side by side;
narrow it with ``-k``, e.g. ``pytest bench/ --benchmark-only -k "forward_out and float32"``.
"""

import pytest

pytest.importorskip("pytest_benchmark")

import fastselu
from fastselu import _bench

SIZES = (1, 10**3, 10**5, 10**6, 10**7)
THREADS = _bench.set_peer_threads(fastselu.get_num_threads())

# Sorted by (dtype, n) so that one set of arrays serves a run of consecutive tests.
CASES = [
    (dt, n, impl)
    for dt in _bench.DEFAULT_DTYPES
    for n in SIZES
    for impl in _bench.implementations()
    if impl.applies(n, dt)
]
_data: dict = {}


def _get_data(dtype, n):
    if (dtype, n) not in _data:
        _data.clear()  # keep one (dtype, n) alive: the 1e7 float64 arrays are 80 MB each
        _data[(dtype, n)] = _bench.Data(dtype, n)
    return _data[(dtype, n)]


@pytest.mark.parametrize(
    "dtype, n, impl",
    CASES,
    ids=[f"{i.op}-{dt}-n{_bench.format_n(n)}-{i.name}" for dt, n, i in CASES],
)
def test_selu(benchmark, dtype, n, impl):
    benchmark.group = f"{impl.op} {dtype} n={_bench.format_n(n)}"
    benchmark.extra_info.update(
        op=impl.op, impl=impl.name, kind=impl.kind, dtype=dtype, n=n, threads=THREADS
    )
    data = _get_data(dtype, n)
    with _bench._Backend(impl.backend):
        benchmark(impl.setup(data))
    rec = _bench.add_ratios(
        [
            {
                "op": impl.op,
                "dtype": dtype,
                "n": n,
                "impl": impl.name,
                "median_s": benchmark.stats.stats.median,
            }
        ]
    )[0]
    benchmark.extra_info["GB/s"] = rec["gbps"]
