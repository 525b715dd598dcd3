// The driver floor (issue 18): with a libcuda.so.1 that reports an older CUDA than this binary's
// runtime, `carzero info` names both versions and the driver branch needed, CUDA is unavailable,
// and `--device auto` runs on the CPU with that message. The driver is a stub built here from
// test/fixtures/stub-libcuda/libcuda_stub.c (needs a C compiler, as a source build does).
import test from 'ava';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from '../src/native.js';
import { bin, tiny, batch, promptsFile } from './zeroshot-helpers.js';

const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'carzero-stubcuda-'));
test.after.always(() => rmSync(work, { recursive: true, force: true }));

function stub(version: number): string {
  const dir = join(work, String(version));
  mkdirSync(dir, { recursive: true });
  execFileSync('cc', [
    '-shared',
    '-fPIC',
    `-DSTUB_CUDA_VERSION=${version}`,
    '-o',
    join(dir, 'libcuda.so.1'),
    join(packageRoot, 'test', 'fixtures', 'stub-libcuda', 'libcuda_stub.c'),
  ]);
  return dir;
}

async function infoWith(dir: string) {
  const env = { ...process.env, LD_LIBRARY_PATH: dir };
  const j = JSON.parse((await run(process.execPath, [bin, 'info', '--json'], { env })).stdout);
  const text = (await run(process.execPath, [bin, 'info'], { env })).stdout;
  return { cuda: j.cuda, text, env };
}

const oldDriverTitle =
  'a driver older than the runtime: info names both versions and the driver needed; auto uses the CPU';
test(oldDriverTitle, async (t) => {
  const { cuda, text, env } = await infoWith(stub(12040));
  t.false(cuda.available);
  if (!cuda.compiled) {
    // a build without the CUDA backend has no runtime to compare with
    t.is(cuda.runtime_version, 0);
    t.regex(cuda.reason, /no CUDA backend/);
    return;
  }
  t.true(cuda.runtime_version >= 13000, `runtime ${cuda.runtime_version}`);
  t.is(cuda.driver_version, 12040);
  t.true(cuda.driver_too_old);
  const rt = `${Math.floor(cuda.runtime_version / 1000)}.${(cuda.runtime_version % 1000) / 10}`;
  t.regex(cuda.reason, /NVIDIA driver too old: .*supports CUDA up to 12\.4/);
  t.true(cuda.reason.includes(`this build's CUDA ${rt} runtime needs an R580 or newer driver`), cuda.reason);
  t.regex(text, /^cuda: unavailable \(NVIDIA driver too old: .*CUDA up to 12\.4.*R580.*running on the CPU/m);
  // --device auto: the CPU, with the message
  const out = await run(
    process.execPath,
    [
      bin,
      'classify',
      '--model',
      join(work, 'model'),
      '--prompts',
      promptsFile,
      '--device',
      'auto',
      '--format',
      'csv',
      '--quiet',
      batch[0],
    ],
    { env },
  ).catch((e) => e);
  t.regex(String(out.stderr), /CarzeroDriverWarning: carzero: NVIDIA driver too old/);
  t.is(String(out.stdout).trim().split('\n').length, 2, String(out.stderr));
});

test('a driver as new as the runtime is not called too old', async (t) => {
  const { cuda } = await infoWith(stub(13000));
  t.false(cuda.driver_too_old);
  t.notRegex(cuda.reason ?? '', /too old/);
});

test.before(async () => {
  const { convertCheckpoint } = await import('../src/weights/convert.js');
  const { readFileSync } = await import('node:fs');
  const cfg = JSON.parse(readFileSync(join(tiny, 'config.json'), 'utf8'));
  await convertCheckpoint({
    checkpoint: join(tiny, 'carzero-tiny.ckpt'),
    textModel: join(tiny, 'bert-tiny'),
    out: join(work, 'model'),
    vitHeads: cfg.vision.heads,
    headHeads: cfg.head.heads,
  });
});
