"""Benchmark: ``python -m fastselu bench [--simd all|VARIANT] [--dtype LIST] [--json FILE]
[--plot FILE.png] [options]``.

One table, ``implementations()``, lists every timed call as an `Impl` (op, name, setup); the
command line (`run`) and the pytest-benchmark suite (``bench/test_bench.py``) are both driven by it.

Variants: each SIMD variant is measured in a child process of its own, started with
``FASTSELU_SIMD=<variant>`` and PyTorch's matching ``ATEN_CPU_CAPABILITY`` (avx512 -> avx512,
avx2 -> avx2, baseline -> default: `TORCH_CAPABILITY`), since both libraries pick their kernels
once per process.  Without ``--simd`` the child measures the variant in use, with every backend
and peer; with it, each child times the compiled backend against PyTorch and the references.
Variants this CPU cannot run are skipped with a note.  float16 and bfloat16 (``ml_dtypes``) are
compared with PyTorch's float16 and bfloat16 tensors.

Ops (bytes moved per element, in units of the item size, for GB/s):

- ``forward_out``  ``selu(x, out=o)``             2 (read x, write o)
- ``forward_new``  ``selu(x)``                    2 (read x, write a new array)
- ``inplace``      ``selu_(x)``                   2 (read and write x)
- ``backward_out`` ``selu_backward(g, x, out=o)`` 3 (read g and x, write o)
- ``backward_y_out`` ``selu_backward(g, y, is_result=True, out=o)`` 3 (read g and y = selu(x),
  write o)

Peers, each where installed: torch (``torch._C._nn.elu(t, ALPHA, SCALE, 1.0, out=o)``,
``torch.nn.functional.selu(t)``, ``torch.selu_(t)``,
``torch.ops.aten.elu_backward.grad_input(g, ALPHA, SCALE, 1.0, False, x, grad_input=o)``, and
with ``True, y`` from the result), NumPy
(``SCALE * np.where(x > 0, x, ALPHA * np.expm1(x))``) and numexpr.  References at memory speed
through the kernels' own OpenMP driver: ``_kernels.copy(x, o, nthreads)`` for the forward ops and
``_kernels.add(g, x, o, nthreads)`` for the backward ops.

Method: for each dtype and size, every implementation is calibrated: calls are timed in batches
of back-to-back calls lasting at least 20 µs (one call per batch for slow calls), and a round is
as many batches as fill 20 ms (5 ms with --quick).  Rounds are interleaved (every implementation
once per round, in a shuffled order).  A round's figure is the median over its batches of the time
per call, and the reported time is the median over rounds: on a shared machine a call now and then
waits milliseconds for a descheduled OpenMP thread, which would swamp a plain average; that
average (median over rounds of each round's mean) is kept in the JSON as mean_s.
The in-place op runs on negative data: SELU applied again and again keeps it valid (it converges
to the stable fixed point -1.27), whereas positive values would grow by SCALE per call and
overflow after ~1800 calls in float32.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import importlib
import importlib.metadata
import importlib.util
import itertools
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

import fastselu
from fastselu import ALPHA, SCALE

OPS = {  # op -> (label, bytes per element in item sizes, reference impl name)
    "forward_out": ("selu(x, out=o)", 2, "copy"),
    "forward_new": ("selu(x)", 2, "copy"),
    "inplace": ("selu_(x)", 2, "copy"),
    "backward_out": ("selu_backward(g, x, out=o)", 3, "add"),
    "backward_y_out": ("selu_backward(g, y, is_result=True, out=o)", 3, "add"),
}
REF_OP = {"copy": "forward_out", "add": "backward_out"}  # where the reference rows live
DEFAULT_SIZES = tuple(10**k for k in range(8))  # 1 .. 1e7
QUICK_MAX_N = 10**6
# The numpy backend (a reference: float64 in double-double, ~1 us per element) is slow beyond this.
NUMPY_BACKEND_MAX_N = 10**5
DTYPES = ("float16", "bfloat16", "float32", "float64")  # what --dtype accepts
DEFAULT_DTYPES = ("float32", "float64")
ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
# Check tolerance per dtype (a few ULPs of it: peers round more than once).
_TOL = {"float16": 4e-3, "bfloat16": 3e-2, "float32": 1e-5, "float64": 1e-12}
# fastselu SIMD variant -> PyTorch's ATEN_CPU_CAPABILITY for the same instruction set.
TORCH_CAPABILITY = {
    "avx512": "avx512",
    "avx2": "avx2",
    "baseline": "default",
    "neon": "default",
    "sve": "sve256",
}
ROUNDS, QUICK_ROUNDS = 7, 5
ROUND_S, QUICK_ROUND_S = 0.020, 0.005


@dataclass(frozen=True)
class Impl:
    """One timed call: ``setup(data)`` returns the zero-argument callable to time."""

    op: str
    name: str  # "fastselu[cython]", "torch", "numpy", "numexpr", "copy", "add"
    kind: str  # "fastselu", "peer" or "reference"
    setup: Callable[["Data"], Callable[[], Any]]
    backend: Optional[str] = None  # fastselu backend to select while timing
    max_n: Optional[int] = None
    dtypes: Optional[tuple[str, ...]] = None  # None: every dtype

    def applies(self, n: int, dtype: Optional[str] = None) -> bool:
        return (self.max_n is None or n <= self.max_n) and (
            dtype is None or self.dtypes is None or dtype in self.dtypes
        )


def numpy_dtype(name: str) -> Optional[np.dtype[Any]]:
    """The NumPy dtype called `name`; bfloat16 is ml_dtypes' (None when it is not installed)."""
    if name == "bfloat16":
        ml_dtypes = _optional("ml_dtypes")
        return None if ml_dtypes is None else np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


