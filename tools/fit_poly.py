"""The kernels' constants, in one source: fits the polynomials, derives the split constants and
tables, and writes them to fastselu/_selu_constants.h (the C kernels) and
fastselu/_selu_constants.py (the numba backend).  Both files are generated: edit this script.

The kernels reduce x = n*ln2 + r with |r| <= ln2/2 (the table-driven kernels: x = k*ln2/4 + s
with |s| <= ln2/8 and a table of SA * 2^(j/4)) and need
  q2(r) ~ (expm1(r) - r) / r**2            degree 5 in double (the fused SELU + AlphaDropout
                                           float32 kernel) and in float32 (the forward)
  SA*exp(r)                                degree 6, float32 backward's full kernel (in double)
  q3(r) ~ (expm1(r) - r - r**2/2) / r**3   degree 9, float64 full kernels (double-double)
  q2(s) ~ (expm1(s) - s) / s**2, |s| <= ln2/8   degree 3 in float32 (the float32 forward and
                                                the backward's fast path), 7 in float64
We fit each with mpmath.chebyfit (near-minimax: Chebyshev interpolation in high precision),
round the coefficients to the kernel's type and report the worst relative error of the rounded
polynomial on a dense grid, evaluated in high precision (the kernels' own rounding is measured
by fastselu.check).  Split constants (c = hi + lo) are derived here from the exact values:
hi rounded to the bits that make n*hi exact where the kernel needs that, lo the rounded rest.

Run:  python tools/fit_poly.py           rewrite both generated files
      python tools/fit_poly.py --check   exit 1 if either file differs from what it would write
"""

import argparse
import importlib.util
import pathlib
import re
import sys

import mpmath as mp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADER = ROOT / "fastselu" / "_selu_constants.h"
MODULE = ROOT / "fastselu" / "_selu_constants.py"


