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
from typing import Any, Callable, Dict, Tuple

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import _backend_numba as _nb, _half
from ._selu_constants import SA_HI, SA_HI_F, SA_LO, SA_LO_F, SCALE_HI, SCALE_HI_F, SCALE_LO_F

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


_I32, _F32 = ir.IntType(32), ir.FloatType()
_W = 8  # lanes, as the header's AVX2 loops
_SIZES = "all arrays must have the same number of elements"
_VI, _VF = ir.VectorType(_I32, _W), ir.VectorType(_F32, _W)
_V16, _VH = ir.VectorType(ir.IntType(16), _W), ir.VectorType(ir.HalfType(), _W)


def _k(v: int) -> ir.Constant:
    return ir.Constant(_VI, [v] * _W)


def _kf(v: float) -> ir.Constant:
    return ir.Constant(_VF, [v] * _W)


def _unsure(b: Any, p: Any, below: int) -> Any:
    """fs_unsure8: lanes whose float32 product p may not round to g*d's 16-bit value (a midpoint
    of the format, whose bits below `below` + 1 are 0, or NaN): (p - 1) ^ p > below."""
    pb = b.bitcast(p, _VI)
    return b.icmp_signed(">", b.xor(b.sub(pb, _k(1)), pb), _k(below))


def _f16_lanes(b: Any, v: Any, f16c: bool) -> Any:
    """float16 bits (<8 x i16>) to float32 exactly: F16C's vcvtph2ps, or integer code."""
    if f16c:
        return b.fpext(b.bitcast(v, _VH), _VF)
    h = b.zext(v, _VI)
    a = b.and_(h, _k(0x7FFF))
    sh = b.shl(a, _k(13))
    bits = b.select(
        b.icmp_signed(">=", a, _k(0x7C00)),
        b.or_(sh, _k(0x7F800000)),
        b.add(sh, _k(112 << 23)),
    )
    sub = b.bitcast(b.fmul(b.sitofp(a, _VF), _kf(2.0**-24)), _VI)
    bits = b.select(b.icmp_signed("<", a, _k(0x400)), sub, bits)
    return b.bitcast(b.or_(bits, b.shl(b.and_(h, _k(0x8000)), _k(16))), _VF)


def _bf16_lanes(b: Any, v: Any, f16c: bool) -> Any:
    """bfloat16 bits (<8 x i16>) to float32: a shift (f16c unused)."""
    return b.bitcast(b.shl(b.zext(v, _VI), _k(16)), _VF)


def _round_f16(b: Any, p: Any, f16c: bool) -> Tuple[Any, Any]:
    """p (float32 lanes) rounded to nearest float16 (F16C's vcvtps2ph, or the same by integer
    code for every non-NaN float32), and the lanes where that may not be the rounding of the
    value p approximates within one float32 ULP (_unsure)."""
    if f16c:
        r = b.zext(b.bitcast(b.fptrunc(p, _VH), _V16), _VI)
    else:
        pb = b.bitcast(p, _VI)
        a = b.and_(pb, _k(0x7FFFFFFF))
        norm = b.add(b.add(a, _k(0xFFF)), b.and_(b.lshr(a, _k(13)), _k(1)))
        norm = b.sub(b.lshr(norm, _k(13)), _k(112 << 10))
        # 0.5's ULP is float16's subnormal step, 2^-24
        small = b.sub(b.bitcast(b.fadd(b.bitcast(a, _VF), _kf(0.5)), _VI), _k(0x3F000000))
        r = b.select(b.icmp_signed("<", a, _k(0x38800000)), small, norm)
        r = b.select(b.icmp_signed(">=", a, _k(0x477FF000)), _k(0x7C00), r)
        r = b.or_(r, b.and_(b.lshr(pb, _k(16)), _k(0x8000)))
    return r, _unsure(b, p, 0xFFF)


def _round_bf16(b: Any, p: Any, f16c: bool) -> Tuple[Any, Any]:
    """p rounded at bit 16, half-way up (no unflagged p is half-way), and _round_f16's flags."""
    return b.lshr(b.add(b.bitcast(p, _VI), _k(0x8000)), _k(16)), _unsure(b, p, 0x7FFF)


