"""AlphaDropout, fused SELU + AlphaDropout, their backwards and lecun_normal (SPEC,
"Self-normalizing companions"): mask, values against mpmath, layouts, special values, errors."""

import math
import os
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastselu as fs
from fastselu import _api, _dropout
from fastselu._constants import SCALE_ALPHA_STR, SCALE_STR
from fastselu._ulp import LD, _mp_to_ld, ulp_error
from util import oracle_dtypes, same_floats, switched_backend

mpmath = pytest.importorskip("mpmath")

DTYPES = [np.float32, np.float64]
FUNCS = {"alpha": fs.alpha_dropout, "fused": fs.selu_alpha_dropout}


def keep_mask(shape, p, seed, feature=False):
    """The SPEC's mask, from the reference Philox (fastselu._dropout.words)."""
    size = int(np.prod(shape))
    idx = np.arange(size, dtype=np.int64)
    if feature:
        idx //= int(np.prod(shape[2:]))
    thresh = int(p * 2.0**32)
    if thresh >= 2**32:
        return np.zeros(shape, dtype=bool)
    return (_dropout.words(idx, _dropout.key_of(seed)) >= thresh).reshape(shape)


def canon(a):
    """NaNs as the default quiet NaN (x86 makes inf * 0 the negative one)."""
    return np.where(np.isnan(a), np.array(np.nan, a.dtype), a)


def _mp_consts(p):
    sa = mpmath.mpf(SCALE_ALPHA_STR)
    pm = mpmath.mpf(p)
    q = 1 - pm
    a = 1 / mpmath.sqrt(q * (1 + pm * sa * sa))
    return a, sa, pm, q


def _mp_selu(x):
    if x > 0:
        return mpmath.mpf(SCALE_STR) * mpmath.mpf(x)
    return mpmath.mpf(SCALE_ALPHA_STR) * mpmath.expm1(mpmath.mpf(x))


def exact_kept(x, p, fused):
    """a*(v + SA*p) for finite x (v = x, or SELU(x)), as long double."""
    out = np.empty(x.shape, dtype=LD)
    with mpmath.workprec(200):
        a, sa, pm, _ = _mp_consts(p)
        for i, xv in enumerate(np.asarray(x, dtype=np.float64).ravel()):
            v = _mp_selu(xv) if fused else mpmath.mpf(xv)
            out.flat[i] = _mp_to_ld(mpmath, a * (v + sa * pm))
    return out


def exact_dropped(p):
    with mpmath.workprec(200):
        a, sa, _, q = _mp_consts(p)
        return _mp_to_ld(mpmath, -a * sa * q)


def exact_backward(g, x, p, mode):
    """mode 0: g*a; 1: g*a*SELU'(x); 2: x is the fused output z (kept elements)."""
    out = np.empty(g.shape, dtype=LD)
    with mpmath.workprec(200):
        a, sa, pm, q = _mp_consts(p)
        scale = mpmath.mpf(SCALE_STR)
        for i, (gv, xv) in enumerate(
            zip(np.asarray(g, np.float64).ravel(), np.asarray(x, np.float64).ravel())
        ):
            gm, xm = mpmath.mpf(gv), mpmath.mpf(xv)
            if mode == 0:
                d = a
            elif mode == 1:
                d = a * scale if xv > 0 else a * sa * mpmath.exp(xm)
            else:
                d = a * scale if xm > a * sa * pm else xm + a * sa * q
            out.flat[i] = _mp_to_ld(mpmath, gm * d)
    return out


def test_philox_known_answers():
    """Random123's kat_vectors for Philox4x32-10."""
    words = _dropout.philox4x32_10((0, 0, 0, 0), (0, 0))
    assert [int(w) for w in words] == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    m = 0xFFFFFFFF
    words = _dropout.philox4x32_10((m, m, m, m), (m, m))
    assert [int(w) for w in words] == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]


def test_seed_to_key_and_counter_mapping():
    # element i: block i // 4 as (low, high) counter words, word i % 4; seed as (low, high) key
    seed = (7 << 32) | 9
    i = np.array([(5 << 32) * 4 + 2], dtype=np.int64)
    expect = _dropout.philox4x32_10((0, 5, 0, 0), (9, 7))[2]
    assert int(_dropout.words(i, _dropout.key_of(seed))[0]) == int(expect)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["alpha", "fused"])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_mask_and_dropped_constant(backend, dtype, kind, p):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 2, 5001).astype(dtype)
    r = FUNCS[kind](x, p, seed=12345)
    keep = keep_mask(x.shape, p, 12345)
    cst = dtype(exact_dropped(p))
    assert np.all(r[~keep] == cst)
    assert not np.any(r[keep] == cst)
    assert abs(keep.mean() - (1 - p)) < 0.03


