#include "_dispatch.h"

#define FS_DECLARE(isa)                                                                        \
    void fs_forward_f32_##isa(const float *, float *, ptrdiff_t);                             \
    void fs_forward_f64_##isa(const double *, double *, ptrdiff_t);                           \
    void fs_backward_x_f32_##isa(const float *, const float *, float *, ptrdiff_t);           \
    void fs_backward_x_f64_##isa(const double *, const double *, double *, ptrdiff_t);        \
    void fs_backward_y_f32_##isa(const float *, const float *, float *, ptrdiff_t);           \
    void fs_backward_y_f64_##isa(const double *, const double *, double *, ptrdiff_t);        \
    static const fs_kernels fs_table_##isa = {                                                 \
        #isa, fs_forward_f32_##isa, fs_forward_f64_##isa, fs_backward_x_f32_##isa,             \
        fs_backward_x_f64_##isa, fs_backward_y_f32_##isa, fs_backward_y_f64_##isa};

#if defined(FASTSELU_X86_VARIANTS)
FS_DECLARE(avx512)
FS_DECLARE(avx2)
#endif
FS_DECLARE(baseline)

static const fs_kernels *const fs_tables[] = {
#if defined(FASTSELU_X86_VARIANTS)
    &fs_table_avx512, &fs_table_avx2,
#endif
    &fs_table_baseline,
};

int fs_num_variants(void) { return (int)(sizeof fs_tables / sizeof fs_tables[0]); }

const fs_kernels *fs_variant(int i) { return fs_tables[i]; }

int fs_variant_supported(int i)
{
#if defined(FASTSELU_X86_VARIANTS)
    __builtin_cpu_init();
    /* libgcc's checks include the OS's XSAVE support for the wider registers */
    if (fs_tables[i] == &fs_table_avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2");
    if (fs_tables[i] == &fs_table_avx2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return 1;
}
