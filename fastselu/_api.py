"""The front end: the argument, dtype, layout and overlap rules and every error message.

The backends' fast paths (their contract is in `_backends`) take only the commonest valid
calls, checked more cheaply, with the same results; every other call, and every error, is
handled here.

Backends only ever see 1-D C-contiguous native float32/float64 arrays of one dtype (see
`_backends`).  Native contiguous arrays whose element orders agree go to the kernel in one call
without copies; anything else (strides, byte swaps, float16, integers, unaligned data) streams
through `np.nditer` in chunks, so scratch memory stays at a few MB whatever the array size.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import numpy as np
import numpy.typing as npt

from . import _backends, _config

# Elements per nditer chunk: 3 operands x 128 Ki x 8 bytes = 3 MiB of scratch at most.
CHUNK = 1 << 17

ArrayResult = Union[np.ndarray, np.floating]

_F16, _F32, _F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
# Result dtype (as dtype.type) -> dtype the kernels compute in.
_COMPUTE = {np.float16: _F32, np.float32: _F32, np.float64: _F64}

_OTHER_TYPES = (
    "use fastselu.dask for dask arrays or fastselu.torch for torch tensors, "
    "or convert explicitly with numpy.asarray"
)


def _check_foreign(x: Any, name: str) -> None:
    """Refuse array types that numpy.asarray would convert silently and lossily."""
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{name}: masked arrays are not supported (the mask would be dropped); pass "
            f"{name}.filled(value) or {name}.data; {_OTHER_TYPES}"
        )
    cls = type(x)
    if cls.__module__.startswith("torch"):  # detected without importing torch
        raise TypeError(f"{name}: got a torch tensor ({cls.__name__}); use fastselu.torch instead")
    if not isinstance(x, np.ndarray) and hasattr(cls, "__array_function__"):
        raise TypeError(
            f"{name}: {cls.__module__}.{cls.__qualname__} is not a NumPy array; {_OTHER_TYPES}"
        )


def _result_dtype(dt: np.dtype[Any], name: str) -> np.dtype[Any]:
    """Native result dtype for input dtype `dt`: floats keep their width, bool/int give float64."""
    if dt.type in _COMPUTE:
        return np.dtype(dt.type)
    if dt.kind in "biu":
        return _F64
    raise TypeError(
        f"{name}: unsupported dtype {dt}; expected float16, float32 or float64 "
        "(bool and integer inputs are computed as float64)"
    )


def _as_input(x: Any, name: str) -> np.ndarray:
    _check_foreign(x, name)
    # asarray of an ndarray subclass (np.memmap, np.matrix) is a plain view of the same memory.
    return np.asarray(x)


def _self_overlapping(a: np.ndarray) -> bool:
    """Whether distinct elements of `a` may share memory (a zero-stride view, say).

    Sufficient test, as NumPy's: with dimensions sorted by |stride|, each stride must clear
    the extent of all smaller ones.  Layouts failing it are refused as targets, since which
    write would win is not well defined."""
    if a.size <= 1:
        return False
    extent = a.itemsize
    for stride, n in sorted((abs(st), n) for st, n in zip(a.strides, a.shape) if n > 1):
        if stride < extent:
            return True
        extent += stride * (n - 1)
    return False


def _check_target(a: np.ndarray, what: str) -> None:
    if not a.flags.writeable:
        raise ValueError(f"{what} is read-only; expected a writeable array")
    if _self_overlapping(a):
        raise ValueError(f"{what} has elements that overlap each other in memory (e.g. a "
                         "zero-stride view); expected an array whose elements are distinct")


def _check_out(out: Any, shape: tuple[int, ...], rdt: np.dtype[Any]) -> np.ndarray:
    if not isinstance(out, np.ndarray) or isinstance(out, np.ma.MaskedArray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}; expected exactly {shape} (no broadcasting)")
    if out.dtype.type is not rdt.type:
        raise TypeError(f"out has dtype {out.dtype}; expected {rdt} (either byte order)")
    _check_target(out, "out")
    return np.asarray(out)


def _check_inplace(x: Any) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"inplace=True needs a numpy.ndarray, got {type(x).__name__}")
    if x.dtype.type not in _COMPUTE:
        raise TypeError(
            f"inplace=True needs a float16, float32 or float64 array, got dtype {x.dtype} "
            "(the result of integer and bool inputs is float64: call without inplace)"
        )
    _check_target(x, "the array given with inplace=True")
    return np.asarray(x)


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _same_elements(a: np.ndarray, b: np.ndarray) -> bool:
    """True when a[i] and b[i] occupy the same bytes for every index (elementwise aliasing)."""
    return (
        a.shape == b.shape
        and a.strides == b.strides
        and a.dtype.itemsize == b.dtype.itemsize
        and _address(a) == _address(b)
    )


def _separate(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """`a`, or a copy of it if `out` partly overlaps it (the result is then as without overlap)."""
    if a is out or not np.may_share_memory(a, out):
        return a
    if _same_elements(a, out):  # each element is read before it is written: no copy needed
        return a
    try:
        overlap = np.shares_memory(a, out, max_work=1 << 16)
    except np.exceptions.TooHardError:
        overlap = True
    return a.copy(order="K") if overlap else a


def _flat_views(arrays: list[np.ndarray], cdt: np.dtype[Any]) -> Optional[list[np.ndarray]]:
    """1-D views that match element for element, or None if the arrays need the chunked path."""
    c_order = f_order = True
    for a in arrays:
        flags = a.flags
        if a.dtype != cdt or not flags.aligned:  # != also rejects the other byte order
            return None
        c_order = c_order and flags.c_contiguous
        f_order = f_order and flags.f_contiguous
    if c_order:
        return [a.reshape(-1) for a in arrays]
    if f_order:
        return [a.reshape(-1, order="F") for a in arrays]
    return None


def _run(kernel: Callable[..., None], inputs: list[np.ndarray], out: np.ndarray, cdt: np.dtype[Any]) -> None:
    if out.size == 0:
        return
    inputs = [_separate(a, out) for a in inputs]
    nthreads = _config.effective_num_threads()
    flat = _flat_views([*inputs, out], cdt)
    if flat is not None:
        kernel(*flat, nthreads)
        return
    # Chunked path: nditer casts/byte-swaps/aligns chunk by chunk into contiguous buffers; with
    # order 'K' (the default) inputs and out are walked in the same element order.
    read = ["readonly", "contig", "aligned", "nbo"]
    write = ["writeonly", "contig", "aligned", "nbo"]
    # errstate: the buffered casts (float32 -> float16 may overflow) must never warn.
    with np.errstate(all="ignore"):
        it = np.nditer(
            [*inputs, out],
            flags=["external_loop", "buffered", "grow_inner", "zerosize_ok"],
            op_flags=[read] * len(inputs) + [write],
            op_dtypes=[cdt] * (len(inputs) + 1),
            casting="same_kind",
            buffersize=CHUNK,
        )
        with it:
            for ops in it:
                kernel(*ops, nthreads)


def _finish(result: np.ndarray, returned: Any) -> ArrayResult:
    # A 0-d result that the caller did not supply becomes a NumPy scalar, as numpy.exp does.
    if returned is None and result.ndim == 0:
        return result[()]
    return returned if returned is not None else result


def selu(x: npt.ArrayLike, out: Optional[np.ndarray] = None, *, inplace: bool = False) -> ArrayResult:
    """SELU of `x`: a new array (a NumPy scalar for 0-d input), or `out`, or `x` if inplace."""
    res = _backends.fast_forward(x, out, inplace)
    if res is not NotImplemented:
        return res  # type: ignore[no-any-return]
    kernel = _backends.active.forward
    _check_foreign(x, "x")
    if inplace:
        if out is not None:
            raise ValueError("out and inplace=True cannot be combined; pass one of them")
        xa = _check_inplace(x)
        _run(kernel, [xa], xa, _COMPUTE[xa.dtype.type])
        return x  # type: ignore[return-value]
    xa = np.asarray(x)
    rdt = _result_dtype(xa.dtype, "x")
    if out is None:
        res = np.empty_like(xa, dtype=rdt, subok=False)
        _run(kernel, [xa], res, _COMPUTE[rdt.type])
        return _finish(res, None)
    oa = _check_out(out, xa.shape, rdt)
    _run(kernel, [xa], oa, _COMPUTE[rdt.type])
    return out


def selu_(x: np.ndarray) -> np.ndarray:
    """In-place SELU; returns the very same object `x`."""
    return selu(x, inplace=True)  # type: ignore[return-value]


def selu_backward(
    grad_output: npt.ArrayLike,
    x: npt.ArrayLike,
    *,
    is_result: bool = False,
    out: Optional[np.ndarray] = None,
) -> ArrayResult:
    """grad_output * SELU'(x); with is_result=True, `x` is the forward output y."""
    res = _backends.fast_backward(grad_output, x, is_result, out)
    if res is not NotImplemented:
        return res  # type: ignore[no-any-return]
    backend = _backends.active
    kernel = backend.backward_y if is_result else backend.backward_x
    g = _as_input(grad_output, "grad_output")
    xa = _as_input(x, "x")
    _result_dtype(g.dtype, "grad_output")  # name the offending argument before promoting
    _result_dtype(xa.dtype, "x")
    if g.shape != xa.shape:
        raise ValueError(
            f"grad_output has shape {g.shape} but x has shape {xa.shape}; expected equal shapes"
        )
    rdt = _result_dtype(np.result_type(g.dtype, xa.dtype), "grad_output and x")
    cdt = _COMPUTE[rdt.type]
    if out is None:
        res = np.empty_like(xa, dtype=rdt, subok=False)
        _run(kernel, [g, xa], res, cdt)
        return _finish(res, None)
    oa = _check_out(out, xa.shape, rdt)
    _run(kernel, [g, xa], oa, cdt)
    return out


class SELU:
    """Callable module in the style of ``torch.nn.SELU``: ``SELU()(x)``."""

    __slots__ = ("inplace",)

    def __init__(self, inplace: bool = False) -> None:
        self.inplace = inplace

    def __call__(self, x: npt.ArrayLike) -> ArrayResult:
        return selu(x, inplace=self.inplace)

    forward = __call__

    def __repr__(self) -> str:
        return f"SELU(inplace={self.inplace})"
