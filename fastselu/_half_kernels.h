/* float16 and bfloat16 kernels: correctly rounded, the same bits in every variant and platform.
 *
 * Included by every _simd_<isa>.c after _selu_kernels.h, whose float64 kernels and constants it
 * uses.  Plain C first (it compiles everywhere), with AVX2 loops for the backward where the build
 * has AVX2 (F16C and FMA for float16); 16-bit values travel as their bit patterns (uint16_t).
 *
 * Design: a 16-bit format has only 2^16 inputs, so
 * - forward: a table of the 2^16 results, looked up by bit pattern;
 * - backward: g * d with d from a table of the 2^15 inputs with the sign bit set (d = SCALE for
 *   x > 0), rounded once to the format:
 *   - float16: d(x) = SA*exp(x) and d(y) = (y + SA_HI) + SA_LO as float32 rounded to odd
 *     (fs_ro32), so g*d is exact in double (11 + 24 bits): rounded once by integer code, or
 *     (AVX2) as p = g*d in float32 plus its exact error by fma, p rounded to odd, then F16C's
 *     rounding: the same bits (Boldo and Melquiond: rounding to odd with 2 extra bits, then to
 *     nearest, is rounding to nearest once);
 *   - bfloat16: d(x) as double (g reaches 2^128: d must stay accurate below float32's range),
 *     g*d rounded to double, then once to bfloat16 by integer code; backward from y computes
 *     (y + SA_HI) + SA_LO in double (exact for |y| < 2).
 *   With g = 1 the product is d itself: the result is d rounded once.  Other g: the product's
 *   rounding to double (bfloat16) or d's to odd (float16) adds < 2^-20 ULP (<= 1 ULP bound).
 * Tables are built at first use from the float64 kernels of _selu_kernels.h (the same IEEE
 * operations everywhere, so every variant and platform builds the same bits), each entry
 * rounded once from double (fs_to_f16 / fs_to_bf16: to nearest, ties to even).  Nothing is
 * rounded to nearest through float32: that double rounding misrounds (the float16 backward at
 * x = -0.1239 and -1.315 did).  tests/test_half.py checks all 2^16 inputs of each format,
 * forward and backward with g = 1, in every variant: correctly rounded (<= 0.5 ULP).
 * NaN: the forward returns the input's NaN quieted (table entry = input | quiet bit); backward
 * NaNs are the default quiet NaN (0x7E00 / 0x7FC0), as in the float32/float64 kernels.
 * Memory per variant, written when a 16-bit kernel first runs (fs_half_init; the driver calls it
 * before going parallel): 2 x 128 KiB of results, 2 x 128 KiB of float16 derivatives, 256 KiB of
 * bfloat16 derivatives.
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

/* x > 0 from the bit pattern: +0 < bits <= +inf (NaNs are not > 0). */
FS_INLINE int fs_f16_pos(uint16_t b) { return (uint16_t)(b - 1u) < FS_F16_INF; }
FS_INLINE int fs_bf16_pos(uint16_t b) { return (uint16_t)(b - 1u) < FS_BF16_INF; }
#endif /* FS_HALF_SHARED */

/* Per variant (each _simd_<isa>.c has its own copy, built by its own float64 kernels). */
static uint16_t fs_fwd_tab_f16[1 << 16], fs_fwd_tab_bf16[1 << 16];
/* float16: d(x) and d(y) = (y + SA_HI) + SA_LO rounded to odd as float32: g*d is then exact in
 * double (11 + 24 bits), and in float32 with an fma for its error, which (rounded to odd once
 * more) F16C rounds to float16 once.  bfloat16: d(x) as double (its g reaches 2^128, and d must
 * stay accurate far below float32's range). */
static float fs_d_tab_f16[1 << 15], fs_dy_tab_f16[1 << 15];
static float fs_scale_ro;
static double fs_d_tab_bf16[1 << 15];
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
        double xh = fs_f16_to_double((uint16_t)(i | 0x8000u));
        fs_d_tab_f16[i] = fs_ro32(fs_half_deriv(xh));
        fs_dy_tab_f16[i] = fs_ro32((xh + SA_HI) + SA_LO);
        fs_d_tab_bf16[i] = fs_half_deriv(fs_bf16_to_double((uint16_t)(i | 0x8000u)));
    }
    fesetexceptflag(&saved, FE_ALL_EXCEPT);
    fs_half_ready = 1;
}

