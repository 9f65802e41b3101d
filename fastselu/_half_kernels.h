/* float16 and bfloat16 kernels: correctly rounded, the same bits in every variant and platform.
 *
 * Included by every _simd_<isa>.c after _selu_kernels.h, whose float64 kernels and constants it
 * uses.  Plain C, so that it compiles everywhere (gcc vectorises what it can); 16-bit values
 * travel as their bit patterns (uint16_t) and are converted with exact integer code.
 *
 * Design: a 16-bit format has only 2^16 inputs, so
 * - forward: a table of the 2^16 results, looked up by bit pattern;
 * - backward from x: a table of the derivative d(x) = SA*exp(x) of the 2^15 inputs with the
 *   sign bit set (d = SCALE for x > 0), as doubles; g*d is taken in double and rounded once to
 *   the format.  With g = 1 the product is d itself, so the result is d rounded once;
 * - backward from y: g*((y + SA_HI) + SA_LO) in double (y + SA_HI is exact for |y| < 2),
 *   rounded once.
 * Tables are built at first use from the float64 kernels of _selu_kernels.h (the same IEEE
 * operations everywhere, so every variant and platform builds the same bits), each entry
 * rounded once from double to the format (fs_to_f16 / fs_to_bf16: to nearest, ties to even).
 * Nothing is rounded through float32: that double rounding misrounds (the float16 backward at
 * x = -0.1239 and -1.315 did).  tests/test_half.py checks all 2^16 inputs of each format,
 * forward and backward with g = 1, against exact values: correctly rounded (<= 0.5 ULP).  For
 * other g the product's rounding to double adds at most 2^-53 relative (<= 0.5 ULP + 2^-42).
 * NaN: the forward returns the input's NaN quieted (table entry = input | quiet bit); backward
 * NaNs are the default quiet NaN (0x7E00 / 0x7FC0), as in the float32/float64 kernels.
 * Memory: 2 x 128 KiB of results and 2 x 256 KiB of derivatives per variant, written when a
 * 16-bit kernel first runs (the driver calls fs_half_init before going parallel).
 */
#ifndef FS_HALF_SHARED
#define FS_HALF_SHARED

#define FS_F16_INF 0x7C00u
#define FS_F16_QNAN 0x7E00u
#define FS_F16_QUIET 0x0200u
#define FS_BF16_INF 0x7F80u
#define FS_BF16_QNAN 0x7FC0u
#define FS_BF16_QUIET 0x0040u
#define FS_MIN_SUBNORMAL 0x1p-1074

