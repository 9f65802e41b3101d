"""Hardening: hostile input to every public function, never a crash.

tests/test_errors.py already covers unsupported dtypes given as arrays (complex, object, strings,
datetime, long double, a structured float field), foreign array types (masked, dask-like,
torch-like), and the out=/inplace rules.  Here: Python objects that NumPy turns into object or
string arrays or refuses (None, ragged and self-referential lists, huge ints, arbitrary objects),
buffer-protocol objects (memoryview, array.array), ndarray subclasses (np.matrix) in every
argument position, void and record dtypes and scalars, objects with a hostile ``__array__``,
``out`` arrays that overlap themselves, arguments of the configuration functions, and the
backend seam's own argument checks.  Every call ends in a clean TypeError or ValueError (or, for
a user's own exception raised inside ``__array__``, that exception), and leaves every array it was
given unchanged.
"""

import array
import decimal
import fractions
import warnings

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import fastselu
from fastselu import _config
from util import same_floats

selu, selu_, selu_backward = fastselu.selu, fastselu.selu_, fastselu.selu_backward


class RaisingArray:
    """__array__ raises the user's own exception: it must propagate unchanged."""

    class Boom(Exception):
        pass

    def __array__(self, dtype=None, copy=None):
        raise RaisingArray.Boom("boom")


class ArrayReturnsList:
    def __array__(self, dtype=None, copy=None):
        return [1.0, 2.0]  # not an ndarray: NumPy refuses it


def _self_referential():
    a = []
    a.append(a)
    return a


def _record():
    return np.zeros(3, dtype=[("a", "f4"), ("b", "i4")])


# name -> (factory, expected exception, text that must appear in the message or None)
HOSTILE = {
    "None": (lambda: None, TypeError, "object"),
    "str": (lambda: "1.5", TypeError, "<U3"),
    "bytes": (lambda: b"1.5", TypeError, "|S3"),
    "ragged": (lambda: [[1.0, 2.0], [3.0]], ValueError, None),
    "ragged_deep": (lambda: [[1.0], [[2.0]]], ValueError, None),
    "self_referential_list": (_self_referential, ValueError, None),
    "int_10**400": (lambda: 10**400, TypeError, "object"),
    "int_2**64": (lambda: 2**64, TypeError, "object"),
    "int_-2**63-1": (lambda: -(2**63) - 1, TypeError, "object"),
    "list_of_huge_ints": (lambda: [1, 2**70], TypeError, "object"),
    "object": (lambda: object(), TypeError, "object"),
    "dict": (lambda: {"a": 1.0}, TypeError, "object"),
    "set": (lambda: {1.0}, TypeError, "object"),
    "generator": (lambda: (float(i) for i in range(3)), TypeError, "object"),
    "Fraction": (lambda: fractions.Fraction(1, 3), TypeError, "object"),
    "Decimal": (lambda: decimal.Decimal("1.5"), TypeError, "object"),
    "None_in_list": (lambda: [1.0, None], TypeError, "object"),
    "object_array_of_floats": (lambda: np.array([1.0, -1.0], dtype=object), TypeError, "object"),
    "Ellipsis": (lambda: Ellipsis, TypeError, "object"),
    "type": (lambda: float, TypeError, "object"),
    "slice": (lambda: slice(1, 2), TypeError, "object"),
    "void_array": (lambda: np.zeros(3, "V8"), TypeError, "V8"),
    "void_scalar": (lambda: np.void(b"\x00" * 8), TypeError, "V8"),
    "record_array": (_record, TypeError, "float16, float32 or float64"),
    "record_scalar": (lambda: _record()[0], TypeError, "float16, float32 or float64"),
    "recarray": (lambda: _record().view(np.recarray), TypeError, "float16, float32 or float64"),
    "empty_struct": (lambda: np.zeros(3, dtype=[]), TypeError, "float16, float32 or float64"),
    "complex_scalar": (lambda: np.complex64(1), TypeError, "complex64"),
    "str_scalar": (lambda: np.str_("1.0"), TypeError, "<U3"),
    "datetime_scalar": (lambda: np.datetime64("2020-01-01"), TypeError, "datetime64"),
    "__array__returns_list": (lambda: ArrayReturnsList(), ValueError, None),
    "__array__raises": (lambda: RaisingArray(), RaisingArray.Boom, "boom"),
}


