/* AlphaDropout kernels: fused SELU + AlphaDropout, AlphaDropout alone, and both backwards, with
 * the counter-based Philox4x32-10 mask of the SPEC ("Self-normalizing companions").
 *
 * Included by every _simd_<isa>.c after _selu_kernels.h (whose helpers it uses: fs_reduce,
 * fs_expm1_small_dd, fs_expm1_f32, fs_sa_exp_f32, fs_pow2, fs_fast2sum, fs_canon*), so each SIMD
 * variant compiles it with its own flags; plain C that gcc vectorizes, and AVX2 intrinsics for
 * Philox (four counters per register, vpmuludq), the fused float32 forward's tiles and the fused
 * backward's fast tiles.  Mirrored operation for operation by fastselu/_backend_numba.py.
 *
 * The mask: element with logical index i (the flat C-order index in the whole array; with
 * feature=True, i // inner) is kept iff word i % 4 of Philox4x32-10(counter (i/4 mod 2^32,
 * i/4 >> 32, 0, 0), key (k0, k1)) >= floor(p * 2^32).  A kernel call covers elements start,
 * start + 1, ... of the whole array, so threads, chunks and strided layouts (which the front end
 * walks in C order) all see the same mask.  Each call works in tiles: the tile's Philox words
 * first (one Philox call per four elements), then the values.
 *
 * The constants of one call (p, a, SA*p, ln(1 - p), ...) come in `prm`, a double array whose
 * layout is fastselu/_dropout.py's P_* (tests/test_dropout.py checks the two agree): computed
 * there once per p in exact decimal arithmetic and split into double-double (or, where sums
 * cancel, triple-double) parts.
 *
 * Accuracy (kept elements <= 1 ULP of a*(v + SA*p), also where it cancels):
 * - float32 in double: a*((v + B_hi) + B_lo); fused, x <= 0: C*expm1(x - ln q) (C = a*SA*q, the
 *   factored form, so no cancellation is left), x > 0: a*SCALE*x + a*SA*p; rounded once.
 *   (A float32 evaluation with the precise path only for elements near the cancellation was
 *   measured: on AVX2 it is no faster, 2.07 against 2.04 ns per element fused and 1.20 against
 *   1.06 alone, one thread, as its float32 expm1 needs the split reconstruction of fs_fwd_f32 on
 *   top of a TwoSum, where the double path's short polynomial has room to spare; Philox is
 *   0.67 ns of either.)
 * - float64 in double-double: v + SA*p as an exact TwoSum chain against the triple-double
 *   SA*p, times a; fused: x - ln q against a triple-double ln q, then expm1 in double-double.
 *   At x ~ ln q (or v ~ -SA*p) the result is ~2^-53 of the constants, which is why their
 *   third words are needed there.
 * - float16/bfloat16: the float32 kernels on tiles widened exactly, each result rounded once
 *   more to the format (fs_dropout_h16, at the end).
 * The forwards take every element down the same path (no branch on the data).  The fused
 * backward from x has a fast path as selu_backward's (a four-entry table, here a*SA*2^(j/4) per
 * p, ~0.7 ULP), taken by tiles whose x are all above -80 (float32) / -700 (float64); a tile with
 * any other x picks per element, so an element's bits never depend on its neighbours.  AVX2
 * builds write its fast tiles with intrinsics (the table in registers), the rest is plain C.
 */
#include <stdint.h>
#include <string.h>

#ifndef FS_DROPOUT_SHARED
#define FS_DROPOUT_SHARED

/* Philox4x32-10 (Salmon et al., SC11; Random123) */
#define FS_PHILOX_M0 0xD2511F53u
#define FS_PHILOX_M1 0xCD9E8D57u
#define FS_PHILOX_W0 0x9E3779B9u
#define FS_PHILOX_W1 0xBB67AE85u

/* Elements per tile: the Philox words of a tile sit in two 8 KB stack buffers. */
#define FS_DROPOUT_TILE 2048

/* Layout of `prm` (fastselu/_dropout.py, P_*) */
#define FS_P_THRESH 0
#define FS_P_A_HI 1
#define FS_P_A_LO 2
#define FS_P_B_HI 3
#define FS_P_B_LO 4
#define FS_P_C_HI 5
#define FS_P_C_LO 6
#define FS_P_L_HI 7
#define FS_P_L_LO 8
#define FS_P_AS_HI 9
#define FS_P_AS_LO 10
#define FS_P_AB_HI 11
#define FS_P_AB_LO 12
#define FS_P_ASA_HI 13
#define FS_P_ASA_LO 14
#define FS_P_CST 15
#define FS_P_ZMIN 16
#define FS_P_B_LO2 17
#define FS_P_L_LO2 18
#define FS_P_C_LO2 19
/* The fused backward's fast path: a*SCALE and the table a*SA*2^(j/4), j = 0..3, as float32
 * pairs (hi + lo, each a float32 value) and as double-double pairs */
#define FS_P_FAS_HI 20
#define FS_P_FAS_LO 21
#define FS_P_FT_HI 22
#define FS_P_FT_LO 26
#define FS_P_DT_HI 30
#define FS_P_DT_LO 34
#define FS_N_PARAMS 38

/* tmp[4t + r] = word r of Philox4x32-10(counter b0 + t) for t < nb: plain C. */
FS_INLINE void fs_philox_fill_scalar(uint32_t *restrict tmp, uint64_t b0, ptrdiff_t nb,
                                     uint32_t k0, uint32_t k1)
{
    for (ptrdiff_t t = 0; t < nb; t++) {
        uint64_t b = b0 + (uint64_t)t;
        uint32_t c0 = (uint32_t)b, c1 = (uint32_t)(b >> 32), c2 = 0, c3 = 0;
        uint32_t ka = k0, kb = k1;
        for (int r = 0; r < 10; r++) {
            uint64_t p0 = (uint64_t)FS_PHILOX_M0 * c0;
            uint64_t p1 = (uint64_t)FS_PHILOX_M1 * c2;
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ ka;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ kb;
            c1 = (uint32_t)p1;
            c3 = (uint32_t)p0;
            c0 = n0;
            c2 = n2;
            ka += FS_PHILOX_W0;
            kb += FS_PHILOX_W1;
        }
        tmp[4 * t] = c0;
        tmp[4 * t + 1] = c1;
        tmp[4 * t + 2] = c2;
        tmp[4 * t + 3] = c3;
    }
}
#endif /* FS_DROPOUT_SHARED */

