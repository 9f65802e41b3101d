"""Accuracy checker for the compiled kernels: ``python -m fastselu.check``.

float32: every one of the 2^32 inputs, forward and backward (grad_output = 1), against an exact
reference evaluated in float64 (its own error is < 2^-27 float32 ULP), for the first SIMD
variant; every other variant this CPU runs must give the very same bits.  float64: the hard
inputs of ``fastselu._ulp.hard_inputs`` (random bit patterns, and values weighted to near 0,
reduction boundaries (k + 1/2) ln 2, subnormals, saturation, exp underflow, overflow of
x*SCALE) against mpmath: forward, backward with grad 1 and with random grads, backward from
the result.

Prints the worst error (in the SPEC's ULPs) per check and exits non-zero if a bound is broken
or the variants disagree.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np

from . import _config, _kernels as K  # type: ignore[attr-defined]  # _kernels: compiled, no stubs
from ._ulp import (
    exact_selu,
    exact_selu_backward,
    hard_inputs,
    mp_selu,
    mp_selu_backward,
    mp_selu_backward_result,
    ulp_error,
)

F32_BLOCK = 1 << 22
F32_SUB = 1 << 16  # worked on in pieces whose NumPy temporaries stay in cache (2-3x faster)
F64_CHUNK = 20_000
# SPEC bounds: 1 ULP with grad_output = 1, 1.5 ULP for any other grad_output.
BOUND = {"forward": 1.0, "backward": 1.0, "backward_g": 1.5, "backward_y": 1.5}

Report = dict[str, dict[str, Any]]
# kind -> (kernel of the compiled backend, mpmath reference taking (g, x))
_KINDS: dict[str, tuple[Callable[..., None], Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    "forward": (K.forward, lambda g, x: mp_selu(x)),
    "backward": (K.backward_x, mp_selu_backward),
    "backward_y": (K.backward_y, mp_selu_backward_result),
}


def _run_variants(
    kind: str, variants: Sequence[str], g: np.ndarray, x: np.ndarray, nthreads: int
) -> list[np.ndarray]:
    """The kernel's result for each SIMD variant (g is ignored by the forward)."""
    kernel = _KINDS[kind][0]
    args = (x,) if kind == "forward" else (g, x)
    outs = []
    for v in variants:
        K.set_simd(v)
        out = np.empty_like(x)
        kernel(*args, out, nthreads)
        outs.append(out)
    return outs


def _mismatches(outs: list[np.ndarray]) -> int:
    """Elements where a variant's bits differ from the first variant's."""
    first = outs[0].view(np.dtype(f"u{outs[0].itemsize}"))
    return sum(int(np.count_nonzero(o.view(first.dtype) != first)) for o in outs[1:])


def _f32_block(args: tuple[int, Sequence[str]]) -> dict[str, tuple[float, float, int, int]]:
    """Worst error, where, how many over half an ULP, variant mismatches: one block of float32
    bit patterns."""
    start, variants = args
    res = dict.fromkeys(("forward", "backward"), (0.0, 0.0, 0, 0))
    for lo in range(start, start + F32_BLOCK, F32_SUB):
        x = np.arange(lo, lo + F32_SUB, dtype=np.uint64).astype(np.uint32).view(np.float32)
        one = np.ones_like(x)
        exact = {
            "forward": exact_selu(x, np.float64),
            "backward": exact_selu_backward(one, x, np.float64),
        }
        for kind, ref in exact.items():
            outs = _run_variants(kind, variants, one, x, 1)
            err = ulp_error(outs[0], ref, np.float32)
            i = int(np.argmax(err))
            worst, at, over_half, mismatches = res[kind]
            if err[i] > worst:
                worst, at = float(err[i]), float(x[i])
            over_half += int(np.count_nonzero(err > 0.5))
            res[kind] = (worst, at, over_half, mismatches + _mismatches(outs))
    return res