FS_INLINE double fs_from_bits64(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

FS_INLINE uint64_t fs_bits64(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

/* Exact: normal and special values by rebiasing the exponent field (1023 - 15; an all-ones
 * field stays all ones), subnormals as an integer times 2^-24. */
FS_INLINE double fs_f16_to_double(uint16_t h)
{
    uint64_t a = h & 0x7FFFu;
    uint64_t b = a >= FS_F16_INF ? (a << 42) | 0x7FF0000000000000ull
                                 : (a << 42) + ((uint64_t)(1023 - 15) << 52);
    double mag = a < 0x0400u ? (double)(int32_t)a * 0x1p-24 : fs_from_bits64(b);
    return fs_from_bits64(fs_bits64(mag) | ((uint64_t)(h & 0x8000u) << 48));
}

/* Exact: bfloat16 is the top half of a float32. */
FS_INLINE double fs_bf16_to_double(uint16_t h)
{
    uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, sizeof f);
    return (double)f;
}

/* v rounded once to nearest (ties to even) into a format with M stored significand bits and
 * exponent bias B; NaN gives the default quiet NaN.  At or above the normal range: round the
 * double's significand at bit 52 - M by integer addition (a carry into the exponent is right)
 * and rebias; from OVF (the midpoint above the largest finite value) on: inf.  Below it:
 * |v| + MAGIC, whose ULP is the format's subnormal step, rounds once, and the low bits of the
 * sum count those steps (up to 2^M: the smallest normal number). */
#define FS_TO_SMALL(NAME, M, B, INF, QNAN, OVF, MAGIC)                                             \
    FS_INLINE uint16_t NAME(double v)                                                              \
    {                                                                                              \
        uint64_t u = fs_bits64(v), a = u & 0x7FFFFFFFFFFFFFFFull;                                  \
        uint64_t sign = (u >> 48) & 0x8000u;                                                       \
        uint64_t norm = ((a + ((1ull << (51 - (M))) - 1u) + ((a >> (52 - (M))) & 1u)) >> (52 - (M))) \
                        - ((uint64_t)(1023 - (B)) << (M));                                         \
        uint64_t sub = fs_bits64(fabs(v) + (MAGIC)) - fs_bits64(MAGIC);                            \
        uint64_t h = a < ((uint64_t)(1023 + 1 - (B)) << 52) ? sub                                  \
                     : a >= fs_bits64(OVF) ? (uint64_t)(INF) : norm;                               \
        return v != v ? (uint16_t)(QNAN) : (uint16_t)(sign | h);                                   \
    }
FS_TO_SMALL(fs_to_f16, 10, 15, FS_F16_INF, FS_F16_QNAN, 65520.0, 0x1p28)
FS_TO_SMALL(fs_to_bf16, 7, 127, FS_BF16_INF, FS_BF16_QNAN, 0x1.ffp+127, 0x1p-81)

/* x > 0 from the bit pattern: +0 < bits <= +inf (NaNs are not > 0). */
FS_INLINE int fs_f16_pos(uint16_t b) { return (uint16_t)(b - 1u) < FS_F16_INF; }
FS_INLINE int fs_bf16_pos(uint16_t b) { return (uint16_t)(b - 1u) < FS_BF16_INF; }
#endif /* FS_HALF_SHARED */

/* Per variant (each _simd_<isa>.c has its own copy, built by its own float64 kernels). */
static uint16_t fs_fwd_tab_f16[1 << 16], fs_fwd_tab_bf16[1 << 16];
static double fs_d_tab_f16[1 << 15], fs_d_tab_bf16[1 << 15];
static volatile int fs_half_ready = 0;

/* Derivative with g = 1 by the float64 kernel; SELU'(x) > 0 for finite x although SA*exp(x)
 * underflows double below x ~ -745: keep the smallest positive double there, so that g = inf
 * gives inf (as the float64 kernel does) and any finite g still rounds to 0. */
FS_INLINE double fs_half_deriv(double x)
{
    double d = fs_bwd_x_f64_any(1.0, x);
    return d == 0.0 && x != -INFINITY ? FS_MIN_SUBNORMAL : d;
}

void FS_NAME(fs_half_init)(void)
{
    if (fs_half_ready)
        return;
    for (uint32_t i = 0; i < (1u << 16); i++) {
        double xh = fs_f16_to_double((uint16_t)i), xb = fs_bf16_to_double((uint16_t)i);
        fs_fwd_tab_f16[i] = xh != xh ? (uint16_t)(i | FS_F16_QUIET) : fs_to_f16(fs_fwd_f64(xh));
        fs_fwd_tab_bf16[i] = xb != xb ? (uint16_t)(i | FS_BF16_QUIET) : fs_to_bf16(fs_fwd_f64(xb));
    }
    for (uint32_t i = 0; i < (1u << 15); i++) {
        fs_d_tab_f16[i] = fs_half_deriv(fs_f16_to_double((uint16_t)(i | 0x8000u)));
        fs_d_tab_bf16[i] = fs_half_deriv(fs_bf16_to_double((uint16_t)(i | 0x8000u)));
    }
    fs_half_ready = 1;
}

#define FS_HALF_KERNELS(S, POS, TO_DOUBLE, TO_SMALL)                                               \
void FS_NAME(fs_forward_##S)(const uint16_t *x, uint16_t *out, ptrdiff_t n)                        \
{                                                                                                  \
    FS_NAME(fs_half_init)();                                                                       \
    const uint16_t *t = fs_fwd_tab_##S;                                                            \
    for (ptrdiff_t i = 0; i < n; i++) out[i] = t[x[i]];                                            \
}                                                                                                  \
void FS_NAME(fs_backward_x_##S)(const uint16_t *g, const uint16_t *x, uint16_t *out, ptrdiff_t n)  \
{                                                                                                  \
    FS_NAME(fs_half_init)();                                                                       \
    const double *t = fs_d_tab_##S;                                                                \
    FS_IVDEP                                                                                       \
    for (ptrdiff_t i = 0; i < n; i++) {                                                            \
        uint16_t xb = x[i];                                                                        \
        double d = POS(xb) ? SCALE_HI : t[xb & 0x7FFFu];                                           \
        out[i] = TO_SMALL(TO_DOUBLE(g[i]) * d);                                                    \
    }                                                                                              \
}                                                                                                  \
void FS_NAME(fs_backward_y_##S)(const uint16_t *g, const uint16_t *y, uint16_t *out, ptrdiff_t n)  \
{                                                                                                  \
    FS_IVDEP                                                                                       \
    for (ptrdiff_t i = 0; i < n; i++) {                                                            \
        double yv = TO_DOUBLE(y[i]);                                                               \
        double d = POS(y[i]) ? SCALE_HI : (yv + SA_HI) + SA_LO;                                    \
        out[i] = TO_SMALL(TO_DOUBLE(g[i]) * d);                                                    \
    }                                                                                              \
}
FS_HALF_KERNELS(f16, fs_f16_pos, fs_f16_to_double, fs_to_f16)
FS_HALF_KERNELS(bf16, fs_bf16_pos, fs_bf16_to_double, fs_to_bf16)
