"""ULP error measurement and high-precision SELU values, for tests and the exhaustive checker.

`ulp_error` implements the SPEC definition.  The `exact_*` functions evaluate in x86 80-bit long
double (64-bit significand: 40 bits beyond float32, 11 beyond float64); `mp_selu` and
`mp_selu_backward` use mpmath at 100 bits for float64 spot checks (slow: Python loop).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ._constants import SCALE_ALPHA_LO_LD_STR, SCALE_ALPHA_STR, SCALE_STR, ALPHA_STR

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
    # A float64 `exact` for a float32/float16/bfloat16 result is exact enough (its own error is below
    # 2^-27 ULP) and ten times faster to work with than long double: the exhaustive checker
    # relies on that.
    e = np.asarray(exact)
    work = np.float64 if (dt.itemsize <= 4 and e.dtype == np.float64) else LD
    with np.errstate(invalid="ignore"):  # a signalling NaN raises 'invalid' on conversion
        r = np.asarray(result).astype(work)
        e = e.astype(work, copy=False)
    r, e = np.broadcast_arrays(r, e)
    # Round-to-nearest overflows from max + half an ULP (ties go to inf: max's significand is odd).
    overflow = work(fmax) + np.ldexp(work(1), maxexp - 1 - p)
    with np.errstate(all="ignore"):
        err = np.empty(e.shape, dtype=work)
        e_nan = np.isnan(e)
        e_inf = ~e_nan & (np.abs(e) >= overflow)
        e_zero = e == 0
        normal = ~(e_nan | e_inf | e_zero)
        _, exp2 = np.frexp(e)  # |e| = m * 2^exp2, m in [0.5, 1): floor(log2|e|) = exp2 - 1
        scale_exp = np.maximum(exp2 - 1, emin) - p + 1
        err[normal] = np.ldexp(np.abs(r - e), -scale_exp)[normal]
        err[normal & np.isnan(r)] = np.inf
        ok_inf = np.isinf(r) & (np.sign(r) == np.sign(e))
        err[e_inf] = np.where(ok_inf, 0, np.inf)[e_inf]
        err[e_nan] = np.where(np.isnan(r), 0, np.inf)[e_nan]
        ok_zero = (r == 0) & (np.signbit(r) == np.signbit(e))
        err[e_zero] = np.where(ok_zero, 0, np.inf)[e_zero]
    return err.astype(np.float64)


def exact_selu(x: npt.ArrayLike, work: Any = LD) -> np.ndarray:
    """SELU(x) evaluated in long double (or in `work`: float64 is exact enough for float32)."""
    with np.errstate(all="ignore"):  # signalling NaNs in bit-pattern sweeps raise "invalid"
        xl = np.asarray(x).astype(work)
        return np.where(xl > 0, xl * work(_SCALE), work(_SA) * np.expm1(xl))


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
    # 30 significant digits (~100 bits) parse to the nearest long double.
    return LD(mpmath.nstr(v, 30))


def _mp_map(fn: Any, *arrays: np.ndarray) -> np.ndarray:
    import mpmath

    flat = [a.ravel() for a in arrays]
    out = np.empty(flat[0].shape, dtype=LD)
    # errstate: values beyond long double's range (exp(-1e300)) round to 0/inf, silently.
    with mpmath.workprec(100), np.errstate(all="ignore"):
        for i, vals in enumerate(zip(*flat)):
            v = fn(mpmath, *vals)
            out[i] = v if isinstance(v, LD) else _mp_to_ld(mpmath, v)
    return out.reshape(arrays[0].shape)


def _mp_selu1(mpmath: Any, x: float) -> Any:
    if np.isnan(x) or x == 0 or x == np.inf:  # mpmath has no signed zero: SELU keeps x here
        return LD(x)
    scale, alpha = mpmath.mpf(SCALE_STR), mpmath.mpf(ALPHA_STR)
    if x == -np.inf:
        return -scale * alpha
    if x > 0:
        return scale * mpmath.mpf(x)
    return scale * alpha * mpmath.expm1(mpmath.mpf(x))


def _mp_selu_backward1(mpmath: Any, g: float, x: float) -> Any:
    if np.isnan(x) or np.isnan(g) or np.isinf(g) or x == -np.inf or g == 0:
        return LD(exact_selu_backward(g, x)[()])  # specials: no rounding involved
    scale, alpha = mpmath.mpf(SCALE_STR), mpmath.mpf(ALPHA_STR)
    d = scale if x > 0 else scale * alpha * mpmath.exp(mpmath.mpf(x))
    return d * mpmath.mpf(g)


def mp_selu(x: npt.ArrayLike) -> np.ndarray:
    """SELU of float64 values with mpmath at 100 bits, rounded to long double."""
    return _mp_map(_mp_selu1, np.asarray(x, dtype=np.float64))


def mp_selu_backward(g: npt.ArrayLike, x: npt.ArrayLike) -> np.ndarray:
    """g * SELU'(x) for float64 values with mpmath at 100 bits, rounded to long double."""
    g64, x64 = np.broadcast_arrays(np.asarray(g, dtype=np.float64), np.asarray(x, dtype=np.float64))
    return _mp_map(_mp_selu_backward1, g64, x64)
