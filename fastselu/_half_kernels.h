/* float16 and bfloat16 kernels: correctly rounded, the same bits in every variant and platform.
 *
 * Included by every _simd_<isa>.c after _selu_kernels.h, whose float64 kernels and constants it
 * uses.  Plain C (it compiles everywhere), with AVX2 loops for the backward where the build has
 * AVX2 and F16C; 16-bit values travel as their bit patterns (uint16_t).
 *
 * Design: a 16-bit format has only 2^16 inputs, so
 * - forward: a table of the 2^16 results, looked up by bit pattern;
 * - backward from x: g * d with d from a table of the 2^16 inputs, d(x) = SA*exp(x) (SCALE
 *   where x > 0), as float32 rounded to odd (fs_ro32), so that g*d is exact in double (8 or
 *   11 + 24 bits) and is rounded once by integer code; or (AVX2) as p = g*d rounded to
 *   float32, then rounded to the format (F16C, or integer code for bfloat16), which is g*d's
 *   rounding wherever p is not on a midpoint of the format: the same bits, and the element
 *   function where it is.  bfloat16's g reaches 2^128, so where d(x) nears float32's
 *   subnormals (|x| >= 80) d stays a double, g*d rounded to double first (exact for g = 1).
 *   With g = 1 the product is d itself: d rounded once.  Other g: d's rounding to odd adds
 *   < 2^-20 ULP (bound: 1 ULP).
 * - backward from the result: no table, g*(y + SA) in double rounded once (fs_bwd_y_f16,
 *   fs_bwd_y_bf16), correctly rounded; the AVX2 loops round a p within one float32 ULP of it
 *   the same way.
 * Tables are built at first use from the float64 kernels of _selu_kernels.h (the same IEEE
 * operations everywhere, so every variant and platform builds the same bits), each entry
 * rounded once from double (fs_to_f16 / fs_to_bf16: to nearest, ties to even).  Nothing is
 * rounded to nearest through float32 where that could differ from rounding once (a float32
 * on a midpoint of the format): that double rounding misrounds (the float16 backward at
 * x = -0.1239 and -1.315 did).  tests/test_half.py checks all 2^16 inputs of each format,
 * forward and backward with g = 1, in every variant: correctly rounded (<= 0.5 ULP).
 * NaN: the forward returns the input's NaN quieted (table entry = input | quiet bit); backward
 * NaNs are the default quiet NaN (0x7E00 / 0x7FC0), as in the float32/float64 kernels.
 * Memory per variant, written when a 16-bit kernel first runs (fs_half_init; the driver calls it
 * before going parallel): 2 x 128 KiB of results, 2 x 256 KiB of float32 derivatives, 256 KiB of
 * bfloat16's double derivatives (read only where |x| >= 80).
 */
#ifndef FS_HALF_SHARED
#define FS_HALF_SHARED
#include <fenv.h>

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

/* v rounded to float32 "to odd" (truncated, the last bit set if inexact): rounding that once
 * more to a format at least 2 bits narrower gives v rounded once (Boldo and Melquiond). */
FS_INLINE float fs_ro32(double v)
{
    float f = (float)v;
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    if ((double)f != v && v == v) {
        b -= fabs((double)f) > fabs(v);
        b |= 1u;
    }
    memcpy(&f, &b, sizeof f);
    return f;
}

/* The forward's lookup, four elements per 8-byte load and store where the byte order lets
 * shifts pick the 16-bit lanes: one 2-byte store per element measured 10-20% slower on Zen 3
 * (~0.50 -> 0.42 ns per element at 10^6, float16), more where the output streams to memory;
 * the table loads stay one per element (a gather is not faster there). */
#if (defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) || defined(_MSC_VER)
#define FS_LITTLE_ENDIAN 1
#else
#define FS_LITTLE_ENDIAN 0
#endif
FS_INLINE void fs_lookup16(const uint16_t *t, const uint16_t *x, uint16_t *out, ptrdiff_t n)
{
    ptrdiff_t i = 0;
#if FS_LITTLE_ENDIAN
    for (; i + 4 <= n; i += 4) {
        uint64_t w, r;
        memcpy(&w, x + i, sizeof w);  /* read before written: out may be x */
        r = (uint64_t)t[w & 0xFFFFu] | (uint64_t)t[(w >> 16) & 0xFFFFu] << 16
            | (uint64_t)t[(w >> 32) & 0xFFFFu] << 32 | (uint64_t)t[w >> 48] << 48;
        memcpy(out + i, &r, sizeof r);
    }
#endif
    for (; i < n; i++) out[i] = t[x[i]];
}

