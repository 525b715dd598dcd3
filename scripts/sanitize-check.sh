#!/usr/bin/env bash
# The native tests of the parsers and the core under AddressSanitizer and UndefinedBehaviorSanitizer
# (issue 17): test_core (tensors, registry, C ABI, JSON), test_model (safetensors reader, config,
# model graphs), and the image tests (PNG/JPEG/DICOM decoders on the good and the hostile fixtures,
# resize). A CPU build (no CUDA) in build-asan/, with the host's glibc (the sanitizer runtimes are
# the host compiler's, so CARZERO_SYSROOT is ignored here). Any report fails the run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${CARZERO_ASAN_DIR:-$root/build-asan}
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
env -u CARZERO_SYSROOT cmake -S . -B "$out" "${gen[@]}" -DCARZERO_CUDA=OFF -DCARZERO_SANITIZE=address,undefined \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
tests=(test_core test_model)
for src in native/tests/image/test_*.cpp; do tests+=("$(basename "$src" .cpp)"); done
env -u CARZERO_SYSROOT cmake --build "$out" --target "${tests[@]}" -j"$(nproc 2>/dev/null || echo 2)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
for t in "${tests[@]}"; do
  echo "sanitize-check: $t"
  (cd "$out" && "./$t" > "$t.log" 2>&1) || {
    tail -n 40 "$out/$t.log" >&2
    echo "sanitize-check: $t failed under the sanitizers" >&2
    exit 1
  }
  tail -n 1 "$out/$t.log"
done
echo "sanitize-check: passed (${tests[*]})"
