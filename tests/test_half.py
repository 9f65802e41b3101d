"""float16 and bfloat16: computed by the kernels themselves, correctly rounded on all 2^16 inputs.

Every one of the 2^16 bit patterns of each format, forward and backward (from x and from y) with
grad_output = 1, against exact values: <= 0.5 ULP (the SPEC's "correctly rounded"), in every SIMD
variant this CPU runs and every backend; other grad_output <= 1 ULP; the same bits everywhere.
The quick tests take long double (64-bit significand) as exact, and also check that no exact value
lies within 1e-9 ULP of a rounding boundary, so that long double's own rounding (2^-53 ULP here)
cannot hide a misrounding; the slow test takes mpmath at 100 bits for every negative input.
bfloat16 parts need ml_dtypes (the `test` extra) and skip without it.
"""

import platform

import numpy as np
import pytest

import fastselu
from fastselu import _api, _half, _selu_constants, _ulp
from util import run_python, switched_backend

try:
    import ml_dtypes
except ImportError:  # pragma: no cover - ml_dtypes is in the test extra
    ml_dtypes = None

BACKENDS = fastselu.available_backends()
needs_bf16 = pytest.mark.skipif(ml_dtypes is None, reason="ml_dtypes is not installed")
FORMATS = ["float16", pytest.param("bfloat16", marks=needs_bf16)]
NAN = {"float16": 0x7E00, "bfloat16": 0x7FC0}
QUIET = {"float16": 0x0200, "bfloat16": 0x0040}

try:
    from fastselu import _kernels as K

    VARIANTS = list(K.SUPPORTED)
except ImportError:  # no compiled backend here
    K, VARIANTS = None, []


def dtype_of(fmt):
    return np.dtype(np.float16) if fmt == "float16" else np.dtype(ml_dtypes.bfloat16)


def all_inputs(fmt):
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(dtype_of(fmt))


def bits(a):
    return np.asarray(a).view(np.uint16)


def run_all(fmt, g=None):
    """(forward, backward_x, backward_y) of every input, with grad_output g (default 1)."""
    x = all_inputs(fmt)
    g = np.ones_like(x) if g is None else g
    return (
        bits(fastselu.selu(x)),
        bits(fastselu.selu_backward(g, x)),
        bits(fastselu.selu_backward(g, x, is_result=True)),
    )


_exact_cache = {}


def exact(fmt, op, g=None):
    """Long double exact values of every input (g = 1 unless given), cached for g = 1."""
    key = (fmt, op)
    if g is None and key in _exact_cache:
        return _exact_cache[key]
    x = _half.to_float64(all_inputs(fmt), fmt)
    gg = 1.0 if g is None else _half.to_float64(g, fmt)
    e = {
        "forward": lambda: _ulp.exact_selu(x),
        "backward_x": lambda: _ulp.exact_selu_backward(gg, x),
        "backward_y": lambda: _ulp.exact_selu_backward_result(gg, x),
    }[op]()
    if g is None:
        _exact_cache[key] = e
    return e


def check_rounding(fmt, results, g=None, bound=0.5):
    """Max ULP error per op; with bound 0.5 also no exact value near a rounding boundary."""
    worst = {}
    for op, r in zip(("forward", "backward_x", "backward_y"), results):
        e = exact(fmt, op, g)
        err = _ulp.ulp_error(_half.to_float64(r, fmt), e, dtype_of(fmt))
        worst[op] = float(err.max())
        assert worst[op] <= bound, (fmt, op, worst[op], int(np.argmax(err)))
        if bound == 0.5:
            near = np.abs(np.abs(np.asarray(err, np.float64)) - 0.5) < 1e-9
            assert not near.any(), (fmt, op, np.nonzero(near)[0][:5])
    return worst


@pytest.mark.parametrize("fmt", FORMATS)
def test_correctly_rounded_on_every_input(backend, fmt):
    check_rounding(fmt, run_all(fmt))