/* x > 0 from the bit pattern: +0 < bits <= +inf (NaNs are not > 0). */
FS_INLINE int fs_f16_pos(uint16_t b) { return (uint16_t)(b - 1u) < FS_F16_INF; }
FS_INLINE int fs_bf16_pos(uint16_t b) { return (uint16_t)(b - 1u) < FS_BF16_INF; }
#endif /* FS_HALF_SHARED */

/* Per variant (each _simd_<isa>.c has its own copy, built by its own float64 kernels). */
static uint16_t fs_fwd_tab_f16[1 << 16], fs_fwd_tab_bf16[1 << 16];
/* Derivatives of the 2^16 inputs, d(x) = SA*exp(x), as float32 rounded to odd (g*d is then
 * exact in double; the AVX2 loops round it to float32 first, see there); SCALE rounded to odd
 * where x > 0, and the entry of -x at +0 and NaN.  Both halves, so that a lookup needs no test
 * of the sign (on AVX2 a 16-bit backward took ~10% longer with the 2^15 entries of the negative
 * inputs and a blend).  bfloat16's g reaches
 * 2^128, so where d(x) nears float32's subnormals (|x| >= 80) it is kept as a double:
 * fs_dx64_tab_bf16 holds that double there and the float32 one (exactly) elsewhere, for the
 * inputs with the sign bit set. */
static float fs_dx_tab_f16[1 << 16], fs_dx_tab_bf16[1 << 16];
static double fs_dx64_tab_bf16[1 << 15];
static float fs_scale_ro;
#define FS_BF16_HARD 0x42A0u  /* |x| >= 80 (and inf, NaN): fs_dx64_tab_bf16's double */
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
    fexcept_t saved;  /* the build raises flags (inexact, underflow): none may leak */
    fegetexceptflag(&saved, FE_ALL_EXCEPT);
    fs_scale_ro = fs_ro32(SCALE_HI);
    for (uint32_t i = 0; i < (1u << 16); i++) {
        double xh = fs_f16_to_double((uint16_t)i), xb = fs_bf16_to_double((uint16_t)i);
        fs_fwd_tab_f16[i] = xh != xh ? (uint16_t)(i | FS_F16_QUIET) : fs_to_f16(fs_fwd_f64(xh));
        fs_fwd_tab_bf16[i] = xb != xb ? (uint16_t)(i | FS_BF16_QUIET) : fs_to_bf16(fs_fwd_f64(xb));
    }
    for (uint32_t i = 0; i < (1u << 15); i++) {
        uint16_t n = (uint16_t)(i | 0x8000u);  /* x with the sign bit set */
        double xh = fs_f16_to_double(n), xb = fs_bf16_to_double(n);
        fs_dx_tab_f16[n] = fs_ro32(fs_half_deriv(xh));
        double db = fs_half_deriv(xb);
        fs_dx_tab_bf16[n] = fs_ro32(db);
        fs_dx64_tab_bf16[i] = i >= FS_BF16_HARD ? db : (double)fs_dx_tab_bf16[n];
        /* x without it: SCALE where x > 0, else (+0, NaN) the entry of -x */
        int ph = fs_f16_pos((uint16_t)i), pb = fs_bf16_pos((uint16_t)i);
        fs_dx_tab_f16[i] = ph ? fs_scale_ro : fs_dx_tab_f16[n];
        fs_dx_tab_bf16[i] = pb ? fs_scale_ro : fs_dx_tab_bf16[n];
    }
    fesetexceptflag(&saved, FE_ALL_EXCEPT);
    fs_half_ready = 1;
}

/* Element by element, the definition of every result (the vector loops give the same bits):
 * g times the tabulated d, in double, rounded once to the format.
 * The product is exact except for bfloat16's double entries (|x| >= 80), where it is rounded
 * to double first (g = 1: exact). */
