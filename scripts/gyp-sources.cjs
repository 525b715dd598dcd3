// Lists the native sources for binding.gyp (which cannot glob): `node scripts/gyp-sources.cjs
// generic|avx2|avx512|napi` prints one path per line. Mirrors the globs in CMakeLists.txt.
const fs = require('fs');
const path = require('path');
const root = path.join(__dirname, '..');
const list = (dir) =>
  fs
    .readdirSync(path.join(root, dir))
    .filter((f) => f.endsWith('.cpp'))
    .map((f) => `${dir}/${f}`);
const kind = process.argv[2];
const isa = (f) => /_avx(2|512)\.cpp$/.test(f);
let files;
if (kind === 'napi') files = list('native/src/napi');
else {
  // native/src/image: without CZ_HAVE_* codec macros (binding.gyp links no codec libraries) its
  // decoders report 'unsupported' and the JavaScript decoders take over; preprocessing is native.
  const all = [
    ...list('native/src/core'),
    ...list('native/src/cpu'),
    ...list('native/src/model'),
    ...list('native/src/image'),
    ...list('native/src'),
  ];
  if (kind === 'generic') files = all.filter((f) => !isa(f));
  else if (kind === 'avx2') files = all.filter((f) => f.endsWith('_avx2.cpp'));
  else if (kind === 'avx512') files = all.filter((f) => f.endsWith('_avx512.cpp'));
  else throw new Error(`unknown kind ${kind}`);
}
process.stdout.write(files.join('\n') + '\n');