def _fma_lanes(b: Any, x: Any, y: Any, z: Any) -> Any:
    """x*y + z rounded once, lane by lane (llvm.fma; llvmlite names no vector intrinsic)."""
    fnty = ir.FunctionType(_VF, [_VF] * 3)
    return b.call(cgutils.get_or_insert_function(b.module, fnty, f"llvm.fma.v{_W}f32"), [x, y, z])


def _y_lanes(b: Any, g: Any, y: Any) -> Tuple[Any, Any]:
    """The header's fs_bwd_y_p8: p = g*d(y) within one float32 ULP (float32 lanes g, y), and the
    lanes with y <= -SA_HI_F or NaN."""
    a = _kf(SA_HI_F)
    s = b.fadd(y, a)
    e = b.fsub(y, b.fsub(s, a))
    pos = b.icmp_signed(">", b.bitcast(y, _VI), _k(0))
    dh = b.select(pos, _kf(SCALE_HI_F), s)
    dl = b.select(pos, _kf(SCALE_LO_F), b.fadd(e, _kf(SA_LO_F)))
    p = _fma_lanes(b, g, dh, b.fmul(g, dl))
    p = b.bitcast(b.or_(b.bitcast(p, _VI), b.and_(b.bitcast(g, _VI), _k(-0x80000000))), _VF)
    return p, b.fcmp_unordered("<=", y, _kf(-SA_HI_F))


_H = 4  # vectors per step, as the header's FS_CHAINS


def _make_lanes(to_f32: Any, round_: Any, hard_from: int, from_y: bool) -> Any:
    """The header's AVX2 loop (fs_bwd_half_avx2) for the _H * 8 elements from i, as LLVM vector
    IR: numba widens uint32 arithmetic to 64 bits, and LLVM vectorises no loop with a table
    lookup in it.  to_f32 / round_: the format's conversions (_f16_lanes and _round_f16, or the
    bfloat16 ones).  run(g, x, out, tf, i): p = g*d with d from the full float32 table tf by
    scalar loads, as the header; with from_y, run(g, y, out, i): p from the result (_y_lanes).
    The results are stored, and True returned, unless an element is flagged (bfloat16's
    |v| >= 80, where d(x) is a double; y <= -SA_HI_F or NaN; or an unsure product): then nothing
    is written (out may be g or x), and the caller does the elements by the element function."""

    def emit(context, b, i0, g, x, out, tf):  # type: ignore[no-untyped-def]
        # F16C where the target has it (numba compiles for the host, or NUMBA_CPU_*);
        # without, LLVM's half conversions would be calls to runtime functions
        f16c = "+f16c" in getattr(context.codegen(), "_tm_features", "").split(",")
        rs, flag = [], None
        for h in range(_H):
            i = b.add(i0, ir.Constant(i0.type, _W * h))
            gf = to_f32(b, b.load(b.bitcast(b.gep(g, [i]), _V16.as_pointer()), align=2), f16c)
            if from_y:
                yv = b.load(b.bitcast(b.gep(x, [i]), _V16.as_pointer()), align=2)
                p, bad = _y_lanes(b, gf, to_f32(b, yv, f16c))
            else:
                d = ir.Constant(_VF, ir.Undefined)
                for j in range(_W):  # scalar index loads, as the header's fs_deriv8
                    xj = b.zext(b.load(b.gep(x, [b.add(i, ir.Constant(i.type, j))])), i.type)
                    d = b.insert_element(d, b.load(b.gep(tf, [xj])), ir.Constant(_I32, j))
                p, bad = b.fmul(gf, d), None
            r, unsure = round_(b, p, f16c)
            if bad is not None:
                unsure = b.or_(unsure, bad)
            if hard_from < 0x8000:
                xv = b.load(b.bitcast(b.gep(x, [i]), _V16.as_pointer()), align=2)
                hard = b.and_(b.zext(xv, _VI), _k(0x7FFF))
                unsure = b.or_(unsure, b.icmp_unsigned(">=", hard, _k(hard_from)))
            flag = unsure if flag is None else b.or_(flag, unsure)
            rs.append((i, r))
        none = ir.Constant(ir.IntType(_W), 0)
        ok = b.icmp_unsigned("==", b.bitcast(flag, ir.IntType(_W)), none)
        with b.if_then(ok, likely=True):
            for i, r in rs:
                dst = b.bitcast(b.gep(out, [i]), _V16.as_pointer())
                b.store(b.trunc(r, _V16), dst, align=2)
        return ok

    def arrays(context, b, signature, args, k):  # type: ignore[no-untyped-def]
        tys = signature.args[:k]
        return [context.make_array(ty)(context, b, a).data for ty, a in zip(tys, args[:k])]

    if from_y:

        @intrinsic
        def run_y(typingctx, g, y, out, i):  # type: ignore[no-untyped-def]
            def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
                g, y, out = arrays(context, builder, signature, args, 3)
                return emit(context, builder, args[3], g, y, out, None)

            return types.boolean(g, y, out, i), codegen

        return run_y

    @intrinsic
    def run(typingctx, g, x, out, tf, i):  # type: ignore[no-untyped-def]
        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            g, x, out, tf = arrays(context, builder, signature, args, 4)
            return emit(context, builder, args[4], g, x, out, tf)

        return types.boolean(g, x, out, tf, i), codegen

    return run


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


