#!/usr/bin/env bash
# Release check: build the prebuilt binary (prebuildify through the cmake-js shim), pack the
# tarball, install it into an empty project with compilers, make and cmake hidden from PATH, and
# run the package from there (`carzero info`, an import and a GEMM, `carzero demo --pretrained`
# within 60 s and with the macro AUROC recorded in weights/phantom-demo/demo.json, classify with the
# shipped model from another folder, `carzero demo --quick`). The binaries must pass
# scripts/glibc-check.sh (build with CARZERO_SYSROOT set). Exits non-zero on failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

npm run --silent prebuildify
ls -la prebuilds/linux-x64/
# What the shipped binaries need from the system (issue 18): at most GLIBC_2.31, only glibc's own
# libraries. A build without CARZERO_SYSROOT (scripts/make-sysroot.sh) fails here.
bash scripts/glibc-check.sh prebuilds/linux-x64/carzero.node prebuilds/linux-x64/libcarzero.so
npm run --silent build:ts
tarball=$(npm pack --silent | tail -n 1)
echo "pack-check: $tarball $(du -h "$tarball" | cut -f1)"

work=$(mktemp -d)
trap '/bin/rm -rf "$work"' EXIT
# A PATH with node, npm, npx and sh only: no g++, cc, make, cmake, python. (Plain utilities are
# called by absolute path below.)
mkdir -p "$work/bin"
for tool in node npm npx sh; do ln -s "$(command -v "$tool")" "$work/bin/$tool"; done
mkdir -p "$work/app"
cd "$work/app"
export PATH="$work/bin"
for tool in g++ gcc cc c++ make cmake python3; do
  if command -v "$tool" >/dev/null 2>&1; then echo "pack-check: $tool is still on PATH" >&2; exit 1; fi
done
npm init -y >/dev/null
npm install --prefer-offline --no-audit --no-fund "$root/$tarball"
npx carzero info > info.txt
/bin/cat info.txt
/bin/grep -Eq '^cuda: (unavailable \(.+\)|available)' info.txt
/bin/cat > smoke.mjs <<'JS'
import { Tensor, ops, info } from 'carzero';
const a = Tensor.from(new Float32Array([1, 2, 3, 4]), [2, 2]);
const c = Tensor.zeros([2, 2]);
await ops.gemm({ a, b: a, c });
const got = Array.from(c.toArray());
if (got.join() !== '7,10,15,22') throw new Error(`gemm gave ${got}`);
console.log(`pack-check: import + gemm ok (carzero ${info().version})`);
JS
node smoke.mjs
# The main job right after install: the shipped phantom-demo on the held-out phantoms (issue 16:
# at most 60 s, the recorded macro AUROC to every printed digit).
t0=$(/bin/date +%s)
npx carzero demo --pretrained --quiet --out pretrained-out > pretrained.txt
t1=$(/bin/date +%s)
/bin/cat pretrained.txt
echo "pack-check: demo --pretrained took $((t1 - t0)) s"
if [ $((t1 - t0)) -gt 60 ]; then echo "pack-check: demo --pretrained took more than 60 s" >&2; exit 1; fi
demo_json=./node_modules/carzero/weights/phantom-demo/demo.json
recorded=$(node -e "const r=require('$demo_json').results.macro_auroc; console.log(r.toFixed(4))")
/bin/grep -Eq "^macro +${recorded} " pretrained.txt || {
  echo "pack-check: the table's macro AUROC is not the recorded ${recorded}" >&2
  exit 1
}
/bin/grep -q "^macro AUROC ${recorded} (recorded when the model was trained: ${recorded})" pretrained.txt || {
  echo "pack-check: macro AUROC differs from the recorded ${recorded}" >&2
  exit 1
}
for f in auroc.json roc.svg pr.svg summary.json scores.csv; do
  test -s "pretrained-out/$f" || { echo "pack-check: demo --pretrained wrote no $f" >&2; exit 1; }
done
/bin/ls pretrained-out/overlays/*.png > /dev/null
npx carzero models
npx carzero models verify phantom-demo
# classify with the shipped model and its own prompts from another folder
imgs=("$PWD"/pretrained-out/data-test/images/test/*.png)
(cd /tmp && "$work/app/node_modules/.bin/carzero" classify --model phantom-demo --format csv --quiet "${imgs[@]:0:2}") \
  > classify.csv
/bin/cat classify.csv
test "$(/usr/bin/wc -l < classify.csv)" -eq 3
# The demo from the installed package (quick mode: ~1 minute): data, training, zero-shot, pictures.
npx carzero demo --quick --quiet --out demo-out > demo.txt
/bin/cat demo.txt
for f in auroc.json roc.svg pr.svg summary.json; do
  test -s "demo-out/$f" || { echo "pack-check: demo wrote no $f" >&2; exit 1; }
done
/bin/ls demo-out/overlays/*.png > /dev/null
test -f node_modules/carzero/prebuilds/linux-x64/libcarzero.so
test ! -d node_modules/carzero/build
echo "pack-check: passed"
# The tarball stays for scripts/oldroot-check.sh (PACK_CHECK_KEEP=1, as .ci/run sets it).
[ "${PACK_CHECK_KEEP:-0}" = 1 ] || /bin/rm -f "$root/$tarball"
