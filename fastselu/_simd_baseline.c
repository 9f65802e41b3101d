/* The SELU kernels for the baseline target: setup.py compiles this file with that target's flags. */
#define FS_ISA baseline
#include "_selu_kernels.h"