/* Per ISA from here on (the shared part above is compiled once per translation unit). */
#if defined(__AVX2__)
#include <immintrin.h>
/* Counters b0 + t in 64-bit lanes, four blocks per register (each word in a lane's low half:
 * vpmuludq reads only those, so a round is a product and a shift per word, and the high halves,
 * garbage, never matter), FS_PHILOX_GROUPS registers at once for the multiplier's latency; the
 * four words of each block stored block after block, as fs_philox_fill_scalar does.  Within one
 * call the counter's high word is fixed (no carry: checked), so c1 = hw, and c2 = c3 = 0 start
 * the first round: its M1 product is 0 and its new c0 = hw ^ k0 is the same for every block, so
 * round 2's M0 product is one scalar, and round 3's c3 (its low half) folds into a key.  Rounds
 * 1-3 then take 4 products per register instead of 6; 0.63 ns per element on Zen 3, where the
 * eight-counter form without those folds took 0.79 (gcc's vectorization of the scalar loop,
 * shuffling every product across 128-bit lanes, 2.2). */
#define FS_PHILOX_GROUPS 4
FS_INLINE void fs_philox_store4(uint32_t *dst, __m256i c0, __m256i c1, __m256i c2, __m256i c3)
{
    __m256i x01 = _mm256_blend_epi32(c0, _mm256_slli_epi64(c1, 32), 0xAA);
    __m256i x23 = _mm256_blend_epi32(c2, _mm256_slli_epi64(c3, 32), 0xAA);
    __m256i u = _mm256_unpacklo_epi64(x01, x23), v = _mm256_unpackhi_epi64(x01, x23);
    _mm256_storeu_si256((__m256i *)dst, _mm256_permute2x128_si256(u, v, 0x20));
    _mm256_storeu_si256((__m256i *)dst + 1, _mm256_permute2x128_si256(u, v, 0x31));
}

FS_INLINE void fs_philox_fill(uint32_t *restrict tmp, uint64_t b0, ptrdiff_t nb, uint32_t k0,
                              uint32_t k1)
{
    enum { G = FS_PHILOX_GROUPS };
    ptrdiff_t t = 0;
    if ((uint64_t)(uint32_t)b0 + (uint64_t)nb <= 0x100000000ull) {
        uint32_t x0 = (uint32_t)(b0 >> 32) ^ k0;        /* round 1's c0, every block */
        uint64_t ps = (uint64_t)FS_PHILOX_M0 * x0;      /* round 2's M0 product, every block */
        const __m256i m0 = _mm256_set1_epi64x(FS_PHILOX_M0);
        const __m256i m1 = _mm256_set1_epi64x(FS_PHILOX_M1);
        const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
        __m256i key0[10], key1[10];
        for (int r = 0; r < 10; r++) {
            key0[r] = _mm256_set1_epi64x((uint32_t)(k0 + (uint32_t)r * FS_PHILOX_W0));
            key1[r] = _mm256_set1_epi64x((uint32_t)(k1 + (uint32_t)r * FS_PHILOX_W1));
        }
        const __m256i c2_r2 = _mm256_xor_si256(key1[1], _mm256_set1_epi64x(ps >> 32));
        const __m256i c3_r3 = _mm256_xor_si256(key1[2], _mm256_set1_epi64x((uint32_t)ps));
        for (; t + 4 * G <= nb; t += 4 * G) {
            __m256i c0[G], c1[G], c2[G], c3[G];
            for (int h = 0; h < G; h++) {
                __m256i ctr = _mm256_add_epi64(
                    _mm256_set1_epi64x((uint32_t)b0 + (uint32_t)t + 4 * h), lane);
                __m256i p0 = _mm256_mul_epu32(ctr, m0);          /* round 1 */
                __m256i c2_1 = _mm256_xor_si256(_mm256_srli_epi64(p0, 32), key1[0]);
                __m256i p1 = _mm256_mul_epu32(c2_1, m1);         /* round 2 */
                __m256i c0_2 = _mm256_xor_si256(_mm256_srli_epi64(p1, 32), key0[1]);
                __m256i c2_2 = _mm256_xor_si256(p0, c2_r2);
                p0 = _mm256_mul_epu32(c0_2, m0);                 /* round 3 */
                __m256i p1_3 = _mm256_mul_epu32(c2_2, m1);
                c0[h] = _mm256_xor_si256(_mm256_srli_epi64(p1_3, 32),
                                         _mm256_xor_si256(p1, key0[2]));
                c2[h] = _mm256_xor_si256(_mm256_srli_epi64(p0, 32), c3_r3);
                c1[h] = p1_3;
                c3[h] = p0;
            }
            for (int r = 3; r < 10; r++) {
                for (int h = 0; h < G; h++) {
                    __m256i p0 = _mm256_mul_epu32(c0[h], m0), p1 = _mm256_mul_epu32(c2[h], m1);
                    c0[h] = _mm256_xor_si256(_mm256_srli_epi64(p1, 32),
                                             _mm256_xor_si256(c1[h], key0[r]));
                    c2[h] = _mm256_xor_si256(_mm256_srli_epi64(p0, 32),
                                             _mm256_xor_si256(c3[h], key1[r]));
                    c1[h] = p1;
                    c3[h] = p0;
                }
            }
            for (int h = 0; h < G; h++)
                fs_philox_store4(tmp + 4 * (t + 4 * h), c0[h], c1[h], c2[h], c3[h]);
        }
    }
    fs_philox_fill_scalar(tmp + 4 * t, b0 + (uint64_t)t, nb - t, k0, k1);
}
#else
FS_INLINE void fs_philox_fill(uint32_t *restrict tmp, uint64_t b0, ptrdiff_t nb, uint32_t k0,
                              uint32_t k1)
{
    fs_philox_fill_scalar(tmp, b0, nb, k0, k1);
}
#endif

#ifndef FS_DROPOUT_SHARED2
#define FS_DROPOUT_SHARED2
/* The words deciding logical elements i0 .. i0 + m - 1, in order: a pointer into tmp, or into
 * w (all zero when everything drops; repeated over the trailing dimensions in feature mode). */
