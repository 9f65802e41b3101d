/* The SELU kernels for the avx2 target: setup.py compiles this file with that target's flags
 * (fastselu/_targets.py).  A universal (multi-architecture) build compiles it for every slice:
 * empty on the others. */
#define FS_ISA avx2
#if defined(__x86_64__) || defined(_M_X64) || defined(_M_AMD64)
#include "_selu_kernels.h"
#include "_half_kernels.h"
#include "_dropout_kernels.h"
#endif
