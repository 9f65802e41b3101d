"""Fit the expm1 polynomial coefficients used by fastselu/_selu_kernels.h.

The kernels reduce x = n*ln2 + r with |r| <= ln2/2 and need
  q2(r) ~ (expm1(r) - r) / r**2            (float32 kernels, evaluated in double)
  q3(r) ~ (expm1(r) - r - r**2/2) / r**3   (float64 kernels, double-double around it)
We fit each with mpmath.chebyfit (near-minimax: Chebyshev interpolation in high
precision), round the coefficients to double and report the worst relative error of
the rounded polynomial on a dense grid, evaluated in high precision (Horner in mpmath on
the rounded coefficients: the kernels' own rounding is measured by fastselu.check).

Run:  python tools/fit_poly.py      (prints C initialisers to paste into the header)
"""
import mpmath as mp

mp.mp.prec = 200
R = mp.log(2) / 2 * mp.mpf("1.001")  # a hair wider than |r| can be (n from magic-bias rounding)


def q2(r):
    return (mp.expm1(r) - r) / r**2 if r != 0 else mp.mpf(1) / 2


def q3(r):
    return (mp.expm1(r) - r - r**2 / 2) / r**3 if r != 0 else mp.mpf(1) / 6


def fit(f, degree):
    coeffs, _ = mp.chebyfit(f, [-R, R], degree + 1, error=True)
    coeffs = [float(c) for c in reversed(coeffs)]  # lowest degree first
    worst = mp.mpf(0)
    for i in range(2001):
        r = -R + 2 * R * i / 2000
        approx = mp.mpf(0)
        for c in reversed(coeffs):
            approx = approx * r + mp.mpf(c)
        worst = max(worst, abs(approx / f(r) - 1))
    return coeffs, worst


def show(name, coeffs, worst):
    print(f"/* {name}: degree {len(coeffs) - 1}, max relative error {mp.nstr(worst, 3)} */")
    for i, c in enumerate(coeffs):
        print(f"#define {name}_C{i} {c.hex()}  /* {c!r} */")


if __name__ == "__main__":
    for name, f, deg in (("Q2", q2, 5), ("Q3", q3, 9)):
        show(name, *fit(f, deg))
