#!/usr/bin/env bash
# fastselu on aarch64 under emulation (SPEC "Platforms"; README "Platforms").
#
#   sudo tools/test_aarch64.sh                   the quick suite in an aarch64 CPython
#   sudo tools/test_aarch64.sh --exhaustive[=V]  ... then the bit comparison against x86-64
#   (--skip-suite: the build and the comparison only; the status is then the comparison's)
#
# Run as root on a Debian/Ubuntu x86-64 host, from a source tree (a .git is not needed).  It
# installs Debian packages (mmdebstrap, qemu-user-static), registers qemu-aarch64 with binfmt_misc,
# builds (once, then reused) a Debian arm64 root with its own python3 and gcc at
# $FASTSELU_ARM64_ROOT (default /var/tmp/fastselu-arm64-root), installs fastselu there from a copy
# of this tree with `pip install .` (compiled by the root's own gcc, under emulation; the test
# requirements are already in its venv) and runs `pytest -m 'not slow' -n $(nproc)`
# (pytest-xdist), printing pytest's summary line.  Exit status: pytest's (or 1 when the optional
# comparison finds a difference).  About 25 minutes on 2 cores, the root included.
#
# --exhaustive[=VARIANTS]: the kernel ABI functions (fastselu/_simd_<isa>.c compiled on their own
# with the SPEC's flags, tools/bitcompare.c) built for the host and cross-built for aarch64
# (Debian gcc-aarch64-linux-gnu, run by qemu-aarch64) must give the same bits: every float32 input
# forward and backward (grad_output = 1) for the aarch64 VARIANTS (default: neon), every 16th block
# of 2^24 inputs for the other aarch64 variants; for every variant the float64 hard-input sets
# of fastselu.check (_ulp.hard_inputs, about 2*10^6 inputs; forward, backward from x with g = 1
# and with random g, backward from y), every float16 and bfloat16 input (forward, backward
# from x and from y, g = 1), and the AlphaDropout kernels (both forwards and the three backward
# modes, six p, float32 and float64, on hard_inputs plus each p's cancellation points).
# sve runs at qemu's SVE vector length FASTSELU_SVE_VL (bytes, default 256 = 2048 bits, the
# fastest to emulate) for float32, and at 16, 32, 64 and 256 bytes for float64 and the 16-bit
# formats.  The full float32 pass needs about 30 CPU-minutes per variant under qemu (neon; sve
# about 1.5 times as much): about 15 minutes on 2 free cores, hours on a busy one.
#
# Exit status: pytest's (or 1 when the optional comparison finds a difference); 2 for bad usage;
# 77 (skipped, as automake's harness reads it) on a host without apt-get (not Debian/Ubuntu), where
# it cannot install what it needs.
set -euo pipefail

EXHAUSTIVE=0
SUITE_RUN=1
FULL_VARIANTS="neon"
for arg in "$@"; do
    case "$arg" in
        --skip-suite) SUITE_RUN=0 ;;
        --exhaustive) EXHAUSTIVE=1 ;;
        --exhaustive=*) EXHAUSTIVE=1; FULL_VARIANTS="${arg#--exhaustive=}"; FULL_VARIANTS="${FULL_VARIANTS//,/ }" ;;
        -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "run as root (it installs packages and uses chroot)" >&2; exit 2; }

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${FASTSELU_ARM64_ROOT:-/var/tmp/fastselu-arm64-root}
SUITE=${FASTSELU_DEBIAN_SUITE:-bookworm}
MIRROR=${FASTSELU_DEBIAN_MIRROR:-http://deb.debian.org/debian}
VENV=/opt/fastselu-venv
START=$(date +%s)
step() { echo; echo "=== $* ($(( $(date +%s) - START )) s)"; }

# ---- host packages ----
need=()
for p in mmdebstrap qemu-user-static; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ "$EXHAUSTIVE" = 1 ]; then
    for p in gcc gcc-aarch64-linux-gnu libc6-dev-arm64-cross python3; do
        dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
    done
