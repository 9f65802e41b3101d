#include "_dispatch.h"

/* The variants this build compiled, best first: setup.py writes FS_FOR_EACH_VARIANT(X), one
 * X(name, features) per variant, from fastselu/_targets.py (the one list) for the architecture
 * being compiled. */
#include "_fs_variants.h"

#define FS_DECLARE(isa)                                                                        \
    void fs_forward_f32_##isa(const float *, float *, ptrdiff_t);                             \
    void fs_forward_f64_##isa(const double *, double *, ptrdiff_t);                           \
    void fs_backward_x_f32_##isa(const float *, const float *, float *, ptrdiff_t);           \
    void fs_backward_x_f64_##isa(const double *, const double *, double *, ptrdiff_t);        \
    void fs_backward_y_f32_##isa(const float *, const float *, float *, ptrdiff_t);           \
    void fs_backward_y_f64_##isa(const double *, const double *, double *, ptrdiff_t);        \
    void fs_half_init_##isa(void);                                                             \
    void fs_forward_f16_##isa(const uint16_t *, uint16_t *, ptrdiff_t);                       \
    void fs_forward_bf16_##isa(const uint16_t *, uint16_t *, ptrdiff_t);                      \
    void fs_backward_x_f16_##isa(const uint16_t *, const uint16_t *, uint16_t *, ptrdiff_t);  \
    void fs_backward_x_bf16_##isa(const uint16_t *, const uint16_t *, uint16_t *, ptrdiff_t); \
    void fs_backward_y_f16_##isa(const uint16_t *, const uint16_t *, uint16_t *, ptrdiff_t);  \
    void fs_backward_y_bf16_##isa(const uint16_t *, const uint16_t *, uint16_t *, ptrdiff_t); \
    void fs_dropout_f32_##isa(const float *, float *, ptrdiff_t, const double *, uint32_t,     \
                              uint32_t, int64_t, int64_t, int);                                \
    void fs_dropout_f64_##isa(const double *, double *, ptrdiff_t, const double *, uint32_t,   \
                              uint32_t, int64_t, int64_t, int);                                \
    void fs_dropout_bwd_f32_##isa(const float *, const float *, float *, ptrdiff_t,            \
                                  const double *, uint32_t, uint32_t, int64_t, int64_t, int);  \
    void fs_dropout_bwd_f64_##isa(const double *, const double *, double *, ptrdiff_t,         \
                                  const double *, uint32_t, uint32_t, int64_t, int64_t, int);  \
    void fs_dropout_h16_##isa(const uint16_t *, uint16_t *, ptrdiff_t, const double *,        \
                              uint32_t, uint32_t, int64_t, int64_t, int, int);                 \
    void fs_dropout_bwd_h16_##isa(const uint16_t *, const uint16_t *, uint16_t *, ptrdiff_t,   \
                                  const double *, uint32_t, uint32_t, int64_t, int64_t, int,   \
                                  int);                                                        \
    static const fs_kernels fs_table_##isa = {                                                 \
        #isa, fs_forward_f32_##isa, fs_forward_f64_##isa, fs_backward_x_f32_##isa,             \
        fs_backward_x_f64_##isa, fs_backward_y_f32_##isa, fs_backward_y_f64_##isa,             \
        fs_half_init_##isa, fs_forward_f16_##isa, fs_forward_bf16_##isa,                       \
        fs_backward_x_f16_##isa, fs_backward_x_bf16_##isa, fs_backward_y_f16_##isa,            \
        fs_backward_y_bf16_##isa, fs_dropout_f32_##isa, fs_dropout_f64_##isa,                  \
        fs_dropout_bwd_f32_##isa, fs_dropout_bwd_f64_##isa, fs_dropout_h16_##isa,              \
        fs_dropout_bwd_h16_##isa};

#define FS_DECLARE_X(isa, features) FS_DECLARE(isa)
#define FS_TABLE_X(isa, features) &fs_table_##isa,
#define FS_FEATURES_X(isa, features) (features),

