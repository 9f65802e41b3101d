"""SPEC "Dtypes, shapes, memory": dtype rules, layouts, out=, overlap, in-place views."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import fastselu
from fastselu._ulp import exact_selu, ulp_error
from test_numbers import bound
from util import LONGDOUBLE_IS_80BIT, same_floats

INT_TYPES = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
]


def kernel():
    return fastselu._backends.active


def reference(x):
    """The active backend's kernel on a contiguous native copy: every layout must match it bit
    for bit (accuracy itself is test_numbers' business)."""
    x = np.asarray(x)
    rdt = x.dtype.newbyteorder("=") if x.dtype.kind == "f" else np.dtype(np.float64)
    flat = np.array(x, dtype=rdt, order="C").reshape(-1)  # a fresh, aligned copy
    out = np.empty_like(flat)
    if rdt == np.float16:  # the 16-bit kernels take the bits
        kernel().forward(flat.view(np.uint16), out.view(np.uint16), 1, fmt="float16")
    else:
        kernel().forward(flat, out, 1)
    with np.errstate(over="ignore"):
        return out.astype(rdt).reshape(x.shape)


def values(n, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(n) * 3
    v[::7] = -v[::7] * 10
    return v.astype(dtype)


# ---- dtypes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_dtypes_keep_their_type(backend, dtype):
    x = values(100, dtype)
    y = fastselu.selu(x)
    assert y.dtype == dtype and y.shape == x.shape
    assert same_floats(y, reference(x))


@pytest.mark.parametrize("dtype", INT_TYPES)
def test_bool_and_integers_give_float64(backend, dtype):
    info = np.iinfo(dtype) if dtype is not np.bool_ else None
    if info is None:
        x = np.array([True, False, True])
    else:
        x = np.array([info.min, 0, 1, info.max, min(info.max, 5)], dtype=dtype)
        if info.min < 0:
            x = np.append(x, np.array([-1, -3], dtype=dtype))
    y = fastselu.selu(x)
    assert y.dtype == np.float64
    assert same_floats(y, reference(x.astype(np.float64)))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, ">f2", ">f4", ">f8"])
def test_inplace_on_float_dtypes(backend, dtype):
    x = values(1000, dtype)
    want = reference(x)
    assert fastselu.selu_(x) is x
    assert x.dtype == np.dtype(dtype)
    assert same_floats(x.astype(want.dtype), want)


# ---- shapes, scalars, layouts -----------------------------------------------------------------


@pytest.mark.parametrize(
    "x, scalar_type",
    [
        (1.5, np.float64),
        (-2, np.float64),
        (True, np.float64),
        (np.float32(-1.0), np.float32),
        (np.float16(-1.0), np.float16),
        (np.float64(-0.0), np.float64),
        (np.int8(-3), np.float64),
        (np.array(-1.0, dtype=np.float32), np.float32),
        (np.array(3.0, dtype=">f8"), np.float64),
    ],
)
def test_scalars_give_numpy_scalars(backend, x, scalar_type):
    y = fastselu.selu(x)
    assert type(y) is scalar_type
    assert same_floats(np.asarray(y), reference(np.asarray(x)))


def test_negative_zero_scalar(backend):
    assert np.signbit(fastselu.selu(-0.0)) and not np.signbit(fastselu.selu(0.0))


def test_lists_and_tuples(backend):
    y = fastselu.selu([[1, -1], [0.5, -2.0]])
    assert isinstance(y, np.ndarray) and y.dtype == np.float64 and y.shape == (2, 2)
    assert same_floats(y, reference(np.array([[1, -1], [0.5, -2.0]])))
    assert same_floats(fastselu.selu((1, 2, 3)), reference(np.array([1.0, 2, 3])))
    assert fastselu.selu([]).shape == (0,) and fastselu.selu([]).dtype == np.float64