FS_INLINE const uint32_t *fs_dropout_words(uint32_t *restrict w, uint32_t *restrict tmp,
                                           int64_t i0, ptrdiff_t m, int64_t inner,
                                           uint32_t k0, uint32_t k1, int drop_all)
{
    if (drop_all) {
        for (ptrdiff_t k = 0; k < m; k++) w[k] = 0;
        return w;
    }
    int64_t j0 = inner == 1 ? i0 : i0 / inner;
    int64_t nj = inner == 1 ? (int64_t)m : (i0 + m - 1) / inner - j0 + 1;
    ptrdiff_t off = (ptrdiff_t)(j0 & 3);
    fs_philox_fill(tmp, (uint64_t)(j0 >> 2), (ptrdiff_t)((off + nj + 3) >> 2), k0, k1);
    if (inner == 1)
        return tmp + off;
    ptrdiff_t j = off;
    int64_t rem = i0 - j0 * inner;
    for (ptrdiff_t k = 0; k < m; k++) {
        w[k] = tmp[j];
        if (++rem == inner) {
            rem = 0;
            j++;
        }
    }
    return w;
}

FS_INLINE double fs_two_sum(double a, double b, double *err)
{
    double s = a + b;
    double bb = s - a;
    *err = (a - (s - bb)) + (b - bb);
    return s;
}

/* ---------------- the fused backward's fast path ---------------- */

/* g * a*SA*exp(x) (x <= 0) or g * a*SCALE (x > 0): selu_backward's fast path (fs_bwd_x_*_parts,
 * fs_bwd_x_*_avx2) with the table T[j] = a*SA*2^(j/4) and a*SCALE for SCALE (per p, in prm): the
 * same analysis (~0.7 ULP in float32, ~0.6 in float64), for x above -80 (float32) / -700
 * (float64); fs_bwd_x_*_hard flags the rest. */
FS_INLINE fs_table_f32 fs_table_f32_of(const double *prm)
{
    fs_table_f32 t = {
        (float)prm[FS_P_FT_HI], (float)prm[FS_P_FT_HI + 1], (float)prm[FS_P_FT_HI + 2],
        (float)prm[FS_P_FT_HI + 3], (float)prm[FS_P_FT_LO], (float)prm[FS_P_FT_LO + 1],
        (float)prm[FS_P_FT_LO + 2], (float)prm[FS_P_FT_LO + 3], (float)prm[FS_P_FAS_HI],
        (float)prm[FS_P_FAS_LO]};
    return t;
}

FS_INLINE fs_table_f64 fs_table_f64_of(const double *prm)
{
    fs_table_f64 t = {prm[FS_P_DT_HI], prm[FS_P_DT_HI + 1], prm[FS_P_DT_HI + 2],
                      prm[FS_P_DT_HI + 3], prm[FS_P_DT_LO], prm[FS_P_DT_LO + 1],
                      prm[FS_P_DT_LO + 2], prm[FS_P_DT_LO + 3], prm[FS_P_AS_HI], prm[FS_P_AS_LO]};
    return t;
}

FS_INLINE float fs_dbwd_fused_f32_fast(float g, float x, fs_table_f32 ft)
{
    float a, bl;
    fs_bwd_x_f32_parts(x, ft, &a, &bl);
    return fs_times_parts_f32(g, a, bl);
}

/* The same in float64 (`exact` as fs_times_parts_f64's; the dropout's a >= 0.88 keeps |g*a| in
 * fs_fma_small's range where fs_bwd_x_f64_hard_g is false) */
FS_INLINE double fs_dbwd_fused_f64_fast(double g, double x, fs_table_f64 dt, int exact)
{
    double a, bl;
    fs_bwd_x_f64_parts(x, dt, &a, &bl);
    return fs_times_parts_f64(g, a, bl, exact);
}

/* ---------------- float32: evaluated in double, rounded once ---------------- */

FS_INLINE float fs_do_fwd_f32(float xf, int keep, const double *prm, int fused, int chk,
                              uint64_t *bad)
{
    (void)chk, (void)bad;  /* (with an FMA unit) */
    double x = (double)xf;
    double kept;
    float zero;
    if (fused) {
        double t;
        double d = (x - prm[FS_P_L_HI]) - prm[FS_P_L_LO];
        double pp = fs_expm1_f32(fs_clamp_below(d, -128.0), &t, chk, bad);
        double e = fs_fma_exact(t, pp, t - 1.0);   /* t*pp exact (t = 2^n): one rounding */
        double neg = prm[FS_P_C_HI] * e;
        double pos = FS_FMA_CHK(x, prm[FS_P_AS_HI], prm[FS_P_AB_HI], chk);
        kept = x > 0.0 ? pos : neg;
#ifndef FS_HW_FMA
        *bad |= fs_f32_near_tie(kept);
#endif
        zero = xf == -INFINITY ? -0.0f : xf * 0.0f;  /* SELU(-inf) = -SA is finite */
    } else {
        kept = ((x + prm[FS_P_B_HI]) + prm[FS_P_B_LO]) * prm[FS_P_A_HI];
        zero = xf * 0.0f;
    }
    float dropped = (float)prm[FS_P_CST] + zero;
    return fs_canon32(keep ? (float)kept : dropped);
}

FS_INLINE float fs_do_bwd_f32(float gf, float xf, int keep, const double *prm, int mode)
{
    double g = (double)gf;
    double d;
    if (mode == 0) {
        d = prm[FS_P_A_HI];
    } else if (mode == 1) {
        double sa_exp = fs_sa_exp_f32(fs_clamp_below((double)xf, -200.0));
        double d_neg = xf == -INFINITY ? 0.0 : sa_exp * prm[FS_P_A_HI];
        d = xf > 0.0f ? prm[FS_P_AS_HI] : d_neg;
    } else {
        double z = (double)xf;
        double d_neg = (z + prm[FS_P_C_HI]) + prm[FS_P_C_LO];
        d = z >= prm[FS_P_ZMIN] ? prm[FS_P_AS_HI] : d_neg;
    }
    return fs_canon32(keep ? (float)(g * d) : gf * 0.0f);
}

/* ---------------- float64: double-double (and triple-double constants) ---------------- */

/* exact = 0: fs_fma_small and fs_prod_err, which give the general fs_fma's bits (and cost the
 * baseline far less) where fs_dropout_f64_hard is false (|x| <= 2^899, and a positive x above
 * 2^-870: Dekker's partial products stay normal); every sum that meets them is small beside the
 * product (~2^-52 of it). */