fi
if [ ${#need[@]} -gt 0 ] && ! command -v apt-get >/dev/null 2>&1; then
    echo "test_aarch64.sh: SKIPPED: it needs the Debian packages ${need[*]} and this host has" \
         "no apt-get (it runs on Debian or Ubuntu x86-64 hosts only); nothing was tested" >&2
    exit 77
fi
if [ ${#need[@]} -gt 0 ]; then
    step "installing ${need[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 "${need[@]}"
fi

# ---- qemu-aarch64 through binfmt_misc (F: the interpreter is opened now, so it works in chroot) ----
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
fi
grep -q 'flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
    || { echo "qemu-aarch64 is registered without the F flag: it cannot run in a chroot" >&2; exit 2; }

# ---- the arm64 root: Debian's python3 and gcc; Python packages from PyPI into a venv ----
mounted=()
cleanup() {
    local m
    for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
mount_root() {
    mount --bind /dev "$ROOT/dev" && mounted+=("$ROOT/dev")
    mount -t proc proc "$ROOT/proc" && mounted+=("$ROOT/proc")
    mount -t sysfs sys "$ROOT/sys" 2>/dev/null && mounted+=("$ROOT/sys") || true
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
    # the host's CA bundle: it may trust a TLS-intercepting proxy that the root's does not
    cp -L "${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}" \
        "$ROOT/etc/fastselu-host-ca.crt" 2>/dev/null || true
}
in_root() {  # a clean environment: nothing of the host's Python or pip settings leaks in
    chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
        PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin" PIP_DISABLE_PIP_VERSION_CHECK=1 \
        PIP_CERT=/etc/fastselu-host-ca.crt SSL_CERT_FILE=/etc/fastselu-host-ca.crt \
        ${HTTPS_PROXY:+HTTPS_PROXY="$HTTPS_PROXY"} ${https_proxy:+https_proxy="$https_proxy"} \
        ${HTTP_PROXY:+HTTP_PROXY="$HTTP_PROXY"} ${http_proxy:+http_proxy="$http_proxy"} \
        ${NO_PROXY:+NO_PROXY="$NO_PROXY"} ${no_proxy:+no_proxy="$no_proxy"} \
        /bin/sh -c "$1"
}

if [ ! -f "$ROOT/.fastselu-debian-ok" ]; then
    step "building the Debian $SUITE arm64 root at $ROOT (mmdebstrap; dpkg runs under qemu)"
    rm -rf "$ROOT"
    mmdebstrap --arch=arm64 --variant=apt \
        --include=python3,python3-venv,python3-dev,gcc,libc6-dev,ca-certificates \
        "$SUITE" "$ROOT" "$MIRROR"
    touch "$ROOT/.fastselu-debian-ok"
else
    step "reusing the Debian arm64 root at $ROOT"
fi
mount_root
# Python packages: aarch64 wheels fetched by the host's pip (native speed; the emulated root
# needs no network), installed in the root with --no-index, build requirements included.
# The requirements come from pyproject.toml (the one list): the runtime dependencies and the
# "test" extra for the venv, the build-system requires for pip's isolated build.
reqs_of() {  # dependencies+test | build
    python3 - "$SRC/pyproject.toml" "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def array(section, key):  # a TOML array of strings (no tomllib before Python 3.11)
    body = text.split("[" + section + "]", 1)[1].split("\n[", 1)[0]
    m = re.search(r"^" + key + r"\s*=\s*\[(.*?)\]", body, re.S | re.M)
    return re.findall(r'"([^"]+)"', re.sub(r"#[^\n]*", "", m.group(1)))
if sys.argv[2] == "build":
    print(" ".join(array("build-system", "requires") + ["wheel"]))
else:
    print(" ".join(array("project", "dependencies") + array("project.optional-dependencies", "test")))
PY
}
# pytest-xdist: the suite spreads over the host's cores (each emulated process runs on one).
# The static checks (ruff, cython-lint, mypy) read the sources, not the platform, and run natively
# in CI; under emulation mypy alone takes many minutes.  So the root goes without them, and their
# tests skip, saying so.
PYREQS="$(reqs_of dependencies+test | tr ' ' '\n' | grep -v -E '^(mypy|ruff|cython-lint)([<>=!~]|$)' \
    | tr '\n' ' ')pytest-xdist"
BUILDREQS=$(reqs_of build)
if [ "$(cat "$ROOT/.fastselu-venv-ok" 2>/dev/null)" != "$PYREQS $BUILDREQS" ]; then
    step "aarch64 wheels for the root's Python (host pip download), then a venv in the root"
    python3 -m pip --version >/dev/null 2>&1 || {
        apt-get update -q; DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-pip; }
    pyver=$(in_root "python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'")
    rm -rf "$ROOT/wheels" && mkdir -p "$ROOT/wheels"
    # shellcheck disable=SC2086
    python3 -m pip download -q --only-binary=:all: --platform manylinux2014_aarch64 \
        --platform manylinux_2_27_aarch64 --platform manylinux_2_28_aarch64 \
        --platform manylinux_2_31_aarch64 --platform manylinux_2_34_aarch64 --implementation cp --python-version "$pyver" \
        -d "$ROOT/wheels" $PYREQS $BUILDREQS pip
    # an existing venv is updated in place (pip under qemu is slow: only what is new)
    in_root "{ [ -x $VENV/bin/pip ] || python3 -m venv $VENV; } && pip install -q --no-compile \
        --no-index --find-links /wheels --upgrade pip && pip install -q --no-compile --no-index \
        --find-links /wheels $(printf "'%s' " $PYREQS) && pip uninstall -q -y mypy ruff cython-lint"
    echo "$PYREQS $BUILDREQS" > "$ROOT/.fastselu-venv-ok"
fi

# ---- build and install fastselu in the root, from a copy of this tree ----
step "copying the source tree and building fastselu for aarch64 (the root's gcc, under qemu)"
rm -rf "$ROOT/src"
mkdir -p "$ROOT/src"
tar -C "$SRC" --exclude=.git --exclude='.venv*' --exclude=build --exclude=dist \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude='*.so' --exclude='*.o' \
    --exclude=fastselu/_kernels.c --exclude=.pytest_cache --exclude=.hypothesis -cf - . \
    | tar -C "$ROOT/src" -xf -
in_root "cd /src && PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels pip install -v . \
    > /tmp/fastselu-build.log 2>&1" \
    || { tail -40 "$ROOT/tmp/fastselu-build.log"; exit 1; }
grep 'fastselu:' "$ROOT/tmp/fastselu-build.log" | sed 's/^ *//' || true
in_root "cd /tmp && python -c 'import platform, fastselu; print(platform.machine()); fastselu.show_config()'"

# ---- the quick suite ----
status=0
if [ "$SUITE_RUN" = 1 ]; then
    step "pytest -m 'not slow' in the aarch64 CPython (qemu-user)"
    set +e
    in_root "cd /src && pytest -m 'not slow' -q -p no:cacheprovider -n $(nproc) --dist worksteal \
        --durations=15"
    status=$?
    set -e
    step "pytest exited with status $status"
fi

# ---- the optional bit comparison against x86-64 ----
if [ "$EXHAUSTIVE" = 1 ]; then
    step "bit comparison: kernel ABI functions on x86-64 and on aarch64 (qemu)"
    W=$(mktemp -d /var/tmp/fastselu-bits.XXXXXX)
    # The variants and their flags come from fastselu/_targets.py (the one list).
    python3 - "$SRC" "$W" <<'PY'
import runpy, sys
src, w = sys.argv[1], sys.argv[2]
t = runpy.run_path(f"{src}/fastselu/_targets.py")
for arch in ("x86_64", "aarch64"):
    vs = [(n, s) for n, s in t["TARGETS"][arch].items() if "unix" in s["flags"]]
    with open(f"{w}/{arch}.variants", "w") as f:
        for n, s in vs:
            f.write(n + "\t" + " ".join(s["flags"]["unix"]) + "\n")
    items = " ".join(f"X({n}, {' | '.join('FS_F_' + x for x in s['features']) or '0u'})" for n, s in vs)
    with open(f"{w}/{arch}.h", "w") as f:
        f.write(f"#define FS_FOR_EACH_VARIANT(X) {items}\n")
PY
    KF="-O3 -ffp-contract=off -fno-math-errno -fno-trapping-math -I$SRC/fastselu"
    build_harness() {  # arch cc
        local arch=$1 cc=$2 objs=()
        mkdir -p "$W/$arch"
        cp "$W/$arch.h" "$W/$arch/_fs_variants.h"
        while IFS=$'\t' read -r name flags; do
            # shellcheck disable=SC2086
            $cc $KF $flags -c "$SRC/fastselu/_simd_$name.c" -o "$W/$arch/$name.o"
            objs+=("$W/$arch/$name.o")
        done < "$W/$arch.variants"
        $cc $KF -I"$W/$arch" -c "$SRC/fastselu/_dispatch.c" -o "$W/$arch/dispatch.o"
        $cc $KF -I"$W/$arch" -fopenmp "$SRC/tools/bitcompare.c" "$W/$arch/dispatch.o" "${objs[@]}" \
            -lm -o "$W/$arch/bitcompare"
    }
    build_harness x86_64 gcc
    build_harness aarch64 aarch64-linux-gnu-gcc
    # qemu-user's CPU is "max": NEON and SVE; QEMU_CPU sets the SVE vector length (bytes)
    run_a64() { QEMU_LD_PREFIX=/usr/aarch64-linux-gnu "$W/aarch64/bitcompare" "$@"; }
    run_a64_vl() { local vl=$1; shift; QEMU_CPU=max,sve-default-vector-length=$vl run_a64 "$@"; }
    SVE_VL=${FASTSELU_SVE_VL:-256}

    # float64 hard sets, the generator of fastselu.check (_ulp.hard_inputs), in the root's Python
    in_root "cd /tmp && python -c '
import numpy as np
from fastselu._ulp import hard_inputs
x = hard_inputs(np.float64, 2_000_000, seed=0)
rng = np.random.default_rng(1)
g = rng.standard_normal(x.size) * np.exp2(rng.integers(-60, 60, x.size))
g[:64] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 5e-324] * 8
np.concatenate([x, g]).tofile(\"/tmp/f64_inputs.bin\")
print(x.size, \"float64 inputs\")'"
    # AlphaDropout kernels: parameters from fastselu._dropout (p = 1 drops everything), inputs
    # from the same generator plus each p's cancellation points (fused x = ln(1 - p), v = -SA*p)
    in_root "cd /tmp && python -c '
import numpy as np
from fastselu import _dropout
from fastselu._ulp import hard_inputs
ps = [0.01, 0.1, 0.5, 0.9, 0.999, 1.0]
rng = np.random.default_rng(2)
def pair(dt):
    x = hard_inputs(dt, 100_000, seed=4)
    near = []
    for p in ps[:-1]:
        prm = _dropout.params(p, \"float64\")
        for c in (np.log1p(-p), -prm[_dropout.P_B_HI], -prm[_dropout.P_C_HI]):
            c = dt(c)
            near.append(c + np.arange(-64, 65).astype(dt) * (np.nextafter(c, dt(np.inf)) - c))
    x = np.concatenate([x] + near).astype(dt)
    g = (rng.standard_normal(x.size) * np.exp2(rng.integers(-60, 60, x.size))).astype(dt)
    g[:8] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 1e-45 if dt == np.float32 else 5e-324]
    return x, g
x32, g32 = pair(np.float32)
x64, g64 = pair(np.float64)
with open(\"/tmp/drop_inputs.bin\", \"wb\") as f:
    np.array([len(ps), x32.size, x64.size], np.int64).tofile(f)
    for fmt in (\"float32\", \"float64\"):
        for p in ps:
            _dropout.params(p, fmt).tofile(f)
    for a in (x32, g32, x64, g64):
        a.tofile(f)
print(x32.size, x64.size, \"dropout inputs\")'"
    cp "$ROOT/tmp/f64_inputs.bin" "$ROOT/tmp/drop_inputs.bin" "$W/"
    fail=0
    bits=0
    x86ref=""
    f32sorted() { sort -k2,2n "$1" | grep '^f32'; }  # bitcompare prints blocks as they finish
    for v in $(cut -f1 "$W/x86_64.variants"); do
        "$W/x86_64/bitcompare" f64 "$W/f64_inputs.bin" "$W/f64.x86" "$v"
        [ -f "$W/f64.x86.$v" ] || continue
        [ -n "$x86ref" ] || x86ref=$v
        "$W/x86_64/bitcompare" h16 "$W/h16.x86" "$v"
        "$W/x86_64/bitcompare" drop "$W/drop_inputs.bin" "$W/drop.x86" "$v"
        OMP_NUM_THREADS=2 "$W/x86_64/bitcompare" f32 "$v" > "$W/f32.x86.raw.$v"
        f32sorted "$W/f32.x86.raw.$v" > "$W/f32.x86.$v" || rm -f "$W/f32.x86.$v"
    done
    n64=$(( $(stat -c %s "$W/f64_inputs.bin") / 16 ))
    for v in $(cut -f1 "$W/x86_64.variants"); do   # the x86 variants among themselves
        for kind in f64 h16 drop f32; do
            [ -f "$W/$kind.x86.$v" ] && ! cmp -s "$W/$kind.x86.$v" "$W/$kind.x86.$x86ref" \
                && { echo "DIFFERENT: x86 $v vs $x86ref ($kind)"; fail=1; }
        done
    done
    for v in $(cut -f1 "$W/aarch64.variants"); do
        vls=64
        [ "$v" = sve ] && vls="16 32 64 256"
        for vl in $vls; do
            at=""
            [ "$v" = sve ] && at=" (vector length $((vl * 8)) bits)"
            run_a64_vl "$vl" f64 "$W/f64_inputs.bin" "$W/f64.a64" "$v" >/dev/null
            if cmp -s "$W/f64.a64.$v" "$W/f64.x86.$x86ref"; then
                echo "float64: aarch64 $v$at == x86-64 $x86ref on $n64 inputs x 4 functions"
                bits=$(( bits + n64 * 4 * 64 ))
            else
                echo "DIFFERENT: float64 aarch64 $v$at vs x86-64 $x86ref"; fail=1
            fi
            run_a64_vl "$vl" h16 "$W/h16.a64" "$v" >/dev/null
            if cmp -s "$W/h16.a64.$v" "$W/h16.x86.$x86ref"; then
                echo "float16, bfloat16: aarch64 $v$at == x86-64 $x86ref on every input" \
                     "(2 x 2^16) x forward, backward from x and from y"
                bits=$(( bits + 2 * 65536 * 3 * 16 ))
            else
                echo "DIFFERENT: float16/bfloat16 aarch64 $v$at vs x86-64 $x86ref"; fail=1
            fi
            run_a64_vl "$vl" drop "$W/drop_inputs.bin" "$W/drop.a64" "$v" >/dev/null
            if cmp -s "$W/drop.a64.$v" "$W/drop.x86.$x86ref"; then
                echo "AlphaDropout: aarch64 $v$at == x86-64 $x86ref (6 p x 2 dtypes x" \
                     "3 forwards and 3 backwards)"
                bits=$(( bits + $(stat -c %s "$W/drop.a64.$v") * 8 ))
            else
                echo "DIFFERENT: AlphaDropout aarch64 $v$at vs x86-64 $x86ref"; fail=1
            fi
        done
        stride=16
        case " $FULL_VARIANTS " in *" $v "*) stride=1 ;; esac
        at=""
        [ "$v" = sve ] && at=" (vector length $((SVE_VL * 8)) bits)"
        t0=$(date +%s)
        BITCOMPARE_STRIDE=$stride OMP_NUM_THREADS=2 run_a64_vl "$SVE_VL" f32 "$v" \
            > "$W/f32.a64.raw.$v"
        f32sorted "$W/f32.a64.raw.$v" > "$W/f32.a64.$v" || true
        nblk=$(wc -l < "$W/f32.a64.$v")
        # blocks whose hashes differ from x86's (one differing output always changes the hash)
        ndiff=$(( nblk - $(grep -Fx -f "$W/f32.a64.$v" "$W/f32.x86.$x86ref" | wc -l) ))
        if [ "$nblk" -gt 0 ] && [ "$ndiff" = 0 ]; then
            which="every ${stride}th block of 2^24"
            [ "$nblk" = 256 ] && which="every float32 input"
            echo "float32: aarch64 $v$at == x86-64 $x86ref on $(( nblk << 24 )) inputs ($which)" \
                 "x forward, backward; $(( $(date +%s) - t0 )) s"
            bits=$(( bits + (nblk << 24) * 2 * 32 ))
        else
            echo "DIFFERENT: float32 aarch64 $v$at vs x86-64 $x86ref in $ndiff of $nblk blocks" \
                 "(see $W; bitcompare f32dump BLOCK $v OUT gives a block's outputs)"; fail=1
        fi
    done
    echo "bits compared: $bits"
    step "bit comparison $([ $fail = 0 ] && echo identical || echo FOUND DIFFERENCES)"
    [ $fail = 0 ] && rm -rf "$W"
    [ $status = 0 ] && [ $fail = 1 ] && status=1
fi
exit $status
