"""Environment, thread count and the backend registry: the package's process-wide settings.

Everything here is read once at import; an invalid ``FASTSELU_*`` value raises ``ImportError`` so a
typo never silently runs with defaults.  An empty (or all-blank) variable counts as unset.
"""

from __future__ import annotations

import math
import operator
import os
from typing import Optional

import numpy as np

from fastselu import _targets

# Backend name -> module implementing the kernel seam (forward, backward_x, backward_y, info).
# Order is the default preference order.  A new backend is a new module plus one line here.
BACKENDS: dict[str, str] = {
    "cython": "fastselu._kernels",
    "numba": "fastselu._backend_numba",
    "numpy": "fastselu._backend_numpy",
}

# Every SIMD variant name of every architecture (fastselu/_targets.py declares them); a name of
# another architecture than this build's is valid and means baseline.
SIMD_NAMES: tuple[str, ...] = _targets.variant_names()


def _env(name: str) -> Optional[str]:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _invalid(name: str, value: str, expected: str) -> ImportError:
    return ImportError(f"fastselu: invalid {name}={value!r}; expected {expected}")


def _parse_choice(name: str, choices: tuple[str, ...]) -> Optional[str]:
    value = _env(name)
    if value is not None and value not in choices:
        raise _invalid(name, value, "one of " + ", ".join(choices) + " (or unset)")
    return value


# Kernels take the thread count as a C int (and no machine has that many CPUs).
_MAX_THREADS = 2**31 - 1


def _parse_positive_int(text: str) -> Optional[int]:
    try:
        n = int(text, 10)
    except ValueError:
        return None
    return n if 1 <= n <= _MAX_THREADS else None


# Validated at import (all three before any backend is loaded, so a bad value fails fast).
ENV_BACKEND: Optional[str] = _parse_choice("FASTSELU_BACKEND", tuple(BACKENDS))
# A cap for the compiled backend's SIMD dispatch; the compiled backend reads it from here.
SIMD_CAP: Optional[str] = _parse_choice("FASTSELU_SIMD", SIMD_NAMES)
_env_threads_text = _env("FASTSELU_NUM_THREADS")
ENV_NUM_THREADS: Optional[int] = None
if _env_threads_text is not None:
    ENV_NUM_THREADS = _parse_positive_int(_env_threads_text)
    if ENV_NUM_THREADS is None:
        raise _invalid(
            "FASTSELU_NUM_THREADS",
            _env_threads_text,
            f"a positive integer up to {_MAX_THREADS} (or unset)",
        )


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def cgroup_cpu_limit() -> Optional[int]:
    """CPUs allowed by a cgroup CPU quota (v2 cpu.max or v1 CFS quota), rounded up; None if
    unset."""
    v2 = _read("/sys/fs/cgroup/cpu.max")  # "max 100000" or "<quota> <period>"
    if v2:
        quota, _, period = v2.partition(" ")
        if quota != "max" and period:
            try:
                return max(1, math.ceil(int(quota) / int(period)))
            except (ValueError, ZeroDivisionError):
                return None
        return None
    for d in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"):
        quota_s, period_s = _read(d + "/cpu.cfs_quota_us"), _read(d + "/cpu.cfs_period_us")
        if quota_s and period_s:
            try:
                quota, period = int(quota_s), int(period_s)
            except ValueError:
                return None
            if quota > 0 and period > 0:
                return max(1, math.ceil(quota / period))
            return None
    return None


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return max(1, min(n, limit) if limit is not None else n)


def _default_num_threads() -> int:
    if ENV_NUM_THREADS is not None:
        return ENV_NUM_THREADS
    omp = _env("OMP_NUM_THREADS")
    if omp is not None:
        # OMP_NUM_THREADS may be a nesting list "4,2": the first level is ours.  It is not our
        # variable, so a malformed value is ignored rather than fatal.
        n = _parse_positive_int(omp.split(",")[0].strip())
        if n is not None:
            return n
    return available_cpus()


_num_threads: int = _default_num_threads()
# Lowered by a threadpoolctl controller while `threadpool_limits` is active (None: no limit).
_threadpool_limit: Optional[int] = None
# Set in a child created by fork(): GNU OpenMP cannot rebuild its thread pool there, so kernels
# must stay on one thread or they may hang.
_in_forked_child: bool = False


def _after_fork_in_child() -> None:
    global _in_forked_child
    _in_forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def set_num_threads(n: int) -> None:
    """Set the number of threads kernels may use (process-wide, like ``torch.set_num_threads``)."""
    global _num_threads
    # bool is an int subclass but never a meaningful thread count.
    if isinstance(n, (bool, np.bool_)) or not hasattr(type(n), "__index__"):
        raise TypeError(f"set_num_threads() expects an int >= 1, got {type(n).__name__} {n!r}")
    value = operator.index(n)
    if value < 1:
        raise ValueError(f"set_num_threads() expects an int >= 1, got {value}")
    if value > _MAX_THREADS:
        raise ValueError(f"set_num_threads() expects an int <= {_MAX_THREADS}, got {value}")
    _num_threads = value


def set_threadpool_limit(n: Optional[int]) -> None:
    """Hook for a threadpoolctl controller: cap the thread count (None lifts the cap)."""
    global _threadpool_limit
    _threadpool_limit = None if n is None else max(1, int(n))


def effective_num_threads() -> int:
    """Threads the next kernel call gets; the front end asks before every kernel call."""
    if _in_forked_child:
        return 1
    limit = _threadpool_limit
    return _num_threads if limit is None else min(_num_threads, limit)


def get_num_threads() -> int:
    """Number of threads the next large call will use (honours threadpoolctl limits and fork)."""
    return effective_num_threads()
