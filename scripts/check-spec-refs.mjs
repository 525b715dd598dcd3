#!/usr/bin/env node
// Fails when a code comment cites a section of the model's specification that docs/SPEC.md does not
// have (issue 19): every "spec N" or "spec N.M" in src/, native/, tools/, scripts/ and test/ must
// name a "## N." or "### N.M" heading there.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const spec = readFileSync(join(root, 'docs', 'SPEC.md'), 'utf8');
const sections = new Set([...spec.matchAll(/^#{2,3} (\d+(?:\.\d+)?)\.? /gm)].map((m) => m[1]));
const exts = /\.(ts|mts|mjs|cjs|js|cpp|h|cu|cuh|py|sh)$/;
const bad = [];
let refs = 0;
const walk = (d) => {
  for (const f of readdirSync(d)) {
    if (f === 'node_modules' || f === 'fixtures') continue;
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p);
    else if (exts.test(f)) {
      const lines = readFileSync(p, 'utf8').split('\n');
      lines.forEach((line, i) => {
        for (const m of line.matchAll(/\b[Ss]pec (\d+(?:\.\d+)?)\b/g)) {
          refs++;
          if (!sections.has(m[1])) bad.push(`${relative(root, p)}:${i + 1}: spec ${m[1]}`);
        }
      });
    }
  }
};
for (const d of ['src', 'native', 'tools', 'scripts', 'test']) walk(join(root, d));
if (bad.length) {
  for (const b of bad) console.error(`check-spec-refs: no section in docs/SPEC.md for ${b}`);
  process.exit(1);
}
console.log(`check-spec-refs: ${refs} references, all to sections of docs/SPEC.md (${[...sections].join(', ')})`);
