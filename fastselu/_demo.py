"""Self-normalization, shown: ``python -m fastselu demo [--plot FILE.png]``.

A deep dense network (64 layers of width 512, inputs N(0, 1)) with lecun_normal weights, SELU
and AlphaDropout (p = 0.05, through the fused ``selu_alpha_dropout``) keeps its activations at
mean ~0 and variance ~1 in every layer (Klambauer et al. 2017): SELU's fixed point.  The same
network with ReLU and He initialisation drifts to a positive mean and a variance far from 1, and
tanh with lecun_normal weights lets the variance decay.  examples/self_normalizing.py runs it.
"""

from __future__ import annotations

import argparse
from typing import Any, Optional, Sequence

import numpy as np

from ._api import lecun_normal, selu_alpha_dropout

DEPTH, WIDTH, SAMPLES, P = 64, 512, 1024, 0.05


def propagate(
    kind: str,
    depth: int = DEPTH,
    width: int = WIDTH,
    samples: int = SAMPLES,
    p: float = P,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer mean and variance of the activations (over samples and units) of a dense
    network of `kind` 'selu' (lecun_normal, SELU + AlphaDropout p), 'relu' (He normal init)
    or 'tanh' (lecun_normal), fed N(0, 1) inputs in float32."""
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((samples, width)).astype(np.float32)
    means, variances = np.empty(depth), np.empty(depth)
    for layer in range(depth):
        if kind == "relu":  # He: N(0, 2/fan_in)
            w = (rng.standard_normal((width, width)) * np.sqrt(2.0 / width)).astype(np.float32)
        else:
            w = lecun_normal((width, width), rng=rng)
        z = h @ w
        if kind == "selu":
            h = selu_alpha_dropout(z, p, seed=rng, inplace=True)
        elif kind == "relu":
            h = np.maximum(z, 0, out=z)
        else:
            h = np.tanh(z, out=z)
        means[layer] = h.mean(dtype=np.float64)
        variances[layer] = h.var(dtype=np.float64)
    return means, variances


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastselu demo",
        description=f"Activation statistics through {DEPTH} dense layers of width {WIDTH}: "
        "SELU + AlphaDropout with lecun_normal weights stays at mean 0, variance 1.",
    )
    parser.add_argument("--plot", metavar="FILE.png", help="also write a plot (needs matplotlib)")
    parser.add_argument("--depth", type=int, default=DEPTH)
    parser.add_argument("--samples", type=int, default=SAMPLES)
    args = parser.parse_args(argv)
    runs: dict[str, Any] = {}
    labels = {
        "selu": f"SELU + AlphaDropout({P}), lecun_normal",
        "relu": "ReLU, He normal",
        "tanh": "tanh, lecun_normal",
    }
    for kind in labels:
        runs[kind] = propagate(kind, depth=args.depth, samples=args.samples)
    print(f"{'layer':>5} " + " ".join(f"{k + ' mean':>10} {k + ' var':>9}" for k in labels))
    for layer in range(args.depth):
        if layer < 4 or layer % 8 == 7 or layer == args.depth - 1:
            print(
                f"{layer + 1:>5} "
                + " ".join(f"{runs[k][0][layer]:>10.4f} {runs[k][1][layer]:>9.4f}" for k in labels)
            )
    m, v = runs["selu"]
    print(
        f"SELU: mean in [{m.min():.3f}, {m.max():.3f}], variance in [{v.min():.3f}, "
        f"{v.max():.3f}] over all {args.depth} layers"
    )
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax_m, ax_v) = plt.subplots(1, 2, figsize=(11, 4))
        layers = np.arange(1, args.depth + 1)
        for kind, label in labels.items():
            ax_m.plot(layers, runs[kind][0], label=label)
            ax_v.plot(layers, runs[kind][1], label=label)
        ax_m.axhline(0, color="grey", lw=0.5)
        ax_v.axhline(1, color="grey", lw=0.5)
        ax_v.set_yscale("log")
        ax_m.set(xlabel="layer", ylabel="mean of activations", title="mean")
        ax_v.set(xlabel="layer", ylabel="variance of activations", title="variance")
        ax_m.legend(fontsize=8)
        fig.suptitle(f"{args.depth} dense layers of width {WIDTH}, inputs N(0, 1)")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")
    return 0
