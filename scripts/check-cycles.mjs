#!/usr/bin/env node
// Fails when src/ has an import cycle (issue 19): every static import and re-export, type-only ones
// included, and every dynamic import('./...') with a literal path, between files of src/. Prints
// each cycle (a strongly connected component of the import graph) with its files.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const src = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src');
const files = [];
const walk = (d) => {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.ts')) files.push(p);
  }
};
walk(src);
const edges = new Map();
for (const f of files) {
  const text = readFileSync(f, 'utf8');
  const deps = new Set();
  const patterns = [/^\s*(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'/gm, /import\(\s*'(\.[^']+)'\s*\)/g];
  for (const re of patterns)
    for (const m of text.matchAll(re)) {
      const target = resolve(dirname(f), m[1].replace(/\.js$/, '.ts'));
      if (target !== f) deps.add(target);
    }
  edges.set(
    f,
    [...deps].filter((d) => d.startsWith(src)),
  );
}
// Tarjan's strongly connected components, iteratively.
let counter = 0;
const index = new Map();
const low = new Map();
const stack = [];
const onStack = new Set();
const cycles = [];
for (const start of edges.keys()) {
  if (index.has(start)) continue;
  const work = [[start, 0]];
  while (work.length) {
    const frame = work[work.length - 1];
    const [v, i] = frame;
    if (i === 0) {
      index.set(v, counter);
      low.set(v, counter++);
      stack.push(v);
      onStack.add(v);
    }
    const out = edges.get(v) ?? [];
    if (i < out.length) {
      frame[1]++;
      const w = out[i];
      if (!edges.has(w)) continue;
      if (!index.has(w)) work.push([w, 0]);
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
      continue;
    }
    work.pop();
    if (work.length) {
      const parent = work[work.length - 1][0];
      low.set(parent, Math.min(low.get(parent), low.get(v)));
    }
    if (low.get(v) === index.get(v)) {
      const comp = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        comp.push(relative(src, w));
      } while (w !== v);
      if (comp.length > 1) cycles.push(comp.sort());
    }
  }
}
if (cycles.length) {
  for (const c of cycles) console.error(`check-cycles: import cycle among ${c.length} files of src/: ${c.join(', ')}`);
  process.exit(1);
}
console.log(`check-cycles: no import cycles among ${files.length} files of src/`);
