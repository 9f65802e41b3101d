"""Training step (forward + backward) through fastselu.torch.SELU vs torch.nn.SELU, side by side.

    python bench/torch_train_step.py [--repeat 11] [--threads 1] [--clock cpu|wall] [--dropout P]
                                     [--memory]

With ``--dropout P`` it compares ``fastselu.torch.SELUAlphaDropout(P)`` with
``Sequential(torch.nn.SELU(), torch.nn.AlphaDropout(P))`` instead.  ``--memory`` prints the bytes
that autograd saves between forward and backward for a 1e7-element float32 layer (both pairs).

A step is ``y = act(x); y.backward(g)`` on a leaf ``x`` that requires grad (``x.grad`` reset
each step).  Rounds interleave the implementations; each figure is the median over rounds of
the per-step mean of a timed loop; the ratio fastselu / torch is the median of the rounds' ratios
(each round times both back to back, alternating which goes first).  Both libraries
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
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=["cpu", "wall"], default=None)
    ap.add_argument("--min-time", type=float, default=0.02)
    ap.add_argument("--dropout", type=float, default=None)
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--shapes", default=None, help="e.g. 64x256,256x1024 (default: all three)")
    ap.add_argument(
        "--dtypes", default=None, help="e.g. float16,bfloat16 (default: float32,float64)"
    )
    args = ap.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        ap.error("--clock cpu needs --threads 1 (it times the calling thread only)")
    clock = (
        time.thread_time
        if (args.clock or ("cpu" if args.threads == 1 else "wall")) == "cpu"
        else time.perf_counter
    )
    torch.set_num_threads(args.threads)
    fastselu.set_num_threads(args.threads)
    if args.memory:
        memory()
        return
    if args.dropout is None:
        impls = {"torch": torch.nn.SELU(), "fastselu": fst.SELU()}
        print("torch.nn.SELU vs fastselu.torch.SELU")
    else:
        p = args.dropout
        impls = {
            "torch": torch.nn.Sequential(torch.nn.SELU(), torch.nn.AlphaDropout(p)),
            "fastselu": fst.SELUAlphaDropout(p),
        }
        print(f"Sequential(SELU(), AlphaDropout({p})) vs fastselu.torch.SELUAlphaDropout({p})")
    print(
        f"threads={args.threads} repeat={args.repeat} clock={clock.__name__} "
        f"torch {torch.__version__} fastselu {fastselu.__version__} ({fastselu.get_backend()})"
    )
    print(f"{'shape':>12} {'dtype':>8} {'torch us':>10} {'fastselu us':>12} {'ratio':>6}")
    shapes = (
        SHAPES
        if args.shapes is None
        else [tuple(int(n) for n in item.split("x")) for item in args.shapes.split(",")]
    )
    dtypes = DTYPES if args.dtypes is None else [getattr(torch, n) for n in args.dtypes.split(",")]
    for dtype in dtypes:
        for shape in shapes:
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(shape, dtype=dtype, generator=gen).requires_grad_()
            g = torch.randn(shape, dtype=dtype, generator=gen)
            steps = {name: step_fn(act, x, g) for name, act in impls.items()}
            times: dict[str, list[float]] = {name: [] for name in impls}
            ratios = []
            for r in range(args.repeat):
                order = list(steps) if r % 2 == 0 else list(reversed(steps))
                for name in order:
                    times[name].append(per_step(steps[name], clock, args.min_time))
                ratios.append(times["fastselu"][-1] / times["torch"][-1])
            t_torch = statistics.median(times["torch"]) * 1e6
            t_fs = statistics.median(times["fastselu"]) * 1e6
            print(
                f"{str(shape):>12} {str(dtype)[6:]:>8} {t_torch:10.1f} {t_fs:12.1f} "
                f"{statistics.median(ratios):6.2f}",
                flush=True,
            )


def saved_bytes(fn) -> int:
    """Bytes of the tensors autograd saves while fn() runs (distinct storages counted once)."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def memory(n: int = 10_000_000, p: float = 0.1) -> None:
    x = torch.randn(n).requires_grad_()
    h = x * 1  # a non-leaf, as a Linear's output would be
    pairs = {
        "torch SELU + AlphaDropout": lambda: torch.nn.AlphaDropout(p)(torch.nn.SELU()(h)),
        "fastselu SELUAlphaDropout": lambda: fst.SELUAlphaDropout(p)(h),
        "fastselu SELUAlphaDropout inplace": lambda: fst.SELUAlphaDropout(p, True)(h * 1),
        "torch SELU": lambda: torch.nn.SELU()(h),
        "fastselu SELU": lambda: fst.SELU()(h),
    }
    print(f"bytes saved by autograd for a {n:.0e}-element float32 layer (p = {p}):")
    for name, fn in pairs.items():
        print(f"  {name:36s} {saved_bytes(fn) / 1e6:8.1f} MB")


if __name__ == "__main__":
    main()
