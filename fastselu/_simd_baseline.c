/* The SELU kernels for the baseline target: plain C for any CPU, built without ISA flags
 * (fastselu/_targets.py), always present. */
#define FS_ISA baseline
#include "_selu_kernels.h"
#include "_half_kernels.h"
#include "_dropout_kernels.h"
