"""Hardening: hypothesis fuzzing of layouts, offsets, byte orders and overlapping out=.

Every array here is a view built with ``np.ndarray(shape, dtype, buffer=raw, offset=, strides=)``
into a raw byte buffer: any byte offset (so unaligned data), any steps (negative too), any axis
order, either byte order.  The bytes are random bit patterns (so values from the whole float
range: subnormals, NaN payloads, infinities, the largest finite values) with special values
sprinkled in.  ``out`` may be a new array of another layout, the input itself, or another view
into the *same* raw buffer that partly overlaps the input.

Checks, for every call:
  * the result is what it would be without overlap: the NumPy reference backend
    (fastselu._backend_numpy) on a contiguous copy of the input taken before the call, to within
    1 ULP (forward) or 3 ULP (backward: each side is within 1.5 ULP of the exact value), with
    NaN where the reference has NaN and zeros of the same sign;
  * bit-for-bit the active backend's own result on that contiguous copy (SPEC: results do not
    depend on layout);
  * no byte of the raw buffer outside the elements of the output changes (and nothing at all
    when the output is a new array).

tests/test_dtypes_layouts.py's property tests cover aligned views (slices of a fresh array) with
out= into a separate array; these add offsets/unaligned data, byte-swapped out, overlap, sizes
around the one-thread threshold and the nditer chunk, and the backward functions.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fastselu
from fastselu import _backend_numpy as REF
from fastselu._constants import SCALE_STR
from util import switched_backend

BACKENDS = fastselu.available_backends()
DEFAULT = "cython" if "cython" in BACKENDS else BACKENDS[0]

QUICK = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
LONG = settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))


def _backend_params():
    return [pytest.param(b, id=b, marks=() if b == DEFAULT else pytest.mark.slow) for b in BACKENDS]


@pytest.fixture
def backend(request):
    with switched_backend(request.param) as backend_name:
        yield backend_name


each_backend = pytest.mark.parametrize("backend", _backend_params(), indirect=True)

FLOATS = ["<f2", ">f2", "<f4", ">f4", "<f8", ">f8"]
INTS = ["|i1", "<u2", ">i4", "<i8", "|b1"]
# sizes around the compiled backend's one-thread threshold (2 * 32768) and nditer's chunk (2^17)
LARGE_SIZES = [65535, 65536, 65537, 131071, 131072, 131073, 262147]


def specials(dtype):
    dt = np.dtype(dtype).newbyteorder("=")
    fi = np.finfo(dt)
    vals = [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        np.nan,
        float(fi.max),
        -float(fi.max),
        float(fi.tiny),
        -float(fi.tiny),
        float(fi.smallest_subnormal),
        -float(fi.smallest_subnormal),
        1.0,
        -1.0,
        -18.0,
        -40.0,
        -800.0,
        float(fi.max) / float(SCALE_STR),
    ]
    with np.errstate(all="ignore"):
        return np.array(vals, dtype=np.float64).astype(dt)


@st.composite
def layouts(draw, itemsize, shape=None, large=False):
    """(shape, strides, start offset within the footprint, footprint bytes) for a
    non-self-overlapping view: a C-contiguous block, sliced with steps, axes permuted."""
    if shape is None:
        if large:
            shape = (draw(st.sampled_from(LARGE_SIZES)),)
        else:
            ndim = draw(st.sampled_from([0, 1, 1, 2, 2, 3, 4]))
            small = st.one_of(st.integers(0, 3), st.integers(0, 40))
            side = small if ndim <= 2 else st.integers(0, 7)
            shape = tuple(draw(st.lists(side, min_size=ndim, max_size=ndim)))
    ndim = len(shape)
    steps = [draw(st.sampled_from([1, 1, 2, 3, -1, -2])) for _ in range(ndim)]
    if large:
        steps = [draw(st.sampled_from([1, 2, -1]))]
    expanded = [max(1, s * abs(k)) for s, k in zip(shape, steps)]
    # memory order of the axes: order[0] varies slowest (C order when order == 0, 1, 2...)
    order = list(draw(st.permutations(range(ndim)))) if ndim > 1 else list(range(ndim))
    base = [0] * ndim
    stride = itemsize
    for axis in reversed(order):
        base[axis] = stride
        stride *= expanded[axis]
    strides = tuple(b * k for b, k in zip(base, steps))
    start = sum((e - 1) * b for e, b, k in zip(expanded, base, steps) if k < 0)
    footprint = itemsize * int(np.prod(expanded))
    return tuple(shape), strides, start, footprint


def view(raw, dtype, layout, at):
    shape, strides, start, _ = layout
    return np.ndarray(shape, dtype=dtype, buffer=raw, offset=at + start, strides=strides)


def fill_random(a, rng):
    """Random bit patterns plus special values, written through the view."""
    dt = a.dtype
    if a.size == 0:
        return
    if dt.kind == "f":
        bits = rng.integers(0, 256, a.size * dt.itemsize, dtype=np.uint8)
        vals = bits.view(dt.newbyteorder("=")).copy()
        sp = specials(dt)
        k = rng.random(a.size) < 0.15
        vals[k] = sp[rng.integers(0, sp.size, int(k.sum()))]
        if rng.random() < 0.3:  # sometimes an ordinary range (both branches, saturation)
            vals = (rng.standard_normal(a.size) * rng.choice([1, 10, 100])).astype(vals.dtype)
    elif dt.kind == "b":
        vals = rng.random(a.size) < 0.5
    else:
        info = np.iinfo(dt)
        vals = rng.integers(info.min, info.max, a.size, dtype=dt.newbyteorder("="), endpoint=True)
    a[...] = vals.reshape(a.shape)


def result_dtype(dt):
    return np.dtype(np.float64) if dt.kind in "biu" else dt.newbyteorder("=")


def compute_dtype(rdt):
    return rdt  # float16 too: the kernels compute it themselves


def run_seam(module, kind, arrays, rdt):
    """`module`'s kernel on contiguous native copies, rounded to the result dtype."""
    cdt = compute_dtype(rdt)
    with np.errstate(invalid="ignore"):  # a signalling NaN raises 'invalid' when cast
        flat = [np.array(a, dtype=cdt, order="C", copy=True).reshape(-1) for a in arrays]
    out = np.empty_like(flat[0])
    if cdt.itemsize == 2:  # float16: the seam takes the bits
        getattr(module, kind)(
            *[f.view(np.uint16) for f in flat], out.view(np.uint16), 1, fmt="float16"
        )
    else:
        getattr(module, kind)(*flat, out, 1)
    with np.errstate(over="ignore"):
        return out.astype(rdt).reshape(np.shape(arrays[0]))