def check_float32(variants: Sequence[str], processes: int, blocks: Optional[int] = None) -> Report:
    starts = list(range(0, 1 << 32, F32_BLOCK))
    if blocks is not None:  # a quick, evenly spread subset
        starts = starts[:: max(1, len(starts) // blocks)][:blocks]
    total = {k: [0.0, 0.0, 0, 0] for k in ("forward", "backward")}
    t0 = time.time()
    tty = sys.stderr.isatty()
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        tasks = [(s, variants) for s in starts]
        for done, res in enumerate(pool.imap_unordered(_f32_block, tasks), 1):
            for k, (worst, at, over_half, mismatch) in res.items():
                tot = total[k]
                if worst > tot[0]:
                    tot[0], tot[1] = worst, at
                tot[2] += over_half
                tot[3] += mismatch
            if tty or done % 64 == 0:
                print(
                    f"\r  float32: {done}/{len(starts)} blocks, {time.time() - t0:.0f} s",
                    end="" if tty else "\n",
                    file=sys.stderr,
                    flush=True,
                )
    if tty:
        print(file=sys.stderr)
    n = len(starts) * F32_BLOCK
    return {
        k: {
            "inputs": n,
            "max_ulp": v[0],
            "at": v[1],
            "over_half_ulp": v[2],
            "variant_mismatches": v[3],
        }
        for k, v in total.items()
    }


def _mp_chunk(args: tuple[str, np.ndarray, np.ndarray]) -> np.ndarray:
    kind, g, x = args
    return _KINDS[kind][1](g, x)


def check_float64(x: np.ndarray, processes: int, variants: Sequence[str]) -> Report:
    x = np.ascontiguousarray(x, dtype=np.float64)
    rng = np.random.default_rng(1)
    g_rand = np.exp(rng.uniform(-30, 30, size=x.size)) * rng.choice([-1.0, 1.0], size=x.size)
    one = np.ones_like(x)
    y = _run_variants("forward", variants[:1], one, x, 1)[0]
    cases = {
        "forward": ("forward", one, x),
        "backward": ("backward", one, x),
        "backward_g": ("backward", g_rand, x),
        "backward_y": ("backward_y", g_rand, y),
    }
    report = {}
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        for name, (kind, g, xs) in cases.items():
            chunks = [
                (kind, g[i : i + F64_CHUNK], xs[i : i + F64_CHUNK])
                for i in range(0, xs.size, F64_CHUNK)
            ]
            exact = np.concatenate(pool.map(_mp_chunk, chunks))
            outs = _run_variants(kind, variants, g, xs, 2)
            err = ulp_error(outs[0], exact, np.float64)
            i = int(np.argmax(err))
            report[name] = {
                "inputs": int(xs.size),
                "max_ulp": float(err[i]),
                "at": (float(g[i]), float(xs[i])),
                "variant_mismatches": _mismatches(outs),
            }
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m fastselu.check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--f32-blocks",
        type=int,
        default=None,
        help="check only this many evenly spread blocks of 2^22 float32 inputs "
        "(default: all 1024 blocks, every input)",
    )
    ap.add_argument(
        "--f64",
        type=int,
        default=10**7,
        help="float64 random samples, besides ~13000 fixed hard ones (default 1e7; "
        "0 skips float64)",
    )
    ap.add_argument("--skip-f32", action="store_true")
    ap.add_argument("--processes", type=int, default=_config.available_cpus())
    ap.add_argument(
        "--variants",
        default=",".join(K.SUPPORTED),
        help=f"comma-separated SIMD variants (default: all this CPU runs: {','.join(K.SUPPORTED)})",
    )
    args = ap.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    print(f"fastselu.check: variants {variants}")
    reports = []
    try:
        if not args.skip_f32:
            t = time.time()
            rep = check_float32(variants, args.processes, args.f32_blocks)
            reports.append(("float32", rep, time.time() - t))
        if args.f64 > 0:
            t = time.time()
            x = hard_inputs(np.float64, args.f64)
            reports.append(("float64", check_float64(x, args.processes, variants), time.time() - t))
    finally:
        K.set_simd(_config.SIMD_CAP)  # back to what FASTSELU_SIMD asked for
    ok = True
    for dtype, rep, secs in reports:
        for name, r in rep.items():
            bad = r["max_ulp"] > BOUND[name] or r["variant_mismatches"] > 0
            ok &= not bad
            print(
                f"{dtype} {name:10s} inputs={r['inputs']:>10d} max_ulp={r['max_ulp']:.4f} "
                f"at={r['at']!r} variant_mismatches={r['variant_mismatches']}"
                + (f" over_half={r['over_half_ulp']}" if "over_half_ulp" in r else "")
                + ("  FAIL" if bad else "")
            )
        print(f"{dtype}: {secs:.0f} s")
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
