"""ULP error measurement, high-precision SELU values and the inputs that are hard to get right,
for the tests and the accuracy checker (``python -m fastselu.check``).

`ulp_error` implements the SPEC definition.  The `exact_*` functions evaluate in x86 80-bit long
double (64-bit significand: 40 bits beyond float32, 11 beyond float64); the `mp_*` functions use
mpmath at 128 bits for float64 (slow: a Python loop).  `hard_inputs` is the one generator of
test inputs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from ._constants import SCALE, SCALE_ALPHA_F64, SCALE_ALPHA_LO_LD_STR, SCALE_ALPHA_STR, SCALE_STR

LD = np.longdouble
_SCALE = LD(SCALE_STR)
_SA = LD(SCALE_ALPHA_STR)
_SA_LO = LD(SCALE_ALPHA_LO_LD_STR)

# dtype -> (p: significand bits incl. the implicit one, emin: minimum normal exponent)
_FORMATS = {
    np.dtype(np.float16): (11, -14),
    np.dtype(np.float32): (24, -126),
    np.dtype(np.float64): (53, -1022),
}


def ulp_error(result: npt.ArrayLike, exact: npt.ArrayLike, dtype: npt.DTypeLike) -> np.ndarray:
    """|r - e| / 2^(max(floor(log2|e|), emin) - p + 1), elementwise, as float64.

    Special cases (error 0 if met, inf otherwise): where e rounds to +-inf, r must be that inf;
    where e is NaN, r must be NaN; where e is zero, r must be a zero of e's sign.
    """
    dt = np.dtype(dtype).newbyteorder("=")
    if dt.name == "bfloat16" and dt.itemsize == 2:  # ml_dtypes: np.finfo does not know it
        p, emin, fmax, maxexp = 8, -126, (2 - 2.0**-7) * 2.0**127, 128
    else:
        p, emin = _FORMATS[dt]
        fmax, maxexp = np.finfo(dt).max, np.finfo(dt).maxexp
    # A float64 `exact` for a float32/float16/bfloat16 result is exact enough (its own error is
    # below 2^-27 ULP) and ten times faster to work with than long double: the exhaustive checker
    # relies on that.
    e = np.asarray(exact)
    work = np.float64 if (dt.itemsize <= 4 and e.dtype == np.float64) else LD
    with np.errstate(invalid="ignore"):  # a signalling NaN raises 'invalid' on conversion
        r = np.asarray(result).astype(work)
        e = e.astype(work, copy=False)
    r, e = np.broadcast_arrays(r, e)
    # Round-to-nearest overflows from max + half an ULP (ties go to inf: max's significand is odd).
    overflow = work(fmax) + np.ldexp(work(1), maxexp - 1 - p)
    # Whole-array operations and no boolean indexing where no special case occurs: the
    # exhaustive checks call this on 2^32 elements.
    with np.errstate(all="ignore"):
        _, exp2 = np.frexp(e)  # |e| = m * 2^exp2, m in [0.5, 1): floor(log2|e|) = exp2 - 1
        scale_exp = np.maximum(exp2 - 1, emin) - p + 1
        err = np.asarray(np.ldexp(np.abs(r - e), -scale_exp))  # right where e is finite, nonzero
        err[np.isnan(r)] = np.inf
        e_nan = np.isnan(e)
        e_inf = ~e_nan & (np.abs(e) >= overflow)
        e_zero = e == 0
        if (e_nan | e_inf | e_zero).any():
            same_sign = np.signbit(r) == np.signbit(e)
            err = np.where(e_inf, np.where(np.isinf(r) & same_sign, 0, np.inf), err)
            err = np.where(e_nan, np.where(np.isnan(r), 0, np.inf), err)
            err = np.where(e_zero, np.where((r == 0) & same_sign, 0, np.inf), err)
    return np.asarray(err, dtype=np.float64)


def exact_selu(x: npt.ArrayLike, work: Any = LD) -> np.ndarray:
    """SELU(x) evaluated in long double (or in `work`: float64 is exact enough for float32)."""
    with np.errstate(all="ignore"):  # signalling NaNs in bit-pattern sweeps raise "invalid"
        xl = np.asarray(x).astype(work)
        return np.asarray(np.where(xl > 0, xl * work(_SCALE), work(_SA) * np.expm1(xl)))


def exact_selu_backward(g: npt.ArrayLike, x: npt.ArrayLike, work: Any = LD) -> np.ndarray:
    """g * SELU'(x) in long double (SCALE for x > 0, SCALE*ALPHA*exp(x) otherwise, NaN at NaN),
    or in `work` as for exact_selu."""
    with np.errstate(all="ignore"):
        xl = np.asarray(x).astype(work)
        gl = np.asarray(g).astype(work)
        d = np.where(xl > 0, work(_SCALE), work(_SA) * np.exp(xl)) * gl
        # SELU' > 0 for every finite x even where exp underflows: an infinite g gives +-inf.
        return np.where(np.isinf(gl) & (xl > -np.inf), gl, d)


def exact_selu_backward_result(g: npt.ArrayLike, y: npt.ArrayLike) -> np.ndarray:
    """g * (SCALE if y > 0 else y + SCALE*ALPHA) in long double, the sum compensated."""
    with np.errstate(all="ignore"):
        yl = np.asarray(y).astype(LD)
        gl = np.asarray(g).astype(LD)
        return np.where(yl > 0, _SCALE, (yl + _SA) + _SA_LO) * gl


def _mp_to_ld(mpmath: Any, v: Any) -> Any:
    if v != 0 and mpmath.mag(v) < -16500:  # below long double's subnormals: a signed zero
        return LD(-0.0) if v < 0 else LD(0.0)
    # 40 significant digits (~133 bits: all of the 128-bit working value) parse to the nearest
    # long double: 64 bits on x86, 113 where it is IEEE quad (aarch64 Linux).
    return LD(mpmath.nstr(v, 40))


# 128 bits: y + SCALE*ALPHA for float64 y cancels to ~2^-56, and the reference must still be
# good to far below an ULP there.
_MP_BITS = 128


def _mp_map(fn: Any, *arrays: np.ndarray) -> np.ndarray:
    """fn(mpmath, (SCALE, SCALE*ALPHA), *values) over the elements, as long doubles."""
    import mpmath  # type: ignore[import-untyped]  # no stubs

    flat = [a.ravel().tolist() for a in arrays]
    out = np.empty(len(flat[0]), dtype=LD)
    # errstate: values beyond long double's range (exp(-1e300)) round to 0/inf, silently.
    with mpmath.workprec(_MP_BITS), np.errstate(all="ignore"):
        consts = (mpmath.mpf(SCALE_STR), mpmath.mpf(SCALE_ALPHA_STR))
        for i, vals in enumerate(zip(*flat)):
            v = fn(mpmath, consts, *vals)
            out[i] = v if isinstance(v, np.floating) else _mp_to_ld(mpmath, v)
    return out.reshape(arrays[0].shape)


def _mp_selu1(mpmath: Any, c: tuple[Any, Any], x: float) -> Any:
    if math.isnan(x) or x == 0 or x == math.inf:  # mpmath has no signed zero: SELU keeps x
        return LD(x)
    scale, sa = c
    if x == -math.inf:
        return -sa
    return scale * x if x > 0 else sa * mpmath.expm1(x)


def _mp_selu_backward1(mpmath: Any, c: tuple[Any, Any], g: float, x: float) -> Any:
    if math.isnan(x) or not math.isfinite(g) or x == -math.inf or g == 0:
        return LD(exact_selu_backward(g, x)[()])  # specials: no rounding involved
    scale, sa = c
    return (scale if x > 0 else sa * mpmath.exp(x)) * g


def _mp_selu_backward_result1(mpmath: Any, c: tuple[Any, Any], g: float, y: float) -> Any:
    if not (math.isfinite(g) and math.isfinite(y)) or g == 0:
        return LD(exact_selu_backward_result(g, y)[()])  # specials: no rounding involved
    scale, sa = c
    return (scale if y > 0 else mpmath.mpf(y) + sa) * g


def mp_selu(x: npt.ArrayLike) -> np.ndarray:
    """SELU of float64 values with mpmath, rounded to long double."""
    return _mp_map(_mp_selu1, np.asarray(x, dtype=np.float64))


def mp_selu_backward(g: npt.ArrayLike, x: npt.ArrayLike) -> np.ndarray:
    """g * SELU'(x) for float64 values with mpmath, rounded to long double."""
    g64, x64 = np.broadcast_arrays(np.asarray(g, dtype=np.float64), np.asarray(x, dtype=np.float64))
    return _mp_map(_mp_selu_backward1, g64, x64)


