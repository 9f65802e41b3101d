/* The SELU kernels for the avx512 target: setup.py compiles this file with that target's flags. */
#define FS_ISA avx512
#include "_selu_kernels.h"
