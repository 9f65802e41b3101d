"""Double-double arithmetic on NumPy float64 arrays, for the numpy reference backend.

A double-double (dd) is a pair (hi, lo) of float64 arrays standing for the unevaluated sum
hi + lo with |lo| <= ulp(hi) / 2: about 106 significant bits out of plain IEEE double operations,
so it gives the same answers on every platform (no long double, no fma: NumPy has none).

- `two_sum` and `two_prod` are the error-free transformations (Knuth; Dekker with Veltkamp's
  split): a + b and a * b as a rounded result plus its exact rounding error.  The split
  multiplies by 2^27 + 1, so it overflows for |a| > ~2^996, and a product's error term is only
  exact while it stays above the subnormal range (exponents of a*b above ~-969).  Callers keep
  operands near 1 (`np.frexp` scaling) and apply the binary exponent once at the end, in
  `round_scaled`, which also rounds into the subnormal range with a single rounding.
- Constants come from decimal strings through `decimal` (`from_decimal`), independent of any
  float literal typed elsewhere.
"""

from __future__ import annotations

import decimal
from typing import Tuple

import numpy as np

DD = Tuple[np.ndarray, np.ndarray]

_SPLITTER = 134217729.0  # 2^27 + 1: splits a double into two halves of at most 26 bits each
_TINY = 2.0**-1022  # smallest normal float64
_SUB_EXP = -1074  # exponent of the smallest subnormal: the grid of the subnormal range

# Enough digits for every constant here (hi + lo + a third part: ~160 bits, 49 digits).
CONTEXT = decimal.Context(prec=80)


def from_decimal(value: decimal.Decimal, parts: int = 2) -> tuple[float, ...]:
    """`value` as `parts` floats whose sum approximates it to ~53 * parts bits (each part the
    remainder rounded to nearest)."""
    out = []
    rest = value
    for _ in range(parts):
        f = float(rest)  # correctly rounded
        out.append(f)
        rest = CONTEXT.subtract(rest, decimal.Decimal(f))
    return tuple(out)


def round_bits(value: decimal.Decimal, bits: int) -> float:
    """`value` rounded to nearest with at most `bits` significant bits (so that its products with
    integers below 2^(53 - bits) are exact)."""
    _, e = np.frexp(float(value))
    shift = bits - int(e)
    q = CONTEXT.multiply(value, decimal.Decimal(2) ** shift).to_integral_value(
        rounding=decimal.ROUND_HALF_EVEN
    )
    return float(np.ldexp(float(q), -shift))


def two_sum(a: np.ndarray, b: np.ndarray) -> DD:
    """(s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth; no ordering needed)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def fast_two_sum(a: np.ndarray, b: np.ndarray) -> DD:
    """two_sum for |a| >= |b| (or a == 0): three operations instead of six."""
    s = a + b
    return s, b - (s - a)


def split(a: np.ndarray) -> DD:
    """Veltkamp: a = hi + lo exactly, each with at most 26 significant bits (|a| < 2^996)."""
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


def two_prod(a: np.ndarray, b: np.ndarray) -> DD:
    """(p, e) with p = fl(a * b) and p + e = a * b exactly (Dekker), for operands whose split
    does not overflow and whose product's error term is not subnormal."""
    p = a * b
    ah, al = split(a)
    bh, bl = split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def add(a: DD, b: DD) -> DD:
    """a + b, accurate also under cancellation (relative error ~2^-104 of |a| + |b|)."""
    s, e = two_sum(a[0], b[0])
    t, f = two_sum(a[1], b[1])
    e = e + t
    s, e = fast_two_sum(s, e)
    e = e + f
    return fast_two_sum(s, e)


def add_d(a: DD, b: np.ndarray) -> DD:
    """a + b for a double b."""
    s, e = two_sum(a[0], b)
    e = e + a[1]
    return fast_two_sum(s, e)


def mul(a: DD, b: DD) -> DD:
    """a * b (relative error ~2^-104)."""
    p, e = two_prod(a[0], b[0])
    e = e + (a[0] * b[1] + a[1] * b[0])
    return fast_two_sum(p, e)


def mul_d(a: DD, b: np.ndarray) -> DD:
    """a * b for a double b."""
    p, e = two_prod(a[0], b)
    e = e + a[1] * b
    return fast_two_sum(p, e)


def round_scaled(a: DD, exp: np.ndarray) -> np.ndarray:
    """(hi + lo) * 2^exp rounded once to float64, for a normalised pair (|lo| <= ulp(hi) / 2).

    In the normal range that is fl(hi + lo) scaled exactly; overflow gives inf exactly when the
    exact value reaches max + ulp/2.  Where the result is subnormal, scaling fl(hi + lo) would
    round twice, so there hi is rounded to the subnormal grid and corrected by one step where
    the rest (what hi lost, plus lo) passes half a step, ties to even.
    """
    hi, lo = a
    r = np.ldexp(hi + lo, exp)
    # |r| <= 2^-1022 may need the grid correction; exp < -1080 means |value| < 2^-1077 with
    # |hi| < 8: it rounds to a signed zero either way (and the grid step would overflow below).
    sub = np.flatnonzero((np.abs(r) <= _TINY) & (exp >= -1080) & (hi != 0))
    if sub.size:
        h, low, e = hi[sub], lo[sub], exp[sub]
        t = np.ldexp(h, e)  # hi on the subnormal grid: one rounding
        step = np.ldexp(1.0, _SUB_EXP - e)  # the grid step in hi's scale (exact: e >= -1080)
        d, d_err = two_sum(h, -np.ldexp(t, -e))  # what rounding hi lost, exactly (d_err == 0)
        rest, rest_err = two_sum(d, low + d_err)
        half = 0.5 * step
        odd = np.fmod(np.ldexp(np.abs(t), -_SUB_EXP), 2.0) == 1.0
        up = (rest > half) | ((rest == half) & ((rest_err > 0) | ((rest_err == 0) & odd)))
        down = (rest < -half) | ((rest == -half) & ((rest_err < 0) | ((rest_err == 0) & odd)))
        tiny_step = 2.0**_SUB_EXP
        t = t + np.where(up, tiny_step, 0.0) - np.where(down, tiny_step, 0.0)
        # A zero keeps the sign of the exact value (t == 0 with a nonzero h: h's sign).
        r[sub] = np.where(t == 0, np.copysign(0.0, h), t)
    return r
