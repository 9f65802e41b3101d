"""Fused SELU + AlphaDropout against PyTorch, side by side (issue 14's speed table).

    python bench/dropout_speed.py [--repeat 7] [--threads 1,2] [--sizes 1e5,1e6,1e7]
                                  [--dtypes float32,float64] [--p 0.1]

(--dtypes also takes float16 and bfloat16, beside PyTorch's own float16/bfloat16 ops.)

For each thread count, size and dtype, rounds interleave (each round times every row once, the
order rotating from round to round); a figure is the median over rounds of a timed loop's mean
(wall clock, or with ``--clock cpu`` the process's CPU time, all threads and the kernel's page
faults included: what a busy machine distorts least).  Rows:

* ``torch fwd``: ``F.alpha_dropout(F.selu(t), p, True)`` on a leaf that requires grad;
* ``torch fwd+bwd``: the same, then ``.backward(g)``;
* ``fs fwd``: ``fastselu.torch.selu_alpha_dropout(t, p, True)`` on the same kind of leaf;
* ``fs fwd+bwd``: the same, then ``.backward(g)``;
* ``np fwd out=``: ``fastselu.selu_alpha_dropout(x, p, seed=1, out=o)`` (NumPy API);
* ``np selu out=``: ``fastselu.selu(x, out=o)``;
* ``np drop out=``: ``fastselu.alpha_dropout(x, p, seed=1, out=o)``, AlphaDropout alone: the
  Philox mask and the affine map at the SPEC's accuracy, what the fused kernel adds to a SELU.

The last column, ``bound``, is torch's forward time over the slower of ``np selu out=`` and
``np drop out=``: a fused forward does the work of both (the SELU of the kept elements, the mask
and the affine map of all), so it cannot gain more over torch than that unless one of the two
kernels alone gets faster.

Both libraries get the same thread count (torch draws its mask serially, so a second thread
helps it little).  Not a test: on a shared machine only ratios taken in one run mean something.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

import fastselu
import fastselu.torch as fst

CLOCK = time.perf_counter


def timed(fn, min_time):  # type: ignore[no-untyped-def]
    fn()
    n = 1
    while True:
        t0 = CLOCK()
        for _ in range(n):
            fn()
        t = CLOCK() - t0
        if t >= min_time:
            return t / n
        n *= 2


def rows(n: int, dtype: torch.dtype, p: float):  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(0)
    t = torch.randn(n, generator=gen).to(dtype).requires_grad_(True)
    g = torch.randn(n, generator=gen).to(dtype)
    if dtype is torch.bfloat16:  # NumPy's bfloat16 is ml_dtypes'
        import ml_dtypes

        x = t.detach().view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    else:
        x = t.detach().numpy().copy()
    o = np.empty_like(x)

    def torch_fwd() -> None:
        F.alpha_dropout(F.selu(t), p, True)

    def torch_fb() -> None:
        t.grad = None
        F.alpha_dropout(F.selu(t), p, True).backward(g)

    def fs_fwd() -> None:
        fst.selu_alpha_dropout(t, p, True)

    def fs_fb() -> None:
        t.grad = None
        fst.selu_alpha_dropout(t, p, True).backward(g)

    def np_fwd() -> None:
        fastselu.selu_alpha_dropout(x, p, seed=1, out=o)

    def np_selu() -> None:
        fastselu.selu(x, out=o)

    def np_drop() -> None:
        fastselu.alpha_dropout(x, p, seed=1, out=o)

    return {
        "torch fwd": torch_fwd,
        "torch fwd+bwd": torch_fb,
        "fs fwd": fs_fwd,
        "fs fwd+bwd": fs_fb,
        "np fwd out=": np_fwd,
        "np selu out=": np_selu,
        "np drop out=": np_drop,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--sizes", default="1e5,1e6,1e7")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--p", type=float, default=0.1)
    ap.add_argument("--min-time", type=float, default=0.05)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"fastselu {fastselu.__version__}, torch {torch.__version__}, p = {args.p}")
    for nt in (int(s) for s in args.threads.split(",")):
        torch.set_num_threads(nt)
        fastselu.set_num_threads(nt)
        print(f"\n{nt} thread(s): medians in ms; ratios torch / fastselu, fused / selu")
        print(
            f"{'n':>5} {'dtype':>8} | {'torch f':>8} {'fs f':>7} {'x':>5} | {'torch fb':>8} "
            f"{'fs fb':>7} {'x':>5} | {'np f':>7} {'selu':>7} {'f/selu':>6} | {'drop':>7} "
            f"{'bound':>5}"
        )
        for size in (int(float(s)) for s in args.sizes.split(",")):
            for dn in args.dtypes.split(","):
                fns = rows(size, getattr(torch, dn), args.p)
                names = list(fns)
                res: dict[str, list[float]] = {k: [] for k in names}
                ratio_f, ratio_fb, ratio_sel, bound = [], [], [], []
                for r in range(args.repeat):
                    order = names[r % len(names) :] + names[: r % len(names)]
                    got = {k: timed(fns[k], args.min_time) for k in order}
                    for k in names:
                        res[k].append(got[k])
                    ratio_f.append(got["torch fwd"] / got["fs fwd"])
                    ratio_fb.append(got["torch fwd+bwd"] / got["fs fwd+bwd"])
                    ratio_sel.append(got["np fwd out="] / got["np selu out="])
                    bound.append(got["torch fwd"] / max(got["np drop out="], got["np selu out="]))
                m = {k: statistics.median(v) * 1e3 for k, v in res.items()}
                print(
                    f"{size:>5.0e} {dn:>8} | {m['torch fwd']:8.3f} {m['fs fwd']:7.3f} "
                    f"{statistics.median(ratio_f):5.1f} | {m['torch fwd+bwd']:8.3f} "
                    f"{m['fs fwd+bwd']:7.3f} {statistics.median(ratio_fb):5.1f} | "
                    f"{m['np fwd out=']:7.3f} {m['np selu out=']:7.3f} "
                    f"{statistics.median(ratio_sel):6.2f} | {m['np drop out=']:7.3f} "
                    f"{statistics.median(bound):5.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