@pytest.mark.skipif(K is None, reason="no compiled backend")
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("simd", VARIANTS)
def test_every_variant_correctly_rounded_and_bit_identical(fmt, simd):
    with switched_backend("cython"):
        before = K.simd()
        try:
            K.set_simd(simd)
            got = run_all(fmt)
            rng = np.random.default_rng(5)
            g = rng.integers(0, 1 << 16, 1 << 16).astype(np.uint16).view(dtype_of(fmt))
            got_g = run_all(fmt, g)
            K.set_simd("baseline")
            base = run_all(fmt), run_all(fmt, g)
        finally:
            K.set_simd(before)
    check_rounding(fmt, got)
    for a, b in zip(got + got_g, base[0] + base[1]):
        assert np.array_equal(a, b)


def near_half_way_pairs(fmt, kind):
    """(g, v, expected) for the backward from x (kind "x") or from the result ("y") where g*d
    lies within ~2^-22 of a rounding boundary of the format, d being from x the table's entry
    (SA*exp(x) by the float64 kernel, rounded to odd), from the result the double (y + SA_HI) +
    SA_LO: the products whose rounding hangs on the kernels' half-way logic (the AVX2 and numba
    lanes' midpoint test, the element functions' rounding) and on d's last bits.  g runs over
    one binade's significands with both signs (any other g is one of them times a power of
    two), v over every negative pattern above -80 (x) or finite (y); expected = g*d rounded to
    double (exact from x), then once to the format: the element functions' definition."""
    m = _half.FORMATS[fmt][0]
    v_bits = np.arange(1 << 15, 1 << 16, dtype=np.uint32).astype(np.uint16)
    v = _half.to_float64(v_bits, fmt)
    with np.errstate(invalid="ignore"):  # NaN
        ok = v > -80 if kind == "x" else np.isfinite(v)
    v_bits, v = v_bits[ok], v[ok]
    if kind == "x":
        with switched_backend(next(b for b in BACKENDS if b != "numpy")):
            d = _half.ro32(fastselu.selu_backward(np.ones_like(v), v))
    else:
        d = (v + _half.SA_HI) + _half.SA_LO
    d = d.astype(np.float64)
    g = 1.0 + np.arange(1 << m) / (1 << m)
    g = np.where(np.arange(1 << m) % 3 == 0, -g, g)
    out = []
    for s in range(0, v.shape[0], 2048):
        p = (g * d[s : s + 2048, None]).ravel()
        lo, hi = (_half.from_float64(p * (1.0 + k * 2.0**-22), fmt) for k in (-1, 1))
        i, j = np.divmod(np.nonzero(lo != hi)[0], g.shape[0])
        out.append(
            (_half.from_float64(g[j], fmt), v_bits[s + i], _half.from_float64(g[j] * d[s + i], fmt))
        )
    return [np.concatenate(a) for a in zip(*out)]


# From the result, bfloat16 is correctly rounded for y >= -BF16_Y_EXACT (every SELU result and
# more; see test_backward_near_half_way)
BF16_Y_EXACT = 2.0**54


def exact_rounding_y(fmt, g16, v16):
    """g*(v + SCALE*ALPHA) rounded once to the format, exactly (Fractions; SA to 160 bits), for
    negative v.  inf stands for the next power of two, as rounding past the largest value
    treats it."""
    from fractions import Fraction

    sa = Fraction(_half.SA_HI) + Fraction(_half.SA_LO) + Fraction(_selu_constants.SA_LO2)
    big = 2.0 ** (_half.FORMATS[fmt][1] + 1)
    g, v = _half.to_float64(g16, fmt), _half.to_float64(v16, fmt)
    near = _half.from_float64(g * ((v + _half.SA_HI) + _half.SA_LO), fmt)
    out = np.empty_like(near)
    for k in range(near.shape[0]):
        e = Fraction(float(g[k])) * (Fraction(float(v[k])) + sa)
        cands = (near[k : k + 1] + np.array([-1, 0, 1], np.int32)).astype(np.uint16)
        vals = _half.to_float64(cands, fmt)
        vals = np.where(np.isinf(vals), np.copysign(big, vals), vals)
        dist = [abs(Fraction(float(c)) - e) if np.isfinite(c) else None for c in vals]
        best = min((dd, i) for i, dd in enumerate(dist) if dd is not None)
        assert sum(dd == best[0] for dd in dist if dd is not None) == 1  # no tie
        out[k] = cands[best[1]]
    return out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["x", "y"])
