#!/usr/bin/env node
// Checks the public API (issue 19): every name src/index.ts exports is documented, in code (a
// `backtick` span or a fenced block), in README.md or docs/ZEROSHOT-API.md; and every exported
// class whose name ends in Error, in the root module and its namespaces (and in carzero/internal),
// extends CarzeroError. The second check imports the built dist/index.js (npm run build:ts first).
// Exit status 1 lists what is wrong. Plain Node, no dependencies.
// usage: node scripts/check-public-api.mjs [package root (default: this script's)]
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
const DOCS = ['README.md', 'docs/ZEROSHOT-API.md'];
const problems = [];

/** The names a module's source exports: { name, type } (type: a type-only export). */
function exportedNames(source) {
  const text = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const names = [];
  for (const m of text.matchAll(/^\s*export\s+(type\s+)?\{([^}]*)\}/gm)) {
    for (let entry of m[2].split(',')) {
      entry = entry.trim();
      if (!entry) continue;
      let type = Boolean(m[1]);
      if (/^type\s/.test(entry)) {
        type = true;
        entry = entry.replace(/^type\s+/, '');
      }
      const as = entry.split(/\s+as\s+/);
      names.push({ name: as[as.length - 1].trim(), type });
    }
  }
  for (const m of text.matchAll(/^\s*export\s+\*\s+as\s+([\w$]+)\s+from/gm)) names.push({ name: m[1], type: false });
  for (const m of text.matchAll(/^\s*export\s+\*\s+from\s+'([^']+)'/gm))
    problems.push(`src/index.ts: 'export * from '${m[1]}'' hides the names it exports: list them`);
  const kinds = 'function\\*?|class|const|let|var|enum|interface|type';
  const decl = new RegExp(`^\\s*export\\s+(?:declare\\s+)?(?:default\\s+)?(?:async\\s+)?(${kinds})\\s+([\\w$]+)`, 'gm');
  for (const m of text.matchAll(decl)) names.push({ name: m[2], type: m[1] === 'interface' || m[1] === 'type' });
  return names;
}

/** The code in a Markdown text: fenced blocks and `inline` spans, joined. */
function codeOf(md) {
  const parts = [];
  const rest = md.replace(/^(```|~~~)[^\n]*\n([\s\S]*?)^\1[ \t]*$/gm, (_, _f, body) => {
    parts.push(body);
    return '';
  });
  for (const m of rest.matchAll(/(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g)) parts.push(m[2]);
  return parts.join('\n');
}

const index = readFileSync(join(root, 'src', 'index.ts'), 'utf8');
const names = exportedNames(index);
if (names.length === 0) problems.push('src/index.ts: no exports found');
const code = DOCS.map((f) => codeOf(readFileSync(join(root, f), 'utf8'))).join('\n');
const escape = (s) => s.replace(/[$]/g, '\\$&');
const undocumented = names.filter(({ name }) => !new RegExp(`(?<![\\w$])${escape(name)}(?![\\w$])`).test(code));
if (undocumented.length)
  problems.push(
    `${undocumented.length} exported name(s) of src/index.ts appear in no code span of ${DOCS.join(' or ')}: ` +
      undocumented.map((n) => n.name).join(', '),
  );

// Run time: the built modules.
const dist = join(root, 'dist', 'index.js');
if (!existsSync(dist)) {
  problems.push('dist/index.js is missing: run `npm run build:ts` first');
} else {
  const api = await import(pathToFileURL(dist).href);
  const { CarzeroError } = api;
  if (typeof CarzeroError !== 'function') problems.push('dist/index.js exports no CarzeroError');
  const missing = names.filter((n) => !n.type && !(n.name in api)).map((n) => n.name);
  if (missing.length)
    problems.push(`exported by src/index.ts but not by dist/index.js (stale build?): ${missing.join(', ')}`);
  const modules = [['carzero', api]];
  const internal = join(root, 'dist', 'internal.js');
  if (existsSync(internal)) modules.push(['carzero/internal', await import(pathToFileURL(internal).href)]);
  const bad = [];
  const undisposable = [];
  // A resource: a class whose instances have close() or dispose(). It must have both dispose() and
  // [Symbol.dispose] or [Symbol.asyncDispose], so `using` / `await using` work on every one.
  const resourceProblem = (value) => {
    const proto = value.prototype;
    if (!proto || !(typeof proto.close === 'function' || typeof proto.dispose === 'function')) return false;
    const symbol = typeof proto[Symbol.dispose] === 'function' || typeof proto[Symbol.asyncDispose] === 'function';
    return typeof proto.dispose !== 'function' || !symbol;
  };
  const visit = (where, obj, depth) => {
    for (const [key, value] of Object.entries(obj)) {
      if (typeof value === 'function' && resourceProblem(value)) undisposable.push(`${where}.${key}`);
      if (typeof value === 'function' && /Error$/.test(key) && typeof CarzeroError === 'function') {
        if (value !== CarzeroError && !(value.prototype instanceof CarzeroError)) bad.push(`${where}.${key}`);
      } else if (depth === 0 && value && typeof value === 'object' && value[Symbol.toStringTag] === 'Module') {
        visit(`${where}.${key}`, value, depth + 1);
      }
    }
  };
  for (const [where, mod] of modules) visit(where, mod, 0);
  if (bad.length) problems.push(`error classes that do not extend CarzeroError: ${bad.join(', ')}`);
  if (undisposable.length)
    problems.push(`resources without dispose() and [Symbol.dispose]/[Symbol.asyncDispose]: ${undisposable.join(', ')}`);
}

if (problems.length) {
  for (const p of problems) process.stderr.write(`check-public-api: ${p}\n`);
  process.exit(1);
}
const ok =
  `${names.length} exports, all documented; every exported *Error extends CarzeroError; ` +
  'every resource has dispose() and a Symbol.dispose/asyncDispose';
process.stdout.write(`check-public-api: ${ok}\n`);
