/* The SELU kernels for the avx2 target: setup.py compiles this file with that target's flags. */
#define FS_ISA avx2
#include "_selu_kernels.h"