def ulp_distance(a, b):
    """Elementwise distance in ULPs between two float arrays of one dtype (inf where exactly one
    is NaN, 0 where both are); object arithmetic, no overflow."""
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    it = {2: np.int16, 4: np.int32, 8: np.int64}[a.dtype.itemsize]
    imin = int(np.iinfo(it).min)

    def keys(v):
        return [int(i) if i >= 0 else imin - int(i) for i in v.view(it)]

    nan_a, nan_b = np.isnan(a), np.isnan(b)
    d = np.array([abs(p - q) for p, q in zip(keys(a), keys(b))], dtype=np.float64)
    d[nan_a | nan_b] = np.inf
    d[nan_a & nan_b] = 0
    return d


def same_bits_or_nan(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return (
        a.shape == b.shape
        and np.array_equal(a, b, equal_nan=True)
        and np.array_equal(np.signbit(a[~np.isnan(a)]), np.signbit(b[~np.isnan(b)]))
    )


def footprint_mask(raw_size, arr, base_address):
    """Boolean mask over the raw bytes that `arr`'s elements occupy."""
    mask = np.zeros(raw_size, bool)
    if arr.size == 0:
        return mask
    offset = arr.__array_interface__["data"][0] - base_address
    idx = np.zeros(arr.shape, np.int64) + offset
    for axis, stride in enumerate(arr.strides):
        shape = [1] * arr.ndim
        shape[axis] = arr.shape[axis]
        idx = idx + (np.arange(arr.shape[axis], dtype=np.int64) * stride).reshape(shape)
    for b in range(arr.dtype.itemsize):
        mask[idx.ravel() + b] = True
    return mask


@st.composite
def forward_cases(draw, large=False):
    dtype = np.dtype(draw(st.sampled_from(FLOATS + INTS)))
    xl = draw(layouts(dtype.itemsize, large=large))
    rdt = result_dtype(dtype)
    mode = draw(st.sampled_from(["new", "inplace", "out_is_x", "out_new", "out_overlap"]))
    if dtype.kind != "f" and mode in ("inplace", "out_is_x"):
        mode = "out_new"
    odt = rdt.newbyteorder(draw(st.sampled_from(["<", ">"])))
    ol = draw(layouts(odt.itemsize, shape=xl[0], large=large)) if mode.startswith("out_") else None
    x_off = draw(st.integers(0, 2 * dtype.itemsize))
    o_pos = draw(st.floats(0, 1))
    o_off = draw(st.integers(0, 8))
    seed = draw(st.integers(0, 2**32 - 1))
    if (
        mode == "out_overlap"
        and dtype.kind == "f"
        and odt.itemsize == dtype.itemsize
        and draw(st.booleans())
    ):
        # the hard case: out is x's own layout shifted by a few elements (the contiguous,
        # native, aligned kernel path when both are), so x is read where out was written
        ol = xl
        odt = dtype if draw(st.booleans()) else odt
        o_pos = draw(st.sampled_from([-5, -2, -1, 1, 2, 5]))  # a shift in elements
    return dtype, xl, mode, odt, ol, x_off, o_pos, o_off, seed


def _check_forward(case):
    dtype, xl, mode, odt, ol, x_off, o_pos, o_off, seed = case
    rng = np.random.default_rng(seed)
    o_foot = ol[3] if ol is not None else 0
    size = x_off + xl[3] + 2 * o_foot + 64
    raw = np.zeros(size, np.uint8)
    x_at = o_foot + x_off  # room before x for an overlapping out
    x = view(raw, dtype, xl, x_at)
    fill_random(x, rng)
    x0 = x.copy()
    raw0 = raw.copy()
    rdt = result_dtype(dtype)
    out = None
    if mode == "out_new":
        out_raw = np.zeros(o_foot + 16, np.uint8)
        out = view(out_raw, odt, ol, o_off % 8)
    elif mode == "out_overlap":
        if isinstance(o_pos, int):  # x's layout shifted by o_pos elements
            at = min(max(0, x_at + o_pos * dtype.itemsize), size - o_foot)
        else:  # anywhere from "ends just inside x" to
            lo = max(0, x_at - o_foot + 1)  # "starts just inside x"
            hi = min(size - o_foot, x_at + xl[3] - 1)
            at = lo + int(o_pos * max(0, hi - lo)) if hi >= lo else 0
        out = view(raw, odt, ol, at)
    elif mode == "out_is_x":
        out = x

    if mode == "new":
        r = fastselu.selu(x)
    elif mode == "inplace":
        assert fastselu.selu_(x) is x
        r = x
    else:
        assert fastselu.selu(x, out=out) is out
        r = out
    r = np.asarray(r).astype(rdt)

    ref = run_seam(REF, "forward", [x0], rdt)
    mine = run_seam(fastselu._backends.active, "forward", [x0], rdt)
    assert same_bits_or_nan(r, mine), "result depends on the layout"
    if r.size:
        d = ulp_distance(r, ref)
        assert d.max() <= 1, (
            f"{d.max()} ULP from the reference at "
            f"x={x0.ravel()[d.argmax()]!r}: {r.ravel()[d.argmax()]!r} "
            f"vs {ref.ravel()[d.argmax()]!r}"
        )
        zero = ref.ravel() == 0
        assert np.array_equal(np.signbit(r.ravel()[zero]), np.signbit(ref.ravel()[zero]))

    # nothing outside the output's elements changed
    if mode in ("new", "out_new"):
        assert np.array_equal(raw, raw0), "the input was modified"
    else:
        target = x if mode in ("inplace", "out_is_x") else out
        keep = ~footprint_mask(size, target, raw.__array_interface__["data"][0])
        assert np.array_equal(raw[keep], raw0[keep]), "bytes outside the output changed"


@each_backend
@QUICK
@given(case=forward_cases())
def test_fuzz_forward(backend, case):
    _check_forward(case)


@each_backend
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=forward_cases(large=True))
def test_fuzz_forward_large(backend, case):
    _check_forward(case)


