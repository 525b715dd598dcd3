#!/usr/bin/env bash
# Release check on an old system: installs the packed tarball inside a Debian bullseye root
# (glibc 2.31, the glibc of Ubuntu 20.04) that has no compilers, with the network cut off
# (unshare -n), and runs `carzero info`, `carzero convert` + `carzero classify` on the tiny
# fixtures (the scores must equal the host's byte for byte) and `carzero demo --quick`.
#   scripts/oldroot-check.sh <carzero-x.y.z.tgz>
# The root is made with debootstrap --variant=minbase (about a minute; kept in build-oldroot/ or
# $CARZERO_OLDROOT_DIR and reused). The host's Node binary and npm are copied in; the npm cache the
# root installs from is filled by a host install of the same tarball, which also gives the host
# scores. Needs root (chroot, mount, unshare), debootstrap and the Debian mirror.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 1 ] || { echo "usage: $0 <carzero tarball>" >&2; exit 2; }
tarball=$(readlink -f "$1")
out=${CARZERO_OLDROOT_DIR:-$repo/build-oldroot}
rootfs=$out/bullseye
mkdir -p "$out"
. "$repo/scripts/debian-mirror.sh"
if [ ! -f "$rootfs/.carzero-root" ]; then
  rm -rf "$rootfs"
  echo "oldroot-check: debootstrap --variant=minbase bullseye ($debian_mirror)"
  debootstrap --variant=minbase bullseye "$rootfs" "$debian_mirror" > "$out/debootstrap.log" 2>&1 || {
    tail -n 20 "$out/debootstrap.log" >&2; exit 1; }
  touch "$rootfs/.carzero-root"
fi
glibc=$(ls "$rootfs"/lib/x86_64-linux-gnu/libc-*.so | sed 's/.*libc-\(.*\)\.so/\1/')
echo "oldroot-check: root $rootfs, glibc $glibc"
for t in gcc g++ cc c++ make cmake python3 nvcc; do
  if [ -e "$rootfs/usr/bin/$t" ] || [ -e "$rootfs/usr/local/bin/$t" ]; then
    echo "oldroot-check: $t in the root" >&2
    exit 1
  fi
done

# ---- the host side: an install of the same tarball (fills the npm cache), the host's scores
host=$out/host
rm -rf "$host" "$out/npm-cache"
mkdir -p "$host/app"
(cd "$host/app" && npm init -y >/dev/null \
  && npm install --no-audit --no-fund --cache "$out/npm-cache" "$tarball" >/dev/null)
tiny=$repo/test/fixtures/tiny
heads=$(node -e "const c=require('$tiny/config.json'); console.log(c.vision.heads, c.head.heads)")
set -- $heads
vit_heads=$1 head_heads=$2
images=(grey8_tall_quirk.png grey16_tall.png rgb_wide.png colour.jpg)
hostcz="$host/app/node_modules/.bin/carzero"
"$hostcz" convert --checkpoint "$tiny/carzero-tiny.ckpt" --text-model "$tiny/bert-tiny" \
  --vit-heads "$vit_heads" --head-heads "$head_heads" --out "$host/model" >/dev/null
(cd "$tiny/images" && "$hostcz" classify --model "$host/model" --prompts "$tiny/text/prompts.json" \
  --device cpu --format csv --quiet "${images[@]}") > "$out/host-scores.csv"

# ---- into the root: node, npm, the tarball, the cache, the fixtures
mkdir -p "$rootfs/usr/local/bin" "$rootfs/usr/local/lib/node_modules" "$rootfs/work"
cp "$(readlink -f "$(command -v node)")" "$rootfs/usr/local/bin/node"
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
rm -rf "$rootfs/usr/local/lib/node_modules/npm"
cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
ln -sfn ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -sfn ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
rm -rf "$rootfs/work"/*
cp "$tarball" "$rootfs/work/carzero.tgz"
cp -a "$out/npm-cache" "$rootfs/work/npm-cache"
mkdir -p "$rootfs/work/tiny/text"
cp -a "$tiny/carzero-tiny.ckpt" "$tiny/bert-tiny" "$tiny/images" "$rootfs/work/tiny/"
cp "$tiny/text/prompts.json" "$rootfs/work/tiny/text/"

mounted=0
cleanup() { if [ $mounted = 1 ]; then umount "$rootfs/proc" 2>/dev/null || true; fi; }
trap cleanup EXIT
mount -t proc proc "$rootfs/proc" && mounted=1
cat > "$rootfs/work/run.sh" <<EOF
set -eu
export HOME=/work PATH=/usr/local/bin:/usr/bin:/bin
cd /work && mkdir -p app && cd app && npm init -y >/dev/null
npm install --offline --no-audit --no-fund --cache /work/npm-cache /work/carzero.tgz
npx carzero info | tee /work/info.txt
# the prebuilt addon (no source build happened: there is no compiler) with its native codecs
test ! -d node_modules/carzero/build
grep -q '^image decoders: native' /work/info.txt
npx carzero convert --checkpoint /work/tiny/carzero-tiny.ckpt --text-model /work/tiny/bert-tiny \
--vit-heads $vit_heads --head-heads $head_heads --out /work/model >/dev/null
cd /work/tiny/images && /work/app/node_modules/.bin/carzero classify --model /work/model \
--prompts /work/tiny/text/prompts.json --device cpu --format csv --quiet ${images[*]} > /work/root-scores.csv
cd /work/app && npx carzero demo --quick --quiet --out /work/demo-out
test -s /work/demo-out/auroc.json && test -s /work/demo-out/roc.svg
EOF
echo "oldroot-check: in the root, no network: npm install (offline), info, convert, classify, demo --quick"
# env -i: nothing from the host environment (NODE_EXTRA_CA_CERTS and the like name host files)
unshare -n chroot "$rootfs" /usr/bin/env -i /bin/sh /work/run.sh
if ! cmp -s "$out/host-scores.csv" "$rootfs/work/root-scores.csv"; then
  echo "oldroot-check: the scores in the root differ from the host's" >&2
  diff "$out/host-scores.csv" "$rootfs/work/root-scores.csv" >&2 || true
  exit 1
fi
echo "oldroot-check: classify scores identical to the host's ($(($(wc -l < "$out/host-scores.csv") - 1)) images x" \
  "$(head -n 1 "$out/host-scores.csv" | tr ',' '\n' | tail -n +2 | wc -l) classes)"
echo "oldroot-check: passed (glibc $glibc)"