#define FS_HALF_ELEMENT(NAME, D, TO_DOUBLE, TO_SMALL, T)                                           \
FS_INLINE uint16_t NAME(uint16_t g, uint16_t x, const T *t)                                        \
{                                                                                                  \
    double d = D;                                                                                  \
    return TO_SMALL(TO_DOUBLE(g) * d);                                                             \
}
FS_HALF_ELEMENT(fs_bwd_f16, (double)t[x], fs_f16_to_double, fs_to_f16, float)
FS_HALF_ELEMENT(fs_bwd_bf16_64, fs_bf16_pos(x) ? (double)fs_scale_ro : t[x & 0x7FFFu],
                fs_bf16_to_double, fs_to_bf16, double)
#define fs_bwd_x_f16(g, x) fs_bwd_f16(g, x, fs_dx_tab_f16)
#define fs_bwd_x_bf16(g, x) fs_bwd_bf16_64(g, x, fs_dx64_tab_bf16)

/* From the result: d = SCALE where y > 0, else (y + SA_HI) + SA_LO, in double, g*d rounded to
 * double, then once to the format (the numpy backend's _half.backward_y: the same operations).
 * That is g*(y + SA) correctly rounded for every float16 pair and every bfloat16 pair with
 * y >= -2^54 (all 2^32 pairs of each format against a double-double product with an exact
 * midpoint test: no exact value lies within the ~2^-52 of a midpoint that the double steps
 * leave; below -2^54 bfloat16's y has a ULP of 4 or more, y + SA_HI drops SA, and 3.5e6 pairs
 * at an exact midpoint go to the even neighbour: 0.5000x ULP).  Earlier releases multiplied g
 * by a table of d rounded to odd in float32: 1.1e5 float16 and 1.5e3 bfloat16 pairs (y > -2^54)
 * took the other neighbour, and the numpy backend's bits differed there. */
#define FS_HALF_ELEMENT_Y(NAME, TO_DOUBLE, TO_SMALL, POS)                                        \
FS_INLINE uint16_t NAME(uint16_t g, uint16_t y)                                                   \
{                                                                                                  \
    return TO_SMALL(TO_DOUBLE(g) * (POS(y) ? SCALE_HI : (TO_DOUBLE(y) + SA_HI) + SA_LO));        \
}
FS_HALF_ELEMENT_Y(fs_bwd_y_f16, fs_f16_to_double, fs_to_f16, fs_f16_pos)
FS_HALF_ELEMENT_Y(fs_bwd_y_bf16, fs_bf16_to_double, fs_to_bf16, fs_bf16_pos)

#if defined(__AVX2__) && defined(__F16C__)
#include <immintrin.h>
/* The backward 8 lanes at a time in float32 (gcc vectorises none of the loops above: the table
 * load is a gather), FS_CHAINS vectors per step: p = g*d rounded to float32, then to the
 * format, the element function's bits unless p is on one of its midpoints (fs_unsure8); a
 * group of vectors with such a lane (or, for bfloat16's x, an |x| >= 80) runs the element
 * functions.  Earlier releases rounded p to odd by its fma error instead (float16: 10 more
 * operations per vector; bfloat16 6, and a check for |p| < 2^-100 where the error is
 * inexact): at 10^5 on Zen 3 the float16 backward from x took 0.77 -> 0.65 ns per element,
 * bfloat16's 0.48 -> 0.40, from y 0.47 -> 0.37. */

/* d for 8 lanes, the table entries: eight scalar loads, not a gather (on Zen 3
 * _mm256_i32gather_ps alone took 0.63 ns per element, the loads and inserts 0.33; bfloat16
 * backward at 10^6: 0.90 -> 0.65 ns).  Loading the indices by two 8-byte loads and shifts
 * measured no faster. */
FS_INLINE __m256 fs_deriv8(const uint16_t *x, const float *t)
{
#define FS_D(j) t[x[j]]
    return _mm256_set_m128(_mm_set_ps(FS_D(7), FS_D(6), FS_D(5), FS_D(4)),
                           _mm_set_ps(FS_D(3), FS_D(2), FS_D(1), FS_D(0)));
#undef FS_D
}

