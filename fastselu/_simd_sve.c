/* The SELU kernels for the sve target (aarch64 Scalable Vector Extension), built with
 * -march=armv8-a+sve: gcc and clang vectorise every hot loop with scalable vectors (fmla/fmad on
 * z registers), the same operations in the same order as every other variant.
 * A universal (multi-architecture) build compiles it for every slice: empty on the others. */
#define FS_ISA sve
#if defined(__aarch64__) || defined(_M_ARM64)
#include "_selu_kernels.h"
#include "_half_kernels.h"
#include "_dropout_kernels.h"
#endif
