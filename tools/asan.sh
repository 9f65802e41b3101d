#!/usr/bin/env bash
# Build fastselu's compiled backend with AddressSanitizer + UndefinedBehaviorSanitizer and run the
# quick test suite against it.
#
#   tools/asan.sh [extra pytest args...]        e.g. tools/asan.sh tests/test_hardening_fuzz.py
#
# Everything happens in a temporary copy of the working tree (tracked and untracked, not ignored
# files: what a clean checkout plus work in progress holds), so the in-place
# fastselu/_kernels*.so of the repository is never touched.  The extension is built with
#   CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -g -O1"
#   LDFLAGS=-fsanitize=address,undefined
# via `python setup.py build_ext -b <copy>` (setup.py's own -O3 comes later on the command line
# and wins for the kernels; the sanitizers instrument either way).  The interpreter itself is not
# instrumented, so libasan is preloaded; since it then intercepts malloc, NumPy's array buffers
# get red zones and any kernel read or write past them is reported.
#
# Steps: (1) build, (2) check that the .so really is instrumented, (3) a canary: a deliberate
# heap overflow into a NumPy buffer must be reported (proves preload + interception work here),
# (4) the quick suite (pytest's default selection: not slow) with UBSAN halt_on_error=1.
# Exit status: pytest's.  KEEP=1 keeps the temporary copy (its path is printed).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fastselu-asan.XXXXXX")
if [[ "${KEEP:-0}" != "1" ]]; then
    trap 'rm -rf "$tmp"' EXIT
fi
copy="$tmp/repo"
mkdir -p "$copy"

echo "=== copy of $repo -> $copy"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard) \
    | (cd "$repo" && xargs -0 -r tar -cf - --ignore-failed-read 2>/dev/null) \
    | (cd "$copy" && tar -xf -)
# Never carry a prebuilt extension or generated C file into the sanitizer build.
rm -f "$copy"/fastselu/_kernels*.so "$copy"/fastselu/_kernels.c
rm -rf "$copy/build"

echo "=== build with -fsanitize=address,undefined"
(
    cd "$copy"
    # CC carries the sanitizer flag too: setup.py's OpenMP probe links an executable, which
    # distutils does without LDFLAGS; without it the probe fails and the build is serial.
    CC="${CC:-gcc} -fsanitize=address,undefined" \
    CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -g -O1" \
    LDFLAGS="-fsanitize=address,undefined" \
        "$python" setup.py -q build_ext -b "$copy" -t "$tmp/build" > "$tmp/build.log" 2>&1 \
        || { tail -n 40 "$tmp/build.log"; exit 2; }
    grep -E "^fastselu: OpenMP" "$tmp/build.log"
    if ! grep -q "^fastselu: OpenMP on" "$tmp/build.log"; then
        echo "FAIL: the sanitizer build has no OpenMP (the threaded code would go untested)" >&2
        exit 2
    fi
)
so=$(ls "$copy"/fastselu/_kernels*.so)
echo "built: $so"

echo "=== instrumentation check"
symbols=$(nm -D "$so")   # not piped into grep -q: with pipefail, SIGPIPE would fail the test
if ! grep -q "__asan_report" <<<"$symbols"; then
    echo "FAIL: $so has no ASan instrumentation" >&2
    exit 2
fi
if ! grep -q "__ubsan_handle" <<<"$symbols"; then
    echo "FAIL: $so has no UBSan instrumentation" >&2
    exit 2
fi
ldd "$so" | grep -E "asan|ubsan|gomp" || true

libasan=$(gcc -print-file-name=libasan.so)
# libstdc++ right after libasan: otherwise ASan's __cxa_throw interceptor finds no real
# __cxa_throw and aborts the first C++ extension that throws (matplotlib's ft2font does).
libstdcxx=$(gcc -print-file-name=libstdc++.so)
export LD_PRELOAD="$libasan:$libstdcxx${LD_PRELOAD:+:$LD_PRELOAD}"
# allocator_may_return_null=1: a failing malloc returns NULL as it does without ASan (NumPy
# raises MemoryError), instead of ASan aborting -- tests that set an address-space limit rely on it.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export PYTHONPATH="$copy"
unset FASTSELU_BACKEND FASTSELU_NUM_THREADS FASTSELU_SIMD OMP_NUM_THREADS
echo "LD_PRELOAD=$LD_PRELOAD"
echo "ASAN_OPTIONS=$ASAN_OPTIONS"
echo "UBSAN_OPTIONS=$UBSAN_OPTIONS"

echo "=== canary: a deliberate heap overflow must be reported"
set +e
canary=$(cd "$copy" && "$python" - 2>&1 <<'PY'
import ctypes, numpy as np
a = np.zeros(1 << 18, np.float32)   # 1 MiB: its own malloc block with red zones
src = np.zeros(a.size + 64, np.float32)
ctypes.memmove(a.ctypes.data, src.ctypes.data, src.nbytes)   # 256 bytes past the end
print("canary NOT detected")
PY
)
rc=$?
set -e
if [[ $rc -eq 0 ]] || ! grep -q "heap-buffer-overflow" <<<"$canary"; then
    echo "FAIL: ASan did not report the canary overflow (rc=$rc):" >&2
    echo "$canary" | tail -n 20 >&2
    exit 2
fi
echo "canary reported (heap-buffer-overflow), rc=$rc: the sanitizer pipeline works"

echo "=== the compiled backend in use"
(cd "$copy" && "$python" -c "import fastselu, fastselu._kernels as k; print(k.__file__); fastselu.show_config(); assert fastselu.get_backend() == 'cython' and k.OPENMP and k.__file__.startswith('$copy')")

echo "=== quick suite under ASan/UBSan"
# pytest runs with -s: it must not capture file descriptor 2, because a sanitizer report goes
# there (UBSan ignores log_path) and with halt_on_error=1 the process dies before pytest could
# show what it captured.  -v names each test before it runs, so the last test named in the log is
# the one that was running when a sanitizer stopped the process.  ASan reports of subprocesses
# also go to files (log_path).  Options in the caller's ASAN_OPTIONS / UBSAN_OPTIONS come later
# and win, e.g. UBSAN_OPTIONS=halt_on_error=0 to collect every finding in one run.
logs="$tmp/sanitizer-logs"
mkdir -p "$logs"
export ASAN_OPTIONS="log_path=$logs/asan:$ASAN_OPTIONS"
log="${ASAN_LOG:-$tmp/pytest.log}"
set +e
(cd "$copy" && "$python" -m pytest -v -s -p no:cacheprovider -rfE "$@") >"$log" 2>&1
status=$?
set -e
echo "pytest output: $log"
grep -E "^(FAILED|ERROR) " "$log" | head -n 40 || true
tail -n 1 "$log"
echo "=== pytest exit status: $status"
findings=$( { grep -h -E "runtime error:|ERROR: AddressSanitizer|AddressSanitizer: CHECK" "$log" \
              $(find "$logs" -type f) 2>/dev/null || true; } | sed -E 's/0x[0-9a-f]+/0x…/g' \
            | sort | uniq -c | sort -rn)
if [[ -n "$findings" ]]; then
    echo "=== sanitizer findings (count, unique message)"
    echo "$findings"
    if [[ $status -ne 0 ]] && ! grep -q -E "[0-9]+ (passed|failed)" <(tail -n 1 "$log"); then
        echo "the run stopped inside: $(grep -E '^tests/.*::' "$log" | tail -n 1)"
    fi
    [[ $status -ne 0 ]] || status=3
else
    echo "=== no sanitizer findings"
fi
exit $status