FS_INLINE __m256 fs_f16x8(const uint16_t *h)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

FS_INLINE __m256 fs_bf16x8(const uint16_t *h)
{
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)h));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

/* p rounded at bit 16, half-way up: no p stored so is half-way (fs_unsure8) */
FS_INLINE void fs_store_bf16x8(uint16_t *dst, __m256 p)
{
    __m256i rb = _mm256_srli_epi32(_mm256_add_epi32(_mm256_castps_si256(p),
                                                    _mm256_set1_epi32(0x8000)), 16);
    _mm_storeu_si128((__m128i *)dst, _mm_packus_epi32(_mm256_castsi256_si128(rb),
                                                      _mm256_extracti128_si256(rb, 1)));
}

/* Lanes where p = g*d rounded to float32 might not round to g*d's 16-bit value: p on a
 * midpoint of the format (each has its low 12 (float16) or 15 (bfloat16) bits 0: the lowest
 * set bit of p's pattern, found as (p - 1) ^ p > below = 0xFFF / 0x7FFF, lies above them;
 * p = +-0 is exact), and NaN (a 16-bit g's or d's NaN has those bits 0 too; the element
 * function gives the default NaN).  Elsewhere p's rounding is g*d's: p and g*d lie on the same
 * side of every midpoint (each a float32, subnormal or not), as rounding is monotonic.
 * Integer operations: Zen 3 runs float compares on two of its four vector pipes, with the
 * blends and products. */
FS_INLINE __m256 fs_unsure8(__m256 p, int below)
{
    __m256i pb = _mm256_castps_si256(p);
    __m256i low = _mm256_xor_si256(_mm256_sub_epi32(pb, _mm256_set1_epi32(1)), pb);
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(low, _mm256_set1_epi32(below)));
}

#ifdef __FMA__
/* From the result: p = g*d(y) within one float32 ULP, fs_bwd_y_f32_fast's operations (d =
 * dh + dl, y + SA_HI_F = s + e exactly, one fma), so that its rounding to the format is g*d's
 * own wherever fs_unsure8 does not flag it (p can only be on the far side of a midpoint where
 * it is that midpoint).  Lanes with y <= -SA_HI_F (d <= 0 there) or NaN are set in *bad;
 * elsewhere d > 0 and g = +-0 takes g's sign by an or.  Faster than d in a register and
 * rounded to odd (Zen 3, 10^5: float16 ~0.55 -> 0.48 ns per element, bfloat16 ~0.60 -> 0.52
 * against its table), and g*d correctly rounded. */
FS_INLINE __m256 fs_bwd_y_p8(__m256 g, __m256 y, __m256 *bad)
{
    const __m256 a = _mm256_set1_ps(SA_HI_F);
    __m256 s = _mm256_add_ps(y, a);
    __m256 e = _mm256_sub_ps(y, _mm256_sub_ps(s, a));
    __m256 pos = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_castps_si256(y),
                                                        _mm256_setzero_si256()));
    __m256 dh = _mm256_blendv_ps(s, _mm256_set1_ps(SCALE_HI_F), pos);
    __m256 dl = _mm256_blendv_ps(_mm256_add_ps(e, _mm256_set1_ps(SA_LO_F)),
                                 _mm256_set1_ps(SCALE_LO_F), pos);
    __m256 p = _mm256_fmadd_ps(g, dh, _mm256_mul_ps(g, dl));
    *bad = _mm256_or_ps(*bad, _mm256_cmp_ps(y, _mm256_set1_ps(-SA_HI_F), _CMP_NGT_UQ));
    return _mm256_or_ps(p, _mm256_and_ps(g, _mm256_set1_ps(-0.0f)));
}
#endif

/* bf: bfloat16, else float16; y: from the result (fs_bwd_y_p8; needs FMA), else from x (g
 * times the table's d; bfloat16's |x| >= 80, where d(x) is a double, takes the element
 * function).  Both flags are constants where the macros below inline it. */
