"""float16/bfloat16 kernels for the numba backend: ``_half_kernels.h``, operation for operation.

numba has no CPU float16 (numba #4402) and no bfloat16, so the kernels work on uint16 views of
the bits, converting with the header's exact integer code (bit casts through small intrinsics).
The tables are built as the header builds them, from this backend's own float64 kernels (the
same bits as the compiled ones: tests/test_numba.py) rounded once per entry (`_half.tables`), so
the results are the compiled backend's bits.  Tables are arguments of the compiled kernels, not
frozen constants, so numba's on-disk cache never holds stale ones.  Threads, fork and the
threading layer are handled as for the float kernels (``_backend_numba._run_parallel``).
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Tuple

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from . import _backend_numba as _nb, _half

_U = np.uint64


@intrinsic
def _bits64(typingctx, v):  # type: ignore[no-untyped-def]
    sig = types.uint64(types.float64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _from_bits64(typingctx, b):  # type: ignore[no-untyped-def]
    sig = types.float64(types.uint64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def _from_bits32(typingctx, b):  # type: ignore[no-untyped-def]
    sig = types.float32(types.uint32)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@njit(inline="always", cache=False)
def _f16_to_double(h):  # type: ignore[no-untyped-def]
    a = _U(h) & _U(0x7FFF)
    if a >= _U(0x7C00):
        b = (a << _U(42)) | _U(0x7FF0000000000000)
    else:
        b = (a << _U(42)) + _U((1023 - 15) << 52)
    mag = np.float64(np.int32(a)) * 2.0**-24 if a < _U(0x0400) else _from_bits64(b)
    return _from_bits64(_bits64(mag) | ((_U(h) & _U(0x8000)) << _U(48)))


@njit(inline="always", cache=False)
def _bf16_to_double(h):  # type: ignore[no-untyped-def]
    return np.float64(_from_bits32(np.uint32(h) << np.uint32(16)))


def _make_to_small(fmt: str) -> Any:
    """fs_to_f16 / fs_to_bf16 (see _half_kernels.h): v rounded once, ties to even."""
    m, bias, qnan, _ = _half.FORMATS[fmt]
    sh, half_m1 = _U(52 - m), _U((1 << (51 - m)) - 1)
    rebias = _U((1023 - bias) << m)
    magic = 2.0 ** (53 - bias - m)
    magic_bits = _U(np.float64(magic).view(np.uint64))
    min_normal = _U((1024 - bias) << 52)
    ovf = _U(np.float64((2 - 2.0 ** -(m + 1)) * 2.0**bias).view(np.uint64))
    inf, qnan_u = _U((2 * bias + 1) << m), np.uint16(qnan)

    @njit(inline="always", cache=False)
    def to_small(v):  # type: ignore[no-untyped-def]
        if v != v:
            return qnan_u
        u = _bits64(v)
        a = u & _U(0x7FFFFFFFFFFFFFFF)
        sign = (u >> _U(48)) & _U(0x8000)
        if a < min_normal:
            h = _bits64(abs(v) + magic) - magic_bits
        elif a >= ovf:
            h = inf
        else:
            h = ((a + half_m1 + ((a >> sh) & _U(1))) >> sh) - rebias
        return np.uint16(sign | h)

    return to_small


_FMT = {
    "float16": (_f16_to_double, _make_to_small("float16"), np.uint16(0x7C00)),
    "bfloat16": (_bf16_to_double, _make_to_small("bfloat16"), np.uint16(0x7F80)),
}


def _make_kernels(fmt: str) -> Dict[Tuple[str, bool], Any]:
    to_double, to_small, inf = _FMT[fmt]
    one = np.uint16(1)
    low = np.uint16(0x7FFF)

    @njit(inline="always", cache=False)
    def pos(b):  # type: ignore[no-untyped-def]
        return np.uint16(b - one) < inf  # +0 < x <= +inf

    @njit(inline="always", cache=False)
    def fwd_chunk(x, out, t, lo, hi):  # type: ignore[no-untyped-def]
        for i in range(lo, hi):
            out[i] = t[x[i]]

    scale_ro = _half.SCALE_RO

    @njit(inline="always", cache=False)
    def bwd_chunk(g, x, out, t, lo, hi):  # type: ignore[no-untyped-def]
        # the header's fs_bwd_f16 / fs_bwd_bf16(_64): g * tabulated d in double, rounded once
        for i in range(lo, hi):
            xb = x[i]
            d = scale_ro if pos(xb) else np.float64(t[xb & low])
            out[i] = to_small(to_double(g[i]) * d)

    f32r = types.Array(types.float32, 1, "C", readonly=True)
    dxtab = types.Array(types.float64, 1, "C", readonly=True) if fmt == "bfloat16" else f32r
    u16r = types.Array(types.uint16, 1, "C", readonly=True)
    u16w = types.Array(types.uint16, 1, "C")

    def driver(chunk: Any, nargs: int, table: Any, parallel: bool) -> Any:
        # One Python function per (kernel, serial/parallel): numba's cache is keyed by function.
        if nargs == 1:
            if parallel:

                def k(x, out, t, nt):  # type: ignore[no-untyped-def]
                    env = _nb._fenv_save()
                    n = out.size
                    for c in prange(nt):
                        chunk(x, out, t, _nb._bound(n, nt, c), _nb._bound(n, nt, c + 1))
                    _nb._fenv_restore(env)
            else:

                def k(x, out, t, nt):  # type: ignore[no-untyped-def]
                    env = _nb._fenv_save()
                    chunk(x, out, t, 0, out.size)
                    _nb._fenv_restore(env)

            sig = types.void(u16r, u16w, table, types.intp)
        else:
            if parallel:

                def k(g, x, out, t, nt):  # type: ignore[no-untyped-def]
                    env = _nb._fenv_save()
                    n = out.size
                    for c in prange(nt):
                        chunk(g, x, out, t, _nb._bound(n, nt, c), _nb._bound(n, nt, c + 1))
                    _nb._fenv_restore(env)
            else:

                def k(g, x, out, t, nt):  # type: ignore[no-untyped-def]
                    env = _nb._fenv_save()
                    chunk(g, x, out, t, 0, out.size)
                    _nb._fenv_restore(env)

            sig = types.void(u16r, u16r, u16w, table, types.intp)
        return njit(sig, parallel=parallel, nogil=True, cache=False)(k)

    parts = {
        "forward": (fwd_chunk, 1, u16r),
        "backward_x": (bwd_chunk, 2, dxtab),
        "backward_y": (bwd_chunk, 2, f32r),
    }
    return lambda kind, par: driver(*parts[kind], par)


# Compiled in each process on first use (closures over a format's constants: numba's on-disk
# cache does not take them), a second or so per kernel.
_makers: Dict[str, Any] = {}
_kernels: Dict[Tuple[str, str, bool], Any] = {}
_tables: Dict[str, Any] = {}
_lock = threading.Lock()


def _get(fmt: str, kind: str, par: bool) -> Tuple[Any, np.ndarray]:
    k = _kernels.get((fmt, kind, par))
    if k is None:
        with _lock:
            if fmt not in _half.FORMATS:
                raise ValueError(f"fmt must be None, 'float16' or 'bfloat16', not {fmt!r}")
            if fmt not in _tables:
                _tables[fmt] = _half.tables(fmt, _nb.forward, _nb.backward_x)
                _makers[fmt] = _make_kernels(fmt)
            if (fmt, kind, par) not in _kernels:
                _kernels[(fmt, kind, par)] = _makers[fmt](kind, par)
            k = _kernels[(fmt, kind, par)]
    fwd, dx, dy = _tables[fmt]
    return k, {"forward": fwd, "backward_x": dx, "backward_y": dy}[kind]


def run(
    kind: str, fmt: str, arrays: Tuple[np.ndarray, ...], out: np.ndarray, nthreads: int
) -> None:
    """A 16-bit kernel on uint16 views (the seam's ``fmt=`` calls)."""
    arrays = tuple(a.view(np.uint16) for a in arrays)
    out = out.view(np.uint16)
    if any(a.shape != out.shape for a in arrays):
        raise ValueError("all arrays must have the same number of elements")
    n = out.shape[0]
    nt = 1 if nthreads < 2 or n < _nb._PAR_MIN else _nb._threads_for(n, nthreads)
    if nt > 1 and _nb._threads_startable(nt - 1 if _nb._layer is not None else _nb._MAX_THREADS):
        kernel, table = _get(fmt, kind, True)
        if _nb._layer is not None and _nb._layer != "workqueue":
            _nb._call_parallel(kernel, (*arrays, out, table), nt)
            return
        lock = _nb._par_lock
        if lock.acquire(blocking=False):
            try:
                _nb._call_parallel(kernel, (*arrays, out, table), nt)
                if _nb._layer is None:
                    _nb._layer = numba.threading_layer()
            finally:
                lock.release()
            return
    kernel, table = _get(fmt, kind, False)
    kernel(*arrays, out, table, 1)
