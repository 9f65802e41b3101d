"""The measuring tools themselves: constants, the ULP metric and the high-precision oracles."""

from fractions import Fraction

import mpmath
import numpy as np
import pytest

import fastselu
from fastselu import _constants as C
from fastselu._ulp import (
    exact_selu,
    exact_selu_backward,
    exact_selu_backward_result,
    mp_selu,
    mp_selu_backward,
    ulp_error,
)
from util import needs_80bit, oracle_dtypes

LD = np.longdouble


def test_constants():
    assert fastselu.ALPHA == 1.6732632423543772848170429916717
    assert fastselu.SCALE == 1.0507009873554804934193349852946
    assert type(fastselu.ALPHA) is float and type(fastselu.SCALE) is float
    exact = Fraction(C.ALPHA_STR) * Fraction(C.SCALE_STR)
    assert Fraction(C.SCALE_ALPHA_STR) == exact
    assert float(exact) == C.SCALE_ALPHA_F64 == 1.7580993408473768
    assert fastselu.SCALE * fastselu.ALPHA == 1.7580993408473766  # why the constant is written out
    assert float(exact - Fraction(C.SCALE_ALPHA_F64)) == C.SCALE_ALPHA_LO_F64


@needs_80bit
def test_longdouble_split():
    exact = Fraction(C.SCALE_ALPHA_STR)
    hi = LD(C.SCALE_ALPHA_STR)
    lo = LD(C.SCALE_ALPHA_LO_LD_STR)
    assert abs(Fraction(*hi.as_integer_ratio()) - exact) <= Fraction(2) ** -64
    residual = exact - Fraction(*hi.as_integer_ratio()) - Fraction(*lo.as_integer_ratio())
    assert abs(residual) < Fraction(2) ** -125


@pytest.mark.parametrize(
    "dtype, p",
    [(np.float16, 11), (np.float32, 24), pytest.param(np.float64, 53, marks=needs_80bit)],
)
def test_ulp_error_basics(dtype, p):
    one = np.array([1.0], dtype=dtype)
    up = np.nextafter(one, dtype(2))
    down = np.nextafter(one, dtype(0))
    e = LD(1)
    assert ulp_error(one, [e], dtype)[0] == 0
    assert ulp_error(up, [e], dtype)[0] == 1  # ULP of [1, 2) is 2^(1-p)
    assert ulp_error(down, [e], dtype)[0] == 0.5  # measured with e's exponent, not r's
    assert ulp_error(one, [e + np.ldexp(LD(1), -p)], dtype)[0] == 0.5
    # Below 1 the ULP is half as large: two steps down from 1 is one ULP from 1 - 2^-p.
    down2 = np.nextafter(down, dtype(0))
    assert ulp_error(down2, [LD(1) - np.ldexp(LD(1), -p)], dtype)[0] == 1


@pytest.mark.parametrize("dtype", oracle_dtypes(np.float16, np.float32, np.float64))
def test_ulp_error_subnormal_and_specials(dtype):
    fi = np.finfo(dtype)
    tiny = fi.smallest_subnormal
    # Subnormal ULP is the smallest subnormal, not |e|'s exponent: e = tiny/2 with r = 0 is 0.5.
    assert ulp_error(np.array([dtype(0)]), [LD(tiny) / 2], dtype)[0] == 0.5
    assert ulp_error(np.array([tiny * 3]), [LD(tiny)], dtype)[0] == 2
    nan, inf = dtype(np.nan), dtype(np.inf)
    r = np.array([nan, dtype(1), inf, -inf, fi.max, inf, dtype(0.0), dtype(-0.0), dtype(0.0), nan])
    e = np.array([np.nan, np.nan, np.inf, -np.inf, np.inf, 1.0, 0.0, -0.0, -0.0, 1.0], dtype=LD)
    expect = [0, np.inf, 0, 0, np.inf, np.inf, 0, 0, np.inf, np.inf]
    assert list(ulp_error(r, e, dtype)) == expect


@pytest.mark.parametrize("dtype", oracle_dtypes(np.float16, np.float32, np.float64))
def test_ulp_error_overflow_threshold(dtype):
    fi = np.finfo(dtype)
    p = fi.nmant + 1
    half_ulp = np.ldexp(LD(1), int(fi.maxexp) - 1 - p)
    just_below = LD(fi.max) + half_ulp * LD(0.99)
    at_midpoint = LD(fi.max) + half_ulp  # ties to even: rounds to inf
    err = ulp_error(
        np.array([fi.max, fi.max, dtype(np.inf)]), [just_below, at_midpoint, at_midpoint], dtype
    )
    assert err[0] == pytest.approx(0.495, abs=1e-3) and err[1] == np.inf and err[2] == 0
    assert ulp_error(np.array([dtype(np.inf)]), [just_below], dtype)[0] == np.inf
    assert ulp_error(np.array([-fi.max]), [-at_midpoint], dtype)[0] == np.inf


def test_ulp_error_accepts_byteswapped_and_shapes():
    r = np.array([[1.0, 2.0]], dtype=">f8")
    assert ulp_error(r, np.array([[1.0, 2.0]], dtype=LD), ">f8").shape == (1, 2)


@needs_80bit
def test_exact_matches_mpmath():
    rng = np.random.default_rng(1)
    x = np.concatenate(
        [rng.uniform(-50, 50, 300), -np.logspace(-300, 2, 100), [-0.0, 0.0, -np.inf]]
    )
    e, m = exact_selu(x), mp_selu(x)
    assert ulp_error(e.astype(np.float64), m, np.float64).max() <= 0.5 + 1e-3
    # long double is 11 bits beyond float64: agree to ~2^-10 of a float64 ULP
    rel = np.abs((e - m) / np.where(m == 0, 1, m))
    assert rel.max() < 2.0**-60
    g = rng.standard_normal(x.size)
    eb, mb = exact_selu_backward(g, x), mp_selu_backward(g, x)
    assert (np.abs(eb - mb) <= np.abs(mb) * LD(2.0) ** -60).all()


def test_oracle_specials():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0])
    for e in (exact_selu(x), mp_selu(x)):
        assert np.isnan(e[0]) and e[1] == np.inf and e[2] == -LD(C.SCALE_ALPHA_STR)
        assert e[3] == 0 and not np.signbit(e[3]) and e[4] == 0 and np.signbit(e[4])
    assert mp_selu(np.array([-np.inf])).astype(np.float64)[0] == -C.SCALE_ALPHA_F64
    d = exact_selu_backward(np.ones(3), np.array([np.nan, 0.0, 1.0]))
    assert np.isnan(d[0]) and d[1] == LD(C.SCALE_ALPHA_STR) and d[2] == LD(C.SCALE_STR)
    assert np.isnan(mp_selu_backward(np.ones(1), np.array([np.nan]))[0])


@needs_80bit
def test_backward_result_oracle_has_no_cancellation():
    # y next to -SCALE*ALPHA: y + SA must keep full relative precision.
    sa = C.SCALE_ALPHA_F64
    y = np.array([-sa, np.nextafter(-sa, 0), np.nextafter(-sa, -2)])
    got = exact_selu_backward_result(np.ones(3), y)
    with mpmath.workprec(200):
        sa = mpmath.mpf(C.ALPHA_STR) * mpmath.mpf(C.SCALE_STR)
        for yi, gi in zip(y, got):
            want = mpmath.mpf(float(yi)) + sa
            assert abs((mpmath.mpf(str(gi)) - want) / want) < mpmath.mpf(2) ** -60