FS_INLINE ptrdiff_t fs_bwd_half_avx2(const uint16_t *g, const uint16_t *x, uint16_t *out,
                                     ptrdiff_t n, int bf, int y)
{
    enum { H = FS_CHAINS };
    ptrdiff_t i = 0;
    for (; i + 8 * H <= n; i += 8 * H) {
        __m256 p[H], bad = _mm256_setzero_ps();
        FS_EACH(H) {
            const uint16_t *gh = g + i + 8 * h, *xh = x + i + 8 * h;
            __m256 gv = bf ? fs_bf16x8(gh) : fs_f16x8(gh);
#ifdef __FMA__
            if (y) {
                p[h] = fs_bwd_y_p8(gv, bf ? fs_bf16x8(xh) : fs_f16x8(xh), &bad);
                continue;
            }
#endif
            p[h] = _mm256_mul_ps(gv, fs_deriv8(xh, bf ? fs_dx_tab_bf16 : fs_dx_tab_f16));
            if (bf) {
                __m256i wx = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)xh));
                bad = _mm256_or_ps(bad, _mm256_castsi256_ps(_mm256_cmpgt_epi32(
                          _mm256_and_si256(wx, _mm256_set1_epi32(0x7FFF)),
                          _mm256_set1_epi32((int)FS_BF16_HARD - 1))));
            }
        }
        FS_EACH(H) bad = _mm256_or_ps(bad, fs_unsure8(p[h], bf ? 0x7FFF : 0xFFF));
        if (_mm256_movemask_ps(bad)) {
            for (ptrdiff_t j = i; j < i + 8 * H; j++)
                out[j] = y ? (bf ? fs_bwd_y_bf16(g[j], x[j]) : fs_bwd_y_f16(g[j], x[j]))
                           : (bf ? fs_bwd_x_bf16(g[j], x[j]) : fs_bwd_x_f16(g[j], x[j]));
            continue;
        }
        FS_EACH(H) {
            if (bf)
                fs_store_bf16x8(out + i + 8 * h, p[h]);
            else
                _mm_storeu_si128((__m128i *)(out + i + 8 * h),
                                 _mm256_cvtps_ph(p[h], _MM_FROUND_TO_NEAREST_INT));
        }
    }
    return i;
}
#define fs_bwd_x_f16_avx2(g, x, out, n) fs_bwd_half_avx2(g, x, out, n, 0, 0)
#define fs_bwd_x_bf16_avx2(g, x, out, n) fs_bwd_half_avx2(g, x, out, n, 1, 0)
#ifdef __FMA__
#define fs_bwd_y_f16_avx2(g, y, out, n) fs_bwd_half_avx2(g, y, out, n, 0, 1)
#define fs_bwd_y_bf16_avx2(g, y, out, n) fs_bwd_half_avx2(g, y, out, n, 1, 1)
#else
#define fs_bwd_y_f16_avx2(g, y, out, n) ((ptrdiff_t)0)
#define fs_bwd_y_bf16_avx2(g, y, out, n) ((ptrdiff_t)0)
#endif
#elif defined(__SSE2__) || defined(_M_X64) || defined(_M_AMD64)
#include <emmintrin.h>
/* Baseline x86-64 (SSE2; neither F16C nor FMA): the element functions' own operations, 8 lanes
 * per step, branch-free.  The scalar loop branched on x > 0 (random signs mispredict half the
 * time) and on the result's range: 7.8 ns per element at 10^5 on Zen 3, 3.3 where the
 * predictor had learned a repeated 10^3-element pattern.
 * - g to float32 exactly (float16: rebiased exponent, subnormals as an integer times 2^-24;
 *   bfloat16: the top half of a float32), then to double;
 * - d from the table (float32 rounded to odd, or bfloat16's double entries for x), or SCALE
 *   rounded to odd where x > 0; from the result (no table) the element function's double d;
 * - g*d in double (exact but for bfloat16's double entries, which round it to double as the
 *   element function does), rounded once to the format as FS_TO_SMALL, in 64-bit lanes: |g*d|
 *   is first clamped to the power of two above the largest finite value, whose rounding (like
 *   that of anything from the overflow midpoint up) is inf. */
