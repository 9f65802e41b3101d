"""NumPy backend: needs no compiler; checked against _ulp's references like every backend.

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
table, Q(s) = expm1(s)/s by its series to s^10/11! (the rest < 2^-110).  ln2/64 is split in three
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
from typing import Any, Optional

import numpy as np

from . import _double_double as dd, _half
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
_L3 = float(
    _C.subtract(_C.subtract(_C.divide(_LN2_DEC, 64), decimal.Decimal(_L1)), decimal.Decimal(_L2))
)
_INV_L = 64.0 / float(_LN2_DEC)  # only picks n; any nearby value works
# T_j = 2^(j/64) = exp(j ln2/64) as hi + lo.
_T_HI, _T_LO = (
    np.array(v)
    for v in zip(
        *(
            dd.from_decimal(_C.exp(_C.multiply(_C.divide(decimal.Decimal(j), 64), _LN2_DEC)))
            for j in range(64)
        )
    )
)
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
        out[neg] = dd.round_scaled(
            dd.mul(expm1, (np.full_like(xn, _SA[0]), np.full_like(xn, _SA[1]))), e
        )
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


def forward(x: np.ndarray, out: np.ndarray, nthreads: int, fmt: Optional[str] = None) -> None:
    """out = SELU(x); out may be x."""
    if fmt is not None:  # float16/bfloat16 bits: evaluated in float64, rounded once
        return _half.evaluate("forward", fmt, forward, (x,), out)
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


# fmt -> d(x) of the 16-bit patterns with the sign bit set, from this backend's float64 kernel
# (`_half.tables`, as the C kernels and the numba backend build theirs: the same entries)
_HALF_DX: dict = {}


def backward_x(
    g: np.ndarray, x: np.ndarray, out: np.ndarray, nthreads: int, fmt: Optional[str] = None
) -> None:
    """out = g * SELU'(x): SCALE for x > 0, SCALE*ALPHA*exp(x) otherwise (NaN stays NaN)."""
    if fmt is not None:  # float16/bfloat16 bits: g times the tabulated d, rounded once
        if fmt not in _HALF_DX:
            _HALF_DX[fmt] = _half.tables(fmt, forward, backward_x)[1]
        return _half.backward_x(fmt, g, x, out, _HALF_DX[fmt])
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


def backward_y(
    g: np.ndarray, y: np.ndarray, out: np.ndarray, nthreads: int, fmt: Optional[str] = None
) -> None:
    """out = g * (SCALE if y > 0 else y + SCALE*ALPHA), the sum compensated."""
    if fmt is not None:  # float16/bfloat16 bits: the C element functions' formula
        return _half.backward_y(fmt, g, y, out)
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


# ---------------------------------------------------------------------------------------------
# AlphaDropout (SPEC "Self-normalizing companions"; the parameters and the mask are described in
# fastselu/_dropout.py).  float32 is evaluated in float64 and rounded once; float64 in
# double-double built from Veltkamp splits (NumPy has no fma), with scaling by powers of two
# where a split could overflow.  Written from the formulas, independently of the kernels.

from . import _dropout as _dp  # noqa: E402

_BIG = 2.0**900
# The error-free transformations, shared with the SELU kernels above (_double_double).
_two_sum, _two_prod = dd.two_sum, dd.two_prod


def _dd_mul(ah: Any, al: Any, bh: Any, bl: Any) -> tuple[Any, Any]:
    p, e = _two_prod(ah, bh)
    return _two_sum(p, e + (ah * bl + al * bh))


