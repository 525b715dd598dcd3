#!/usr/bin/env bash
# gpu-stage.sh: run HERE (the dev machine) before a GPU session. Builds what the GPU machine needs
# and cannot make itself (it has no Node, no network) into the ignored folder .gpu/:
#   .gpu/node.xz          this machine's Node binary, stripped and xz-compressed (unpacked to /tmp there)
#   .gpu/node_modules/    the package's production dependencies only (npm ci --omit=dev)
#   .gpu/bin.tar.xz       dist/ (tsc), build/Release/carzero.node (the CUDA-enabled addon, with the
#                         experimental kernels of native/dev: CARZERO_DEV_KERNELS=ON) and
#                         build/{bench_model,test_ops,bench_cuda}; .gpu/bin.sha256 checks them
#   .gpu/feed/            two PNGs for the image-feed step (2048 x 2500 and 256 x 256, 8-bit)
#   .gpu/MANIFEST.json    git revision, versions, sizes and checksums
# then checks that the whole transfer (the working tree + .gpu) fits the 64 MiB limit and prints the
# device `run` call to use (scripts/gpu-model-check.sh there).
#
#   bash scripts/gpu-stage.sh [--no-build] [--rehearse] [--rehearse-ref DIR]
#
#   --no-build       do not run tsc / cmake --build first (use dist/ and build/ as they are)
#   --rehearse       afterwards, run the check here on the CPU exactly as the GPU machine would:
#                    a copy of the working tree + .gpu in /tmp/carzero-gpu-rehearsal, a PATH
#                    without any system node/npm/npx, CARZERO_GPU_CHECK_DEVICE=cpu, small batches,
#                    the reference generated afresh (about 20 s here) unless --rehearse-ref DIR
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=1
REHEARSE=0
REH_REF=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    --rehearse) REHEARSE=1 ;;
    --rehearse-ref) REHEARSE=1; REH_REF=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "gpu-stage: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
say() { echo "[gpu-stage] $*"; }
LIMIT=$((64 * 1024 * 1024))
BINS=(build/Release/carzero.node build/bench_model build/test_ops build/bench_cuda)

# .gpu/ must be ignored (it travels only when named in carry).
EXCL=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCL")"
grep -qxF '/.gpu/' "$EXCL" 2>/dev/null || { echo '/.gpu/' >> "$EXCL"; say "added /.gpu/ to $EXCL"; }
mkdir -p .gpu
git check-ignore -q .gpu/x || { echo "gpu-stage: .gpu/ is not ignored" >&2; exit 1; }

# 1. current dist/ and binaries
if [ $BUILD = 1 ]; then
  say "tsc -p tsconfig.json"
  npx tsc -p tsconfig.json
  # the kit times and checks the experimental attention kernels too (native/dev/cuda)
  if ! grep -qx 'CARZERO_DEV_KERNELS:BOOL=ON' build/CMakeCache.txt; then
    say "cmake -DCARZERO_DEV_KERNELS=ON build (the experiments of native/dev/cuda)"
    cmake -DCARZERO_DEV_KERNELS=ON build > /dev/null
  fi
  say "cmake --build build (addon, bench_model, test_ops, bench_cuda; a no-op when current)"
  cmake --build build --target carzero_addon bench_model test_ops bench_cuda | tail -3
fi
for f in dist/index.js dist/cli/main.js "${BINS[@]}"; do
  [ -e "$f" ] || { echo "gpu-stage: missing $f (npm run build)" >&2; exit 1; }
done
if ! size -A build/Release/carzero.node | grep -q nv_fatbin; then
  echo "gpu-stage: build/Release/carzero.node has no CUDA code (.nv_fatbin):" \
    "configure build/ with nvcc found (CARZERO_CUDA=ON)" >&2
  exit 1
fi
CUOBJ=$(command -v cuobjdump || ls /usr/local/cuda/bin/cuobjdump 2>/dev/null || true)
ARCHS=""
if [ -n "$CUOBJ" ]; then
  ARCHS=$("$CUOBJ" --list-elf build/Release/carzero.node 2>/dev/null | grep -o 'sm_[0-9]*a\?' \
    | sort -u | tr '\n' ' ' || true)
else  # no cuobjdump: the fatbin's embedded target names
  ARCHS=$(grep -ao 'sm_[5-9][0-9]a\?' build/Release/carzero.node | sort -u | tr '\n' ' ' || true)
fi
say "addon CUDA code for: ${ARCHS:-?}"
if [ -n "$ARCHS" ] && [[ "$ARCHS" != *sm_90* ]]; then
  echo "gpu-stage: the addon has no sm_90 code (H100/H200)" >&2
  exit 1
fi
GLIBC_NEED=$(objdump -T build/Release/carzero.node build/bench_model 2>/dev/null | grep -o 'GLIBC_[0-9.]*' \
  | sort -uV | tail -1)
say "binaries need up to $GLIBC_NEED (the GPU image: Ubuntu 24.04, glibc 2.39)"