FS_INLINE __m128i fs_sse2_seli(__m128i m, __m128i a, __m128i b)
{
    return _mm_or_si128(_mm_and_si128(m, a), _mm_andnot_si128(m, b));
}

/* four float16 bit patterns (zero-extended 32-bit lanes) as float32, exactly */
FS_INLINE __m128 fs_sse2_f16_to_f32(__m128i w)
{
    __m128i a = _mm_and_si128(w, _mm_set1_epi32(0x7FFF));
    __m128i sign = _mm_slli_epi32(_mm_xor_si128(w, a), 16);
    __m128i sh = _mm_slli_epi32(a, 13);
    __m128i norm = _mm_add_epi32(sh, _mm_set1_epi32((127 - 15) << 23));
    __m128i special = _mm_or_si128(sh, _mm_set1_epi32(0x7F800000));  /* inf, NaN */
    __m128i sub = _mm_castps_si128(_mm_mul_ps(_mm_cvtepi32_ps(a), _mm_set1_ps(0x1p-24f)));
    __m128i r = fs_sse2_seli(_mm_cmpgt_epi32(a, _mm_set1_epi32((int)FS_F16_INF - 1)), special, norm);
    r = fs_sse2_seli(_mm_cmplt_epi32(a, _mm_set1_epi32(0x0400)), sub, r);
    return _mm_castsi128_ps(_mm_or_si128(r, sign));
}

/* FS_TO_SMALL for two doubles: each result in the low 16 bits of its 64-bit lane (the rest 0) */
#define FS_SSE2_TO_SMALL(NAME, M, B, QNAN, TOP, MINN, MAGIC)                                             \
    FS_INLINE __m128i NAME(__m128d v)                                                              \
    {                                                                                              \
        __m128d av = _mm_andnot_pd(_mm_set1_pd(-0.0), v);                                          \
        __m128d cl = _mm_min_pd(_mm_set1_pd(TOP), av);  /* NaN passes */                           \
        __m128i a = _mm_castpd_si128(cl);                                                          \
        __m128i odd = _mm_and_si128(_mm_srli_epi64(a, 52 - (M)), _mm_set1_epi64x(1));              \
        __m128i norm = _mm_sub_epi64(                                                              \
            _mm_srli_epi64(_mm_add_epi64(_mm_add_epi64(a, odd),                                    \
                                         _mm_set1_epi64x((1ll << (51 - (M))) - 1)), 52 - (M)),     \
            _mm_set1_epi64x((long long)(1023 - (B)) << (M)));                                      \
        __m128i sub = _mm_sub_epi64(_mm_castpd_si128(_mm_add_pd(cl, _mm_set1_pd(MAGIC))),         \
                                    _mm_castpd_si128(_mm_set1_pd(MAGIC)));                         \
        __m128i h = fs_sse2_seli(_mm_castpd_si128(_mm_cmplt_pd(cl, _mm_set1_pd(MINN))),   \
                                sub, norm);                                                        \
        h = _mm_or_si128(h, _mm_and_si128(_mm_srli_epi64(_mm_castpd_si128(v), 48),                 \
                                          _mm_set1_epi64x(0x8000)));                               \
        return fs_sse2_seli(_mm_castpd_si128(_mm_cmpunord_pd(v, v)), _mm_set1_epi64x(QNAN), h);     \
    }
FS_SSE2_TO_SMALL(fs_sse2_to_f16, 10, 15, FS_F16_QNAN, 0x1p16, 0x1p-14, 0x1p28)
FS_SSE2_TO_SMALL(fs_sse2_to_bf16, 7, 127, FS_BF16_QNAN, 0x1p128, 0x1p-126, 0x1p-81)

/* the results of lanes (0, 1), (2, 3), (4, 5), (6, 7) as 8 16-bit values */
FS_INLINE __m128i fs_sse2_pack16(__m128i h0, __m128i h1, __m128i h2, __m128i h3)
{
    __m128i lo = _mm_castps_si128(_mm_shuffle_ps(_mm_castsi128_ps(h0), _mm_castsi128_ps(h1),
                                                 _MM_SHUFFLE(2, 0, 2, 0)));
    __m128i hi = _mm_castps_si128(_mm_shuffle_ps(_mm_castsi128_ps(h2), _mm_castsi128_ps(h3),
                                                 _MM_SHUFFLE(2, 0, 2, 0)));
    /* sign-extended from 16 bits, so that the saturating pack keeps every pattern */
    lo = _mm_srai_epi32(_mm_slli_epi32(lo, 16), 16);
    hi = _mm_srai_epi32(_mm_slli_epi32(hi, 16), 16);
    return _mm_packs_epi32(lo, hi);
}