FS_INLINE int fs_dropout_f64_hard(double x)
{
    return !(fabs(x) <= 0x1p899) | (x > 0.0 && x < 0x1p-870);
}

FS_INLINE double fs_do_fwd_f64(double x, int keep, const double *prm, int fused, int exact)
{
    double kept, zero;
    if (fused) {
        /* x <= 0: C * expm1(d), d = x - ln q exactly to ~2^-150 of ln q */
        double e1, e2, d_lo, r_hi, r_lo, p_hi, p_lo, tm1_lo, b_lo;
        double s1 = fs_two_sum(x, -prm[FS_P_L_HI], &e1);
        double s2 = fs_two_sum(s1, -prm[FS_P_L_LO], &e2);
        double d = fs_two_sum(s2, (e1 + e2) - prm[FS_P_L_LO2], &d_lo);
        int low = !(d >= -128.0);              /* expm1(-128) = -1 + 2^-185; NaN too */
        d = low ? -128.0 : d;
        d_lo = low ? 0.0 : d_lo;
        double n = fs_reduce(d, &r_hi, &r_lo);
        r_lo = r_lo + d_lo;
        double t = fs_pow2(n);
        fs_expm1_small_dd(r_hi, r_lo, &p_hi, &p_lo);
        double tm1 = fs_fast2sum(-1.0, t, &tm1_lo);   /* t - 1 is exact for n <= 53 */
        double b = fs_fast2sum(tm1, t * p_hi, &b_lo);
        double e_lo = (b_lo + t * p_lo) + tm1_lo;
        /* |b| >= |expm1(d)| ~ 2^-110 |ln q| at least for double x: fs_fma_small's range */
        double neg = fs_fma_small(prm[FS_P_C_HI], b, prm[FS_P_C_HI] * e_lo + prm[FS_P_C_LO] * b);
        /* x > 0: a*SCALE*x + a*SA*p, both positive */
        double se;
        double h = prm[FS_P_AS_HI] * x;
        double hl = (exact ? fs_fma(prm[FS_P_AS_HI], x, -h) : fs_prod_err(prm[FS_P_AS_HI], x, h))
                    + (prm[FS_P_AS_LO] * x + prm[FS_P_AB_LO]);
        double s = fs_two_sum(h, prm[FS_P_AB_HI], &se);
        double pos = s + (se + hl);
        pos = h - h == 0.0 ? pos : h;          /* overflow: inf */
        kept = x > 0.0 ? pos : neg;
        kept = x == x ? kept : x;
        zero = x == -INFINITY ? -0.0 : x * 0.0;  /* SELU(-inf) = -SA is finite */
    } else {
        double e1, e2;
        double s1 = fs_two_sum(x, prm[FS_P_B_HI], &e1);
        double s = fs_two_sum(s1, prm[FS_P_B_LO], &e2);
        double e = (e1 + e2) + prm[FS_P_B_LO2];
        double c = prm[FS_P_A_HI] * e + prm[FS_P_A_LO] * s;
        double r = exact ? fs_fma(prm[FS_P_A_HI], s, c) : fs_fma_small(prm[FS_P_A_HI], s, c);
        kept = s - s == 0.0 ? r : prm[FS_P_A_HI] * s;  /* +-inf, NaN */
        zero = x * 0.0;
    }
    double dropped = prm[FS_P_CST] + zero;
    return fs_canon64(keep ? kept : dropped);
}

/* g * K * exp(x) for x <= 0: fs_bwd_x_f64 with K = a*SA (a double-double) for SA. */
FS_INLINE double fs_dropout_bwd_exp_f64(double g, double x, double k_hi, double k_lo)
{
    double xc = fs_clamp_below(x, -2000.0);
    double r_hi, r_lo, p_hi, p_lo, s_lo;
    double n = fs_reduce(xc, &r_hi, &r_lo);
    fs_expm1_small_dd(r_hi, r_lo, &p_hi, &p_lo);
    double s = fs_fast2sum(1.0, p_hi, &s_lo);
    s_lo = s_lo + p_lo;
    double d_hi = k_hi * s;
    double d_lo = fs_fma(k_hi, s, -d_hi) + fs_fma(k_hi, s_lo, k_lo * s);
    double n1 = n < -1000.0 ? -1000.0 : n;
    double n23 = n - n1;
    double n2 = n23 < -1000.0 ? -1000.0 : n23;
    double n3 = n23 - n2;
    int zero_d = x == -INFINITY;
    double dh = zero_d ? 0.0 : d_hi * fs_pow2(n1);
    double dl = zero_d ? 0.0 : d_lo * fs_pow2(n1);
    return (fs_dd_times(g, dh, dl) * fs_pow2(n2)) * fs_pow2(n3);
}

/* For the backward's mode 0, as fs_dropout_f64_hard: |g| in [2^-700, 2^700] or 0 (a >= 0.88) */
FS_INLINE int fs_dropout_bwd_f64_hard(double g)
{
    double ag = fabs(g);
    return !(ag == 0.0 || (ag >= 0x1p-700 && ag <= 0x1p700));
}

FS_INLINE double fs_do_bwd_f64(double g, double x, int keep, const double *prm, int mode,
                               int exact)
{
    double kept;
    if (mode == 0) {
        kept = fs_dd_times_k(g, prm[FS_P_A_HI], prm[FS_P_A_LO], exact);
    } else if (mode == 1) {
        double neg = fs_dropout_bwd_exp_f64(g, x, prm[FS_P_ASA_HI], prm[FS_P_ASA_LO]);
        kept = x > 0.0 ? fs_dd_times(g, prm[FS_P_AS_HI], prm[FS_P_AS_LO]) : neg;
    } else {  /* z + a*SA*q, the constant in three words (exact where z = -a*SA*q) */
        double s_lo;
        double s = fs_two_sum(x, prm[FS_P_C_HI], &s_lo);
        s_lo = s_lo + prm[FS_P_C_LO];
        s_lo = s - s == 0.0 ? s_lo : 0.0;      /* z = -inf: the TwoSum error term is NaN */
        int pos = x >= prm[FS_P_ZMIN];
        double dh = pos ? prm[FS_P_AS_HI] : s;
        double dl = pos ? prm[FS_P_AS_LO] : s_lo;
        double dl2 = pos ? 0.0 : prm[FS_P_C_LO2];
        double v = fs_fma(g, dh, fs_fma(g, dl, g * dl2));
        kept = g - g == 0.0 && g != 0.0 && v - v == 0.0 ? v : g * ((dh + dl) + dl2);
    }
    return fs_canon64(keep ? kept : g * 0.0);
}
#endif /* FS_DROPOUT_SHARED2 */

