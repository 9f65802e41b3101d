/* The SELU kernels for the neon target (aarch64 Advanced SIMD, part of every aarch64 CPU): the
 * plain source, which gcc and clang vectorise with NEON by themselves (every hot loop: fmla on
 * 2 doubles / 4 floats; `-fopt-info-vec` lists them), so it needs no intrinsics and no flags.
 * A universal (multi-architecture) build compiles it for every slice: empty on the others. */
#define FS_ISA neon
#if defined(__aarch64__) || defined(_M_ARM64)
#include "_selu_kernels.h"
#include "_half_kernels.h"
#include "_dropout_kernels.h"
#endif
