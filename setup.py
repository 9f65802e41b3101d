"""Build fastselu's compiled backend.

The SELU kernels (fastselu/_selu_kernels.h and the headers it includes) are compiled once per
SIMD target, each from a tiny fastselu/_simd_<isa>.c with that target's flags, and linked into the
one extension fastselu._kernels, which picks a variant at import (fastselu/_dispatch.c).  The
variants are declared once, in fastselu/_targets.py; the ones built are those of the architecture
being built for (ARCHFLAGS, sysconfig.get_platform(), confirmed by compiling a probe), not the
build host's.  OpenMP is found by a compile-link(-run) probe; without it (or with
FASTSELU_NO_OPENMP=1) the build is serial, with a warning.
"""

import glob
import os
import platform
import runpy
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS_PY = runpy.run_path(os.path.join(HERE, "fastselu", "_targets.py"))
TARGETS = TARGETS_PY["TARGETS"]
ARCH_ALIASES = TARGETS_PY["ARCH_ALIASES"]
ARCH_MACROS = TARGETS_PY["ARCH_MACROS"]

# Same results on every CPU and compiler: no contraction except explicit fma(), no unsafe math,
# no host-specific target (each SIMD variant names its ISA in fastselu/_targets.py).
# -fno-math-errno / -fno-trapping-math change no result; they let gcc vectorize fma() and selects.
# MSVC: /fp:precise contracts nothing since Visual Studio 2022 (checked below).
KERNEL_FLAGS = {
    "unix": ("-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"),
    "msvc": ("/O2", "/fp:precise"),
}
# Every header the kernels include (other helpers add theirs): a change to any rebuilds.
HEADERS = sorted(glob.glob("fastselu/*.h", root_dir=HERE))

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


def _arch(name):
    """Our architecture name for a platform / -arch spelling (None if unknown)."""
    name = name.lower()
    for arch, aliases in ARCH_ALIASES.items():
        if name in aliases:
            return arch
    return None


def requested_archs():
    """Architectures the build is for, from ARCHFLAGS (macOS) or the target platform string
    (sysconfig.get_platform() honours _PYTHON_HOST_PLATFORM, set by cross-build tools)."""
    flags = os.environ.get("ARCHFLAGS", "").split()
    archs = [flags[i + 1] for i, f in enumerate(flags[:-1]) if f == "-arch"]
    if not archs:
        plat = sysconfig.get_platform()
        last = plat.rsplit("-", 1)[-1]
        if last == "universal2":
            archs = ["x86_64", "arm64"]
        elif last == "win32" or plat == "win32":
            archs = ["x86"]
        else:
            archs = [last]
    return archs


class Probe:
    """Compile (and link, and maybe run) tiny programs with the build's own compiler."""

    def __init__(self, compiler, tmp):
        self.compiler = compiler
        self.tmp = tmp
        self.count = 0

    def compiles(self, source, flags=()):
        self.count += 1
        src = os.path.join(self.tmp, f"probe{self.count}.c")
        with open(src, "w") as f:
            f.write(source)
        try:
            with open(os.devnull, "w") as devnull:  # the compiler's own complaints are expected
                saved = os.dup(2)
                os.dup2(devnull.fileno(), 2)
                try:
                    return self.compiler.compile(
                        [src], output_dir=self.tmp, extra_postargs=list(flags)
                    )
                finally:
                    os.dup2(saved, 2)
                    os.close(saved)
        except Exception:  # noqa: BLE001 - any failure means "no"
            return None

    def holds(self, condition, flags=()):
        return self.compiles(f"#if !({condition})\n#error no\n#endif\nint fs_probe;\n", flags)


def compiler_family(compiler, probe):
    """'unix' (gcc or clang) or 'msvc'; anything else stops the build with a clear message
    rather than risk a compiler whose floating-point defaults change results silently."""
    name = " ".join(getattr(compiler, "compiler_so", None) or [compiler.compiler_type])
    if probe.holds("defined(__INTEL_COMPILER) || defined(__INTEL_LLVM_COMPILER)"):
        raise SystemExit(
            f"fastselu: the Intel compiler ({name}) is not supported: its default "
            "-fp-model=fast changes results. Build with gcc, clang or MSVC (CC=...)."
        )
    if compiler.compiler_type == "msvc":
        if not probe.holds("defined(_MSC_VER) && _MSC_VER >= 1930 || defined(__clang__)"):
            raise SystemExit(
                "fastselu: MSVC older than Visual Studio 2022 (17.0) contracts "
                "a*b+c into FMAs under /fp:precise, which changes results; "
                "use Visual Studio 2022 or later."
            )
        return "msvc"
    if probe.holds("defined(__GNUC__) || defined(__clang__)"):
        return "unix"
    raise SystemExit(
        f"fastselu: unknown C compiler ({name}): the kernels need gcc, clang or "
        "MSVC (their flags keep every platform's bits identical). Set CC."
    )