/* ---------------- the per-ISA entry points ---------------- */

#if defined(__AVX2__) && defined(__FMA__)
/* The AVX2 tiles' kept lanes, 8 words at a time, as all-ones 32-bit masks: w >= thr as signed
 * words with the sign bit flipped (thr' - 1 < w'; thr' - 1 wraps for thr = 0, which keeps every
 * lane instead), none for drop_all. */
typedef struct { __m256i flip, thrm1, all, some; } fs_keep8;

FS_INLINE fs_keep8 fs_keep8_of(uint32_t thr, int drop_all)
{
    fs_keep8 c = {_mm256_set1_epi32((int)0x80000000u),
                  _mm256_set1_epi32((int)((thr ^ 0x80000000u) - 1u)),
                  _mm256_set1_epi32(!drop_all && thr == 0 ? -1 : 0),
                  _mm256_set1_epi32(!drop_all && thr != 0 ? -1 : 0)};
    return c;
}

FS_INLINE __m256i fs_keep8_mask(fs_keep8 c, const uint32_t *w)
{
    __m256i wf = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)w), c.flip);
    return _mm256_or_si256(c.all, _mm256_and_si256(c.some, _mm256_cmpgt_epi32(wf, c.thrm1)));
}
#endif

#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
/* The fused float32 forward with AVX2 intrinsics: fs_do_fwd_f32's operations (fused, with an
 * FMA unit, so the same bits) on 4 double lanes, FS_FWD_CHAINS vectors of them step by step.
 * gcc's vectorization of the C loop runs one 8-element step's ~20 dependent operations in
 * program order, which Zen 3's scheduler cannot overlap enough: 2.3-2.7 -> 1.9-2.3 ns per
 * element in cache, Philox included (C harness; 4 to 8 chains alike, 2 no faster).  AVX-512
 * builds keep the C loop (its 8-lane doubles; unmeasured here). */
#define FS_FWD_TILE_INTRINSICS 1
#define FS_FWD_CHAINS 8
FS_INLINE ptrdiff_t fs_tile_fwd_fused_f32_avx2(const float *xs, float *os, const uint32_t *wk,
                                               ptrdiff_t m, uint32_t thr, int drop_all,
                                               const double *prm)
{
    enum { H = FS_FWD_CHAINS };
    const __m256d l_hi = _mm256_set1_pd(prm[FS_P_L_HI]), l_lo = _mm256_set1_pd(prm[FS_P_L_LO]);
    const __m256d c_hi = _mm256_set1_pd(prm[FS_P_C_HI]), as_hi = _mm256_set1_pd(prm[FS_P_AS_HI]);
    const __m256d ab_hi = _mm256_set1_pd(prm[FS_P_AB_HI]), lo128 = _mm256_set1_pd(-128.0);
    const __m256d magic = _mm256_set1_pd(MAGIC_BIAS), zero = _mm256_setzero_pd();
    const __m256 cst = _mm256_set1_ps((float)prm[FS_P_CST]);
    const fs_keep8 kc = fs_keep8_of(thr, drop_all);
    ptrdiff_t k = 0;
    for (; k + 4 * H <= m; k += 4 * H) {
        __m256d x[H], d[H], z[H], t[H], r[H], q[H];
        FS_EACH(H) x[h] = _mm256_cvtps_pd(_mm_loadu_ps(xs + k + 4 * h));
        FS_EACH(H) d[h] = _mm256_sub_pd(_mm256_sub_pd(x[h], l_hi), l_lo);
        FS_EACH(H) d[h] = _mm256_blendv_pd(d[h], lo128, _mm256_cmp_pd(d[h], lo128, _CMP_LT_OQ));
        FS_EACH(H) z[h] = _mm256_fmadd_pd(d[h], _mm256_set1_pd(LOG2E), magic);
        FS_EACH(H) t[h] = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(z[h]), 52));
        FS_EACH(H) r[h] = _mm256_fmadd_pd(_mm256_sub_pd(z[h], magic), _mm256_set1_pd(-LN2), d[h]);
        FS_EACH(H) q[h] = _mm256_fmadd_pd(_mm256_set1_pd(Q2_C5), r[h], _mm256_set1_pd(Q2_C4));
        FS_EACH(H) q[h] = _mm256_fmadd_pd(q[h], r[h], _mm256_set1_pd(Q2_C3));
        FS_EACH(H) q[h] = _mm256_fmadd_pd(q[h], r[h], _mm256_set1_pd(Q2_C2));
        FS_EACH(H) q[h] = _mm256_fmadd_pd(q[h], r[h], _mm256_set1_pd(Q2_C1));
        FS_EACH(H) q[h] = _mm256_fmadd_pd(q[h], r[h], _mm256_set1_pd(Q2_C0));
        FS_EACH(H) q[h] = _mm256_fmadd_pd(_mm256_mul_pd(r[h], r[h]), q[h], r[h]);
        FS_EACH(H) q[h] = _mm256_fmadd_pd(t[h], q[h], _mm256_sub_pd(t[h], _mm256_set1_pd(1.0)));
        FS_EACH(H) q[h] = _mm256_blendv_pd(_mm256_mul_pd(c_hi, q[h]),
                                           _mm256_fmadd_pd(x[h], as_hi, ab_hi),
                                           _mm256_cmp_pd(x[h], zero, _CMP_GT_OQ));
        for (int h = 0; h < H; h += 2) {
            __m256 xf = _mm256_loadu_ps(xs + k + 4 * h);
            __m256 kept = _mm256_set_m128(_mm256_cvtpd_ps(q[h + 1]), _mm256_cvtpd_ps(q[h]));
            __m256 zf = _mm256_blendv_ps(_mm256_mul_ps(xf, _mm256_setzero_ps()),
                                         _mm256_set1_ps(-0.0f),
                                         _mm256_cmp_ps(xf, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ));
            __m256i keep = fs_keep8_mask(kc, wk + k + 4 * h);
            __m256 v = _mm256_blendv_ps(_mm256_add_ps(cst, zf), kept, _mm256_castsi256_ps(keep));
            v = _mm256_blendv_ps(v, _mm256_set1_ps(NAN), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            _mm256_storeu_ps(os + k + 4 * h, v);
        }
    }
    return k;
}
#endif

