"""Accuracy and special values (SPEC "Numbers").

The numpy backend is checked against high-precision values (long double for float32 and as a
dense float64 oracle, mpmath for float64 spot checks); every backend is checked against the same
oracle within its bound.  ULP_BOUND (forward and grad_output = 1) and ULP_BOUND_GRAD (other
grad_output) may be loosened per backend while a kernel is being tuned; the SPEC values are the
defaults.
"""

import numpy as np
import pytest

import fastselu
from fastselu import _backend_numpy
from fastselu._constants import SCALE_ALPHA_F64, SCALE_ALPHA_STR, SCALE_STR
from fastselu._ulp import (
    exact_selu,
    exact_selu_backward,
    exact_selu_backward_result,
    mp_selu,
    mp_selu_backward,
    ulp_error,
)
from util import LONGDOUBLE_IS_80BIT, needs_80bit, oracle_dtypes

ULP_BOUND = {"numpy": 1.0}
ULP_BOUND_GRAD = {"numpy": 1.5}


def bound(backend):
    return ULP_BOUND.get(backend, 1.0)


def bound_grad(backend):
    return ULP_BOUND_GRAD.get(backend, 1.5)


def _around(center, dtype, n):
    """2n+1 consecutive values of `dtype` centred on `center` (rounded to dtype)."""
    itype = {np.float32: np.int32, np.float64: np.int64}[dtype]
    imin = int(np.iinfo(itype).min)
    c = int(np.array([center], dtype=dtype).view(itype)[0])
    key = c if c >= 0 else imin - c  # monotone in the float value: negatives count down from 0
    keys = range(key - n, key + n + 1)
    return np.array([k if k >= 0 else imin - k for k in keys], dtype=itype).view(dtype)


