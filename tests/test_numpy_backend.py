"""The numpy reference backend's float64 path: double-double arithmetic, no long double.

Checked here on every platform: errors measured in mpmath (exact values and the SPEC's ULP metric
both evaluated there, so no long double is involved), on the inputs where SELU is hard: near 0,
subnormals, the range-reduction boundaries, saturation to -SCALE*ALPHA, exp underflow, x*SCALE
overflow and y + SCALE*ALPHA cancellation.  The backend rounds once from ~100 bits, so it is held
to nearly correct rounding (0.5 ULP + 2^-10), tighter than the SPEC's 1 and 1.5 ULP.  The building
blocks (`_double_double`) are checked against exact rationals.
"""

import inspect
import io
import tokenize
from fractions import Fraction

import mpmath
import numpy as np
import pytest

from fastselu import _backend_numpy as NP, _double_double as dd
from fastselu._constants import ALPHA_STR, SCALE_ALPHA_F64, SCALE_STR
from util import needs_80bit, run_python, same_floats

F64 = np.finfo(np.float64)
NEARLY_HALF = 0.5 + 2.0**-10  # the reference's own bound: one rounding from ~100 bits
TINY = float(F64.smallest_subnormal)
SA = SCALE_ALPHA_F64
LN2_64 = np.log(2.0) / 64


# ---- the oracle: exact values and the SPEC's ULP metric, in mpmath ------------------------------

PREC = 160


def _mp(v):
    return mpmath.mpf(float(v))


def exact_forward(x):
    with mpmath.workprec(PREC):
        s, a = mpmath.mpf(SCALE_STR), mpmath.mpf(ALPHA_STR)
        return [s * _mp(v) if v > 0 else s * a * mpmath.expm1(_mp(v)) for v in x]


def exact_backward_x(g, x):
    with mpmath.workprec(PREC):
        s, a = mpmath.mpf(SCALE_STR), mpmath.mpf(ALPHA_STR)
        return [_mp(gi) * (s if v > 0 else s * a * mpmath.exp(_mp(v))) for gi, v in zip(g, x)]


def exact_backward_y(g, y):
    with mpmath.workprec(PREC):
        s, a = mpmath.mpf(SCALE_STR), mpmath.mpf(ALPHA_STR)
        return [_mp(gi) * (s if v > 0 else _mp(v) + s * a) for gi, v in zip(g, y)]


def mp_ulp_errors(result, exact):
    """SPEC metric |r - e| / 2^(max(floor(log2|e|), -1022) - 52) for nonzero finite exact values e;
    where e rounds beyond the range, r must be that infinity; a zero r must have e's sign."""
    errs = np.empty(len(exact))
    with mpmath.workprec(PREC):
        overflow = _mp(F64.max) + mpmath.ldexp(1, 1023 - 53)  # max + ULP/2: ties go to inf
        for i, (r, e) in enumerate(zip(result, exact)):
            r = float(r)
            if abs(e) >= overflow:
                ok = np.isinf(r) and (r > 0) == (e > 0)
                errs[i] = 0.0 if ok else np.inf
            elif not np.isfinite(r) or (r == 0 and np.signbit(r) != (e < 0)):
                errs[i] = np.inf
            else:
                _, n = mpmath.frexp(e)  # |e| = m 2^n, m in [1/2, 1): floor(log2|e|) = n - 1
                errs[i] = float(abs(_mp(r) - e) * mpmath.ldexp(1, 52 - max(int(n) - 1, -1022)))
    return errs


def assert_bound(result, exact, inputs, limit, what):
    err = mp_ulp_errors(result, exact)
    worst = int(np.argmax(err))
    assert err[worst] <= limit, (
        f"{what}: {err[worst]} ULP at {inputs[worst]!r}: got {result[worst]!r}, exact "
        f"{mpmath.nstr(exact[worst], 25)}; {int((err > limit).sum())} of {err.size} above {limit}"
    )
    return float(err.max())


# ---- inputs --------------------------------------------------------------------------------------


def _ulps_around(values, k):
    """Each value and its k neighbours on either side (by bit pattern; values of one sign)."""
    v = np.asarray(values, dtype=np.float64).view(np.int64)
    return (v[:, None] + np.arange(-k, k + 1)).ravel().view(np.float64)