/* The tile loops.  `fused`/`mode` are loop-invariant: each value loop is instantiated for one
 * of them (the switch outside the loop) so that it vectorizes without a per-element branch. */
#define FS_DROPOUT_BODY(...)                                                                   \
    /* a local copy: `out` may not alias it, so its loads leave the loops */                   \
    double prm[FS_N_PARAMS];                                                                   \
    memcpy(prm, params, sizeof prm);                                                           \
    uint32_t w[FS_DROPOUT_TILE];                                                               \
    uint32_t tmp[FS_DROPOUT_TILE + 8];                                                         \
    int drop_all = prm[FS_P_THRESH] >= 4294967296.0;                                           \
    uint32_t thr = drop_all ? 0u : (uint32_t)prm[FS_P_THRESH];                                 \
    for (ptrdiff_t t0 = 0; t0 < n; t0 += FS_DROPOUT_TILE) {                                    \
        ptrdiff_t m = n - t0 < FS_DROPOUT_TILE ? n - t0 : FS_DROPOUT_TILE;                     \
        const uint32_t *wk = fs_dropout_words(w, tmp, start + (int64_t)t0, m, inner, k0, k1,    \
                                              drop_all);                                       \
        __VA_ARGS__                                                                            \
    }

void FS_NAME(fs_dropout_f32)(const float *x, float *out, ptrdiff_t n, const double *params,
                             uint32_t k0, uint32_t k1, int64_t start, int64_t inner, int fused)
{
    FS_DROPOUT_BODY(
        const float *xs = x + t0;
        float *os = out + t0;
        uint64_t bad = 0;
        if (fused) {
            /* without an FMA unit: plain operations, then the exact fmas for a tile where
             * their difference could show (fs_f32_near_tie: ~2^-24 of the elements), from x:
             * in place, the first results wait in a scratch tile */
            float *rs = os;
#ifndef FS_HW_FMA
            float scratch[FS_DROPOUT_TILE];
            rs = os == xs ? scratch : os;
#endif
            ptrdiff_t k0 = 0;
#ifdef FS_FWD_TILE_INTRINSICS
            k0 = fs_tile_fwd_fused_f32_avx2(xs, rs, wk, m, thr, drop_all, prm);
#endif
            FS_IVDEP
            for (ptrdiff_t k = k0; k < m; k++)
                rs[k] = fs_do_fwd_f32(xs[k], (wk[k] >= thr) & !drop_all, prm, 1, 1, &bad);
#ifndef FS_HW_FMA
            if (bad >> 63)
                for (ptrdiff_t k = 0; k < m; k++)
                    os[k] = fs_do_fwd_f32(xs[k], (wk[k] >= thr) & !drop_all, prm, 1, 0, &bad);
            else if (rs != os)
                memcpy(os, rs, (size_t)m * sizeof *os);
#endif
        } else {
            FS_IVDEP
            for (ptrdiff_t k = 0; k < m; k++)
                os[k] = fs_do_fwd_f32(xs[k], (wk[k] >= thr) & !drop_all, prm, 0, 1, &bad);
        })
}

/* Without an FMA unit: whether a tile needs the general (emulated) fs_fma anywhere */
FS_INLINE int fs_dropout_f64_tile_hard(const double *v, ptrdiff_t m, int bwd)
{
#ifdef FS_HW_FMA
    (void)v, (void)m, (void)bwd;
    return 0;
#else
    int hard = 0;
    for (ptrdiff_t k = 0; k < m; k++)
        hard |= bwd ? fs_dropout_bwd_f64_hard(v[k]) : fs_dropout_f64_hard(v[k]);
    return hard;
#endif
}

/* one value loop per (fused, exact), constants after inlining, so that each vectorizes */
FS_INLINE void fs_dropout_f64_tile(const double *xs, double *os, const uint32_t *wk, ptrdiff_t m,
                                   uint32_t thr, int drop_all, const double *prm, int fused,
                                   int exact)
{
    FS_IVDEP
    for (ptrdiff_t k = 0; k < m; k++)
        os[k] = fs_do_fwd_f64(xs[k], (wk[k] >= thr) & !drop_all, prm, fused, exact);
}

void FS_NAME(fs_dropout_f64)(const double *x, double *out, ptrdiff_t n, const double *params,
                             uint32_t k0, uint32_t k1, int64_t start, int64_t inner, int fused)
{
    FS_DROPOUT_BODY(
        const double *xs = x + t0;
        double *os = out + t0;
        int exact = fs_dropout_f64_tile_hard(xs, m, 0);
        if (fused) {
            if (exact)
                fs_dropout_f64_tile(xs, os, wk, m, thr, drop_all, prm, 1, 1);
            else
                fs_dropout_f64_tile(xs, os, wk, m, thr, drop_all, prm, 1, 0);
        } else {
            if (exact)
                fs_dropout_f64_tile(xs, os, wk, m, thr, drop_all, prm, 0, 1);
            else
                fs_dropout_f64_tile(xs, os, wk, m, thr, drop_all, prm, 0, 0);
        })
}

#if defined(__AVX2__) && defined(__FMA__)
/* The fast tiles of the fused backward with AVX2 intrinsics, as fs_backward_x_f32/f64
 * (fs_bwd_x_*_avx2, the tables in registers): the same operations as fs_dbwd_fused_*_fast, so the
 * same bits.  Kept lanes: fs_keep8_mask. */
#define FS_DBWD_TILE_INTRINSICS 1
FS_INLINE ptrdiff_t fs_tile_bwd_fused_f32_avx2(const float *gs, const float *xs, float *os,
                                               const uint32_t *wk, ptrdiff_t m, uint32_t thr,
                                               int drop_all, fs_table_f32 ft)
{
    const __m256 thv = _mm256_setr_ps(ft.h0, ft.h1, ft.h2, ft.h3, ft.h0, ft.h1, ft.h2, ft.h3);
    const __m256 tlv = _mm256_setr_ps(ft.l0, ft.l1, ft.l2, ft.l3, ft.l0, ft.l1, ft.l2, ft.l3);
    const fs_keep8 kc = fs_keep8_of(thr, drop_all);
    enum { H = FS_CHAINS };
    ptrdiff_t k = 0;
    for (; k + 8 * H <= m; k += 8 * H) {
        __m256 xv[H], gv[H], v[H];
        FS_EACH(H) xv[h] = _mm256_loadu_ps(xs + k + 8 * h);
        FS_EACH(H) gv[h] = _mm256_loadu_ps(gs + k + 8 * h);
        fs_bwd_x_f32_avx2(H, gv, xv, v, thv, tlv, ft.as_hi, ft.as_lo);
        for (int h = 0; h < H; h++) {
            __m256 kept = _mm256_castsi256_ps(fs_keep8_mask(kc, wk + k + 8 * h));
            __m256 r = _mm256_blendv_ps(_mm256_mul_ps(gv[h], _mm256_setzero_ps()), v[h], kept);
            r = _mm256_blendv_ps(r, _mm256_set1_ps(NAN), _mm256_cmp_ps(r, r, _CMP_UNORD_Q));
            _mm256_storeu_ps(os + k + 8 * h, r);
        }
    }
    return k;
}

