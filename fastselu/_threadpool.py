"""A threadpoolctl controller for fastselu's kernels (registered at ``import fastselu``).

With threadpoolctl >= 3.5 installed, ``threadpoolctl.threadpool_info()`` lists an entry with
``user_api`` and ``internal_api`` ``"fastselu"`` (prefix ``"_kernels"``, the compiled extension's
file), and ``threadpool_limits(n)`` / ``threadpool_limits(n, user_api="fastselu")`` cap the threads
of every fastselu kernel call (and ``fastselu.get_num_threads()``) while the limit is active, for
every backend.  ``threadpool_limits(n, user_api="openmp")`` does not: fastselu passes its own thread
count to OpenMP on every call, so it is its own thread pool as far as threadpoolctl is concerned.

threadpoolctl finds thread pools through the shared libraries loaded in the process, so fastselu
is listed only when its compiled extension (``fastselu._kernels``) is importable; a build without it
(pure NumPy fallback) is not listed.  Importing threadpoolctl costs about 2 ms once NumPy is loaded,
so registration is done eagerly when it is installed and skipped silently otherwise.
"""

from __future__ import annotations

from typing import Any, Optional

from . import _config
from ._version import __version__

# Set while a limit is active: the thread count that was in effect before it (to restore = lift).
_unlimited: Optional[int] = None


def _set_limit(n: int) -> None:
    """What ``threadpool_limits`` calls, on entry with the limit and on exit with the old count.

    A count at or above the unlimited one lifts the cap entirely (None), so that leaving the
    context leaves no stale cap behind and a later ``fastselu.set_num_threads(n)`` is honoured.
    """
    global _unlimited
    n = max(1, int(n))
    if _config._threadpool_limit is None:
        _unlimited = _config.effective_num_threads()
    if n >= _config._num_threads or n == _unlimited:
        _config.set_threadpool_limit(None)
        _unlimited = None
    else:
        _config.set_threadpool_limit(n)


def _make_controller() -> Any:
    from threadpoolctl import LibController  # type: ignore[import-untyped, unused-ignore]

    class FastSeluController(LibController):  # type: ignore[misc]
        """threadpoolctl's view of fastselu: get/set the kernels' thread count."""

        user_api = "fastselu"
        internal_api = "fastselu"
        filename_prefixes = ("_kernels",)
        # Symbols only fastselu's extension exports (another package's `_kernels*.so` lacks them).
        check_symbols = ("fs_num_variants", "fs_variant", "fs_variant_supported")

        def get_num_threads(self) -> int:
            return _config.effective_num_threads()

        def set_num_threads(self, num_threads: int) -> None:
            _set_limit(num_threads)

        def get_version(self) -> str:
            return __version__

    return FastSeluController


def _registries() -> list[Any]:
    """The threadpoolctl module, plus ``__main__`` under ``python -m threadpoolctl -i fastselu``
    (the command line runs a second copy of threadpoolctl as ``__main__``)."""
    import sys

    import threadpoolctl  # type: ignore[import-untyped, unused-ignore]

    modules = [threadpoolctl]
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if main is not None and getattr(spec, "name", None) == "threadpoolctl":
        modules.append(main)
    return [m for m in modules if hasattr(m, "register")]  # register(): threadpoolctl >= 3.5


def register() -> bool:
    """Register the controller with threadpoolctl if it is installed; True if registered."""
    try:
        registries = _registries()
    except ImportError:
        return False
    if not registries:
        return False
    # threadpoolctl lists loaded shared libraries: load the compiled extension if it is not yet
    # (another backend may be active).  Without it there is nothing to list.
    try:
        from . import _backends

        _backends.load("cython")
    except ImportError:
        return False
    controller = _make_controller()
    for module in registries:
        known = getattr(module, "_ALL_CONTROLLERS", [])
        if not any(getattr(c, "internal_api", None) == "fastselu" for c in known):
            module.register(controller)  # skipped if already there (a module reload)
    return True


registered: bool = register()
