/* The kernel header's software fma (fs_fma_soft / fs_fmaf_soft, what the baseline x86-64 build
 * uses) against the C library's fma / fmaf (correctly rounded in glibc, whether the FMA
 * instruction or its software routine), bit for bit, on random and constructed hard operands.
 * Built and run by tests/test_fma_emulation.py; prints the mismatch count and exits 1 on any. */
#include <stdio.h>
#include <stdlib.h>
#define FS_ISA fmatest
#include "_selu_kernels.h"

static uint64_t st = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    st ^= st << 13; st ^= st >> 7; st ^= st << 17;
    return st;
}
static double bits64(uint64_t b) { double d; memcpy(&d, &b, 8); return d; }
static float bits32(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }
static uint64_t of64(double d) { uint64_t b; memcpy(&b, &d, 8); return b; }
static uint32_t of32(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }

static long bad32, bad64, badsm, n32, n64, nsm;

static void check32(float a, float b, float c)
{
    /* volatile: keep the compiler from folding or contracting the reference */
    volatile float va = a, vb = b, vc = c;
    float want = fmaf(va, vb, vc), got = fs_fmaf_soft(a, b, c);
    n32++;
    if (want != want ? got == got : of32(want) != of32(got)) {
        if (bad32++ < 10)
            printf("fmaf(%a, %a, %a): want %a got %a\n", a, b, c, want, got);
    }
}

static void check64(double a, double b, double c)
{
    volatile double va = a, vb = b, vc = c;
    double want = fma(va, vb, vc), got = fs_fma_soft(a, b, c);
    n64++;
    if (want != want ? got == got : of64(want) != of64(got)) {
        if (bad64++ < 40)
            printf("fma(%a, %a, %a): want %a got %a\n", a, b, c, want, got);
    }
}

/* fs_fma_small_soft: the fma for a small addend, |c| <= |a*b|/10, inside its range */
static void check_small(double a, double b, double c)
{
    volatile double va = a, vb = b, vc = c;
    double want = fma(va, vb, vc), got = fs_fma_small_soft(a, b, c);
    nsm++;
    if (of64(want) != of64(got)) {
        if (badsm++ < 20)
            printf("fma_small(%a, %a, %a): want %a got %a\n", a, b, c, want, got);
    }
}

/* a double with a random significand and an exponent in [lo, hi] */
static double rnd64(int lo, int hi)
{
    double m = bits64(0x3FF0000000000000ull | (rnd() >> 12));
    m = ldexp(m, lo + (int)(rnd() % (uint64_t)(hi - lo + 1)));
    return rnd() & 1 ? -m : m;
}

/* a double whose significand has only `bits` random bits (so products can be exact ties) */
static double short64(int bits, int lo, int hi)
{
    uint64_t m = (rnd() >> (64 - bits)) | (1ull << (bits - 1));
    double d = ldexp((double)m, lo + (int)(rnd() % (uint64_t)(hi - lo + 1)) - bits);
    return rnd() & 1 ? -d : d;
}

