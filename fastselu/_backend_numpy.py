"""NumPy reference backend, also the oracle the other backends are tested against.

Each block is evaluated in a wider type and rounded once to the result dtype:
float32 in float64, float64 in ``np.longdouble``.  With x86's 80-bit long double (64-bit
significand) both are within 1 ULP of the exact function (about 0.5 ULP plus the error of libm's
``expm1``/``exp`` in the wider type).  On platforms whose long double is no wider than double
(Windows, macOS on arm64) float64 is evaluated in float64 with the correctly rounded SCALE*ALPHA:
there the float64 bound is the one of libm's ``expm1`` times a constant, about 2.5 ULP, and only
float32 keeps the 1 ULP bound.  ``backward_y`` stays accurate everywhere (split constant).

`nthreads` is accepted for the seam and ignored: NumPy runs on one thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._constants import (
    SCALE_ALPHA_F64,
    SCALE_ALPHA_LO_F64,
    SCALE_ALPHA_LO_LD_STR,
    SCALE_ALPHA_STR,
    SCALE_STR,
)

# Elements per block: bounds the wide scratch (a few arrays of 64 Ki long doubles, ~1 MiB each).
BLOCK = 1 << 16

LONGDOUBLE_IS_WIDE: bool = np.finfo(np.longdouble).nmant >= 60

# dtype -> (wide type, SCALE, SCALE*ALPHA hi, SCALE*ALPHA lo) with the constants in the wide type.
_F64 = (np.float64, np.float64(SCALE_STR), np.float64(SCALE_ALPHA_F64), np.float64(SCALE_ALPHA_LO_F64))
if LONGDOUBLE_IS_WIDE:
    _LD = (
        np.longdouble,
        np.longdouble(SCALE_STR),
        np.longdouble(SCALE_ALPHA_STR),
        np.longdouble(SCALE_ALPHA_LO_LD_STR),
    )
else:
    _LD = _F64
_WIDE: dict[np.dtype[Any], tuple[Any, Any, Any, Any]] = {
    np.dtype(np.float32): _F64,
    np.dtype(np.float64): _LD,
}


def _blocks(n: int) -> range:
    return range(0, n, BLOCK)


def forward(x: np.ndarray, out: np.ndarray, nthreads: int) -> None:
    """out = SELU(x); out may be x."""
    wide, scale, sa, _ = _WIDE[x.dtype]
    with np.errstate(all="ignore"):
        for s in _blocks(x.shape[0]):
            xb = x[s : s + BLOCK].astype(wide)  # a copy: out may alias x
            r = np.expm1(xb)
            r *= sa  # expm1(-inf) = -1 gives -SCALE*ALPHA; -0.0 stays -0.0
            np.multiply(xb, scale, out=r, where=xb > 0)
            out[s : s + BLOCK] = r  # the one rounding to the result dtype


def backward_x(g: np.ndarray, x: np.ndarray, out: np.ndarray, nthreads: int) -> None:
    """out = g * SELU'(x): SCALE for x > 0, SCALE*ALPHA*exp(x) otherwise (NaN stays NaN)."""
    wide, scale, sa, _ = _WIDE[x.dtype]
    with np.errstate(all="ignore"):
        for s in _blocks(x.shape[0]):
            xb = x[s : s + BLOCK].astype(wide)
            gb = g[s : s + BLOCK].astype(wide)
            d = np.exp(xb)
            d *= sa
            np.copyto(d, scale, where=xb > 0)
            d *= gb
            # SELU'(x) > 0 for finite x although exp(x) may underflow: inf * SELU'(x) is inf.
            np.copyto(d, gb, where=np.isinf(gb) & (xb > -np.inf))
            out[s : s + BLOCK] = d


def backward_y(g: np.ndarray, y: np.ndarray, out: np.ndarray, nthreads: int) -> None:
    """out = g * (SCALE if y > 0 else y + SCALE*ALPHA), the sum compensated with hi + lo."""
    wide, scale, sa_hi, sa_lo = _WIDE[y.dtype]
    with np.errstate(all="ignore"):
        for s in _blocks(y.shape[0]):
            yb = y[s : s + BLOCK].astype(wide)
            gb = g[s : s + BLOCK].astype(wide)
            d = yb + sa_hi  # exact near y = -SCALE*ALPHA (Sterbenz), so only lo's rounding is left
            d += sa_lo
            np.copyto(d, scale, where=yb > 0)
            d *= gb
            out[s : s + BLOCK] = d


def info() -> dict[str, Any]:
    return {
        "simd": None,
        "openmp": False,
        "float64_evaluated_in": "longdouble" if LONGDOUBLE_IS_WIDE else "float64",
    }


# ---------------------------------------------------------------------------------------------
# AlphaDropout (SPEC "Self-normalizing companions"; the parameters and the mask are described in
# fastselu/_dropout.py).  float32 is evaluated in float64 and rounded once; float64 in
# double-double built from Veltkamp splits (NumPy has no fma), with scaling by powers of two
# where a split could overflow.  Written from the formulas, independently of the kernels.

from . import _dropout as _dp  # noqa: E402

_SPLITTER = 134217729.0  # 2^27 + 1
_BIG = 2.0**900


def _two_sum(a: np.ndarray, b: Any) -> tuple[np.ndarray, np.ndarray]:
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _veltkamp(a: Any) -> tuple[Any, Any]:
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a: Any, b: Any) -> tuple[Any, Any]:
    """a*b as p + e exactly, for |a|, |b| < 2^900 (the splits overflow beyond)."""
    p = a * b
    ah, al = _veltkamp(a)
    bh, bl = _veltkamp(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


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


def dropout(x: np.ndarray, out: np.ndarray, prm: np.ndarray, key: tuple[int, int], start: int,
            inner: int, fused: bool, nthreads: int) -> None:
    """out = AlphaDropout(x) (of SELU(x) if fused) for elements with logical indices
    start, start + 1, ...; in feature mode the mask index is (start + k) // inner."""
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


def dropout_backward(g: np.ndarray, x: np.ndarray, out: np.ndarray, prm: np.ndarray,
                     key: tuple[int, int], start: int, inner: int, mode: int,
                     nthreads: int) -> None:
    """out = the gradient of dropout(...) given grad g; mode 0: plain AlphaDropout (x unused),
    1: fused, x the input, 2: fused, x the fused output z."""
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
