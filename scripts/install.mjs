#!/usr/bin/env node
// npm install hook. Users of the published package get the prebuilt binary in prebuilds/ and
// compile nothing. In a git checkout (or on a platform without a prebuild) it builds the native
// code: with CMake via cmake-js when both are present (the full build: addon, libcarzero.so,
// native tests and benchmarks, CUDA when nvcc is found), else with node-gyp from binding.gyp
// (CPU addon only). No step downloads anything beyond the npm registry.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const log = (m) => process.stderr.write(`carzero: ${m}\n`);

function prebuildLoads() {
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (!existsSync(dir)) return false;
  const file = readdirSync(dir).find((f) => f.endsWith('.node'));
  if (!file) return false;
  try {
    require(join(dir, file));
    log(`using the prebuilt binary prebuilds/${process.platform}-${process.arch}/${file}`);
    return true;
  } catch (e) {
    log(`the prebuilt binary does not load here (${e.message}); building from source`);
    return false;
  }
}

function onPath(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
  return r.status === 0;
}

function run(cmd, args) {
  log(`${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

if (process.env.CARZERO_SKIP_BUILD === '1') {
  log('CARZERO_SKIP_BUILD=1: not building the native addon');
  process.exit(0);
}
if (prebuildLoads()) process.exit(0);

let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js');
} catch {
  cmakeJs = undefined;
}
// CARZERO_BUILD=node-gyp forces the fallback (to test it on a machine that has CMake).
if (
  process.env.CARZERO_BUILD !== 'node-gyp' &&
  cmakeJs &&
  onPath('cmake') &&
  existsSync(join(root, 'CMakeLists.txt'))
) {
  const extra = process.env.CARZERO_CUDA ? [`--CDCARZERO_CUDA=${process.env.CARZERO_CUDA}`] : [];
  process.exit(run(process.execPath, [cmakeJs, 'compile', '--out', 'build', ...extra]));
}
log('building the CPU addon with node-gyp (binding.gyp): no CMake or cmake-js, or CARZERO_BUILD=node-gyp');
// node-gyp downloads Node's headers unless told where they are; Node installs that ship them
// (Debian's /usr/include/node, the official tarballs' include/node) need no network.
const gypArgs = ['rebuild'];
const prefix = dirname(dirname(process.execPath));
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h')))
  gypArgs.push(`--nodedir=${prefix}`);
process.exit(
  run(onPath('node-gyp') ? 'node-gyp' : 'npx', onPath('node-gyp') ? gypArgs : ['--yes', 'node-gyp', ...gypArgs]),
);