def mp_selu_backward_result(g: npt.ArrayLike, y: npt.ArrayLike) -> np.ndarray:
    """g * (SCALE if y > 0 else y + SCALE*ALPHA) for float64 values with mpmath, rounded to
    long double."""
    g64, y64 = np.broadcast_arrays(np.asarray(g, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return _mp_map(_mp_selu_backward_result1, g64, y64)


def neighbours(values: npt.ArrayLike, dtype: npt.DTypeLike, k: int = 3) -> np.ndarray:
    """Each value (rounded to `dtype`) and its k nearest representable neighbours either side."""
    v = np.asarray(values, dtype=dtype)
    out = [v]
    up, down = v.copy(), v.copy()
    inf = v.dtype.type(np.inf)
    for _ in range(k):
        up = np.nextafter(up, inf)
        down = np.nextafter(down, -inf)
        out += [up, down]
    return np.concatenate(out)


def hard_inputs(dtype: npt.DTypeLike, n: int = 100_000, seed: int = 0) -> np.ndarray:
    """About n + 30000 inputs of `dtype` for accuracy and parity checks: random bit patterns
    (every exponent, both signs, NaNs and infs) and random values, weighted to where SELU is hard
    to get right, plus fixed values with their neighbours: around 0 (every power of two,
    subnormals), the range-reduction boundaries (k + 1/2) ln 2, exp's underflow and the kernels'
    clamps, the overflow of x*SCALE (MAX / SCALE), y = -SCALE*ALPHA, +-inf, NaN and +-0."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    info = np.finfo(dt)
    tiny, big = float(info.smallest_subnormal), float(info.max)
    ln2, k = np.log(2.0), max(1, n // 8)
    utype = np.dtype(f"u{dt.itemsize}")
    boundaries = (np.arange(-1100 if dt.itemsize == 8 else -160, 3) + 0.5) * ln2
    powers = np.ldexp(1.0, -np.arange(0, 1080))
    near_zero = np.concatenate([powers, [tiny * i for i in range(1, 6)]])
    edges = [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        np.nan,
        -np.nan,
        big,
        -big,
        big / SCALE,
        tiny,
        -tiny,
        float(info.smallest_normal),
        -float(info.smallest_normal),
        -SCALE_ALPHA_F64,
        -17.0,
        -17.33,
        -18.0,
        -87.3,
        -88.7,
        -103.28,
        -104.0,
        -128.0,
        -200.0,
        -708.4,
        -709.8,
        -744.4,
        -745.1,
        -1000.0,
        -1400.0,
        -2000.0,
        -2100.0,
        -1e300,
    ]
    with np.errstate(all="ignore"):  # values beyond float32's range round to +-inf, as meant
        floats = [
            rng.uniform(-30.0, 5.0, k),
            rng.uniform(-1.0, 0.0, k),
            -np.exp(rng.uniform(np.log(tiny), np.log(800.0), k)),  # tiny to -800, log-uniform
            np.exp(rng.uniform(np.log(tiny), np.log(big), k)),  # positive, up to overflow
            rng.uniform(-760.0, -700.0, k),  # float64 exp underflow
            (rng.integers(-60, 1, k) + 0.5) * ln2 * (1 + rng.uniform(-1e3, 1e3, k) * info.eps),
            big / SCALE * (1 + rng.uniform(-64, 64, k) * info.eps),
        ]
        fixed = [
            neighbours(boundaries, dt, 2),
            neighbours(near_zero, dt, 1),
            neighbours(-near_zero, dt, 1),
            neighbours(edges, dt, 4),
        ]
        values = np.concatenate([np.asarray(f).astype(dt) for f in floats] + fixed)
    bits = rng.integers(0, np.iinfo(utype).max, size=max(k, n - 7 * k), dtype=utype, endpoint=True)
    subnormal_bits = rng.integers(1, 1 << info.nmant, size=k // 4, dtype=utype)
    return np.concatenate([bits.view(dt), values, -subnormal_bits.view(dt)])
