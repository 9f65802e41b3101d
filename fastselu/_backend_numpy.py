"""NumPy reference backend, also the oracle the other backends are tested against.

A slow twin written independently of the compiled kernels, the same on every platform:

- float32 is evaluated in float64 and rounded once (float64's expm1/exp are far more accurate
  than a float32 ULP: about 0.5 ULP in all).
- float64 is evaluated in double-double arithmetic (`_double_double`: plain IEEE doubles, no
  `np.longdouble`, which is no wider than double on macOS arm64 and Windows, and no libm call)
  and rounded once: within ~0.5 ULP of the exact function.

float64 method.  Inputs go through `np.frexp` so that every double-double product works on
numbers near 1, and the binary exponent is applied once by `_double_double.round_scaled`, which
also gets overflow to inf and subnormal results right.  exp and expm1 of x <= 0 use
x = (64 k + j) ln2/64 + s with |s| <= ln2/128: exp(x) = 2^k T_j (1 + s Q(s)), T_j = 2^(j/64) from a
table, Q(s) = expm1(s)/s by its series (s^9/10! < 2^-80 relative).  ln2/64 is split in three
(two 35-bit parts, so n * part is exact for |n| < 2^18, i.e. |x| < 2839) and the reduced s is a
double-double.  expm1 = 2^k T_j s Q + (2^k T_j - 1): no cancellation beyond a factor of ~2, and for
k = j = 0 just s Q, with s = x exactly, scaled by frexp like every other input.

Special values (NaN, +-inf, zeros, g = 0 or inf) take plain float64 formulas, whose IEEE rules
give the SPEC's answers; the double-double path handles every finite nonzero case.

`nthreads` is accepted for the seam and ignored: NumPy runs on one thread.
"""

from __future__ import annotations

import decimal
import math
from typing import Any

import numpy as np

from . import _double_double as dd
from ._constants import (
    ALPHA_STR,
    SCALE_ALPHA_F64,
    SCALE_ALPHA_LO_F64,
    SCALE_STR,
)

# Elements per block: bounds the scratch (a few dozen float64 arrays of 16 Ki elements: ~2.5 MiB).
BLOCK = 1 << 14

_F32 = np.dtype(np.float32)
_SCALE_F64 = float(SCALE_STR)

# ---- float64 constants, from the decimal definitions ----------------------------------------

_C = dd.CONTEXT
_SCALE_DEC = decimal.Decimal(SCALE_STR)
_SA_DEC = _C.multiply(decimal.Decimal(ALPHA_STR), _SCALE_DEC)  # exact: 64 digits < prec
_LN2_DEC = _C.ln(decimal.Decimal(2))

_S = dd.from_decimal(_SCALE_DEC)  # SCALE as hi + lo
_SA = dd.from_decimal(_SA_DEC, 3)  # SCALE*ALPHA as hi + lo + lo2: y + SA cancels to ~2^-56 of SA
# ln2/64 = _L1 + _L2 + _L3: n * _L1 and n * _L2 exact for integers |n| < 2^18.
_L1 = dd.round_bits(_C.divide(_LN2_DEC, 64), 35)
_L2 = dd.round_bits(_C.subtract(_C.divide(_LN2_DEC, 64), decimal.Decimal(_L1)), 35)
_L3 = float(_C.subtract(_C.subtract(_C.divide(_LN2_DEC, 64), decimal.Decimal(_L1)),
                        decimal.Decimal(_L2)))
_INV_L = 64.0 / float(_LN2_DEC)  # only picks n; any nearby value works
# T_j = 2^(j/64) = exp(j ln2/64) as hi + lo.
_T_HI, _T_LO = (np.array(v) for v in zip(*(
    dd.from_decimal(_C.exp(_C.multiply(_C.divide(decimal.Decimal(j), 64), _LN2_DEC)))
    for j in range(64))))
# Q(s) = expm1(s)/s = sum s^i / (i+1)!: 1 + s/2 in double-double, the rest (< 2^-17) in double.
_Q_TAIL = tuple(float(_C.divide(1, math.factorial(i + 1))) for i in range(2, 11))