def test_backward_near_half_way(fmt, kind):
    """Every backend and variant gives the definition's bits.  From the result that is g*d
    correctly rounded for every float16 pair and every bfloat16 pair with y >= -2^54 (checked
    here against Fractions on these pairs, and over all 2^32 pairs with a double-double
    reference in C; below, y's ULP is 4 or more and d = y + SA_HI loses SA); from x, g times
    the table's d."""
    g16, v16, expected = near_half_way_pairs(fmt, kind)
    assert g16.shape[0] >= 20  # float16 13655 (x) and 22337 (y), bfloat16 32 and 29516
    if kind == "y":
        v = _half.to_float64(v16, fmt)
        sel = np.ones(v.shape, bool) if fmt == "float16" else v >= -BF16_Y_EXACT
        assert np.array_equal(exact_rounding_y(fmt, g16[sel], v16[sel]), expected[sel])
    g, v = g16.view(dtype_of(fmt)), v16.view(dtype_of(fmt))
    runs = [(name, None) for name in BACKENDS]
    runs += [("cython", simd) for simd in VARIANTS]
    for name, simd in runs:
        with switched_backend(name):
            before = K.simd() if simd else None
            try:
                if simd:
                    K.set_simd(simd)
                got = bits(fastselu.selu_backward(g, v, is_result=kind == "y"))
            finally:
                if simd:
                    K.set_simd(before)
        bad = np.nonzero(got != expected)[0]
        assert bad.shape[0] == 0, (name, simd, bad.shape[0], g16[bad[:3]], v16[bad[:3]])


@needs_bf16
@pytest.mark.skipif(K is None, reason="no compiled backend")
def test_bfloat16_backward_from_far_negative_x_every_g():
    """From |x| = 80 on, d(x) = SA*exp(x) nears float32's subnormals, and the bfloat16 backward
    takes it as a double (g*d rounded to double, then once to bfloat16): every x in [-128, -64]
    with every g pattern, in every variant and numba, against that definition.  Vector lanes
    with the float32 entry there misround 0.5% of these pairs (products in bfloat16's
    subnormals), which random g over all x did not meet."""
    x_bits = np.arange(0xC280, 0xC301, dtype=np.uint16)  # -64 ... -128
    x = _half.to_float64(x_bits, "bfloat16")
    with switched_backend(next(b for b in BACKENDS if b != "numpy")):
        d = fastselu.selu_backward(np.ones_like(x), x)
    g_bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    with np.errstate(invalid="ignore", over="ignore"):
        want = _half.from_float64(
            _half.to_float64(g_bits, "bfloat16")[None, :] * d[:, None], "bfloat16"
        ).ravel()
    g = np.tile(g_bits, x_bits.shape[0]).view(dtype_of("bfloat16"))
    xs = np.repeat(x_bits, g_bits.shape[0]).view(dtype_of("bfloat16"))
    runs = [("cython", simd) for simd in VARIANTS] + [("numba", None)] * ("numba" in BACKENDS)
    for name, simd in runs:
        with switched_backend(name):
            before = K.simd()
            try:
                if simd:
                    K.set_simd(simd)
                got = bits(fastselu.selu_backward(g, xs))
            finally:
                K.set_simd(before)
        bad = np.nonzero(got != want)[0]
        assert bad.shape[0] == 0, (name, simd, bad.shape[0], g[bad[:3]], xs[bad[:3]])


