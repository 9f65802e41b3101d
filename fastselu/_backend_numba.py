"""The numba backend: a port of the C kernels in ``_selu_kernels.h``, operation for operation.

Same constants and tables (hex floats), same operations in the same order, explicit
``llvm.fma`` through small ``@intrinsic`` wrappers (numba on Python 3.11 has no ``math.fma``),
2^n built from exponent bits through ``@intrinsic`` bit casts, and no fastmath flags at all: LLVM
neither contracts nor reassociates, so the results are the same bits as the compiled (cython)
backend's, which is built with ``-ffp-contract=off``.  See ``_selu_kernels.h`` for the accuracy
design (the float32 forward in float32 with exact reduction and a Fast2Sum; float64 in
double-double; the backward's table-driven fast path in the dtype's own arithmetic); this file
mirrors it and must change with it (tests/test_numba.py compares the two bit for bit).  As there,
every NaN result of a backward kernel leaves as the default quiet NaN: which NaN operand an
instruction passes on depends on operand order, which compilers choose freely, so only a
canonical NaN keeps the bits identical (a forward result's only NaN source is x, whose payload it
keeps).  LLVM vectorizes every loop; the backward's four-entry table lookups are selects
(blends), where the C kernels' AVX-512 and AVX2 builds use register permutes.

Backend seam (see ``fastselu/_backends.py``): ``forward(x, out, nthreads)``,
``backward_x(g, x, out, nthreads)``, ``backward_y(g, y, out, nthreads)`` on 1-D C-contiguous
native float32/float64 arrays of one dtype and length (``out`` is an input's exact buffer or does
not overlap it), and ``info()``.  The front end does all argument checking.

Compilation: one dispatcher per (kernel, dtype, serial/parallel), created on first use with its
one explicit signature and ``cache=True``, so a process compiles (or loads from the on-disk cache)
only what it calls.  Input arrays are typed read-only so that writable and read-only inputs share
one compiled specialisation.

Threads: below ``2 * GRAIN`` elements, with ``nthreads == 1``, and in a child created by
``fork()`` the ``parallel=False`` twin runs on the calling thread (numba's ``parallel=True``
kernels abort in a forked child of a process that used GNU OpenMP).  Otherwise a
``parallel=True`` kernel splits the array into one static chunk per thread (``prange`` over the
chunks).  numba's ``workqueue`` threading layer aborts when two Python threads launch parallel
kernels at once, so until the layer in use is known, and for good if it is ``workqueue``,
parallel launches hold a lock; a caller that finds the lock busy does not wait but runs the
serial twin on its own thread (results are the same bits either way).  The ``omp`` and ``tbb``
layers are thread-safe and run without the lock.  If the parallel kernels cannot be built at all
(``NUMBA_THREADING_LAYER`` names a layer that is not installed), one ``RuntimeWarning`` says so
and every call runs serially.  numba never runs more than ``NUMBA_NUM_THREADS`` threads.  GNU
OpenMP exits the process when it cannot create a worker thread (ulimit -v, pids cgroup), so
before a Python thread's first parallel launch the backend checks that it can start that many
threads, and runs serially if not (``_threads_startable``).

Arguments outside the seam's contract (which the front end never passes) get a clear
``ValueError``/``TypeError`` instead of numba's "no matching definition"; arrays of different
lengths are refused inside the compiled driver before anything is written.

The kernels evaluate both branches of a select, so the unselected one may raise floating-point
flags; every kernel saves the caller's floating-point environment (``fegetenv``) and restores it
(``fesetenv``) so that no flag leaks (SPEC).
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Any, Callable, Dict, Optional, Tuple

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

_nbconfig: Any = numba.config  # attributes set at run time: opaque to type checkers

# Below this many elements per thread a parallel launch costs more than it saves (the cython
# backend uses the same grain).
GRAIN = 32768
# Chunk boundaries fall on multiples of 16 elements, as in the cython backend (its ALIGN_ELEMS
# says what that does and does not promise about cache lines).
ALIGN_ELEMS = 16

# ---------------------------------------------------------------------------------------------
# Constants: those of _selu_kernels.h, from the same generated source (tools/fit_poly.py writes
# _selu_constants.h and _selu_constants.py).  float32 ones are np.float32 so that numba keeps
# that arithmetic in float32; the negated ones fold the C kernels' fma(a, -c, b) (exact).

from ._selu_constants import (  # noqa: E402
    EXPM1_F_C0,
    EXPM1_F_C1,
    EXPM1_F_C2,
    EXPM1_F_C3,
    EXPM1_F_C4,
    EXPM1_F_C5,
    EXPS_C0,
    EXPS_C1,
    EXPS_C2,
    EXPS_C3,
    EXPS_C4,
    EXPS_C5,
    EXPS_C6,
    EXPS_C7,
    EXPS_F_C0,
    EXPS_F_C1,
    EXPS_F_C2,
    EXPS_F_C3,
    EXPSA_C0,
    EXPSA_C1,
    EXPSA_C2,
    EXPSA_C3,
    EXPSA_C4,
    EXPSA_C5,
    EXPSA_C6,
    FS_T32_HI as T32_HI,
    FS_T32_LO as T32_LO,
    FS_T64_HI as T64_HI,
    FS_T64_LO as T64_LO,
    L4_HI,
    L4_HI_F,
    L4_LO,
    L4_LO_F,
    LN2,
    LN2_HI,
    LN2_HI_F,
    LN2_LO,
    LN2_LO_F,
    LOG2E,
    LOG2E4,
    LOG2E4_F,
    LOG2E_F,
    MAGIC,
    MAGIC_BIAS,
    MAGIC_BIAS_F,
    MAGIC_BITS,
    MAGIC_F,
    MAGIC_F_BITS,
    Q2_C0,
    Q2_C1,
    Q2_C2,
    Q2_C3,
    Q2_C4,
    Q2_C5,
    Q3_C0,
    Q3_C1,
    Q3_C2,
    Q3_C3,
    Q3_C4,
    Q3_C5,
    Q3_C6,
    Q3_C7,
    Q3_C8,
    Q3_C9,
    SA_HI,
    SA_HI_F,
    SA_LO,
    SA_LO2,
    SA_LO_F,
    SCALE_DN_F,
    SCALE_HI,
    SCALE_HI_F,
    SCALE_LO,
    SCALE_LO_F,
    SCALE_UP_F,
)

_f32 = np.float32
NEG_LN2 = -LN2
NEG_LN2_HI = -LN2_HI
NEG_LN2_HI_F = -LN2_HI_F
NEG_LN2_LO_F = -LN2_LO_F
CLAMP_F = _f32(-18.0)
NEG_L4_HI_F = -L4_HI_F
NEG_L4_HI = -L4_HI
NEG_L4_LO_F = -L4_LO_F  # the fused dropout backward's reduction keeps both fmas
NEG_L4_LO = -L4_LO
DBL_MAX = float(np.finfo(np.float64).max)
FLT_MAX = _f32(np.finfo(np.float32).max)
TWO_P200 = 2.0**200  # scaling for tiny |x| in the float64 forward kernel
TWO_M200 = 2.0**-200
TWO_M900 = 2.0**-900
SPLIT = 134217729.0  # 2^27 + 1: Veltkamp's split of a double into two halves
HARD_F32 = _f32(-80.0)
ZERO_F = _f32(0.0)  # a float32 0: comparing with the literal 0.0 would widen to double
# The default quiet NaNs, (double)NAN and (float)NAN: every backward NaN result is one of them.
NAN64 = float("nan")
NAN32 = _f32(np.nan)

# ---------------------------------------------------------------------------------------------
# Intrinsics: fma, the 2^n bit trick, and the floating-point environment.

_F64 = ir.DoubleType()
_F32 = ir.FloatType()
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_I8P = ir.IntType(8).as_pointer()


@intrinsic
def _fma(typingctx, a, b, c):  # type: ignore[no-untyped-def]
    """a*b + c with one rounding (llvm.fma: an instruction with FMA, else libm's fma), in
    float32 when all three are float32, else in float64."""
    f32 = a == b == c == types.float32
    ty, llty = (types.float32, _F32) if f32 else (types.float64, _F64)
    sig = ty(ty, ty, ty)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        fnty = ir.FunctionType(llty, [llty, llty, llty])
        fn = builder.module.declare_intrinsic("llvm.fma", [llty], fnty)
        return builder.call(fn, list(args))

    return sig, codegen


@intrinsic
def _shl52_bits(typingctx, m):  # type: ignore[no-untyped-def]
    """The double whose bits are those of m shifted left by 52 (fs_pow2's memcpy dance)."""
    sig = types.float64(types.float64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        b = builder.bitcast(args[0], _I64)
        b = builder.shl(b, ir.Constant(_I64, 52))
        return builder.bitcast(b, _F64)

    return sig, codegen


@intrinsic
def _shl23_bits(typingctx, z):  # type: ignore[no-untyped-def]
    """The float32 whose bits are those of z shifted left by 23 (fs_fwd_f32's 2^n)."""
    sig = types.float32(types.float32)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        b = builder.bitcast(args[0], _I32)
        b = builder.shl(b, ir.Constant(_I32, 23))
        return builder.bitcast(b, _F32)

    return sig, codegen


def _table_bits(fty: ir.Type, ity: ir.IntType, bias: int, mant: int) -> Any:
    """2^m and the bits of j from z = fma(x, 4/ln2, MAGIC), k = 4m + j in z's low bits: 2^m's
    exponent field is (bits - bias) >> 2 (arithmetic shift) moved up by the mantissa width; j's
    bits are bits & 1 and bits & 2, as booleans (selects on them vectorize in z's width)."""

    def build(builder: ir.IRBuilder, z: Any) -> Tuple[Any, ...]:
        b = builder.bitcast(z, ity)
        e = builder.ashr(builder.sub(b, ir.Constant(ity, bias)), ir.Constant(ity, 2))
        t = builder.bitcast(builder.shl(e, ir.Constant(ity, mant)), fty)
        bits = [
            builder.icmp_unsigned(
                "!=", builder.and_(b, ir.Constant(ity, 1 << i)), ir.Constant(ity, 0)
            )
            for i in range(2)
        ]
        return (t, *bits)

    return build


_BITS32 = _table_bits(_F32, _I32, MAGIC_F_BITS - 508, 23)
_BITS64 = _table_bits(_F64, _I64, MAGIC_BITS - 4092, 52)


@intrinsic
def _pow2_index(typingctx, z):  # type: ignore[no-untyped-def]
    """(2^m, j & 1, j & 2) of the header's fs_bwd_x_*_fast, for float32 or float64 z."""
    build = _BITS32 if z == types.float32 else _BITS64
    sig = types.Tuple((z,) + (types.boolean,) * 2)(z)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        t, *bits = build(builder, args[0])
        bits = [context.cast(builder, v, types.boolean, types.boolean) for v in bits]
        return context.make_tuple(builder, signature.return_type, (t, *bits))

    return sig, codegen


def _fenv_fn(builder: ir.IRBuilder, name: str) -> ir.Function:
    fnty = ir.FunctionType(ir.IntType(32), [_I8P])
    return cgutils.get_or_insert_function(builder.module, fnty, name)


@intrinsic
def _fenv_save(typingctx):  # type: ignore[no-untyped-def]
    """fegetenv into a buffer in the caller's frame (512 bytes: larger than any fenv_t)."""
    sig = types.voidptr()

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        buf = cgutils.alloca_once(builder, ir.ArrayType(_I64, 64))
        p = builder.bitcast(buf, _I8P)
        builder.call(_fenv_fn(builder, "fegetenv"), [p])
        return p

    return sig, codegen


@intrinsic
def _fenv_restore(typingctx, p):  # type: ignore[no-untyped-def]
    """fesetenv from the buffer _fenv_save filled: no flag raised in between survives."""
    sig = types.void(types.voidptr)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        builder.call(_fenv_fn(builder, "fesetenv"), [args[0]])
        return context.get_dummy_value()

    return sig, codegen


# ---------------------------------------------------------------------------------------------
# Scalar kernels: fs_* of _selu_kernels.h.  Inlined at numba IR level so that the loops are
# straight-line code LLVM can vectorize.

_inline = njit(inline="always", cache=False)


@_inline
def _clamp_below(x, lo):  # type: ignore[no-untyped-def]
    return lo if x < lo else x  # NaN passes


@_inline
def _pow2(n):  # type: ignore[no-untyped-def]
    m = n + MAGIC_BIAS
    return _shl52_bits(m)


@_inline
def _reduce(x):  # type: ignore[no-untyped-def]
    n = (x * LOG2E + MAGIC) - MAGIC  # plain operations, as fs_reduce
    r = _fma(n, NEG_LN2_HI, x)
    c = n * LN2_LO
    s = r - c
    bb = s - r
    r_lo = (r - (s - bb)) + (-c - bb)
    return n, s, r_lo


@_inline
def _reduce_f32(x):  # type: ignore[no-untyped-def]
    """fs_reduce_f32: (r, t = 2^n) with x = n*ln2 + r, in double."""
    z = _fma(x, LOG2E, MAGIC_BIAS)
    return _fma(z - MAGIC_BIAS, NEG_LN2, x), _shl52_bits(z)


@_inline
def _expm1_f32(x):  # type: ignore[no-untyped-def]
    """fs_expm1_f32: (expm1(r), t = 2^n) with x = n*ln2 + r, in double."""
    r, t = _reduce_f32(x)
    q = _fma(_fma(_fma(_fma(_fma(Q2_C5, r, Q2_C4), r, Q2_C3), r, Q2_C2), r, Q2_C1), r, Q2_C0)
    return _fma(r * r, q, r), t


@_inline
def _sa_exp_f32(x):  # type: ignore[no-untyped-def]
    """fs_sa_exp_f32: SA * exp(x) in double."""
    r, t = _reduce_f32(x)
    p = _fma(
        _fma(
            _fma(_fma(_fma(_fma(EXPSA_C6, r, EXPSA_C5), r, EXPSA_C4), r, EXPSA_C3), r, EXPSA_C2),
            r,
            EXPSA_C1,
        ),
        r,
        EXPSA_C0,
    )
    return p * t


@_inline
def _expm1_small_dd(r, r_lo):  # type: ignore[no-untyped-def]
    """fs_expm1_small_dd: no fma, Estrin's scheme, r^2/2 split exactly (Veltkamp)."""
    r2 = r * r
    r4 = r2 * r2
    q03 = (Q3_C3 * r + Q3_C2) * r2 + (Q3_C1 * r + Q3_C0)
    q47 = (Q3_C7 * r + Q3_C6) * r2 + (Q3_C5 * r + Q3_C4)
    q = ((Q3_C9 * r + Q3_C8) * (r4 * r4) + q47 * r4) + q03
    g = r * SPLIT
    rh = g - (g - r)
    rl = r - rh
    h = 0.5 * rh * rh
    h_lo = rl * (rh + 0.5 * rl)
    a = r + h
    a_lo = h - (a - r)
    tail = (r2 * r * q + h_lo) + (r_lo * r + r_lo)
    return a, a_lo + tail


@_inline
def _fast2sum(a, b):  # type: ignore[no-untyped-def]
    s = a + b
    return s, b - (s - a)


@_inline
def _same(r):  # type: ignore[no-untyped-def]
    return r


@_inline
def _canon64(r):  # type: ignore[no-untyped-def]
    return NAN64 if r != r else r


@_inline
def _canon32(r):  # type: ignore[no-untyped-def]
    return NAN32 if r != r else r


@_inline
def _fwd_f32(x):  # type: ignore[no-untyped-def]
    """fs_fwd_f32: float32 arithmetic throughout (see the header for the error analysis)."""
    xc = CLAMP_F if x < CLAMP_F else x
    z = _fma(xc, LOG2E_F, MAGIC_BIAS_F)
    n = z - MAGIC_BIAS_F
    t = _shl23_bits(z)
    s_hi = _fma(n, NEG_LN2_HI_F, xc)
    s_lo = n * NEG_LN2_LO_F
    s = s_hi + s_lo
    q = _fma(
        _fma(
            _fma(_fma(_fma(EXPM1_F_C5, s, EXPM1_F_C4), s, EXPM1_F_C3), s, EXPM1_F_C2), s, EXPM1_F_C1
        ),
        s,
        EXPM1_F_C0,
    )
    p2 = _fma(s * s, q, s_lo)
    e_hi = SA_HI_F * t
    sh = e_hi - SA_HI_F
    err = e_hi - (sh + SA_HI_F)
    lo = SA_LO_F * t
    c = _fma(lo, s_hi, (lo - SA_LO_F) + err)
    neg = sh + _fma(e_hi, s_hi, _fma(e_hi, p2, c))
    pos = _fma(x, SCALE_DN_F, x * SCALE_UP_F)
    return neg if x < ZERO_F else pos  # NaN: x's own payload, as in C


@_inline
def _bwd_x_f32(gf, xf):  # type: ignore[no-untyped-def]
    # exp(-inf) = 0 exactly (g = inf gives inf * 0 = NaN)
    d_neg = 0.0 if xf == -np.inf else _sa_exp_f32(_clamp_below(np.float64(xf), -200.0))
    d = SCALE_HI if xf > 0.0 else d_neg
    return np.float32(np.float64(gf) * d)


@_inline
def _bwd_y_f32_hard(g, y):  # type: ignore[no-untyped-def]
    """fs_bwd_y_f32_hard_g: where the fast form does not apply."""
    return not (abs(g) <= np.float32(2.0**100) and y >= -SA_HI_F and y <= np.float32(2.0**20))


@_inline
def _bwd_y_f32_parts(y, fast):  # type: ignore[no-untyped-def]
    """fs_bwd_y_f32_k's d = dh + dl: Fast2Sum where fast (|y| <= SA_HI_F wherever e is used),
    else TwoSum."""
    s = y + SA_HI_F
    if fast:
        e = y - (s - SA_HI_F)
    else:
        bb = s - y
        e = (y - (s - bb)) + (SA_HI_F - bb)
    pos = y > 0.0
    return (SCALE_HI_F if pos else s), (SCALE_LO_F if pos else e + SA_LO_F)


@_inline
def _bwd_y_f32(g, y):  # type: ignore[no-untyped-def]
    """fs_bwd_y_f32_any: float32 lanes, TwoSum and one fma."""
    dh, dl = _bwd_y_f32_parts(y, False)
    v = g * dh if g == 0.0 else _fma(g, dh, g * dl)
    hard = _bwd_y_f32_hard(g, y)
    return _bwd_y_any(v, g, y, hard, np.float32(2.0**20), FLT_MAX, dh + SA_LO_F)


@_inline
def _bwd_y_f32_fast(g, y):  # type: ignore[no-untyped-def]
    """fs_bwd_y_f32_fast: g itself at g = 0, for the elements _bwd_y_f32_hard leaves."""
    dh, dl = _bwd_y_f32_parts(y, True)
    return g if g == 0.0 else _fma(g, dh, g * dl)


@_inline
def _bwd_y_f32_any(g, y):  # type: ignore[no-untyped-def]
    return _canon32(_bwd_y_f32(g, y))


@_inline
def _bwd_y_any(v, g, y, hard, big, vmax, d_plain):  # type: ignore[no-untyped-def]
    """FS_BWD_Y_ANY: where hard, a finite v, or an overflow of finite parts, else the plain
    product g * d_plain, d_plain = (SCALE_HI or y + SA_HI) + SA_LO."""
    if not hard or v - v == 0.0 or (v == v and abs(g) <= vmax and abs(y) <= big):
        return v
    return g * d_plain


@_inline
def _fwd_f64(x):  # type: ignore[no-untyped-def]
    """fs_fwd_f64: one final fma of the operands the element needs (fs_fma_small)."""
    xc = _clamp_below(x, -128.0)
    n, r_hi, r_lo = _reduce(xc)
    t = _pow2(n)
    p_hi, p_lo = _expm1_small_dd(r_hi, r_lo)
    tm1, tm1_lo = _fast2sum(-1.0, t)
    b, b_lo = _fast2sum(tm1, t * p_hi)
    a_lo = t * p_lo
    e_lo = (b_lo + a_lo) + tm1_lo
    tiny = abs(x) < TWO_M900
    neg = (x < 0.0) & (not tiny)
    xs = x * TWO_P200 if tiny else x
    c_hi = SA_HI if x < 0.0 else SCALE_HI
    c = SA_HI * e_lo + SA_LO * b if neg else (SA_LO if x < 0.0 else SCALE_LO) * xs
    r = _fma(c_hi, b if neg else xs, c)
    return r * TWO_M200 if tiny else r


@_inline
def _dd_times(g, dh, dl):  # type: ignore[no-untyped-def]
    """fs_dd_times: g * (dh + dl) rounded once where that is safe, else one plain product (for g =
    +-0, +-inf, NaN, and overflow)."""
    v = _fma(g, dh, g * dl)
    return v if (g - g == 0.0) & (g != 0.0) & (v - v == 0.0) else g * (dh + dl)


@_inline
def _bwd_x_f64(g, x):  # type: ignore[no-untyped-def]
    xc = _clamp_below(x, -2000.0)
    n, r_hi, r_lo = _reduce(xc)
    p_hi, p_lo = _expm1_small_dd(r_hi, r_lo)
    s, s_lo = _fast2sum(1.0, p_hi)
    s_lo = s_lo + p_lo
    d_hi = SA_HI * s
    d_lo = _fma(SA_HI, s, -d_hi) + _fma(SA_HI, s_lo, SA_LO * s)
    n1 = -1000.0 if n < -1000.0 else n
    n23 = n - n1
    n2 = -1000.0 if n23 < -1000.0 else n23
    n3 = n23 - n2
    t1 = _pow2(n1)
    t2 = _pow2(n2)
    t3 = _pow2(n3)
    pos = x > 0.0
    zero_d = x == -np.inf  # exp(-inf) = 0 exactly: inf * 0 is NaN
    dh = SCALE_HI if pos else (0.0 if zero_d else d_hi * t1)
    dl = SCALE_LO if pos else (0.0 if zero_d else d_lo * t1)
    v = _dd_times(g, dh, dl)
    u = 1.0 if pos else t2
    w = 1.0 if pos else t3
    return (v * u) * w


@_inline
def _lookup4(table, b0, b1):  # type: ignore[no-untyped-def]
    """table[j] for j given as its two bits: selects (LLVM vectorizes them as blends, where an
    indexed load would become a gather)."""
    return (table[3] if b0 else table[2]) if b1 else (table[1] if b0 else table[0])


@_inline
def _bwd_x_f32_hard(x):  # type: ignore[no-untyped-def]
    return not (x >= HARD_F32)


@_inline
def _bwd_x_f64_hard(x):  # type: ignore[no-untyped-def]
    return not (x > -700.0)


@_inline
def _bwd_x_f32_parts(x, t_hi, t_lo, k_hi, k_lo):  # type: ignore[no-untyped-def]
    """fs_bwd_x_f32_parts with the table t_hi + t_lo (4-tuples) and k_hi + k_lo for x > 0:
    plain operations, (a, bl)."""
    z = x * LOG2E4_F + MAGIC_F
    k = z - MAGIC_F
    s = _fma(k, NEG_L4_HI_F, x) - k * L4_LO_F
    t, b0, b1 = _pow2_index(z)
    th = _lookup4(t_hi, b0, b1)
    tl = _lookup4(t_lo, b0, b1)
    p = (s * s) * (((s * EXPS_F_C3 + EXPS_F_C2) * s + EXPS_F_C1) * s + EXPS_F_C0) + s
    lo = th * p + tl
    pos = x > ZERO_F
    return (k_hi if pos else th * t), (k_lo if pos else lo * t)


@_inline
def _times_parts_f32(g, a, bl):  # type: ignore[no-untyped-def]
    """fs_times_parts_f32: g*(a + bl) rounded once (g*a alone for g = +-0, +-inf, NaN)."""
    ag = abs(g)
    return _fma(g, a, g * bl) if (ag > ZERO_F) & (ag <= FLT_MAX) else _canon32(g * a)


@_inline
def _times_parts_f64(g, a, bl):  # type: ignore[no-untyped-def]
    """fs_times_parts_f64 (with a hardware fma, fs_fma_small is fs_fma)."""
    ag = abs(g)
    return _fma(g, a, g * bl) if (ag > 0.0) & (ag <= DBL_MAX) else _canon64(g * a)


@_inline
def _bwd_x_f32_fast(g, x):  # type: ignore[no-untyped-def]
    a, bl = _bwd_x_f32_parts(x, T32_HI, T32_LO, SCALE_HI_F, SCALE_LO_F)
    return _times_parts_f32(g, a, bl)


@_inline
def _bwd_x_f64_parts(x, t_hi, t_lo, k_hi, k_lo):  # type: ignore[no-untyped-def]
    """fs_bwd_x_f64_parts (the table and k as _bwd_x_f32_parts'): plain operations (Estrin's
    scheme), (a, bl)."""
    z = x * LOG2E4 + MAGIC
    k = z - MAGIC
    s = _fma(k, NEG_L4_HI, x) - k * L4_LO
    t, b0, b1 = _pow2_index(z)
    th = _lookup4(t_hi, b0, b1)
    tl = _lookup4(t_lo, b0, b1)
    s2 = s * s
    q = ((EXPS_C7 * s + EXPS_C6) * s2 + (EXPS_C5 * s + EXPS_C4)) * (s2 * s2) + (
        (EXPS_C3 * s + EXPS_C2) * s2 + (EXPS_C1 * s + EXPS_C0)
    )
    p = s2 * q + s
    lo = th * p + tl
    pos = x > 0.0
    return (k_hi if pos else th * t), (k_lo if pos else lo * t)


@_inline
def _bwd_x_f64_fast(g, x):  # type: ignore[no-untyped-def]
    a, bl = _bwd_x_f64_parts(x, T64_HI, T64_LO, SCALE_HI, SCALE_LO)
    return _times_parts_f64(g, a, bl)


@_inline
def _bwd_x_f32_any(g, x):  # type: ignore[no-untyped-def]
    return _canon32(_bwd_x_f32(g, x)) if _bwd_x_f32_hard(x) else _bwd_x_f32_fast(g, x)


@_inline
def _bwd_x_f64_any(g, x):  # type: ignore[no-untyped-def]
    return _canon64(_bwd_x_f64(g, x)) if _bwd_x_f64_hard(x) else _bwd_x_f64_fast(g, x)


@_inline
def _bwd_y_f64_hard(g, y):  # type: ignore[no-untyped-def]
    """fs_bwd_y_f64_hard_g (with a hardware fma)."""
    return not (abs(g) <= 2.0**900 and y > -SA_HI and y <= 2.0**50)


@_inline
def _bwd_y_f64_parts(y, exact):  # type: ignore[no-untyped-def]
    """fs_bwd_y_f64_parts: TwoSum where exact (the general form, which keeps y = -SA_HI's
    d = SA_LO + SA_LO2 apart), else Fast2Sum."""
    s = y + SA_HI
    if exact:
        bb = s - y
        e = (y - (s - bb)) + (SA_HI - bb)
    else:
        e = y - (s - SA_HI)
    pos = y > 0.0
    at = exact and s == 0.0
    dh = SCALE_HI if pos else (SA_LO if at else s)
    dl = SCALE_LO if pos else (SA_LO2 if at else (e + SA_LO) + SA_LO2)
    return dh, dl


@_inline
def _bwd_y_f64(g, y):  # type: ignore[no-untyped-def]
    """fs_bwd_y_f64_any (with a hardware fma, fs_fma_small is fs_fma)."""
    dh, dl = _bwd_y_f64_parts(y, True)
    v = g * dh if g == 0.0 else _fma(g, dh, g * dl)
    hard = _bwd_y_f64_hard(g, y)
    plain = (SCALE_HI if y > 0.0 else y + SA_HI) + SA_LO
    return _bwd_y_any(v, g, y, hard, 2.0**50, DBL_MAX, plain)


@_inline
def _bwd_y_f64_fast(g, y):  # type: ignore[no-untyped-def]
    """fs_bwd_y_f64_fast, as _bwd_y_f32_fast."""
    dh, dl = _bwd_y_f64_parts(y, False)
    return g if g == 0.0 else _fma(g, dh, g * dl)


@_inline
def _bwd_y_f64_any(g, y):  # type: ignore[no-untyped-def]
    return _canon64(_bwd_y_f64(g, y))


@_inline
def _bwd_x_f32_hard_g(g, x):  # type: ignore[no-untyped-def]
    return _bwd_x_f32_hard(x)


@_inline
def _bwd_x_f64_hard_g(g, x):  # type: ignore[no-untyped-def]
    return _bwd_x_f64_hard(x)


# ---------------------------------------------------------------------------------------------
# Loops over [lo, hi).  LLVM only vectorizes a loop whose output may alias an input after a
# run-time overlap check, and that check fails when out *is* the input (in-place calls), so each
# aliasing case gets its own loop in which no written array is also read through another name.
# Loops run over slices from index 0 so that numba's negative-index wraparound folds away.


def _make_chunk1(f: Any, canon: Any) -> Any:
    @njit(cache=False)
    def chunk(x, out, lo, hi):  # type: ignore[no-untyped-def]
        if out.ctypes.data == x.ctypes.data:
            a = out[lo:hi]
            for i in range(a.size):
                a[i] = canon(f(a[i]))
        else:
            xs = x[lo:hi]
            os_ = out[lo:hi]
            for i in range(xs.size):
                os_[i] = canon(f(xs[i]))

    return chunk


def _make_chunk2(f: Any, canon: Any) -> Any:
    @njit(cache=False)
    def chunk(g, x, out, lo, hi):  # type: ignore[no-untyped-def]
        po = out.ctypes.data
        if po == g.ctypes.data:
            a = out[lo:hi]
            if po == x.ctypes.data:
                for i in range(a.size):
                    a[i] = canon(f(a[i], a[i]))
            else:
                xs = x[lo:hi]
                for i in range(a.size):
                    a[i] = canon(f(a[i], xs[i]))
        elif po == x.ctypes.data:
            a = out[lo:hi]
            gs = g[lo:hi]
            for i in range(a.size):
                a[i] = canon(f(gs[i], a[i]))
        else:  # out overlaps neither input (the front end guarantees it); g may be x
            gs = g[lo:hi]
            xs = x[lo:hi]
            os_ = out[lo:hi]
            for i in range(os_.size):
                os_[i] = canon(f(gs[i], xs[i]))

    return chunk


# Elements per block of the backward's fast/hard split (FS_BLOCK in the header).
BLOCK = 1024


def _make_chunk2_split(fast: Any, hard: Any, any_: Any, one_pass: bool) -> Any:
    """The backward's blocks, as the header's generic FS_BLOCKED_BACKWARD: the fast kernel alone
    where no (g, x) of the block is hard, else ``any_`` (the full kernel where hard, the fast
    one's bits elsewhere, so blocking never shows).  With ``one_pass``, and out apart from both
    inputs, the scan runs in the fast kernel's loop and a hard block is done again (one stream
    of loads and stores); otherwise the scan reads the block first.  One pass, against two
    (Zen 3, one thread, 1e5-1e7): from the result 0.80-0.97x the time in float32 and 0.77-0.88x
    in float64; from x 0.93-1.12x in float32 and 1.04-1.12x in float64 (LLVM's loop does worse
    with the scan in it), so the backward from x keeps two passes."""
    fast_chunk = _make_chunk2(fast, _same)
    any_chunk = _make_chunk2(any_, _same)

    @njit(cache=False)
    def chunk(g, x, out, lo, hi):  # type: ignore[no-untyped-def]
        po = out.ctypes.data
        if one_pass and po != g.ctypes.data and po != x.ctypes.data:
            for b in range(lo, hi, BLOCK):
                e = min(b + BLOCK, hi)
                gs = g[b:e]
                xs = x[b:e]
                os_ = out[b:e]
                h = False
                for i in range(xs.size):
                    h |= hard(gs[i], xs[i])
                    os_[i] = fast(gs[i], xs[i])
                if h:
                    any_chunk(g, x, out, b, e)
            return
        for b in range(lo, hi, BLOCK):
            e = min(b + BLOCK, hi)
            gs = g[b:e]
            xs = x[b:e]
            h = False
            for i in range(xs.size):
                h |= hard(gs[i], xs[i])
            if h:
                any_chunk(g, x, out, b, e)
            else:
                fast_chunk(g, x, out, b, e)

    return chunk


# Chunk functions per (kernel, dtype); jitted (not cached themselves: they are compiled into, and
# cached with, the drivers below).
_CHUNKS = {
    ("forward", "float32"): _make_chunk1(_fwd_f32, _same),
    ("forward", "float64"): _make_chunk1(_fwd_f64, _same),
    ("backward_x", "float32"): _make_chunk2_split(
        _bwd_x_f32_fast, _bwd_x_f32_hard_g, _bwd_x_f32_any, False
    ),
    ("backward_x", "float64"): _make_chunk2_split(
        _bwd_x_f64_fast, _bwd_x_f64_hard_g, _bwd_x_f64_any, False
    ),
    ("backward_y", "float32"): _make_chunk2_split(
        _bwd_y_f32_fast, _bwd_y_f32_hard, _bwd_y_f32_any, True
    ),
    ("backward_y", "float64"): _make_chunk2_split(
        _bwd_y_f64_fast, _bwd_y_f64_hard, _bwd_y_f64_any, True
    ),
}


@njit(inline="always", cache=False)
def _bound(n, nt, i):  # type: ignore[no-untyped-def]
    if i >= nt:
        return n
    b = (n // nt) * i
    return b - b % ALIGN_ELEMS


# ---------------------------------------------------------------------------------------------
# Drivers.  numba's on-disk cache is keyed by the Python function (qualname and line), not by
# the parallel flag, so each (kernel, dtype, serial/parallel) is its own Python function, built
# from source text by _define below.

_DRIVER_SRC = {
    False: """
def {name}({args}, out, nt):
    if {size_mismatch}:
        raise ValueError("all arrays must have the same number of elements")
    env = _fenv_save()
    _chunk_{key}({args}, out, 0, out.size)
    _fenv_restore(env)
""",
    True: """
def {name}({args}, out, nt):
    if {size_mismatch}:
        raise ValueError("all arrays must have the same number of elements")
    env = _fenv_save()
    n = out.size
    for c in prange(nt):
        _chunk_{key}({args}, out, _bound(n, nt, c), _bound(n, nt, c + 1))
    _fenv_restore(env)
""",
}

_ARGS = {"forward": "x", "backward_x": "g, x", "backward_y": "g, x"}
_SIZE_MISMATCH = {
    "forward": "x.size != out.size",
    "backward_x": "g.size != out.size or x.size != out.size",
    "backward_y": "g.size != out.size or x.size != out.size",
}
_NUMBA_DTYPES: Dict[str, Any] = {"float32": types.float32, "float64": types.float64}


def _define(kind: str, dtype: str, parallel: bool) -> Any:
    """The plain Python function for one driver, defined in this module's namespace (so numba's
    cache finds its source file) with a unique name."""
    key = f"{kind}_{dtype}"
    name = f"_{key}_{'par' if parallel else 'ser'}"
    glb = globals()
    glb[f"_chunk_{key}"] = _CHUNKS[(kind, dtype)]
    code = compile(
        _DRIVER_SRC[parallel].format(
            name=name, args=_ARGS[kind], key=key, size_mismatch=_SIZE_MISMATCH[kind]
        ),
        __file__,
        "exec",
    )
    exec(code, glb)
    return glb[name]


_dispatchers: Dict[Tuple[str, str, bool], Any] = {}
_compile_lock = threading.Lock()


def _kernel(kind: str, dtype: str, parallel: bool) -> Any:
    """The compiled driver for (kind, dtype, parallel): created, and compiled or loaded from the
    on-disk cache, on first use."""

    def make() -> Any:
        ro, rw = _array_types(dtype)
        arrays = (ro,) if kind == "forward" else (ro, ro)
        sig = types.void(*arrays, rw, types.intp)
        return _jit(sig, parallel, _define(kind, dtype, parallel))

    return _compiled(_dispatchers, (kind, dtype, parallel), make)


def _compiled(cache: Dict[Any, Any], key: Any, make: Callable[[], Any]) -> Any:
    """cache[key], made by make() under the compile lock the first time."""
    d = cache.get(key)
    if d is None:
        with _compile_lock:
            d = cache.get(key)
            if d is None:
                d = cache[key] = make()
    return d


def _array_types(dtype: str) -> Tuple[Any, Any]:
    """numba's types of a read-only and of a writable contiguous 1-D array of dtype."""
    dt = _NUMBA_DTYPES[dtype]
    return types.Array(dt, 1, "C", readonly=True), types.Array(dt, 1, "C")


def _jit(sig: Any, parallel: bool, py_func: Any) -> Any:
    """njit with the on-disk cache, or without it where no cache directory is writable."""
    try:
        return njit(sig, parallel=parallel, cache=True, nogil=True)(py_func)
    except RuntimeError as exc:
        if "cannot cache" not in str(exc):
            raise
        return njit(sig, parallel=parallel, cache=False, nogil=True)(py_func)


# ---------------------------------------------------------------------------------------------
# Threads, fork and the threading layer.

# True in a child created by fork(): numba's parallel kernels abort there if the parent used GNU
# OpenMP (numba's omp layer, or the cython backend), so the serial twins run instead.
_in_forked_child = False
# Why parallel kernels cannot run in this process (e.g. NUMBA_THREADING_LAYER names a layer
# that is not installed), or None.
_parallel_error: Any = None
# No parallel launch at all: set after a fork or when the parallel kernels cannot be built.
_serial_only = False


def _after_fork_in_child() -> None:
    global _in_forked_child, _serial_only, _par_lock
    _in_forked_child = True
    _serial_only = True
    _par_lock = threading.Lock()  # the parent's may be held by a thread that is not here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

# The threading layer numba picked; None until the first parallel launch tells.
_layer: Any = None
_par_lock = threading.Lock()
# numba cannot run more threads than it started with (NUMBA_NUM_THREADS, default: the CPUs).
_MAX_THREADS = max(1, int(_nbconfig.NUMBA_NUM_THREADS))
# Smallest array the parallel kernels take: GRAIN elements per thread, as in the cython backend.
_PAR_MIN = 2 * GRAIN

# Fast lookup for the per-call path: (kind, dtype.char) -> compiled serial / parallel driver.
_DTYPE_OF_CHAR = {"f": "float32", "d": "float64"}
_serial: Dict[Tuple[str, str], Any] = {}
_parallel: Dict[Tuple[str, str], Any] = {}


def _get_serial(kind: str, char: str) -> Any:
    k = _serial.get((kind, char))
    if k is None:
        k = _serial[(kind, char)] = _kernel(kind, _DTYPE_OF_CHAR[char], False)
    return k


def _get_parallel(kind: str, char: str) -> Any:
    """The parallel driver, or None (and serial from now on) if numba cannot build it here."""
    global _parallel_error, _serial_only
    k = _parallel.get((kind, char))
    if k is None:
        try:
            k = _kernel(kind, _DTYPE_OF_CHAR[char], True)
        except MemoryError:  # transient, perhaps: run serially this time, try again next time
            return None
        except Exception as exc:  # noqa: BLE001 - numba raises ValueError for a missing layer
            _parallel_error = f"{type(exc).__name__}: {exc}".strip()
            _serial_only = True
            warnings.warn(
                "fastselu: numba's parallel kernels cannot run here, using one thread: "
                + _parallel_error.splitlines()[0],
                RuntimeWarning,
                stacklevel=4,
            )
            return None
        _parallel[(kind, char)] = k
    return k


_probed = threading.local()


def _threads_startable(k: int) -> bool:
    """Whether k more OS threads with the default stack size can be started now.

    GNU OpenMP exits the whole process ("libgomp: Thread creation failed") when it cannot create
    a worker, e.g. under an address-space limit (ulimit -v) or a pids cgroup, and libgomp gives
    every Python thread that launches a parallel region its own workers.  So before a thread's
    first launch (and before any launch that needs more workers than it has), start k Python
    threads -- the same default stack size -- and let them exit: if that fails, run serially.
    """
    if getattr(_probed, "ok", 0) >= k:
        return True
    release = threading.Event()
    started = []
    ok = True
    try:
        for _ in range(k):
            t = threading.Thread(target=release.wait, daemon=True)
            t.start()
            started.append(t)
    except (RuntimeError, MemoryError):  # "can't start new thread"
        ok = False
    finally:
        release.set()
        for t in started:
            t.join()
    if ok:
        _probed.ok = k
    return ok


def _threads_for(n: int, nthreads: int) -> int:
    if _serial_only:
        return 1
    nt = n // GRAIN
    if nt > nthreads:
        nt = nthreads
    if nt > _MAX_THREADS:
        nt = _MAX_THREADS
    return nt if nt > 1 else 1


def _call_parallel(kernel: Any, args: Tuple[Any, ...], nt: int) -> None:
    # numba's thread count is per calling thread: set it for this launch, then put the caller's
    # own setting back.
    saved = numba.get_num_threads()
    if saved == nt:
        kernel(*args, nt)
        return
    numba.set_num_threads(nt)
    try:
        kernel(*args, nt)
    finally:
        numba.set_num_threads(saved)


def _run_parallel(
    kind: str, arrays: Tuple[np.ndarray, ...], out: np.ndarray, nthreads: int
) -> None:
    """Run on min(nthreads, n // GRAIN, NUMBA_NUM_THREADS) threads.  While the threading layer
    is unknown (before the first launch) or is 'workqueue' (which aborts the process when two
    threads launch at once), launches hold a lock; a thread that finds it busy runs the serial
    twin on its own thread rather than wait."""
    global _layer
    char = out.dtype.char
    nt = _threads_for(out.shape[0], nthreads)
    # Before the first launch the layer (and how many threads it starts) is unknown: probe all.
    if nt > 1 and not _threads_startable(nt - 1 if _layer is not None else _MAX_THREADS):
        nt = 1
    kernel = _get_parallel(kind, char) if nt > 1 else None
    if kernel is None:
        _get_serial(kind, char)(*arrays, out, 1)
        return
    if _layer is not None and _layer != "workqueue":
        _call_parallel(kernel, (*arrays, out), nt)
        return
    lock = _par_lock
    if not lock.acquire(blocking=False):
        _get_serial(kind, char)(*arrays, out, 1)
        return
    try:
        _call_parallel(kernel, (*arrays, out), nt)
        if _layer is None:
            _layer = numba.threading_layer()
    finally:
        lock.release()


def _explain(kind: str, arrays: Tuple[Any, ...], out: Any, exc: Exception) -> Exception:
    """A clear error for arguments outside the seam's contract (numba's dispatcher would only
    say that no signature matches); the front end never passes such arguments."""
    names = ("x",) if kind == "forward" else ("grad_output", "x" if kind == "backward_x" else "y")
    for name, a in (*zip(names, arrays), ("out", out)):
        if not isinstance(a, np.ndarray):
            return TypeError(f"{name} must be a numpy.ndarray, not {type(a).__name__}")
        if a.dtype.char not in "fd" or not a.dtype.isnative:
            return TypeError(f"{name} must be native float32 or float64, not {a.dtype}")
        if a.ndim != 1 or not a.flags.c_contiguous:
            overlap = a.ndim == 1 and a.size > 1 and abs(a.strides[0]) < a.itemsize
            return ValueError(
                f"{name} must be a 1-D C-contiguous array (got shape {a.shape}, strides "
                f"{a.strides}{'; its elements overlap each other' if overlap else ''})"
            )
    if not out.flags.writeable:
        return ValueError("out is read-only")
    if any(a.dtype != out.dtype for a in arrays):
        return TypeError("all arrays must have the same dtype")
    return exc


def _call(kind: str, arrays: Tuple[Any, ...], out: Any, nthreads: int) -> None:
    try:
        if nthreads < 2 or out.shape[0] < _PAR_MIN or _serial_only:
            _get_serial(kind, out.dtype.char)(*arrays, out, 1)
        else:
            _run_parallel(kind, arrays, out, nthreads)
    except (TypeError, KeyError, AttributeError, IndexError) as exc:
        raise _explain(kind, arrays, out, exc) from None


# ---------------------------------------------------------------------------------------------
# The seam.


def _dispatch(kind: str, arrays: Tuple[np.ndarray, ...], out: np.ndarray, nthreads: int) -> None:
    # The common serial case first, without _call's checks: it is the per-call cost of small
    # arrays (a TypeError there means arguments outside the seam: _call explains them).
    k = _serial.get((kind, out.dtype.char))
    if k is not None and (nthreads < 2 or out.shape[0] < _PAR_MIN or _serial_only):
        try:
            k(*arrays, out, 1)
            return
        except TypeError:
            pass
    _call(kind, arrays, out, nthreads)


def forward(x: np.ndarray, out: np.ndarray, nthreads: int, fmt: Optional[str] = None) -> None:
    """out = SELU(x); out may be x."""
    if fmt is not None:  # float16/bfloat16 bits (_half_numba)
        return _half_run("forward", fmt, (x,), out, nthreads)
    _dispatch("forward", (x,), out, nthreads)


def backward_x(
    g: np.ndarray, x: np.ndarray, out: np.ndarray, nthreads: int, fmt: Optional[str] = None
) -> None:
    """out = g * SELU'(x); out may be g or x."""
    if fmt is not None:  # float16/bfloat16 bits (_half_numba)
        return _half_run("backward_x", fmt, (g, x), out, nthreads)
    _dispatch("backward_x", (g, x), out, nthreads)


def backward_y(
    g: np.ndarray, y: np.ndarray, out: np.ndarray, nthreads: int, fmt: Optional[str] = None
) -> None:
    """out = g * (SCALE if y > 0 else y + SCALE*ALPHA); out may be g or y."""
    if fmt is not None:  # float16/bfloat16 bits (_half_numba)
        return _half_run("backward_y", fmt, (g, y), out, nthreads)
    _dispatch("backward_y", (g, y), out, nthreads)


def _half_run(
    kind: str, fmt: str, arrays: Tuple[np.ndarray, ...], out: np.ndarray, nthreads: int
) -> None:
    global _half_numba
    if _half_numba is None:  # imported on the first 16-bit call
        from . import _half_numba
    _half_numba.run(kind, fmt, arrays, out, nthreads)


_half_numba: Any = None


def threading_layer() -> str:
    """The numba threading layer in use, or what is configured if no parallel kernel ran yet."""
    if _layer is not None:
        return str(_layer)
    try:
        return str(numba.threading_layer())
    except ValueError:  # no parallel launch yet
        return f"not started (NUMBA_THREADING_LAYER={_nbconfig.THREADING_LAYER})"


def _target() -> Tuple[str, str]:
    """LLVM's target CPU for numba's code and the widest vector ISA it may use there."""
    from llvmlite import binding as ll

    cpu = _nbconfig.CPU_NAME or ll.get_host_cpu_name()
    features = _nbconfig.CPU_FEATURES or ll.get_host_cpu_features().flatten()
    flags = {f[1:] for f in features.split(",") if f.startswith("+")}
    if "avx512f" in flags:
        isa = "avx512"
    elif {"avx2", "fma"} <= flags:
        isa = "avx2"
    else:
        isa = "baseline"
    return cpu, isa


def info() -> Dict[str, Any]:
    """'simd' is None: numba compiles for the host CPU itself (see 'target_cpu'/'vector_isa'),
    so FASTSELU_SIMD does not apply to this backend.  'openmp' is True only under numba's 'omp'
    threading layer (known once a parallel kernel has run); 'parallel' says whether kernels may
    use more than one thread at all, under whichever layer."""
    cpu, isa = _target()
    layer = threading_layer()
    parallel = _MAX_THREADS > 1 and _parallel_error is None
    return {
        "simd": None,
        "openmp": parallel and layer == "omp",
        "parallel": parallel,
        "threading_layer": layer,
        "concurrency": "lock while the layer is unknown or 'workqueue'; a busy lock runs serially",
        "parallel_error": _parallel_error,
        "numba": numba.__version__,
        "numba_num_threads": _MAX_THREADS,
        "target_cpu": cpu,
        "vector_isa": isa,
        "grain": GRAIN,
        "in_forked_child": _in_forked_child,
    }


# ---------------------------------------------------------------------------------------------
# AlphaDropout: a port of _dropout_kernels.h, operation for operation (see that header for the
# accuracy design, and fastselu/_dropout.py for the mask and the parameter array).  The driver
# walks its elements in tiles: first the tile's Philox words into a small buffer (a block of
# four words per counter), then the values from those words.

import types as _pytypes  # noqa: E402

from . import _dropout as _dp, _half  # noqa: E402

_U32 = np.uint32
_U64 = np.uint64
_PH_M0 = _U64(_dp.PHILOX_M0)
_PH_M1 = _U64(_dp.PHILOX_M1)
_PH_W0 = _U64(_dp.PHILOX_W0)
_PH_W1 = _U64(_dp.PHILOX_W1)
_M32 = _U64(0xFFFFFFFF)
_SH32 = _U64(32)
_SH2 = _U64(2)
_TWO32 = 4294967296.0
# Elements per tile (FS_DROPOUT_TILE in the header).
DROPOUT_TILE = 2048

(
    _P_THRESH,
    _P_A_HI,
    _P_A_LO,
    _P_B_HI,
    _P_B_LO,
    _P_C_HI,
    _P_C_LO,
    _P_L_HI,
    _P_L_LO,
    _P_AS_HI,
    _P_AS_LO,
    _P_AB_HI,
    _P_AB_LO,
    _P_ASA_HI,
    _P_ASA_LO,
    _P_CST,
    _P_ZMIN,
    _P_B_LO2,
    _P_L_LO2,
    _P_C_LO2,
) = range(20)
_P_FAS_HI, _P_FAS_LO = 20, 21
_P_FT_HI, _P_FT_LO, _P_DT_HI, _P_DT_LO = 22, 26, 30, 34
assert _P_ZMIN == _dp.P_ZMIN and _P_C_LO2 == _dp.P_C_LO2 and _dp.N_PARAMS == 38
assert (_P_FAS_HI, _P_FT_LO, _P_DT_LO) == (_dp.P_FAS_HI, _dp.P_FT_LO, _dp.P_DT_LO)


@njit(cache=False)
def _philox_fill(tmp, b0, nb, k0, k1):  # type: ignore[no-untyped-def]
    """tmp[4t + r] = word r of Philox4x32-10(counter b0 + t) for t < nb (fs_philox_fill)."""
    for t in range(nb):
        b = b0 + _U64(t)
        c0 = b & _M32
        c1 = b >> _SH32
        c2 = _U64(0)
        c3 = _U64(0)
        ka = k0
        kb = k1
        for _ in range(10):
            p0 = _PH_M0 * c0
            p1 = _PH_M1 * c2
            c0, c1, c2, c3 = (p1 >> _SH32) ^ c1 ^ ka, p1 & _M32, (p0 >> _SH32) ^ c3 ^ kb, p0 & _M32
            ka = (ka + _PH_W0) & _M32
            kb = (kb + _PH_W1) & _M32
        tmp[4 * t] = _U32(c0)
        tmp[4 * t + 1] = _U32(c1)
        tmp[4 * t + 2] = _U32(c2)
        tmp[4 * t + 3] = _U32(c3)


@njit(cache=False)
def _tile_words(w, tmp, i0, m, inner, k0, k1, drop_all):  # type: ignore[no-untyped-def]
    """w[k] = the Philox word deciding logical element i0 + k, k < m (fs_dropout_words)."""
    if drop_all:
        for k in range(m):
            w[k] = _U32(0)
        return
    if inner == 1:
        j0 = i0
        nj = m
    else:
        j0 = i0 // inner
        nj = (i0 + m - 1) // inner - j0 + 1
    off = j0 & 3
    nb = (off + nj + 3) >> 2
    _philox_fill(tmp, _U64(j0 >> 2), nb, k0, k1)
    if inner == 1:
        for k in range(m):
            w[k] = tmp[off + k]
    else:
        j = off
        rem = i0 - (i0 // inner) * inner
        for k in range(m):
            w[k] = tmp[j]
            rem += 1
            if rem == inner:
                rem = 0
                j += 1


@_inline
def _two_sum(a, b):  # type: ignore[no-untyped-def]
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@_inline
def _kept_f32(v, prm, fused):  # type: ignore[no-untyped-def]
    """A kept element of fs_do_fwd_f32: a*SELU(x) + b (fused) or a*x + b, canonical NaN."""
    xf = v
    x = np.float64(xf)
    if fused:
        d = (x - prm[_P_L_HI]) - prm[_P_L_LO]
        pp, t = _expm1_f32(_clamp_below(d, -128.0))
        e = _fma(t, pp, t - 1.0)  # t*pp exact (t = 2^n)
        neg = prm[_P_C_HI] * e
        pos = _fma(x, prm[_P_AS_HI], prm[_P_AB_HI])
        kept = pos if x > 0.0 else neg
    else:
        kept = ((x + prm[_P_B_HI]) + prm[_P_B_LO]) * prm[_P_A_HI]
    return _canon32(np.float32(kept))


@_inline
def _dropped_f32(v, prm, fused):  # type: ignore[no-untyped-def]
    """A dropped element of fs_do_fwd_f32: the constant, NaN where x is NaN or +-inf."""
    zero = _f32(-0.0) if fused and v == -np.inf else v * ZERO_F  # SELU(-inf) = -SA is finite
    return _canon32(np.float32(prm[_P_CST]) + zero)


@_inline
def _kept_f64(v, prm, fused):  # type: ignore[no-untyped-def]
    """A kept element of fs_do_fwd_f64 (as _kept_f32)."""
    x = v
    if fused:
        s1, e1 = _two_sum(x, -prm[_P_L_HI])
        s2, e2 = _two_sum(s1, -prm[_P_L_LO])
        d, d_lo = _two_sum(s2, (e1 + e2) - prm[_P_L_LO2])
        low = not (d >= -128.0)
        d = -128.0 if low else d
        d_lo = 0.0 if low else d_lo
        n, r_hi, r_lo = _reduce(d)
        r_lo = r_lo + d_lo
        t = _pow2(n)
        p_hi, p_lo = _expm1_small_dd(r_hi, r_lo)
        tm1, tm1_lo = _fast2sum(-1.0, t)
        b, b_lo = _fast2sum(tm1, t * p_hi)
        e_lo = (b_lo + t * p_lo) + tm1_lo
        neg = _fma(prm[_P_C_HI], b, prm[_P_C_HI] * e_lo + prm[_P_C_LO] * b)
        h = prm[_P_AS_HI] * x
        hl = _fma(prm[_P_AS_HI], x, -h) + (prm[_P_AS_LO] * x + prm[_P_AB_LO])
        s, se = _two_sum(h, prm[_P_AB_HI])
        pos = s + (se + hl)
        pos = pos if h - h == 0.0 else h
        kept = pos if x > 0.0 else neg
        kept = kept if x == x else x
    else:
        s1, e1 = _two_sum(x, prm[_P_B_HI])
        s, e2 = _two_sum(s1, prm[_P_B_LO])
        e = (e1 + e2) + prm[_P_B_LO2]
        r = _fma(prm[_P_A_HI], s, prm[_P_A_HI] * e + prm[_P_A_LO] * s)
        kept = r if s - s == 0.0 else prm[_P_A_HI] * s
    return _canon64(kept)


@_inline
def _dropped_f64(v, prm, fused):  # type: ignore[no-untyped-def]
    """A dropped element of fs_do_fwd_f64 (as _dropped_f32)."""
    zero = -0.0 if fused and v == -np.inf else v * 0.0
    return _canon64(prm[_P_CST] + zero)


@_inline
def _do_bwd_f32(gv, v, prm, mode):  # type: ignore[no-untyped-def]
    """A kept element's gradient in fs_do_bwd_f32 (a dropped one's is _bwd_dropped)."""
    gf = gv
    xf = v
    g = np.float64(gf)
    if mode == 0:
        d = prm[_P_A_HI]
    elif mode == 1:
        sa_exp = _sa_exp_f32(_clamp_below(np.float64(xf), -200.0))
        d_neg = 0.0 if xf == -np.inf else sa_exp * prm[_P_A_HI]
        d = prm[_P_AS_HI] if xf > ZERO_F else d_neg
    else:
        z = np.float64(xf)
        d_neg = (z + prm[_P_C_HI]) + prm[_P_C_LO]
        d = prm[_P_AS_HI] if z >= prm[_P_ZMIN] else d_neg
    return _canon32(np.float32(g * d))


@_inline
def _fused_tab_f32(prm):  # type: ignore[no-untyped-def]
    """The fused backward's table a*SA*2^(j/4) (hi, lo) and a*SA (hi, lo) for x > 0, in
    float32, from prm (fs_table_f32_of)."""
    return (
        (
            _f32(prm[_P_FT_HI]),
            _f32(prm[_P_FT_HI + 1]),
            _f32(prm[_P_FT_HI + 2]),
            _f32(prm[_P_FT_HI + 3]),
        ),
        (
            _f32(prm[_P_FT_LO]),
            _f32(prm[_P_FT_LO + 1]),
            _f32(prm[_P_FT_LO + 2]),
            _f32(prm[_P_FT_LO + 3]),
        ),
        _f32(prm[_P_FAS_HI]),
        _f32(prm[_P_FAS_LO]),
    )


@_inline
def _fused_tab_f64(prm):  # type: ignore[no-untyped-def]
    """As _fused_tab_f32, in float64 (fs_table_f64_of)."""
    return (
        (prm[_P_DT_HI], prm[_P_DT_HI + 1], prm[_P_DT_HI + 2], prm[_P_DT_HI + 3]),
        (prm[_P_DT_LO], prm[_P_DT_LO + 1], prm[_P_DT_LO + 2], prm[_P_DT_LO + 3]),
        prm[_P_AS_HI],
        prm[_P_AS_LO],
    )


@_inline
def _dbwd_fused_f32_fast(g, x, tab):  # type: ignore[no-untyped-def]
    """fs_dbwd_fused_f32_fast: _bwd_x_f32_fast with the table of _fused_tab_f32."""
    a, bl = _bwd_x_f32_parts(x, tab[0], tab[1], tab[2], tab[3])
    return _times_parts_f32(g, a, bl)


@_inline
def _dbwd_fused_f64_fast(g, x, tab):  # type: ignore[no-untyped-def]
    """fs_dbwd_fused_f64_fast: _bwd_x_f64_fast with the table of _fused_tab_f64."""
    a, bl = _bwd_x_f64_parts(x, tab[0], tab[1], tab[2], tab[3])
    return _times_parts_f64(g, a, bl)


def _make_tile_bwd_fused(tab_of: Any, fast: Any, hard: Any, canon: Any) -> Any:
    """fs_tile_bwd_fused_f32/f64's fast path, where no x of the tile is hard: the kept values
    into buf, then the mask applied (as _make_tile_fwd); False (nothing written) where one is."""

    @_inline
    def tile(gs, xs, os, buf, w, thr, drop_all, c):  # type: ignore[no-untyped-def]
        tab = tab_of(c)
        h = False
        for k in range(gs.size):
            buf[k] = canon(fast(gs[k], xs[k], tab))
            h |= hard(gs[k], xs[k])
        if h:
            return False
        for k in range(gs.size):
            os[k] = buf[k] if (w[k] >= thr) & (not drop_all) else _bwd_dropped(gs[k])
        return True

    return tile


_tile_bwd_fused_f32 = _make_tile_bwd_fused(
    _fused_tab_f32, _dbwd_fused_f32_fast, _bwd_x_f32_hard_g, _canon32
)
_tile_bwd_fused_f64 = _make_tile_bwd_fused(
    _fused_tab_f64, _dbwd_fused_f64_fast, _bwd_x_f64_hard_g, _canon64
)


@_inline
def _do_bwd_f32_fast(gv, v, prm, mode):  # type: ignore[no-untyped-def]
    """A kept element of fs_dropout_bwd_f32's tile loops (mode 1: the fast path for x >= -80)."""
    if mode == 1 and not _bwd_x_f32_hard(v):
        return _canon32(_dbwd_fused_f32_fast(gv, v, _fused_tab_f32(prm)))
    return _do_bwd_f32(gv, v, prm, mode)


@_inline
def _do_bwd_f64_fast(gv, v, prm, mode):  # type: ignore[no-untyped-def]
    """A kept element of fs_dropout_bwd_f64's tile loops (mode 1: the fast path for x > -700)."""
    if mode == 1 and not _bwd_x_f64_hard(v):
        return _canon64(_dbwd_fused_f64_fast(gv, v, _fused_tab_f64(prm)))
    return _do_bwd_f64(gv, v, prm, mode)


@_inline
def _bwd_exp_f64(g, x, k_hi, k_lo):  # type: ignore[no-untyped-def]
    """g * K * exp(x) for x <= 0 (fs_dropout_bwd_exp_f64: _bwd_x_f64 with K for SA)."""
    xc = _clamp_below(x, -2000.0)
    n, r_hi, r_lo = _reduce(xc)
    p_hi, p_lo = _expm1_small_dd(r_hi, r_lo)
    s, s_lo = _fast2sum(1.0, p_hi)
    s_lo = s_lo + p_lo
    d_hi = k_hi * s
    d_lo = _fma(k_hi, s, -d_hi) + _fma(k_hi, s_lo, k_lo * s)
    n1 = -1000.0 if n < -1000.0 else n
    n23 = n - n1
    n2 = -1000.0 if n23 < -1000.0 else n23
    n3 = n23 - n2
    zero_d = x == -np.inf
    dh = 0.0 if zero_d else d_hi * _pow2(n1)
    dl = 0.0 if zero_d else d_lo * _pow2(n1)
    return (_dd_times(g, dh, dl) * _pow2(n2)) * _pow2(n3)


@_inline
def _do_bwd_f64(gv, v, prm, mode):  # type: ignore[no-untyped-def]
    """A kept element's gradient in fs_do_bwd_f64 (as _do_bwd_f32)."""
    g = gv
    x = v
    if mode == 0:
        kept = _dd_times(g, prm[_P_A_HI], prm[_P_A_LO])
    elif mode == 1:
        neg = _bwd_exp_f64(g, x, prm[_P_ASA_HI], prm[_P_ASA_LO])
        kept = _dd_times(g, prm[_P_AS_HI], prm[_P_AS_LO]) if x > 0.0 else neg
    else:
        s, s_lo = _two_sum(x, prm[_P_C_HI])
        s_lo = s_lo + prm[_P_C_LO]
        s_lo = s_lo if s - s == 0.0 else 0.0  # z = -inf: the TwoSum error term is NaN
        pos = x >= prm[_P_ZMIN]
        dh = prm[_P_AS_HI] if pos else s
        dl = prm[_P_AS_LO] if pos else s_lo
        dl2 = 0.0 if pos else prm[_P_C_LO2]
        v = _fma(g, dh, _fma(g, dl, g * dl2))  # the constant in three words
        kept = v if (g - g == 0.0) & (g != 0.0) & (v - v == 0.0) else g * ((dh + dl) + dl2)
    return _canon64(kept)


def _kept(v, prm, fused):  # type: ignore[no-untyped-def]
    """_kept_f32 or _kept_f64, picked by v's type when numba compiles."""


def _dropped(v, prm, fused):  # type: ignore[no-untyped-def]
    """_dropped_f32 or _dropped_f64, picked by v's type when numba compiles."""


def _do_bwd(gv, v, prm, mode):  # type: ignore[no-untyped-def]
    """_do_bwd_f32 or _do_bwd_f64, picked by gv's type when numba compiles."""


def _tile_bwd_fused(gs, xs, os, buf, w, thr, drop_all, c):  # type: ignore[no-untyped-def]
    """_tile_bwd_fused_f32 or _tile_bwd_fused_f64, picked by gs's type when numba compiles."""


def _bwd_dropped(g):  # type: ignore[no-untyped-def]
    """g*0 (a dropped element's gradient) in g's type, the default NaN for a NaN or +-inf g."""


@overload(_tile_bwd_fused, inline="always")
def _tile_bwd_fused_typed(gs, xs, os, buf, w, thr, drop_all, c):  # type: ignore[no-untyped-def]
    return (_tile_bwd_fused_f32 if gs.dtype == types.float32 else _tile_bwd_fused_f64).py_func


@overload(_bwd_dropped, inline="always")
def _bwd_dropped_typed(g):  # type: ignore[no-untyped-def]
    if g == types.float32:
        return lambda g: _canon32(g * ZERO_F)
    return lambda g: _canon64(g * 0.0)


@overload(_kept, inline="always")
def _kept_typed(v, prm, fused):  # type: ignore[no-untyped-def]
    return (_kept_f32 if v == types.float32 else _kept_f64).py_func


@overload(_dropped, inline="always")
def _dropped_typed(v, prm, fused):  # type: ignore[no-untyped-def]
    return (_dropped_f32 if v == types.float32 else _dropped_f64).py_func


@overload(_do_bwd, inline="always")
def _do_bwd_typed(gv, v, prm, mode):  # type: ignore[no-untyped-def]
    return (_do_bwd_f32_fast if gv == types.float32 else _do_bwd_f64_fast).py_func


@intrinsic
def _params_tuple(typingctx, prm):  # type: ignore[no-untyped-def]
    """prm's values as a tuple, which the per-element functions index as they index prm: values
    LLVM keeps in registers, where loads from the array stay in every loop that stores (it
    cannot rule out that the store changes them); tiles 1.2-2.5x faster."""
    n = _dp.N_PARAMS
    sig = types.UniTuple(types.float64, n)(prm)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        vals = [builder.load(builder.gep(data, [ir.Constant(ir.IntType(64), i)])) for i in range(n)]
        return context.make_tuple(builder, signature.return_type, vals)

    return sig, codegen


def _make_tile_fwd(fused: bool) -> Any:
    """A tile of the forward, fused (SELU first) or not fixed when numba compiles: the kept
    values first, then the mask applied, because LLVM vectorises neither a loop that selects
    by the mask nor one that tests a run-time `fused` (each measured 2-5x slower).  c: prm as
    _params_tuple gives it."""

    @njit(cache=False)
    def tile(xs, os, buf, w, thr, drop_all, c):  # type: ignore[no-untyped-def]
        for k in range(xs.size):
            buf[k] = _kept(xs[k], c, fused)
        for k in range(xs.size):
            keep = (w[k] >= thr) & (not drop_all)
            os[k] = buf[k] if keep else _dropped(xs[k], c, fused)

    return tile


_tile_fwd_fused, _tile_fwd_plain = _make_tile_fwd(True), _make_tile_fwd(False)


@njit(cache=False)
def _dropout_chunk(  # type: ignore[no-untyped-def]
    x, out, prm, k0, k1, start, inner, fused, lo, hi
):
    w = np.empty(DROPOUT_TILE, dtype=np.uint32)
    buf = np.empty(DROPOUT_TILE, dtype=x.dtype)
    tmp = np.empty(DROPOUT_TILE + 8, dtype=np.uint32)
    drop_all = prm[_P_THRESH] >= _TWO32
    thr = _U32(0) if drop_all else _U32(np.int64(prm[_P_THRESH]))
    c = _params_tuple(prm)
    for t0 in range(lo, hi, DROPOUT_TILE):
        m = min(DROPOUT_TILE, hi - t0)
        _tile_words(w, tmp, start + t0, m, inner, k0, k1, drop_all)
        xs, os = x[t0 : t0 + m], out[t0 : t0 + m]
        if fused:
            _tile_fwd_fused(xs, os, buf, w, thr, drop_all, c)
        else:
            _tile_fwd_plain(xs, os, buf, w, thr, drop_all, c)


def _make_tile_bwd(mode: int) -> Any:
    """A tile of the backward of AlphaDropout alone (mode 0), of the fused one from x (mode 1,
    a tile with a hard x) or from its result (mode 2), the mode fixed when numba compiles: as
    _make_tile_fwd."""

    @njit(cache=False)
    def tile(gs, xs, os, buf, w, thr, drop_all, c):  # type: ignore[no-untyped-def]
        for k in range(gs.size):
            buf[k] = _do_bwd(gs[k], xs[k], c, mode)
        for k in range(gs.size):
            os[k] = buf[k] if (w[k] >= thr) & (not drop_all) else _bwd_dropped(gs[k])

    return tile


_tile_bwd_alone, _tile_bwd_hard, _tile_bwd_result = (_make_tile_bwd(m) for m in (0, 1, 2))


@njit(cache=False)
def _dropout_bwd_chunk(  # type: ignore[no-untyped-def]
    g, x, out, prm, k0, k1, start, inner, mode, lo, hi
):
    w = np.empty(DROPOUT_TILE, dtype=np.uint32)
    buf = np.empty(DROPOUT_TILE, dtype=g.dtype)
    tmp = np.empty(DROPOUT_TILE + 8, dtype=np.uint32)
    drop_all = prm[_P_THRESH] >= _TWO32
    thr = _U32(0) if drop_all else _U32(np.int64(prm[_P_THRESH]))
    c = _params_tuple(prm)
    for t0 in range(lo, hi, DROPOUT_TILE):
        m = min(DROPOUT_TILE, hi - t0)
        _tile_words(w, tmp, start + t0, m, inner, k0, k1, drop_all)
        gs, xs, os = g[t0 : t0 + m], x[t0 : t0 + m], out[t0 : t0 + m]
        if mode == 0:
            _tile_bwd_alone(gs, xs, os, buf, w, thr, drop_all, c)
        elif mode == 2:
            _tile_bwd_result(gs, xs, os, buf, w, thr, drop_all, c)
        elif not _tile_bwd_fused(gs, xs, os, buf, w, thr, drop_all, c):
            _tile_bwd_hard(gs, xs, os, buf, w, thr, drop_all, c)


def _dropout_fwd(x, out, prm, k0, k1, start, inner, fused, nt):  # type: ignore[no-untyped-def]
    env = _fenv_save()
    n = out.size
    for c in prange(nt):
        _dropout_chunk(
            x, out, prm, k0, k1, start, inner, fused, _bound(n, nt, c), _bound(n, nt, c + 1)
        )
    _fenv_restore(env)


def _dropout_bwd(g, x, out, prm, k0, k1, start, inner, mode, nt):  # type: ignore[no-untyped-def]
    env = _fenv_save()
    n = out.size
    for c in prange(nt):
        _dropout_bwd_chunk(
            g, x, out, prm, k0, k1, start, inner, mode, _bound(n, nt, c), _bound(n, nt, c + 1)
        )
    _fenv_restore(env)


# numba's on-disk cache keeps all of a function's signatures in one index file, whose updates
# race between processes compiling at once (numba #4807: one signature's entry can end up naming
# another's code).  So, as for the SELU drivers, each (driver, dtype, serial/parallel) is its own
# function, under its own name, with one explicit signature (inputs read-only, which writable
# ones also take).
def _renamed(f: Any, name: str) -> Any:
    g = _pytypes.FunctionType(f.__code__, globals(), name)
    g.__qualname__ = name
    return g


_dropout_drivers: Dict[Tuple[int, str, bool], Any] = {}


def _dropout_driver(which: int, dtype: str, par: bool) -> Any:
    """Driver `which` (0 forward, 1 backward) for dtype, parallel or serial, created and
    compiled (or loaded from the on-disk cache) on first use."""

    def make() -> Any:
        ro, rw = _array_types(dtype)
        prm = _array_types("float64")[0]
        keys = (types.uint64, types.uint64, types.int64, types.int64)
        if which == 0:
            sig = types.void(ro, rw, prm, *keys, types.boolean, types.intp)
        else:
            sig = types.void(ro, ro, rw, prm, *keys, types.int64, types.intp)
        f = (_dropout_fwd, _dropout_bwd)[which]
        return _jit(sig, par, _renamed(f, f"{f.__name__}_{dtype}_{'par' if par else 'ser'}"))

    return _compiled(_dropout_drivers, (which, dtype, par), make)


def _dropout_threads(n: int, nthreads: int) -> int:
    nt = _threads_for(n, nthreads) if n >= _PAR_MIN else 1
    if nt > 1 and not _threads_startable(nt - 1 if _layer is not None else _MAX_THREADS):
        return 1
    return nt


def _dropout_launch(which: int, args: Tuple[Any, ...], n: int, nthreads: int) -> None:
    """Run driver `which` (0 forward, 1 backward) as _run_parallel runs the SELU kernels: the
    same lock while the threading layer is unknown or 'workqueue', the serial twin otherwise
    (and in a forked child, for small arrays or one thread; see the module docstring)."""
    global _layer
    dtype = args[0].dtype.name
    nt = _dropout_threads(n, nthreads)
    if nt == 1 or _serial_only:
        _dropout_driver(which, dtype, False)(*args, 1)
        return
    kernel = _dropout_driver(which, dtype, True)
    if _layer is not None and _layer != "workqueue":
        _call_parallel(kernel, args, nt)
        return
    lock = _par_lock
    if not lock.acquire(blocking=False):
        _dropout_driver(which, dtype, False)(*args, 1)
        return
    try:
        _call_parallel(kernel, args, nt)
        if _layer is None:
            _layer = numba.threading_layer()
    finally:
        lock.release()


def dropout(
    x: np.ndarray,
    out: np.ndarray,
    prm: np.ndarray,
    key: Tuple[int, int],
    start: int,
    inner: int,
    fused: bool,
    nthreads: int,
    fmt: Optional[str] = None,
) -> None:
    """out = AlphaDropout(x) (of SELU(x) if fused); see fastselu/_backends.py."""
    if fmt is not None:
        return _half.dropout_through_float32(
            dropout, fmt, (x,), out, prm, key, start, inner, fused, nthreads
        )
    args = (x, out, prm, _U64(key[0]), _U64(key[1]), np.int64(start), np.int64(inner), bool(fused))
    _dropout_launch(0, args, out.shape[0], nthreads)


def dropout_backward(
    g: np.ndarray,
    x: np.ndarray,
    out: np.ndarray,
    prm: np.ndarray,
    key: Tuple[int, int],
    start: int,
    inner: int,
    mode: int,
    nthreads: int,
    fmt: Optional[str] = None,
) -> None:
    """out = the gradient of dropout(...); mode 0 plain, 1 fused from x, 2 fused from z."""
    if fmt is not None:
        return _half.dropout_through_float32(
            dropout_backward, fmt, (g, x), out, prm, key, start, inner, mode, nthreads
        )
    args = (g, x, out, prm, _U64(key[0]), _U64(key[1]), np.int64(start), np.int64(inner), int(mode))
    _dropout_launch(1, args, out.shape[0], nthreads)