/* Element by element (also the vector loops' tails: the same bits).  float16: g*d exact in
 * double, rounded once; bfloat16: g*d rounded to double, then to bfloat16 (exact for g = 1). */
FS_INLINE uint16_t fs_bwd_f16(uint16_t g, uint16_t x, const float *t)
{
    float d = fs_f16_pos(x) ? fs_scale_ro : t[x & 0x7FFFu];
    return fs_to_f16(fs_f16_to_double(g) * (double)d);
}
#define fs_bwd_x_f16(g, x) fs_bwd_f16(g, x, fs_d_tab_f16)
#define fs_bwd_y_f16(g, y) fs_bwd_f16(g, y, fs_dy_tab_f16)

FS_INLINE uint16_t fs_bwd_x_bf16(uint16_t g, uint16_t x)
{
    double d = fs_bf16_pos(x) ? SCALE_HI : fs_d_tab_bf16[x & 0x7FFFu];
    return fs_to_bf16(fs_bf16_to_double(g) * d);
}

FS_INLINE uint16_t fs_bwd_y_bf16(uint16_t g, uint16_t y)
{
    double d = fs_bf16_pos(y) ? SCALE_HI : (fs_bf16_to_double(y) + SA_HI) + SA_LO;
    return fs_to_bf16(fs_bf16_to_double(g) * d);
}

#if defined(__AVX2__)
#include <immintrin.h>
/* The backward loops 8 elements at a time (gcc vectorises none of them: the table load is a
 * gather): the same operations as above, with fs_to_f16/fs_to_bf16 in 64-bit integer lanes and
 * the derivative table read by two 4-lane gathers.  Inputs convert exactly: float16 by F16C
 * (where the build enables it; else the element loop), bfloat16 by a shift. */
#define FS_TO_SMALL4(NAME, M, B, INF, QNAN, OVF_BITS, MAGIC)                                       \
FS_INLINE __m256i NAME(__m256d v)                                                                  \
{                                                                                                  \
    __m256i u = _mm256_castpd_si256(v);                                                            \
    __m256i a = _mm256_and_si256(u, _mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFll));                     \
    __m256i sign = _mm256_and_si256(_mm256_srli_epi64(u, 48), _mm256_set1_epi64x(0x8000));         \
    __m256i odd = _mm256_and_si256(_mm256_srli_epi64(a, 52 - (M)), _mm256_set1_epi64x(1));         \
    __m256i r = _mm256_add_epi64(_mm256_add_epi64(a, _mm256_set1_epi64x((1ll << (51 - (M))) - 1)), odd); \
    __m256i norm = _mm256_sub_epi64(_mm256_srli_epi64(r, 52 - (M)),                                \
                                    _mm256_set1_epi64x((long long)(1023 - (B)) << (M)));           \
    __m256d mg = _mm256_set1_pd(MAGIC);                                                            \
    __m256i sub = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(_mm256_castsi256_pd(a), mg)), \
                                   _mm256_castpd_si256(mg));                                       \
    __m256i is_sub = _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)(1024 - (B)) << 52), a);     \
    __m256i is_ovf = _mm256_cmpgt_epi64(a, _mm256_set1_epi64x((long long)(OVF_BITS) - 1));         \
    __m256i h = _mm256_blendv_epi8(norm, sub, is_sub);                                             \
    h = _mm256_or_si256(_mm256_blendv_epi8(h, _mm256_set1_epi64x(INF), is_ovf), sign);             \
    __m256i nan = _mm256_castpd_si256(_mm256_cmp_pd(v, v, _CMP_UNORD_Q));                          \
    return _mm256_blendv_epi8(h, _mm256_set1_epi64x(QNAN), nan);                                   \
}
FS_TO_SMALL4(fs_to_f16_4, 10, 15, FS_F16_INF, FS_F16_QNAN, 0x40EFFE0000000000ll, 0x1p28)
FS_TO_SMALL4(fs_to_bf16_4, 7, 127, FS_BF16_INF, FS_BF16_QNAN, 0x47EFF00000000000ll, 0x1p-81)

