"""float16/bfloat16 as bit patterns, in NumPy: exact conversions and the 16-bit kernels' tables.

Backends receive float16/bfloat16 arrays as uint16 views of their bits plus ``fmt`` (see
`_backends`).  Here, with the same integer rounding as ``_half_kernels.h``:

- `to_float64` (exact) and `from_float64` (rounded once to nearest, ties to even; NaN gives the
  default quiet NaN 0x7E00 / 0x7FC0): never through float32, whose double rounding misrounds;
- `evaluate`: a 16-bit kernel through a backend's float64 kernels, each result rounded once.
  The numpy backend runs the forward so (block by block); it and the numba backend build their
  tables so (`tables`), as the C kernels do from their own float64 kernels: the same bits.
  `backward_x` (with the table) and `backward_y` (no table) are the C element functions'
  formulas, for the numpy backend.
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

import numpy as np

from ._constants import SCALE, SCALE_ALPHA_F64, SCALE_ALPHA_LO_F64

# fmt -> (stored significand bits M, exponent bias B, default quiet NaN, quiet bit)
FORMATS: Dict[str, Tuple[int, int, int, int]] = {
    "float16": (10, 15, 0x7E00, 0x0200),
    "bfloat16": (7, 127, 0x7FC0, 0x0040),
}
_U = np.uint64
# The header's SCALE_HI, SA_HI, SA_LO
SCALE_HI, SA_HI, SA_LO = SCALE, SCALE_ALPHA_F64, SCALE_ALPHA_LO_F64
BLOCK = 1 << 16
BF16_HARD = 0x42A0  # |x| >= 80: bfloat16's d(x) stays a double (FS_BF16_HARD)


def to_float64(bits: np.ndarray, fmt: str) -> np.ndarray:
    """The exact float64 values of 16-bit patterns (NaN payloads are not kept)."""
    b = np.asarray(bits).view(np.uint16)
    with np.errstate(invalid="ignore"):  # signalling NaNs
        if fmt == "float16":
            return b.view(np.float16).astype(np.float64)
        return (b.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def from_float64(v: np.ndarray, fmt: str) -> np.ndarray:
    """float64 values rounded once to the 16-bit format (bits as uint16); see _half_kernels.h."""
    m, bias, qnan, _ = FORMATS[fmt]
    v = np.ascontiguousarray(v, dtype=np.float64)
    u = v.view(_U)
    a = u & _U(0x7FFFFFFFFFFFFFFF)
    sign = (u >> _U(48)) & _U(0x8000)
    sh = _U(52 - m)
    with np.errstate(over="ignore"):
        norm = ((a + _U((1 << (51 - m)) - 1) + ((a >> sh) & _U(1))) >> sh) - _U((1023 - bias) << m)
    magic = np.float64(2.0 ** (53 - bias - m))  # its ULP is the format's subnormal step
    with np.errstate(invalid="ignore"):  # signalling NaNs
        sub = (np.abs(v) + magic).view(_U) - magic.view(_U)
    ovf = np.float64((2 - 2.0 ** -(m + 1)) * 2.0**bias).view(_U)  # rounds to inf from here
    inf = _U((2 * bias + 1) << m)
    h = np.where(a < _U((1024 - bias) << 52), sub, np.where(a >= ovf, inf, norm))
    return np.where(np.isnan(v), _U(qnan), sign | h).astype(np.uint16)


def evaluate(
    kind: str,
    fmt: str,
    f64: Callable[..., None],
    args: Tuple[np.ndarray, ...],
    out: np.ndarray,
) -> None:
    """out (uint16 bits) = a kernel (kind: forward/backward_x/backward_y) on 16-bit `args`,
    through `f64` (the same kind's float64 kernel of a backend), rounded once; block by block,
    so that temporaries stay small."""
    o = out.view(np.uint16)
    for s in range(0, o.shape[0], BLOCK):
        blk = [a.view(np.uint16)[s : s + BLOCK] for a in args]
        vals = [to_float64(a, fmt) for a in blk]  # copies: out may alias an input
        r = np.empty(vals[0].shape[0], np.float64)
        f64(*vals, r, 1)
        res = from_float64(r, fmt)
        if kind == "forward":  # the input's NaN, quieted (as NumPy and the float kernels)
            res = np.where(np.isnan(vals[0]), blk[0] | np.uint16(FORMATS[fmt][3]), res)
        o[s : s + BLOCK] = res


def dropout_through_float32(
    kernel: Callable[..., None],
    fmt: str,
    inputs: Tuple[np.ndarray, ...],
    out: np.ndarray,
    *args: object,
) -> None:
    """A dropout kernel on 16-bit bits (`inputs`, `out`) through a backend's float32 one
    (its ``dropout`` or ``dropout_backward``; `args` = prm, key, start, inner, flag, nthreads):
    each block widened exactly, the float32 kernel at the block's logical start (so the same
    mask), each result rounded once more to the format.  The compiled kernels' fs_dropout_h16
    does the same, so the bits agree (see there for the accuracy)."""
    prm, key, start, inner, flag, nthreads = args
    o = out.view(np.uint16)
    for s in range(0, o.shape[0], BLOCK):
        blk = [a.view(np.uint16)[s : s + BLOCK] for a in inputs]
        with np.errstate(invalid="ignore"):  # signalling NaNs
            vals = [to_float64(a, fmt).astype(np.float32) for a in blk]
        r = np.empty(vals[0].shape[0], np.float32)
        kernel(*vals, r, prm, key, start + s, inner, flag, nthreads)  # type: ignore[operator]
        o[s : s + BLOCK] = from_float64(r.astype(np.float64), fmt)


def _times_d(
    fmt: str, g: np.ndarray, v: np.ndarray, out: np.ndarray, d_of: Callable[..., np.ndarray]
) -> None:
    """out (uint16 bits) = g*d in float64, rounded once to the format, d = d_of(v's bits, pos)
    (pos: the lanes with +0 < v <= +inf); block by block."""
    o = out.view(np.uint16)
    inf = np.uint16((2 * FORMATS[fmt][1] + 1) << FORMATS[fmt][0])
    for s in range(0, o.shape[0], BLOCK):
        gb, vb = (a.view(np.uint16)[s : s + BLOCK] for a in (g, v))
        with np.errstate(all="ignore"):
            r = to_float64(gb, fmt) * d_of(vb, vb - np.uint16(1) < inf)
        o[s : s + BLOCK] = from_float64(r, fmt)


def backward_x(fmt: str, g: np.ndarray, x: np.ndarray, out: np.ndarray, dx: np.ndarray) -> None:
    """out (uint16 bits) = g*d(x) as _half_kernels.h's element functions define it, with dx
    from `tables`: SCALE_RO where x > 0, else the entry of x's pattern without its sign bit
    (the entry of -x at +0 and NaN), g*d in float64 (exact but for bfloat16's double entries),
    rounded once."""
    d64 = dx.astype(np.float64)
    _times_d(fmt, g, x, out, lambda b, pos: np.where(pos, SCALE_RO, d64[b & np.uint16(0x7FFF)]))


def backward_y(fmt: str, g: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    """out (uint16 bits) = g*d(y) as _half_kernels.h's fs_bwd_y_f16 / fs_bwd_y_bf16 define it:
    d = SCALE where y > 0, else (y + SA_HI) + SA_LO, g*d in float64, rounded once to the format
    (the same IEEE operations, so the same bits)."""
    _times_d(
        fmt, g, y, out, lambda b, pos: np.where(pos, SCALE_HI, (to_float64(b, fmt) + SA_HI) + SA_LO)
    )


def ro32(v: np.ndarray) -> np.ndarray:
    """float64 values rounded to float32 "to odd" (fs_ro32): truncated, last bit set if inexact."""
    v = np.asarray(v, np.float64)
    with np.errstate(all="ignore"):
        f = v.astype(np.float32)
        back = f.astype(np.float64)
    inexact = (back != v) & ~np.isnan(v)
    b = f.view(np.uint32) - (inexact & (np.abs(back) > np.abs(v))).astype(np.uint32)
    return (b | inexact.astype(np.uint32)).view(np.float32)


SCALE_RO = float(ro32(np.float64(SCALE_HI))[()])


def tables(
    fmt: str, forward64: Callable[..., None], backward_x64: Callable[..., None]
) -> Tuple[np.ndarray, np.ndarray]:
    """(results of the 2^16 inputs as uint16 bits, d(x) of the 2^15 inputs with the sign bit
    set), as _half_kernels.h's fs_half_init builds them: float32 rounded to odd, except
    bfloat16's d(x), float64 (the float32 value, or where |x| >= 80 the double itself).  The C
    tables also hold the other half (SCALE rounded to odd where x > 0, else the entry of -x), as
    _half_numba._full builds them for numba's lanes; the element functions take SCALE_RO by a
    test of the sign instead.  The backward from the result needs no table (d(y) = y + SA)."""
    bits = np.arange(1 << 16, dtype=np.uint64).astype(np.uint16)
    fwd = np.empty(1 << 16, np.uint16)
    evaluate("forward", fmt, forward64, (bits,), fwd)
    x = to_float64(bits[1 << 15 :], fmt)
    d = np.empty(1 << 15, np.float64)
    backward_x64(np.ones(1 << 15), x, d, 1)
    # SELU'(x) > 0 for finite x although it underflows: the smallest positive double there
    d[(d == 0) & (x != -np.inf)] = 5e-324
    dx = ro32(d)
    if fmt == "bfloat16":
        hard = np.arange(1 << 15) >= BF16_HARD
        return fwd, np.where(hard, d, dx.astype(np.float64))
    return fwd, dx