@st.composite
def backward_cases(draw, large=False):
    gdt = np.dtype(draw(st.sampled_from(FLOATS + ["|i1", "<i8"])))
    xdt = np.dtype(draw(st.sampled_from(FLOATS + ["<u2"])))
    gl = draw(layouts(gdt.itemsize, large=large))
    xl = draw(layouts(xdt.itemsize, shape=gl[0], large=large))
    rdt = np.result_type(gdt.newbyteorder("="), xdt.newbyteorder("="))
    rdt = result_dtype(rdt)
    odt = rdt.newbyteorder(draw(st.sampled_from(["<", ">"])))
    ol = draw(layouts(odt.itemsize, shape=gl[0], large=large))
    mode = draw(
        st.sampled_from(
            ["new", "out_new", "out_overlap_g", "out_overlap_x", "out_is_g", "out_is_x"]
        )
    )
    is_result = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    pos = draw(st.floats(0, 1))
    src = {"out_overlap_g": (gdt, gl), "out_overlap_x": (xdt, xl)}.get(mode)
    if src is not None and src[0].itemsize == odt.itemsize and draw(st.booleans()):
        ol = src[1]  # that operand's layout, shifted (see above)
        odt = src[0] if src[0].kind == "f" and draw(st.booleans()) else odt
        pos = draw(st.sampled_from([-5, -2, -1, 1, 2, 5]))
    return gdt, xdt, gl, xl, rdt, odt, ol, mode, is_result, seed, pos


