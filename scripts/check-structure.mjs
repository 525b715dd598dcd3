// check-structure.mjs: structural rules of the code base (issue 19), checked in CI:
//   - native/src/core/ never includes ops.h (core sits below the op layer; core/exec.h has what it needs);
//   - the environment is read in one place: getenv only in native/src/core/settings.cpp, process.env
//     only in src/settings.ts (other TypeScript takes it from there, or as a parameter);
//   - no positional parameter indices (ix[...]) or numbered op arguments (c.f32(2), c.p[3]) in native/src.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const files = execFileSync('git', ['ls-files'], { encoding: 'utf8' }).split('\n').filter(Boolean);
const problems = [];
const scan = (filter, re, why) => {
  for (const f of files.filter(filter)) {
    readFileSync(f, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (re.test(line)) problems.push(`${f}:${i + 1}: ${why}: ${line.trim()}`);
      });
  }
};
const native = (f) => /^native\/src\/.*\.(cpp|h|cu|cuh)$/.test(f);
scan((f) => /^native\/src\/core\//.test(f), /#include\s+"(\.\.\/)?ops\.h"/, 'core includes ops.h');
scan((f) => native(f) && f !== 'native/src/core/settings.cpp', /\bgetenv\s*\(/, 'getenv outside core/settings.cpp');
const tsLibrary = (f) => /^src\/.*\.ts$/.test(f) && f !== 'src/settings.ts';
scan(tsLibrary, /process\.env\b/, 'process.env outside src/settings.ts');
scan(native, /\bix\[/, 'positional parameter index');
scan((f) => f === 'native/src/opsapi.cpp', /\bc\.(f32|req|opt|i32|u8|ptr|has)\(\d|\bc\.p\[\d/, 'numbered op argument');
if (problems.length) {
  console.error(`check-structure: ${problems.length} problems:\n${problems.join('\n')}`);
  process.exit(1);
}
console.log('check-structure: core below ops.h, environment read in one place, parameters and op arguments named');
