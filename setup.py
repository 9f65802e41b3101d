"""Build fastselu's compiled backend.

The SELU kernels (fastselu/_selu_kernels.h) are compiled once per SIMD target, each from a
tiny fastselu/_simd_<isa>.c with that target's flags, and linked into the one extension
fastselu._kernels, which picks a variant at import (fastselu/_dispatch.c).  OpenMP is found by
a compile-link-run probe; without it (or with FASTSELU_NO_OPENMP=1) the build is serial.
"""
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Same results on every CPU: no contraction except explicit fma(), no unsafe math, no
# host-specific target (each SIMD variant names its ISA explicitly below).
# -fno-math-errno / -fno-trapping-math change no result; they let gcc vectorize fma() and selects.
KERNEL_FLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
IS_X86_64 = platform.machine().lower() in ("x86_64", "amd64")
SIMD_TARGETS = {
    "avx512": ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mavx2", "-mfma",
               "-mprefer-vector-width=512"],
    "avx2": ["-mavx2", "-mfma"],
    "baseline": [],
}
if not IS_X86_64:
    SIMD_TARGETS = {"baseline": []}

OPENMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel num_threads(2) reduction(+:n)
    n += 1;
    printf("%d\n", n);
    return n == 2 ? 0 : 1;
}
"""


def openmp_flags(compiler):
    """Compile, link and run a tiny OpenMP program; return the flags if it works, else None."""
    if os.environ.get("FASTSELU_NO_OPENMP", "") not in ("", "0"):
        return None
    flag = "/openmp" if compiler.compiler_type == "msvc" else "-fopenmp"
    tmp = tempfile.mkdtemp(prefix="fastselu-omp-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=[flag])
        exe = os.path.join(tmp, "probe")
        compiler.link_executable(objs, exe, extra_postargs=[flag])
        subprocess.run([exe], check=True, capture_output=True, timeout=60)
        return flag
    except Exception as exc:  # noqa: BLE001 - any failure means "no usable OpenMP"
        warnings.warn(f"fastselu: OpenMP not usable with this compiler ({exc}); building a "
                      "serial backend (set CC to an OpenMP-capable compiler for threads)")
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    def build_extensions(self):
        omp = openmp_flags(self.compiler)
        print(f"fastselu: OpenMP {'on (' + omp + ')' if omp else 'off'}; "
              f"SIMD variants {list(SIMD_TARGETS)}")
        for ext in self.extensions:
            ext.extra_objects = self.simd_objects(ext) + list(ext.extra_objects or [])
            if omp:
                ext.extra_compile_args += [omp]
                ext.extra_link_args += [omp]
        super().build_extensions()

    def simd_objects(self, ext):
        """Compile each fastselu/_simd_<isa>.c with its own target flags."""
        objs = []
        for isa, flags in SIMD_TARGETS.items():
            objs += self.compiler.compile(
                [f"fastselu/_simd_{isa}.c"], output_dir=self.build_temp,
                include_dirs=["fastselu"], extra_postargs=KERNEL_FLAGS + ["-fPIC"] + flags,
                depends=["fastselu/_selu_kernels.h", "fastselu/_selu_constants.h"])
        return objs


macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if IS_X86_64:
    macros.append(("FASTSELU_X86_VARIANTS", "1"))

ext = Extension(
    "fastselu._kernels",
    sources=["fastselu/_kernels.pyx", "fastselu/_dispatch.c"],
    include_dirs=[np.get_include(), "fastselu"],
    define_macros=macros,
    extra_compile_args=KERNEL_FLAGS,
    depends=["fastselu/_dispatch.h", "fastselu/_selu_kernels.h", "fastselu/_selu_constants.h"],
)

setup(
    ext_modules=cythonize([ext], compiler_directives={"language_level": 3}),
    cmdclass={"build_ext": BuildExt},
)
