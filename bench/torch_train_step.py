"""Training step (forward + backward) through fastselu.torch.SELU vs torch.nn.SELU, side by side.

    python bench/torch_train_step.py [--repeat 11] [--threads 1] [--clock cpu|wall]

A step is ``y = act(x); y.backward(g)`` on a leaf ``x`` that requires grad (``x.grad`` reset
each step).  Rounds interleave the implementations; each figure is the median over rounds of
the per-step mean of a timed loop.  Prints times and the ratio fastselu / torch.  Both libraries
get the same thread count.  Not a test: on a shared machine only the ratio means something.

On a busy machine wall-clock figures mostly measure waiting for a core; with one thread (the
default) ``--clock cpu`` (the default there) times the calling thread's CPU time instead, which
is where torch (intra-op pool of one), fastselu and the autograd engine (CPU tensors run their
backward on the calling thread) all do their work.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import fastselu
import fastselu.torch as fst

SHAPES = [(64, 256), (256, 1024), (1024, 4096)]
DTYPES = [torch.float32, torch.float64]


def step_fn(act, x, g):
    def step():
        x.grad = None
        act(x).backward(g)
    return step


def per_step(fn, clock, min_time=0.05):
    fn()
    n, t = 1, 0.0
    while True:
        t0 = clock()
        for _ in range(n):
            fn()
        t = clock() - t0
        if t >= min_time:
            return t / n
        n *= 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=["cpu", "wall"], default=None)
    ap.add_argument("--min-time", type=float, default=0.05)
    args = ap.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        ap.error("--clock cpu needs --threads 1 (it times the calling thread only)")
    clock = time.thread_time if (args.clock or ("cpu" if args.threads == 1 else "wall")) == "cpu" \
        else time.perf_counter
    torch.set_num_threads(args.threads)
    fastselu.set_num_threads(args.threads)
    impls = {"torch.nn.SELU": torch.nn.SELU(), "fastselu.torch.SELU": fst.SELU()}
    print(f"threads={args.threads} repeat={args.repeat} clock={clock.__name__} "
          f"torch {torch.__version__} fastselu {fastselu.__version__} ({fastselu.get_backend()})")
    print(f"{'shape':>12} {'dtype':>8} {'torch us':>10} {'fastselu us':>12} {'ratio':>6}")
    for dtype in DTYPES:
        for shape in SHAPES:
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(shape, dtype=dtype, generator=gen).requires_grad_()
            g = torch.randn(shape, dtype=dtype, generator=gen)
            times = {name: [] for name in impls}
            for _ in range(args.repeat):
                for name, act in impls.items():
                    times[name].append(per_step(step_fn(act, x, g), clock, args.min_time))
            t_torch = statistics.median(times["torch.nn.SELU"]) * 1e6
            t_fs = statistics.median(times["fastselu.torch.SELU"]) * 1e6
            print(f"{str(shape):>12} {str(dtype)[6:]:>8} {t_torch:10.1f} {t_fs:12.1f} "
                  f"{t_fs / t_torch:6.2f}", flush=True)


if __name__ == "__main__":
    main()
