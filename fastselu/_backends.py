"""Loading and switching backends (the registry itself is `_config.BACKENDS`).

A backend module exposes the kernel seam used by `_api`: ``forward(x, out, nthreads)``,
``backward_x(g, x, out, nthreads)``, ``backward_y(g, y, out, nthreads)`` on 1-D C-contiguous
native float32/float64 arrays of one dtype and length (``out`` either is an input's exact buffer
or does not overlap it), and ``info() -> dict`` with keys 'simd' and 'openmp'.
float16 and bfloat16 take the same three with ``fmt="float16"`` or ``"bfloat16"`` (keyword) on
uint16 views of the bits (numba has no 16-bit float type; bfloat16 is a user dtype): see `_half`.
Modules are imported lazily with importlib, so `import fastselu` never imports numba when the
compiled backend loads.

AlphaDropout (see `_dropout` for the mask and the parameter array ``prm``):
``dropout(x, out, prm, key, start, inner, fused, nthreads)`` and
``dropout_backward(g, x, out, prm, key, start, inner, mode, nthreads)`` (mode 0: plain, x is g;
1: fused, x the input; 2: fused, x the fused output) on the same kind of arrays, whose element k
has the logical index ``start + k`` in the whole array (the mask's index is ``(start + k) //
inner``); float16/bfloat16 with ``fmt=`` on uint16 views, as above (each computes in float32 and
rounds its results once more: `_half.dropout_through_float32`).  A backend without them gets the
numpy reference's (`_api._dropout_backend`).

Optionally a backend may also take whole calls in their commonest form, to keep small calls
cheap: ``fast_forward(x, out, inplace)`` and ``fast_backward(g, x, is_result, out)``, with
``set_thread_source(fn)`` to learn the thread count.  A backend without them gets `_fastpath`'s
Python twins.  The fast-path contract, one for all (tests/test_fastpath.py holds every backend
to it case by case):

- A call is taken only when every array argument is an exact numpy.ndarray (no subclass),
  C-contiguous, aligned, native float16, bfloat16 (ml_dtypes'), float32 or float64, all of one
  dtype and shape; ``out`` (or ``x`` with inplace) is writeable; and ``out`` holds either the
  very same elements as each input (same start address) or no byte of it.  Empty arrays are
  taken (nothing is computed), and so are 0-d ones whose result goes into an array the caller
  gave (inplace or ``out``); 0-d calls that return a new NumPy scalar are not.
- A taken call returns exactly what the general path in `_api` returns: the same values, the
  same object (``out``, or ``x`` with inplace) and dtype.
- Any other call returns NotImplemented.  The fast path raises nothing of its own: a call that
  fails raises what the general path raises for it (type and message).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import warnings
from types import ModuleType
from typing import Any

import numpy as np

from . import _config, _fastpath
from ._version import __version__

_SEAM = ("forward", "backward_x", "backward_y", "info")
_loaded: dict[str, ModuleType] = {}


def load(name: str) -> ModuleType:
    """Import backend `name` (a registry key) or raise ImportError saying why it cannot load."""
    if name in _loaded:
        return _loaded[name]
    path = _config.BACKENDS[name]
    try:
        module = importlib.import_module(path)
    except Exception as exc:  # a broken extension can raise anything at import; report it all
        raise ImportError(
            f"the {name!r} backend ({path}) cannot be loaded: {type(exc).__name__}: {exc}"
        ) from exc
    missing = [f for f in _SEAM if not callable(getattr(module, f, None))]
    if missing:
        raise ImportError(f"the {name!r} backend ({path}) lacks {', '.join(missing)}")
    if hasattr(module, "set_thread_source"):
        module.set_thread_source(_config.effective_num_threads)
    _loaded[name] = module
    return module


def _pick_initial() -> tuple[str, ModuleType]:
    order = list(_config.BACKENDS)
    if _config.ENV_BACKEND is not None:
        order.remove(_config.ENV_BACKEND)
        order.insert(0, _config.ENV_BACKEND)
    reasons: list[str] = []
    for name in order:
        try:
            module = load(name)
        except ImportError as exc:
            reasons.append(str(exc))
            continue
        if reasons:
            requested = _config.ENV_BACKEND or "cython"
            warnings.warn(
                f"fastselu: using the {name!r} backend instead of {requested!r}: "
                + "; ".join(reasons),
                RuntimeWarning,
                stacklevel=2,
            )
        return name, module
    raise ImportError("fastselu: no backend can be loaded: " + "; ".join(reasons))


def _activate(name: str, module: ModuleType) -> None:
    global active_name, active, fast_forward, fast_backward
    active_name, active = name, module
    if hasattr(module, "fast_forward"):
        fast_forward, fast_backward = module.fast_forward, module.fast_backward
    else:  # the same common case, checked in Python
        fast_forward, fast_backward = _fastpath.make(module)


# The active backend; `_api` reads these on every call so set_backend takes effect at once.
active_name: str
active: ModuleType
fast_forward: Any
fast_backward: Any
_activate(*_pick_initial())


def get_backend() -> str:
    """Name of the backend in use: 'cython', 'numba' or 'numpy'."""
    return active_name


def set_backend(name: str) -> None:
    """Switch the backend for the whole process; ImportError if it cannot load here."""
    if not isinstance(name, str) or name not in _config.BACKENDS:
        valid = ", ".join(repr(n) for n in _config.BACKENDS)
        raise ValueError(f"unknown fastselu backend {name!r}; valid names are {valid}")
    _activate(name, load(name))  # load raises ImportError with the reason


def available_backends() -> tuple[str, ...]:
    """The backends that load in this environment, in preference order."""
    names = []
    for name in _config.BACKENDS:
        try:
            load(name)
        except ImportError:
            continue
        names.append(name)
    return tuple(names)


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def config_info() -> dict[str, Any]:
    """What show_config() prints, as a dict (listing backends may import numba)."""
    info = dict(active.info())
    return {
        "version": __version__,
        "backend": active_name,
        "available_backends": available_backends(),
        "simd": info.get("simd"),
        "simd_cap": _config.SIMD_CAP,
        "openmp": bool(info.get("openmp")),
        "threads": _config.effective_num_threads(),
        "cpus": _config.available_cpus(),
        "numpy": np.__version__,
        "numba": _dist_version("numba"),
        "python": platform.python_version(),
    }


def show_config() -> None:
    """Print version, backend, SIMD variant in use, OpenMP and threads, numpy/numba versions."""
    c = config_info()
    simd = c["simd"] or "none"
    if c["simd_cap"]:
        simd += f" (FASTSELU_SIMD={c['simd_cap']})"
    lines = [
        f"fastselu {c['version']}",
        f"backend: {c['backend']} (available: {', '.join(c['available_backends'])})",
        f"simd: {simd}",
        f"openmp: {'on' if c['openmp'] else 'off'}",
        f"threads: {c['threads']} (CPUs available: {c['cpus']})",
        f"numpy: {c['numpy']}",
        f"numba: {c['numba']}",
        f"python: {c['python']}",
    ]
    print("\n".join(lines))
