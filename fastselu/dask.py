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

from . import _api, _dropout

__all__ = [
    "alpha_dropout",
    "alpha_dropout_backward",
    "selu",
    "selu_alpha_dropout",
    "selu_alpha_dropout_backward",
    "selu_backward",
]


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
    rdt = _api._pair_result_dtype(g.dtype, xa.dtype, "grad_output and x")
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


# ---------------------------------------------------------------------------------------------
# AlphaDropout.  The mask depends on each element's flat C-order index in the whole array, so
# every block is told where it sits (map_blocks' block_info: the whole shape and the block's
# offsets) and the result is bit-for-bit the in-memory call's, whatever the chunking, 2-D blocks
# included.  A Generator or None seed is drawn once, here, when the graph is built.


def _origin(block_info: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    info = block_info[None]
    return tuple(info["shape"]), tuple(int(lo) for lo, _ in info["array-location"])


def _dropout_block(
    block: np.ndarray,
    p: float,
    seed: int,
    feature: bool,
    training: bool,
    fused: bool,
    block_info: Any = None,
) -> np.ndarray:
    return np.asarray(
        _api._dropout_forward(
            block, p, seed, feature, training, None, False, fused, origin=_origin(block_info)
        )
    )


def _dropout_backward_block(
    g: np.ndarray,
    *rest: Any,
    p: float,
    seed: int,
    feature: bool,
    training: bool,
    is_result: bool,
    mode: int,
    block_info: Any = None,
) -> np.ndarray:
    x = rest[0] if rest else None
    return np.asarray(
        _api._dropout_backward(
            g, x, p, seed, feature, training, is_result, None, mode, origin=_origin(block_info)
        )
    )


def _dropout_args(
    arr: da.Array, p: Any, seed: Any, feature: bool, training: bool
) -> tuple[float, int]:
    """Validate p and seed, check the chunks are known and feature's rank; draw the seed."""
    pf = _dropout.check_p(p)
    _dropout.check_seed(seed)
    if any(c != c for c in arr.shape):
        raise ValueError(
            "AlphaDropout over dask needs known chunk sizes (the mask depends on each element's "
            "position); call .compute_chunk_sizes() first"
        )
    if training and 0.0 < pf < 1.0:
        _api._feature_inner(tuple(int(n) for n in arr.shape), feature, True)
    return pf, _dropout.draw_seed(seed)


def _map_dropout(
    block: Any,
    arrays: list[da.Array],
    p: float,
    seed: int,
    feature: bool,
    training: bool,
    dtype: np.dtype,
    token: str,
    **kernel_args: Any,
) -> da.Array:
    """map_blocks of one of the dropout block functions, with the arguments they all take."""
    r = da.map_blocks(  # type: ignore[no-untyped-call]
        block,
        *arrays,
        p=p,
        seed=seed,
        feature=bool(feature),
        training=bool(training),
        dtype=dtype,
        meta=_meta(arrays[-1].ndim, dtype),
        token=token,
        **kernel_args,
    )
    return cast(da.Array, r)


def _forward(
    x: Any, p: Any, seed: Any, feature: bool, training: bool, fused: bool, token: str
) -> da.Array:
    arr = _as_dask(x, "x")
    rdt = _api._result_dtype(arr.dtype, "x")
    pf, s = _dropout_args(arr, p, seed, feature, training)
    return _map_dropout(_dropout_block, [arr], pf, s, feature, training, rdt, token, fused=fused)


def alpha_dropout(
    x: Any, p: float = 0.5, *, seed: Any, feature: bool = False, training: bool = True
) -> da.Array:
    """``fastselu.alpha_dropout`` of a dask array, lazily, block by block: the same bits as the
    NumPy call on the whole array for the same seed (an int; a Generator or None is drawn from
    once, now)."""
    return _forward(x, p, seed, feature, training, False, "fastselu-alpha-dropout")


def selu_alpha_dropout(
    x: Any, p: float = 0.5, *, seed: Any, feature: bool = False, training: bool = True
) -> da.Array:
    """``fastselu.selu_alpha_dropout`` of a dask array (SELU and AlphaDropout in one pass)."""
    return _forward(x, p, seed, feature, training, True, "fastselu-selu-alpha-dropout")


def alpha_dropout_backward(
    grad_output: Any, p: float = 0.5, *, seed: Any, feature: bool = False, training: bool = True
) -> da.Array:
    """``fastselu.alpha_dropout_backward`` of a dask array (the same seed as the forward)."""
    g = _as_dask(grad_output, "grad_output")
    rdt = _api._result_dtype(g.dtype, "grad_output")
    pf, s = _dropout_args(g, p, seed, feature, training)
    return _map_dropout(
        _dropout_backward_block,
        [g],
        pf,
        s,
        feature,
        training,
        rdt,
        "fastselu-alpha-dropout-backward",
        is_result=False,
        mode=0,
    )


def selu_alpha_dropout_backward(
    grad_output: Any,
    x: Any,
    p: float = 0.5,
    *,
    seed: Any,
    feature: bool = False,
    training: bool = True,
    is_result: bool = False,
) -> da.Array:
    """``fastselu.selu_alpha_dropout_backward`` of dask arrays of one shape (chunkings are
    unified); ``x`` is the fused output if ``is_result``."""
    g = _as_dask(grad_output, "grad_output")
    xa = _as_dask(x, "x")
    _api._result_dtype(g.dtype, "grad_output")
    _api._result_dtype(xa.dtype, "x")
    if not _same_shape(g.shape, xa.shape):
        raise ValueError(
            f"grad_output has shape {g.shape} but x has shape {xa.shape}; expected equal shapes"
        )
    rdt = _api._pair_result_dtype(g.dtype, xa.dtype, "grad_output and x")
    pf, s = _dropout_args(xa, p, seed, feature, training)
    index = "".join(chr(ord("a") + i) for i in range(xa.ndim))
    _, (g, xa) = da.core.unify_chunks(g, index, xa, index)  # type: ignore[no-untyped-call]
    return _map_dropout(
        _dropout_backward_block,
        [g, xa],
        pf,
        s,
        feature,
        training,
        rdt,
        "fastselu-selu-alpha-dropout-backward",
        is_result=bool(is_result),
        mode=1,
    )