@pytest.mark.parametrize("shape", [(0,), (3, 0, 2), (1,), (7,), (2, 3), (2, 3, 4, 5), (1, 1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_shapes(backend, shape, dtype):
    x = values(int(np.prod(shape)), dtype).reshape(shape)
    y = fastselu.selu(x)
    assert type(y) is np.ndarray and y.shape == shape and y.dtype == dtype
    assert same_floats(y, reference(x))


def _views(dtype):
    base = values(4 * 5 * 6, np.float64, seed=3).astype(dtype).reshape(4, 5, 6)
    return {
        "F-order": np.asfortranarray(base),
        "transposed": base.transpose(2, 0, 1),
        "strided": base[:, ::2, 1::3],
        "negative": base[::-1, :, ::-2],
        "reversed-1d": base.reshape(-1)[::-1],
        "column": base[:, 1, :].T,
        "broadcast": np.broadcast_to(base[0, 0], (3, 6)),
    }


@pytest.mark.parametrize("kind", list(_views(np.float64)))
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, ">f4", ">f8", np.int16])
def test_layouts_out_of_place(backend, kind, dtype):
    x = _views(dtype)[kind]
    y = fastselu.selu(x)
    rdt = np.float64 if np.dtype(dtype).kind == "i" else np.dtype(dtype).newbyteorder("=")
    assert y.dtype == rdt and y.dtype.isnative
    assert y.strides == np.empty_like(x, dtype=rdt).strides  # np.empty_like layout
    assert same_floats(y, reference(x))


def test_unaligned(backend):
    for dtype in (np.float32, np.float64):
        n = 1001
        raw = np.zeros(n * np.dtype(dtype).itemsize + 1, dtype=np.uint8)
        x = raw[1:].view(dtype)
        assert not x.flags.aligned
        x[...] = values(n, dtype)
        want = reference(x)
        assert same_floats(fastselu.selu(x), want)
        out_raw = np.zeros_like(raw)
        out = out_raw[1:].view(dtype)
        assert fastselu.selu(x, out=out) is out and same_floats(out, want)
        assert fastselu.selu_(x) is x and same_floats(x, want)


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">f2"])
def test_byteswapped_input_and_out(backend, dtype):
    x = values(5000, dtype)
    want = reference(x)
    y = fastselu.selu(x)
    assert y.dtype.isnative and same_floats(y, want)
    out = np.empty(x.shape, dtype=dtype)
    assert fastselu.selu(x.astype(want.dtype), out=out) is out
    assert same_floats(out.astype(want.dtype), want)


# ---- ndarray subclasses, foreign arrays --------------------------------------------------------


def test_memmap(backend, tmp_path):
    path = tmp_path / "x.dat"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(300,))
    mm[:] = values(300, np.float32)
    want = reference(np.array(mm))
    y = fastselu.selu(mm)
    assert type(y) is np.ndarray and same_floats(y, want)
    assert same_floats(np.array(mm), values(300, np.float32))  # input untouched
    out = np.memmap(tmp_path / "o.dat", dtype=np.float32, mode="w+", shape=(300,))
    assert fastselu.selu(mm, out=out) is out and same_floats(np.array(out), want)
    assert fastselu.selu_(mm) is mm
    mm.flush()
    assert same_floats(np.fromfile(path, dtype=np.float32), want)


def test_matrix_subclass_gives_plain_array(backend):
    with pytest.warns(PendingDeprecationWarning):
        m = np.matrix([[1.0, -1.0]])
    y = fastselu.selu(m)
    assert type(y) is np.ndarray and same_floats(y, reference(np.array([[1.0, -1.0]])))


# ---- in place, out= ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, ">f8"])
def test_inplace_noncontiguous_view_modifies_base(backend, dtype):
    base = values(6 * 8, dtype).reshape(6, 8)
    original = base.copy()
    view = base[1::2, ::-3]
    want = reference(view)
    assert fastselu.selu(view, inplace=True) is view
    assert same_floats(view, want.astype(dtype))
    mask = np.ones(base.shape, bool)
    mask[1::2, ::-3] = False
    assert same_floats(base[mask], original[mask])  # nothing else touched


def test_inplace_zero_dim_returns_same_array(backend):
    x = np.array(-1.0)
    assert fastselu.selu_(x) is x and x[()] == reference(np.array(-1.0))[()]
    x = np.array(-1.0, dtype=np.float32)
    assert fastselu.selu(x, inplace=True) is x and x.dtype == np.float32


