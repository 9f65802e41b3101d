"""The SIMD variants of the compiled backend: the one place they are declared.

Pure data (no imports), read by
- setup.py, which compiles ``fastselu/_simd_<name>.c`` with the flags below for each variant of
  the architecture being built (the target's, not the build host's) and writes the list of the
  variants it built, with their CPU features, into a generated header for ``_dispatch.c``;
- ``_config.py``, which validates ``FASTSELU_SIMD`` against every name here;
- ``_kernels.pyx``, which maps a cap naming a variant that this build lacks to the best one below
  it (another architecture's name means baseline).

Per architecture the variants are listed best first; ``baseline`` is last everywhere and needs no
flags, so every build has it.  A variant's entry:
- ``flags``: compiler flags per compiler family ("unix": gcc and clang, "msvc"); a family without
  an entry does not build the variant;
- ``probe``: a C preprocessor condition that must hold under those flags (setup.py compiles it,
  so a compiler that ignores or lacks a flag drops the variant instead of building wrong code);
- ``features``: what ``_dispatch.c`` must find on the CPU (and OS) at run time, by the names it
  knows (fs_cpu_has).
The flags name ISA extensions only, never a CPU (nothing host-specific); -march=x86-64-v3/v4
would also allow BMI/LZCNT/MOVBE that the run-time check does not test.
"""

# architecture name -> variants, best first
TARGETS: dict = {
    "x86_64": {
        "avx512": {
            "flags": {
                "unix": [
                    "-mavx512f",
                    "-mavx512dq",
                    "-mavx512vl",
                    "-mavx512bw",
                    "-mavx2",
                    "-mfma",
                    "-mf16c",
                    "-mprefer-vector-width=512",
                ],
                "msvc": ["/arch:AVX512"],
            },
            "probe": "defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512VL__)"
            " && defined(__AVX512BW__)",
            "features": ["avx512f", "avx512dq", "avx512vl", "avx512bw", "avx2", "fma", "f16c"],
        },
        "avx2": {
            # F16C (x86-64-v3 has it): the float16 kernels' conversions (_half_kernels.h)
            "flags": {"unix": ["-mavx2", "-mfma", "-mf16c"], "msvc": ["/arch:AVX2"]},
            "probe": "defined(__AVX2__)",
            "features": ["avx2", "fma", "f16c"],
        },
        "baseline": {"flags": {"unix": [], "msvc": []}, "probe": "1", "features": []},
    },
    "aarch64": {
        # SVE: gcc and clang vectorise every hot loop with scalable vectors; Apple CPUs have none
        # (the run-time check says so), so it is built for Linux only.
        "sve": {
            "flags": {"unix": ["-march=armv8-a+sve"]},
            "probe": "defined(__ARM_FEATURE_SVE)",
            "features": ["sve"],
            "platforms": ["linux"],
        },
        # NEON is part of every aarch64 CPU: the plain source vectorises with it (fmla) without
        # flags; a variant of its own so that FASTSELU_SIMD names it as on x86.
        "neon": {
            "flags": {"unix": [], "msvc": []},
            "probe": "defined(__ARM_NEON) || defined(_M_ARM64)",
            "features": [],
        },
        "baseline": {"flags": {"unix": [], "msvc": []}, "probe": "1", "features": []},
    },
}

# Spellings of each architecture in sysconfig.get_platform(), ARCHFLAGS and platform.machine(),
# and the compiler's predefined macros that identify it (the compile probe).
ARCH_ALIASES: dict = {
    "x86_64": ["x86_64", "amd64", "x64", "em64t"],
    "aarch64": ["aarch64", "arm64", "armv8", "armv8l"],
}
ARCH_MACROS: dict = {
    "x86_64": "defined(__x86_64__) || defined(_M_X64) || defined(_M_AMD64)",
    "aarch64": "defined(__aarch64__) || defined(_M_ARM64)",
}


def variant_names() -> tuple:
    """Every variant name of every architecture (for validating FASTSELU_SIMD), baseline last."""
    names = [v for variants in TARGETS.values() for v in variants if v != "baseline"]
    return tuple(dict.fromkeys(names)) + ("baseline",)


def arch_of(variant: str):
    """The architecture a non-baseline variant belongs to (None for baseline or unknown)."""
    for arch, variants in TARGETS.items():
        if variant != "baseline" and variant in variants:
            return arch
    return None
