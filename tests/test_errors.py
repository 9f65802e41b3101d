"""Every error rule: the exception type, a helpful message, and no array modified; no warnings."""

import warnings

import numpy as np
import pytest

import fastselu

selu, selu_, selu_backward = fastselu.selu, fastselu.selu_, fastselu.selu_backward


class DaskLike:
    """Not an ndarray, but takes part in NumPy's __array_function__ protocol (like dask)."""

    def __array_function__(self, func, types, args, kwargs):
        return NotImplemented

    def __array__(self, dtype=None, copy=None):
        return np.zeros(3)


class FakeTensor:
    __module__ = "torch"

    def __array__(self, dtype=None, copy=None):
        return np.zeros(3)


@pytest.mark.parametrize(
    "value, dtype_name",
    [
        (np.array([1 + 2j]), "complex128"),
        (np.array([1 + 2j], dtype=np.complex64), "complex64"),
        (np.array([1.0], dtype=object), "object"),
        (np.array(["a"]), "<U1"),
        (np.array([b"a"]), "|S1"),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), "datetime64[D]"),
        (np.array([1], dtype="timedelta64[s]"), "timedelta64[s]"),
        (np.array([1.0], dtype=np.longdouble), str(np.dtype(np.longdouble))),
        (np.zeros(2, dtype=[("a", "f8")]), "[('a', '<f8')]"),
        ([1j, 2], "complex128"),
        (["x"], "<U1"),
    ],
)
def test_unsupported_dtypes_raise_naming_the_dtype(backend, value, dtype_name):
    with pytest.raises(TypeError, match="float16, float32 or float64") as info:
        selu(value)
    assert dtype_name in str(info.value)
    with pytest.raises(TypeError, match="float16, float32 or float64"):
        selu_backward(np.ones(np.shape(value)), value)
    with pytest.raises(TypeError, match="grad_output"):
        selu_backward(value, np.ones(np.shape(value)))


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.int64, np.uint64])
def test_inplace_on_integers_raises_and_keeps_data(dtype):
    x = np.array([0, 1, 1], dtype=dtype)
    before = x.copy()
    with pytest.raises(TypeError, match="float64"):
        selu(x, inplace=True)
    with pytest.raises(TypeError):
        selu_(x)
    assert np.array_equal(x, before) and x.dtype == dtype


def test_inplace_errors():
    with pytest.raises(TypeError, match="ndarray"):
        selu_([1.0, 2.0])
    with pytest.raises(TypeError, match="ndarray"):
        selu_(np.float64(1.0))
    with pytest.raises(TypeError, match="ndarray"):
        selu(3.0, inplace=True)
    x = np.array([-1.0, 1.0])
    x.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        selu_(x)
    assert np.array_equal(x, [-1.0, 1.0])
    y = np.array([-1.0, 1.0])
    with pytest.raises(ValueError, match="out"):
        selu(y, out=np.empty(2), inplace=True)
    assert np.array_equal(y, [-1.0, 1.0])


def test_out_errors_leave_everything_unchanged(backend):
    x = np.array([-1.0, 0.5, 2.0])
    x0 = x.copy()
    cases = [
        (np.full(4, 7.0), ValueError, "shape"),
        (np.full((3, 1), 7.0), ValueError, "shape"),
        (np.full((1, 3), 7.0), ValueError, "broadcast"),
        (np.full(3, 7, dtype=np.float32), TypeError, "float64"),
        (np.full(3, 7, dtype=np.int64), TypeError, "dtype"),
        (np.full(3, 7, dtype=np.complex128), TypeError, "dtype"),
    ]
    for out, exc, msg in cases:
        out0 = out.copy()
        with pytest.raises(exc, match=msg):
            selu(x, out=out)
        assert np.array_equal(out, out0) and np.array_equal(x, x0)
    ro = np.full(3, 7.0)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        selu(x, out=ro)
    assert np.array_equal(ro, np.full(3, 7.0))
    for bad in ([0.0, 0.0, 0.0], (0.0,) * 3, 5.0):
        with pytest.raises(TypeError, match="ndarray"):
            selu(x, out=bad)
    with pytest.raises(TypeError, match="ndarray"):
        selu(x, out=np.ma.masked_array(np.zeros(3)))
    # out of the result dtype, in the other byte order, is fine (and float32 input -> float32)
    out = np.empty(3, ">f8")
    assert selu(x, out=out) is out
    with pytest.raises(TypeError, match="float32"):
        selu(x.astype(np.float32), out=np.empty(3))
    with pytest.raises(TypeError, match="float64"):
        selu(np.arange(3), out=np.empty(3, np.float32))  # integers give float64


