"""The common-case fast path, in Python, for backends without a compiled one (numba, numpy).

The compiled backend checks the common case (plain C-contiguous native float32/float64 arrays,
an optional ``out`` of the same kind) in C (``fast_forward``/``fast_backward`` in
``_kernels.pyx``).  Other backends get these equivalents, which cost ~1 µs instead of the general
path's ~4.  They take a call only when its meaning is plain, and return ``NotImplemented`` for
anything else (0-d or empty arrays, other dtypes or layouts, subclasses, overlap, bad arguments),
which ``_api`` then handles with its full checks and error messages: so the fast path needs no
errors of its own, and a call gets the same result either way.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Tuple

import numpy as np

from . import _config

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _plain(a: Any) -> bool:
    """A non-empty, n-d (n >= 1), C-contiguous, aligned, native float32/float64 ndarray."""
    if type(a) is not np.ndarray or a.ndim == 0 or a.size == 0 or a.dtype not in _FLOATS:
        return False
    flags = a.flags
    return bool(flags.c_contiguous and flags.aligned)


def _target(out: Any, like: np.ndarray) -> bool:
    return (_plain(out) and out.dtype == like.dtype and out.shape == like.shape
            and out.flags.writeable)


def make(backend: ModuleType) -> Tuple[Callable[..., Any], Callable[..., Any]]:
    """(fast_forward, fast_backward) over `backend`'s seam functions."""
    forward, backward_x, backward_y = backend.forward, backend.backward_x, backend.backward_y

    def fast_forward(x: Any, out: Any, inplace: bool) -> Any:
        if not _plain(x):
            return NotImplemented
        if inplace:
            if out is not None:
                return NotImplemented
            out = x
        if out is None:
            out = np.empty(x.shape, x.dtype)
        elif out is x:
            if not x.flags.writeable:
                return NotImplemented
        elif not _target(out, x) or np.may_share_memory(x, out):
            return NotImplemented
        forward(x.ravel(), out.ravel(), _config.effective_num_threads())
        return out

    def fast_backward(g: Any, x: Any, is_result: bool, out: Any) -> Any:
        if not (_plain(g) and _plain(x)) or g.dtype != x.dtype or g.shape != x.shape:
            return NotImplemented
        if out is None:
            out = np.empty(x.shape, x.dtype)
        elif out is g or out is x:
            if not out.flags.writeable:
                return NotImplemented
        elif not _target(out, x) or np.may_share_memory(out, g) or np.may_share_memory(out, x):
            return NotImplemented
        kernel = backward_y if is_result else backward_x
        kernel(g.ravel(), x.ravel(), out.ravel(), _config.effective_num_threads())
        return out

    return fast_forward, fast_backward
