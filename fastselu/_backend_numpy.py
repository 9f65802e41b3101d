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
