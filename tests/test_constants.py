"""The kernels' constants have one source: tools/fit_poly.py writes fastselu/_selu_constants.h
(the C kernels) and fastselu/_selu_constants.py (the numba backend)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TOOLS = Path(__file__).resolve().parent.parent / "tools" / "fit_poly.py"


@pytest.mark.skipif(not TOOLS.exists(), reason="tools/ is not in this tree (installed package)")
def test_generated_constants_are_up_to_date():
    pytest.importorskip("mpmath")
    r = subprocess.run(
        [sys.executable, str(TOOLS), "--check"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_split_constants_are_exact_splits():
    """hi + lo equals the exact value to well below lo's own last bit."""
    import mpmath as mp

    from fastselu import _selu_constants as C
    from fastselu._constants import ALPHA_STR, SCALE_STR

    with mp.workdps(60):
        scale = mp.mpf(SCALE_STR)
        sa = scale * mp.mpf(ALPHA_STR)
        for exact, hi, lo, bits in (
            (scale, C.SCALE_HI, C.SCALE_LO, 53),
            (sa, C.SA_HI, C.SA_LO, 53),
            (scale, C.SCALE_HI_F, C.SCALE_LO_F, 24),
            (sa, C.SA_HI_F, C.SA_LO_F, 24),
        ):
            err = abs(mp.mpf(float(hi)) + mp.mpf(float(lo)) - exact)
            assert err <= abs(mp.mpf(float(lo))) * mp.mpf(2) ** -bits
        assert isinstance(C.SA_HI_F, np.float32) and C.FS_T32_HI[0] == C.SA_HI_F
