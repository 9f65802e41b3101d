"""Self-normalization (issue 14, item 5): a 64-layer, width-512 MLP with lecun_normal weights,
SELU and AlphaDropout(0.05) keeps activations at mean ~0, variance ~1; ReLU + He and tanh do not."""

import numpy as np
import pytest

from fastselu import _demo
from util import run_python


@pytest.fixture(scope="module")
def runs():
    return {kind: _demo.propagate(kind, samples=256) for kind in ("selu", "relu", "tanh")}


def test_selu_keeps_mean_zero_variance_one_in_every_layer(runs):
    mean, var = runs["selu"]
    assert mean.shape == (64,)
    # measured (256 x 512 activations per layer): |mean| < 0.007, variance 0.984 .. 1.009
    assert np.all(np.abs(mean) < 0.03), mean
    assert np.all((var > 0.95) & (var < 1.05)), var


def test_relu_and_tanh_do_not(runs):
    mean, var = runs["relu"]
    assert np.all(mean > 0.2)  # ReLU's outputs are positive: the mean never returns to 0
    assert np.any(np.abs(var - 1) > 0.2)
    mean, var = runs["tanh"]
    assert var[3] < 0.2 and var[-1] < 0.02  # tanh's variance decays layer after layer


def test_demo_command(tmp_path):
    plot = tmp_path / "demo.png"
    args = ["-m", "fastselu", "demo", "--depth", "4", "--samples", "32"]
    try:
        import matplotlib  # noqa: F401

        args += ["--plot", str(plot)]
    except ImportError:
        plot = None
    r = run_python(None, *args)
    assert r.returncode == 0, r.stderr
    assert "SELU: mean in" in r.stdout
    if plot is not None:
        assert plot.stat().st_size > 1000