# The forward saturates: for x <= -40 the exact SCALE*ALPHA*expm1(x) rounds to -SCALE*ALPHA
# (SA*e^-40 + SA's rounding error < ULP/2 of SA); -50 keeps a margin.
_FWD_LOW = -50.0
# The backward: below -2000, |g| * SA * e^x < 2^1024 * 2 * 2^-2885 rounds to zero for any g.
_BWD_LOW = -2000.0


def _reduce(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, dd.DD]:
    """x = k ln2 + j ln2/64 + s: (k, j, s) with |s| <= ~ln2/128 (s a double-double)."""
    n = np.rint(x * _INV_L)
    k = np.floor(n / 64.0)
    j = (n - 64.0 * k).astype(np.intp)
    s = dd.two_sum(x, -n * _L1)  # n * _L1 exact
    s = dd.add_d(s, -n * _L2)
    s = dd.add_d(s, -n * _L3)
    return k.astype(np.int32), j, s


def _q(s: dd.DD) -> dd.DD:
    """Q(s) = expm1(s)/s for |s| <= ~ln2/128."""
    sh = s[0]
    tail = np.full_like(sh, _Q_TAIL[-1])
    for c in _Q_TAIL[-2::-1]:
        tail = tail * sh + c
    tail = tail * sh * sh  # s^2/6 + s^3/24 + ...: < 2^-17, so double precision suffices
    half = (0.5 * s[0], 0.5 * s[1])
    q = dd.add_d(half, np.ones_like(sh))
    return dd.add_d(q, tail)


def _forward_f64(x: np.ndarray) -> np.ndarray:
    """SELU of finite nonzero float64 x."""
    out = np.empty_like(x)
    pos = x > 0
    if pos.any():
        m, e = np.frexp(x[pos])
        out[pos] = dd.round_scaled(dd.mul_d(_S, m), e)
    neg = np.flatnonzero(~pos)
    if neg.size:
        xn = np.maximum(x[neg], _FWD_LOW)
        k, j, s = _reduce(xn)
        # Only k = j = 0 (|x| < ln2/128) can be tiny: there s = x exactly; scale it to ~1.
        small = (k == 0) & (j == 0)
        _, e = np.frexp(xn)
        e = np.where(small, e, 0).astype(np.int32)
        q = _q(s)
        sq = dd.mul((np.ldexp(s[0], -e), np.ldexp(s[1], -e)), q)
        t = (np.ldexp(_T_HI[j], k), np.ldexp(_T_LO[j], k))  # 2^k T_j, exact
        tm1 = dd.add_d(t, np.full_like(xn, -1.0))  # 0 where small
        expm1 = dd.add(dd.mul(t, sq), tm1)
        out[neg] = dd.round_scaled(dd.mul(expm1, (np.full_like(xn, _SA[0]),
                                                  np.full_like(xn, _SA[1]))), e)
    return out