def test_out_variants(backend):
    x = values(2 * 3 * 4).reshape(2, 3, 4)
    want = reference(x)
    out = np.empty_like(x)
    assert fastselu.selu(x, out=out) is out and same_floats(out, want)
    outf = np.empty(x.shape, order="F")
    assert fastselu.selu(x, out=outf) is outf and same_floats(outf, want)
    big = np.full((4, 6, 8), 7.0)
    view = big[::2, ::2, ::2]
    assert fastselu.selu(x, out=view) is view and same_floats(view, want)
    assert (big[1::2] == 7.0).all()
    x16 = x.astype(np.float16)
    out16 = np.empty(x.shape, np.float16)
    assert fastselu.selu(x16, out=out16) is out16 and same_floats(out16, reference(x16))
    xi = np.arange(-5, 5)
    outi = np.empty(10)
    assert fastselu.selu(xi, out=outi) is outi and same_floats(outi, reference(xi.astype(float)))
    zero = np.empty(())
    assert fastselu.selu(-1.0, out=zero) is zero and zero[()] == reference(np.array(-1.0))[()]


def test_out_is_x(backend):
    for dtype in (np.float32, np.float64, np.float16, ">f4"):
        x = values(3000, dtype)
        want = reference(x)
        assert fastselu.selu(x, out=x) is x and same_floats(x.astype(want.dtype), want)
    x = values(60).reshape(6, 10)[:, ::3]  # strided, out is the same view
    want = reference(x)
    assert fastselu.selu(x, out=x) is x and same_floats(x, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, ">f8"])
@pytest.mark.parametrize("case", ["out_ahead", "out_behind", "reversed", "reversed_shifted", "2d"])
def test_out_partially_overlapping_input(backend, dtype, case):
    n = 200_001 if dtype == np.float64 else 5001  # large enough to span several chunks
    a = values(n, dtype)
    if case == "out_ahead":
        x, out = a[:-1], a[1:]
    elif case == "out_behind":
        x, out = a[1:], a[:-1]
    elif case == "reversed":
        x, out = a, a[::-1]
    elif case == "reversed_shifted":
        x, out = a[:-3], a[::-1][:-3]
    else:
        m = a[: 100 * 40].reshape(100, 40)
        x, out = m[:-1, :-1], m[1:, 1:].T.T  # shifted diagonally
    want = reference(x.copy())
    assert fastselu.selu(x, out=out) is out
    assert same_floats(out.astype(want.dtype), want)


def test_backward_out_overlapping_grad(backend):
    a = values(100_001)
    x = values(100_000, seed=5)
    g, out = a[:-1], a[1:]
    want = fastselu.selu_backward(g.copy(), x)
    assert fastselu.selu_backward(g, x, out=out) is out and same_floats(out, want)


# ---- memory -------------------------------------------------------------------------------------


def _peak(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", ["strided", "byteswapped", "float16", "int32", "native"])
def test_scratch_memory_is_bounded(backend, kind):
    n = 2_000_000
    if kind == "strided":
        x = values(2 * n)[::2]
    elif kind == "byteswapped":
        x = values(n, ">f8")
    elif kind == "float16":
        x = values(n, np.float16)
    elif kind == "int32":
        x = np.arange(-n // 2, n // 2, dtype=np.int32)
    else:
        x = values(n)
    rdt = np.float16 if kind == "float16" else np.float64
    result_bytes = n * np.dtype(rdt).itemsize
    # The NumPy backend's own blocks (a few 64 Ki long-double arrays) are the largest scratch.
    limit = 8 << 20
    assert _peak(lambda: fastselu.selu(x)) < result_bytes + limit
    out = np.empty(x.shape, rdt)
    assert _peak(lambda: fastselu.selu(x, out=out)) < limit
    if kind != "int32":
        assert _peak(lambda: fastselu.selu_(x)) < limit
    if kind == "native" and backend != "numpy":
        assert _peak(lambda: fastselu.selu_(x)) < 64 << 10  # allocates nothing


# ---- property tests -----------------------------------------------------------------------------

DTYPES = [
    np.float16,
    np.float32,
    np.float64,
    ">f4",
    ">f8",
    "<f2",
    np.int8,
    np.uint16,
    np.int64,
    np.bool_,
]


@st.composite
def array_views(draw, dtypes=DTYPES):
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7))
    if dtype.kind == "f":
        elements = st.floats(
            width=8 * dtype.itemsize, allow_nan=True, allow_infinity=True, allow_subnormal=True
        )
    else:
        elements = None
    base = draw(hnp.arrays(dtype, shape, elements=elements))
    # Slice with random steps (negative too) and maybe transpose.
    index = tuple(slice(None, None, draw(st.sampled_from([1, 2, -1, -2]))) for _ in shape)
    view = base[index]
    if view.ndim > 1 and draw(st.booleans()):
        view = view.T
    return view