/* d of two lanes j, j + 1 as doubles (pos: their 64-bit masks of x > 0; xf: x as float32 in
 * the low two lanes): without tables, d(y) as fs_bwd_y_f16 / fs_bwd_y_bf16 take it; else the
 * float32 table's entry, or from bfloat16's double table (the inputs with the sign bit set) or
 * SCALE rounded to odd where pos */
FS_INLINE __m128d fs_sse2_deriv2(const uint16_t *x, int j, __m128i pos, __m128 xf,
                                 const float *t, const double *t64)
{
    if (t == NULL && t64 == NULL) {
        __m128d d = _mm_add_pd(_mm_add_pd(_mm_cvtps_pd(xf), _mm_set1_pd(SA_HI)),
                               _mm_set1_pd(SA_LO));
        return _mm_castsi128_pd(fs_sse2_seli(pos, _mm_castpd_si128(_mm_set1_pd(SCALE_HI)),
                                            _mm_castpd_si128(d)));
    }
    if (t64 == NULL)
        return _mm_set_pd((double)t[x[j + 1]], (double)t[x[j]]);
    __m128d d = _mm_set_pd(t64[x[j + 1] & 0x7FFFu], t64[x[j] & 0x7FFFu]);
    return _mm_castsi128_pd(fs_sse2_seli(pos, _mm_castpd_si128(_mm_set1_pd((double)fs_scale_ro)),
                                        _mm_castpd_si128(d)));
}

/* bf: bfloat16 (else float16); t64: bfloat16's double table for x, else NULL; t and t64 NULL:
 * from the result */
