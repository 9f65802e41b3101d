"""fastselu.dask AlphaDropout: bit-for-bit the in-memory call on the whole array, any chunking."""

import os

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

import fastselu as fs  # noqa: E402
import fastselu.dask as fd  # noqa: E402
from util import PACKAGE_ROOT, same_floats  # noqa: E402

CHUNKINGS = [(600, 300), (256, 100), (7, 300), (600, 13), (91, 37), ((100, 500), (1, 2, 297))]


def _data(shape=(600, 300), dtype=np.float32):
    x = (np.random.default_rng(0).standard_normal(shape) * 3).astype(dtype)
    x.flat[:4] = [np.nan, -np.inf, np.inf, -0.0]
    return x


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("feature", [False, True])
def test_forward_matches_in_memory(chunks, feature):
    x = _data()
    dx = da.from_array(x, chunks=chunks)
    for dfn, fn in (
        (fd.alpha_dropout, fs.alpha_dropout),
        (fd.selu_alpha_dropout, fs.selu_alpha_dropout),
    ):
        y = dfn(dx, 0.3, seed=1234, feature=feature)
        assert y.dtype == np.float32 and y.chunks == dx.chunks
        assert same_floats(y.compute(scheduler="sync"), fn(x, 0.3, seed=1234, feature=feature))


@pytest.mark.parametrize("chunks", [(2, 3, 5), (4, 1, 7), (3, 6, 2)])
def test_3d_blocks(chunks):
    x = _data((4, 6, 7), np.float64)
    dx = da.from_array(x, chunks=chunks)
    for feature in (False, True):
        y = fd.selu_alpha_dropout(dx, 0.5, seed=9, feature=feature).compute(scheduler="threads")
        assert same_floats(y, fs.selu_alpha_dropout(x, 0.5, seed=9, feature=feature))


@pytest.mark.parametrize("is_result", [False, True])
def test_backward_matches_in_memory(is_result):
    x = _data()
    g = _data()[::-1].copy()
    z = fs.selu_alpha_dropout(x, 0.2, seed=5)
    xin = z if is_result else x
    dg = da.from_array(g, chunks=(100, 77))
    dx = da.from_array(xin, chunks=(64, 300))  # different chunkings are unified
    r = fd.selu_alpha_dropout_backward(dg, dx, 0.2, seed=5, is_result=is_result)
    assert same_floats(
        r.compute(scheduler="sync"),
        fs.selu_alpha_dropout_backward(g, xin, 0.2, seed=5, is_result=is_result),
    )
    r = fd.alpha_dropout_backward(dg, 0.2, seed=5)
    assert same_floats(r.compute(scheduler="sync"), fs.alpha_dropout_backward(g, 0.2, seed=5))


@pytest.mark.parametrize("fmt", ["float16", "bfloat16"])
def test_half_formats_match_in_memory(fmt):
    """float16/bfloat16 blocks (2-D, not one run of flat indices) give the in-memory bits."""
    dt = np.float16 if fmt == "float16" else pytest.importorskip("ml_dtypes").bfloat16
    x = _data(dtype=dt)
    g = _data()[::-1].astype(dt)
    dx, dg = da.from_array(x, chunks=(91, 37)), da.from_array(g, chunks=(64, 300))
    for got, want in (
        (fd.selu_alpha_dropout(dx, 0.3, seed=7), fs.selu_alpha_dropout(x, 0.3, seed=7)),
        (fd.alpha_dropout(dx, 0.3, seed=7), fs.alpha_dropout(x, 0.3, seed=7)),
        (
            fd.selu_alpha_dropout_backward(dg, dx, 0.3, seed=7),
            fs.selu_alpha_dropout_backward(g, x, 0.3, seed=7),
        ),
    ):
        r = got.compute(scheduler="sync")
        assert r.dtype == dt and np.array_equal(r.view(np.uint16), want.view(np.uint16))


def test_seed_drawn_once_at_graph_build():
    x = _data((50, 40))
    dx = da.from_array(x, chunks=(10, 10))
    y = fd.alpha_dropout(dx, 0.5, seed=np.random.default_rng(3))
    s = int(np.random.default_rng(3).integers(0, 2**64, dtype=np.uint64))
    a, b = y.compute(scheduler="sync"), y.compute(scheduler="threads")
    assert same_floats(a, b) and same_floats(a, fs.alpha_dropout(x, 0.5, seed=s))
    y = fd.alpha_dropout(dx, 0.5, seed=None)
    assert same_floats(y.compute(scheduler="sync"), y.compute(scheduler="sync"))


def test_identity_and_errors_at_graph_build():
    x = _data((20, 10))
    dx = da.from_array(x, chunks=5)
    assert same_floats(fd.selu_alpha_dropout(dx, 0.5, seed=1, training=False).compute(), fs.selu(x))
    with pytest.raises(ValueError):
        fd.alpha_dropout(dx, 1.5, seed=1)
    with pytest.raises(TypeError):
        fd.alpha_dropout(dx, 0.5, seed="x")
    with pytest.raises(ValueError, match="2 dimensions"):
        fd.alpha_dropout(da.from_array(x.ravel(), chunks=7), 0.5, seed=1, feature=True)
    with pytest.raises(TypeError):
        fd.alpha_dropout(da.from_array(x.astype(complex)), 0.5, seed=1)
    unknown = da.from_array(x, chunks=5)
    unknown = unknown[unknown[:, 0] > -100]
    with pytest.raises(ValueError, match="chunk sizes"):
        fd.alpha_dropout(unknown, 0.5, seed=1)


@pytest.mark.slow
def test_local_cluster_with_worker_processes():
    distributed = pytest.importorskip("distributed")
    saved_env = dict(os.environ)  # LocalCluster sets OMP_NUM_THREADS=1 etc. in this process
    x = _data((2000, 300), np.float64)
    try:
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            with distributed.Client(cluster) as client:
                client.run(lambda: __import__("sys").path.insert(0, PACKAGE_ROOT))
                dx = da.from_array(x, chunks=(333, 71))
                y = fd.selu_alpha_dropout(dx, 0.1, seed=42).compute()
                g = fd.selu_alpha_dropout_backward(da.ones_like(dx), dx, 0.1, seed=42).compute()
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    assert same_floats(y, fs.selu_alpha_dropout(x, 0.1, seed=42))
    assert same_floats(g, fs.selu_alpha_dropout_backward(np.ones_like(x), x, 0.1, seed=42))