def target_archs(probe, family):
    """Our names of the architectures being compiled for.  A single requested architecture is
    confirmed with the compiler's predefined macros (a cross compiler picked by CC wins over a
    host-derived platform string); several (a universal2 build) are taken from ARCHFLAGS."""
    requested = requested_archs()
    archs = [_arch(a) for a in requested]
    if len(requested) > 1:
        if None in archs:
            raise SystemExit(f"fastselu: unknown architecture in {requested}")
        return list(dict.fromkeys(archs))
    flags = KERNEL_FLAGS[family]
    if archs[0] is not None and probe.holds(ARCH_MACROS[archs[0]], flags):
        return archs
    for arch, cond in ARCH_MACROS.items():
        if probe.holds(cond, flags):
            return [arch]
    return [None]  # an architecture without SIMD variants here: portable baseline only


def target_is_host(archs):
    host = _arch(platform.machine())
    plat = sysconfig.get_platform()
    same_os = plat.startswith(("linux", "macosx", "win", "mingw", "cygwin")) and (
        plat.startswith("linux") == sys.platform.startswith("linux")
        and plat.startswith("macosx") == (sys.platform == "darwin")
    )
    return archs == [host] and same_os


def platform_key():
    plat = sysconfig.get_platform()
    return "linux" if plat.startswith("linux") else plat.split("-")[0]


def choose_variants(probe, family, archs):
    """{arch: [(name, flags, features)]}: the declared variants the compiler can build."""
    chosen = {}
    for arch in archs:
        out = []
        declared = TARGETS.get(arch) or {"baseline": TARGETS["x86_64"]["baseline"]}
        for name, spec in declared.items():
            if family not in spec["flags"]:
                continue
            if "platforms" in spec and platform_key() not in spec["platforms"]:
                continue
            flags = list(spec["flags"][family])
            if len(archs) > 1 and flags:
                # universal2: an ISA flag goes to its own slice only
                apple = "arm64" if arch == "aarch64" else arch
                flags = [x for flag in flags for x in (f"-Xarch_{apple}", flag)]
            arch_cond = ARCH_MACROS.get(arch, "1")
            # one slice of a universal build compiles the other slice's probe too: vacuous there
            cond = (
                f"({arch_cond}) && ({spec['probe']})"
                if len(archs) == 1
                else f"!({arch_cond}) || ({spec['probe']})"
            )
            if name != "baseline" and not probe.holds(cond, list(KERNEL_FLAGS[family]) + flags):
                warnings.warn(
                    f"fastselu: the compiler cannot build the {name} variant "
                    f"({' '.join(flags) or 'no flags'}); leaving it out",
                    stacklevel=2,
                )
                continue
            out.append((name, flags, spec["features"]))
        chosen[arch] = out
    return chosen


def variants_header(chosen):
    """_fs_variants.h for _dispatch.c: per architecture, the variants built, best first."""
    lines = [
        "/* Generated by setup.py from fastselu/_targets.py: the variants this build compiled. */"
    ]
    first = True
    for arch, variants in chosen.items():
        items = " ".join(
            f"X({name}, {' | '.join('FS_F_' + f for f in features) or '0u'})"
            for name, _, features in variants
        )
        cond = ARCH_MACROS.get(arch, "1")
        lines += [f"#{'if' if first else 'elif'} {cond}", f"#define FS_FOR_EACH_VARIANT(X) {items}"]
        first = False
    lines += [
        "#else",
        '#error "fastselu: compiled for an architecture setup.py did not plan for"',
        "#endif",
        "",
    ]
    return "\n".join(lines)