def _check_backward(case):
    gdt, xdt, gl, xl, rdt, odt, ol, mode, is_result, seed, pos = case
    rng = np.random.default_rng(seed)
    # g, then x, in one raw buffer with room for an overlapping out around each
    o_foot = ol[3]
    g_at = o_foot + 3
    x_at = g_at + gl[3] + o_foot + 5
    size = x_at + xl[3] + o_foot + 64
    raw = np.zeros(size, np.uint8)
    g = view(raw, gdt, gl, g_at)
    x = view(raw, xdt, xl, x_at)
    fill_random(g, rng)
    fill_random(x, rng)
    g0, x0 = g.copy(), x.copy()
    raw0 = raw.copy()
    out = None
    if mode == "out_new":
        out = view(np.zeros(o_foot + 16, np.uint8), odt, ol, 3)
    elif mode in ("out_overlap_g", "out_overlap_x"):
        at0, foot = (g_at, gl[3]) if mode == "out_overlap_g" else (x_at, xl[3])
        if isinstance(pos, int):
            at = min(max(0, at0 + pos * odt.itemsize), size - o_foot)
        else:
            lo, hi = max(0, at0 - o_foot + 1), min(size - o_foot, at0 + foot - 1)
            at = lo + int(pos * max(0, hi - lo)) if hi >= lo else 0
        out = view(raw, odt, ol, at)
    elif mode == "out_is_g":
        out = g if g.dtype.newbyteorder("=") == rdt else None
    elif mode == "out_is_x":
        out = x if x.dtype.newbyteorder("=") == rdt else None
    if out is None:
        r = fastselu.selu_backward(g, x, is_result=is_result)
    else:
        assert fastselu.selu_backward(g, x, is_result=is_result, out=out) is out
        r = out
    r = np.asarray(r).astype(rdt)

    kind = "backward_y" if is_result else "backward_x"
    ref = run_seam(REF, kind, [g0, x0], rdt)
    mine = run_seam(fastselu._backends.active, kind, [g0, x0], rdt)
    assert same_bits_or_nan(r, mine), "result depends on the layout"
    if r.size:
        d = ulp_distance(r, ref)
        assert d.max() <= 3, (
            f"{d.max()} ULP from the reference at g={g0.ravel()[d.argmax()]!r}, "
            f"x={x0.ravel()[d.argmax()]!r}"
        )
    if out is None or mode == "out_new":
        assert np.array_equal(raw, raw0), "an input was modified"
    else:
        keep = ~footprint_mask(size, out, raw.__array_interface__["data"][0])
        assert np.array_equal(raw[keep], raw0[keep]), "bytes outside the output changed"


@each_backend
@QUICK
@given(case=backward_cases())
def test_fuzz_backward(backend, case):
    _check_backward(case)


@each_backend
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=backward_cases(large=True))
def test_fuzz_backward_large(backend, case):
    _check_backward(case)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@LONG
@given(case=forward_cases())
def test_fuzz_forward_long(backend, case):
    _check_forward(case)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@LONG
@given(case=backward_cases())
def test_fuzz_backward_long(backend, case):
    _check_backward(case)


