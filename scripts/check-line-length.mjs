// check-line-length.mjs: no line of a tracked source file (TypeScript, JavaScript, C++, CUDA,
// shell, Python, CMake) is longer than 120 characters. Run by `bash scripts/format.sh --check` (CI).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const LIMIT = 120;
const SOURCE = /\.(ts|mjs|cjs|js|cpp|h|cu|cuh|sh|py|cmake)$|(^|\/)CMakeLists\.txt$|^\.ci\/run$/;
const SKIP = /^(test\/fixtures|weights|bench\/peers|bench\/gpu\/results)\//;
const files = execFileSync('git', ['ls-files'], { encoding: 'utf8' })
  .split('\n')
  .filter((f) => f && SOURCE.test(f) && !SKIP.test(f));
const long = [];
for (const f of files) {
  readFileSync(f, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if ([...line].length > LIMIT) long.push(`${f}:${i + 1}: ${[...line].length} characters`);
    });
}
if (long.length) {
  console.error(`check-line-length: ${long.length} lines over ${LIMIT} characters:\n${long.join('\n')}`);
  process.exit(1);
}
console.log(`check-line-length: ${files.length} files, no line over ${LIMIT} characters`);