def openmp_flags(compiler, probe, family, run):
    """Compile, link and (unless cross-compiling) run a tiny OpenMP program; return
    (compile flags, link flags, include dirs, library dirs) if it works, else None."""
    if os.environ.get("FASTSELU_NO_OPENMP", "") not in ("", "0"):
        return None
    candidates = []
    if family == "msvc":
        candidates.append((["/openmp"], [], [], []))
    else:
        candidates.append((["-fopenmp"], ["-fopenmp"], [], []))
        if sys.platform == "darwin":
            # Apple clang has no OpenMP runtime: libomp from Homebrew or conda, as scikit-learn
            # and pykdtree find it (delocate then bundles it into the wheel).
            for prefix in libomp_prefixes():
                lib = os.path.join(prefix, "lib")
                # the rpath lets the module (and delocate, which resolves @rpath) find libomp
                candidates.append(
                    (
                        ["-Xpreprocessor", "-fopenmp"],
                        ["-lomp", f"-Wl,-rpath,{lib}"],
                        [os.path.join(prefix, "include")],
                        [lib],
                    )
                )
    errors = []
    for cflags, lflags, incs, libs in candidates:
        src = os.path.join(probe.tmp, "omp_probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        try:
            objs = compiler.compile(
                [src], output_dir=probe.tmp, include_dirs=incs, extra_postargs=cflags
            )
            exe = os.path.join(probe.tmp, "omp_probe")
            compiler.link_executable(objs, exe, library_dirs=libs, extra_postargs=lflags)
            if run:
                exe_path = exe + (".exe" if sys.platform == "win32" else "")
                subprocess.run([exe_path], check=True, capture_output=True, timeout=60)
            return cflags, lflags, incs, libs
        except Exception as exc:  # noqa: BLE001 - any failure means "not this way"
            errors.append(f"{' '.join(cflags)}: {exc}")
    hint = (
        " (macOS: `brew install libomp` or conda's llvm-openmp)"
        if sys.platform == "darwin"
        else " (set CC to an OpenMP-capable compiler)"
    )
    warnings.warn(
        "fastselu: OpenMP not usable with this compiler; building a serial backend"
        f"{hint}. Tried: {'; '.join(errors)}",
        stacklevel=2,
    )
    return None


def libomp_prefixes():
    prefixes = []
    for var in ("FASTSELU_LIBOMP_PREFIX", "CONDA_PREFIX", "PREFIX"):
        if os.environ.get(var):
            prefixes.append(os.environ[var])
    brew = shutil.which("brew")
    if brew:
        try:
            out = subprocess.run(
                [brew, "--prefix", "libomp"], capture_output=True, text=True, timeout=60
            )
            if out.returncode == 0 and out.stdout.strip():
                prefixes.append(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    prefixes += ["/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"]
    return [
        p for p in dict.fromkeys(prefixes) if os.path.isfile(os.path.join(p, "include", "omp.h"))
    ]


class BuildExt(build_ext):
    def build_extensions(self):
        tmp = tempfile.mkdtemp(prefix="fastselu-probe-")
        try:
            probe = Probe(self.compiler, tmp)
            family = compiler_family(self.compiler, probe)
            archs = target_archs(probe, family)
            chosen = choose_variants(probe, family, archs)
            omp = openmp_flags(self.compiler, probe, family, run=target_is_host(archs))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        gen = os.path.join(self.build_temp, "fastselu_generated")
        os.makedirs(gen, exist_ok=True)
        header = variants_header(chosen)
        path = os.path.join(gen, "_fs_variants.h")
        if not os.path.exists(path) or open(path).read() != header:
            with open(path, "w") as f:
                f.write(header)
        print(
            f"fastselu: compiler family {family}; architecture {archs}; OpenMP "
            f"{'on (' + ' '.join(omp[0]) + ')' if omp else 'off'}; SIMD variants "
            f"{ {a: [v[0] for v in vs] for a, vs in chosen.items()} }"
        )
        for ext in self.extensions:
            # fresh lists: nothing shared between extensions is extended in place
            ext.include_dirs = [gen] + list(ext.include_dirs)
            ext.extra_compile_args = list(KERNEL_FLAGS[family]) + (omp[0] if omp else [])
            ext.extra_link_args = list(ext.extra_link_args or []) + (omp[1] if omp else [])
            if omp:
                ext.include_dirs += omp[2]
                ext.library_dirs = list(ext.library_dirs or []) + omp[3]
            ext.depends = list(ext.depends) + HEADERS + [path]
            ext.extra_objects = self.simd_objects(family, chosen) + list(ext.extra_objects or [])
        super().build_extensions()

    def simd_objects(self, family, chosen):
        """Compile each fastselu/_simd_<isa>.c with its own target flags.  Side by side: they
        are independent -O3 compiles (minutes under emulation).  MSVC's compiler object sets
        itself up on first use, so it compiles them one after another."""
        pic = ["-fPIC"] if family == "unix" and sys.platform != "win32" else []
        jobs = {}  # a universal build's baseline serves both slices: one file
        for variants in chosen.values():
            for name, flags, _ in variants:
                jobs.setdefault(name, flags)

        def compile_one(job):
            name, flags = job
            return self.compiler.compile(
                [f"fastselu/_simd_{name}.c"],
                output_dir=self.build_temp,
                include_dirs=["fastselu"],
                extra_postargs=list(KERNEL_FLAGS[family]) + pic + flags,
                depends=HEADERS,
            )

        workers = 1 if family == "msvc" else min(len(jobs), os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return [obj for objs in pool.map(compile_one, jobs.items()) for obj in objs]


def main():
    import numpy as np
    from Cython.Build import cythonize

    ext = Extension(
        "fastselu._kernels",
        sources=["fastselu/_kernels.pyx", "fastselu/_dispatch.c"],
        include_dirs=[np.get_include(), "fastselu"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        depends=HEADERS,
    )
    setup(
        ext_modules=cythonize([ext], compiler_directives={"language_level": 3}),
        cmdclass={"build_ext": BuildExt},
    )


# tests/test_build_config.py loads this file under another name to check the target logic.
if __name__ == "__main__":
    main()
