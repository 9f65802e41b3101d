"""The fast path in Python, for backends without a compiled one (numba, numpy).

The compiled backend checks the common case in C (``fast_forward``/``fast_backward`` in
``_kernels.pyx``); other backends get these twins, which cost ~1 µs instead of the general path's
~4.  Both take exactly the calls the contract in ``_backends`` names, line for line the same
checks, and return ``NotImplemented`` for anything else, which ``_api`` then handles with its
full checks and error messages.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from . import _config

# Native dtype -> the seam's ``fmt`` (None: float32/float64 go as themselves, 16-bit formats as
# uint16 views of their bits).  Hashing keeps it one lookup: a byte-swapped dtype is not equal,
# so it is not found.  bfloat16 (a user dtype, no fixed number) is added when first seen.
_FMT: Dict[np.dtype[Any], Optional[str]] = {
    np.dtype(np.float32): None,
    np.dtype(np.float64): None,
    np.dtype(np.float16): "float16",
}


def _plain(a: Any, writable: bool = False) -> bool:
    """An exact ndarray, C-contiguous, aligned, native float16/bfloat16/float32/float64 (and
    writeable)."""
    if type(a) is not np.ndarray:
        return False
    flags = a.flags
    if not (flags.c_contiguous and flags.aligned) or (writable and not flags.writeable):
        return False
    dt = a.dtype
    if dt in _FMT:
        return True
    if dt.kind == "V" and dt.isnative:  # only user dtypes can be bfloat16
        from ._api import _is_bfloat16  # not at import: _api imports the backends, then us

        if _is_bfloat16(dt):
            _FMT[dt] = "bfloat16"
            return True
    return False


def _identical_or_disjoint(a: np.ndarray, b: np.ndarray) -> bool:
    """For C-contiguous arrays of one shape and dtype: element i of both at the same address,
    or no byte shared (for them NumPy's bounds check, the default, is exact)."""
    return a is b or not np.may_share_memory(a, b) or _address(a) == _address(b)


def _address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def _destination(x: np.ndarray, out: Any, also: np.ndarray) -> Any:
    """The array a call on `x` and `also` (an input too, or `x` again) writes: a new one, or
    `out` where the contract allows; None to decline."""
    if out is None:
        return None if x.ndim == 0 else np.empty(x.shape, x.dtype)  # 0-d: a NumPy scalar result
    if not (_plain(out, True) and out.dtype == x.dtype and out.shape == x.shape):
        return None
    if not (_identical_or_disjoint(x, out) and _identical_or_disjoint(also, out)):
        return None
    return out


def _flat(a: np.ndarray, fmt: Optional[str]) -> np.ndarray:
    """The 1-D view the seam takes: the array itself, or its bits for a 16-bit format."""
    return a.reshape(-1) if fmt is None else a.reshape(-1).view(np.uint16)


def make(backend: ModuleType) -> Tuple[Callable[..., Any], Callable[..., Any]]:
    """(fast_forward, fast_backward) over `backend`'s seam functions."""
    forward, backward_x, backward_y = backend.forward, backend.backward_x, backend.backward_y

    def fast_forward(x: Any, out: Any, inplace: bool) -> Any:
        if not _plain(x, inplace):
            return NotImplemented
        if inplace:
            if out is not None:
                return NotImplemented
            res = x
        else:
            res = _destination(x, out, x)
            if res is None:
                return NotImplemented
        if x.size:
            fmt = _FMT[x.dtype]
            nt = _config.effective_num_threads()
            if fmt is None:
                forward(_flat(x, fmt), _flat(res, fmt), nt)
            else:
                forward(_flat(x, fmt), _flat(res, fmt), nt, fmt=fmt)
        return res

    def fast_backward(g: Any, x: Any, is_result: bool, out: Any) -> Any:
        if not (_plain(g) and _plain(x)) or g.dtype != x.dtype or g.shape != x.shape:
            return NotImplemented
        res = _destination(x, out, g)
        if res is None:
            return NotImplemented
        kernel = backward_y if is_result else backward_x
        if x.size:
            fmt = _FMT[x.dtype]
            args = (_flat(g, fmt), _flat(x, fmt), _flat(res, fmt), _config.effective_num_threads())
            if fmt is None:
                kernel(*args)
            else:
                kernel(*args, fmt=fmt)
        return res

    return fast_forward, fast_backward
