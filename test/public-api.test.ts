// The public surface (issue 19): what `carzero` exports, what only `carzero/internal` does, every
// exported error a CarzeroError with a name and a code, and scripts/check-public-api.mjs (run on
// this package, and on a made-up one to see it fail for the right reasons).
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as api from '../src/index.js';
import * as internal from '../src/internal.js';
import { packageRoot } from '../src/native.js';

const run = promisify(execFile);
const script = join(packageRoot, 'scripts', 'check-public-api.mjs');

test('internals are exported by carzero/internal only', (t) => {
  for (const name of ['native', 'runOpSync', 'OP_TABLE', 'NativeModel', 'packageRoot']) {
    t.false(name in api, `${name} is not in the root module`);
    t.true(name in internal, `${name} is in carzero/internal`);
  }
  for (const name of ['CARZero', 'Tensor', 'Device', 'ops', 'runOp', 'info', 'evaluate', 'rocSvg', 'Trainer', 'data'])
    t.true(name in api, name);
});

test('every exported error class is a CarzeroError with its own name and a code', (t) => {
  const errors = Object.entries(api).filter(([k, v]) => typeof v === 'function' && k.endsWith('Error'));
  const inData = Object.entries(api.data).filter(([k, v]) => typeof v === 'function' && k.endsWith('Error'));
  t.true(errors.length >= 12, `${errors.length} error classes`);
  for (const [name, E] of [...errors, ...inData]) {
    // (CarzeroError's second argument is the code itself; the subclasses take names and details)
    const args = E === api.CarzeroError ? ['message'] : ['message', 'file'];
    const e = new (E as new (...a: unknown[]) => Error)(...args);
    t.true(e instanceof api.CarzeroError, name);
    t.is(e.name, name);
    t.regex((e as api.CarzeroError).code, /^CZ_ERR_[A-Z_]+$/, name);
  }
});

test('scripts/check-public-api.mjs passes on this package', async (t) => {
  const { stdout } = await run(process.execPath, [script]);
  t.regex(stdout, /check-public-api: \d+ exports, all documented/);
});

test('scripts/check-public-api.mjs names undocumented exports and errors outside CarzeroError', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'carzero-api-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  for (const d of ['src', 'dist', 'docs']) mkdirSync(join(root, d));
  writeFileSync(
    join(root, 'src', 'index.ts'),
    [
      '// a comment: export { Commented } from "./x.js";',
      "export { CarzeroError, GoodError, BadError, helper as renamed } from './errors.js';",
      "export { type Shape, Thing } from './thing.js';",
      "export type { Hidden } from './thing.js';",
      "export * as ns from './ns.js';",
      'export const VERSION = 1;',
    ].join('\n'),
  );
  writeFileSync(
    join(root, 'dist', 'index.js'),
    [
      'export class CarzeroError extends Error {}',
      'export class GoodError extends CarzeroError {}',
      'export class BadError extends Error {}',
      'export const renamed = () => 1;',
      'export class Thing {}',
      'export const VERSION = 1;',
      'export const ns = { NsError: class NsError extends Error {} };',
    ].join('\n'),
  );
  writeFileSync(join(root, 'dist', 'package.json'), '{"type": "module"}');
  writeFileSync(join(root, 'README.md'), '# x\n\n`CarzeroError`, `GoodError` and BadError (not in code).\n');
  const docs = '```ts\nrenamed(); new Thing(); let s: Shape; ns; VERSION\n```\n';
  writeFileSync(join(root, 'docs', 'ZEROSHOT-API.md'), docs);
  const e = (await t.throwsAsync(run(process.execPath, [script, root]))) as { code?: number; stderr?: string };
  t.is(e.code, 1);
  t.regex(e.stderr ?? '', /2 exported name\(s\) of src\/index\.ts appear in no code span .*: BadError, Hidden$/m);
  t.regex(e.stderr ?? '', /error classes that do not extend CarzeroError: carzero\.BadError$/m);
  t.notRegex(e.stderr ?? '', /Commented/);
});