def _scaled(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """v * k and 1/k with k = 2^-200 where |v| > 2^900 (1 elsewhere): exact, keeps splits finite."""
    k = np.where(np.abs(v) > _BIG, 2.0**-200, 1.0)
    return v * k, 1.0 / k


def _expm1_dd(d_hi: np.ndarray, d_lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """expm1(d_hi + d_lo) as a double-double (relative error ~1e-19) for d in [-128, 40]."""
    ln2_hi = float.fromhex("0x1.62e42fee00000p-1")  # low bits zero: n * ln2_hi is exact
    ln2_lo = float.fromhex("0x1.a39ef35793c76p-33")
    n = np.rint(d_hi / 0.6931471805599453)
    r, r_lo = _two_sum(d_hi - n * ln2_hi, -n * ln2_lo)
    r, r_lo = _two_sum(r, r_lo + d_lo)
    # expm1(r) = r + r^2/2 + r^3 * sum_k r^(k-3)/k!, |r| <= 0.35: terms to 1/20! suffice
    poly = np.zeros_like(r)
    fact = [1.0]
    for k in range(1, 21):
        fact.append(fact[-1] * k)
    for k in range(20, 2, -1):
        poly = poly * r + 1.0 / fact[k]
    h, h_lo = _two_prod(r, r)
    h, h_lo = 0.5 * h, 0.5 * h_lo + r * r_lo
    e, e_lo = _two_sum(r, h)
    e_lo = e_lo + (r_lo + h_lo + (r * r * r) * poly)
    e, e_lo = _two_sum(e, e_lo)
    # e^d - 1 = (2^n - 1) + 2^n * (e + e_lo); 2^n - 1 is exact for n <= 53
    t = np.ldexp(1.0, n.astype(np.int64))
    s, s_lo = _two_sum(t - 1.0, t * e)
    return _two_sum(s, s_lo + t * e_lo)


def _canon(r: np.ndarray) -> np.ndarray:
    """Every NaN result becomes the default quiet NaN (SPEC, Numbers)."""
    return np.where(np.isnan(r), np.nan, r)


def _kept_f32(v: np.ndarray, prm: np.ndarray, fused: bool) -> np.ndarray:
    if not fused:
        return ((v + prm[_dp.P_B_HI]) + prm[_dp.P_B_LO]) * prm[_dp.P_A_HI]
    d = (v - prm[_dp.P_L_HI]) - prm[_dp.P_L_LO]
    neg = prm[_dp.P_C_HI] * np.expm1(np.maximum(d, -128.0))  # NaN passes np.maximum
    pos = v * prm[_dp.P_AS_HI] + prm[_dp.P_AB_HI]
    return np.where(v > 0, pos, neg)


def _kept_f64(v: np.ndarray, prm: np.ndarray, fused: bool) -> np.ndarray:
    if not fused:  # a * (v + SA*p)
        s, e = _two_sum(v, prm[_dp.P_B_HI])
        s, e2 = _two_sum(s, prm[_dp.P_B_LO])
        s, e = _two_sum(s, (e + e2) + prm[_dp.P_B_LO2])
        ss, inv = _scaled(s)
        ph, pl = _dd_mul(prm[_dp.P_A_HI], prm[_dp.P_A_LO], ss, e / inv)
        r = (ph + pl) * inv
        return np.where(np.isfinite(v), r, v * prm[_dp.P_A_HI])
    # x <= 0: a*SA*q * expm1(x - ln q); x > 0: a*SCALE*x + a*SA*p
    d_hi, d_lo = _two_sum(v, -prm[_dp.P_L_HI])
    d_hi, d_lo2 = _two_sum(d_hi, -prm[_dp.P_L_LO])
    d_hi, d_lo = _two_sum(d_hi, (d_lo + d_lo2) - prm[_dp.P_L_LO2])
    low = ~(d_hi >= -128.0)
    d_hi = np.where(low, -128.0, d_hi)
    d_lo = np.where(low, 0.0, d_lo)
    e, e_lo = _expm1_dd(d_hi, d_lo)
    nh, nl = _dd_mul(prm[_dp.P_C_HI], prm[_dp.P_C_LO], e, e_lo)
    neg = nh + nl
    xs, inv = _scaled(np.where(v > 0, v, 0.0))
    big = inv != 1.0
    ph, pl = _two_prod(prm[_dp.P_AS_HI], xs)
    pl = pl + prm[_dp.P_AS_LO] * xs
    s, s_lo = _two_sum(ph, np.where(big, 0.0, prm[_dp.P_AB_HI]))
    pos = (s + (s_lo + (pl + np.where(big, 0.0, prm[_dp.P_AB_LO])))) * inv
    pos = np.where(v == np.inf, np.inf, pos)
    return np.where(v > 0, pos, np.where(np.isnan(v), np.nan, neg))


def _dropped_zero(v: np.ndarray, fused: bool) -> np.ndarray:
    """v * 0 with v the element AlphaDropout sees: x, or the exact SELU(x) in the fused form
    (finite for finite x, and -SA at x = -inf)."""
    z = v * 0.0
    return np.where(v == -np.inf, -0.0, z) if fused else z


def _word_keep(start: int, n: int, inner: int, key: tuple[int, int], thresh: float) -> np.ndarray:
    if thresh > 4294967295.0:
        return np.zeros(n, dtype=bool)
    idx = np.arange(start, start + n, dtype=np.int64)
    if inner != 1:
        idx //= inner
    return _dp.words(idx, key) >= np.uint64(thresh)


def dropout(
    x: np.ndarray,
    out: np.ndarray,
    prm: np.ndarray,
    key: tuple[int, int],
    start: int,
    inner: int,
    fused: bool,
    nthreads: int,
    fmt: Optional[str] = None,
) -> None:
    """out = AlphaDropout(x) (of SELU(x) if fused) for elements with logical indices
    start, start + 1, ...; in feature mode the mask index is (start + k) // inner."""
    if fmt is not None:
        return _half.dropout_through_float32(
            dropout, fmt, (x,), out, prm, key, start, inner, fused, nthreads
        )
    f32 = x.dtype == np.float32
    with np.errstate(all="ignore"):
        for s in _blocks(x.shape[0]):
            v = x[s : s + BLOCK].astype(np.float64)
            keep = _word_keep(start + s, v.shape[0], inner, key, prm[_dp.P_THRESH])
            kept = _kept_f32(v, prm, fused) if f32 else _kept_f64(v, prm, fused)
            dropped = prm[_dp.P_CST] + _dropped_zero(v, fused)
            out[s : s + BLOCK] = _canon(np.where(keep, kept, dropped))


def _bwd_exp_f64(g: np.ndarray, x: np.ndarray, prm: np.ndarray) -> np.ndarray:
    """g * a*SA*exp(x) for x <= 0, double-double until the last scaling by 2^n."""
    xc = np.maximum(x, -2000.0)
    n = np.rint(xc / 0.6931471805599453)
    # exp(x) = 2^n * (1 + expm1(r)): n is taken out here, so _expm1_dd sees |r| <= ln2/2
    # (and 2^n, which may underflow, is applied last, in two steps).
    ln2_hi = float.fromhex("0x1.62e42fee00000p-1")
    ln2_lo = float.fromhex("0x1.a39ef35793c76p-33")
    r, r_lo = _two_sum(xc - n * ln2_hi, -n * ln2_lo)
    e, e_lo = _expm1_dd(r, r_lo)
    f, f_lo = _two_sum(np.ones_like(e), e)
    f_lo = f_lo + e_lo
    dh, dl = _dd_mul(prm[_dp.P_ASA_HI], prm[_dp.P_ASA_LO], f, f_lo)
    gs, inv = _scaled(g)
    ph, pl = _dd_mul(gs, np.zeros_like(gs), dh, dl)
    v = np.where(np.isfinite(g) & (g != 0), ph + pl, g * dh)
    n1 = np.maximum(n, -1000.0)
    v = v * np.ldexp(1.0, n1.astype(np.int64)) * inv
    v = v * np.ldexp(1.0, (n - n1).astype(np.int64))
    return np.where(x == -np.inf, g * 0.0, v)


def dropout_backward(
    g: np.ndarray,
    x: np.ndarray,
    out: np.ndarray,
    prm: np.ndarray,
    key: tuple[int, int],
    start: int,
    inner: int,
    mode: int,
    nthreads: int,
    fmt: Optional[str] = None,
) -> None:
    """out = the gradient of dropout(...) given grad g; mode 0: plain AlphaDropout (x unused),
    1: fused, x the input, 2: fused, x the fused output z."""
    if fmt is not None:
        return _half.dropout_through_float32(
            dropout_backward, fmt, (g, x), out, prm, key, start, inner, mode, nthreads
        )
    f32 = g.dtype == np.float32
    with np.errstate(all="ignore"):
        for s in _blocks(g.shape[0]):
            gb = g[s : s + BLOCK].astype(np.float64)
            xb = x[s : s + BLOCK].astype(np.float64)
            keep = _word_keep(start + s, gb.shape[0], inner, key, prm[_dp.P_THRESH])
            if mode == 0:
                kept = gb * prm[_dp.P_A_HI]
            elif mode == 1:
                pos = gb * prm[_dp.P_AS_HI]
                if f32:
                    neg = gb * (prm[_dp.P_ASA_HI] * np.exp(xb))
                else:
                    neg = _bwd_exp_f64(gb, np.minimum(xb, 0.0), prm)
                kept = np.where(xb > 0, pos, np.where(np.isnan(xb), np.nan, neg))
            else:
                pos = gb * prm[_dp.P_AS_HI]
                if f32:
                    d = (xb + prm[_dp.P_C_HI]) + prm[_dp.P_C_LO]
                    neg = gb * d
                else:
                    sh, sl = _two_sum(xb, prm[_dp.P_C_HI])
                    sh, sl2 = _two_sum(sh, prm[_dp.P_C_LO])
                    sh, sl = _two_sum(sh, (sl + sl2) + prm[_dp.P_C_LO2])
                    ph, pl = _two_prod(gb, sh)
                    neg = ph + (pl + gb * sl)
                    neg = np.where(np.isfinite(xb), neg, gb * (xb + prm[_dp.P_C_HI]))
                kept = np.where(xb >= prm[_dp.P_ZMIN], pos, neg)
            out[s : s + BLOCK] = _canon(np.where(keep, kept, gb * 0.0))