def _load_decimals():
    """fastselu/_constants.py by path (importing the package would need the built extension)."""
    path = ROOT / "fastselu" / "_constants.py"
    spec = importlib.util.spec_from_file_location("_fs_constants", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


mp.mp.prec = 200
_DEC = _load_decimals()
SCALE = mp.mpf(_DEC.SCALE_STR)
SA = mp.mpf(_DEC.SCALE_STR) * mp.mpf(_DEC.ALPHA_STR)
LN2 = mp.log(2)
R = LN2 / 2 * mp.mpf("1.001")  # a hair wider than |r| can be (n from magic-bias rounding)
R4 = LN2 / 8 * mp.mpf("1.001")


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


def rnd(x, bits=53):
    """x rounded to nearest with `bits` significant bits, as a Python float."""
    with mp.workprec(bits):
        return float(+x)


def rnd32(x):
    return np.float32(rnd(x, 24))


def split(x, hi_bits, kind=float):
    """x = hi + lo: hi rounded to hi_bits significant bits, lo the rest rounded to the type."""
    hi = rnd(x, hi_bits)
    lo = x - mp.mpf(hi)
    return (kind(hi), kind(rnd(lo, 24 if kind is np.float32 else 53)))


def split_down(x, bits):
    """x = hi + lo as float32s for 1 <= x < 2, hi truncated to `bits` bits (lo >= 0)."""
    assert 1 <= x < 2
    hi = float(mp.floor(x * 2 ** (bits - 1)) / 2 ** (bits - 1))
    return np.float32(hi), rnd32(x - mp.mpf(hi))


def clear_low_bits(v, bits):
    """The double v with its `bits` lowest significand bits cleared (fdlibm's ln2_hi)."""
    b = np.array([v], dtype=np.float64).view(np.uint64)
    return float((b & ~np.uint64((1 << bits) - 1)).view(np.float64)[0])


# ---------------------------------------------------------------------------------------------
# What the kernels use.  Each entry: (name, value(s), comment); a value is a float (C double),
# an np.float32 (C float) or an int (C unsigned integer), a tuple is a table.


def constants():
    out = []

    def add(name, value, comment=""):
        out.append((name, value, comment))

    def section(title):
        out.append((None, None, title))

    section("SELU: SCALE and SA = SCALE*ALPHA exactly rounded (hi) plus the rounded remainders")
    scale_hi, scale_lo = split(SCALE, 53)
    add("SCALE_HI", scale_hi, "1.0507009873554805")
    add("SCALE_LO", scale_lo)
    sa_hi, sa_lo = split(SA, 53)
    add("SA_HI", sa_hi, "1.7580993408473768")
    add("SA_LO", sa_lo)
    add(
        "SA_LO2",
        rnd(SA - mp.mpf(sa_hi) - mp.mpf(sa_lo)),
        "so y + SA is exact enough when y = -SA_HI",
    )
    sf_hi, sf_lo = split(SCALE, 24, np.float32)
    add("SCALE_HI_F", sf_hi)
    add("SCALE_LO_F", sf_lo)
    saf_hi, saf_lo = split(SA, 24, np.float32)
    add("SA_HI_F", saf_hi)
    add("SA_LO_F", saf_lo)

    sfd = split_down(SCALE, 24)
    add("SCALE_DN_F", sfd[0], "SCALE rounded down: SCALE_UP_F > 0, so -0*SCALE is -0")
    add("SCALE_UP_F", sfd[1])

    section("Range reduction: x = n*ln2 + r (full kernels), x = k*ln2/4 + s (table-driven)")
    add("LOG2E", rnd(1 / LN2))
    ln2_hi = clear_low_bits(rnd(LN2), 21)
    add("LN2_HI", ln2_hi, "fdlibm's ln2_hi: low 21 bits 0, n*LN2_HI exact")
    add("LN2_LO", rnd(LN2 - mp.mpf(ln2_hi)))
    add("LN2", rnd(LN2), "ln2 rounded: enough for the float32 full kernels")
    add("LOG2E_F", rnd32(1 / LN2))
    ln2f = split(LN2, 16, np.float32)
    add("LN2_HI_F", ln2f[0], "ln2 in 16 bits: n*LN2_HI_F is exact for |n| < 2^8")
    add("LN2_LO_F", ln2f[1])
    add("LOG2E4", rnd(4 / LN2), "4/ln2")
    l4 = split(LN2 / 4, 39)
    add("L4_HI", l4[0], "ln2/4 in 39 bits: k*L4_HI is exact")
    add("L4_LO", l4[1])
    add("LOG2E4_F", rnd32(4 / LN2), "4/ln2")
    l4f = split(LN2 / 4, 13, np.float32)
    add("L4_HI_F", l4f[0], "ln2/4 in 13 bits: k*L4_HI_F is exact")
    add("L4_LO_F", l4f[1])
    add("MAGIC", float(2**52 + 2**51), "adding it rounds to an integer held in the low bits")
    add(
        "MAGIC_BIAS",
        float(2**52 + 2**51 + 1023),
        "... biased, so the low 12 bits are 2^n's exponent",
    )
    add("MAGIC_F", np.float32(2**23 + 2**22))
    add(
        "MAGIC_BIAS_F",
        np.float32(2**23 + 2**22 + 127),
        "... biased: the low 9 bits are 2^n's float32 exponent",
    )
    add("MAGIC_F_BITS", int(np.float32(2**23 + 2**22).view(np.uint32)))
    add("MAGIC_BITS", int(np.float64(2**52 + 2**51).view(np.uint64)))

    section("Polynomials (near-minimax; max relative error of the rounded coefficients)")
    for name, args in (
        ("Q2", (q2, 5)),
        ("EXPM1_F", (q2, 5, R, np.float32)),
        ("EXPSA", (sa_exp, 6)),
        ("Q3", (q3, 9)),
        ("EXPS_F", (q2, 3, R4, np.float32)),
        ("EXPS", (q2, 7, R4)),
    ):
        coeffs, worst = fit(*args)
        what = {
            "Q2": "(expm1(r) - r) / r^2, |r| <= ln2/2",
            "EXPM1_F": "(expm1(r) - r) / r^2, |r| <= ln2/2",
            "EXPSA": "SA * exp(r), |r| <= ln2/2",
            "Q3": "(expm1(r) - r - r^2/2) / r^3, |r| <= ln2/2",
            "EXPS_F": "(expm1(s) - s) / s^2, |s| <= ln2/8",
            "EXPS": "(expm1(s) - s) / s^2, |s| <= ln2/8",
        }[name]
        section(
            f"{name} ~ {what}: degree {len(coeffs) - 1}, max relative error {mp.nstr(worst, 3)}"
        )
        for i, c in enumerate(coeffs):
            add(f"{name}_C{i}", c)

    section("SA * 2^(j/4), j = 0..3, rounded (hi) plus the rounded remainder (lo)")
    for kind, name in ((np.float32, "FS_T32"), (float, "FS_T64")):
        exact = [SA * mp.power(2, mp.mpf(j) / 4) for j in range(4)]
        hi = [kind(float(e)) for e in exact]
        lo = [kind(float(e - mp.mpf(float(h)))) for e, h in zip(exact, hi)]
        add(f"{name}_HI", tuple(hi))
        add(f"{name}_LO", tuple(lo))
    return out


def _hex(v):
    """float.hex without the trailing zeros of a float32's significand."""
    s = float(v).hex()
    return re.sub(r"\.?0+p", "p", s) if isinstance(v, np.float32) else s


def _c_value(v):
    if isinstance(v, int):
        return f"0x{v:X}u" if v < 2**32 else f"0x{v:X}ull"
    s = _hex(v) + ("f" if isinstance(v, np.float32) else "")
    return f"({s})" if s.startswith("-") else s


def header_text(consts):
    lines = [
        "/* Generated by tools/fit_poly.py from exact values: do not edit (run the script) */",
        "#ifndef FASTSELU_SELU_CONSTANTS_H",
        "#define FASTSELU_SELU_CONSTANTS_H",
    ]
    for name, value, comment in consts:
        if name is None:
            lines += ["", f"/* {comment} */"]
        elif isinstance(value, tuple):
            ctype = "float" if isinstance(value[0], np.float32) else "double"
            lines.append(f"static const {ctype} {name}[{len(value)}] = {{")
            lines += [f"    {_c_value(v)}," for v in value]
            lines.append("};")
        else:
            c = f"  /* {comment} */" if comment else ""
            lines.append(f"#define {name} {_c_value(value)}{c}")
    lines += ["", "#endif"]
    return "\n".join(lines) + "\n"


def _py_value(v):
    if isinstance(v, np.float32):
        return f'_f32(_h("{_hex(v)}"))'
    if isinstance(v, int):
        return f"0x{v:X}"
    return f'_h("{float(v).hex()}")'


def module_text(consts):
    lines = [
        '"""Generated by tools/fit_poly.py from exact values: do not edit (run the script).',
        "",
        "The constants of fastselu/_selu_constants.h, for the numba backend: floats are C",
        "doubles, numpy.float32 values C floats, tuples the tables.",
        '"""',
        "import numpy as np",
        "",
        "_h = float.fromhex",
        "_f32 = np.float32",
    ]
    for name, value, comment in consts:
        if name is None:
            lines += ["", f"# {comment}"]
        elif isinstance(value, tuple):
            lines.append(f"{name} = (")
            lines += [f"    {_py_value(v)}," for v in value]
            lines.append(")")
        else:
            c = f"  # {comment}" if comment else ""
            lines.append(f"{name} = {_py_value(value)}{c}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if a generated file differs from what this script writes",
    )
    args = ap.parse_args(argv)
    consts = constants()
    stale = []
    for path, text in ((HEADER, header_text(consts)), (MODULE, module_text(consts))):
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(
            "stale (run python tools/fit_poly.py): "
            + ", ".join(str(p.relative_to(ROOT)) for p in stale)
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
