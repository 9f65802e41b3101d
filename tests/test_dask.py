"""fastselu.dask: SELU over dask arrays (dtype/meta up front, results equal to the NumPy ones)."""

import os

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

import fastselu  # noqa: E402
import fastselu.dask as fd  # noqa: E402
from fastselu import _api  # noqa: E402
from util import PACKAGE_ROOT, same_floats  # noqa: E402


def _data(shape=(1000, 300), dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    if x.size >= 4 and np.issubdtype(x.dtype, np.floating):
        x.flat[:4] = [np.nan, -np.inf, np.inf, -0.0]
    return x


@pytest.fixture
def kernel_calls(monkeypatch):
    calls = []
    real = _api.selu

    def spy(x, out=None, *, inplace=False):
        calls.append(x.shape)
        return real(x, out, inplace=inplace)

    monkeypatch.setattr(_api, "selu", spy)
    return calls


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_selu_matches_numpy(dtype, scheduler):
    x = _data(dtype=dtype)
    dx = da.from_array(x, chunks=(256, 100))
    y = fd.selu(dx)
    assert isinstance(y, da.Array)
    assert y.dtype == dtype and y.shape == x.shape and y.chunks == dx.chunks
    assert type(y._meta) is np.ndarray and y._meta.dtype == dtype and y._meta.ndim == 2
    assert y.name.startswith("fastselu-selu")
    assert same_floats(y.compute(scheduler=scheduler), fastselu.selu(x))


@pytest.mark.parametrize(
    "dtype, expected",
    [
        (np.int32, np.float64),
        (np.uint8, np.float64),
        (np.bool_, np.float64),
        (np.int64, np.float64),
    ],
)
def test_integer_and_bool_give_float64(dtype, expected):
    x = np.arange(-50, 50).astype(dtype)
    y = fd.selu(da.from_array(x, chunks=30))
    assert y.dtype == expected and y._meta.dtype == expected
    assert same_floats(y.compute(scheduler="sync"), fastselu.selu(x))


@pytest.mark.parametrize(
    "dtype", [np.complex64, np.object_, np.str_, "datetime64[s]", np.longdouble]
)
def test_bad_dtype_raises_at_graph_construction(dtype, kernel_calls):
    x = da.from_array(np.zeros(5, dtype=dtype), chunks=2)
    with pytest.raises(TypeError, match="unsupported dtype"):
        fd.selu(x)
    with pytest.raises(TypeError, match="unsupported dtype"):
        fd.selu_backward(x, da.ones(5, chunks=2))
    with pytest.raises(TypeError, match="unsupported dtype"):
        fd.selu_backward(da.ones(5, chunks=2), x)
    assert not kernel_calls


def test_lazy_until_compute(kernel_calls):
    dx = da.from_array(_data(), chunks=(500, 300))
    y = fd.selu(dx)
    assert not kernel_calls  # building the graph runs nothing
    y.compute(scheduler="sync")
    assert sorted(kernel_calls) == [(500, 300), (500, 300)]


@pytest.mark.parametrize(
    "shape, chunks",
    [((), ()), ((0,), (5,)), ((0, 3), (1, 2)), ((7,), (3,)), ((4, 5, 6), (3, 2, 5))],
)
def test_shapes(shape, chunks):
    x = _data(shape, np.float64)
    dx = da.from_array(x, chunks=chunks)
    y = fd.selu(dx)
    assert y.shape == shape and y._meta.ndim == len(shape)
    r = y.compute(scheduler="sync")
    assert isinstance(r, np.ndarray) and r.shape == shape
    assert same_floats(r, np.asarray(fastselu.selu(x)))


def test_array_likes_are_wrapped():
    y = fd.selu(np.arange(-3.0, 3.0))
    assert isinstance(y, da.Array)
    assert same_floats(y.compute(scheduler="sync"), fastselu.selu(np.arange(-3.0, 3.0)))
    assert same_floats(fd.selu([1, -1]).compute(scheduler="sync"), fastselu.selu([1, -1]))


def test_non_numpy_blocks_rejected():
    masked = da.ma.masked_greater(da.arange(5.0, chunks=2), 2)
    with pytest.raises(TypeError, match="NumPy blocks"):
        fd.selu(masked)
    with pytest.raises(TypeError, match="masked"):
        fd.selu(np.ma.masked_array([1.0, 2.0], mask=[0, 1]))


def test_fastselu_selu_refuses_dask_arrays_pointing_here():
    with pytest.raises(TypeError, match="fastselu.dask"):
        fastselu.selu(da.ones(3))


@pytest.mark.parametrize("is_result", [False, True])
@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_selu_backward_matches_numpy(is_result, scheduler):
    x = _data(seed=1)
    g = _data(seed=2)
    xin = np.asarray(fastselu.selu(x)) if is_result else x
    # Different chunkings on purpose: they are unified.
    r = fd.selu_backward(
        da.from_array(g, chunks=(300, 70)),
        da.from_array(xin, chunks=(256, 100)),
        is_result=is_result,
    )
    assert r.dtype == np.float32 and r._meta.dtype == np.float32 and r.shape == x.shape
    expected = fastselu.selu_backward(g, xin, is_result=is_result)
    assert same_floats(r.compute(scheduler=scheduler), expected)


def test_selu_backward_dtype_promotion_and_shapes():
    g = da.ones((4, 3), dtype=np.float32, chunks=2)
    assert fd.selu_backward(g, da.ones((4, 3), dtype=np.int64, chunks=2)).dtype == np.float64
    assert fd.selu_backward(g, da.ones((4, 3), dtype=np.float16, chunks=2)).dtype == np.float32
    half = da.ones((4, 3), dtype=np.float16, chunks=2)
    r = fd.selu_backward(half, half)
    assert r.dtype == np.float16 and r._meta.dtype == np.float16
    with pytest.raises(ValueError, match="expected equal shapes"):
        fd.selu_backward(da.ones((4, 3)), da.ones((3, 4)))
    with pytest.raises(ValueError, match="expected equal shapes"):
        fd.selu_backward(da.ones(3), da.ones((1, 3)))  # no broadcasting


def test_unknown_chunks():
    x = da.from_array(np.arange(-10.0, 10.0), chunks=5)
    xs = x[x > -100]  # unknown (NaN) chunk sizes
    y = fd.selu(xs)
    assert same_floats(y.compute(scheduler="sync"), fastselu.selu(np.arange(-10.0, 10.0)))
    g = fd.selu_backward(xs, xs)
    assert g.dtype == np.float64


@pytest.mark.slow
def test_local_cluster_with_worker_processes():
    distributed = pytest.importorskip("distributed")
    saved_env = dict(os.environ)  # LocalCluster sets OMP_NUM_THREADS=1 etc. in *this* process
    try:
        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            files = client.run(lambda: __import__("fastselu").__file__)
            assert len(files) == 2
            for f in files.values():  # the workers run this very copy
                assert os.path.dirname(os.path.dirname(f)) == PACKAGE_ROOT
            # Workers start with OMP_NUM_THREADS=1: one fastselu thread per dask thread.
            assert set(client.run(lambda: __import__("fastselu").get_num_threads()).values()) == {1}

            # Data generated on the workers (no large graph); special values from here.
            specials = da.from_array(
                np.array([np.nan, -np.inf, np.inf, -0.0, 0.0, -1e-310, 1e300, -800.0])
            )
            base = da.concatenate(
                [da.random.default_rng(3).standard_normal(1_000_000, chunks=125_000) * 4, specials]
            )
            for dtype in (np.float32, np.float64, np.float16, np.int32):
                dx = base.astype(dtype)
                x, y = client.compute([dx, fd.selu(dx)], sync=True)
                assert same_floats(y, fastselu.selu(x))
            dx = base[-1_000_000:].reshape(1000, 1000, limit="8MiB")  # specials included
            dg = da.random.default_rng(5).standard_normal((1000, 1000), chunks=(300, 300))
            dy = fd.selu(dx)
            grad = fd.selu_backward(dg, dy, is_result=True)
            x, g, ys, gs = client.compute([dx, dg, dy, grad], sync=True)
            assert same_floats(ys, fastselu.selu(x))
            assert same_floats(gs, fastselu.selu_backward(g, fastselu.selu(x), is_result=True))
            # Blocks really ran in both worker processes (unpickling them imports fastselu.dask).
            ran = client.run(lambda: "fastselu.dask" in __import__("sys").modules)
            assert list(ran.values()) == [True, True]
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
