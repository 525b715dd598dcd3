// The `carzero` command line as a user runs it (the compiled dist/cli/main.js, the package bin).
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from '../src/native.js';

const run = promisify(execFile);
const bin = join(packageRoot, 'dist', 'cli', 'main.js');

test.before((t) => {
  if (!existsSync(bin)) throw new Error(`${bin} missing: run \`npm run build:ts\` first`);
  t.pass();
});

test('carzero info prints version, CPU features, threads and the CUDA state', async (t) => {
  const { stdout } = await run(process.execPath, [bin, 'info']);
  t.regex(stdout, /^carzero \d+\.\d+\.\d+/m);
  t.regex(stdout, /^cpu kernels: (generic|avx2|avx512)/m);
  t.regex(stdout, /^threads: \d+/m);
  const { stdout: js } = await run(process.execPath, [bin, 'info', '--json']);
  const info = JSON.parse(js);
  if (!info.cuda.available) t.regex(stdout, /^cuda: unavailable \(.+\)$/m);
  else t.regex(stdout, /^cuda: available/m);
  t.is(info.threads > 0, true);
});

test('CARZERO_CPU caps the kernels and CARZERO_NUM_THREADS sets the pool', async (t) => {
  const { stdout } = await run(process.execPath, [bin, 'info', '--json'], {
    env: { ...process.env, CARZERO_CPU: 'avx2', CARZERO_NUM_THREADS: '3' },
  });
  const info = JSON.parse(stdout);
  t.is(info.threads, 3);
  t.true(info.cpu.isa === 'avx2' || info.cpu.isa === 'generic');
  t.false(info.cpu.bf16_dot);
});

test('unknown commands and options fail with exit code 2 and a message', async (t) => {
  const e1 = await t.throwsAsync(run(process.execPath, [bin, 'frobnicate']));
  t.is((e1 as { code?: number }).code, 2);
  t.regex((e1 as { stderr?: string }).stderr ?? '', /unknown command 'frobnicate'/);
  const e2 = await t.throwsAsync(run(process.execPath, [bin, 'info', '--yaml']));
  t.regex((e2 as { stderr?: string }).stderr ?? '', /unknown option '--yaml'/);
  const { stdout } = await run(process.execPath, [bin, '--help']);
  t.regex(stdout, /usage: carzero/);
});
