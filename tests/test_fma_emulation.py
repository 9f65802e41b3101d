"""The baseline build's software fma (fs_fma_soft / fs_fmaf_soft in _selu_kernels.h) gives the
bits of the C library's correctly rounded fma/fmaf: tests/c/fma_emulation.c, compiled here
without -mfma, on random and constructed hard operands (ties, cancellation, huge operands,
zeros, inf, NaN)."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "tests" / "c" / "fma_emulation.c"
HEADER_DIR = ROOT / "fastselu"


def _compiler():
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(os.environ.get("CC", cc)) or shutil.which("cc") or shutil.which("gcc")


@pytest.mark.skipif(sys.platform == "win32", reason="the UCRT's fma is not a correct reference")
@pytest.mark.skipif(
    not (HEADER_DIR / "_selu_kernels.h").exists() or not SRC.exists(), reason="no source tree"
)
def test_software_fma_matches_libm(tmp_path):
    cc = _compiler()
    if cc is None:
        pytest.skip("no C compiler")
    exe = tmp_path / "fma_emulation"
    build = subprocess.run(
        [
            cc,
            "-O2",
            "-ffp-contract=off",
            "-fno-math-errno",
            "-fno-trapping-math",
            f"-I{HEADER_DIR}",
            str(SRC),
            "-o",
            str(exe),
            "-lm",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 of " in r.stdout and r.stdout.count(" 0 of ") == 3, r.stdout


def test_variants_agree_where_the_emulated_fma_is_hardest():
    """Every SIMD variant (the baseline one with the emulated fma) gives the same bits for tiny
    gradients (subnormal results), subnormal x, x near exp's underflow and huge operands."""
    np = pytest.importorskip("numpy")
    K = pytest.importorskip("fastselu._kernels")
    if len(K.SUPPORTED) < 2:
        pytest.skip("one SIMD variant on this machine")
    rng = np.random.default_rng(7)
    n = 50_000
    out = {}
    try:
        for v in K.SUPPORTED:
            K.set_simd(v)
            res = []
            for dt, emin in ((np.float64, -1074), (np.float32, -149)):
                g = (rng.standard_normal(n) * 2.0 ** rng.integers(emin, emin + 120, n)).astype(dt)
                x = rng.standard_normal(n).astype(dt)
                sub = (rng.standard_normal(n) * 2.0 ** rng.integers(emin, emin + 60, n)).astype(dt)
                low = rng.uniform(-745 if dt == np.float64 else -104, -80, n).astype(dt)
                big = (rng.standard_normal(n) * np.finfo(dt).max / 4).astype(dt)
                for kind, args in (
                    ("f", (sub,)),
                    ("f", (big,)),
                    ("b", (g, x)),
                    ("b", (g, low)),
                    ("b", (big, x)),
                    ("b", (x, low)),
                ):
                    o = np.empty_like(args[-1])
                    K.forward(args[0], o, 1) if kind == "f" else K.backward_x(*args, o, 1)
                    res.append(o.view(np.uint64 if dt == np.float64 else np.uint32))
            rng = np.random.default_rng(7)
            out[v] = res
    finally:
        K.set_simd(None)
    first = out[K.SUPPORTED[0]]
    for v, res in out.items():
        for i, (a, b) in enumerate(zip(first, res)):
            assert np.array_equal(a, b), (v, i, int(np.count_nonzero(a != b)))