def _forms(value):
    """Every public entry point with `value` in each array argument position."""
    ok = np.linspace(-2, 2, 3)
    return {
        "selu": lambda: selu(value),
        "SELU()": lambda: fastselu.SELU()(value),
        "SELU().forward": lambda: fastselu.SELU().forward(value),
        "selu_backward(g=value)": lambda: selu_backward(value, ok),
        "selu_backward(x=value)": lambda: selu_backward(ok, value),
        "selu_backward(y=value)": lambda: selu_backward(ok, value, is_result=True),
        "selu_backward(both)": lambda: selu_backward(value, value),
    }


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_values_raise_cleanly(backend, name):
    factory, exc, text = HOSTILE[name]
    for form, call in _forms(factory()).items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no stray warnings either (e.g. ragged lists)
            with pytest.raises(exc) as info:
                call()
        if text is not None:
            assert text in str(info.value), (form, str(info.value))


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_values_in_place_and_as_out(backend, name):
    """selu_/inplace=True/SELU(inplace=True) need an ndarray; `out` must be an ndarray.
    A refused `out` leaves the input unchanged (and vice versa)."""
    factory, _, _ = HOSTILE[name]
    value = factory()
    expected = (TypeError, ValueError)
    for call in (
        lambda: selu_(value),
        lambda: selu(value, inplace=True),
        lambda: fastselu.SELU(inplace=True)(value),
    ):
        with pytest.raises(expected):
            call()
    if value is None:
        return  # out=None is the default: no out
    x = np.linspace(-2, 2, 3)
    g = np.ones(3)
    for call in (
        lambda: selu(x, out=value),
        lambda: selu_backward(g, x, out=value),
        lambda: selu_backward(g, x, is_result=True, out=value),
    ):
        with pytest.raises(expected):
            call()
        assert np.array_equal(x, np.linspace(-2, 2, 3)) and np.array_equal(g, np.ones(3))


def test_memoryviews_and_buffers(backend):
    """Buffer-protocol objects are read through numpy.asarray like lists; they are not ndarrays,
    so in place / out= on them is a TypeError, and a read-only buffer is never written."""
    base = np.linspace(-3, 3, 7)
    want = selu(base)
    for buf in (
        memoryview(base),
        memoryview(base).toreadonly(),
        array.array("d", base),
        memoryview(bytes(base.tobytes())).cast("d"),
        bytearray(base.tobytes()),
    ):
        if isinstance(buf, bytearray):  # raw bytes: uint8 values, float64 result
            r = selu(buf)
            assert r.dtype == np.float64 and r.shape == (56,)
            assert same_floats(r, selu(np.frombuffer(bytes(buf), np.uint8)))
        else:
            assert same_floats(selu(buf), want)
            assert same_floats(selu_backward(buf, buf), selu_backward(base, base))
        with pytest.raises(TypeError, match="ndarray"):
            selu_(buf)
        with pytest.raises(TypeError, match="ndarray"):
            selu(np.zeros(len(base)), out=buf)
    assert np.array_equal(base, np.linspace(-3, 3, 7))
    # a memoryview of a non-float format: integers give float64
    assert selu(memoryview(array.array("i", [-1, 0, 1]))).dtype == np.float64


def test_matrix_in_every_position(backend):
    with pytest.warns(PendingDeprecationWarning):
        m = np.matrix([[1.0, -1.0, 0.5]])
        g = np.matrix([[2.0, 2.0, 2.0]])
    plain, gplain = np.asarray(m).copy(), np.asarray(g).copy()
    for r, want in (
        (selu_backward(g, m), selu_backward(gplain, plain)),
        (selu_backward(gplain, m, is_result=True), selu_backward(gplain, plain, is_result=True)),
        (fastselu.SELU()(m), selu(plain)),
    ):
        assert type(r) is np.ndarray and same_floats(r, want)
    out = np.matrix(np.zeros((1, 3)))
    assert selu(plain, out=out) is out and same_floats(np.asarray(out), selu(plain))
    mm = m.copy()
    assert selu_(mm) is mm and type(mm) is np.matrix and same_floats(np.asarray(mm), selu(plain))
    assert np.array_equal(np.asarray(m), plain)