def test_backward_errors_leave_everything_unchanged(backend):
    g = np.array([1.0, 2.0, 3.0])
    x = np.array([-1.0, 0.0, 1.0])
    g0, x0 = g.copy(), x.copy()
    with pytest.raises(ValueError, match="shape"):
        selu_backward(g, x[:2])
    with pytest.raises(ValueError, match="shape"):
        selu_backward(g[:, None], x)  # no broadcasting
    with pytest.raises(ValueError, match="shape"):
        selu_backward(g, x, out=np.empty(2))
    with pytest.raises(TypeError, match="float64"):
        selu_backward(g, x, out=np.empty(3, np.float32))
    with pytest.raises(TypeError, match="float64"):
        selu_backward(g.astype(np.float32), x, out=g.astype(np.float32))  # promotes to float64
    with pytest.raises(TypeError, match="ndarray"):
        selu_backward(g, x, out=[0.0] * 3)
    ro = x.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        selu_backward(g, ro, out=ro)
    with pytest.raises(TypeError, match="inplace"):
        selu_backward(g, x, inplace=True)
    assert np.array_equal(g, g0) and np.array_equal(x, x0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.ma.masked_array([1.0, -1.0], mask=[0, 1]),
        lambda: DaskLike(),
        lambda: FakeTensor(),
    ],
)
def test_foreign_arrays_are_refused(backend, make):
    obj = make()
    for call in (
        lambda: selu(obj),
        lambda: selu_(obj),
        lambda: selu(obj, inplace=True),
        lambda: selu_backward(obj, np.zeros(3)),
        lambda: selu_backward(np.zeros(3), obj),
        lambda: fastselu.SELU()(obj),
    ):
        with pytest.raises(TypeError, match=r"fastselu\.(dask|torch)"):
            call()
    if isinstance(obj, np.ma.MaskedArray):
        assert np.array_equal(obj.data, [1.0, -1.0])


def test_dask_like_message_points_to_fastselu_dask():
    with pytest.raises(TypeError, match=r"fastselu\.dask"):
        selu(DaskLike())


def test_torch_like_message_points_to_fastselu_torch():
    with pytest.raises(TypeError, match=r"fastselu\.torch"):
        selu(FakeTensor())


def test_no_floating_point_warnings(backend):
    before = np.geterr()
    big = np.finfo(np.float32).max
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            specials = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e308, -1e308, 5e-324, -745.0, 800.0]
            for dtype in (np.float64, np.float32, np.float16, ">f4", ">f8"):
                with np.errstate(all="ignore"):
                    x = np.array(specials * 3, dtype=dtype)
                for view in (x, x[::2], x[::-1]):
                    selu(view)
                    selu_backward(view, view)
                    selu_backward(view, view, is_result=True)
                    selu_backward(np.full(view.shape, np.inf, view.dtype), view)
                selu_(x.copy())
            selu(np.array([big, -big], dtype=np.float32))
            # overflows float16 on the way back
            selu(np.array([65504.0, 60000.0], dtype=np.float16))
            selu(np.array([65504.0], dtype=np.float16)[::-1])
            selu(np.iinfo(np.int64).max)
            selu(np.array([2**64 - 1], dtype=np.uint64))
    assert np.geterr() == before