FS_FOR_EACH_VARIANT(FS_DECLARE_X)

static const fs_kernels *const fs_tables[] = {FS_FOR_EACH_VARIANT(FS_TABLE_X)};
static const unsigned fs_needs[] = {FS_FOR_EACH_VARIANT(FS_FEATURES_X)};

int fs_num_variants(void) { return (int)(sizeof fs_tables / sizeof fs_tables[0]); }

const fs_kernels *fs_variant(int i) { return fs_tables[i]; }

/* ---- what this CPU and OS support, as FS_F_* bits (_dispatch.h) ----
 * x86-64: CPUID plus XGETBV (the OS must save the wider registers), the same code for every
 * compiler (MSVC's __cpuidex/_xgetbv, gcc/clang's cpuid.h), so the path that MSVC builds is the
 * one tested with gcc and clang. aarch64: NEON always; SVE from the Linux auxiliary vector. */
#if defined(__x86_64__) || defined(_M_X64) || defined(_M_AMD64)
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static void fs_cpuid(int leaf, int sub, unsigned r[4])
{
    int v[4];
    __cpuidex(v, leaf, sub);
    r[0] = (unsigned)v[0]; r[1] = (unsigned)v[1]; r[2] = (unsigned)v[2]; r[3] = (unsigned)v[3];
}
static unsigned long long fs_xgetbv0(void) { return _xgetbv(0); }
#else
#include <cpuid.h>
static void fs_cpuid(int leaf, int sub, unsigned r[4])
{
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}
/* xgetbv as bytes: no -mxsave needed (this file is compiled for the baseline ISA) */
static unsigned long long fs_xgetbv0(void)
{
    unsigned lo, hi;
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

static unsigned fs_cpu_features(void)
{
    unsigned r[4], f = 0, max_leaf;
    fs_cpuid(0, 0, r);
    max_leaf = r[0];
    if (max_leaf < 1) return 0;
    fs_cpuid(1, 0, r);
    int fma = (r[2] >> 12) & 1, osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1;
    int f16c = (r[2] >> 29) & 1;
    if (!osxsave || !avx) return 0;
    unsigned long long xcr0 = fs_xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return 0;            /* XMM and YMM state saved by the OS */
    if (fma) f |= FS_F_fma;
    if (f16c) f |= FS_F_f16c;
    if (max_leaf < 7) return f;
    fs_cpuid(7, 0, r);
    if ((r[1] >> 5) & 1) f |= FS_F_avx2;
    /* opmask and ZMM state; macOS turns these on only at a thread's first AVX-512 instruction,
     * so XCR0 does not show them there before (what LLVM's compiler-rt does too). */
#if defined(__APPLE__)
    int zmm = 1;
#else
    int zmm = (xcr0 & 0xE0) == 0xE0;
#endif
    if (zmm) {
        if ((r[1] >> 16) & 1) f |= FS_F_avx512f;
        if ((r[1] >> 17) & 1) f |= FS_F_avx512dq;
        if ((r[1] >> 30) & 1) f |= FS_F_avx512bw;
        if ((r[1] >> 31) & 1) f |= FS_F_avx512vl;
    }
    return f;
}
#elif defined(__aarch64__) || defined(_M_ARM64)
#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_SVE
#define HWCAP_SVE (1UL << 22)
#endif
#endif
static unsigned fs_cpu_features(void)
{
    unsigned f = FS_F_neon;                       /* Advanced SIMD is part of every aarch64 CPU */
#if defined(__linux__)
    if (getauxval(AT_HWCAP) & HWCAP_SVE) f |= FS_F_sve;
#endif
    return f;
}
#else
static unsigned fs_cpu_features(void) { return 0; }
#endif

int fs_variant_supported(int i)
{
    unsigned need = fs_needs[i];
    return (fs_cpu_features() & need) == need;
}