def hard_x(n, seed):
    """Finite float64 x, about 12 n of them, from every place where SELU or its derivative is
    hard to get right in float64."""
    rng = np.random.default_rng(seed)
    sign = rng.choice([-1.0, 1.0], n)
    red = rng.integers(-1500 * 64 // 44, 1, n)  # multiples of ln2/64 down to about -1500
    parts = [
        sign * np.exp2(rng.uniform(-1074, 1024, n)),  # every magnitude
        -np.exp2(rng.uniform(-1074, -6, n)),  # expm1 near 0: tiny and subnormal x
        sign * TINY * rng.integers(1, 1 << 20, n),  # subnormal x, both branches
        -_ulps_around(2.0**-1022 / SA * rng.uniform(0.5, 2, n // 8), 4),  # output ~ smallest normal
        red * LN2_64 * (1 + rng.uniform(-1e-14, 1e-14, n)),  # s ~ 0 after the reduction
        (red - 0.5) * LN2_64,  # where the nearest multiple switches
        -_ulps_around(np.array([LN2_64 / 2, np.log(2) / 2, 1.0]), 20),  # first table steps
        rng.uniform(-40, 0, n),  # the expm1 branch at moderate |x|
        -_ulps_around(rng.uniform(35, 40, n // 8), 4),  # saturation to -SCALE*ALPHA
        rng.uniform(-760, -700, n),  # exp underflows to subnormal, then to zero
        rng.uniform(-2200, -760, n // 4),  # below that: only a huge g keeps it nonzero
        _ulps_around(np.array([F64.max / 1.0507009873554805]), n // 2),  # x * SCALE overflows
        np.array([TINY, -TINY, F64.tiny, -F64.tiny, F64.max, -F64.max, 1.0, -1.0, -1e300]),
    ]
    return np.concatenate(parts)


def hard_g(x, seed):
    """grad_output for each x: 1 for the first third, then any magnitude and sign, and huge or
    tiny where x makes exp(x) underflow or SCALE * g overflow."""
    rng = np.random.default_rng(seed)
    g = rng.choice([-1.0, 1.0], x.size) * np.exp2(rng.uniform(-1074, 1024, x.size))
    far = x < -700
    g[far] = rng.choice([-1.0, 1.0], far.sum()) * np.exp2(rng.uniform(900, 1024, far.sum()))
    g[: x.size // 3] = 1.0
    return g


def hard_y(x, seed):
    """y for the backward from the result: forward outputs, any value, and the cancellation
    zone around y = -SCALE*ALPHA (where y + SCALE*ALPHA is as small as ~2^-56)."""
    y = np.empty_like(x)
    NP.forward(x, y, 1)
    return np.concatenate(
        [
            y[np.isfinite(y)],
            x,
            -_ulps_around(np.array([SA]), 300),
            -_ulps_around(np.array([1.7, 1e-300, 1e300]), 5),
        ]
    )


def _run(kind, *args):
    out = np.empty_like(args[-1])
    getattr(NP, kind)(*args, out, 1)
    return out


def check_all(n, seed):
    """Max ULP error (forward, backward_x at g = 1 and other g, backward_y) on hard inputs."""
    x = hard_x(n, seed)
    worst = {"inputs": x.size}
    worst["forward"] = assert_bound(_run("forward", x), exact_forward(x), x, NEARLY_HALF, "forward")
    g = hard_g(x, seed + 1)
    d = _run("backward_x", g, x)
    exact = exact_backward_x(g, x)
    ones = g == 1
    worst["backward_x g=1"] = assert_bound(
        d[ones], [e for e, o in zip(exact, ones) if o], x[ones], NEARLY_HALF, "backward_x, g = 1"
    )
    worst["backward_x"] = assert_bound(d, exact, x, NEARLY_HALF, "backward_x")
    y = hard_y(x[: x.size // 2], seed + 2)
    gy = hard_g(y, seed + 3)
    worst["inputs_y"] = y.size
    worst["backward_y"] = assert_bound(
        _run("backward_y", gy, y), exact_backward_y(gy, y), y, NEARLY_HALF, "backward_y"
    )
    return worst


def test_float64_bounds_vs_mpmath():
    check_all(400, seed=1)


@pytest.mark.slow
def test_float64_bounds_vs_mpmath_large():
    for seed in range(10, 40, 10):
        check_all(5000, seed)


@needs_80bit
def test_oracle_agrees_with_ulp_module():
    """This file's mpmath metric and fastselu._ulp's (long double) measure the same errors."""
    from fastselu._ulp import mp_selu, ulp_error

    x = hard_x(20, seed=5)
    y = _run("forward", x)
    y[::3] = np.nextafter(y[::3], 0)  # some results 1 ULP off, so the errors are not all ~0
    mine = mp_ulp_errors(y, exact_forward(x))
    theirs = ulp_error(y, mp_selu(x), np.float64)
    assert np.allclose(mine, theirs, rtol=0, atol=2.0**-9)


# ---- special values ------------------------------------------------------------------------------


def test_special_values():
    x = np.array([np.inf, -np.inf, 0.0, -0.0, -40.0, -1e300, -F64.max, F64.max, np.nan])
    y = _run("forward", x)
    assert y[0] == np.inf and (y[[1, 4, 5, 6]] == -1.7580993408473768).all()  # not SCALE*ALPHA
    assert y[2] == 0 and not np.signbit(y[2]) and y[3] == 0 and np.signbit(y[3])
    assert y[7] == np.inf and np.isnan(y[8])
    top = np.nextafter(F64.max / 1.0507009873554805, 0)  # x * SCALE just below overflow: finite
    assert np.isfinite(_run("forward", np.array([top])))[0]

    nan = np.array([np.nan]).view(np.uint64)[0]  # the positive default quiet NaN
    g = np.array([1.0, np.inf, -np.inf, 0.0, -0.0, 1.0, np.inf, 1.0, -2.0, F64.max, -np.nan])
    x = np.array([-800.0, -1e4, -800.0, -1.0, 1.0, -np.inf, -np.inf, np.inf, np.inf, -1400.0, 1.0])
    d = _run("backward_x", g, x)
    assert same_floats(d[:5], np.array([0.0, np.inf, -np.inf, 0.0, -0.0])), d
    assert d[5] == 0 and d[7] == 1.0507009873554805 and d[8] == -2 * 1.0507009873554805
    assert d[9] > 0  # max * SA * e^-1400 ~ 2^-995: a normal number, not zero
    assert (d[[6, 10]].view(np.uint64) == nan).all()  # inf * 0 and NaN: the default NaN

    y = np.array([-SA, -np.inf, np.inf, 0.0, -0.0, np.nan, -1e300])
    gy = np.array([1.0, 1.0, -1.0, 1.0, 1.0, 1.0, 1e300])
    d = _run("backward_y", gy, y)
    assert d[0] == pytest.approx(1.415e-17, rel=1e-3) and d[1] == -np.inf
    assert d[2] == -1.0507009873554805 and d[3] == d[4] == SA
    assert d[5].view(np.uint64) == nan and d[6] == -np.inf


# ---- the double-double building blocks, against exact rationals ---------------------------------


def test_error_free_transformations():
    rng = np.random.default_rng(8)
    a = rng.standard_normal(2000) * np.exp2(rng.integers(-400, 400, 2000))
    b = rng.standard_normal(2000) * np.exp2(rng.integers(-400, 400, 2000))
    for op, (s, e) in (
        (lambda u, v: u + v, dd.two_sum(a, b)),
        (lambda u, v: u * v, dd.two_prod(a, b)),
    ):
        for ai, bi, si, ei in zip(a, b, s, e):
            assert Fraction(si) + Fraction(ei) == op(Fraction(ai), Fraction(bi))
    hi, lo = dd.split(a)
    assert all(Fraction(h) + Fraction(m) == Fraction(v) for h, m, v in zip(hi, lo, a))


def _exact_round(v):
    """A Fraction rounded once to float64 (CPython's int / int division is correctly rounded)."""
    try:
        return v.numerator / v.denominator
    except OverflowError:
        return np.inf if v > 0 else -np.inf


def test_round_scaled_rounds_once():
    """(hi + lo) * 2^e is rounded once, also into the subnormal range (where scaling fl(hi + lo)
    would round twice) and at overflow; ties go to even."""
    rng = np.random.default_rng(9)
    n = 4000
    hi = rng.uniform(0.5, 4, n) * rng.choice([-1.0, 1.0], n)
    lo = hi * rng.uniform(-(2.0**-53), 2.0**-53, n)
    e = rng.integers(-1140, -1010, n).astype(np.int32)  # subnormal and low normal results
    # Exact ties halfway between two subnormals: hi = (odd/2) * 2^(-1074 - e), lo = 0 or tiny.
    k = rng.integers(1, 1 << 20, n // 4) * 2 + 1
    e_tie = -rng.integers(1050, 1080, n // 4).astype(np.int32)
    hi_tie = np.ldexp(k / 2, -1074 - e_tie)
    lo_tie = np.where(
        rng.random(n // 4) < 0.5, 0.0, hi_tie * 2.0**-60 * rng.choice([-1, 1], n // 4)
    )
    e_big = rng.integers(1020, 1026, n // 4).astype(np.int32)  # overflow to inf or not
    hi_big = rng.uniform(0.99, 1.0, n // 4)
    hi_big[:50] = np.nextafter(1.0, 0)  # 2^1024 (1 - 2^-53): max + ULP/2 with lo > 0 or not
    lo_big = np.where(np.arange(n // 4) < 25, 2.0**-120, 0.0)
    H = np.concatenate([hi, hi_tie, hi_big])
    L = np.concatenate([lo, lo_tie, lo_big])
    H, L = dd.fast_two_sum(H, L)  # normalised pairs, as the backend makes them
    E = np.concatenate([e, e_tie, e_big])
    with np.errstate(over="ignore"):
        got = dd.round_scaled((H, L), E)
    want = np.array(
        [
            _exact_round((Fraction(h) + Fraction(m)) * Fraction(2) ** int(x))
            for h, m, x in zip(H, L, E)
        ]
    )
    assert same_floats(got, want), np.flatnonzero(got != want)[:5]
    assert (np.signbit(got) == np.signbit(H)).all()  # zeros keep the sign


# ---- no long double ------------------------------------------------------------------------------


def test_no_longdouble():
    """The SPEC forbids np.longdouble in the numpy backend, even as an optional fast path: not in
    its source, and it computes the same bits with np.longdouble gone from NumPy."""
    banned = {"longdouble", "clongdouble", "float128", "float96", "'g'", '"g"', "'longdouble'"}
    for mod in (NP, dd):  # names and string literals other than docstrings (which say "no")
        tokens = tokenize.generate_tokens(io.StringIO(inspect.getsource(mod)).readline)
        used = {t.string for t in tokens if t.type in (tokenize.NAME, tokenize.STRING)}
        assert not used & banned, (mod.__name__, used & banned)
    rng = np.random.default_rng(12)
    x = np.concatenate([hard_x(30, 13), rng.standard_normal(200) * 30])
    g = hard_g(x, 14)
    want = np.concatenate([_run("forward", x), _run("backward_x", g, x), _run("backward_y", g, x)])
    code = (
        "import sys, numpy as np\n"
        "for name in ('longdouble', 'clongdouble', 'float128', 'float96'):\n"
        "    if hasattr(np, name): delattr(np, name)\n"
        "from fastselu import _backend_numpy as NP\n"
        "x, g = (np.frombuffer(bytes.fromhex(a)) for a in sys.argv[1:3])\n"
        "outs = [np.empty_like(x) for _ in range(3)]\n"
        "NP.forward(x, outs[0], 1)\n"
        "NP.backward_x(g, x, outs[1], 1)\n"
        "NP.backward_y(g, x, outs[2], 1)\n"
        "print(np.concatenate(outs).tobytes().hex())\n"
    )
    proc = run_python(code, x.tobytes().hex(), g.tobytes().hex())
    assert proc.returncode == 0, proc.stderr
    got = np.frombuffer(bytes.fromhex(proc.stdout.strip()))
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64))