# 2. node, without its symbol table and debug info (Debian's binary carries both: 2 MiB less to
# carry once compressed; the dynamic symbols that addons link against stay)
NODE=$(command -v node)
NODE_SHA=$(sha256sum "$NODE" | cut -c1-16)-stripped
if [ "$(cat .gpu/node.sha 2>/dev/null || true)" != "$NODE_SHA" ] || [ ! -f .gpu/node.xz ]; then
  say "strip --strip-all $NODE ($(node --version)) | xz -> .gpu/node.xz"
  NODE_TMP=$(mktemp /tmp/carzero-gpu-node.XXXXXX)
  cp "$NODE" "$NODE_TMP"
  chmod 755 "$NODE_TMP"
  strip --strip-all "$NODE_TMP"
  if [ "$("$NODE_TMP" --version)" != "$(node --version)" ]; then
    echo "gpu-stage: the stripped node does not run" >&2
    exit 1
  fi
  xz -T2 -6 -c "$NODE_TMP" > .gpu/node.xz.tmp && mv .gpu/node.xz.tmp .gpu/node.xz
  rm -f "$NODE_TMP"
  echo "$NODE_SHA" > .gpu/node.sha
else
  say ".gpu/node.xz is current ($(node --version))"
fi

# 3. production node_modules (from the lockfile; no install scripts: the addon comes from bin.tar.xz)
DEPS_SHA=$(cat package.json package-lock.json | sha256sum | cut -c1-16)
if [ "$(cat .gpu/node_modules/.stage-stamp 2>/dev/null || true)" != "$DEPS_SHA" ]; then
  NPM_STAGE=$(mktemp -d /tmp/carzero-gpu-npm.XXXXXX)
  cp package.json package-lock.json "$NPM_STAGE/"
  say "npm ci --omit=dev --ignore-scripts in $NPM_STAGE"
  (cd "$NPM_STAGE" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
  rm -rf .gpu/node_modules
  mv "$NPM_STAGE/node_modules" .gpu/node_modules
  rm -rf "$NPM_STAGE"
  echo "$DEPS_SHA" > .gpu/node_modules/.stage-stamp
else
  say ".gpu/node_modules is current"
fi
say "production dependencies: $(ls .gpu/node_modules | grep -v '^\.' | tr '\n' ' ')"

# 4. compiled package files
say "tar dist/ + ${BINS[*]} | xz -> .gpu/bin.tar.xz"
# -9: the four binaries carry the same CUDA fat binary (~35 MB each), and -9's 64 MiB window finds
# the copies (14 MiB at -6, 5 MiB at -9; unpacking needs about 65 MiB of memory)
tar -cf - dist "${BINS[@]}" | xz -T2 -9 > .gpu/bin.tar.xz.tmp
mv .gpu/bin.tar.xz.tmp .gpu/bin.tar.xz
sha256sum "${BINS[@]}" dist/index.js dist/cli/main.js dist/model/carzero.js > .gpu/bin.sha256

# 4b. the image feed's test files (issue 14's GPU lines; step `feed` of gpu-model-check.sh): the
# 2048 x 2500 and 256 x 256 8-bit PNG stand-ins of `npm run bench -- decode` (made by its cv2 peer
# when missing; the GPU machine has no OpenCV to make them)
FEED_SRC=bench/out/decode-files
if [ ! -f "$FEED_SRC/png8-2048x2500.png" ] || [ ! -f "$FEED_SRC/png8-256x256.png" ]; then
  say "/usr/bin/python3 bench/peers/cv2_decode.py make $FEED_SRC"
  /usr/bin/python3 bench/peers/cv2_decode.py make "$FEED_SRC"
fi
mkdir -p .gpu/feed
cp "$FEED_SRC/png8-2048x2500.png" "$FEED_SRC/png8-256x256.png" .gpu/feed/
# The same files' one-thread times here, ours and cv2's (the last `npm run bench -- decode`), for
# feed-bench.mjs's estimate of cv2 on a machine without OpenCV.
rm -f .gpu/feed/here.json
if [ -f bench/out/decode.json ]; then
  node -e '
    const fs = require("node:fs");
    const d = JSON.parse(fs.readFileSync("bench/out/decode.json", "utf8"));
    const rows = d.decode.filter((r) => r.file.startsWith("png8-"))
      .map((r) => ({ file: r.file, native_ms: r.native_ms, cv2_ms: r.cv2_ms }));
    const when = fs.statSync("bench/out/decode.json").mtime.toISOString();
    fs.writeFileSync(".gpu/feed/here.json", JSON.stringify({ measured: when, opencv: d.opencv, rows }) + "\n");'
else
  say "no bench/out/decode.json (npm run bench -- decode): the GPU run gets no cv2 estimate"
fi
say ".gpu/feed: $(ls .gpu/feed | tr '\n' ' ')"

# 5. manifest
node - "$NODE" "${ARCHS:-}" "$GLIBC_NEED" <<'JS'
const fs = require('node:fs');
const cp = require('node:child_process');
const [node, archs, glibc] = process.argv.slice(2);
const sh = (c) => { try { return cp.execSync(c, { encoding: 'utf8' }).trim(); } catch { return null; } };
const size = (f) => fs.statSync(f).size;
const m = {
  staged: new Date().toISOString(),
  git: sh('git rev-parse HEAD'),
  git_dirty_files: (sh('git status --porcelain') ?? '').split('\n').filter(Boolean).length,
  node: process.version, node_binary: node, addon_cuda_archs: archs.trim(), glibc_needed: glibc,
  files: Object.fromEntries(['.gpu/node.xz', '.gpu/bin.tar.xz'].map((f) => [f, size(f)])),
  binaries: Object.fromEntries(fs.readFileSync('.gpu/bin.sha256', 'utf8').trim().split('\n').map((l) => {
    const [h, f] = l.split(/\s+/);
    return [f, { sha256: h.slice(0, 16), bytes: size(f) }];
  })),
};
fs.writeFileSync('.gpu/MANIFEST.json', JSON.stringify(m, null, 1) + '\n');
JS

# 6. sizes: what travels = tracked + untracked-not-ignored files (+ shared/ in the checkout) + carry
TREE=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
SHARED=0
[ -d shared ] && SHARED=$(du -sb shared | cut -f1)
GPU=$(du -sb .gpu | cut -f1)
TOTAL=$((TREE + SHARED + GPU))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
say "sizes: working tree $(mib "$TREE")$([ "$SHARED" -gt 0 ] && echo ", shared/ $(mib "$SHARED")")," \
  ".gpu $(mib "$GPU") (node.xz $(mib "$(stat -c %s .gpu/node.xz)")," \
  "bin.tar.xz $(mib "$(stat -c %s .gpu/bin.tar.xz)"), node_modules $(mib "$(du -sb .gpu/node_modules | cut -f1)"))"
say "TOTAL to transfer: $(mib "$TOTAL") of the 64 MiB limit"
if [ "$TOTAL" -ge "$LIMIT" ]; then
  echo "gpu-stage: OVER THE 64 MiB LIMIT:" \
    "look for large untracked files (git ls-files -co --exclude-standard)" >&2
  exit 1
fi
cat <<EOF
[gpu-stage] GPU session: one device call (kind nvidia-h100-x1), about 6-8 minutes of device time:
    run(carry=[".gpu"], timeout_s=600,
        command="bash scripts/gpu-model-check.sh")
  Results come back in \$OUT: gpu_model_report.json (verdicts + every step's JSON), check.log,
  logs.tar.gz. Exit 1 = a parity check failed, 2 = setup failed. For the op-level checks with
  compute-sanitizer, bench_cuda and the SDPA bench as well, a second call (or set
  CARZERO_GPU_CHECK_OPS=full in the first, with a larger CARZERO_GPU_CHECK_BUDGET_S):
    run(carry=[".gpu"], timeout_s=480,
        command="CARZERO_GPU_CHECK_OPS=full CARZERO_GPU_CHECK_SKIP='tiny ref parity bench_native bench_node \
bench_torch' bash scripts/gpu-model-check.sh")
EOF

# 7. rehearsal: the GPU machine's view, on this CPU
if [ $REHEARSE = 1 ]; then
  R=/tmp/carzero-gpu-rehearsal
  say "rehearsal in $R (copy of the working tree + .gpu; PATH without node)"
  rm -rf "$R/repo" "$R/out" "$R/work" "$R/bin"
  mkdir -p "$R/repo" "$R/out" "$R/bin"
  git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -C "$R/repo" -xf -
  cp -a .gpu "$R/repo/.gpu"
  # A PATH of every command here except node and its tools.
  for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
    [ -d "$d" ] || continue
    for f in "$d"/*; do
      n=$(basename "$f")
      case "$n" in node|nodejs|npm|npx|corepack|yarn|pnpm|tsc|tsx) continue ;; esac
      [ -x "$f" ] && [ ! -e "$R/bin/$n" ] && ln -s "$f" "$R/bin/$n"
    done
  done
  if [ -z "$REH_REF" ]; then REH_REF=$R/ref; rm -rf "$REH_REF"; fi
  set +e
  env -i HOME="$HOME" PATH="$R/bin" OUT="$R/out" CARZERO_GPU_CHECK_DEVICE=cpu CARZERO_GPU_REF="$REH_REF" \
    CARZERO_GPU_CHECK_WORK="$R/work" ${CARZERO_GPU_CHECK_SKIP:+CARZERO_GPU_CHECK_SKIP="$CARZERO_GPU_CHECK_SKIP"} \
    bash -c 'command -v node && { echo "rehearsal: a system node is still on PATH" >&2; exit 9; }
             bash "$0/scripts/gpu-model-check.sh"' "$R/repo"
  rc=$?
  set -e
  say "rehearsal exit status $rc; \$OUT holds:" \
    "$(cd "$R/out" && ls -la | awk 'NR>1 && $1 !~ /^d/ {printf "%s (%d B) ", $9, $5}')"
  n=$(find "$R/out" -type f | wc -l)
  big=$(find "$R/out" -type f -size +16M | wc -l)
  [ "$n" -le 8 ] && [ "$big" -eq 0 ] || {
    echo "gpu-stage: \$OUT would not come back whole ($n files, $big over 16 MiB)" >&2
    exit 1
  }
  exit $rc
fi