def test_ndarray_subclass_with_hostile_methods(backend):
    """An ndarray subclass overriding __array_wrap__/__array_finalize__/__getitem__ and
    __array_function__ is still an ndarray: accepted, computed on its data, plain result."""

    class Weird(np.ndarray):
        def __array_finalize__(self, obj):
            self.tag = "weird"

        def __array_wrap__(self, *args, **kwargs):
            raise AssertionError("__array_wrap__ must not be needed")

        def __getitem__(self, item):
            raise AssertionError("__getitem__ must not be called")

        def __array_function__(self, func, types, args, kwargs):
            return NotImplemented

    base = np.linspace(-2, 2, 100_001)
    w = base.copy().view(Weird)
    r = selu(w)
    assert type(r) is np.ndarray and same_floats(r, selu(base))
    r = selu_backward(w, w)
    assert type(r) is np.ndarray and same_floats(r, selu_backward(base, base))
    assert selu_(w) is w and same_floats(np.asarray(w), selu(base))


# ---- out arrays that overlap themselves ------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, ">f8"])
@pytest.mark.parametrize("n", [10, 300_000])
def test_out_with_internal_overlap(backend, dtype, n):
    """`out` (or the array given with inplace=True) whose elements share memory, e.g. a
    writeable zero-stride view from as_strided.  NumPy ufuncs give the result as without overlap
    (each location holds the last value written to it); fastselu must either do the same or
    refuse with a ValueError that says what is wrong -- never a misleading message about
    contiguity, a TypeError from the backend's dispatcher, or silently wrong numbers."""
    want = selu(np.array([-1.0], dtype))[0]

    def zero_stride(value):
        a = np.array([value, 7.0], dtype)
        return a, as_strided(a, (n,), (0,))

    cases = {
        "inplace": lambda a, v: selu_(v),
        "out=x": lambda a, v: selu(v, out=v),
        "out is a separate zero-stride view": lambda a, v: selu(np.full(n, -1.0, dtype), out=v),
        "backward out": lambda a, v: selu_backward(
            np.ones(n, dtype), np.full(n, -1.0, dtype), out=v
        ),
    }
    for name, call in cases.items():
        a, v = zero_stride(-1.0)
        try:
            call(a, v)
        except ValueError as exc:
            assert "overlap" in str(exc), f"{name}: unclear message: {exc}"
            assert a[0] == -1.0 and a[1] == 7.0, f"{name}: modified although refused"
            continue
        expected = want
        if name == "backward out":
            expected = selu_backward(np.ones(1, dtype), np.full(1, -1.0, dtype))[0]
        assert a[0] == expected, f"{name}: got {a[0]!r}, expected {expected!r}"
        assert a[1] == 7.0, f"{name}: wrote outside the view"


# ---- flags and settings -------------------------------------------------------------------------


def test_flag_arguments_with_odd_values(backend):
    """`inplace` and `is_result` follow Python truthiness; a value without a truth value (an
    array of several elements) gives ValueError before anything is written."""
    x = np.linspace(-1, 1, 5)
    x0 = x.copy()
    with pytest.raises(ValueError):
        selu(x, inplace=np.array([True, False]))
    with pytest.raises(ValueError):
        selu_backward(x, x, is_result=np.array([True, False]))
    assert np.array_equal(x, x0)
    assert same_floats(selu(x.copy(), inplace=np.True_), selu(x))
    assert same_floats(selu_backward(x, x, is_result=np.int8(0)), selu_backward(x, x))


def test_positional_and_unknown_arguments(backend):
    x = np.linspace(-1, 1, 5)
    with pytest.raises(TypeError):
        selu(x, None, True)  # inplace is keyword-only
    with pytest.raises(TypeError):
        selu(x, inplce=True)
    with pytest.raises(TypeError):
        selu_backward(x, x, True)  # is_result is keyword-only
    with pytest.raises(TypeError):
        selu_backward(x)
    with pytest.raises(TypeError):
        selu()
    with pytest.raises(TypeError):
        selu_(x, x)
    with pytest.raises(TypeError):
        fastselu.SELU()(x, x)


class Index:
    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