def _make_kernels(fmt: str) -> Callable[[str, bool], Any]:
    to_double, to_small, inf = _FMT[fmt]
    one = np.uint16(1)
    low = np.uint16(0x7FFF)

    @njit(inline="always", cache=False)
    def pos(b):  # type: ignore[no-untyped-def]
        return np.uint16(b - one) < inf  # +0 < x <= +inf

    @njit(inline="always", cache=False)
    def fwd_chunk(x, _x, out, tabs, lo, hi):  # type: ignore[no-untyped-def]
        t = tabs[0]
        for i in range(lo, hi):
            out[i] = t[x[i]]

    scale_ro = _half.SCALE_RO
    f16 = fmt == "float16"
    conv = (_f16_lanes, _round_f16) if f16 else (_bf16_lanes, _round_bf16)
    run_lanes = _make_lanes(*conv, 0x8000 if f16 else _half.BF16_HARD, False)  # 0x8000: never
    run_lanes_y = _make_lanes(*conv, 0x8000, True)

    @njit(inline="always", cache=False)
    def elem(g, x, out, t, k):  # type: ignore[no-untyped-def]
        """The header's fs_bwd_f16 / fs_bwd_bf16(_64): g * the tabulated d in double, rounded
        once; the same bits as run_lanes'."""
        xb = x[k]
        d = scale_ro if pos(xb) else np.float64(t[xb & low])
        out[k] = to_small(to_double(g[k]) * d)

    @njit(inline="always", cache=False)
    def bwd_chunk(g, x, out, tabs, lo, hi):  # type: ignore[no-untyped-def]
        t, tf = tabs
        step = _H * _W
        n_v = lo + (hi - lo) // step * step
        for i in range(lo, n_v, step):
            if not run_lanes(g, x, out, tf, i):
                for k in range(i, i + step):
                    elem(g, x, out, t, k)
        for k in range(n_v, hi):
            elem(g, x, out, t, k)

    @njit(inline="always", cache=False)
    def elem_y(g, y, out, k):  # type: ignore[no-untyped-def]
        """The header's fs_bwd_y_f16 / fs_bwd_y_bf16: g*d(y) in double, rounded once (correctly
        rounded but for bfloat16's y < -2^54); the same bits as run_lanes_y'."""
        yb = y[k]
        d = SCALE_HI if pos(yb) else (to_double(yb) + SA_HI) + SA_LO
        out[k] = to_small(to_double(g[k]) * d)

    @njit(inline="always", cache=False)
    def bwd_y_chunk(g, y, out, tabs, lo, hi):  # type: ignore[no-untyped-def]
        step = _H * _W
        n_v = lo + (hi - lo) // step * step
        for i in range(lo, n_v, step):
            if not run_lanes_y(g, y, out, i):
                for k in range(i, i + step):
                    elem_y(g, y, out, k)
        for k in range(n_v, hi):
            elem_y(g, y, out, k)

    f32r = types.Array(types.float32, 1, "C", readonly=True)
    dxtab = types.Array(types.float64, 1, "C", readonly=True) if fmt == "bfloat16" else f32r
    u16r = types.Array(types.uint16, 1, "C", readonly=True)
    u16w = types.Array(types.uint16, 1, "C")

    def driver(chunk: Any, tabs: Any, parallel: bool) -> Any:
        # k(a, b, out, tables, nt): the forward takes x twice (b unused), tables is a tuple
        # (types tabs).  One Python function per (kernel, serial/parallel), prange a plain range
        # in the serial one.
        def k(a, b, out, t, nt):  # type: ignore[no-untyped-def]
            if a.size != out.size or b.size != out.size:
                raise ValueError(_SIZES)
            env = _nb._fenv_save()
            n = out.size
            for c in prange(nt):
                chunk(a, b, out, t, _nb._bound(n, nt, c), _nb._bound(n, nt, c + 1))
            _nb._fenv_restore(env)

        sig = types.void(u16r, u16r, u16w, tabs, types.intp)
        return njit(sig, parallel=parallel, nogil=True, cache=False)(k)

    parts = {
        "forward": (fwd_chunk, types.Tuple((u16r,))),
        "backward_x": (bwd_chunk, types.Tuple((dxtab, f32r))),
        "backward_y": (bwd_y_chunk, types.Tuple(())),
    }
    return lambda kind, par: driver(*parts[kind], par)