@pytest.mark.parametrize("dtype", oracle_dtypes(*DTYPES))  # float64: 80-bit oracle
@pytest.mark.parametrize("kind", ["alpha", "fused"])
@pytest.mark.parametrize("p", [0.05, 0.5, 0.95])
def test_kept_values_within_one_ulp(backend, dtype, kind, p):
    rng = np.random.default_rng(2)
    x = np.concatenate(
        [
            rng.normal(0, 3, 1500),
            -np.exp(rng.uniform(-30, 5, 300)),
            np.exp(rng.uniform(-30, 30, 200)),
        ]
    ).astype(dtype)
    r = FUNCS[kind](x, p, seed=3)
    keep = keep_mask(x.shape, p, 3)
    err = ulp_error(r[keep], exact_kept(x[keep], p, kind == "fused"), dtype)
    assert err.max() <= 1.0, (err.max(), x[keep][np.argmax(err)])


def _near_cancellation(dtype, p, fused, k=64):
    """Inputs around the zero of a*(v + SA*p): v = -SA*p, or SELU(x) = -SA*p (x = ln(1 - p))."""
    with mpmath.workprec(200):
        _, sa, pm, q = _mp_consts(p)
        center = mpmath.log(q) if fused else -sa * pm
    c = dtype(float(center))
    steps = np.arange(-k, k + 1)
    up = np.nextafter(c, dtype(np.inf)) - c
    xs = c + steps.astype(dtype) * up
    wide = c * (1 + np.linspace(-0.01, 0.01, 201)).astype(dtype)
    return np.concatenate([xs, wide]).astype(dtype)


@pytest.mark.parametrize("dtype", oracle_dtypes(*DTYPES))  # float64: 80-bit oracle
@pytest.mark.parametrize("kind", ["alpha", "fused"])
@pytest.mark.parametrize("p", [0.05, 0.1, 0.3, 0.5, 0.77, 0.99])
def test_accuracy_near_cancellation(backend, dtype, kind, p):
    """a*v + a*SA*p cancels near v = -SA*p: still <= 1 ULP of the exact value (SPEC)."""
    x = _near_cancellation(dtype, p, kind == "fused")
    vals = np.full(x.shape, np.nan, dtype=dtype)
    seen = np.zeros(x.shape, dtype=bool)
    for seed in range(5000):  # every element, from the first seed that keeps it
        keep = keep_mask(x.shape, p, seed)
        if np.any(keep & ~seen):
            vals[keep & ~seen] = FUNCS[kind](x, p, seed=seed)[keep & ~seen]
            seen |= keep
        if seen.all():
            break
    err = ulp_error(vals, exact_kept(x, p, kind == "fused"), dtype)
    assert err.max() <= 1.0, (err.max(), x[np.argmax(err)])


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9, 0.99])
def test_fused_float32_at_reduction_boundaries(backend, p):
    """The fused float32 forward where expm1's reduction switches n, x - ln(1 - p) ~ (k + 1/2) ln2:
    there 2^n (1 + expm1(r)) - 1 amplifies the polynomial's error (a degree-4 polynomial reached
    1.036 ULP at p = 0.9, x ~ -1.956, which the exhaustive test at p = 0.1 does not see)."""
    centres = [np.float32(math.log1p(-p) + (k + 0.5) * math.log(2)) for k in range(-8, 8)]
    steps = np.arange(-2048, 2049, dtype=np.int64)
    x = np.concatenate(
        [(np.int64(c.view(np.int32)) + steps).astype(np.int32).view(np.float32) for c in centres]
    )
    x = x[x <= 0]
    o = np.empty_like(x)
    _api._dropout_backend().dropout(x, o, _kept_everywhere(p, "float32"), (1, 2), 0, 1, True, 1)
    err = ulp_error(o, f32_reference(x, p, True), np.float32)
    assert err.max() <= 1.0, (err.max(), x[np.argmax(err)])


