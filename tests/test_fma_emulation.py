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


SPECIAL = """0x0p+0 -0x0p+0 inf -inf -0x1.2p+4 -0x1.200002p+4 -0x1.1ffbe8p+4 -0x1.93e594p+99
-0x1.4484cp-100 0x1.fffffep+127 -0x1.fffffep+127 0x1.e74b2ep+127 0x1.e74b3p+127 0x1.e74b32p+127
0x1p-126 -0x1p-126 0x1p-149 -0x1p-149 0x1p-1 -0x1p-1 0x1.6p+6 -0x1.6p+6"""
FLAGGED = """0x1p-149 -0x1p-149 -0x1.4p-63 -0x1.8p-62 -0x1.2c2fcp-5 -0x1.4p-5 -0x1.06e4p-1
-0x1.37e4p-1 -0x1.022bp+1 -0x1.058bp+1 0x1.4p-126 -0x1.78p-5 -0x1.28p-4 -0x1.bbc372p-4
-0x1.aae4p+0"""


def test_float32_forward_variants_agree_on_special_inputs_tails_and_flagged_groups():
    """The float32 forward of every variant gives the same bits for the inputs that the baseline's
    SSE2 kernel treats apart: signed zeros, inf, NaN payloads, x at and below the -18 clamp, the
    overflow edge, subnormals, and inputs whose emulated fmas are flagged (exact ties) so that
    their group of 8 is redone exactly, each at every position of short arrays (the tail path)
    and of groups, written to a new array and in place."""
    np = pytest.importorskip("numpy")
    K = pytest.importorskip("fastselu._kernels")
    if len(K.SUPPORTED) < 2:
        pytest.skip("one SIMD variant on this machine")
    bits = [0x7FC00000, 0xFFC00001, 0x7F800001, 0xFF812345, 0x7FBFFFFF]  # NaNs: quiet, signalling
    # signed zeros, inf, the -18 clamp and below, the overflow edge, the normal range's edges
    special = [float.fromhex(h) for h in SPECIAL.split()]
    nan = np.array(bits, dtype=np.uint32).view(np.float32)
    # inputs the baseline flags (found by its kernel; their sums are exact float ties, and for
    # the last five a rounding to odd that took an exact sum for inexact would round them wrong)
    flagged = [float.fromhex(h) for h in FLAGGED.split()]
    probes = np.concatenate([np.float32(special + flagged), nan])
    rng = np.random.default_rng(11)
    cases = []
    for n in list(range(1, 20)) + [40]:
        for pos in sorted({0, n // 2, n - 1}):
            x = rng.standard_normal(n).astype(np.float32)
            x[pos] = probes[len(cases) % len(probes)]
            cases.append(x)
    for p in probes:  # each probe at every position of two groups and a tail
        for pos in range(19):
            x = rng.standard_normal(19).astype(np.float32)
            x[pos] = p
            cases.append(x)
    _forward_agrees_in_every_variant(K, cases)


# signed zeros, inf, either side of -2^-900, tiny and subnormal, huge, the -128 clamp
SPECIAL64 = """0x0p+0 -0x0p+0 inf -inf -0x1p-900 -0x1.fffffffffffffp-901 -0x1p-997 0x1p-1074
-0x1p-1074 0x1p+901 0x1.fffffffffffffp+1023 -0x1p+7 -0x1.fffffffffffffp+6 -0x1p+997"""


def test_float64_forward_variants_agree_on_sign_runs_block_edges_and_tails():
    """The baseline's float64 forward gathers each block's x <= -2^-900 apart from the other
    elements, runs the two sets through their halves of the kernel in padded groups and puts the
    results back: every variant gives the same bits for runs of one sign and of mixed signs,
    the special inputs at either side of that split (signed zeros, -2^-900 and its neighbour,
    inf, NaN payloads, huge and tiny x, the -128 clamp), lengths around the groups and the block
    of 256, written to a new array and in place."""
    np = pytest.importorskip("numpy")
    K = pytest.importorskip("fastselu._kernels")
    if len(K.SUPPORTED) < 2:
        pytest.skip("one SIMD variant on this machine")
    nan = np.array([0x7FF8000000000000, 0xFFF8000000000001, 0x7FF0000000000001], np.uint64)
    special = [float.fromhex(h) for h in SPECIAL64.split()]
    special = np.concatenate([special, nan.view(np.float64)])
    rng = np.random.default_rng(12)
    cases = []
    for n in list(range(1, 21)) + [255, 256, 257, 515]:
        z = rng.standard_normal(n)
        for x in (-np.abs(z), np.abs(z), z, np.where(np.arange(n) % 2, 1.0, -1.0) * np.abs(z)):
            x = x.copy()
            k = rng.integers(0, n, min(n, 4))
            x[k] = rng.choice(special, k.size)
            cases.append(x)
    for p in special:  # each at every position of an array of three groups and a tail
        for pos in range(20):
            x = rng.standard_normal(20)
            x[pos] = p
            cases.append(x)
    _forward_agrees_in_every_variant(K, cases)


# (g, x) whose final fma the baseline's SSE2 backward flags (found by its test): double sums on a
# float midpoint (exact ties, which cvtpd2ps rounds right: the test is cheaper than knowing
# that), and results at or below FLT_MIN (x > 0 among them)
FLAGGED_BWD = """-0x1.8p+22 -0x1.2b991ap+1  -0x1.6p-30 -0x1.6aa05cp+4  0x1.4p+29 -0x1.74a37cp+1
-0x1.4169d2p-19 0x1.8e5892p-1  0x1.08p+0 -0x1.54183cp+5  -0x1.38p-3 -0x1.9f77dep+0
-0x1.4169d2p-10 0x1.088d9cp+2  0x1.ep-1 -0x1.d0a5cap+0  -0x1.000048p-126 -0x1.2b991ap+1
0x1.00004cp-126 -0x1.2b991ap+1  0x1p-149 0x1p+0  -0x1p-126 0x1p-3  0x1.2p-140 -0x1p+1"""


def test_float32_backward_variants_agree_on_flagged_groups():
    """The float32 backward from x of every variant gives the same bits where the baseline's SSE2
    groups flag an element, so that its group of 8 is computed again by the exact scalar kernel:
    each flagged pair at every position of two groups and a tail, written to a new array, into g
    and into x (a flagged group must store nothing before the redo reads its inputs)."""
    np = pytest.importorskip("numpy")
    K = pytest.importorskip("fastselu._kernels")
    if len(K.SUPPORTED) < 2:
        pytest.skip("one SIMD variant on this machine")
    vals = [float.fromhex(h) for h in FLAGGED_BWD.split()]
    pairs = list(zip(vals[::2], vals[1::2]))
    rng = np.random.default_rng(5)
    cases = []
    for gp, xp in pairs:
        for pos in range(19):
            g = rng.standard_normal(19).astype(np.float32)
            x = rng.standard_normal(19).astype(np.float32)
            g[pos], x[pos] = gp, xp
            cases.append((g, x))

    def run(case):
        g, x = case
        o = np.empty_like(x)
        K.backward_x(g, x, o, 1)
        g2, x2 = g.copy(), x.copy()
        K.backward_x(g2, x, g2, 1)
        K.backward_x(g, x2, x2, 1)
        return np.concatenate([o, g2, x2]).view(np.uint32)

    _agrees_in_every_variant(K, cases, run)


def _agrees_in_every_variant(K, cases, run):
    """run(case), the bits of one case's results, is the same in every SIMD variant this CPU
    runs."""
    import numpy as np

    out = {}
    try:
        for v in K.SUPPORTED:
            K.set_simd(v)
            out[v] = np.concatenate([run(c) for c in cases])
    finally:
        K.set_simd(None)
    first = out[K.SUPPORTED[0]]
    for v, res in out.items():
        bad = np.flatnonzero(first != res)
        assert bad.size == 0, (v, bad.size, [hex(first[i]) for i in bad[:4]])


def _forward_agrees_in_every_variant(K, cases):
    """K.forward of each array in `cases`, to a new array and in place, has the same bits in
    every SIMD variant this CPU runs."""
    import numpy as np

    def run(x):
        o = np.empty_like(x)
        K.forward(x, o, 1)
        y = x.copy()
        K.forward(y, y, 1)
        return np.concatenate([o, y]).view(f"u{x.itemsize}")

    _agrees_in_every_variant(K, cases, run)
