/* Runtime choice among the per-ISA builds of _selu_kernels.h. */
#ifndef FASTSELU_DISPATCH_H
#define FASTSELU_DISPATCH_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;
    void (*forward_f32)(const float *, float *, ptrdiff_t);
    void (*forward_f64)(const double *, double *, ptrdiff_t);
    void (*backward_x_f32)(const float *, const float *, float *, ptrdiff_t);
    void (*backward_x_f64)(const double *, const double *, double *, ptrdiff_t);
    void (*backward_y_f32)(const float *, const float *, float *, ptrdiff_t);
    void (*backward_y_f64)(const double *, const double *, double *, ptrdiff_t);
    /* float16 / bfloat16 as bit patterns (_half_kernels.h); half_init builds their tables and
     * must have run once before the kernels are called from several threads at a time. */
    void (*half_init)(void);
    void (*forward_f16)(const uint16_t *, uint16_t *, ptrdiff_t);
    void (*forward_bf16)(const uint16_t *, uint16_t *, ptrdiff_t);
    void (*backward_x_f16)(const uint16_t *, const uint16_t *, uint16_t *, ptrdiff_t);
    void (*backward_x_bf16)(const uint16_t *, const uint16_t *, uint16_t *, ptrdiff_t);
    void (*backward_y_f16)(const uint16_t *, const uint16_t *, uint16_t *, ptrdiff_t);
    void (*backward_y_bf16)(const uint16_t *, const uint16_t *, uint16_t *, ptrdiff_t);
    /* AlphaDropout (_dropout_kernels.h): (x, out, n, prm, k0, k1, start, inner, fused) and
     * (g, x, out, n, prm, k0, k1, start, inner, mode) */
    void (*dropout_f32)(const float *, float *, ptrdiff_t, const double *, uint32_t, uint32_t,
                        int64_t, int64_t, int);
    void (*dropout_f64)(const double *, double *, ptrdiff_t, const double *, uint32_t, uint32_t,
                        int64_t, int64_t, int);
    void (*dropout_bwd_f32)(const float *, const float *, float *, ptrdiff_t, const double *,
                            uint32_t, uint32_t, int64_t, int64_t, int);
    void (*dropout_bwd_f64)(const double *, const double *, double *, ptrdiff_t, const double *,
                            uint32_t, uint32_t, int64_t, int64_t, int);
    /* the same on float16 (bf = 0) or bfloat16 (bf = 1) bits: ..., fused or mode, bf) */
    void (*dropout_h16)(const uint16_t *, uint16_t *, ptrdiff_t, const double *, uint32_t,
                        uint32_t, int64_t, int64_t, int, int);
    void (*dropout_bwd_h16)(const uint16_t *, const uint16_t *, uint16_t *, ptrdiff_t,
                            const double *, uint32_t, uint32_t, int64_t, int64_t, int, int);
} fs_kernels;

/* Variants compiled into this build, best first; the last one is always "baseline". */
int fs_num_variants(void);
const fs_kernels *fs_variant(int i);
/* Whether this CPU (and OS) can run variant i. */
int fs_variant_supported(int i);

/* CPU features a variant may need (fastselu/_targets.py names them; fs_cpu_features finds them). */
enum {
    FS_F_fma = 1u << 0, FS_F_avx2 = 1u << 1, FS_F_f16c = 1u << 2, FS_F_avx512f = 1u << 3,
    FS_F_avx512dq = 1u << 4, FS_F_avx512bw = 1u << 5, FS_F_avx512vl = 1u << 6,
    FS_F_neon = 1u << 7, FS_F_sve = 1u << 8
};
#endif
