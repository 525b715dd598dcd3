#!/usr/bin/env bash
# Release check for the shipped binaries: what each one needs from the system it loads on.
#   scripts/glibc-check.sh [--floor 2.31] <binary>...
# For each binary: the highest GLIBC_ symbol version it references (must be <= the floor), the
# shared libraries it needs (only glibc's own: libc, libm, libpthread, libdl, librt and the
# loader; libstdc++ and libgcc are linked statically), no GLIBCXX_/CXXABI_/GCC_ versions (they
# would need a new libstdc++/libgcc_s), and no undefined symbol without a version other than the
# N-API ones that Node provides (an unversioned one would be looked up at load time and missing on
# an older glibc). Prints one line per binary and exits 1 when one fails.
set -euo pipefail
floor=2.31
if [ "${1:-}" = "--floor" ]; then floor=$2; shift 2; fi
[ $# -gt 0 ] || { echo "usage: $0 [--floor 2.31] <binary>..." >&2; exit 2; }
ver_le() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$1" ]; }
status=0
for bin in "$@"; do
  problems=()
  versions=$(objdump -T "$bin" | grep -oE '\(GLIBC_[0-9.]+\)' | tr -d '()' | sed 's/GLIBC_//' | sort -uV)
  top=$(printf '%s\n' "$versions" | tail -n 1)
  top=${top:-none}
  if [ "$top" != none ] && ! ver_le "$top" "$floor"; then
    over=$(objdump -T "$bin" \
      | awk -v f="$floor" '/\(GLIBC_[0-9.]+\)/ { v=$0; sub(/.*\(GLIBC_/, "", v); sub(/\).*/, "", v); print v, $NF }' |
      while read -r v s; do ver_le "$v" "$floor" || echo "$s@GLIBC_$v"; done | sort -u | head -n 12 | tr '\n' ' ')
    problems+=("needs GLIBC_$top > $floor: $over")
  fi
  cxx=$(objdump -T "$bin" | grep -oE '\((GLIBCXX|CXXABI|GCC)_[0-9.]+\)' | sort -u | tr -d '()' | tr '\n' ' ' || true)
  [ -z "$cxx" ] || problems+=("needs libstdc++/libgcc_s versions: $cxx")
  needed=$(objdump -p "$bin" | awk '/NEEDED/ { print $2 }' | sort -u | tr '\n' ' ')
  for lib in $needed; do
    case "$lib" in
      libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|librt.so.1|ld-linux-x86-64.so.2) ;;
      *) problems+=("needs $lib") ;;
    esac
  done
  # undefined, not weak, no version: resolved only by name at load time
  unver=$(nm -D --undefined-only "$bin" | awk '$1 == "U" && $2 !~ /@/ { print $2 }' |
    grep -vE '^(napi_|node_api_)' | sort -u | head -n 12 | tr '\n' ' ' || true)
  [ -z "$unver" ] || problems+=("undefined without a version (missing from the link): $unver")
  if [ ${#problems[@]} -eq 0 ]; then
    echo "glibc-check: ok   $bin: GLIBC_$top <= $floor; needs $needed"
  else
    status=1
    for p in "${problems[@]}"; do echo "glibc-check: FAIL $bin: $p" >&2; done
  fi
done
exit $status
