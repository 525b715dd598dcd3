#!/usr/bin/env bash
# format.sh: the repository's formatters over the tracked sources.
#   bash scripts/format.sh          rewrite: Prettier (TypeScript, JavaScript) and clang-format
#                                   (C++, CUDA) in place
#   bash scripts/format.sh --check  CI: fail when a file is not formatted, or when a source line is
#                                   longer than 120 characters (scripts/check-line-length.mjs)
# clang-format comes from apt (Debian 12: clang-format 14); .clang-format and .prettierrc.json hold
# the styles.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=write
[ "${1:-}" = "--check" ] && mode=check
command -v clang-format > /dev/null || {
  echo "format: clang-format not found (apt-get install clang-format)" >&2
  exit 1
}
mapfile -t js < <(git ls-files -- '*.ts' '*.mjs' '*.cjs' '*.js' \
  | grep -v -e '^test/fixtures/' -e '^weights/' -e '^bench/peers/')
mapfile -t cc < <(git ls-files -- '*.cpp' '*.h' '*.cu' '*.cuh' | grep -v -e '^test/fixtures/')
if [ $mode = write ]; then
  npx prettier --log-level warn --write "${js[@]}"
  clang-format -i "${cc[@]}"
else
  npx prettier --log-level warn --check "${js[@]}"
  clang-format --dry-run --Werror "${cc[@]}"
  node scripts/check-line-length.mjs
fi