@pytest.mark.parametrize("dtype", oracle_dtypes(*DTYPES))  # float64: 80-bit oracle
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_backward_within_bounds(backend, dtype, mode, p):
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(0, 3, 800), -np.exp(rng.uniform(-20, 5, 200))]).astype(dtype)
    g = (rng.standard_normal(x.size) * np.exp(rng.uniform(-5, 5, x.size))).astype(dtype)
    keep = keep_mask(x.shape, p, 8)
    if mode == 0:
        r = fs.alpha_dropout_backward(g, p, seed=8)
    elif mode == 1:
        r = fs.selu_alpha_dropout_backward(g, x, p, seed=8)
    else:
        x = fs.selu_alpha_dropout(x, p, seed=8)
        r = fs.selu_alpha_dropout_backward(g, x, p, seed=8, is_result=True)
    err = ulp_error(r[keep], exact_backward(g[keep], x[keep], p, mode), dtype)
    assert err.max() <= 1.5, err.max()
    assert same_floats(r[~keep], g[~keep] * dtype(0.0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values(backend, dtype):
    specials = np.array(
        [
            np.nan,
            np.inf,
            -np.inf,
            0.0,
            -0.0,
            np.finfo(dtype).max,
            np.finfo(dtype).smallest_subnormal,
            -np.finfo(dtype).smallest_subnormal,
        ],
        dtype=dtype,
    )
    x = np.tile(specials, 64)
    p = 0.5
    keep = keep_mask(x.shape, p, 99)
    assert keep.any() and not keep.all()
    cst = dtype(exact_dropped(p))
    nan_bits = np.array(np.nan, dtype=dtype).view(np.uint32 if dtype == np.float32 else np.uint64)
    for kind in ("alpha", "fused"):
        r = FUNCS[kind](x, p, seed=99)
        nan = np.isnan(r)
        assert np.all(r[nan].view(nan_bits.dtype) == nan_bits)  # the default quiet NaN
        # the exact SELU(x) is finite for finite x (and -SA at -inf)
        v = np.where(x == -np.inf, -1.0, x).astype(dtype) if kind == "fused" else x
        bad = ~np.isfinite(v)
        assert np.all(nan == ((~keep & bad) | np.isnan(v))), kind  # dropped inf: NaN too
        assert np.all(r[~keep & ~bad] == cst)
        # kept +inf stays +inf, -inf (alpha_dropout) gives -inf; x = -inf fused is finite
        assert np.all(r[keep & (v == np.inf)] == np.inf)
    with np.errstate(invalid="ignore"):  # p = 1: v * (+0.0), NaN for NaN and +-inf
        r = fs.alpha_dropout(x, 1.0, seed=1)
        assert same_floats(r, canon(x * dtype(0.0)))
        r = fs.selu_alpha_dropout(x, 1.0, seed=1)
        assert same_floats(r, canon(np.where(x == -np.inf, -1.0, x).astype(dtype) * dtype(0.0)))


def test_identity_paths_return_input_bits(backend):
    x = np.array([1.5, np.nan, -0.0, -2.0], dtype=np.float32)
    x.view(np.uint32)[1] = 0x7FC12345  # a NaN with a payload
    for kw in ({"training": False}, {"p": 0.0}):
        kw = {"p": 0.3, **kw}
        r = fs.alpha_dropout(x, seed=1, **kw)
        assert r is not x and np.array_equal(r.view(np.uint32), x.view(np.uint32))
        assert same_floats(fs.selu_alpha_dropout(x, seed=1, **kw), fs.selu(x))
        g = x[::-1].copy()
        assert np.array_equal(
            fs.alpha_dropout_backward(g, seed=1, **kw).view(np.uint32), g.view(np.uint32)
        )
        assert same_floats(
            fs.selu_alpha_dropout_backward(g, x, seed=1, **kw), fs.selu_backward(g, x)
        )
        y = x.copy()
        assert fs.alpha_dropout(y, seed=1, inplace=True, **kw) is y
        assert np.array_equal(y.view(np.uint32), x.view(np.uint32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_layouts_and_chunking(backend, dtype, monkeypatch):
    """The mask follows the logical C-order index: every layout gives the C-contiguous bits."""
    rng = np.random.default_rng(5)
    base = rng.normal(0, 2, (6, 7, 9)).astype(dtype)
    views = [
        base,
        np.asfortranarray(base),
        base.transpose(2, 0, 1),
        np.asfortranarray(base)[:, ::-2, 1:],
        base[::-1, :, ::3],
        base.astype(base.dtype.newbyteorder()),
    ]
    for chunk in (_api.CHUNK, 5):
        monkeypatch.setattr(_api, "CHUNK", chunk)
        for v in views:
            ref = np.ascontiguousarray(v).astype(dtype)
            for fn in FUNCS.values():
                for feature in (False, True):
                    want = fn(ref, 0.4, seed=77, feature=feature)
                    assert same_floats(fn(v, 0.4, seed=77, feature=feature), want)
                    out = np.empty_like(v)
                    fn(v, 0.4, seed=77, feature=feature, out=out)
                    assert same_floats(out.astype(dtype), want)
            g = np.ones_like(v)
            want = fs.selu_alpha_dropout_backward(
                np.ascontiguousarray(g).astype(dtype), ref, 0.4, seed=77
            )
            assert same_floats(fs.selu_alpha_dropout_backward(g, v, 0.4, seed=77), want)


def test_float16_and_integer_inputs(backend):
    x = np.linspace(-4, 4, 301)
    for p in (0.2, 1.0):
        r16 = fs.selu_alpha_dropout(x.astype(np.float16), p, seed=4)
        assert r16.dtype == np.float16
        r32 = fs.selu_alpha_dropout(x.astype(np.float16).astype(np.float32), p, seed=4)
        if p < 1:
            keep = keep_mask(x.shape, p, 4)
            exact = exact_kept(x.astype(np.float16)[keep], p, True)
            assert ulp_error(r16[keep], exact, np.float16).max() <= 1.0
            assert np.all(r16[~keep] == np.float16(exact_dropped(p)))  # rounded once
        else:
            assert same_floats(r16, (r32 * 0).astype(np.float16))
    ri = fs.alpha_dropout(np.arange(10), 0.5, seed=3)
    assert ri.dtype == np.float64
    assert same_floats(ri, fs.alpha_dropout(np.arange(10.0), 0.5, seed=3))


def _half_dtype(fmt):
    return np.float16 if fmt == "float16" else pytest.importorskip("ml_dtypes").bfloat16


def _every_kind(g, x, seed):
    """The five call kinds (forwards, then the backwards: plain, from x, from the fused result)
    at p = 0.05, 0.5 and 1."""
    out = []
    for p in (0.05, 0.5, 1.0):
        z = fs.selu_alpha_dropout(x, p, seed=seed)
        out += [
            fs.alpha_dropout(x, p, seed=seed),
            z,
            fs.alpha_dropout_backward(g, p, seed=seed),
            fs.selu_alpha_dropout_backward(g, x, p, seed=seed),
            fs.selu_alpha_dropout_backward(g, z, p, seed=seed, is_result=True),
        ]
    return out


def _half_results(fmt, n=1 << 16):
    """Every call kind on the first n bit patterns of `fmt` (grad_output: other patterns)."""
    dt = _half_dtype(fmt)
    x = np.arange(n, dtype=np.uint16).view(dt)
    g = np.random.default_rng(5).integers(0, 1 << 16, n, dtype=np.uint16).view(dt)
    return x, g, _every_kind(g, x, 9)


@pytest.mark.parametrize("fmt", ["float16", "bfloat16"])
def test_half_formats_every_pattern(backend, fmt):
    """float16/bfloat16 run the float32 kernels on the exactly widened values (the format's
    parameters: its rounded dropped constant) and round each result once more, to nearest, ties
    to even: every bit pattern, forward and the three backwards, against the backend's float32
    kernel and NumPy's (ml_dtypes') cast, NaN and inf included."""
    dt = _half_dtype(fmt)
    x, g, got = _half_results(fmt)
    x32, g32 = x.astype(np.float32), g.astype(np.float32)
    kernels = _api._dropout_backend()
    key = _dropout.key_of(9)
    want = []
    with np.errstate(all="ignore"):
        for p in (0.05, 0.5, 1.0):
            prm = _dropout.params(p, fmt)
            r = [np.empty_like(x32) for _ in range(5)]
            kernels.dropout(x32, r[0], prm, key, 0, 1, False, 1)
            kernels.dropout(x32, r[1], prm, key, 0, 1, True, 1)
            kernels.dropout_backward(g32, g32, r[2], prm, key, 0, 1, 0, 1)
            kernels.dropout_backward(g32, x32, r[3], prm, key, 0, 1, 1, 1)
            z32 = got[len(want) + 1].astype(np.float32)  # the fused result, as the call had it
            kernels.dropout_backward(g32, z32, r[4], prm, key, 0, 1, 2, 1)
            want += [a.astype(dt) for a in r]  # (errstate: float16 overflows to inf)
    # float32 results on a midpoint of the format (ties to even) are rare, ~1 in 2^16 bfloat16
    # results: many p
    ties = 0
    low = 0x1FFF if fmt == "float16" else 0xFFFF  # the float32 bits below the format's last
    for p in np.linspace(0.01, 0.99, 161):
        prm = _dropout.params(p, fmt)
        r = np.empty_like(x32)
        kernels.dropout(x32, r, prm, key, 0, 1, False, 1)
        ties += np.count_nonzero((r.view(np.uint32) & low) == (low + 1) // 2)
        got.append(fs.alpha_dropout(x, p, seed=9))
        with np.errstate(over="ignore"):
            want.append(r.astype(dt))
    assert ties >= 10
    for a, b in zip(got, want):
        assert a.dtype == dt
        assert np.array_equal(a.view(np.uint16), b.view(np.uint16))
    # a strided and a byte-swapped input take the chunked path: the same values as contiguous
    xs = x[::3]
    assert np.array_equal(
        fs.selu_alpha_dropout(xs, 0.3, seed=2).view(np.uint16),
        fs.selu_alpha_dropout(np.ascontiguousarray(xs), 0.3, seed=2).view(np.uint16),
    )
    if fmt == "float16":
        sw = x.astype(x.dtype.newbyteorder())
        assert np.array_equal(
            fs.alpha_dropout(sw, 0.3, seed=2), fs.alpha_dropout(x, 0.3, seed=2), equal_nan=True
        )


def test_feature_mask_shared_over_trailing_dims(backend):
    x = np.ones((5, 4, 3, 2), dtype=np.float32)
    r = fs.alpha_dropout(x, 0.5, seed=21, feature=True)
    keep = keep_mask((5, 4), 0.5, 21)
    assert keep.any() and not keep.all()
    cst = np.float32(exact_dropped(0.5))
    assert np.all((r != cst) == keep[:, :, None, None])
    # 2-D: one draw per element, the same as without feature
    assert same_floats(
        fs.alpha_dropout(x[:, :, 0, 0], 0.5, seed=21, feature=True),
        fs.alpha_dropout(x[:, :, 0, 0], 0.5, seed=21),
    )


def test_seed_forms_and_scalars(backend):
    x = np.linspace(-2, 2, 50)
    a = fs.alpha_dropout(x, seed=np.uint64(2**64 - 1))
    assert same_floats(a, fs.alpha_dropout(x, seed=2**64 - 1))
    g1, g2 = np.random.default_rng(7), np.random.default_rng(7)
    s = int(g2.integers(0, 2**64, dtype=np.uint64))
    assert same_floats(fs.alpha_dropout(x, seed=g1), fs.alpha_dropout(x, seed=s))
    assert g1.integers(0, 2**62) == g2.integers(0, 2**62)  # exactly one draw was taken
    fs.alpha_dropout(x, seed=None)
    r = fs.selu_alpha_dropout(1.5, 0.5, seed=1)
    assert isinstance(r, np.float64)
    assert isinstance(fs.alpha_dropout(np.float32(1.5), 0.5, seed=1), np.float32)


def test_inplace_and_out(backend):
    x = np.linspace(-3, 3, 1000)
    want = fs.selu_alpha_dropout(x, 0.3, seed=5)
    y = x.copy()
    assert fs.selu_alpha_dropout(y, 0.3, seed=5, inplace=True) is y
    assert same_floats(y, want)
    y = x.copy()
    v = y[::2]
    fs.selu_alpha_dropout(v, 0.3, seed=5, inplace=True)
    assert same_floats(v, fs.selu_alpha_dropout(x[::2].copy(), 0.3, seed=5))
    assert same_floats(y[1::2], x[1::2])
    out = np.empty_like(x)
    assert fs.selu_alpha_dropout(x, 0.3, seed=5, out=out) is out
    assert same_floats(out, want)
    # out partly overlapping the input: as without overlap
    y = x.copy()
    fs.alpha_dropout(y[:-1], 0.3, seed=5, out=y[1:])
    assert same_floats(y[1:], fs.alpha_dropout(x[:-1], 0.3, seed=5))
    g = np.ones_like(x)
    assert fs.selu_alpha_dropout_backward(g, x, 0.3, seed=5, out=g) is g


BAD_CALLS = [
    (dict(p=1.5), ValueError),
    (dict(p=-0.1), ValueError),
    (dict(p=float("nan")), ValueError),
    (dict(p="0.5"), TypeError),
    (dict(p=True), TypeError),
    (dict(p=0.5j), TypeError),
    (dict(seed=-1), ValueError),
    (dict(seed=2**64), ValueError),
    (dict(seed=1.0), TypeError),
    (dict(seed=True), TypeError),
    (dict(seed="1"), TypeError),
]


@pytest.mark.parametrize("kw, exc", BAD_CALLS)
def test_errors_leave_arrays_unchanged(kw, exc):
    x = np.linspace(-1, 1, 10)
    out = np.full_like(x, 7.0)
    kw = {"p": 0.5, "seed": 1, **kw}
    for fn in FUNCS.values():
        for extra in ({}, {"out": out}, {"inplace": True}):
            y = x.copy()
            with pytest.raises(exc):
                fn(y, **kw, **extra)
            assert same_floats(y, x) and np.all(out == 7.0)
    g = x.copy()
    with pytest.raises(exc):
        fs.selu_alpha_dropout_backward(g, x, **kw, out=g)
    with pytest.raises(exc):
        fs.alpha_dropout_backward(g, **kw, out=g)
    assert same_floats(g, x)


def test_other_errors():
    x = np.linspace(-1, 1, 10)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        fs.alpha_dropout(x, 0.5, seed=1, feature=True)
    fs.alpha_dropout(x, 1.0, seed=1, feature=True)  # no mask drawn: allowed (as PyTorch)
    fs.alpha_dropout(x, 0.5, seed=1, feature=True, training=False)
    with pytest.raises(ValueError, match="out and inplace"):
        fs.alpha_dropout(x, 0.5, seed=1, out=x, inplace=True)
    with pytest.raises(TypeError):
        fs.alpha_dropout(x, 0.5)  # seed is required
    with pytest.raises(TypeError, match="inplace"):
        fs.alpha_dropout(np.arange(3), 0.5, seed=1, inplace=True)
    with pytest.raises(ValueError, match="shape"):
        fs.selu_alpha_dropout_backward(x, x[:5], 0.5, seed=1)
    with pytest.raises(ValueError, match="shape"):
        fs.alpha_dropout(x, 0.5, seed=1, out=np.empty(5))
    with pytest.raises(TypeError, match="dtype"):
        fs.alpha_dropout(x, 0.5, seed=1, out=np.empty(10, np.float32))
    with pytest.raises(TypeError, match="complex"):
        fs.alpha_dropout(x.astype(complex), 0.5, seed=1)
    ro = x.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fs.selu_alpha_dropout(ro, 0.5, seed=1, inplace=True)


@pytest.mark.parametrize("kind", ["alpha", "fused"])
def test_allocates_only_the_result(backend, kind):
    x = np.random.default_rng(0).standard_normal(1 << 21).astype(np.float32)
    out = np.empty_like(x)
    fn = FUNCS[kind]
    fn(x, 0.1, seed=1, out=out)  # warm up (compilation, caches)
    fn(x, 0.1, seed=1)
    fs.selu_alpha_dropout_backward(x, out, 0.1, seed=1, out=out)
    tracemalloc.start()
    try:
        fn(x, 0.1, seed=1, out=out)
        fn(x, 0.1, seed=1, inplace=True)
        fs.selu_alpha_dropout_backward(x, out, 0.1, seed=1, out=out)
        _, peak_out = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        fn(x, 0.1, seed=1)
        _, peak_new = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the numpy reference works in blocks of temporaries
    reference = _api._dropout_backend() is fs._backends.load("numpy")
    # (a mask would take 2 MB as bools; thread start-up allocates ~0.2 MB once)
    limit = 64 << 20 if reference else 1 << 19
    assert peak_out < limit, peak_out
    assert peak_new < x.nbytes + limit, peak_new


def test_lecun_normal():
    w = fs.lecun_normal((256, 512), rng=0)
    assert w.dtype == np.float32 and w.shape == (256, 512)
    sigma = np.sqrt(1 / 256) / 0.87962566103423978
    assert np.abs(w).max() <= 2 * sigma * (1 + 1e-6)
    assert abs(w.std() - np.sqrt(1 / 256)) < 0.02 * np.sqrt(1 / 256)  # the truncation corrected
    assert same_floats(w, fs.lecun_normal((256, 512), rng=np.random.default_rng(0)))
    assert fs.lecun_normal((3, 3, 16, 8), dtype=np.float64).dtype == np.float64
    conv = fs.lecun_normal((3, 3, 16, 8), rng=1)
    assert np.abs(conv).max() <= 2 * np.sqrt(1 / 144) / 0.87962566103423978 * (1 + 1e-6)
    assert fs.lecun_normal(5, fan_in=1, rng=2).shape == (5,)
    assert fs.lecun_normal((), rng=2).shape == ()
    with pytest.raises(TypeError):
        fs.lecun_normal((2, 2), dtype=np.int32)
    with pytest.raises(ValueError):
        fs.lecun_normal((2, -1))
    with pytest.raises(TypeError):
        fs.lecun_normal((2, 2), rng="x")


@pytest.mark.slow
def test_keep_fraction_within_4_sigma():
    n = 10**7
    for p in (0.05, 0.5):
        x = np.zeros(n, dtype=np.float32)
        r = fs.alpha_dropout(x, p, seed=2024)
        kept = np.count_nonzero(r != np.float32(exact_dropped(p)))
        sigma = np.sqrt(n * p * (1 - p))
        assert abs(kept - n * (1 - p)) < 4 * sigma, (kept, n * (1 - p), sigma)


def _chi2_independent(a, b):
    """Chi-square statistic (1 degree of freedom) of the 2x2 table of two boolean arrays."""
    t = np.array([[np.sum(~a & ~b), np.sum(~a & b)], [np.sum(a & ~b), np.sum(a & b)]], float)
    e = t.sum(1)[:, None] * t.sum(0)[None, :] / t.sum()
    return ((t - e) ** 2 / e).sum()


def test_masks_uncorrelated_between_seeds_and_neighbours():
    # chi-square with 1 dof: 15.1 is the 0.01% point; several seeds and offsets
    n = 1 << 18
    x = np.zeros(n)
    for s in (0, 1, 2**32 - 1, 2**32, 123456789):
        k0 = fs.alpha_dropout(x, 0.5, seed=s) > 0
        k1 = fs.alpha_dropout(x, 0.5, seed=s + 1) > 0
        assert _chi2_independent(k0, k1) < 15.1
        for lag in (1, 2, 3, 4, 5, 8):
            assert _chi2_independent(k0[:-lag], k0[lag:]) < 15.1, (s, lag)


def _cases(dtype, n=70001):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(n) * 3).astype(dtype)
    info = np.finfo(dtype)
    x[:10] = [
        np.nan,
        np.inf,
        -np.inf,
        0.0,
        -0.0,
        info.max,
        -info.max,
        info.tiny,
        info.smallest_subnormal,
        -info.smallest_subnormal,
    ]
    with np.errstate(over="ignore"):
        big = np.exp(rng.uniform(-800, 800, 1990)) * rng.choice([-1, 1], 1990)
        x[10:2000] = big.astype(dtype)
    # around the cancellation points of p = 0.05 and 0.5 (v = -SA*p, x = ln(1 - p)), where the
    # kernels' extra precision matters
    k = 0
    for p in (0.05, 0.5):
        for c in (-float(SCALE_ALPHA_STR) * p, np.log1p(-p)):
            c = dtype(c)
            x[2000 + k : 2100 + k] = c + np.arange(-50, 50).astype(dtype) * np.spacing(c)
            x[2100 + k : 2150 + k] = c * (1 + np.linspace(-3e-4, 3e-4, 50)).astype(dtype)
            k += 150
    g = (rng.standard_normal(n) * np.exp(rng.uniform(-30, 30, n))).astype(dtype)
    g[:25] = [np.nan, np.inf, -np.inf, 0.0, -0.0] * 5
    return g, x


def _all_results(dtype, n=70001):
    g, x = _cases(dtype, n)
    out = _every_kind(g, x, 5)
    for p in (0.05, 0.5, 1.0):
        out.append(
            fs.selu_alpha_dropout(x[: n - n % 7].reshape(-1, 7, 1), p, seed=5, feature=True).ravel()
        )
    return out


def _bits(arrays):
    return [a.view(np.uint8).copy() for a in arrays]


@pytest.mark.parametrize("dtype", DTYPES)
def test_cython_and_numba_bit_identical(dtype):
    if not {"cython", "numba"} <= set(fs.available_backends()):
        pytest.skip("needs the cython and numba backends")
    with switched_backend("cython"):
        a = _bits(_all_results(dtype))
    with switched_backend("numba"):
        b = _bits(_all_results(dtype))
    for i, (u, v) in enumerate(zip(a, b)):
        assert np.array_equal(u, v), i


def test_numba_drivers_one_signature_each(restore_threads):
    """numba's on-disk cache keeps a function's signatures in one index, whose updates race
    between processes compiling at once (numba #4807): every numba driver compiles exactly one
    signature, whatever the dtype, thread count or writability of the inputs."""
    if "numba" not in fs.available_backends():
        pytest.skip("needs the numba backend")
    from fastselu import _backend_numba as nb

    with switched_backend("numba"):
        for nt in (1, 2):
            fs.set_num_threads(nt)
            for dtype in DTYPES:
                x = np.linspace(-3, 3, 200_001).astype(dtype)
                ro = x.copy()
                ro.flags.writeable = False
                for a in (x, ro):
                    z = fs.selu_alpha_dropout(a, 0.1, seed=1)
                    fs.alpha_dropout(a, 0.1, seed=1)
                    fs.selu_alpha_dropout_backward(a, a, 0.1, seed=1)
                    fs.selu_alpha_dropout_backward(a, z, 0.1, seed=1, is_result=True)
                    fs.selu_backward(a, a)
    drivers = {**nb._dropout_drivers, **nb._dispatchers}
    names = {np.dtype(d).name for d in DTYPES}
    assert {(w, d) for w, d, _ in nb._dropout_drivers} == {(w, d) for w in (0, 1) for d in names}
    for key, d in drivers.items():
        assert len(d.signatures) == 1, (key, d.signatures)


@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_and_chunk_splits_bit_identical(backend, dtype, restore_threads):
    n = 3 * 65536 + 5  # large enough for two threads
    fs.set_num_threads(2)
    a = _bits(_all_results(dtype, n))
    fs.set_num_threads(1)
    b = _bits(_all_results(dtype, n))
    for i, (u, v) in enumerate(zip(a, b)):
        assert np.array_equal(u, v), i
    # a kernel call starting anywhere gives the same elements (what threads and chunks rely on)
    g, x = _cases(dtype, 4099)
    whole = fs.selu_alpha_dropout(x, 0.3, seed=9)
    kernel = _api._dropout_backend().dropout
    prm = _dropout.params(0.3, np.dtype(dtype).name)
    for lo, hi in ((1, 4099), (3, 6), (1023, 3000), (5, 5)):
        part = np.empty(hi - lo, dtype=dtype)
        kernel(x[lo:hi].copy(), part, prm, _dropout.key_of(9), lo, 1, True, 1)
        assert np.array_equal(part.view(np.uint8), whole[lo:hi].view(np.uint8))


def test_simd_variants_bit_identical():
    """Every variant this CPU runs gives the same bits (subprocesses with FASTSELU_SIMD)."""
    from util import run_python

    if fs.get_backend() != "cython":
        pytest.skip("the compiled backend is not in use")
    import pathlib

    from fastselu import _kernels

    code = (
        "import sys, hashlib, numpy as np, fastselu as fs\n"
        f"sys.path.insert(0, {str(pathlib.Path(__file__).resolve().parent)!r})\n"
        "import test_dropout as t\n"
        "h = hashlib.sha256()\n"
        "for dt in (np.float32, np.float64):\n"
        "    for a in t._all_results(dt, 20001): h.update(a.tobytes())\n"
        "for a in t._half_results('float16')[2]: h.update(a.tobytes())\n"
        "print(fs.show_config.__module__, h.hexdigest())\n"
    )
    digests = {}
    for variant in _kernels.SUPPORTED:
        r = run_python(code, FASTSELU_SIMD=variant, FASTSELU_BACKEND="cython")
        assert r.returncode == 0, r.stderr
        digests[variant] = r.stdout.split()[-1]
    assert len(set(digests.values())) == 1, digests


# float32 inputs whose fused value (p = 0.1), evaluated without an FMA unit, lies near a float32
# midpoint: the baseline x86-64 kernel redoes their tile with exact fmas (fs_f32_near_tie)
NEAR_TIE_P01 = ["-0x1.416dc4p+0", "-0x1.2d4d02p+1", "-0x1.fb0efap+0", "0x1.e38046p-1"]


@pytest.mark.skipif(fs.get_backend() != "cython", reason="the compiled backend is not in use")
def test_fused_inplace_redo_reads_x_every_variant():
    """In place, a tile that the kernel evaluates twice (the baseline's near-tie redo) takes its
    second pass from x, not from the first pass's results: the out-of-place bits, every
    variant.  (The baseline without the scratch tile returned such a tile wrong throughout.)"""
    from fastselu import _kernels

    x = np.random.default_rng(4).uniform(-3, 1, 5000).astype(np.float32)
    x[[10, 2100, 2101, 4500]] = [float.fromhex(v) for v in NEAR_TIE_P01]
    for variant in _kernels.SUPPORTED:
        _kernels.set_simd(variant)
        try:
            want = fs.selu_alpha_dropout(x, 0.1, seed=3)
            y = x.copy()
            fs.selu_alpha_dropout(y, 0.1, seed=3, inplace=True)
        finally:
            _kernels.set_simd(None)
        assert np.array_equal(y.view(np.uint32), want.view(np.uint32)), variant


def test_kernel_header_parameter_layout():
    """_dropout_kernels.h's FS_P_* are fastselu/_dropout.py's P_* (one layout, two languages)."""
    import pathlib
    import re

    header = pathlib.Path(fs.__file__).parent / "_dropout_kernels.h"
    if not header.exists():
        pytest.skip("the kernel header is not installed")
    found = dict(re.findall(r"#define FS_P_(\w+) (\d+)", header.read_text()))
    assert found, "no FS_P_ constants"
    for name, value in found.items():
        assert getattr(_dropout, "P_" + name) == int(value), name
    assert int(re.search(r"#define FS_N_PARAMS (\d+)", header.read_text())[1]) == _dropout.N_PARAMS


@pytest.mark.parametrize("start", [2**34 - 37, 2**40 + 3, 2**62 + 1])
def test_mask_at_huge_logical_indices(backend, start):
    """Counters whose low word wraps inside a tile (arrays beyond 2^34 elements, dask blocks)."""
    x = np.zeros(301)
    prm = _dropout.params(0.5, "float64")
    out = np.empty_like(x)
    _api._dropout_backend().dropout(x, out, prm, _dropout.key_of(77), start, 1, False, 1)
    idx = np.arange(start, start + x.size, dtype=np.int64)
    keep = _dropout.words(idx, _dropout.key_of(77)) >= int(prm[_dropout.P_THRESH])
    assert np.array_equal(out > 0, keep)


def _kept_everywhere(p, fmt):
    prm = _dropout.params(p, fmt).copy()
    prm[_dropout.P_THRESH] = 0.0  # every element kept: the value formula on every input
    return prm


def f32_reference(x, p, fused):
    """a*(v + SA*p) for float32 x, in float64 (within ~2^-27 ULP of float32: exact enough),
    with the constants and the sums as the kernels' double-double parts."""
    prm = _dropout.params(p, "float64")
    g = {
        k: prm[getattr(_dropout, "P_" + k)]
        for k in ("A_HI", "B_HI", "B_LO", "C_HI", "L_HI", "L_LO", "AS_HI", "AB_HI")
    }
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        if not fused:
            return (x64 + g["B_HI"] + g["B_LO"]) * g["A_HI"]
        d = (x64 - g["L_HI"]) - g["L_LO"]  # x - L_HI is exact near ln q (Sterbenz)
        return np.where(x64 > 0, g["AS_HI"] * x64 + g["AB_HI"], g["C_HI"] * np.expm1(d))


def _worst_over_float32(error_of, every=1):
    """max of error_of(x) over the finite float32 inputs, in blocks of 2^24 bit patterns (every
    `every`-th block), spread over the CPUs: the kernels run on one thread per block and the
    NumPy reference, which dominates, releases the GIL."""
    step, sub = 1 << 24, 1 << 16  # NumPy's temporaries for 2^16 stay in cache: 3-4x faster

    def block(lo):
        worst = 0.0
        for s in range(lo, lo + step, sub):
            x = (np.arange(sub, dtype=np.uint32) + np.uint32(s)).view(np.float32)
            x = x[np.isfinite(x)]
            if x.size:  # (a piece of only NaN or inf patterns has none)
                worst = max(worst, error_of(x))
        return worst

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return max(pool.map(block, range(0, 1 << 32, step * every)))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["alpha", "fused"])
def test_float32_exhaustive(kind):
    """Every float32 input, kept (p = 0.1): <= 1 ULP.  Minutes."""
    p, fused = 0.1, kind == "fused"
    prm = _kept_everywhere(p, "float32")
    kernel = _api._dropout_backend().dropout

    def error_of(x):
        o = np.empty_like(x)
        kernel(x, o, prm, (1, 2), 0, 1, fused, 1)
        return float(ulp_error(o, f32_reference(x, p, fused), np.float32).max())

    worst = _worst_over_float32(error_of)
    assert worst <= 1.0, worst


@pytest.mark.slow
@pytest.mark.parametrize(("p", "every"), [(0.1, 1), (0.9, 8)])
def test_float32_backward_exhaustive(p, every):
    """Every float32 x, kept, grad_output = 1, the fused backward from x (its float32 fast path
    above x = -80, the precise one below): <= 1.5 ULP of a*SELU'(x) (SPEC).  Minutes.  The
    second p (another table, the same code) takes every 8th block of 2^24 inputs, to keep CI's
    slow suite within its time."""
    prm = _kept_everywhere(p, "float32")
    ref = _dropout.params(p, "float64")
    kernel = _api._dropout_backend().dropout_backward

    def error_of(x):
        o = np.empty_like(x)
        kernel(np.ones_like(x), x, o, prm, (1, 2), 0, 1, 1, 1)
        x64 = x.astype(np.float64)
        with np.errstate(all="ignore"):  # a*SA*exp(x) in double: ~2^-52, exact enough here
            exact = np.where(x64 > 0, ref[_dropout.P_AS_HI], ref[_dropout.P_ASA_HI] * np.exp(x64))
        return float(ulp_error(o, exact, np.float32).max())

    worst = _worst_over_float32(error_of, every)
    assert worst <= 1.5, worst