/* 2 x 4 results (low 16 bits of 64-bit lanes) stored as 8 uint16. */
FS_INLINE void fs_store8(uint16_t *p, __m256i lo, __m256i hi)
{
    const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    __m128i a = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(lo, idx));
    __m128i b = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(hi, idx));
    _mm_storeu_si128((__m128i *)p, _mm_packus_epi32(a, b));
}

FS_INLINE void fs_split8(__m256 f, __m256d *lo, __m256d *hi)
{
    *lo = _mm256_cvtps_pd(_mm256_castps256_ps128(f));
    *hi = _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1));
}

/* 8 bfloat16 / float16 as doubles, exactly; *w gets the bit patterns in 32-bit lanes. */
FS_INLINE void fs_load8_bf16(const uint16_t *p, __m256i *w, __m256d *lo, __m256d *hi)
{
    *w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    fs_split8(_mm256_castsi256_ps(_mm256_slli_epi32(*w, 16)), lo, hi);
}

/* x > 0 from the patterns (fs_f16_pos / fs_bf16_pos), as two 64-bit lane masks */
FS_INLINE void fs_pos8(__m256i w, int inf, __m256d *lo, __m256d *hi)
{
    __m256i t = _mm256_and_si256(_mm256_add_epi32(w, _mm256_set1_epi32(0xFFFF)),
                                 _mm256_set1_epi32(0xFFFF));
    __m256i pos = _mm256_cmpgt_epi32(_mm256_set1_epi32(inf), t);
    *lo = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(pos)));
    *hi = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(pos, 1)));
}

/* bfloat16: derivative table of doubles (two 4-lane gathers), g*d rounded by FS_TO_SMALL4. */
FS_INLINE ptrdiff_t fs_bwd_x_bf16_avx2(const uint16_t *g, const uint16_t *x, uint16_t *out,
                                       ptrdiff_t n)
{
    const __m256d scale = _mm256_set1_pd(SCALE_HI);
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i wx, wg;
        __m256d x_lo, x_hi, g_lo, g_hi, p_lo, p_hi;
        fs_load8_bf16(x + i, &wx, &x_lo, &x_hi);
        fs_load8_bf16(g + i, &wg, &g_lo, &g_hi);
        __m256i idx = _mm256_and_si256(wx, _mm256_set1_epi32(0x7FFF));
        __m256d d_lo = _mm256_i32gather_pd(fs_d_tab_bf16, _mm256_castsi256_si128(idx), 8);
        __m256d d_hi = _mm256_i32gather_pd(fs_d_tab_bf16, _mm256_extracti128_si256(idx, 1), 8);
        fs_pos8(wx, FS_BF16_INF, &p_lo, &p_hi);
        d_lo = _mm256_blendv_pd(d_lo, scale, p_lo);
        d_hi = _mm256_blendv_pd(d_hi, scale, p_hi);
        fs_store8(out + i, fs_to_bf16_4(_mm256_mul_pd(g_lo, d_lo)),
                  fs_to_bf16_4(_mm256_mul_pd(g_hi, d_hi)));
    }
    return i;
}

FS_INLINE ptrdiff_t fs_bwd_y_bf16_avx2(const uint16_t *g, const uint16_t *y, uint16_t *out,
                                       ptrdiff_t n)
{
    const __m256d scale = _mm256_set1_pd(SCALE_HI), sa_hi = _mm256_set1_pd(SA_HI);
    const __m256d sa_lo = _mm256_set1_pd(SA_LO);
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i wy, wg;
        __m256d y_lo, y_hi, g_lo, g_hi, p_lo, p_hi;
        fs_load8_bf16(y + i, &wy, &y_lo, &y_hi);
        fs_load8_bf16(g + i, &wg, &g_lo, &g_hi);
        fs_pos8(wy, FS_BF16_INF, &p_lo, &p_hi);
        __m256d d_lo = _mm256_add_pd(_mm256_add_pd(y_lo, sa_hi), sa_lo);
        __m256d d_hi = _mm256_add_pd(_mm256_add_pd(y_hi, sa_hi), sa_lo);
        d_lo = _mm256_blendv_pd(d_lo, scale, p_lo);
        d_hi = _mm256_blendv_pd(d_hi, scale, p_hi);
        fs_store8(out + i, fs_to_bf16_4(_mm256_mul_pd(g_lo, d_lo)),
                  fs_to_bf16_4(_mm256_mul_pd(g_hi, d_hi)));
    }
    return i;
}
#define FS_HALF_AVX2_BF16 1