FS_INLINE ptrdiff_t fs_bwd_half_sse2(const uint16_t *g, const uint16_t *x, uint16_t *out,
                                     ptrdiff_t n, const float *t, const double *t64, int bf)
{
    const __m128i zero = _mm_setzero_si128();
    const int inf = bf ? (int)FS_BF16_INF : (int)FS_F16_INF;
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i gw = _mm_loadu_si128((const __m128i *)(g + i));
        __m128i xw = _mm_loadu_si128((const __m128i *)(x + i));
        __m128 g03, g47, x03 = _mm_setzero_ps(), x47 = _mm_setzero_ps();
        if (bf) {
            g03 = _mm_castsi128_ps(_mm_unpacklo_epi16(zero, gw));
            g47 = _mm_castsi128_ps(_mm_unpackhi_epi16(zero, gw));
            x03 = _mm_castsi128_ps(_mm_unpacklo_epi16(zero, xw));
            x47 = _mm_castsi128_ps(_mm_unpackhi_epi16(zero, xw));
        } else {
            g03 = fs_sse2_f16_to_f32(_mm_unpacklo_epi16(gw, zero));
            g47 = fs_sse2_f16_to_f32(_mm_unpackhi_epi16(gw, zero));
            if (t == NULL) {
                x03 = fs_sse2_f16_to_f32(_mm_unpacklo_epi16(xw, zero));
                x47 = fs_sse2_f16_to_f32(_mm_unpackhi_epi16(xw, zero));
            }
        }
        /* x > 0: +0 < bits <= +inf, as x - 1 in [0, inf) */
        __m128i xm1 = _mm_sub_epi32(_mm_unpacklo_epi16(xw, zero), _mm_set1_epi32(1));
        __m128i p03 = _mm_andnot_si128(_mm_cmplt_epi32(xm1, zero),
                                       _mm_cmplt_epi32(xm1, _mm_set1_epi32(inf)));
        xm1 = _mm_sub_epi32(_mm_unpackhi_epi16(xw, zero), _mm_set1_epi32(1));
        __m128i p47 = _mm_andnot_si128(_mm_cmplt_epi32(xm1, zero),
                                       _mm_cmplt_epi32(xm1, _mm_set1_epi32(inf)));
        const uint16_t *xi = x + i;
        __m128d v0 = _mm_mul_pd(_mm_cvtps_pd(g03),
                                fs_sse2_deriv2(xi, 0, _mm_unpacklo_epi32(p03, p03), x03, t, t64));
        __m128d v1 = _mm_mul_pd(_mm_cvtps_pd(_mm_movehl_ps(g03, g03)),
                                fs_sse2_deriv2(xi, 2, _mm_unpackhi_epi32(p03, p03),
                                               _mm_movehl_ps(x03, x03), t, t64));
        __m128d v2 = _mm_mul_pd(_mm_cvtps_pd(g47),
                                fs_sse2_deriv2(xi, 4, _mm_unpacklo_epi32(p47, p47), x47, t, t64));
        __m128d v3 = _mm_mul_pd(_mm_cvtps_pd(_mm_movehl_ps(g47, g47)),
                                fs_sse2_deriv2(xi, 6, _mm_unpackhi_epi32(p47, p47),
                                               _mm_movehl_ps(x47, x47), t, t64));
        __m128i r = bf ? fs_sse2_pack16(fs_sse2_to_bf16(v0), fs_sse2_to_bf16(v1),
                                        fs_sse2_to_bf16(v2), fs_sse2_to_bf16(v3))
                       : fs_sse2_pack16(fs_sse2_to_f16(v0), fs_sse2_to_f16(v1),
                                        fs_sse2_to_f16(v2), fs_sse2_to_f16(v3));
        _mm_storeu_si128((__m128i *)(out + i), r);
    }
    return i;
}
#define fs_bwd_x_f16_avx2(g, x, out, n) fs_bwd_half_sse2(g, x, out, n, fs_dx_tab_f16, NULL, 0)
#define fs_bwd_y_f16_avx2(g, y, out, n) fs_bwd_half_sse2(g, y, out, n, NULL, NULL, 0)
#define fs_bwd_x_bf16_avx2(g, x, out, n)                                                         \
    fs_bwd_half_sse2(g, x, out, n, NULL, fs_dx64_tab_bf16, 1)
#define fs_bwd_y_bf16_avx2(g, y, out, n) fs_bwd_half_sse2(g, y, out, n, NULL, NULL, 1)
#else
#define fs_bwd_x_f16_avx2(g, x, out, n) ((ptrdiff_t)0)
#define fs_bwd_y_f16_avx2(g, y, out, n) ((ptrdiff_t)0)
#define fs_bwd_x_bf16_avx2(g, x, out, n) ((ptrdiff_t)0)
#define fs_bwd_y_bf16_avx2(g, y, out, n) ((ptrdiff_t)0)
#endif /* AVX2 */

#define FS_HALF_KERNELS(S)                                                                         \
void FS_NAME(fs_forward_##S)(const uint16_t *x, uint16_t *out, ptrdiff_t n)                        \
{                                                                                                  \
    FS_NAME(fs_half_init)();                                                                       \
    fs_lookup16(fs_fwd_tab_##S, x, out, n);                                                        \
}                                                                                                  \
void FS_NAME(fs_backward_x_##S)(const uint16_t *g, const uint16_t *x, uint16_t *out, ptrdiff_t n)  \
{                                                                                                  \
    FS_NAME(fs_half_init)();                                                                       \
    ptrdiff_t i = fs_bwd_x_##S##_avx2(g, x, out, n);                                               \
    for (; i < n; i++) out[i] = fs_bwd_x_##S(g[i], x[i]);                                          \
}                                                                                                  \
void FS_NAME(fs_backward_y_##S)(const uint16_t *g, const uint16_t *y, uint16_t *out, ptrdiff_t n)  \
{                                                                                                  \
    FS_NAME(fs_half_init)();                                                                       \
    ptrdiff_t i = fs_bwd_y_##S##_avx2(g, y, out, n);                                               \
    for (; i < n; i++) out[i] = fs_bwd_y_##S(g[i], y[i]);                                          \
}
FS_HALF_KERNELS(f16)
FS_HALF_KERNELS(bf16)