FS_INLINE ptrdiff_t fs_tile_bwd_fused_f64_avx2(const double *gs, const double *xs, double *os,
                                               const uint32_t *wk, ptrdiff_t m, uint32_t thr,
                                               int drop_all, fs_table_f64 dt)
{
    const __m256 thv = _mm256_castpd_ps(_mm256_setr_pd(dt.h0, dt.h1, dt.h2, dt.h3));
    const __m256 tlv = _mm256_castpd_ps(_mm256_setr_pd(dt.l0, dt.l1, dt.l2, dt.l3));
    const fs_keep8 kc = fs_keep8_of(thr, drop_all);
    enum { H = FS_CHAINS };  /* even: one mask of 8 words serves two vectors */
    ptrdiff_t k = 0;
    for (; k + 4 * H <= m; k += 4 * H) {
        __m256d xv[H], gv[H], v[H];
        FS_EACH(H) xv[h] = _mm256_loadu_pd(xs + k + 4 * h);
        FS_EACH(H) gv[h] = _mm256_loadu_pd(gs + k + 4 * h);
        fs_bwd_x_f64_avx2(H, gv, xv, v, thv, tlv, dt.as_hi, dt.as_lo);
        __m256d kept[H];
        for (int h = 0; h < H; h += 2) {
            __m256i m8 = fs_keep8_mask(kc, wk + k + 4 * h);
            kept[h] = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(m8)));
            kept[h + 1] = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(
                _mm256_extracti128_si256(m8, 1)));
        }
        for (int h = 0; h < H; h++) {
            __m256d r = _mm256_blendv_pd(_mm256_mul_pd(gv[h], _mm256_setzero_pd()), v[h],
                                         kept[h]);
            r = _mm256_blendv_pd(r, _mm256_set1_pd(NAN), _mm256_cmp_pd(r, r, _CMP_UNORD_Q));
            _mm256_storeu_pd(os + k + 4 * h, r);
        }
    }
    return k;
}
#endif

FS_INLINE void fs_tile_bwd_fused_f32(const float *gs, const float *xs, float *os,
                                     const uint32_t *wk, ptrdiff_t m, uint32_t thr, int drop_all,
                                     const double *prm, fs_table_f32 ft)
{
    /* the fast path where no x of the tile is below -80 (or NaN) */
    int hard = 0;
    for (ptrdiff_t k = 0; k < m; k++) hard |= fs_bwd_x_f32_hard(xs[k]);
    if (!hard) {
        ptrdiff_t k0 = 0;
#ifdef FS_DBWD_TILE_INTRINSICS
        k0 = fs_tile_bwd_fused_f32_avx2(gs, xs, os, wk, m, thr, drop_all, ft);
#endif
        FS_IVDEP
        for (ptrdiff_t k = k0; k < m; k++) {
            float gv = gs[k];
            float r = fs_dbwd_fused_f32_fast(gv, xs[k], ft);
            os[k] = fs_canon32(((wk[k] >= thr) & !drop_all) ? r : gv * 0.0f);
        }
        return;
    }
    for (ptrdiff_t k = 0; k < m; k++) {
        int keep = (wk[k] >= thr) & !drop_all;
        float gv = gs[k], xv = xs[k];
        os[k] = keep && !fs_bwd_x_f32_hard(xv) ? fs_canon32(fs_dbwd_fused_f32_fast(gv, xv, ft))
                                               : fs_do_bwd_f32(gv, xv, keep, prm, 1);
    }
}

void FS_NAME(fs_dropout_bwd_f32)(const float *g, const float *x, float *out, ptrdiff_t n,
                                 const double *params, uint32_t k0, uint32_t k1, int64_t start,
                                 int64_t inner, int mode)
{
    fs_table_f32 ft = fs_table_f32_of(params);
    FS_DROPOUT_BODY(
        const float *gs = g + t0;
        const float *xs = x + t0;
        float *os = out + t0;
        if (mode == 0) {
            FS_IVDEP
            for (ptrdiff_t k = 0; k < m; k++)
                os[k] = fs_do_bwd_f32(gs[k], gs[k], (wk[k] >= thr) & !drop_all, prm, 0);
        } else if (mode == 1) {
            fs_tile_bwd_fused_f32(gs, xs, os, wk, m, thr, drop_all, prm, ft);
        } else {
            FS_IVDEP
            for (ptrdiff_t k = 0; k < m; k++)
                os[k] = fs_do_bwd_f32(gs[k], xs[k], (wk[k] >= thr) & !drop_all, prm, 2);
        })
}

FS_INLINE void fs_tile_bwd_fused_f64(const double *gs, const double *xs, double *os,
                                     const uint32_t *wk, ptrdiff_t m, uint32_t thr, int drop_all,
                                     const double *prm, fs_table_f64 dt)
{
    /* the fast path where no x of the tile is at or below -700 (or NaN), and, without an FMA
     * unit, no g outside fs_fma_small's range (fs_bwd_x_f64_hard_g) */
    int hard = 0;
    for (ptrdiff_t k = 0; k < m; k++) hard |= fs_bwd_x_f64_hard_g(gs[k], xs[k]);
    if (!hard) {
        ptrdiff_t k0 = 0;
#ifdef FS_DBWD_TILE_INTRINSICS
        k0 = fs_tile_bwd_fused_f64_avx2(gs, xs, os, wk, m, thr, drop_all, dt);
#endif
        FS_IVDEP
        for (ptrdiff_t k = k0; k < m; k++) {
            double gv = gs[k];
            double r = fs_dbwd_fused_f64_fast(gv, xs[k], dt, 0);
            os[k] = fs_canon64(((wk[k] >= thr) & !drop_all) ? r : gv * 0.0);
        }
        return;
    }
    for (ptrdiff_t k = 0; k < m; k++) {
        int keep = (wk[k] >= thr) & !drop_all;
        double gv = gs[k], xv = xs[k];
        os[k] = keep && !fs_bwd_x_f64_hard(xv) ? fs_canon64(fs_dbwd_fused_f64_fast(gv, xv, dt, 1))
                                               : fs_do_bwd_f64(gv, xv, keep, prm, 1, 1);
    }
}