def inputs(dtype, rng, n_random):
    """Random bit patterns, a strided sweep over all bit patterns, and dense neighbourhoods."""
    fi = np.finfo(dtype)
    utype = {np.float32: np.uint32, np.float64: np.uint64}[dtype]
    width = 32 if dtype == np.float32 else 64
    random_bits = rng.integers(0, 2**width - 1, n_random, dtype=np.uint64, endpoint=True)
    sweep = np.arange(0, 2**width - 1, (2**width - 1) // n_random + 1, dtype=np.uint64)
    parts = [
        random_bits.astype(utype).view(dtype),
        sweep.astype(utype).view(dtype),
        rng.uniform(-40, 0, n_random // 4).astype(dtype),
        rng.uniform(-1e-3, 1e-3, n_random // 8).astype(dtype),
        _around(0.0, dtype, 3000),  # subnormals of both signs, and both zeros' neighbours
        _around(fi.max / np.float64(SCALE_STR), dtype, 3000),  # overflow of x * SCALE
        _around(-fi.max, dtype, 10),
        _around(-18.0 if dtype == np.float32 else -38.0, dtype, 3000),  # saturation to -SA
        _around(-1.0, dtype, 1000),
        _around(np.float64(fi.smallest_normal), dtype, 1000),
        _around(-np.float64(fi.smallest_normal) / SCALE_ALPHA_F64, dtype, 1000),  # output ~ -tiny
        np.array(
            [
                0.0,
                -0.0,
                np.inf,
                -np.inf,
                np.nan,
                fi.max,
                -fi.max,
                fi.tiny,
                -fi.tiny,
                fi.smallest_subnormal,
                -fi.smallest_subnormal,
                1.0,
                -1.0,
                -1e30,
            ],
            dtype=dtype,
        ),
    ]
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def f32():
    return inputs(np.float32, np.random.default_rng(32), 1 << 19)


@pytest.fixture(scope="module")
def f64():
    return inputs(np.float64, np.random.default_rng(64), 1 << 17)


def grads(dtype, n, rng):
    g = rng.standard_normal(n) * 10.0 ** rng.uniform(-5, 5, n)
    g[: n // 16] = rng.integers(0, 2**63, n // 16, dtype=np.uint64).view(np.float64)  # any value
    g[n // 16 : n // 8] *= -1
    with np.errstate(all="ignore"):
        return g.astype(dtype)


def assert_ulp(result, exact, dtype, limit, x):
    err = ulp_error(result, exact, dtype)
    worst = int(np.argmax(err))
    assert err[worst] <= limit, (
        f"{err[worst]} ULP at input {x[worst]!r}: got {result[worst]!r}, exact {exact[worst]!r}; "
        f"{int((err > limit).sum())} inputs above {limit}"
    )


# ---- the numpy backend against independent high-precision values -------------------------------


@needs_80bit
def test_numpy_float64_against_mpmath():
    rng = np.random.default_rng(7)
    mags = 2.0 ** rng.uniform(-1074, 1024, 1500)
    x = np.concatenate(
        [
            mags * rng.choice([-1.0, 1.0], mags.size),
            -(2.0 ** rng.uniform(-30, 6, 800)),  # the expm1 branch at every scale
            rng.uniform(-40, -30, 100),  # near saturation
            _around(-np.finfo(np.float64).tiny / SCALE_ALPHA_F64, np.float64, 100),
            _around(0.0, np.float64, 100),
            _around(np.finfo(np.float64).max / fastselu.SCALE, np.float64, 100),
            [np.inf, -np.inf, np.nan, 0.0, -0.0],
        ]
    )
    out = np.empty_like(x)
    _backend_numpy.forward(x, out, 1)
    assert_ulp(out, mp_selu(x), np.float64, 1.0, x)
    g = grads(np.float64, x.size, rng)
    g[:1000] = 1.0
    _backend_numpy.backward_x(g, x, out, 1)
    exact = mp_selu_backward(g, x)
    assert_ulp(out[:1000], exact[:1000], np.float64, 1.0, x[:1000])
    assert_ulp(out, exact, np.float64, 1.5, x)


def test_numpy_float32_is_correctly_rounded_nearly(f32):
    """Evaluating in float64 and rounding once is within about half an ULP."""
    out = np.empty_like(f32)
    _backend_numpy.forward(f32, out, 1)
    assert_ulp(out, exact_selu(f32), np.float32, 0.5 + 1e-6, f32)


# ---- every backend against the oracle ------------------------------------------------------------


@pytest.mark.parametrize("dtype", oracle_dtypes(np.float32, np.float64))
def test_forward_accuracy(backend, dtype, f32, f64):
    x = f32 if dtype == np.float32 else f64
    assert_ulp(fastselu.selu(x), exact_selu(x), dtype, bound(backend), x)


@pytest.mark.parametrize("dtype", oracle_dtypes(np.float32, np.float64))
def test_backward_accuracy(backend, dtype, f32, f64):
    x = f32 if dtype == np.float32 else f64
    one = np.ones_like(x)
    assert_ulp(
        fastselu.selu_backward(one, x), exact_selu_backward(one, x), dtype, bound(backend), x
    )
    g = grads(dtype, x.size, np.random.default_rng(3))
    assert_ulp(
        fastselu.selu_backward(g, x), exact_selu_backward(g, x), dtype, bound_grad(backend), x
    )


@pytest.mark.parametrize("dtype", oracle_dtypes(np.float32, np.float64))
def test_backward_from_result_accuracy(backend, dtype, f32, f64):
    x = f32 if dtype == np.float32 else f64
    # Real forward outputs, arbitrary values, and the cancellation zone around y = -SCALE*ALPHA.
    with np.errstate(all="ignore"):
        y = np.concatenate(
            [
                exact_selu(x).astype(dtype),
                x,
                _around(-SCALE_ALPHA_F64, dtype, 20000),
                _around(-1.7, dtype, 1000),
            ]
        )
    one = np.ones_like(y)
    assert_ulp(
        fastselu.selu_backward(one, y, is_result=True),
        exact_selu_backward_result(one, y),
        dtype,
        bound(backend),
        y,
    )
    g = grads(dtype, y.size, np.random.default_rng(4))
    assert_ulp(
        fastselu.selu_backward(g, y, is_result=True),
        exact_selu_backward_result(g, y),
        dtype,
        bound_grad(backend),
        y,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values_exact(backend, dtype):
    sa = dtype(np.longdouble(SCALE_ALPHA_STR))
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -1e30, -1000.0, -104.0, -50.0], dtype=dtype)
    y = fastselu.selu(x)
    assert np.isnan(y[0]) and y[1] == np.inf
    assert (y[[2, 5, 6, 7, 8]] == -sa).all()
    assert y[3] == 0 and not np.signbit(y[3]) and y[4] == 0 and np.signbit(y[4])
    if dtype == np.float64:
        assert y[2] == -1.7580993408473768  # not SCALE * ALPHA = ...766
    d = fastselu.selu_backward(np.ones_like(x), x)
    assert np.isnan(d[0])  # PyTorch gives SCALE at NaN; the SPEC asks for NaN
    assert d[1] == dtype(fastselu.SCALE) and d[3] == sa and d[4] == sa
    assert d[2] == 0
    dy = fastselu.selu_backward(
        np.ones(4, dtype), np.array([np.nan, 0.0, 1.0, -0.0], dtype=dtype), is_result=True
    )
    assert np.isnan(dy[0]) and dy[1] == sa and dy[2] == dtype(fastselu.SCALE) and dy[3] == sa


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_from_result_zero_grad_sign(backend, dtype):
    """g = +-0 gives a zero with the sign of g * (y + SA): -g below y = -SA (no SELU result, but a
    valid argument), g above, also in blocks of fast-path elements."""
    sa = dtype(np.longdouble(SCALE_ALPHA_STR))
    y = np.array([-1e6, -17.0, -5.0, -3.6, -2.0, -1.0, 0.0, 2.0] * 300, dtype=dtype)
    for g0 in (0.0, -0.0):
        g = np.full(y.shape, g0, dtype)
        d = fastselu.selu_backward(g, y, is_result=True)
        want = np.signbit(g) ^ (y < -sa)
        assert (d == 0).all() and (np.signbit(d) == want).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_overflow_boundary(backend, dtype):
    fi = np.finfo(dtype)
    x = _around(fi.max / np.float64(SCALE_STR), dtype, 200)
    y = fastselu.selu(x)
    finite = np.isfinite(y)
    # Monotone: a run of finite results, then a run of +inf, at the exact rounding boundary.
    k = int(finite.sum())
    assert finite[:k].all() and (y[k:] == np.inf).all() and 0 < k < x.size
    if dtype == np.float32 or LONGDOUBLE_IS_80BIT:  # max + ULP/2 is a long double number
        half_ulp = np.ldexp(np.longdouble(1), int(fi.maxexp) - 1 - fi.nmant - 1)
        overflow = np.longdouble(fi.max) + half_ulp
        assert exact_selu(x[k - 1]) < overflow <= exact_selu(x[k])
    if dtype == np.float32:  # x * float32(SCALE) overflows here although the exact value is finite
        assert fastselu.selu(np.float32(3.2386221e38)) == fi.max


def test_subnormals_not_flushed(backend):
    for dtype in (np.float32, np.float64):
        tiny = np.finfo(dtype).smallest_subnormal
        x = np.array([tiny, -tiny, 5 * tiny, -5 * tiny], dtype=dtype)
        y = fastselu.selu(x)
        assert (y != 0).all(), y
        assert (np.sign(y) == np.sign(x)).all()
    # Importing fastselu (and running kernels) leaves FTZ/DAZ off for everyone.
    assert np.float32(1e-40) * np.float32(1) != 0


def test_backends_agree_with_numpy_backend(backend):
    """Beyond the oracle bound: every backend agrees with the reference to within 2 bounds."""
    rng = np.random.default_rng(11)
    for dtype in (np.float32, np.float64):
        x = (rng.standard_normal(100_000) * 8).astype(dtype)
        ref = np.empty_like(x)
        _backend_numpy.forward(x, ref, 1)
        err = ulp_error(fastselu.selu(x), ref.astype(np.longdouble), dtype)
        assert err.max() <= 2 * bound(backend) + 0.01
