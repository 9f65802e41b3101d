"""fastselu over ``dask.array``: SELU and its gradient block by block (``map_blocks``).

    import dask.array as da
    import fastselu.dask

    x = da.random.standard_normal((100_000, 1_000), chunks=(10_000, 1_000)).astype("float32")
    y = fastselu.dask.selu(x)                    # lazy; dtype and meta known up front
    g = fastselu.dask.selu_backward(da.ones_like(y), y, is_result=True)
    y.compute()

Result dtypes follow fastselu's rules and are checked when the graph is built, not when it runs:
float16/float32/float64 keep their dtype, bool and integers give float64, anything else raises
``TypeError`` at once.  Each block runs fastselu's kernels on a worker (which must have fastselu
installed); results are bit-for-bit those of ``fastselu.selu`` on the whole NumPy array, whatever
the chunking, the number of workers or their CPUs' SIMD variants.

Threads: every block call uses ``fastselu.get_num_threads()`` threads of its worker process.
``distributed`` worker processes start with ``OMP_NUM_THREADS=1`` (one fastselu thread per dask
thread).  With the threaded scheduler in one process, several blocks run at once, each using all
CPUs: call ``fastselu.set_num_threads(1)`` (or use ``threadpoolctl.threadpool_limits(1)``) there
if oversubscription hurts.

This module imports dask (the absolute ``import dask.array`` is the real Dask, not this file);
``import fastselu`` alone never does.
"""

from __future__ import annotations

from typing import Any, cast

import dask.array as da
import numpy as np

from . import _api

__all__ = ["selu", "selu_backward"]


def _as_dask(x: Any, name: str) -> da.Array:
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(f"{name}: masked arrays are not supported (the mask would be dropped)")
    arr = x if isinstance(x, da.Array) else da.asarray(x)  # type: ignore[no-untyped-call]
    meta = getattr(arr, "_meta", None)
    if meta is not None and (
        not isinstance(meta, np.ndarray) or isinstance(meta, np.ma.MaskedArray)
    ):
        raise TypeError(
            f"{name}: dask array of {type(meta).__module__}.{type(meta).__name__} blocks; "
            "fastselu.dask needs NumPy blocks (numpy.ndarray)"
        )
    return arr


def _meta(ndim: int, dtype: np.dtype[Any]) -> np.ndarray:
    return np.empty((0,) * ndim, dtype=dtype)


def _same_shape(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Equal shapes; an unknown (NaN) length matches anything, checked again block by block."""
    return len(a) == len(b) and all(m != m or n != n or m == n for m, n in zip(a, b))


def _selu_block(block: np.ndarray) -> np.ndarray:
    return np.asarray(_api.selu(block))  # a 0-d block gives a NumPy scalar: back to 0-d array


def _selu_backward_block(g: np.ndarray, x: np.ndarray, is_result: bool) -> np.ndarray:
    # Blocks of unknown-shape arrays are only checked here (fastselu raises ValueError).
    return np.asarray(_api.selu_backward(g, x, is_result=is_result))


def selu(x: Any) -> da.Array:
    """SELU of a dask array (or anything ``dask.array.asarray`` accepts), lazily, block by block.

    The result has ``x``'s shape and chunks; its dtype is float16/float32/float64 for those inputs
    and float64 for bool and integer inputs.  Other dtypes raise ``TypeError`` immediately.
    """
    arr = _as_dask(x, "x")
    rdt = _api._result_dtype(arr.dtype, "x")
    y = da.map_blocks(  # type: ignore[no-untyped-call]
        _selu_block, arr, dtype=rdt, meta=_meta(arr.ndim, rdt), token="fastselu-selu"
    )
    return cast(da.Array, y)


def selu_backward(grad_output: Any, x: Any, *, is_result: bool = False) -> da.Array:
    """``grad_output * SELU'(x)`` for dask arrays of the same shape (``x`` is y if ``is_result``).

    Different chunkings are unified (``blockwise`` with ``align_arrays``); the result dtype is
    NumPy's promotion of the two dtypes, made floating as in ``fastselu.selu_backward``.  Different
    shapes raise ``ValueError`` (no broadcasting), unsupported dtypes ``TypeError``, both at once.
    """
    g = _as_dask(grad_output, "grad_output")
    xa = _as_dask(x, "x")
    _api._result_dtype(g.dtype, "grad_output")
    _api._result_dtype(xa.dtype, "x")
    if not _same_shape(g.shape, xa.shape):
        raise ValueError(
            f"grad_output has shape {g.shape} but x has shape {xa.shape}; expected equal shapes"
        )
    rdt = _api._result_dtype(np.result_type(g.dtype, xa.dtype), "grad_output and x")
    index = tuple(range(xa.ndim))
    r = da.blockwise(  # type: ignore[no-untyped-call]
        _selu_backward_block,
        index,
        g,
        index,
        xa,
        index,
        is_result=bool(is_result),
        dtype=rdt,
        meta=_meta(xa.ndim, rdt),
        align_arrays=True,  # different chunkings are unified (the common refinement)
        token="fastselu-selu-backward",
    )
    return cast(da.Array, r)