@pytest.mark.parametrize("n", [2**31, 2**63, 10**30])
def test_set_num_threads_huge_counts(restore_threads, n):
    """A thread count beyond what a C int holds: refused with ValueError at once, or accepted and
    every later call still right.  Accepting it and then failing every large call with
    OverflowError (the compiled backend converts it to a C int) is the bug this guards."""
    x = np.linspace(-4, 4, 200_003, dtype=np.float32)
    want = selu(x)
    for value in (n, Index(n), np.uint64(n) if n < 2**64 else n):
        try:
            fastselu.set_num_threads(value)
        except ValueError:
            continue
        for be in fastselu.available_backends():
            previous = fastselu.get_backend()
            fastselu.set_backend(be)
            try:
                for got, expected in (
                    (selu(x), want),
                    (selu(x[::2]), want[::2]),
                    (selu_backward(x, x), None),
                ):
                    if expected is not None:
                        assert np.allclose(got, expected, rtol=1e-6, atol=0)
            finally:
                fastselu.set_backend(previous)


def test_set_num_threads_hostile_index(restore_threads):
    class BadIndex:
        def __index__(self):
            raise RuntimeError("nope")

    before = fastselu.get_num_threads()
    with pytest.raises(RuntimeError, match="nope"):
        fastselu.set_num_threads(BadIndex())
    assert fastselu.get_num_threads() == before
    fastselu.set_num_threads(Index(3))
    assert fastselu.get_num_threads() == 3
    with pytest.raises(ValueError):
        fastselu.set_num_threads(Index(0))
    with pytest.raises(TypeError):
        fastselu.set_num_threads(3.0)


def test_threadpool_limit_hook_odd_values(restore_threads):
    fastselu.set_num_threads(4)
    for limit, expected in ((0, 1), (-5, 1), (10**30, 4), (2.9, 2), (None, 4)):
        _config.set_threadpool_limit(limit)
        assert fastselu.get_num_threads() == expected
        assert selu(np.zeros(100_000)).sum() == 0


@pytest.mark.parametrize("value", [b"cython", "cython ", "CYTHON", ["cython"], 1.5, object()])
def test_set_backend_odd_names(value):
    before = fastselu.get_backend()
    with pytest.raises(ValueError, match="valid names"):
        fastselu.set_backend(value)
    assert fastselu.get_backend() == before


# ---- the backend seam -----------------------------------------------------------------------


@pytest.mark.skipif("cython" not in fastselu.available_backends(), reason="no compiled backend")
def test_compiled_seam_refuses_what_it_cannot_handle():
    """The compiled kernels check their own arguments ("a wrong call never touches memory it
    should not", _kernels.pyx): wrong dtypes, lengths, layouts, byte order, read-only out,
    non-arrays and misaligned buffers all raise instead of reading or writing out of bounds.
    (The misaligned case is what UBSan flags: a float load from an odd address.)"""
    K = fastselu._backends.load("cython")
    x = np.linspace(-1, 1, 1001)
    out = np.empty_like(x)
    ro = np.empty_like(x)
    ro.flags.writeable = False
    raw = np.zeros(1001 * 8 + 1, np.uint8)
    unaligned = raw[1:].view(np.float64)
    bad = {
        "length": (x, out[:-1]),
        "dtype mix": (x, out.astype(np.float32)),
        "int": (x.astype(np.int64), out.astype(np.int64)),
        "strided": (x[::2], out[::2]),
        "byteswapped": (x.astype(">f8"), out),
        "read-only out": (x, ro),
        "unaligned x": (unaligned, out),
        "unaligned out": (x, unaligned),
    }
    accepted = []
    for name, (a, o) in bad.items():
        o0 = o.copy()
        for kernel, args in (
            (K.forward, (a, o, 1)),
            (K.backward_x, (a, a, o, 2)),
            (K.backward_y, (a, a, o, 1)),
        ):
            try:
                kernel(*args)
            except (TypeError, ValueError):
                continue
            accepted.append(f"{kernel.__name__}: {name}")
        if "unaligned" not in name:
            assert np.array_equal(o, o0, equal_nan=True), name
    assert not accepted, f"the compiled seam accepted: {accepted}"
    for args in (
        (None, out, 1),
        (x, None, 1),
        ([1.0], out, 1),
        (x, out, 0),
        (x, out, -1),
        (x, out, 2**31),
        (x, out, "2"),
    ):
        with pytest.raises((TypeError, ValueError, OverflowError)):
            K.forward(*args)
