"""The accuracy checker (python -m fastselu.check) on small parts of its work: it runs, measures
within the bounds, and fails when a bound is broken.  The full run is the slow
test_kernels.test_exhaustive_float32_and_float64_check."""

import os

import numpy as np
import pytest

import fastselu

pytestmark = pytest.mark.skipif(
    "cython" not in fastselu.available_backends(), reason="compiled backend not built"
)


@pytest.fixture
def check():
    from fastselu import check

    return check


def test_float64_part(check):
    from fastselu._kernels import SUPPORTED
    from fastselu._ulp import hard_inputs

    x = hard_inputs(np.float64, 1000)[::10]
    report = check.check_float64(x, 1, list(SUPPORTED))
    assert set(report) == set(check.BOUND)
    for name, r in report.items():
        assert r["inputs"] == x.size
        assert r["max_ulp"] <= check.BOUND[name] and r["variant_mismatches"] == 0, (name, r)


def test_a_broken_bound_fails(check, monkeypatch, capsys):
    monkeypatch.setitem(check.BOUND, "forward", 0.01)
    # as on macOS and Windows: the default process count must not need it
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    assert check.main(["--f32-blocks", "1", "--f64", "0", "--processes", "1"]) == 1
    lines = capsys.readouterr().out.splitlines()
    forward = next(line for line in lines if line.startswith("float32 forward"))
    backward = next(line for line in lines if line.startswith("float32 backward"))
    assert forward.endswith("FAIL") and not backward.endswith("FAIL")
    assert lines[-1] == "FAILED"