@pytest.mark.skipif(
    "numba" not in BACKENDS or K is None or platform.machine().lower() not in ("x86_64", "amd64"),
    reason="needs numba and the compiled backend, on x86-64",
)
def test_numba_float16_lanes_without_f16c(tmp_path):
    """numba's float16 lanes convert by F16C where the target has it, else by integer code (as
    on aarch64): the integer code compiled for baseline x86-64 (NUMBA_CPU_*) here, on the
    near-half-way pairs and on every input with random g, against the compiled backend."""
    rng = np.random.default_rng(13)
    g_all = rng.integers(0, 1 << 16, 1 << 16).astype(np.uint16)
    v_all = all_inputs("float16").view(np.uint16)
    cases = [(*near_half_way_pairs("float16", k)[:2], k) for k in ("x", "y")]
    cases += [(g_all, v_all, "x"), (g_all, v_all, "y")]
    arrays = {f"{n}{i}": a for i, c in enumerate(cases) for n, a in zip("gv", c[:2])}
    np.savez(tmp_path / "in.npz", **arrays)
    code = f"""
    import sys, numpy as np, fastselu
    from fastselu import _half_numba
    a = np.load(sys.argv[1])
    out = []
    for i, kind in enumerate({[c[2] for c in cases]!r}):
        g, v = a[f"g{{i}}"].view(np.float16), a[f"v{{i}}"].view(np.float16)
        out.append(fastselu.selu_backward(g, v, is_result=kind == "y").view(np.uint16))
    kernel = _half_numba._get("float16", "backward_x", False)[0]
    assert "cvtph2ps" not in "".join(kernel.inspect_asm().values())
    np.savez(sys.argv[2], *out)
    """
    p = run_python(
        code,
        str(tmp_path / "in.npz"),
        str(tmp_path / "out.npz"),
        timeout=600,
        FASTSELU_BACKEND="numba",
        NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"),  # no other target's entries beside ours
        NUMBA_CPU_NAME="x86-64",
        NUMBA_CPU_FEATURES="+64bit,+cx8,+fxsr,+mmx,+sse,+sse2",
    )
    assert p.returncode == 0, p.stderr
    got = np.load(tmp_path / "out.npz")
    with switched_backend("cython"):
        for i, (g, v, kind) in enumerate(cases):
            want = fastselu.selu_backward(
                g.view(np.float16), v.view(np.float16), is_result=kind == "y"
            )
            assert np.array_equal(got[f"arr_{i}"], bits(want)), kind


@pytest.mark.skipif(K is None, reason="no compiled backend")
@pytest.mark.parametrize("fmt", FORMATS)
def test_simd_variants_bit_identical_across_processes(fmt, tmp_path):
    """FASTSELU_SIMD in fresh processes: each variant builds its tables itself, the same bits."""
    code = f"""
import sys, numpy as np, fastselu
from fastselu import _half
fmt = {fmt!r}
dt = np.float16 if fmt == "float16" else __import__("ml_dtypes").bfloat16
x = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(dt)
g = np.random.default_rng(7).integers(0, 1 << 16, 1 << 16).astype(np.uint16).view(dt)
r = [fastselu.selu(x), fastselu.selu_backward(g, x), fastselu.selu_backward(g, x, is_result=True)]
np.save(sys.argv[1], np.stack([a.view(np.uint16) for a in r]))
"""
    results = []
    for simd in VARIANTS:
        out = tmp_path / f"{simd}.npy"
        p = run_python(code, str(out), FASTSELU_SIMD=simd, FASTSELU_BACKEND="cython")
        assert p.returncode == 0, p.stderr
        results.append(np.load(out))
    for r in results[1:]:
        assert np.array_equal(r, results[0])


@pytest.mark.parametrize("fmt", FORMATS)
def test_backends_bit_identical(fmt):
    """numba and numpy: the compiled backend's bits for every input and any g (numpy builds its
    table of d(x) from its own float64 kernel: the same entries; until this release it rounded
    g*d(x) from that kernel instead, 62376 float16 pairs apart from the table's)."""
    rng = np.random.default_rng(11)
    g = rng.integers(0, 1 << 16, 1 << 16).astype(np.uint16).view(dtype_of(fmt))
    ref = {}
    for name in BACKENDS:
        with switched_backend(name):
            ref[name] = run_all(fmt), run_all(fmt, g)
    first = ref[BACKENDS[0]]
    for name, (r1, rg) in ref.items():
        for a, b in zip(r1, first[0]):
            assert np.array_equal(a, b), name
        for k, (a, b) in enumerate(zip(rg, first[1])):
            assert np.array_equal(a, b), (name, k)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("nthreads", [1, 2])
