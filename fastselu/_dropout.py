"""AlphaDropout's pieces that every backend shares: Philox4x32-10, seeds, and the per-call
parameters (SPEC, "Self-normalizing companions").

The mask depends only on (seed, p, the element's logical index): element i is kept iff word
``i % 4`` of Philox4x32-10(counter ``(b mod 2^32, b >> 32, 0, 0)`` with ``b = i // 4``, key
``(seed mod 2^32, seed >> 32)``) is ``>= floor(p * 2^32)``.  With ``feature=True`` the index is
``flat // inner`` (``inner`` = product of the trailing dimensions), one draw per (sample, channel).

The kernels get the constants of one call in a float64 array (`params`, layout `P_*` below),
computed here once per p in exact decimal arithmetic and split into double-double pairs, so no
backend evaluates a square root or a logarithm and all of them use the very same doubles.
With SA = SCALE*ALPHA, q = 1 - p and a = (q (1 + p SA^2))^-1/2, a kept element v becomes
a*(v + SA*p) and a dropped one -a*SA*q + v*0.  In the fused form, v = SELU(x), and for x <= 0
a*(SA*expm1(x) + SA*p) = a*SA*q * expm1(x - ln q): the factored form that keeps its accuracy
where the sum cancels (x near ln q).  Derivatives: a*SCALE for x > 0, a*SA*exp(x) otherwise;
from the fused output z: a*SCALE for z > a*SA*p, else z + a*SA*q.
"""

from __future__ import annotations

import functools
import numbers
import secrets
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

import numpy as np

from . import _double_double as _dd
from ._constants import SCALE_ALPHA_STR, SCALE_STR

# Philox4x32-10 (Salmon et al., SC11; Random123's philox4x32_R with R = 10).
PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
PHILOX_ROUNDS = 10
_MASK32 = 0xFFFFFFFF

# Layout of the parameter array the kernels take (float64; *_HI/*_LO are double-double pairs).
P_THRESH = 0  # floor(p * 2^32), an integer in [0, 2^32]: 2^32 (p = 1) drops everything
P_A_HI, P_A_LO = 1, 2  # a
P_B_HI, P_B_LO = 3, 4  # SA * p
P_C_HI, P_C_LO = 5, 6  # a * SA * q (the dropped value is its negative)
P_L_HI, P_L_LO = 7, 8  # ln q
P_AS_HI, P_AS_LO = 9, 10  # a * SCALE
P_AB_HI, P_AB_LO = 11, 12  # a * SA * p (the fused output at x = 0)
P_ASA_HI, P_ASA_LO = 13, 14  # a * SA
P_CST = 15  # -a*SA*q rounded once to the result dtype (-0.0 for p = 1)
P_ZMIN = 16  # least value of the compute dtype above a*SA*p: fused z >= it means x > 0
# Third words of SA*p, ln q and a*SA*q: where float64 sums cancel (v = -SA*p, x = ln q,
# z = -a*SA*q) the result is ~2^-53 of the constant, so a double-double's 2^-106 would be ~1 ULP.
P_B_LO2, P_L_LO2, P_C_LO2 = 17, 18, 19
# The fused backward's fast path (for x above -80 in float32, -700 in float64): a*SCALE as a
# float32 pair (hi + lo, each a float32 value), and the table a*SA*2^(j/4), j = 0..3, as float32
# pairs (hi at P_FT_HI + j, lo at P_FT_LO + j) and as double-double pairs (P_DT_HI + j, ...).
P_FAS_HI, P_FAS_LO = 20, 21
P_FT_HI, P_FT_LO, P_DT_HI, P_DT_LO = 22, 26, 30, 34
N_PARAMS = 38

_THIRD = {P_B_HI: P_B_LO2, P_L_HI: P_L_LO2, P_C_HI: P_C_LO2}
_FORMATS = {  # dtype name -> (significand bits, minimum exponent)
    "float16": (11, -14),
    "bfloat16": (8, -126),
    "float32": (24, -126),
    "float64": (53, -1022),
}


