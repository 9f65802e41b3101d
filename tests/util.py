"""Helpers shared by the tests."""

import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastselu

# The directory holding the package under test, so subprocesses import the same copy.
PACKAGE_ROOT = str(Path(fastselu.__file__).resolve().parent.parent)


@contextlib.contextmanager
def switched_backend(name):
    """Use backend `name` inside the block, restoring the previous one afterwards."""
    previous = fastselu.get_backend()
    fastselu.set_backend(name)
    try:
        yield name
    finally:
        fastselu.set_backend(previous)


def clean_env(**overrides):
    """os.environ without fastselu/numba/OpenMP settings, plus `overrides`, importing this
    fastselu."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FASTSELU_", "NUMBA_")) and k != "OMP_NUM_THREADS"
    }
    env["PYTHONPATH"] = PACKAGE_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(overrides)
    return env


def run_python(code, *args, timeout=120, cwd=PACKAGE_ROOT, **env):
    """Run `python -c code` (dedented; or `python args...` if code is None) in a clean
    environment, in `cwd`."""
    script = ["-c", textwrap.dedent(code)] if code is not None else []
    cmd = [sys.executable, *script, *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=clean_env(**env), cwd=str(cwd)
    )


def same_floats(a, b):
    """Bitwise-style equality for float arrays: NaN matches NaN, and zeros must agree in sign."""
    a, b = np.asarray(a), np.asarray(b)
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and np.array_equal(a, b, equal_nan=True)
        and np.array_equal(np.signbit(a), np.signbit(b))
    )


def fast_path_inputs(dtype, n=4096, seed=3):
    """(g, x) where every x takes the backward's fast path (fs_bwd_x_*_hard false: x >= -80 in
    float32, x > -700 in float64), g over many magnitudes."""
    rng = np.random.default_rng(seed)
    lim, gmax = (79.0, 80) if dtype == np.float32 else (699.0, 700)
    tiny = float(np.finfo(dtype).smallest_subnormal)
    x = np.concatenate(
        [rng.uniform(-30, 5, n // 2), -np.exp(rng.uniform(np.log(tiny), np.log(lim), n // 2))]
    )
    g = np.exp(rng.uniform(-gmax, gmax, n)) * rng.choice([-1.0, 1.0], n)
    return g.astype(dtype), x.astype(dtype)


# The long double oracles of fastselu._ulp (exact_*, mp_* rounded to long double, and ulp_error's
# float64 arithmetic) are exact enough for float64 only with x86's 80-bit long double: it is plain
# double on macOS arm64 and Windows, and IEEE quad on aarch64 Linux, where _ulp's 80-bit split of
# SCALE*ALPHA does not apply.  float32 (and float16) checks work everywhere: there the oracle
# falls back to float64, which is exact enough.
LONGDOUBLE_IS_80BIT = np.finfo(np.longdouble).nmant == 63
needs_80bit = pytest.mark.skipif(
    not LONGDOUBLE_IS_80BIT, reason="float64 oracle (fastselu._ulp) needs x86 80-bit long double"
)


def oracle_dtypes(*dtypes):
    """`dtypes` for parametrize, float64 marked needs_80bit (its oracle is long double)."""
    return [pytest.param(d, marks=needs_80bit) if np.dtype(d) == np.float64 else d for d in dtypes]