def test_seam_refuses_mismatched_lengths(fmt, nthreads):
    """The compiled and numba 16-bit kernels raise on arrays of different lengths, writing
    nothing (neither checks bounds per element).  (The numpy backend's NumPy operations raise
    their own errors.)"""
    x = np.linspace(-3, 3, 200_001).astype(dtype_of(fmt)).view(np.uint16)
    for name in (b for b in BACKENDS if b != "numpy"):
        B = fastselu._backends.load(name)
        for kernel, args in (
            (B.forward, (x[:-1],)),
            (B.backward_x, (x, x[:-1])),
            (B.backward_y, (x[:-1], x)),
        ):
            out = np.zeros(x.shape, np.uint16)
            with pytest.raises(ValueError, match="same number of elements"):
                kernel(*args, out, nthreads, fmt=fmt)
            assert not out.any(), (name, kernel.__name__)


@pytest.mark.parametrize("fmt", FORMATS)
def test_other_grad_output_within_one_ulp(backend, fmt):
    rng = np.random.default_rng(3)
    g = rng.integers(0, 1 << 16, 1 << 16).astype(np.uint16).view(dtype_of(fmt))
    check_rounding(fmt, run_all(fmt, g), g=g, bound=1.0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_nan_rules(backend, fmt):
    x = all_inputs(fmt)
    nan = np.isnan(_half.to_float64(x, fmt))
    y, dx, dy = run_all(fmt)
    assert np.array_equal(y[nan], bits(x)[nan] | QUIET[fmt])  # the input's NaN, quieted
    assert (dx[nan] == NAN[fmt]).all() and (dy[nan] == NAN[fmt]).all()
    # NaN grad_output, and inf * 0 at x = -inf, give the default NaN too
    g = np.full_like(x, np.nan)
    assert (bits(fastselu.selu_backward(g, x)) == NAN[fmt]).all()
    v = np.array([-np.inf, -1.0, 1.0], dtype_of(fmt))
    r = bits(fastselu.selu_backward(np.full_like(v, np.inf), v))
    assert r[0] == NAN[fmt] and list(_half.to_float64(r[1:], fmt)) == [np.inf, np.inf]


@pytest.mark.parametrize("fmt", FORMATS)
def test_layouts_give_the_contiguous_bits(backend, fmt):
    dt = dtype_of(fmt)
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((64, 48)) * 4).astype(dt)
    g = (rng.standard_normal((64, 48))).astype(dt)
    want_y = bits(fastselu.selu(np.ascontiguousarray(x)))
    want_dx = bits(fastselu.selu_backward(g, x))
    for view in (
        lambda a: a[::2, ::3],
        lambda a: a[::-1],
        lambda a: np.asfortranarray(a),
        lambda a: a.astype(a.dtype.newbyteorder()),
    ):
        xv, gv = view(x), view(g)
        sel = view(np.arange(x.size).reshape(x.shape))
        y = fastselu.selu(xv)
        assert y.dtype == dt and np.array_equal(
            bits(np.ascontiguousarray(y)).ravel(), want_y.ravel()[sel.ravel()]
        )
        d = fastselu.selu_backward(gv, xv)
        assert d.dtype == dt and np.array_equal(
            bits(np.ascontiguousarray(d)).ravel(), want_dx.ravel()[sel.ravel()]
        )
    # in place on a strided view, out= on the input itself, a 0-d input
    xs = x.copy()
    assert fastselu.selu(xs[:, ::2], inplace=True) is not None
    assert np.array_equal(bits(xs[:, ::2]), want_y[:, ::2])
    assert np.array_equal(bits(xs[:, 1::2]), bits(x)[:, 1::2])
    xs = x.copy()
    assert fastselu.selu(xs, out=xs) is xs and np.array_equal(bits(xs), want_y)
    s = fastselu.selu(x[0, 0])
    assert type(s) is dt.type and bits(np.asarray(s)) == want_y[0, 0]


