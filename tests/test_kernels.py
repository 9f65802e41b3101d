"""The compiled kernels: accuracy (sampled here, exhaustive in the slow test), bit-identity
across SIMD variants, thread counts and strided views."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastselu
from fastselu._ulp import (
    exact_selu,
    exact_selu_backward,
    exact_selu_backward_result,
    hard_inputs,
    mp_selu,
    ulp_error,
)
from util import fast_path_inputs, needs_80bit, oracle_dtypes, run_python

K = pytest.importorskip("fastselu._kernels")
pytestmark = pytest.mark.skipif(
    "cython" not in fastselu.available_backends(), reason="compiled backend not built"
)


def run(kind, *arrays, nthreads=2):
    out = np.empty_like(arrays[-1])
    getattr(K, kind)(*arrays, out, nthreads)
    return out


@pytest.mark.parametrize("dtype", oracle_dtypes(np.float32, np.float64))
@pytest.mark.parametrize("simd", list(K.SUPPORTED))
def test_accuracy_sampled(dtype, simd):
    x = hard_inputs(dtype, n=600_000)
    rng = np.random.default_rng(1)
    g = (np.exp(rng.uniform(-20, 20, x.size)) * rng.choice([-1, 1], x.size)).astype(dtype)
    one = np.ones_like(x)
    K.set_simd(simd)
    try:
        y = run("forward", x)
        assert ulp_error(y, exact_selu(x), dtype).max() <= 1.0
        assert ulp_error(run("backward_x", one, x), exact_selu_backward(one, x), dtype).max() <= 1.0
        assert ulp_error(run("backward_x", g, x), exact_selu_backward(g, x), dtype).max() <= 1.5
        # long double's SA is not exact enough right at y = -SA for float64 (checked by mpmath
        # in fastselu.check); everywhere else it is
        sa = np.longdouble(fastselu.SCALE) * np.longdouble(fastselu.ALPHA)
        for yy in (y, x):  # SELU results, then any y (below -SA the general form)
            with np.errstate(invalid="ignore"):  # signalling NaNs among the inputs
                keep = np.abs(yy.astype(np.longdouble) + sa) > 1e-12
            err = ulp_error(run("backward_y", g, yy), exact_selu_backward_result(g, yy), dtype)
            assert err[keep].max() <= 1.5
    finally:
        K.set_simd(None)


@needs_80bit
def test_float64_against_mpmath():
    rng = np.random.default_rng(2)
    x = np.concatenate(
        [
            rng.uniform(-40, 0, 3000),
            -np.exp(rng.uniform(-745, 0, 2000)),
            (np.arange(-60, 1) + 0.5) * np.log(2.0),
        ]
    )
    assert ulp_error(run("forward", x), mp_selu(x), np.float64).max() <= 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -1e4], dtype=dtype)
    y = run("forward", x)
    sa = np.float64(1.7580993408473768).astype(dtype)  # -SA rounded once to the dtype
    assert np.isnan(y[0]) and y[1] == np.inf
    assert y[2] == -sa and y[5] == -sa
    assert y[3] == 0 and not np.signbit(y[3]) and y[4] == 0 and np.signbit(y[4])
    d = run("backward_x", np.ones_like(x), x)
    assert np.isnan(d[0]) and d[1] == dtype(1.0507009873554805) and d[2] == 0
    assert d[3] == d[4] == sa  # derivative at 0 is SCALE*ALPHA


def test_overflow_boundary_float32():
    # x*SCALE rounds to FLT_MAX at 3.2386221e38 (x * float32(SCALE) gives inf there)
    top = np.float32(np.finfo(np.float32).max)
    x = np.float32(3.2386221e38)
    assert run("forward", np.array([x]))[0] == top
    x_inf = np.nextafter(x, np.float32(np.inf))
    exact = exact_selu(np.array([x_inf]))
    assert ulp_error(run("forward", np.array([x_inf])), exact, np.float32)[0] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threads_and_chunks_bit_identical(dtype):
    x = hard_inputs(dtype, n=150_001)
    g = np.random.default_rng(3).standard_normal(x.size).astype(dtype)
    for kind, args in (("forward", (x,)), ("backward_x", (g, x)), ("backward_y", (g, x))):
        ref = run(kind, *args, nthreads=1)
        for nt in (2, 3, 7):
            assert np.array_equal(run(kind, *args, nthreads=nt).view(np.uint8), ref.view(np.uint8))
        # piecewise over odd chunks, as the front end does for strided input
        pieces = np.concatenate(
            [
                run(kind, *(a[i : i + 9973] for a in args), nthreads=1)
                for i in range(0, x.size, 9973)
            ]
        )
        assert np.array_equal(pieces.view(np.uint8), ref.view(np.uint8))


def test_in_place_same_buffer():
    x = hard_inputs(np.float64, n=100_000)
    ref = run("forward", x)
    K.forward(x, x, 2)
    assert np.array_equal(x.view(np.uint64), ref.view(np.uint64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("simd", list(K.SUPPORTED))
def test_aliased_out_every_variant(dtype, simd):
    """out may be g, x (or y), or both, and g may be x: the out-of-place bits, in every variant,
    for blocks with hard elements (a kernel that stores a block's fast results before it knows
    the block is hard must not read them back as inputs) and for one hard element among fast
    ones."""
    rng = np.random.default_rng(11)
    mixed = hard_inputs(dtype, n=20_000)
    smooth = (rng.standard_normal(20_000) * 3).astype(dtype)
    smooth[5000] = np.nan
    g = np.resize(hard_inputs(dtype, n=20_000, seed=3), mixed.size)
    K.set_simd(simd)
    try:
        for x in (mixed, smooth, fastselu.selu(smooth)):
            gx = g[: x.size]
            want = run("forward", x)
            a = x.copy()
            K.forward(a, a, 2)
            assert np.array_equal(a.view(np.uint8), want.view(np.uint8))
            for kind in ("backward_x", "backward_y"):
                kernel = getattr(K, kind)
                want = run(kind, gx, x).view(np.uint8)
                a, b = gx.copy(), x.copy()
                kernel(a, b, a, 2)  # out is g
                assert np.array_equal(a.view(np.uint8), want), (kind, "g")
                a, b = gx.copy(), x.copy()
                kernel(a, b, b, 2)  # out is x
                assert np.array_equal(b.view(np.uint8), want), (kind, "x")
                a = x.copy()
                kernel(a, a, a, 2)  # g is x, and out too
                assert np.array_equal(a.view(np.uint8), run(kind, x, x).view(np.uint8)), kind
    finally:
        K.set_simd(None)


def test_strided_view_bit_identical():
    x = hard_inputs(np.float32, n=300_000)
    x = x[: x.size // 3 * 3].reshape(-1, 3)
    ref = fastselu.selu(np.ascontiguousarray(x[:, 1]))
    assert np.array_equal(fastselu.selu(x[:, 1]).view(np.uint32), ref.view(np.uint32))
    assert np.array_equal(fastselu.selu(x[::-1, 1])[::-1].view(np.uint32), ref.view(np.uint32))


@pytest.mark.parametrize("dtype", oracle_dtypes(np.float32, np.float64))
@pytest.mark.parametrize("simd", list(K.SUPPORTED))
def test_backward_fast_path_blocks(dtype, simd):
    """Runs of x without a hard element take the backward's fast path alone (one vector at a
    time with AVX-512, four with AVX2, blocks of 1024 elsewhere): within the bounds, and the same
    bits for every element whatever else shares its vectors or block (so that never shows in the
    results)."""
    g, x = fast_path_inputs(dtype)
    one = np.ones_like(x)
    hard_x = -85.0 if dtype == np.float32 else -800.0

    def bits(a):
        return a.view(np.uint32 if dtype == np.float32 else np.uint64)

    K.set_simd(simd)
    try:
        assert ulp_error(run("backward_x", one, x), exact_selu_backward(one, x), dtype).max() <= 1.0
        fast = run("backward_x", g, x, nthreads=1)
        assert ulp_error(fast, exact_selu_backward(g, x), dtype).max() <= 1.5
        for i, (gi, xi) in enumerate(
            [
                (1.0, hard_x),
                (0.0, 1.0),
                (-0.0, -1.0),
                (np.inf, -1.0),
                (np.nan, 0.5),
                (1.0, np.nan),
                (1.0, -np.inf),
            ]
        ):
            gh, xh = g.copy(), x.copy()
            k = 100 + 550 * i  # each in a block of 1024 of its own, or nearly
            gh[k], xh[k] = gi, xi
            mixed = run("backward_x", gh, xh, nthreads=1)
            keep = np.arange(x.size) != k
            assert np.array_equal(bits(mixed[keep]), bits(fast[keep]))
            assert bits(mixed[k : k + 1]) == bits(run("backward_x", gh[k : k + 1], xh[k : k + 1]))
    finally:
        K.set_simd(None)


def test_simd_variants_bit_identical_across_processes(tmp_path):
    """FASTSELU_SIMD in fresh processes: every variant gives the same bits."""
    with np.errstate(invalid="ignore"):  # signalling NaN bit patterns: quiet after the cast
        x32 = hard_inputs(np.float32, 50_000).astype(np.float64)
    x = np.concatenate([x32, hard_inputs(np.float64, 50_000)])
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, numpy as np, fastselu; x = np.load(sys.argv[1]); "
        "g = np.cos(x); y = fastselu.selu(x);"
        "print(fastselu._kernels.simd()); sys.stdout.flush();"
        "np.save(sys.argv[2], np.concatenate(["
        " y, fastselu.selu(x.astype(np.float32)).astype(np.float64),"
        " fastselu.selu_backward(g, x), fastselu.selu_backward(g, y, is_result=True)]))"
    )
    results = {}
    for simd in K.SUPPORTED:
        out = tmp_path / f"{simd}.npy"
        p = run_python(code, str(tmp_path / "x.npy"), str(out), FASTSELU_SIMD=simd)
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == simd
        results[simd] = np.load(out)
    first = next(iter(results.values()))
    for simd, r in results.items():
        assert np.array_equal(r.view(np.uint64), first.view(np.uint64)), simd


def test_simd_cap_picks_best_at_or_below():
    try:
        assert K.set_simd("baseline") == "baseline"
        assert K.set_simd(None) == K.SUPPORTED[0]
        with pytest.raises(ValueError):
            K.set_simd("sse9")
    finally:
        K.set_simd(None)


def test_simd_cap_of_another_architecture_or_missing_variant():
    """A declared name this build lacks: the best compiled variant below it in its own
    architecture's order; another architecture's name means baseline (SPEC: FASTSELU_SIMD)."""
    from fastselu import _targets

    try:
        for variants in _targets.TARGETS.values():
            order = list(variants)
            for name in order:
                got = K.set_simd(name)
                below = [v for v in order[order.index(name) :] if v in K.SUPPORTED]
                assert got == (below[0] if K.VARIANTS[0] in order else "baseline"), (name, got)
    finally:
        K.set_simd(None)


def test_targets_declared_once():
    """Every declared variant has its one source file; the build compiled this architecture's
    variants in the declared order, baseline last."""
    from fastselu import _targets

    names = _targets.variant_names()
    assert names[-1] == "baseline" and len(set(names)) == len(names)
    src = Path(__file__).resolve().parent.parent / "fastselu"
    if (src / "_targets.py").is_file() and (src / "_simd_baseline.c").is_file():
        for name in names:
            assert (src / f"_simd_{name}.c").is_file(), name
    arch = (
        next(a for a, v in _targets.TARGETS.items() if K.VARIANTS[0] in v)
        if K.VARIANTS[0] != "baseline"
        else None
    )
    order = list(_targets.TARGETS[arch]) if arch else ["baseline"]
    assert list(K.VARIANTS) == [v for v in order if v in K.VARIANTS]
    assert K.VARIANTS[-1] == "baseline"


def test_fp_exception_flags_untouched():
    import ctypes

    libm = ctypes.CDLL("libm.so.6")
    FE_ALL = 0x3D  # x86: invalid, divbyzero, overflow, underflow, inexact (denormal excluded)
    x = np.array([-1e4, 1e38, np.nan, -1e-40, 0.5] * 1000, dtype=np.float32)
    out = np.empty_like(x)
    for kernel, args in ((K.forward, (x,)), (K.backward_x, (x, x)), (K.backward_y, (x, x))):
        libm.feclearexcept(FE_ALL)
        kernel(*args, out, 1)
        assert libm.fetestexcept(FE_ALL) == 0  # the kernels raised flags; none leak
        libm.feraiseexcept(0x10)  # underflow set before the call stays set
        kernel(*args, out, 1)
        assert libm.fetestexcept(FE_ALL) == 0x10
        libm.feclearexcept(FE_ALL)


@pytest.mark.slow
def test_exhaustive_float32_and_float64_check():
    """Every float32 input for every variant, and 10^6 float64 inputs against mpmath."""
    p = run_python(None, "-m", "fastselu.check", "--f64", str(10**6), timeout=3600)
    print(p.stdout)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "OK" in p.stdout


def test_no_libm_math_in_the_extension():
    """The kernels' results must not depend on the C library: no libm fma (glibc's is exact but
    slow without FMA3, UCRT's is not correctly rounded there), exp, expm1 or log is imported.
    (The baseline's fused multiply-adds are emulated, the others are the instruction.)"""
    nm = shutil.which("nm")
    if nm is None or sys.platform != "linux":
        pytest.skip("needs binutils' nm on Linux")
    out = subprocess.run(
        [nm, "-D", "--undefined-only", K.__file__], capture_output=True, text=True, check=True
    ).stdout
    names = {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}
    libm = {"fma", "fmaf", "exp", "expf", "expm1", "expm1f", "log", "log1p", "pow", "ldexp"}
    assert not names & libm, sorted(names & libm)
