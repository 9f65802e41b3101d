"""Fit the polynomial coefficients and tables used by fastselu/_selu_kernels.h.

The kernels reduce x = n*ln2 + r with |r| <= ln2/2 (the backward's fast path: x = k*ln2/4 + s
with |s| <= ln2/8 and a table of SA * 2^(j/4)) and need
  q2(r) ~ (expm1(r) - r) / r**2            degree 4, float32 forward (evaluated in double)
  SA*exp(r)                                degree 6, float32 backward's full kernel (in double)
  q3(r) ~ (expm1(r) - r - r**2/2) / r**3   degree 9, float64 full kernels (double-double)
  q2(s) on |s| <= ln2/8                    degree 3 in float32 and 7 in float64: the fast path
We fit each with mpmath.chebyfit (near-minimax: Chebyshev interpolation in high precision),
round the coefficients to the kernel's type and report the worst relative error of the rounded
polynomial on a dense grid, evaluated in high precision (the kernels' own rounding is measured
by fastselu.check).

Run:  python tools/fit_poly.py      (prints C initialisers to paste into the header)
"""
import mpmath as mp
import numpy as np

mp.mp.prec = 200
SA = mp.mpf("1.0507009873554804934193349852946") * mp.mpf("1.6732632423543772848170429916717")
R = mp.log(2) / 2 * mp.mpf("1.001")  # a hair wider than |r| can be (n from magic-bias rounding)
R4 = mp.log(2) / 8 * mp.mpf("1.001")


def q2(r):
    return (mp.expm1(r) - r) / r**2 if r != 0 else mp.mpf(1) / 2


def q3(r):
    return (mp.expm1(r) - r - r**2 / 2) / r**3 if r != 0 else mp.mpf(1) / 6


def sa_exp(r):
    return SA * mp.exp(r)


def fit(f, degree, radius=R, kind=float):
    coeffs, _ = mp.chebyfit(f, [-radius, radius], degree + 1, error=True)
    coeffs = [kind(float(c)) for c in reversed(coeffs)]  # lowest degree first
    worst = mp.mpf(0)
    for i in range(2001):
        r = -radius + 2 * radius * i / 2000
        approx = mp.mpf(0)
        for c in reversed(coeffs):
            approx = approx * r + mp.mpf(float(c))
        worst = max(worst, abs(approx / f(r) - 1))
    return coeffs, worst


def hexf(c):
    return float(c).hex() + ("f" if isinstance(c, np.float32) else "")


def show(name, coeffs, worst):
    print(f"/* {name}: degree {len(coeffs) - 1}, max relative error {mp.nstr(worst, 3)} */")
    for i, c in enumerate(coeffs):
        print(f"#define {name}_C{i} {hexf(c)}")


def tables():
    """SA * 2^(j/4), j = 0..3, as hi (rounded) + lo (the rounded remainder), per type."""
    for kind, name in ((np.float32, "FS_T32"), (float, "FS_T64")):
        exact = [SA * mp.power(2, mp.mpf(j) / 4) for j in range(4)]
        hi = [kind(float(e)) for e in exact]
        lo = [kind(float(e - mp.mpf(float(h)))) for e, h in zip(exact, hi)]
        for part, vals in (("HI", hi), ("LO", lo)):
            print(f"{name}_{part} = {{{', '.join(hexf(v) for v in vals)}}}")


if __name__ == "__main__":
    show("Q2", *fit(q2, 4))
    show("EXPSA", *fit(sa_exp, 6))
    show("Q3", *fit(q3, 9))
    show("EXPS_F", *fit(q2, 3, R4, np.float32))
    show("EXPS", *fit(q2, 7, R4))
    tables()