@pytest.mark.skipif(K is None, reason="no compiled backend")
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("simd", VARIANTS)
def test_short_and_offset_arrays(fmt, simd):
    """Every start offset and length up to 20, in place too: the forward's four-at-a-time
    lookups and the backward's 8-lane loops, with their element-by-element tails, give the
    bits of the numpy backend's forward and of the long array's backward."""
    dt = dtype_of(fmt)
    rng = np.random.default_rng(4)
    xb = rng.integers(0, 1 << 16, 64).astype(np.uint16).view(dt)
    gb = rng.integers(0, 1 << 16, 64).astype(np.uint16).view(dt)
    with switched_backend("numpy"):
        want_y = bits(fastselu.selu(xb))
    with switched_backend("cython"):
        before = K.simd()
        try:
            K.set_simd(simd)
            want_dx = bits(fastselu.selu_backward(gb, xb))
            want_dy = bits(fastselu.selu_backward(gb, xb, is_result=True))
            for k in range(8):
                for m in range(21):
                    sl = slice(k, k + m)
                    assert np.array_equal(bits(fastselu.selu(xb[sl])), want_y[sl]), (k, m)
                    c = xb.copy()
                    fastselu.selu_(c[sl])
                    want = bits(xb).copy()
                    want[sl] = want_y[sl]
                    assert np.array_equal(bits(c), want), (k, m)
                    d = fastselu.selu_backward(gb[sl], xb[sl])
                    assert np.array_equal(bits(d), want_dx[sl]), (k, m)
                    d = fastselu.selu_backward(gb[sl], xb[sl], is_result=True)
                    assert np.array_equal(bits(d), want_dy[sl]), (k, m)
        finally:
            K.set_simd(before)


@pytest.mark.parametrize("fmt", FORMATS)
def test_contiguous_inplace_and_out_allocate_nothing(fmt):
    import tracemalloc

    dt = dtype_of(fmt)
    x = (np.random.default_rng(0).standard_normal(10**6) * 3).astype(dt)
    out = np.empty_like(x)
    g = np.ones_like(x)
    for backend_name in [b for b in ("cython", "numba") if b in BACKENDS]:
        with switched_backend(backend_name):
            calls = [
                lambda: fastselu.selu(x, out=out),
                lambda: fastselu.selu_(out),
                lambda: fastselu.selu_backward(g, x, out=out),
                lambda: fastselu.selu_backward(g, out, is_result=True, out=out),
            ]
            for call in calls:
                call()  # tables built, kernels compiled
                tracemalloc.start()
                try:
                    call()
                    peak = tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()
                assert peak < 16384, (backend_name, peak)


@needs_bf16
def test_dtype_rules():
    bf, f16 = np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16)
    one = np.ones(3)
    for a, b, want in [
        (bf, bf, bf),
        (f16, f16, f16),
        (bf, f16, np.float32),
        (f16, bf, np.float32),
        (bf, np.float32, np.float32),
        (bf, np.float64, np.float64),
        (f16, np.float32, np.float32),
        # bfloat16 with integers promotes as float16 does (ml_dtypes under NumPy 2; the front
        # end keeps this rule under NumPy 1.x, where np.result_type raises for these pairs)
        (bf, np.int8, bf),
        (np.uint16, bf, np.float32),
        (bf, np.int64, np.float64),
    ]:
        r = fastselu.selu_backward(one.astype(a), one.astype(b))
        assert r.dtype == want, (a, b)
        r = fastselu.selu_alpha_dropout_backward(one.astype(a), one.astype(b), p=0.5, seed=1)
        assert r.dtype == want, (a, b)
    assert fastselu.selu(one.astype(bf)).dtype == bf
    assert fastselu.selu(np.asarray(-1.0, bf)).dtype == bf
    with pytest.raises(TypeError, match="float16, bfloat16, float32 or float64"):
        fastselu.selu(one.astype(np.complex64))
    with pytest.raises(TypeError, match="expected bfloat16"):
        fastselu.selu(one.astype(bf), out=np.empty(3, np.float16))