#if defined(__F16C__) && defined(__FMA__)
/* float16, 8 lanes of float32: p = g*d rounded, e = g*d - p exactly (fma); p rounded to odd
 * (moved one step toward zero where e has the other sign, last bit set where e != 0) is g*d to
 * 24 bits and odd, so F16C's one rounding to nearest gives g*d rounded once: the bits of
 * fs_bwd_f16.  (Where p underflows float32's normal range e may be inexact, but the float16
 * result is then +-0 either way.) */
FS_INLINE ptrdiff_t fs_bwd_f16_avx2(const uint16_t *g, const uint16_t *x, uint16_t *out,
                                    ptrdiff_t n, const float *t)
{
    const __m256 scale = _mm256_set1_ps(fs_scale_ro);
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i xb = _mm_loadu_si128((const __m128i *)(x + i));
        __m256 gv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + i)));
        __m256i wx = _mm256_cvtepu16_epi32(xb);
        __m256 d = _mm256_i32gather_ps(t, _mm256_and_si256(wx, _mm256_set1_epi32(0x7FFF)), 4);
        __m256i tpos = _mm256_and_si256(_mm256_add_epi32(wx, _mm256_set1_epi32(0xFFFF)),
                                        _mm256_set1_epi32(0xFFFF));
        __m256i pos = _mm256_cmpgt_epi32(_mm256_set1_epi32(FS_F16_INF), tpos);
        d = _mm256_blendv_ps(d, scale, _mm256_castsi256_ps(pos));
        __m256 p = _mm256_mul_ps(gv, d);
        __m256 e = _mm256_fmsub_ps(gv, d, p);
        __m256i inexact = _mm256_castps_si256(_mm256_cmp_ps(e, _mm256_setzero_ps(), _CMP_NEQ_OQ));
        __m256i pb = _mm256_castps_si256(p);
        /* -1 where e and p differ in sign (p is then too large in magnitude) and e != 0 */
        __m256i down = _mm256_and_si256(_mm256_srai_epi32(_mm256_xor_si256(pb, _mm256_castps_si256(e)), 31),
                                        inexact);
        pb = _mm256_or_si256(_mm256_add_epi32(pb, down),
                             _mm256_and_si256(inexact, _mm256_set1_epi32(1)));
        p = _mm256_blendv_ps(_mm256_castsi256_ps(pb), _mm256_set1_ps(NAN),
                             _mm256_cmp_ps(p, p, _CMP_UNORD_Q));
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT));
    }
    return i;
}
#define FS_HALF_AVX2_F16 1
#endif
#endif /* __AVX2__ */

#ifndef FS_HALF_AVX2_F16
#define fs_bwd_f16_avx2(g, x, out, n, t) ((ptrdiff_t)0)
#endif
#ifndef FS_HALF_AVX2_BF16
#define fs_bwd_x_bf16_avx2(g, x, out, n) ((ptrdiff_t)0)
#define fs_bwd_y_bf16_avx2(g, y, out, n) ((ptrdiff_t)0)
#endif
#define fs_bwd_x_f16_avx2(g, x, out, n) fs_bwd_f16_avx2(g, x, out, n, fs_d_tab_f16)
#define fs_bwd_y_f16_avx2(g, y, out, n) fs_bwd_f16_avx2(g, y, out, n, fs_dy_tab_f16)

#define FS_HALF_KERNELS(S)                                                                         \
void FS_NAME(fs_forward_##S)(const uint16_t *x, uint16_t *out, ptrdiff_t n)                        \
{                                                                                                  \
    FS_NAME(fs_half_init)();                                                                       \
    const uint16_t *t = fs_fwd_tab_##S;                                                            \
    for (ptrdiff_t i = 0; i < n; i++) out[i] = t[x[i]];                                            \
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