def _backward_x_f64(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    """g * SELU'(x) for non-NaN x and finite nonzero g."""
    gm, ge = np.frexp(g)
    out = np.empty_like(x)
    pos = x > 0
    if pos.any():
        out[pos] = dd.round_scaled(dd.mul_d(_S, gm[pos]), ge[pos])
    neg = np.flatnonzero(~pos)
    if neg.size:
        k, j, s = _reduce(np.maximum(x[neg], _BWD_LOW))
        one = np.ones_like(s[0])
        u = dd.add_d(dd.mul(s, _q(s)), one)  # exp(s)
        d = dd.mul((_T_HI[j], _T_LO[j]), u)
        d = dd.mul(d, (one * _SA[0], one * _SA[1]))  # SA * 2^-k exp(x), in [1.2, 3.6]
        out[neg] = dd.round_scaled(dd.mul_d(d, gm[neg]), k + ge[neg])
    return out


def _backward_y_f64(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    """g * (SCALE if y > 0 else y + SCALE*ALPHA) for y > -inf (not NaN), finite nonzero g."""
    gm, ge = np.frexp(g)
    out = np.empty_like(y)
    pos = y > 0
    if pos.any():
        out[pos] = dd.round_scaled(dd.mul_d(_S, gm[pos]), ge[pos])
    neg = np.flatnonzero(~pos)
    if neg.size:
        yn = y[neg]
        d = dd.two_sum(yn, np.full_like(yn, _SA[0]))  # exact: y = -SA_hi gives (0, 0)
        d = dd.add_d(d, np.full_like(yn, _SA[1]))
        d = dd.add_d(d, np.full_like(yn, _SA[2]))
        # Scale d to ~1 too: y may be as large as -max, and y + SA as small as ~2^-56.
        dm, de = np.frexp(d[0])
        d = (dm, np.ldexp(d[1], -de))
        out[neg] = dd.round_scaled(dd.mul_d(d, gm[neg]), de + ge[neg])
    return out


def _blocks(n: int) -> range:
    return range(0, n, BLOCK)


# ---- the seam ---------------------------------------------------------------------------------


def forward(x: np.ndarray, out: np.ndarray, nthreads: int) -> None:
    """out = SELU(x); out may be x."""
    with np.errstate(all="ignore"):
        for s in _blocks(x.shape[0]):
            xb = x[s : s + BLOCK].astype(np.float64)  # a copy: out may alias x
            # float32, and the special values of float64: plain float64.  expm1(-inf) = -1 gives
            # -SCALE*ALPHA (correctly rounded constant); -0.0 stays -0.0; NaN stays x's NaN.
            r = np.expm1(xb)
            r *= SCALE_ALPHA_F64
            np.multiply(xb, _SCALE_F64, out=r, where=xb > 0)
            if x.dtype != _F32:
                hard = np.flatnonzero(np.isfinite(xb) & (xb != 0))
                r[hard] = _forward_f64(xb[hard])
            out[s : s + BLOCK] = r  # the one rounding to the result dtype


def backward_x(g: np.ndarray, x: np.ndarray, out: np.ndarray, nthreads: int) -> None:
    """out = g * SELU'(x): SCALE for x > 0, SCALE*ALPHA*exp(x) otherwise (NaN stays NaN)."""
    with np.errstate(all="ignore"):
        for s in _blocks(x.shape[0]):
            xb = x[s : s + BLOCK].astype(np.float64)
            gb = g[s : s + BLOCK].astype(np.float64)
            d = np.exp(xb)
            d *= SCALE_ALPHA_F64
            np.copyto(d, _SCALE_F64, where=xb > 0)
            d *= gb
            # SELU'(x) > 0 for finite x although exp(x) may underflow: inf * SELU'(x) is inf.
            np.copyto(d, gb, where=np.isinf(gb) & (xb > -np.inf))
            if x.dtype != _F32:
                # SELU'(+inf) = SCALE, SELU'(-inf) = 0: exact zeros from the clamped path too.
                hard = np.flatnonzero(~np.isnan(xb) & np.isfinite(gb) & (gb != 0))
                d[hard] = _backward_x_f64(gb[hard], xb[hard])
            _store_backward(out[s : s + BLOCK], d)


def backward_y(g: np.ndarray, y: np.ndarray, out: np.ndarray, nthreads: int) -> None:
    """out = g * (SCALE if y > 0 else y + SCALE*ALPHA), the sum compensated."""
    with np.errstate(all="ignore"):
        for s in _blocks(y.shape[0]):
            yb = y[s : s + BLOCK].astype(np.float64)
            gb = g[s : s + BLOCK].astype(np.float64)
            # float32: exact near y = -SCALE*ALPHA (Sterbenz), so only lo's rounding is left.
            d = yb + SCALE_ALPHA_F64
            d += SCALE_ALPHA_LO_F64
            np.copyto(d, _SCALE_F64, where=yb > 0)
            d *= gb
            if y.dtype != _F32:
                # y = +inf has SELU' = SCALE; y = -inf (d = -inf) stays with the IEEE rules.
                hard = np.flatnonzero((yb > -np.inf) & np.isfinite(gb) & (gb != 0))
                d[hard] = _backward_y_f64(gb[hard], yb[hard])
            _store_backward(out[s : s + BLOCK], d)


def _store_backward(out: np.ndarray, d: np.ndarray) -> None:
    # Every NaN a backward produces is the positive default quiet NaN (SPEC: Numbers), whichever
    # operand's NaN the CPU passed on.
    np.copyto(d, np.nan, where=np.isnan(d))
    out[...] = d


def info() -> dict[str, Any]:
    return {
        "simd": None,
        "openmp": False,
        "float64_evaluated_in": "double-double",
    }