class Data:
    """The arrays of one (dtype, n), shared by every implementation (torch views share memory).

    16-bit arrays are views of buffers of an even length, so that the copy/add references can
    move the same bytes as float32 (`ref_x`, `ref_g`, `ref_o`)."""

    def __init__(self, dtype: str, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        dt = numpy_dtype(dtype)
        if dt is None:
            raise ValueError(f"dtype {dtype} needs ml_dtypes, which is not installed")
        self.dtype, self.n = dt, n
        size = n + n % 2 if dt.itemsize == 2 else n
        bufs = [
            rng.standard_normal(size).astype(dt),
            rng.standard_normal(size).astype(dt),
            np.zeros(size, dt),
        ]
        bufs[2].fill(0)  # touched: np.zeros would leave the pages unmapped
        self.x, self.g, self.o = (b[:n] for b in bufs)
        self.y = -np.abs(self.x)  # in-place buffer: negative data stays valid (see module doc)
        self.r = fastselu.selu(self.x)  # a forward result, for the backward from it
        if dt.itemsize == 2:
            self.ref_x, self.ref_g, self.ref_o = (b.view(np.float32) for b in bufs)
        else:
            self.ref_x, self.ref_g, self.ref_o = self.x, self.g, self.o
        torch = _optional("torch")
        if torch is not None:
            if dtype == "bfloat16":  # torch.from_numpy does not know ml_dtypes: share the bits
                self.tx, self.tg, self.to, self.ty, self.tr = (
                    torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
                    for a in (self.x, self.g, self.o, self.y, self.r)
                )
            else:
                self.tx, self.tg, self.to, self.ty, self.tr = (
                    torch.from_numpy(a) for a in (self.x, self.g, self.o, self.y, self.r)
                )


def _optional(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        return None


def _np_selu(x: np.ndarray) -> np.ndarray:
    return SCALE * np.where(x > 0, x, ALPHA * np.expm1(x))


def implementations(compiled_only: bool = False) -> list[Impl]:
    """The table: every (op, implementation) pair that can run here (with `compiled_only`, of
    fastselu's backends only the compiled one, and of the peers only PyTorch)."""
    try:
        _kernels: Any = importlib.import_module("fastselu._kernels")
    except ImportError:
        _kernels = None
    nthreads = fastselu.get_num_threads()
    P = functools.partial
    impls = []
    backends = fastselu.available_backends()
    if compiled_only and "cython" in backends:
        backends = ("cython",)
    for b in backends:
        name, mx = f"fastselu[{b}]", NUMPY_BACKEND_MAX_N if b == "numpy" else None
        impls += [
            Impl("forward_out", name, "fastselu", lambda d: P(fastselu.selu, d.x, out=d.o), b, mx),
            Impl("forward_new", name, "fastselu", lambda d: P(fastselu.selu, d.x), b, mx),
            Impl("inplace", name, "fastselu", lambda d: P(fastselu.selu_, d.y), b, mx),
            Impl(
                "backward_out",
                name,
                "fastselu",
                lambda d: P(fastselu.selu_backward, d.g, d.x, out=d.o),
                b,
                mx,
            ),
            Impl(
                "backward_y_out",
                name,
                "fastselu",
                lambda d: P(fastselu.selu_backward, d.g, d.r, is_result=True, out=d.o),
                b,
                mx,
            ),
        ]
    torch = _optional("torch")
    if torch is not None:
        bwd = torch.ops.aten.elu_backward.grad_input
        impls += [
            Impl(
                "forward_out",
                "torch",
                "peer",
                lambda d: P(torch._C._nn.elu, d.tx, ALPHA, SCALE, 1.0, out=d.to),
            ),
            Impl("forward_new", "torch", "peer", lambda d: P(torch.nn.functional.selu, d.tx)),
            Impl("inplace", "torch", "peer", lambda d: P(torch.selu_, d.ty)),
            Impl(
                "backward_out",
                "torch",
                "peer",
                lambda d: P(bwd, d.tg, ALPHA, SCALE, 1.0, False, d.tx, grad_input=d.to),
            ),
            Impl(
                "backward_y_out",
                "torch",
                "peer",
                lambda d: P(bwd, d.tg, ALPHA, SCALE, 1.0, True, d.tr, grad_input=d.to),
            ),
        ]
    if not compiled_only:
        impls.append(Impl("forward_new", "numpy", "peer", lambda d: P(_np_selu, d.x)))
    ne = None if compiled_only else _optional("numexpr")
    if ne is not None:
        f32_64 = ("float32", "float64")  # numexpr has no 16-bit floats
        fwd = "s * where(x > 0, x, a * expm1(x))"
        bwd_ = "g * where(x > 0, s, sa * exp(x))"
        bwd_y = "g * where(r > 0, s, r + sa)"

        def consts(d: Data) -> dict[str, Any]:
            t = d.dtype.type
            return {
                "x": d.x,
                "g": d.g,
                "r": d.r,
                "s": t(SCALE),
                "a": t(ALPHA),
                "sa": t(SCALE * ALPHA),
            }

        impls += [
            Impl(
                "forward_out",
                "numexpr",
                "peer",
                lambda d: P(ne.evaluate, fwd, consts(d), {}, out=d.o),
                dtypes=f32_64,
            ),
            Impl(
                "forward_new",
                "numexpr",
                "peer",
                lambda d: P(ne.evaluate, fwd, consts(d), {}),
                dtypes=f32_64,
            ),
            Impl(
                "backward_out",
                "numexpr",
                "peer",
                lambda d: P(ne.evaluate, bwd_, consts(d), {}, out=d.o),
                dtypes=f32_64,
            ),
            Impl(
                "backward_y_out",
                "numexpr",
                "peer",
                lambda d: P(ne.evaluate, bwd_y, consts(d), {}, out=d.o),
                dtypes=f32_64,
            ),
        ]
    if _kernels is not None:  # the compiled extension may be missing (numba/numpy only)
        # 16-bit dtypes: the same bytes moved as float32 (`Data.ref_*`).
        impls += [
            Impl(
                "forward_out",
                "copy",
                "reference",
                lambda d: P(_kernels.copy, d.ref_x, d.ref_o, nthreads),
            ),
            Impl(
                "backward_out",
                "add",
                "reference",
                lambda d: P(_kernels.add, d.ref_g, d.ref_x, d.ref_o, nthreads),
            ),
        ]
    order = list(OPS)
    return sorted(impls, key=lambda i: order.index(i.op))  # stable: table order within an op


def check(impls: Sequence[Impl], dtype: str, n: int = 1000) -> list[tuple[Impl, str]]:
    """Raise RuntimeError unless every call computes what its op says (a peer whose API changed
    meaning must not be timed silently); compared with float64 formulas at a loose tolerance.

    An entry that refuses the dtype with TypeError (fastselu before its bfloat16 support, say)
    is not an error: such entries are returned, with the reason, to be left out."""
    d = Data(dtype, n)
    x, g, y, r = (a.astype(np.float64) for a in (d.x, d.g, d.y, d.r))
    want = {
        "forward_out": _np_selu(x),
        "forward_new": _np_selu(x),
        "inplace": _np_selu(y),
        "backward_out": g * np.where(x > 0, SCALE, SCALE * ALPHA * np.exp(x)),
        "backward_y_out": g * np.where(r > 0, SCALE, r + SCALE * ALPHA),
    }
    refused = []
    for impl in impls:
        d.ref_o.fill(0)
        try:
            with _Backend(impl.backend), np.errstate(all="ignore"):
                ret = impl.setup(d)()
        except (TypeError, NotImplementedError, RuntimeError) as exc:  # torch: "not implemented"
            refused.append((impl, f"{type(exc).__name__}: {exc}"))
            continue
        if impl.name == "copy":  # bit for bit (16-bit dtypes: the float32 view's bits)
            ok = np.array_equal(
                d.ref_o.view(np.uint32 if d.ref_o.itemsize == 4 else np.uint64),
                d.ref_x.view(np.uint32 if d.ref_x.itemsize == 4 else np.uint64),
            )
        elif impl.name == "add":
            with np.errstate(all="ignore"):
                ok = np.array_equal(d.ref_o, d.ref_g + d.ref_x, equal_nan=True)
        else:
            got = {"forward_new": ret, "inplace": d.y}.get(impl.op, d.o)
            if hasattr(got, "detach"):  # a torch tensor (bfloat16 has no NumPy twin in torch)
                got = got.detach().double().numpy()
            ok = np.allclose(
                np.asarray(got, dtype=np.float64), want[impl.op], rtol=_TOL[dtype], atol=_TOL[dtype]
            )
        d.y[...] = y
        if not ok:
            raise RuntimeError(
                f"benchmark entry {impl.op} {impl.name} ({dtype}) computes a wrong "
                f"result: fix its call in fastselu._bench.implementations()"
            )
    return refused


def set_peer_threads(n: int) -> dict[str, Optional[int]]:
    """Give torch and numexpr the thread count fastselu uses; return what each ended up with."""
    threads: dict[str, Optional[int]] = {"fastselu": n, "torch": None, "numexpr": None}
    torch, ne = _optional("torch"), _optional("numexpr")
    if torch is not None:
        torch.set_num_threads(n)
        threads["torch"] = torch.get_num_threads()
    if ne is not None:
        ne.set_num_threads(n)
        threads["numexpr"] = n
    return threads


# ---------------------------------------------------------------- timing


BATCH_S = 20e-6  # a timed batch of back-to-back calls lasts at least this (timer cost < 1%)


def _time_batches(call: Callable[[], Any], inner: int, batches: int) -> list[float]:
    """Seconds per call of `batches` timed batches of `inner` back-to-back calls (GC off)."""
    timer, out = time.perf_counter, []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(batches):
            it = itertools.repeat(None, inner)
            t0 = timer()
            for _ in it:
                call()
            out.append((timer() - t0) / inner)
    finally:
        if gc_was:
            gc.enable()
    return out


def calibrate(call: Callable[[], Any], round_s: float) -> tuple[int, int]:
    """(inner, batches): calls per timed batch (>= BATCH_S) and batches per round (>= round_s)."""
    call()  # warm up (numba: load the compiled kernels)
    inner = 1
    while True:
        per = min(_time_batches(call, inner, 1 if inner == 1 else 3))  # min: ignore a stall
        if per * inner >= BATCH_S or inner >= 1 << 20:
            break
        inner = min(1 << 20, max(2 * inner, int(1.2 * BATCH_S / max(per, 1e-9))))
    return inner, max(1, math.ceil(round_s / (per * inner)))


def time_round(call: Callable[[], Any], inner: int, batches: int) -> tuple[float, float]:
    """One round: (median, mean) over its batches of the time per call."""
    ts = _time_batches(call, inner, batches)
    return statistics.median(ts), statistics.fmean(ts)


class _Backend:
    """Select a fastselu backend for a block, restoring the previous one."""

    def __init__(self, name: Optional[str]) -> None:
        self.name: Optional[str] = name
        self.prev: Optional[str] = None

    def __enter__(self) -> None:
        if self.name is not None:
            self.prev = fastselu.get_backend()
            fastselu.set_backend(self.name)

    def __exit__(self, *exc: Any) -> None:
        if self.prev is not None:
            fastselu.set_backend(self.prev)


class Progress:
    """One updating line on a terminal, else a line every few seconds."""

    def __init__(self, total: int, stream: Any = None) -> None:
        self.total, self.done, self.t0, self.last = total, 0, time.monotonic(), 0.0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def step(self, what: str, k: int = 1) -> None:
        self.done += k
        now = time.monotonic()
        if now - self.last < (0.1 if self.tty else 5.0) and self.done < self.total:
            return
        self.last = now
        msg = f"bench [{self.done}/{self.total}] {now - self.t0:5.0f} s  {what}"
        if self.tty:
            self.stream.write("\r" + msg[:110].ljust(110))
        else:
            self.stream.write(msg + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 110 + "\r")
            self.stream.flush()


def run(
    dtypes: Sequence[str],
    sizes: Sequence[int],
    rounds: int,
    round_s: float,
    progress: Optional[Progress] = None,
    compiled_only: bool = False,
    notes: Optional[list[str]] = None,
) -> list[dict[str, Any]]:
    """Time every implementation at every (dtype, n); return one record per (op, dtype, n, impl).
    Entries that refuse a dtype are left out, with a line in `notes`."""
    impls = implementations(compiled_only)
    usable = {}
    for dt in dtypes:
        candidates = [i for i in impls if i.applies(1, dt)]
        refused = check(candidates, dt)
        reasons: dict[str, list[str]] = {}  # one note per implementation, its ops listed
        for impl, why in refused:
            reasons.setdefault(impl.name, []).append(impl.op)
            if len(reasons[impl.name]) == 1:
                reasons[impl.name].insert(0, why)
        for name, (why, *ops) in reasons.items():
            if notes is not None:
                notes.append(f"{name} not timed for {dt} ({', '.join(ops)}): {why}")
        usable[dt] = [i for i in candidates if all(i is not r for r, _ in refused)]
    groups = [(dt, n, [i for i in usable[dt] if i.applies(n, dt)]) for dt in dtypes for n in sizes]
    if progress is None:
        progress = Progress(sum(len(g) for *_, g in groups) * (rounds + 1))
    records = []
    for dt, n, group in groups:
        data = Data(dt, n)
        calls, plan = [], []
        for impl in group:
            with _Backend(impl.backend):
                call = impl.setup(data)
                plan.append(calibrate(call, round_s))
            calls.append(call)
            progress.step(f"{dt} n={n:g} calibrate {impl.op} {impl.name}")
        times: list[list[tuple[float, float]]] = [[] for _ in group]
        order = list(range(len(group)))
        for r in range(rounds):
            random.Random(r).shuffle(order)
            for k in order:
                with _Backend(group[k].backend):
                    times[k].append(time_round(calls[k], *plan[k]))
                time.sleep(0.001)  # let OpenMP pools that spin after a region go idle
                progress.step(f"{dt} n={n:g} round {r + 1}/{rounds} {group[k].op} {group[k].name}")
        for impl, ts, (inner, batches) in zip(group, times, plan):
            med, mean = zip(*ts)
            records.append(
                {
                    "op": impl.op,
                    "dtype": dt,
                    "n": n,
                    "impl": impl.name,
                    "kind": impl.kind,
                    "backend": impl.backend,
                    "inner": inner,
                    "batches": batches,
                    "times_s": list(med),
                    "round_means_s": list(mean),
                    "median_s": statistics.median(med),
                    "mean_s": statistics.median(mean),
                }
            )
        del data, calls
    progress.close()
    return add_ratios(records)


def add_ratios(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add bytes, GB/s, elements/s and the time ratios to torch and to the memory reference."""
    by = {
        (r.get("variant"), r["op"], r["dtype"], r["n"], r["impl"]): r["median_s"] for r in records
    }
    for r in records:
        label, nbytes, ref = OPS[r["op"]]
        r["bytes"] = nbytes * r["n"] * ITEMSIZE[r["dtype"]]
        t = r["median_s"]
        r["gbps"] = r["bytes"] / t / 1e9 if t > 0 else None
        r["elements_per_s"] = r["n"] / t if t > 0 else None
        t_torch = by.get((r.get("variant"), r["op"], r["dtype"], r["n"], "torch"))
        t_ref = by.get((r.get("variant"), REF_OP[ref], r["dtype"], r["n"], ref))
        r["vs_torch"] = t / t_torch if t_torch else None
        r["vs_ref"] = t / t_ref if t_ref else None
    return records


# ---------------------------------------------------------------- output


def format_time(s: Optional[float]) -> str:
    """Three significant digits in ns, µs, ms or s: format_time(8.02e-3) == '8.02 ms'."""
    if s is None or not np.isfinite(s) or s <= 0:
        return "-"
    s = float(f"{s:.3g}")  # round first: 0.9996e-3 is '1 ms', not '1e+03 µs'
    unit, scale = next(
        (u, k)
        for u, k in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))
        if s >= k or u == "ns"
    )
    return f"{s / scale:.3g} {unit}"


def format_ratio(x: Optional[float]) -> str:
    """A time ratio: format_ratio(0.5) == '0.50x'; None (no counterpart) gives '-'."""
    if x is None:
        return "-"
    return f"{x:.2f}x" if x < 10 else f"{x:.1f}x" if x < 100 else f"{x:.0f}x"


def format_n(n: int) -> str:
    """format_n(1000000) == '1e6', format_n(100) == '100', format_n(2500) == '2500'."""
    if n >= 1000:
        e = len(str(n)) - 1
        if n == 10**e:
            return f"1e{e}"
    return str(n)


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """The printed table, one block per (op, dtype, n)."""
    head = ("op", "dtype", "n", "impl", "time", "GB/s", "vs torch", "vs ref")
    rows: list[Optional[tuple[str, ...]]] = []
    prev = None
    for r in records:
        key = (r["op"], r["dtype"], r["n"])
        if prev is not None and key != prev:
            rows.append(None)
        prev = key
        gb = r.get("gbps")
        rows.append(
            (
                r["op"],
                r["dtype"],
                format_n(r["n"]),
                r["impl"],
                format_time(r["median_s"]),
                "-" if gb is None else f"{gb:.3g}",
                format_ratio(r.get("vs_torch")),
                format_ratio(r.get("vs_ref")),
            )
        )
    width = [max(len(h), *(len(row[i]) for row in rows if row)) for i, h in enumerate(head)]
    right = {2, 4, 5, 6, 7}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, width))
        ).rstrip()

    out = [line(head), line(["-" * w for w in width])]
    out += ["" if row is None else line(row) for row in rows]
    return "\n".join(out)


LEGEND = (
    "time: typical time per call (median over rounds of the median over batches);\n"
    "GB/s: bytes read + written / time.  "
    "vs torch: time / torch's time for the same op; vs ref: time / the memory reference's "
    "time\n(a copy for forward and in-place, an add for backward); below 1x is faster."
)


def cpu_model() -> str:
    """The CPU's model name with its family and model numbers where /proc/cpuinfo has them
    ("AMD EPYC 7B13 (family 25, model 1)"), else platform.processor() or the machine type."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if not ln.strip():
                    break  # the first processor is enough
                key, _, value = ln.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def metadata(threads: dict[str, Optional[int]], settings: dict[str, Any]) -> dict[str, Any]:
    from fastselu import _backends

    try:
        config = dict(_backends.config_info())
    except Exception as exc:  # noqa: BLE001 - the metadata must never sink a finished run
        config = {"error": repr(exc)}
    versions = {}
    for mod in ("torch", "numexpr", "numba", "matplotlib", "ml_dtypes"):
        m = sys.modules.get(mod)
        if m is not None:
            versions[mod] = getattr(m, "__version__", None)
        else:  # installed but not needed by this run (ml_dtypes without bfloat16)?
            try:
                versions[mod] = importlib.metadata.version(mod)
            except importlib.metadata.PackageNotFoundError:
                versions[mod] = None
    torch = sys.modules.get("torch")
    try:  # the instruction set PyTorch's kernels run at here (set by ATEN_CPU_CAPABILITY)
        capability = torch.backends.cpu.get_cpu_capability() if torch is not None else None
    except AttributeError:  # torch < 2.1
        capability = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fastselu": config,
        "numpy": np.__version__,
        "versions": versions,
        "torch": versions["torch"],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "torch_capability": capability,
        "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY"),
        "threads": threads,
        "settings": settings,
        "method": __doc__.split("Method:", 1)[1].strip(),
        "ops": {
            op: {"call": lab, "bytes_per_element": f"{b} x itemsize", "reference": ref}
            for op, (lab, b, ref) in OPS.items()
        },
    }


PLOT_PANELS = ("forward_out", "forward_new", "inplace", "backward_out", "backward_y_out")


def plot(records: Sequence[dict[str, Any]], path: str, title: str = "") -> None:
    """Throughput (GB/s) against n, log-log, one panel per op x dtype; the reference dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(r.get("variant") for r in records))
    rows_ = [
        (v, d)
        for v in variants
        for d in DTYPES
        if any(r["dtype"] == d and r.get("variant") == v for r in records)
    ]
    ops = [o for o in PLOT_PANELS if any(r["op"] == o for r in records)]
    fig, axes = plt.subplots(
        len(rows_), len(ops), figsize=(4.6 * len(ops), 3.9 * len(rows_)), squeeze=False, sharex=True
    )
    names = list(dict.fromkeys(r["impl"] for r in records))
    colors = dict(
        zip(
            [n for n in names if n not in REF_OP],
            plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3,
        )
    )
    for row, (variant, dt) in enumerate(rows_):
        for col, op in enumerate(ops):
            ax = axes[row][col]
            ref = OPS[op][2]
            for name in [n for n in names if n not in REF_OP] + [ref]:
                src = REF_OP[ref] if name == ref else op
                pts = sorted(
                    (r["n"], r["gbps"])
                    for r in records
                    if r["op"] == src
                    and r["dtype"] == dt
                    and r["impl"] == name
                    and r["gbps"]
                    and r.get("variant") == variant
                )
                if not pts:
                    continue
                xs, ys = zip(*pts)
                if name == ref:
                    ax.plot(xs, ys, "k--", lw=1.3, label=f"{ref} (reference)")
                else:
                    bold = name.startswith("fastselu[cython]")
                    ax.plot(
                        xs,
                        ys,
                        marker="o",
                        ms=3.5,
                        lw=2.4 if bold else 1.3,
                        color=colors[name],
                        label=name,
                    )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="major", alpha=0.35)
            ax.set_title(f"{OPS[op][0]}  {dt}" + (f"  [{variant}]" if variant else ""), fontsize=10)
            if row == len(rows_) - 1:
                ax.set_xlabel("n (elements)")
            if col == 0:
                ax.set_ylabel("GB/s (read + written)")
            ax.legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))  # room for the title
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- command line


def _sizes(text: str) -> list[int]:
    try:
        values = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 or v != int(v) for v in values):
        raise argparse.ArgumentTypeError(
            f"sizes must be comma-separated positive integers (1e6 is fine), got {text!r}"
        )
    return [int(v) for v in values]


def _dtypes(text: str) -> list[str]:
    dts = list(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    bad = [d for d in dts if d not in DTYPES]
    if not dts or bad:
        raise argparse.ArgumentTypeError(f"dtypes must be among {', '.join(DTYPES)}, got {text!r}")
    return dts


def _simd(text: str) -> str:
    from . import _config

    if text != "all" and text not in _config.SIMD_NAMES:
        raise argparse.ArgumentTypeError(
            f"--simd must be 'all' or one of {', '.join(_config.SIMD_NAMES)}, got {text!r}"
        )
    return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastselu bench",
        description="Time fastselu (every backend) against torch, NumPy and numexpr where "
        "installed, and against memory-speed copy/add references.",
        epilog=LEGEND,
    )
    p.add_argument(
        "--simd",
        type=_simd,
        metavar="all|VARIANT",
        help="time the compiled backend's SIMD variant(s) against PyTorch at the same "
        "instruction set (ATEN_CPU_CAPABILITY avx512, avx2, or default for "
        "baseline), one child process per variant; 'all': every variant this CPU "
        "runs.  Default: the variant in use, with every backend and peer",
    )
    p.add_argument(
        "--dtype",
        "--dtypes",
        dest="dtypes",
        type=_dtypes,
        metavar="LIST",
        default=list(DEFAULT_DTYPES),
        help=f"comma-separated, among {', '.join(DTYPES)} (bfloat16: ml_dtypes; "
        "default float32,float64)",
    )
    p.add_argument("--json", metavar="FILE", help="write every median and the metadata as JSON")
    p.add_argument(
        "--plot", metavar="FILE.png", help="plot throughput against size (needs matplotlib)"
    )
    p.add_argument(
        "--sizes",
        type=_sizes,
        help="comma-separated element counts (default 1,10,...,1e7; with --quick up to 1e6)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"sizes up to 1e6, {QUICK_ROUNDS} rounds of {QUICK_ROUND_S * 1e3:g} ms",
    )
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="threads for fastselu, torch and numexpr alike (default: "
        "fastselu.get_num_threads()); 1 gives steadier figures on a busy machine",
    )
    p.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help=f"rounds per measurement, the median is reported (default {ROUNDS}; "
        f"{QUICK_ROUNDS} with --quick)",
    )
    # Internal: how the parent runs one variant in a child process.
    p.add_argument("--child-json", metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--compiled-only", action="store_true", help=argparse.SUPPRESS)
    return p


def plan_variants(
    simd: Optional[str],
    compiled: Optional[Sequence[str]],
    supported: Sequence[str],
    in_use: Optional[str],
) -> tuple[list[Optional[str]], list[str]]:
    """The variants to measure for ``--simd`` (None: the one in use) and notes on those skipped.
    `compiled` is None without the compiled backend: then the backend in use is measured."""
    if compiled is None:
        notes = (
            []
            if simd is None
            else [
                f"--simd {simd}: the compiled backend is not available here; measuring the "
                f"{fastselu.get_backend()} backend instead"
            ]
        )
        return [None], notes
    if simd is None:
        return [in_use], []
    variants: list[Optional[str]] = []
    notes = []
    for v in compiled if simd == "all" else [simd]:
        if v in supported:
            variants.append(v)
        elif v in compiled:
            notes.append(f"{v} skipped: this CPU cannot run it (it runs {', '.join(supported)})")
        else:
            notes.append(f"{v} skipped: not built for this platform (built: {', '.join(compiled)})")
    return variants, notes


def child_env(variant: Optional[str]) -> dict[str, str]:
    """The environment of a variant's child: FASTSELU_SIMD and PyTorch's ATEN_CPU_CAPABILITY for
    the same instruction set, importing this very copy of fastselu."""
    env = dict(os.environ)
    if variant is not None:
        env["FASTSELU_SIMD"] = variant
        env["ATEN_CPU_CAPABILITY"] = TORCH_CAPABILITY.get(variant, "default")
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastselu.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _compiled_variants() -> tuple[Optional[Sequence[str]], Sequence[str], Optional[str]]:
    """(variants built, variants this CPU runs, variant in use), or None for the first if the
    compiled backend cannot load."""
    if "cython" not in fastselu.available_backends():
        return None, (), None
    _kernels: Any = importlib.import_module("fastselu._kernels")
    return tuple(_kernels.VARIANTS), tuple(_kernels.SUPPORTED), str(_kernels.simd())


def _variant_title(variant: Optional[str], meta: dict[str, Any]) -> str:
    cfg = meta.get("fastselu", {})
    if variant is None:
        what = f"fastselu backend {cfg.get('backend')}"
    else:
        what = f"simd {cfg.get('simd')} (FASTSELU_SIMD={variant})"
    if meta.get("torch"):
        what += (
            f" vs torch {meta.get('torch_capability')} "
            f"(ATEN_CPU_CAPABILITY={meta.get('aten_cpu_capability') or 'unset'})"
        )
    return f"== {what} on {meta.get('cpu')} =="


def _child(args: argparse.Namespace, sizes: list[int], rounds: int, round_s: float) -> int:
    """Measure in this process (one variant) and write {meta, notes, results} to --child-json."""
    if args.threads is not None:
        fastselu.set_num_threads(args.threads)
    threads = set_peer_threads(fastselu.get_num_threads())
    settings = {
        "sizes": sizes,
        "dtypes": args.dtypes,
        "rounds": rounds,
        "round_s": round_s,
        "quick": args.quick,
        "compiled_only": args.compiled_only,
    }
    notes: list[str] = []
    records = run(
        args.dtypes, sizes, rounds, round_s, compiled_only=args.compiled_only, notes=notes
    )
    with open(args.child_json, "w") as f:
        json.dump({"meta": metadata(threads, settings), "notes": notes, "results": records}, f)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.repeat is not None and args.repeat < 1:
        parser().error("--repeat must be >= 1")
    if args.threads is not None and args.threads < 1:
        parser().error("--threads must be >= 1")
    sizes = args.sizes or [n for n in DEFAULT_SIZES if not args.quick or n <= QUICK_MAX_N]
    rounds = args.repeat or (QUICK_ROUNDS if args.quick else ROUNDS)
    round_s = QUICK_ROUND_S if args.quick else ROUND_S
    if args.child_json:
        return _child(args, sizes, rounds, round_s)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(
                "python -m fastselu bench: --plot needs matplotlib, which is not installed "
                "(pip install matplotlib, or fastselu[bench])",
                file=sys.stderr,
            )
            return 2
    notes: list[str] = []
    dtypes = list(args.dtypes)
    if "bfloat16" in dtypes and importlib.util.find_spec("ml_dtypes") is None:
        dtypes.remove("bfloat16")
        notes.append(
            "bfloat16 skipped: it needs ml_dtypes, which is not installed (pip install ml_dtypes)"
        )
    variants, variant_notes = plan_variants(args.simd, *_compiled_variants())
    notes += variant_notes
    if not dtypes:
        variants = []
    results: list[dict[str, Any]] = []
    measured: list[tuple[Optional[str], dict[str, Any], list[str]]] = []
    with tempfile.TemporaryDirectory(prefix="fastselu-bench-") as tmp:
        for k, variant in enumerate(variants):
            path = os.path.join(tmp, f"variant{k}.json")
            cmd = [
                sys.executable,
                "-m",
                "fastselu",
                "bench",
                "--child-json",
                path,
                "--dtype",
                ",".join(dtypes),
                "--sizes",
                ",".join(map(str, sizes)),
                "--repeat",
                str(rounds),
            ]
            cmd += ["--quick"] if args.quick else []
            cmd += ["--threads", str(args.threads)] if args.threads is not None else []
            cmd += ["--compiled-only"] if args.simd is not None else []
            # stdout and stderr (progress, warnings) go where ours go.
            proc = subprocess.run(cmd, env=child_env(variant))
            if proc.returncode != 0 or not os.path.exists(path):
                notes.append(
                    f"{variant or 'the backend in use'}: the benchmark process failed "
                    f"(exit status {proc.returncode}); its error is printed above"
                )
                continue
            with open(path) as f:
                doc = json.load(f)
            for r in doc["results"]:
                r["variant"] = variant
            results += doc["results"]
            measured.append((variant, doc["meta"], doc["notes"]))
    if measured:
        meta = measured[0][1]
        cfg = meta["fastselu"]
        threads = meta["threads"]
        versions = meta["versions"]
        print(
            f"fastselu {cfg.get('version')} (openmp {'on' if cfg.get('openmp') else 'off'}); "
            f"torch {meta['torch'] or 'not installed'}; numpy {meta['numpy']}; numexpr "
            f"{versions.get('numexpr') or 'not installed'}; ml_dtypes "
            f"{versions.get('ml_dtypes') or 'not installed'}"
        )
        print(
            f"CPU: {meta['cpu']}; threads: "
            + ", ".join(f"{k} {v}" for k, v in threads.items() if v)
        )
        print(
            f"{rounds} interleaved rounds of >= {round_s * 1e3:g} ms each, one process per variant"
        )
        for variant, vmeta, vnotes in measured:
            print("\n" + _variant_title(variant, vmeta))
            print(format_table([r for r in results if r["variant"] == variant]))
            for line in vnotes:
                print(f"note: {line}")
    for line in notes:
        print(f"note: {line}")
    if not measured:
        print("python -m fastselu bench: nothing was measured", file=sys.stderr)
        return 1
    print("\n" + LEGEND)
    if args.json:
        meta = dict(measured[0][1])
        meta["settings"] = dict(meta["settings"], simd=args.simd, dtypes=dtypes)
        meta["variants"] = [
            {
                "variant": v,
                "fastselu_simd": m["fastselu"].get("simd"),
                "torch_capability": m.get("torch_capability"),
                "aten_cpu_capability": m.get("aten_cpu_capability"),
                "notes": n,
            }
            for v, m, n in measured
        ]
        meta["notes"] = notes
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
            f.write("\n")
    if args.plot:
        cfg, threads = measured[0][1]["fastselu"], measured[0][1]["threads"]
        plot(
            results,
            args.plot,
            title=f"fastselu {cfg.get('version')} "
            f"({', '.join(str(v) for v, _, _ in measured)}, {threads['fastselu']} "
            f"thread{'s' if threads['fastselu'] != 1 else ''}) vs peers on "
            f"{measured[0][1]['cpu']}",
        )
    return 0 if len(measured) == len(variants) else 1


if __name__ == "__main__":
    sys.exit(main())