@each_backend
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_extreme_operand_grid(backend, dtype):
    """Every pair of extreme operands, both backward modes, against the reference.  (The fuzzing
    above found g = -DBL_MAX, y = -2.96e258 with is_result=True returning -inf for +inf in the
    compiled float64 kernel: the compensated product's parts overflowed with opposite signs.)"""
    fi = np.finfo(dtype)
    with np.errstate(all="ignore"):
        ops = np.array(
            [
                0.0,
                -0.0,
                np.inf,
                -np.inf,
                np.nan,
                fi.max,
                -fi.max,
                fi.max / 1.6,
                -fi.max / 1.6,
                fi.max / 2,
                -fi.max / 2,
                fi.tiny,
                -fi.tiny,
                fi.smallest_subnormal,
                -fi.smallest_subnormal,
                1.0,
                -1.0,
                2.0,
                -0.5,
                -1.7580993408473768,
                -1.7580993,
                -1.758099,
                -3.0,
                -20.0,
                -100.0,
                -800.0,
                -1e20,
                -2.96e258,
                1e20,
                2.96e258,
                -1e30,
                1e30,
            ],
            dtype=np.float64,
        ).astype(dtype)
    g, x = (a.ravel() for a in np.meshgrid(ops, ops, indexing="ij"))
    rdt = np.dtype(dtype)
    for kind, is_result in (("backward_x", False), ("backward_y", True)):
        got = fastselu.selu_backward(g, x, is_result=is_result)
        ref = run_seam(REF, kind, [g, x], rdt)
        d = ulp_distance(got, ref)
        bad = np.flatnonzero(d > 3)
        assert bad.size == 0, [(g[i], x[i], got[i], ref[i]) for i in bad[:5]]
        zero = ref == 0
        assert np.array_equal(np.signbit(got[zero]), np.signbit(ref[zero]))


@st.composite
def shifted_overlap_cases(draw):
    """1-D x and out in one buffer, out = x's layout shifted by a few elements (or reversed):
    the case where a kernel reading x after writing out would go wrong.  Contiguous, native and
    aligned most of the time, so that the flat kernel path is taken; any size up to a few nditer
    chunks."""
    dtype = np.dtype(draw(st.sampled_from(["<f4", "<f8", "<f4", "<f8", ">f4", "<f2"])))
    n = draw(
        st.one_of(
            st.integers(0, 40), st.integers(0, 70_000), st.sampled_from([65537, 131073, 262147])
        )
    )
    step = draw(st.sampled_from([1, 1, 1, 2, -1]))
    shift = draw(st.sampled_from([-7, -3, -1, 1, 2, 5, 17, "reversed"]))
    odt = dtype if draw(st.booleans()) else dtype.newbyteorder()
    misalign = draw(st.sampled_from([0, 0, 0, 1]))
    fn = draw(st.sampled_from(["selu", "backward_x_out_g", "backward_y_out_x"]))
    seed = draw(st.integers(0, 2**32 - 1))
    return dtype, n, step, shift, odt, misalign, fn, seed


@each_backend
@QUICK
@given(case=shifted_overlap_cases())
def test_fuzz_shifted_overlap(backend, case):
    dtype, n, step, shift, odt, misalign, fn, seed = case
    it = dtype.itemsize
    span = max(1, n * abs(step))
    pad = 32 * it
    raw = np.zeros(2 * pad + span * it + 2 * it, np.uint8)
    x_at = pad + misalign
    x = view(raw, dtype, ((n,), (step * it,), (span - 1) * it if step < 0 else 0, span * it), x_at)
    rng = np.random.default_rng(seed)
    fill_random(x, rng)
    if shift == "reversed":
        out = x[::-1].view(odt)
    else:
        out = np.ndarray(
            (n,),
            dtype=odt,
            buffer=raw,
            offset=x.__array_interface__["data"][0]
            - raw.__array_interface__["data"][0]
            + shift * it,
            strides=x.strides,
        )
    other = np.random.default_rng(seed + 1).standard_normal(n).astype(dtype)
    x0, other0 = x.copy(), other.copy()
    rdt = dtype.newbyteorder("=")
    if fn == "selu":
        assert fastselu.selu(x, out=out) is out
        kind, args = "forward", [x0]
    elif fn == "backward_x_out_g":  # grad_output is x's memory, x is `other`
        assert fastselu.selu_backward(x, other, out=out) is out
        kind, args = "backward_x", [x0, other0]
    else:  # y is x's memory
        assert fastselu.selu_backward(other, x, is_result=True, out=out) is out
        kind, args = "backward_y", [other0, x0]
    got = out.astype(rdt)
    mine = run_seam(fastselu._backends.active, kind, args, rdt)
    assert same_bits_or_nan(got, mine), "the result is not what it would be without overlap"
    ref = run_seam(REF, kind, args, rdt)
    if n:
        assert ulp_distance(got, ref).max() <= (1 if kind == "forward" else 3)