def philox4x32_10(counter: Any, key: Any) -> tuple[np.ndarray, ...]:
    """Philox4x32-10 of counters (four arrays or ints of uint32 words) under key (k0, k1):
    the four output words as uint64 arrays holding 32-bit values (NumPy reference)."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in counter)
    k0, k1 = (np.uint64(int(k)) for k in key)
    m0, m1, mask, sh = np.uint64(PHILOX_M0), np.uint64(PHILOX_M1), np.uint64(_MASK32), np.uint64(32)
    for r in range(PHILOX_ROUNDS):
        if r:
            k0 = (k0 + np.uint64(PHILOX_W0)) & mask
            k1 = (k1 + np.uint64(PHILOX_W1)) & mask
        p0 = m0 * c0  # 32 x 32 -> 64 bits: no wraparound in uint64
        p1 = m1 * c2
        c0, c1, c2, c3 = (p1 >> sh) ^ c1 ^ k0, p1 & mask, (p0 >> sh) ^ c3 ^ k1, p0 & mask
    return c0, c1, c2, c3


def words(index: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """The Philox word (uint64 holding 32 bits) that decides element `index` (int64 array)."""
    idx = np.asarray(index, dtype=np.uint64)
    b = idx >> np.uint64(2)
    out = philox4x32_10((b & np.uint64(_MASK32), b >> np.uint64(32), 0 * b, 0 * b), key)
    lane = idx & np.uint64(3)
    return np.choose(lane.astype(np.intp), out)


def check_p(p: Any) -> float:
    """p as a float in [0, 1]: TypeError for a non-real (or bool), ValueError out of range/NaN."""
    if type(p) is float:  # the common case, without the abc checks below
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p!r}")
        return p
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
        raise TypeError(f"p must be a real number in [0, 1], got {type(p).__name__}")
    pf = float(p)
    if not 0.0 <= pf <= 1.0:  # NaN fails too
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    return pf


def check_seed(seed: Any) -> None:
    """Validate `seed` without drawing from it (a call that raises draws nothing)."""
    if isinstance(seed, np.random.Generator) or seed is None:
        return
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(
            "seed must be an int in [0, 2**64), a numpy.random.Generator or None, "
            f"got {type(seed).__name__}"
        )
    if not 0 <= int(seed) < 1 << 64:
        raise ValueError(f"seed must be in [0, 2**64), got {int(seed)}")


def draw_seed(seed: Any) -> int:
    """The 64-bit seed: the int itself, one draw from a Generator, or fresh OS entropy."""
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**64, dtype=np.uint64))
    if seed is None:
        return secrets.randbits(64)
    return int(seed)


def key_of(seed: int) -> tuple[int, int]:
    return seed & _MASK32, seed >> 32


def _round_to(d: Decimal, fmt: str) -> float:
    """d rounded once (to nearest even) to the format, returned as the exact Python float."""
    if d == 0:
        return 0.0
    prec, emin = _FORMATS[fmt]
    e = int(np.floor(np.log2(abs(float(d)))))
    while Decimal(2) ** e > abs(d):  # float(d) may have rounded up to a power of two
        e -= 1
    while Decimal(2) ** (e + 1) <= abs(d):
        e += 1
    ulp = Decimal(2) ** (max(e, emin) - prec + 1)
    m = (d / ulp).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return float(m * ulp)


@functools.lru_cache(maxsize=256)
def params(p: float, fmt: str) -> np.ndarray:
    """The kernels' constants for drop probability p (0 < p <= 1) and result format `fmt`
    ('float16', 'bfloat16', 'float32' or 'float64'); read-only float64 array (layout P_*)."""
    prm = np.zeros(N_PARAMS)
    prm[P_THRESH] = float(int(p * 4294967296.0))  # p * 2^32 is exact; int() floors
    if p == 1.0:
        prm[P_CST] = -0.0  # v * (+0.0): v*0 + (-0.0) keeps v*0's sign
        prm.flags.writeable = False
        return prm
    cfmt = "float64" if fmt == "float64" else "float32"
    with localcontext() as ctx:
        ctx.prec = 80
        sa = Decimal(SCALE_ALPHA_STR)
        pd = Decimal(p)
        q = 1 - pd
        a = 1 / (q * (1 + pd * sa * sa)).sqrt()
        b = sa * pd
        c = a * sa * q
        for i, v in (
            (P_A_HI, a),
            (P_B_HI, b),
            (P_C_HI, c),
            (P_L_HI, q.ln()),
            (P_AS_HI, a * Decimal(SCALE_STR)),
            (P_AB_HI, a * b),
            (P_ASA_HI, a * sa),
        ):
            prm[i], prm[i + 1], lo2 = _dd.from_decimal(v, 3)
            if i in _THIRD:
                prm[_THIRD[i]] = lo2
        prm[P_CST] = _round_to(-c, fmt)
        fas = a * Decimal(SCALE_STR)
        prm[P_FAS_HI] = _round_to(fas, "float32")
        prm[P_FAS_LO] = _round_to(fas - Decimal(prm[P_FAS_HI]), "float32")
        for j in range(4):
            t = a * sa * Decimal(2) ** (Decimal(j) / 4)
            prm[P_FT_HI + j] = _round_to(t, "float32")
            prm[P_FT_LO + j] = _round_to(t - Decimal(prm[P_FT_HI + j]), "float32")
            prm[P_DT_HI + j], prm[P_DT_LO + j], _ = _dd.from_decimal(t, 3)
        z = _round_to(a * b, cfmt)
        if Decimal(z) <= a * b:  # never equal: a*SA*p is irrational
            dt = np.float64 if cfmt == "float64" else np.float32
            z = float(np.nextafter(dt(z), dt(np.inf)))
        prm[P_ZMIN] = z
    prm.flags.writeable = False
    return prm


_FMT_NAMES: dict[Any, str] = {}


def fmt_name(dt: np.dtype[Any]) -> str:
    """'float16', 'bfloat16', 'float32' or 'float64' for a result dtype."""
    name = _FMT_NAMES.get(dt.type)
    if name is None:
        name = _FMT_NAMES[dt.type] = "bfloat16" if dt.name == "bfloat16" else np.dtype(dt.type).name
    return name