int main(void)
{
    static const float sp32[] = {0.0f, -0.0f, 1.0f, -1.0f, 1e-45f, -1e-45f, 1.1754944e-38f,
                                 3.4028235e38f, -3.4028235e38f, INFINITY, -INFINITY, NAN,
                                 0x1.000002p0f, 0x1.fffffep-1f, 0x1p-149f, 0x1p127f};
    static const double sp64[] = {0.0, -0.0, 1.0, -1.0, 0x1p-1022, 0x1p-1074, DBL_MAX, -DBL_MAX,
                                  INFINITY, -INFINITY, NAN, 0x1.0000000000001p0,
                                  0x1.fffffffffffffp-1, 0x1p901, 0x1p-600, 1e300};
    size_t n = sizeof sp32 / sizeof sp32[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            for (size_t k = 0; k < n; k++) {
                check32(sp32[i], sp32[j], sp32[k]);
                check64(sp64[i], sp64[j], sp64[k]);
            }
    for (long i = 0; i < 2000000; i++) {
        /* float: any bit patterns; products that cancel against c; exact ties */
        float a = bits32((uint32_t)rnd()), b = bits32((uint32_t)rnd()), c = bits32((uint32_t)rnd());
        check32(a, b, c);
        a = (float)rnd64(-20, 20); b = (float)rnd64(-20, 20);
        float p = a * b;
        check32(a, b, -p);
        check32(a, b, -p + (float)rnd64(-60, -20));
        a = (float)short64(13, -5, 5); b = (float)short64(13, -5, 5);
        check32(a, b, (float)short64(3, -40, 10));
        check32(a, b, rnd() & 1 ? 0x1p-149f : -0x1p-149f);
        /* double, inside the documented domain: random, cancelling, exact ties with a sticky c,
         * a huge operand (x*SCALE-like), tiny c */
        double x = rnd64(-400, 400), y = rnd64(-400, 400);
        check64(x, y, rnd64(-900, 900));
        double q = x * y;
        check64(x, y, -q);
        check64(x, y, -q + rnd64(-500, -300) * fabs(q));
        x = short64(27, -10, 10); y = short64(27, -10, 10);
        check64(x, y, short64(3, -80, 20));
        check64(x, y, (rnd() & 1 ? 1 : -1) * fabs(x * y) * 0x1p-70);
        double big = rnd64(900, 1023);
        check64(0x1.0cfabd6a91132p+0, big, 0x1.6fc7d272f2695p-55 * big);
        check64(big, rnd64(-1, 0), rnd64(-10, 1000));
        /* tiny products and subnormal results (tiny gradients times derivatives) */
        double tg = rnd64(-1074, -900), d = rnd64(-2, 1);
        check64(tg, d, tg * (d * 0x1p-54));
        check64(tg, rnd64(-720, -600), tg * (d * 0x1p-54));
        check64(tg, rnd64(-720, -600), rnd() & 1 ? 0.0 : -0.0);
        x = rnd64(-560, -450); y = rnd64(-560, -450);
        check64(x, y, rnd64(-1074, -1000));
        q = x * y;
        check64(x, y, -q);
        check64(x, y, -q + (rnd() & 1 ? 0x1p-1074 : -0x1p-1074));
        x = rnd64(-460, -440); y = rnd64(-460, -440);   /* |c| > 2^-900, subnormal result */
        q = x * y;
        check64(x, y, -q + (double)(int64_t)(rnd() % 2001 - 1000) * 0x1p-1074);
        x = short64(20, -540, -500); y = short64(20, -540, -500);
        check64(x, y, (rnd() & 1 ? 1 : -1) * 0x1p-1074);
        /* the small-addend fma: constants and random factors, addends up to |a*b|/10 of either
         * sign (random, a few ulps, exact half-ulps that make ties, near powers of two) */
        x = rnd64(-800, 800);
        y = rnd() & 1 ? 0x1.0cfabd6a91132p+0 : rnd() & 1 ? 0x1.c212cc640f031p+0 : rnd64(-40, 40);
        q = x * y;
        double u = ldexp(1.0, ilogb(q) - 52);               /* ulp(q) */
        double sgn = rnd() & 1 ? 1.0 : -1.0;
        check_small(y, x, sgn * fabs(q) * 0x1.99p-4 * ((rnd() >> 11) * 0x1p-53));
        check_small(y, x, sgn * fabs(q) * rnd64(-60, -4) * 0.5);
        check_small(y, x, sgn * u * (double)(rnd() % 64) * 0.25);
        check_small(y, x, sgn * u * (0.5 + (double)(rnd() % 8)) + rnd64(-60, -40) * u);
        x = short64(26, -300, 300); y = short64(26, -3, 3);   /* exact products: ties */
        q = x * y;
        u = ldexp(1.0, ilogb(q) - 52);
        check_small(y, x, sgn * u * (0.5 + (double)(rnd() % 4)));
        check_small(y, x, sgn * u * 0.5 * (1.0 + 0x1p-40 * (double)(int)(rnd() % 3 - 1)));
        x = ldexp(1.0 + (double)(rnd() % 4) * 0x1p-52, (int)(rnd() % 200) - 100);   /* ~2^k */
        check_small(1.0, x, sgn * x * rnd64(-56, -4) * 0.5);
        check_small(-1.0, x, sgn * x * rnd64(-56, -4) * 0.5);
    }
    printf("fmaf: %ld of %ld differ; fma: %ld of %ld differ; fma_small: %ld of %ld differ\n",
           bad32, n32, bad64, n64, badsm, nsm);
    return bad32 || bad64 || badsm;
}