# Compiled in each process on first use (closures over a format's constants: numba's on-disk
# cache does not take them), a second or so per kernel.
_makers: Dict[str, Any] = {}
_kernels: Dict[Tuple[str, str, bool], Any] = {}
_tables: Dict[str, Any] = {}
_lock = threading.Lock()


def _full(neg: np.ndarray, fmt: str) -> np.ndarray:
    """A derivative table over all 2^16 patterns, as the header's (float32): `neg` (the inputs
    with the sign bit set) for those, SCALE rounded to odd where x > 0, else (+0, NaN) the entry
    of -x."""
    neg = np.asarray(neg).astype(np.float32)
    inf = _FMT[fmt][2]
    pos = (np.arange(1 << 15) - 1).astype(np.uint16) < inf
    return np.concatenate([np.where(pos, np.float32(_half.SCALE_RO), neg), neg])


def _get(fmt: str, kind: str, par: bool) -> Tuple[Any, Tuple[np.ndarray, ...]]:
    k = _kernels.get((fmt, kind, par))
    if k is None:
        with _lock:
            if fmt not in _half.FORMATS:
                raise ValueError(f"fmt must be None, 'float16' or 'bfloat16', not {fmt!r}")
            if fmt not in _tables:
                fwd, dx = _half.tables(fmt, _nb.forward, _nb.backward_x)
                _tables[fmt] = {
                    "forward": (fwd,),
                    "backward_x": (dx, _full(dx, fmt)),
                    "backward_y": (),
                }
                _makers[fmt] = _make_kernels(fmt)
            if (fmt, kind, par) not in _kernels:
                _kernels[(fmt, kind, par)] = _makers[fmt](kind, par)
            k = _kernels[(fmt, kind, par)]
    return k, _tables[fmt][kind]


def run(
    kind: str, fmt: str, arrays: Tuple[np.ndarray, ...], out: np.ndarray, nthreads: int
) -> None:
    """A 16-bit kernel on uint16 views (the seam's ``fmt=`` calls)."""
    n = out.shape[0]
    arrays = arrays * 2 if len(arrays) == 1 else arrays  # the forward's x twice (see driver)
    nt = 1 if nthreads < 2 or n < _nb._PAR_MIN else _nb._threads_for(n, nthreads)
    if nt > 1 and _nb._threads_startable(nt - 1 if _nb._layer is not None else _nb._MAX_THREADS):
        kernel, tables = _get(fmt, kind, True)
        if _nb._layer is not None and _nb._layer != "workqueue":
            _nb._call_parallel(kernel, (*arrays, out, tables), nt)
            return
        lock = _nb._par_lock
        if lock.acquire(blocking=False):
            try:
                _nb._call_parallel(kernel, (*arrays, out, tables), nt)
                if _nb._layer is None:
                    _nb._layer = numba.threading_layer()
            finally:
                lock.release()
            return
    kernel, tables = _get(fmt, kind, False)
    kernel(*arrays, out, tables, 1)
