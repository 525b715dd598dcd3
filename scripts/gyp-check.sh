#!/usr/bin/env bash
# Fallback-build check: in a scratch copy of the checkout, build the CPU addon with node-gyp from
# binding.gyp (as `npm install` does on machines without CMake) and run the binding tests on it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"
git ls-files -z | xargs -0 -I{} cp --parents {} "$work/"
ln -s "$root/node_modules" "$work/node_modules"
cd "$work"
npm_gyp_bin=$(dirname "$(command -v npm)")/../lib/node_modules/npm/bin/node-gyp-bin
[ -d "$npm_gyp_bin" ] || npm_gyp_bin=/usr/lib/node_modules/npm/bin/node-gyp-bin
env -u npm_config_nodedir CARZERO_BUILD=node-gyp PATH="$npm_gyp_bin:$PATH" node scripts/install.mjs
test -f build/Release/carzero.node
test ! -f build/Release/libcarzero.so   # node-gyp builds the addon only
npx ava test/ops.test.ts test/tensor.test.ts
echo "gyp-check: passed"
