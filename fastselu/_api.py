"""The front end: the argument, dtype, layout and overlap rules and every error message.

The backends' fast paths (their contract is in `_backends`) take only the commonest valid
calls, checked more cheaply, with the same results; every other call, and every error, is
handled here.

Backends only ever see 1-D C-contiguous native arrays of one dtype and length (see
`_backends`): float32/float64, or uint16 views of float16/bfloat16 bits with ``fmt=`` naming the
format.  Native contiguous arrays whose element orders agree go to the kernel in one call
without copies; anything else (strides, byte swaps, integers, mixed dtypes, unaligned data)
streams through `np.nditer` in chunks, so scratch memory stays at a few MB whatever the array
size.  bfloat16 is ml_dtypes' user dtype, recognised by name without importing ml_dtypes.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Union

import numpy as np
import numpy.typing as npt

from . import _backends, _config, _dropout, _fastpath

# Elements per nditer chunk: 3 operands x 128 Ki x 8 bytes = 3 MiB of scratch at most.
CHUNK = 1 << 17

ArrayResult = Union[np.ndarray, np.floating]

_F16, _F32, _F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
# Float dtype (as dtype.type) -> the native dtype the kernels compute in (bfloat16: _compute).
_COMPUTE = {np.float16: _F16, np.float32: _F32, np.float64: _F64}
_EXPECTED = "float16, bfloat16, float32 or float64"


def _is_bfloat16(dt: np.dtype[Any]) -> bool:
    """ml_dtypes.bfloat16 (or another library's dtype of that name and layout)."""
    return dt.kind == "V" and dt.itemsize == 2 and dt.name == "bfloat16"


def _compute(dt: np.dtype[Any]) -> Optional[np.dtype[Any]]:
    """The native dtype the kernels compute a float dtype in (itself), else None."""
    cdt = _COMPUTE.get(dt.type)
    if cdt is None and _is_bfloat16(dt):
        cdt = np.dtype(dt.type)
    return cdt


def _fmt(cdt: np.dtype[Any]) -> Optional[str]:
    """The backend's name for a 16-bit format (its arrays go as uint16 views), else None."""
    if cdt.itemsize != 2:
        return None
    return "float16" if cdt == _F16 else "bfloat16"


def _kernel_call(
    kernel: Callable[..., None], arrays: Any, nthreads: int, fmt: Optional[str]
) -> None:
    if fmt is None:
        kernel(*arrays, nthreads)
    else:
        kernel(*(a.view(np.uint16) for a in arrays), nthreads, fmt=fmt)


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
    """Native result dtype for input dtype `dt`: floats keep their dtype, bool/int give float64."""
    cdt = _compute(dt)
    if cdt is not None:
        return cdt
    if dt.kind in "biu":
        return _F64
    raise TypeError(
        f"{name}: unsupported dtype {dt}; expected {_EXPECTED} "
        "(bool and integer inputs are computed as float64)"
    )


def _pair_result_dtype(a: np.dtype[Any], b: np.dtype[Any], name: str) -> np.dtype[Any]:
    """Native result dtype for two inputs (grad_output and x): NumPy's promotion, as ml_dtypes
    defines it under NumPy >= 2 for bfloat16 (float16 with bfloat16 gives float32, as JAX's; with
    integers bfloat16 promotes as float16 does).  Under NumPy 1.x ml_dtypes defines no common type
    for bfloat16 with float16 or wide integers, and np.result_type raises: the same rule here."""
    try:
        return _result_dtype(np.result_type(a, b), name)
    except TypeError:
        if not (_is_bfloat16(a) or _is_bfloat16(b)):
            raise
    r = np.result_type(*(_F16 if _is_bfloat16(d) else d for d in (a, b)))
    if r == _F16:  # float16 stood in for bfloat16
        r = _F32 if _F16 in (a, b) else (a if _is_bfloat16(a) else b)
    return _result_dtype(r, name)


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
        raise ValueError(
            f"{what} has elements that overlap each other in memory (e.g. a "
            "zero-stride view); expected an array whose elements are distinct"
        )


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
    if _compute(x.dtype) is None:
        raise TypeError(
            f"inplace=True needs a {_EXPECTED} array, got dtype {x.dtype} "
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


def _operands(inputs: list[np.ndarray], out: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The arrays a kernel driver walks: 0-d as one-element views (NumPy 1.x's buffered nditer
    mishandles 0-d operands: a float16 0-d result was never written back, or computed from the
    wrong buffer), inputs copied where `out` partly overlaps them."""
    if out.ndim == 0:
        inputs = [a.reshape(1) for a in inputs]
        out = out.reshape(1)
    return [_separate(a, out) for a in inputs], out


def _run(
    kernel: Callable[..., None], inputs: list[np.ndarray], out: np.ndarray, cdt: np.dtype[Any]
) -> None:
    if out.size == 0:
        return
    inputs, out = _operands(inputs, out)
    nthreads = _config.effective_num_threads()
    fmt = _fmt(cdt)
    flat = _flat_views([*inputs, out], cdt)
    if flat is not None:
        _kernel_call(kernel, flat, nthreads, fmt)
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
                _kernel_call(kernel, ops, nthreads, fmt)


def _finish(result: np.ndarray, returned: Any) -> ArrayResult:
    # A 0-d result that the caller did not supply becomes a NumPy scalar, as numpy.exp does.
    if returned is None and result.ndim == 0:
        return result[()]
    return returned if returned is not None else result


def selu(
    x: npt.ArrayLike, out: Optional[np.ndarray] = None, *, inplace: bool = False
) -> ArrayResult:
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
        _run(kernel, [xa], xa, _result_dtype(xa.dtype, "x"))
        return x  # type: ignore[return-value]
    xa = np.asarray(x)
    rdt = _result_dtype(xa.dtype, "x")
    if out is None:
        res = np.empty_like(xa, dtype=rdt, subok=False)
        _run(kernel, [xa], res, rdt)
        return _finish(res, None)
    oa = _check_out(out, xa.shape, rdt)
    _run(kernel, [xa], oa, rdt)
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
    rdt = _pair_result_dtype(g.dtype, xa.dtype, "grad_output and x")
    if out is None:
        res = np.empty_like(xa, dtype=rdt, subok=False)
        _run(kernel, [g, xa], res, rdt)
        return _finish(res, None)
    oa = _check_out(out, xa.shape, rdt)
    _run(kernel, [g, xa], oa, rdt)
    return out


def half_call(
    op: str, fmt: str, *arrays: np.ndarray, out: np.ndarray, nthreads: Optional[int] = None
) -> np.ndarray:
    """The float16/bfloat16 kernels on int16/uint16 views of the bits, for callers whose 16-bit
    data has no NumPy float dtype here (bfloat16 without ml_dtypes: fastselu.torch).

    op: 'forward' (arrays = x), 'backward_x' (grad_output, x) or 'backward_y' (grad_output, y);
    fmt: 'float16' or 'bfloat16'; arrays and `out`: C-contiguous int16/uint16 arrays of one
    shape, `out` writable (it may be an input, or overlap one).  Returns `out`."""
    kinds = {"forward": 1, "backward_x": 2, "backward_y": 2}
    if op not in kinds or fmt not in ("float16", "bfloat16") or len(arrays) != kinds[op]:
        raise ValueError(f"half_call: bad op/fmt/arity: {op!r}, {fmt!r}, {len(arrays)} arrays")
    for a in (*arrays, out):
        if not isinstance(a, np.ndarray) or a.dtype.char not in "hH":
            raise TypeError("half_call: arrays must be int16/uint16 numpy arrays of the bits")
        if not (a.flags.c_contiguous and a.flags.aligned and a.dtype.isnative):
            raise ValueError("half_call: arrays must be C-contiguous, aligned and native")
        if a.shape != out.shape:
            raise ValueError(f"half_call: shapes differ: {a.shape} and {out.shape}")
    if not out.flags.writeable:
        raise ValueError("half_call: out is read-only")
    if out.size:
        ins = [_separate(a, out).reshape(-1) for a in arrays]
        n = _config.effective_num_threads() if nthreads is None else nthreads
        _kernel_call(getattr(_backends.active, op), [*ins, out.reshape(-1)], n, fmt)
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


# ---------------------------------------------------------------------------------------------
# Self-normalizing companions: AlphaDropout, fused SELU + AlphaDropout, their backwards and
# lecun_normal (SPEC, "Self-normalizing companions").  The argument, dtype, layout and `out`
# rules are selu's (the helpers above); the mask depends on each element's logical C-order flat
# index, so arrays are walked in C order (chunks of nditer(order='C') for other layouts) and the
# kernels are told where each run of elements starts.  `_dropout` holds Philox, seeds and the
# per-call constants.

Origin = Optional[tuple[tuple[int, ...], tuple[int, ...]]]


def _dropout_backend() -> Any:
    """The active backend, or the numpy reference while the active one lacks the dropout
    kernels (the mask, and so the results within the SPEC's bounds, are the same)."""
    active = _backends.active
    return active if hasattr(active, "dropout") else _backends.load("numpy")


def _runs(shape: tuple[int, ...], size: int, origin: Origin) -> tuple[int, Any]:
    """(L, starts): the array's C-order elements form runs of L whose logical flat indices in
    the whole array are starts[r], starts[r] + 1, ...  `origin` = (shape of the whole array,
    offsets of this block in it), for blocks of a larger array (fastselu.dask); None: the
    array is the whole."""
    if origin is None:
        return max(size, 1), (0,)
    whole, offsets = origin
    nd = len(shape)
    k = 0
    while k < nd - 1 and tuple(shape[k + 1 :]) != tuple(whole[k + 1 :]):
        k += 1
    strides = [int(np.prod(whole[d + 1 :], dtype=np.int64)) for d in range(nd)]
    base = sum(int(o) * st for o, st in zip(offsets, strides))
    starts = np.full(1, base, dtype=np.int64)
    for d in range(k):
        starts = (starts[:, None] + np.arange(shape[d], dtype=np.int64) * strides[d]).ravel()
    return max(int(np.prod(shape[k:], dtype=np.int64)), 1), starts


def _run_dropout(
    call: Callable[..., None],
    inputs: list[np.ndarray],
    out: np.ndarray,
    cdt: np.dtype[Any],
    origin: Origin,
) -> None:
    """call(*inputs, out, start, nthreads) on 1-D native `cdt` pieces (float16/bfloat16 as
    uint16 views of their bits, for the kernels' fmt=), in logical C order."""
    if out.size == 0:
        return
    inputs, out = _operands(inputs, out)
    nthreads = _config.effective_num_threads()
    run_len, starts = _runs(out.shape, out.size, origin)
    bits = cdt.itemsize == 2

    def pieces(ops: list[np.ndarray], pos: int) -> None:
        if bits:
            ops = [o.view(np.uint16) for o in ops]
        m, done = ops[0].shape[0], 0
        while done < m:
            r, off = divmod(pos + done, run_len)
            take = min(m - done, run_len - off)
            call(*(o[done : done + take] for o in ops), int(starts[r]) + off, nthreads)
            done += take

    arrays = [*inputs, out]
    if all(a.dtype == cdt and a.flags.aligned and a.flags.c_contiguous for a in arrays):
        flat = [a.reshape(-1) for a in arrays]
        if bits:
            flat = [a.view(np.uint16) for a in flat]
        if origin is None:  # one run: the common case, without the loop
            call(*flat, 0, nthreads)
        else:
            pieces(flat, 0)
        return
    read = ["readonly", "contig", "aligned", "nbo"]
    write = ["writeonly", "contig", "aligned", "nbo"]
    with np.errstate(all="ignore"):
        it = np.nditer(
            arrays,
            flags=["external_loop", "buffered", "grow_inner", "zerosize_ok"],
            op_flags=[read] * len(inputs) + [write],
            op_dtypes=[cdt] * len(arrays),
            order="C",
            casting="same_kind",
            buffersize=CHUNK,
        )
        with it:
            pos = 0
            for ops in it:
                pieces(list(ops), pos)
                pos += ops[0].shape[0]


def _feature_inner(shape: tuple[int, ...], feature: bool, needs_mask: bool) -> int:
    if not feature:
        return 1
    if needs_mask and len(shape) < 2:
        raise ValueError(
            f"feature=True needs an array of at least 2 dimensions (samples, channels, ...); "
            f"got shape {shape}"
        )
    return int(np.prod(shape[2:], dtype=np.int64))


def _dropout_fast(
    arrays: tuple[Any, ...],
    p: Any,
    seed: Any,
    feature: bool,
    training: bool,
    out: Any,
    inplace: bool,
    run: Callable[..., None],
) -> Any:
    """The common dropout call in a few operations (about half the time of a 10^3-element call):
    `arrays` (x, or grad_output and x) plain and alike as `_fastpath` requires, a float p in
    (0, 1], an int seed, training, plain bool flags; `run(*flat, prm, key, inner, nthreads,
    fmt)` on flat views.  Returns what the general path returns, or NotImplemented for any other
    call (which the general path then takes, errors included)."""
    a = arrays[0]
    if not (
        training is True
        and (feature is False or feature is True)
        and (inplace is False or inplace is True)
        and type(p) is float
        and 0.0 < p <= 1.0
        and type(seed) is int
        and 0 <= seed < 1 << 64
        and _fastpath._plain(a, inplace)
    ):
        return NotImplemented
    for v in arrays[1:]:
        if not (_fastpath._plain(v) and v.dtype == a.dtype and v.shape == a.shape):
            return NotImplemented
    if feature and a.ndim < 2 and p < 1.0:
        return NotImplemented  # the general path's ValueError
    if inplace:
        if out is not None:
            return NotImplemented
        res = a
    else:
        res = _fastpath._destination(arrays[-1], out, a)
        if res is None:
            return NotImplemented
    if a.size:
        fmt = _fastpath._FMT[a.dtype]
        inner = math.prod(a.shape[2:]) if feature else 1
        prm = _dropout.params(p, _dropout.fmt_name(a.dtype))
        flat = [_fastpath._flat(v, fmt) for v in (*arrays, res)]
        run(*flat, prm, _dropout.key_of(seed), inner, _config.effective_num_threads(), fmt)
    return res


def _dropout_forward(
    x: Any,
    p: Any,
    seed: Any,
    feature: bool,
    training: bool,
    out: Optional[np.ndarray],
    inplace: bool,
    fused: bool,
    origin: Origin = None,
) -> Any:
    if origin is None:
        kernel = _dropout_backend().dropout

        def run(xs: Any, os_: Any, prm: Any, key: Any, inner: int, nt: int, fmt: Any) -> None:
            kernel(xs, os_, prm, key, 0, inner, fused, nt, fmt=fmt)

        res = _dropout_fast((x,), p, seed, feature, training, out, inplace, run)
        if res is not NotImplemented:
            return res
    _check_foreign(x, "x")
    pf = _dropout.check_p(p)
    _dropout.check_seed(seed)
    if inplace and out is not None:
        raise ValueError("out and inplace=True cannot be combined; pass one of them")
    if not training or pf == 0.0:  # the identity (of SELU, fused): the input's bits
        if fused:
            return selu(x, out, inplace=inplace)
        if inplace:
            _check_inplace(x)
            return x
        xa = np.asarray(x)
        rdt = _result_dtype(xa.dtype, "x")
        if out is not None:
            np.copyto(_check_out(out, xa.shape, rdt), xa)
            return out
        return _finish(np.array(xa, dtype=rdt, order="K", subok=False), None)
    if inplace:
        xa = _check_inplace(x)
        rdt = np.dtype(xa.dtype.type)
    else:
        xa = np.asarray(x)
        rdt = _result_dtype(xa.dtype, "x")
    whole = origin[0] if origin is not None else xa.shape
    inner = _feature_inner(whole, feature, pf < 1.0)
    oa = _check_out(out, xa.shape, rdt) if out is not None else None
    key = _dropout.key_of(_dropout.draw_seed(seed))
    prm = _dropout.params(pf, _dropout.fmt_name(rdt))
    res = xa if inplace else (oa if oa is not None else np.empty_like(xa, dtype=rdt, subok=False))
    kernel = _dropout_backend().dropout
    fmt = _fmt(rdt)

    def call(xs: np.ndarray, os_: np.ndarray, start: int, nt: int) -> None:
        kernel(xs, os_, prm, key, start, inner, fused, nt, fmt=fmt)

    _run_dropout(call, [xa], res, rdt, origin)
    if inplace:
        return x
    return _finish(res, out)


def alpha_dropout(
    x: npt.ArrayLike,
    p: float = 0.5,
    *,
    seed: Any,
    feature: bool = False,
    training: bool = True,
    out: Optional[np.ndarray] = None,
    inplace: bool = False,
) -> ArrayResult:
    """AlphaDropout of `x` with drop probability p and a counter-based mask from `seed`
    (an int in [0, 2**64), a numpy.random.Generator, or None for fresh entropy): kept elements
    become a*x + a*SA*p, dropped ones -a*SA*(1 - p) (NaN where x is NaN or +-inf)."""
    res = _dropout_forward(x, p, seed, feature, training, out, inplace, False)
    return res  # type: ignore[no-any-return]


def selu_alpha_dropout(
    x: npt.ArrayLike,
    p: float = 0.5,
    *,
    seed: Any,
    feature: bool = False,
    training: bool = True,
    out: Optional[np.ndarray] = None,
    inplace: bool = False,
) -> ArrayResult:
    """alpha_dropout(selu(x), p, seed=seed, ...) in one pass, without the intermediate."""
    res = _dropout_forward(x, p, seed, feature, training, out, inplace, True)
    return res  # type: ignore[no-any-return]


def _dropout_backward(
    g: Any,
    x: Any,
    p: Any,
    seed: Any,
    feature: bool,
    training: bool,
    is_result: bool,
    out: Optional[np.ndarray],
    mode: int,
    origin: Origin = None,
) -> Any:
    if origin is None:
        kernel = _dropout_backend().dropout_backward
        m = 2 if mode == 1 and is_result else mode

        def run(*ops: Any) -> None:
            *arrs, os_, prm, key, inner, nt, fmt = ops
            xs = arrs[-1]  # mode 0: g itself
            kernel(arrs[0], xs, os_, prm, key, 0, inner, m, nt, fmt=fmt)

        arrays = (g,) if mode == 0 else (g, x)
        res = _dropout_fast(arrays, p, seed, feature, training, out, False, run)
        if res is not NotImplemented:
            return res
    ga = _as_input(g, "grad_output")
    pf = _dropout.check_p(p)
    _dropout.check_seed(seed)
    if mode == 0:
        if not training or pf == 0.0:
            rdt = _result_dtype(ga.dtype, "grad_output")
            if out is not None:
                np.copyto(_check_out(out, ga.shape, rdt), ga)
                return out
            return _finish(np.array(ga, dtype=rdt, order="K", subok=False), None)
        xa = ga
        rdt = _result_dtype(ga.dtype, "grad_output")
        inputs = [ga]
    else:
        if not training or pf == 0.0:
            return selu_backward(g, x, is_result=is_result, out=out)
        xa = _as_input(x, "x")
        _result_dtype(ga.dtype, "grad_output")
        _result_dtype(xa.dtype, "x")
        if ga.shape != xa.shape:
            raise ValueError(
                f"grad_output has shape {ga.shape} but x has shape {xa.shape}; expected equal "
                "shapes"
            )
        rdt = _pair_result_dtype(ga.dtype, xa.dtype, "grad_output and x")
        inputs = [ga, xa]
        if is_result:
            mode = 2
    whole = origin[0] if origin is not None else ga.shape
    inner = _feature_inner(whole, feature, pf < 1.0)
    oa = _check_out(out, ga.shape, rdt) if out is not None else None
    key = _dropout.key_of(_dropout.draw_seed(seed))
    prm = _dropout.params(pf, _dropout.fmt_name(rdt))
    res = oa if oa is not None else np.empty_like(xa, dtype=rdt, subok=False)
    kernel = _dropout_backend().dropout_backward
    fmt = _fmt(rdt)

    def call(*ops: Any) -> None:
        *arrs, os_, start, nt = ops
        gs = arrs[0]
        xs = arrs[1] if len(arrs) > 1 else gs
        kernel(gs, xs, os_, prm, key, start, inner, mode, nt, fmt=fmt)

    _run_dropout(call, inputs, res, rdt, origin)
    return _finish(res, out)


def alpha_dropout_backward(
    grad_output: npt.ArrayLike,
    p: float = 0.5,
    *,
    seed: Any,
    feature: bool = False,
    training: bool = True,
    out: Optional[np.ndarray] = None,
) -> ArrayResult:
    """Gradient of alpha_dropout with respect to x (the same p, seed and feature): grad*a
    where kept, grad*(+0.0) where dropped."""
    res = _dropout_backward(grad_output, None, p, seed, feature, training, False, out, 0)
    return res  # type: ignore[no-any-return]


def selu_alpha_dropout_backward(
    grad_output: npt.ArrayLike,
    x: npt.ArrayLike,
    p: float = 0.5,
    *,
    seed: Any,
    feature: bool = False,
    training: bool = True,
    is_result: bool = False,
    out: Optional[np.ndarray] = None,
) -> ArrayResult:
    """Gradient of selu_alpha_dropout: grad*a*SELU'(x) where kept, grad*(+0.0) where dropped;
    with is_result=True, `x` holds the fused output z instead of the input."""
    res = _dropout_backward(grad_output, x, p, seed, feature, training, is_result, out, 1)
    return res  # type: ignore[no-any-return]


# Keras's truncated-normal correction: the standard deviation of N(0, 1) truncated to [-2, 2].
_TRUNC_STD = 0.87962566103423978


def lecun_normal(
    shape: Any, *, fan_in: Optional[int] = None, dtype: Any = np.float32, rng: Any = None
) -> np.ndarray:
    """Keras's lecun_normal: normal with sigma = sqrt(1/max(1, fan_in)) / 0.8796..., truncated
    to [-2 sigma, 2 sigma] (out-of-range draws are drawn again); fan_in as Keras from `shape`
    unless given; `rng` a numpy.random.Generator, an int seed or None."""
    shp = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if any(
        isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0
        for n in shp
    ):
        raise ValueError(f"shape must be a non-negative int or a tuple of them, got {shape!r}")
    shp = tuple(int(n) for n in shp)
    dt = np.dtype(dtype)
    if dt.kind != "f" or dt.type not in _COMPUTE and dt.name != "bfloat16":
        raise TypeError(f"dtype must be a floating dtype (float16, float32, float64), got {dt}")
    if fan_in is None:
        if len(shp) == 0:
            fan_in = 1
        elif len(shp) == 1:
            fan_in = shp[0]
        else:
            fan_in = shp[-2] * int(np.prod(shp[:-2], dtype=np.int64))
    elif isinstance(fan_in, (bool, np.bool_)) or not isinstance(fan_in, (int, np.integer)):
        raise TypeError(f"fan_in must be an int, got {type(fan_in).__name__}")
    if rng is not None and not isinstance(rng, (np.random.Generator, int, np.integer)):
        raise TypeError(
            f"rng must be a numpy.random.Generator, an int seed or None, got {type(rng).__name__}"
        )
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    sigma = np.sqrt(1.0 / max(1, int(fan_in))) / _TRUNC_STD
    z = gen.standard_normal(shp)
    bad = np.abs(z) > 2.0
    while bad.any():
        z[bad] = gen.standard_normal(int(bad.sum()))
        bad = np.abs(z) > 2.0
    return np.asarray(z * sigma).astype(dt)
