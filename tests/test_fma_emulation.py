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
@pytest.mark.skipif(not (HEADER_DIR / "_selu_kernels.h").exists(), reason="no source tree")
def test_software_fma_matches_libm(tmp_path):
    cc = _compiler()
    if cc is None:
        pytest.skip("no C compiler")
    exe = tmp_path / "fma_emulation"
    build = subprocess.run(
        [cc, "-O2", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math",
         f"-I{HEADER_DIR}", str(SRC), "-o", str(exe), "-lm"],
        capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 of " in r.stdout and r.stdout.count(" 0 of ") == 2, r.stdout