@given(x=array_views())
def test_property_forward_any_layout(backend, x):
    y = fastselu.selu(x)
    want = reference(x)
    if x.ndim == 0:
        assert isinstance(y, np.generic) and not isinstance(y, np.ndarray)
        y = np.asarray(y)
    assert same_floats(y, want)
    # float64's oracle is long double: exact enough only where it has 80 bits
    if want.dtype != np.float16 and (want.dtype != np.float64 or LONGDOUBLE_IS_80BIT):
        err = ulp_error(y, exact_selu(x.astype(want.dtype)), want.dtype)
        assert err.max(initial=0) <= bound(backend)


@given(x=array_views([np.float16, np.float32, np.float64, ">f4", ">f8"]), data=st.data())
def test_property_inplace_and_out(backend, x, data):
    want = reference(x)
    if x.ndim and x.size:
        # Write into a strided slot of a larger array: only that slot may change.
        big = np.full(tuple(2 * s for s in x.shape), 9.0, dtype=want.dtype)
        step = data.draw(st.sampled_from([2, -2]))
        slot = big[tuple(slice(None, None, step) for _ in x.shape)]
        assert fastselu.selu(x, out=slot) is slot
        assert same_floats(slot, want)
        assert (big == 9.0).sum() == big.size - slot.size + (slot == 9.0).sum()
    x = np.array(x, copy=True) if not x.flags.writeable else x
    assert fastselu.selu_(x) is x
    assert same_floats(np.asarray(x).astype(want.dtype), want)


@given(
    g=array_views([np.float32, np.float64, np.float16, np.int16]),
    data=st.data(),
    is_result=st.booleans(),
)
def test_property_backward(backend, g, data, is_result):
    xdt = data.draw(st.sampled_from([np.float32, np.float64, np.float16, ">f8", np.int8]))
    x = data.draw(hnp.arrays(xdt, g.shape))
    got = fastselu.selu_backward(g, x, is_result=is_result)
    rdt = np.result_type(g.dtype, x.dtype)
    rdt = np.dtype(np.float64) if rdt.kind in "biu" else rdt.newbyteorder("=")
    gc = np.array(g, dtype=rdt, order="C").reshape(-1)
    xc = np.array(x, dtype=rdt, order="C").reshape(-1)
    ref = np.empty_like(gc)
    fn = kernel().backward_y if is_result else kernel().backward_x
    if rdt == np.float16:  # the 16-bit kernels take the bits
        fn(gc.view(np.uint16), xc.view(np.uint16), ref.view(np.uint16), 1, fmt="float16")
    else:
        fn(gc, xc, ref, 1)
    ref = ref.reshape(g.shape)
    assert same_floats(np.asarray(got), ref)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_zero_dim_arrays_match_one_element(dtype):
    """0-d inputs give the one-element result (NumPy 1.x's buffered nditer once lost 0-d float16
    results: found running the suite with NumPy 1.25)."""
    for v in (1.0488, -0.75, 0.0):
        x1 = np.array([v], dtype)
        assert fastselu.selu(np.array(dtype(v))) == fastselu.selu(x1)[0]
        assert fastselu.selu(np.array(v, dtype)) == fastselu.selu(x1)[0]
        g = np.array(dtype(0.5))
        assert (
            fastselu.selu_backward(g, np.array(dtype(v)))
            == fastselu.selu_backward(np.array([0.5], dtype), x1)[0]
        )
