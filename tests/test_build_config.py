"""Build configuration (setup.py): SIMD variants come from fastselu/_targets.py for the TARGET
being built (not the build host); cross compilers build every variant of their architecture; an
unknown compiler stops with a message naming it; no OpenMP means a serial build and a warning.

Needs the source tree (skips against an installed wheel); cross compilers (Debian
gcc-aarch64-linux-gnu, gcc-mingw-w64-x86-64) are used where installed."""

import platform
import runpy
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SETUP = REPO / "setup.py"
pytestmark = [
    pytest.mark.skipif(
        not (SETUP.is_file() and (REPO / "fastselu" / "_targets.py").is_file()),
        reason="needs the source tree (setup.py, fastselu/_targets.py)",
    ),
    pytest.mark.skipif(sys.platform == "win32", reason="uses Unix compilers"),
]


@pytest.fixture
def S(monkeypatch):
    for var in ("ARCHFLAGS", "_PYTHON_HOST_PLATFORM", "FASTSELU_NO_OPENMP"):
        monkeypatch.delenv(var, raising=False)
    return runpy.run_path(str(SETUP), run_name="fastselu_setup")


def compiler_for(cc, monkeypatch):
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed")
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    monkeypatch.setenv("CC", cc)
    monkeypatch.setenv("LDSHARED", f"{cc} -shared")
    c = new_compiler()
    customize_compiler(c)
    return c


def plan(S, compiler, tmp_path):
    probe = S["Probe"](compiler, str(tmp_path))
    family = S["compiler_family"](compiler, probe)
    archs = S["target_archs"](probe, family)
    return probe, family, archs, S["choose_variants"](probe, family, archs)


def build_kernels(S, compiler, chosen, tmp_path):
    """Compile _dispatch.c against the generated header and every chosen variant on its own."""
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / "_fs_variants.h").write_text(S["variants_header"](chosen))
    flags = list(S["KERNEL_FLAGS"]["unix"])
    objs = compiler.compile(
        [str(REPO / "fastselu" / "_dispatch.c")],
        output_dir=str(tmp_path),
        include_dirs=[str(tmp_path / "gen"), str(REPO / "fastselu")],
        extra_postargs=flags,
    )
    for variants in chosen.values():
        for name, vflags, _ in variants:
            objs += compiler.compile(
                [str(REPO / "fastselu" / f"_simd_{name}.c")],
                output_dir=str(tmp_path),
                include_dirs=[str(REPO / "fastselu")],
                extra_postargs=flags + vflags,
            )
    return objs


def test_requested_archs_follow_the_target_not_the_host(S, monkeypatch):
    monkeypatch.setenv("_PYTHON_HOST_PLATFORM", "linux-aarch64")
    assert S["requested_archs"]() == ["aarch64"]
    monkeypatch.setenv("_PYTHON_HOST_PLATFORM", "macosx-11.0-universal2")
    assert S["requested_archs"]() == ["x86_64", "arm64"]
    monkeypatch.setenv("ARCHFLAGS", "-arch arm64")
    assert S["requested_archs"]() == ["arm64"]
    assert S["_arch"]("arm64") == "aarch64" and S["_arch"]("AMD64") == "x86_64"


def test_host_gcc_builds_every_declared_variant_of_its_architecture(S, monkeypatch, tmp_path):
    c = compiler_for("gcc", monkeypatch)
    _, family, archs, chosen = plan(S, c, tmp_path)
    assert family == "unix"
    arch = archs[0]
    here = S["platform_key"]()
    declared = [
        n
        for n, spec in S["TARGETS"][arch].items()
        if "unix" in spec["flags"] and here in spec.get("platforms", ["linux"])
    ]
    assert [v[0] for v in chosen[arch]] == declared
    header = S["variants_header"](chosen)
    assert header.rstrip().endswith("#endif") and "X(baseline, 0u)" in header


def test_cross_compiler_for_aarch64(S, monkeypatch, tmp_path):
    """CC picks a cross compiler while the platform string still says x86-64: the compiler's
    own macros decide; every aarch64 variant compiles; it is not the host (so the OpenMP probe
    does not run its program)."""
    c = compiler_for("aarch64-linux-gnu-gcc", monkeypatch)
    _, _, archs, chosen = plan(S, c, tmp_path)
    assert archs == ["aarch64"]
    assert [v[0] for v in chosen["aarch64"]] == ["sve", "neon", "baseline"]
    # a cross compiler on other hosts; Debian's native gcc has this name too on aarch64
    assert S["target_is_host"](archs) == (S["_arch"](platform.machine()) == "aarch64")
    assert all(Path(o).is_file() for o in build_kernels(S, c, chosen, tmp_path))


def test_mingw_compiles_the_windows_sources(S, monkeypatch, tmp_path):
    """The Windows build's C (CPUID/XGETBV dispatch, every x86 variant, the extension's own C
    block without pthreads) with Debian's mingw-w64: a compile check, nothing runs."""
    c = compiler_for("x86_64-w64-mingw32-gcc", monkeypatch)
    _, _, archs, chosen = plan(S, c, tmp_path)
    assert archs == ["x86_64"]
    assert [v[0] for v in chosen["x86_64"]] == ["avx512", "avx2", "baseline"]
    assert build_kernels(S, c, chosen, tmp_path)
    pyx = (REPO / "fastselu" / "_kernels.pyx").read_text()
    block = pyx.split('cdef extern from *:\n    """', 1)[1].split('"""', 1)[0]
    src = tmp_path / "extern_block.c"
    src.write_text(
        "#include <stddef.h>\ntypedef ptrdiff_t Py_ssize_t;\n"
        + block
        + "\nint use(int n) { return fs_startable_threads(n); }\n"
    )
    for flags in ([], ["-fopenmp"]):
        assert c.compile(
            [str(src)], output_dir=str(tmp_path / f"x{len(flags)}"), extra_postargs=flags
        )


class _NoCompiler:
    """A compiler that fails everything, as an unknown or broken one would."""

    compiler_type = "unix"
    compiler_so = ["mystery-cc"]

    def compile(self, *a, **k):
        raise RuntimeError("no")

    def link_executable(self, *a, **k):
        raise RuntimeError("no")


def test_unknown_compiler_is_named(S, tmp_path):
    probe = S["Probe"](_NoCompiler(), str(tmp_path))
    with pytest.raises(SystemExit, match="mystery-cc"):
        S["compiler_family"](_NoCompiler(), probe)


def test_no_openmp_is_a_serial_build_with_a_warning(S, tmp_path):
    probe = S["Probe"](_NoCompiler(), str(tmp_path))
    with pytest.warns(UserWarning, match="serial"):
        assert S["openmp_flags"](_NoCompiler(), probe, "unix", run=True) is None
