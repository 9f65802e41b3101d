"""Accuracy checker for the compiled kernels: ``python -m fastselu.check``.

float32: every one of the 2^32 inputs, forward and backward (grad_output = 1), against an exact
reference evaluated in float64 (its own error is < 2^-27 float32 ULP), for the first SIMD variant; every other variant this CPU runs must give the very same
bits.  float64: inputs weighted to the hard regions (near 0, reduction boundaries k*ln2/2,
subnormals, saturation, exp underflow, overflow of x*SCALE) plus random bit patterns, against
mpmath at 120 bits, forward, backward with grad 1 and with random grads, backward from result.

Prints the worst error (in the SPEC's ULPs) per check and exits non-zero if a bound is broken
or the variants disagree.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp_
import os
import sys
import time

import numpy as np

from fastselu import _kernels as K
from fastselu._ulp import exact_selu, exact_selu_backward, exact_selu_backward_result, ulp_error

F32_BLOCK = 1 << 22
# SPEC bounds: 1 ULP with grad_output = 1, 1.5 ULP for any other grad_output.
BOUND = {"forward": 1.0, "backward": 1.0, "backward_g": 1.5, "backward_y": 1.5}


def _run_variants(kind, variants, *args):
    outs = []
    for v in variants:
        K.set_simd(v)
        out = np.empty_like(args[-1])
        if kind == "forward":
            K.forward(args[0], out, 1)
        else:
            K.backward_x(args[0], args[1], out, 1)
        outs.append(out)
    return outs


def _f32_block(args):
    """Worst error and variant disagreements over one block of float32 bit patterns."""
    start, variants = args
    x = np.arange(start, start + F32_BLOCK, dtype=np.uint64).astype(np.uint32).view(np.float32)
    one = np.ones_like(x)
    res = {}
    # float64 references: their error (< 2^-27 float32 ULP) cannot hide a 1-ULP miss.
    for kind, exact in (("forward", lambda: exact_selu(x, np.float64)),
                        ("backward", lambda: exact_selu_backward(one, x, np.float64))):
        outs = _run_variants(kind, variants, *((x,) if kind == "forward" else (one, x)))
        err = ulp_error(outs[0], exact(), np.float32)
        i = int(np.argmax(err))
        mismatch = sum(int(np.count_nonzero(o.view(np.uint32) != outs[0].view(np.uint32)))
                       for o in outs[1:])
        res[kind] = (float(err[i]), float(x[i]), int(np.count_nonzero(err > 0.5)), mismatch)
    return res


def check_float32(variants, processes, blocks=None):
    starts = list(range(0, 1 << 32, F32_BLOCK))
    if blocks is not None:  # a quick, evenly spread subset
        starts = starts[:: max(1, len(starts) // blocks)]
    total = {k: [0.0, 0.0, 0, 0] for k in ("forward", "backward")}
    t0 = time.time()
    with mp_.get_context("spawn").Pool(processes) as pool:
        for done, res in enumerate(pool.imap_unordered(
                _f32_block, [(s, variants) for s in starts]), 1):
            for k, (worst, at, over_half, mismatch) in res.items():
                tot = total[k]
                if worst > tot[0]:
                    tot[0], tot[1] = worst, at
                tot[2] += over_half
                tot[3] += mismatch
            if sys.stderr.isatty() or done % 64 == 0:
                print(f"\r  float32: {done}/{len(starts)} blocks, {time.time() - t0:.0f} s",
                      end="" if sys.stderr.isatty() else "\n", file=sys.stderr, flush=True)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    n = len(starts) * F32_BLOCK
    return {k: {"inputs": n, "max_ulp": v[0], "at": v[1], "over_half_ulp": v[2],
                "variant_mismatches": v[3]} for k, v in total.items()}


def float64_samples(n, seed=0):
    """Inputs weighted to where expm1-based SELU is hard to get right."""
    rng = np.random.default_rng(seed)
    k = n // 8
    ln2 = np.log(2.0)
    parts = [
        # random bit patterns: every exponent, both signs, NaNs and infs included
        rng.integers(0, 1 << 64, size=k, dtype=np.uint64).view(np.float64),
        -np.exp(rng.uniform(np.log(1e-320), np.log(1.0), size=k)),   # tiny to 1, log-uniform
        rng.uniform(-1.0, 0.0, size=k),
        rng.uniform(-40.0, 0.0, size=k),
        # reduction boundaries (k + 1/2)*ln2, where n changes and |r| is largest
        ((rng.integers(-60, 1, size=k) + 0.5) * ln2) * (1 + rng.uniform(-1e-12, 1e-12, size=k)),
        rng.uniform(-760.0, -700.0, size=k),                         # exp underflow (backward)
        -rng.integers(1, 1 << 52, size=k, dtype=np.uint64).view(np.float64),   # subnormals
        np.concatenate([                                             # x*SCALE near overflow
            np.finfo(np.float64).max / 1.0507009873554805 * (1 + rng.uniform(-1e-15, 1e-15, size=k // 2)),
            np.exp(rng.uniform(0, np.log(1e308), size=k - k // 2))]),
    ]
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, -2000.0, -1e300,
                         np.finfo(np.float64).max, -np.finfo(np.float64).max])
    return np.concatenate(parts + [specials])


def _mp_chunk(args):
    """Exact values from mpmath for one chunk, as long doubles (the specials, where no
    rounding is involved, from the long double reference)."""
    kind, g, x = args
    import mpmath as mpm
    mpm.mp.prec = 120
    scale = mpm.mpf("1.0507009873554804934193349852946")
    sa = scale * mpm.mpf("1.6732632423543772848170429916717")
    special = ~(np.isfinite(g) & np.isfinite(x)) | (g == 0) | (x == 0)
    if kind == "forward":
        out = exact_selu(x)
    elif kind == "backward":
        out = exact_selu_backward(g, x)
    else:
        out = exact_selu_backward_result(g, x)
    for i in np.flatnonzero(~special):
        gi, xi = mpm.mpf(float(g[i])), mpm.mpf(float(x[i]))
        if kind == "forward":
            v = scale * xi if xi > 0 else sa * mpm.expm1(xi)
        elif kind == "backward":
            v = gi * (scale if xi > 0 else sa * mpm.exp(xi))
        else:
            v = gi * (scale if xi > 0 else xi + sa)
        out[i] = _mpf_to_ld(mpm, v)
    return out


def _mpf_to_ld(mpm, v):
    """An mpf to the nearest-ish long double (error ~2^-106 relative), beyond double's range
    too: hi + lo in doubles of v scaled into the normal range, scaled back in long double."""
    if v == 0:
        return np.longdouble(0)
    e = int(mpm.floor(mpm.log(abs(v), 2)))
    if e < -16500:  # far below long double's range (exp(-1e300), say): a signed zero
        return np.longdouble(0.0 if v > 0 else -0.0)
    m = mpm.ldexp(v, -e)
    hi = float(m)
    lo = float(m - hi)
    return np.ldexp(np.longdouble(hi) + np.longdouble(lo), e)


def check_float64(n, processes, variants):
    x = float64_samples(n)
    rng = np.random.default_rng(1)
    g_rand = np.exp(rng.uniform(-30, 30, size=x.size)) * rng.choice([-1.0, 1.0], size=x.size)
    one = np.ones_like(x)
    y = np.empty_like(x)
    K.set_simd(variants[0])
    K.forward(x, y, 1)
    cases = {"forward": ("forward", one, x), "backward": ("backward", one, x),
             "backward_g": ("backward", g_rand, x), "backward_y": ("backward_y", g_rand, y)}
    report = {}
    with mp_.get_context("spawn").Pool(processes) as pool:
        for name, (kind, g, xs) in cases.items():
            chunks = [(kind, g[i:i + 20000], xs[i:i + 20000]) for i in range(0, xs.size, 20000)]
            exact = np.concatenate(pool.map(_mp_chunk, chunks))
            outs = []
            for v in variants:
                K.set_simd(v)
                out = np.empty_like(xs)
                if kind == "forward":
                    K.forward(xs, out, 2)
                elif kind == "backward":
                    K.backward_x(g, xs, out, 2)
                else:
                    K.backward_y(g, xs, out, 2)
                outs.append(out)
            err = ulp_error(outs[0], exact, np.float64)
            i = int(np.argmax(err))
            report[name] = {"inputs": int(xs.size), "max_ulp": float(err[i]),
                            "at": (float(g[i]), float(xs[i])),
                            "variant_mismatches": sum(int(np.count_nonzero(
                                o.view(np.uint64) != outs[0].view(np.uint64))) for o in outs[1:])}
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m fastselu.check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--f32-blocks", type=int, default=None,
                    help="check only this many evenly spread blocks of 2^22 float32 inputs "
                         "(default: all 1024 blocks, every input)")
    ap.add_argument("--f64", type=int, default=10**7, help="float64 samples (default 1e7)")
    ap.add_argument("--skip-f32", action="store_true")
    ap.add_argument("--processes", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--variants", default=",".join(K.SUPPORTED),
                    help=f"comma-separated SIMD variants (default: all this CPU runs: "
                         f"{','.join(K.SUPPORTED)})")
    args = ap.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    ok = True
    print(f"fastselu.check: variants {variants}")
    reports = []
    if not args.skip_f32:
        t = time.time()
        reports.append(("float32", check_float32(variants, args.processes, args.f32_blocks),
                        time.time() - t))
    if args.f64 > 0:
        t = time.time()
        reports.append(("float64", check_float64(args.f64, args.processes, variants),
                        time.time() - t))
    for dtype, rep, secs in reports:
        for name, r in rep.items():
            bad = r["max_ulp"] > BOUND[name] or r["variant_mismatches"] > 0
            ok &= not bad
            print(f"{dtype} {name:10s} inputs={r['inputs']:>10d} max_ulp={r['max_ulp']:.4f} "
                  f"at={r['at']!r} variant_mismatches={r['variant_mismatches']}"
                  + (f" over_half={r['over_half_ulp']}" if "over_half_ulp" in r else "")
                  + ("  FAIL" if bad else ""))
        print(f"{dtype}: {secs:.0f} s")
    K.set_simd(os.environ.get("FASTSELU_SIMD", "").strip() or None)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
