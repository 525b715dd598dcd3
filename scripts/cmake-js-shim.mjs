#!/usr/bin/env node
// A stand-in for node-gyp that prebuildify calls (`prebuildify --node-gyp scripts/cmake-js-shim.mjs`):
// it ignores node-gyp's arguments (rebuild --target=... --devdir=... --release) and runs the CMake
// build through cmake-js instead, which leaves build/Release/carzero.node (plus libcarzero.so,
// which prebuildify copies next to it) where prebuildify looks for them.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const extra = process.env.CARZERO_CUDA ? [`--CDCARZERO_CUDA=${process.env.CARZERO_CUDA}`] : [];
const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build', ...extra], { stdio: 'inherit' });
process.exit(r.status ?? 1);