def test_bfloat16_recognised_without_importing_ml_dtypes():
    code = """
import sys, fastselu
assert "ml_dtypes" not in sys.modules, "imported by fastselu"
import ml_dtypes, numpy as np
print(fastselu.selu(np.array([-1.0, 2.0], ml_dtypes.bfloat16)).dtype)
"""
    if ml_dtypes is None:
        pytest.skip("ml_dtypes is not installed")
    p = run_python(code)
    assert p.returncode == 0 and p.stdout.strip() == "bfloat16", p.stderr


@pytest.mark.parametrize("fmt", FORMATS)
def test_bits_entry_point_for_views(fmt):
    """_api.half_call: the same kernels on int16/uint16 views of the bits (fastselu.torch)."""
    dt = dtype_of(fmt)
    x = (np.random.default_rng(4).standard_normal((40, 30)) * 3).astype(dt)
    g = np.ones_like(x)
    xi, gi = x.view(np.int16), g.view(np.int16)
    out = np.empty_like(xi)
    _api.half_call("forward", fmt, xi, out=out)
    assert np.array_equal(out.view(np.uint16), bits(fastselu.selu(x)))
    _api.half_call("backward_x", fmt, gi, xi, out=out)
    assert np.array_equal(out.view(np.uint16), bits(fastselu.selu_backward(g, x)))
    y = xi.copy()
    _api.half_call("forward", fmt, y, out=y)  # in place
    _api.half_call("backward_y", fmt, gi, y, out=y)
    want = fastselu.selu_backward(g, fastselu.selu(x), is_result=True)
    assert np.array_equal(y.view(np.uint16), bits(want))
    with pytest.raises(TypeError):
        _api.half_call("forward", fmt, x.astype(np.float32), out=out)
    with pytest.raises(ValueError):
        _api.half_call("forward", fmt, xi[:, ::2], out=out[:, ::2])


@pytest.mark.slow
@pytest.mark.skipif(K is None, reason="no compiled backend")
@pytest.mark.parametrize("fmt", FORMATS)
def test_correctly_rounded_against_mpmath(fmt):
    """mpmath at 100 bits for every negative finite input (positive ones are x*SCALE)."""
    pytest.importorskip("mpmath")
    x = all_inputs(fmt)
    x64 = _half.to_float64(x, fmt)
    neg = np.isfinite(x64) & (x64 < 0)
    with switched_backend("cython"):
        y, dx, dy = run_all(fmt)
    one = np.ones(int(neg.sum()))
    for r, e in [(y, _ulp.mp_selu(x64[neg])), (dx, _ulp.mp_selu_backward(one, x64[neg]))]:
        err = _ulp.ulp_error(_half.to_float64(r[neg], fmt), e, dtype_of(fmt))
        assert err.max() <= 0.5
        assert not (np.abs(err - 0.5) < 1e-12).any()


@pytest.mark.skipif(K is None, reason="no compiled backend")
def test_fp_exception_flags_untouched_including_the_table_build():
    """In a fresh process, so that the first call builds the tables (which raises flags)."""
    code = """
import ctypes, numpy as np
from fastselu import _kernels as K
libm = ctypes.CDLL("libm.so.6")
FE_ALL = 0x3D
x = np.array([-1e4, 6e4, np.nan, -1e-7, 0.5] * 1000, dtype=np.float16).view(np.uint16)
out = np.empty_like(x)
for fmt in ("float16", "bfloat16"):
    for kernel, args in ((K.forward, (x,)), (K.backward_x, (x, x)), (K.backward_y, (x, x))):
        libm.feclearexcept(FE_ALL)
        kernel(*args, out, 1, fmt=fmt)
        assert libm.fetestexcept(FE_ALL) == 0, (fmt, kernel)
print("ok")
"""
    p = run_python(code, FASTSELU_BACKEND="cython")
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