void FS_NAME(fs_dropout_bwd_f64)(const double *g, const double *x, double *out, ptrdiff_t n,
                                 const double *params, uint32_t k0, uint32_t k1, int64_t start,
                                 int64_t inner, int mode)
{
    fs_table_f64 dt = fs_table_f64_of(params);
    FS_DROPOUT_BODY(
        const double *gs = g + t0;
        const double *xs = x + t0;
        double *os = out + t0;
        if (mode == 0 && !fs_dropout_f64_tile_hard(gs, m, 1)) {
            FS_IVDEP
            for (ptrdiff_t k = 0; k < m; k++)
                os[k] = fs_do_bwd_f64(gs[k], gs[k], (wk[k] >= thr) & !drop_all, prm, 0, 0);
        } else if (mode == 0) {
            for (ptrdiff_t k = 0; k < m; k++)
                os[k] = fs_do_bwd_f64(gs[k], gs[k], (wk[k] >= thr) & !drop_all, prm, 0, 1);
        } else if (mode == 1) {
            fs_tile_bwd_fused_f64(gs, xs, os, wk, m, thr, drop_all, prm, dt);
        } else {
            FS_IVDEP
            for (ptrdiff_t k = 0; k < m; k++)
                os[k] = fs_do_bwd_f64(gs[k], xs[k], (wk[k] >= thr) & !drop_all, prm, 2, 1);
        })
}
#undef FS_DROPOUT_BODY

/* ---------------- float16 / bfloat16 (bf): the float32 kernels on widened tiles ------------- */

/* A tile widened exactly to float32, the float32 kernel run on it at its logical indices (so
 * the same mask), each result rounded once more to the format, to nearest, ties to even: the
 * numba and numpy backends do the same (_half.dropout_through_float32), and so did this backend
 * through NumPy's and ml_dtypes' casts, so the bits are those.  The SPEC's bounds hold: a kept
 * float32 result within ~0.5 float32 ULP of the exact value, rounded again, is within
 * 0.5 + 2^-13 ULP of the format; the dropped constant comes in prm already rounded to the
 * format (_dropout.params), so it stays exact; NaN results are float32's default NaN, which
 * narrows to the format's (0x7E00 / 0x7FC0). */
FS_INLINE void fs_widen16(const uint16_t *h, float *f, ptrdiff_t m, int bf)
{
    ptrdiff_t k = 0;
#if defined(__AVX2__) && defined(__F16C__)
    for (; k + 8 <= m; k += 8)
        _mm256_storeu_ps(f + k, bf ? fs_bf16x8(h + k) : fs_f16x8(h + k));
#endif
    for (; k < m; k++)
        f[k] = (float)(bf ? fs_bf16_to_double(h[k]) : fs_f16_to_double(h[k]));
}

FS_INLINE void fs_narrow16(const float *f, uint16_t *h, ptrdiff_t m, int bf)
{
    ptrdiff_t k = 0;
#if defined(__AVX2__) && defined(__F16C__)
    for (; k + 8 <= m; k += 8) {
        __m256 v = _mm256_loadu_ps(f + k);
        if (!bf) {
            _mm_storeu_si128((__m128i *)(h + k), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
            continue;
        }
        /* bits + 0x7FFF + (bit 16): rounded at bit 16, ties to even; NaN: the default NaN */
        __m256i b = _mm256_castps_si256(v);
        __m256i odd = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(
                        b, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7FFF))), 16);
        r = _mm256_blendv_epi8(r, _mm256_set1_epi32(FS_BF16_QNAN),
                               _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
        _mm_storeu_si128((__m128i *)(h + k), _mm_packus_epi32(_mm256_castsi256_si128(r),
                                                              _mm256_extracti128_si256(r, 1)));
    }
#endif
    for (; k < m; k++)
        h[k] = bf ? fs_to_bf16((double)f[k]) : fs_to_f16((double)f[k]);
}

void FS_NAME(fs_dropout_h16)(const uint16_t *x, uint16_t *out, ptrdiff_t n, const double *params,
                             uint32_t k0, uint32_t k1, int64_t start, int64_t inner, int fused,
                             int bf)
{
    float xs[FS_DROPOUT_TILE], os[FS_DROPOUT_TILE];
    for (ptrdiff_t t0 = 0; t0 < n; t0 += FS_DROPOUT_TILE) {
        ptrdiff_t m = n - t0 < FS_DROPOUT_TILE ? n - t0 : FS_DROPOUT_TILE;
        fs_widen16(x + t0, xs, m, bf);
        FS_NAME(fs_dropout_f32)(xs, os, m, params, k0, k1, start + t0, inner, fused);
        fs_narrow16(os, out + t0, m, bf);
    }
}

void FS_NAME(fs_dropout_bwd_h16)(const uint16_t *g, const uint16_t *x, uint16_t *out,
                                 ptrdiff_t n, const double *params, uint32_t k0, uint32_t k1,
                                 int64_t start, int64_t inner, int mode, int bf)
{
    float gs[FS_DROPOUT_TILE], xs[FS_DROPOUT_TILE], os[FS_DROPOUT_TILE];
    for (ptrdiff_t t0 = 0; t0 < n; t0 += FS_DROPOUT_TILE) {
        ptrdiff_t m = n - t0 < FS_DROPOUT_TILE ? n - t0 : FS_DROPOUT_TILE;
        fs_widen16(g + t0, gs, m, bf);
        if (mode != 0)
            fs_widen16(x + t0, xs, m, bf);
        FS_NAME(fs_dropout_bwd_f32)(gs, mode != 0 ? xs : gs, os, m, params, k0, k1, start + t0,
                                    inner, mode);
        fs_narrow16(os, out + t0, m, bf);
    }
}
