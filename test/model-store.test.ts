// The model store and integrity checks (src/model/store.ts, weights/): manifests written by
// convert, damaged model files refused by CARZero.load with the file's name (the process goes
// on), names resolved to shipped and store models, `carzero models`, the shipped phantom-demo.
import test from 'ava';
import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CARZero } from '../src/model/carzero.js';
import {
  listModels,
  ModelIntegrityError,
  modelStoreDir,
  readManifest,
  resolveModel,
  sha256File,
  shippedModelsDir,
  verifiedState,
  verifyModel,
} from '../src/model/store.js';
import { expectedTensors, type CarzeroModelConfig } from '../src/weights/convert.js';
import { bin, tinyModel, tiny, batch, promptsFile } from './zeroshot-helpers.js';

const run = promisify(execFile);
let work = '';
let good = '';
const home = mkdtempSync(join(tmpdir(), 'carzero-home-'));
process.env.CARZERO_HOME = home;

test.before(async () => {
  const m = await tinyModel();
  work = m.work;
  good = m.dir;
});

test.after.always(() => {
  if (work) rmSync(work, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});

/** A fresh copy of the converted tiny model (manifest included, no stamp). */
let copies = 0;
function copyModel(): string {
  const d = join(work, `copy-${copies++}`);
  cpSync(good, d, { recursive: true });
  rmSync(join(d, '.verified.json'), { force: true });
  return d;
}

async function refused(
  t: import('ava').ExecutionContext,
  dir: string,
  file: string,
  options: Parameters<typeof CARZero.load>[1] = { device: 'cpu' },
): Promise<Error> {
  const e = await t.throwsAsync(CARZero.load(dir, options));
  t.truthy(e, 'refused');
  t.true(e!.message.includes(join(dir, file)), `names ${file}: ${e!.message}`);
  // the process goes on: the intact model still loads
  const ok = await CARZero.load(good, { device: 'cpu' });
  t.is(ok.config.format, 'carzero-model');
  ok.dispose();
  return e!;
}

test('convert writes a manifest: sizes and sha256 of each file and of the checkpoint', async (t) => {
  const m = await readManifest(good);
  t.truthy(m);
  t.deepEqual(Object.keys(m!.files).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
  for (const [f, e] of Object.entries(m!.files)) {
    t.is(e.size, statSync(join(good, f)).size, f);
    t.is(e.sha256, await sha256File(join(good, f)), f);
  }
  const ck = m!.source.checkpoint as { file: string; size: number; sha256: string };
  t.is(ck.file, 'carzero-tiny.ckpt');
  t.is(ck.sha256, await sha256File(join(tiny, 'carzero-tiny.ckpt')));
});

test('the first load hashes the files and leaves a stamp; a changed file is hashed again', async (t) => {
  const d = copyModel();
  t.is(await verifiedState(d), 'stale');
  (await CARZero.load(d, { device: 'cpu' })).dispose();
  t.is(await verifiedState(d), 'yes');
  // same size, one byte flipped in the middle of the weights: caught at the next load
  const f = join(d, 'model.safetensors');
  const b = readFileSync(f);
  b[b.length >> 1] ^= 0x40;
  writeFileSync(f, b);
  t.is(await verifiedState(d), 'stale');
  const e = await refused(t, d, 'model.safetensors');
  t.true(e instanceof ModelIntegrityError);
  t.regex(e.message, /sha256/);
  const r = await verifyModel(d);
  t.false(r.ok);
  t.deepEqual(
    r.files.filter((x) => !x.ok).map((x) => x.file),
    [f],
  );
});

test('a flipped byte is refused on the first load too', async (t) => {
  const d = copyModel();
  const f = join(d, 'model.safetensors');
  const b = readFileSync(f);
  b[((b.length * 2) / 3) | 0] ^= 1;
  writeFileSync(f, b);
  await refused(t, d, 'model.safetensors');
});

test('a model file truncated by one byte is refused, with or without a manifest', async (t) => {
  const d = copyModel();
  const f = join(d, 'model.safetensors');
  truncateSync(f, statSync(f).size - 1);
  const e = await refused(t, d, 'model.safetensors');
  t.regex(e.message, /truncated/);
  // no manifest: the native reader's header check (tensors must tile the data section)
  unlinkSync(join(d, 'manifest.json'));
  const e2 = await refused(t, d, 'model.safetensors');
  t.regex(e2.message, /tensor|data section/);
});

test('an extended model file is refused', async (t) => {
  const d = copyModel();
  const f = join(d, 'model.safetensors');
  writeFileSync(f, Buffer.concat([readFileSync(f), Buffer.alloc(3)]));
  t.regex((await refused(t, d, 'model.safetensors')).message, /extended/);
  unlinkSync(join(d, 'manifest.json'));
  t.regex((await refused(t, d, 'model.safetensors')).message, /data section/);
});

test('a header whose offsets run past the end of the file is refused before mapping', async (t) => {
  const d = copyModel();
  const f = join(d, 'model.safetensors');
  const b = readFileSync(f);
  const n = Number(b.readBigUInt64LE(0));
  const header = b.subarray(8, 8 + n).toString('utf8');
  const ends = [...header.matchAll(/"data_offsets":\[(\d+),(\d+)\]/g)];
  const last = ends.reduce((a, m) => (Number(m[2]) > Number(a[2]) ? m : a));
  // the same number of digits, so the header keeps its length: the largest end, plus 10^(d-1)
  const bigger = String(Number(last[2]) + 10 ** (last[2].length - 1))
    .slice(0, last[2].length)
    .replace(/^./, '9');
  t.true(Number(bigger) > Number(last[2]));
  const patched = header.replace(last[0], last[0].replace(`,${last[2]}]`, `,${bigger}]`));
  t.is(patched.length, header.length);
  Buffer.from(patched, 'utf8').copy(b, 8);
  writeFileSync(f, b);
  unlinkSync(join(d, 'manifest.json')); // the native check alone
  const e = await refused(t, d, 'model.safetensors');
  t.regex(e.message, /truncated|past the end|needs|bytes/);
});

test('a missing model file is refused with its name', async (t) => {
  const d = copyModel();
  unlinkSync(join(d, 'tokenizer.json'));
  const e = await refused(t, d, 'tokenizer.json');
  t.regex(e.message, /missing/);
  t.true(e instanceof ModelIntegrityError);
  t.is((e as ModelIntegrityError).file, join(d, 'tokenizer.json'));
});

test("verify: 'never' skips the hash check but not the size check", async (t) => {
  const d = copyModel();
  const f = join(d, 'config.json');
  const text = readFileSync(f, 'utf8');
  writeFileSync(f, text.replace('"carzero-model"', '"carzero-modeX"'));
  await refused(t, d, 'config.json'); // hash (first load)
  writeFileSync(f, text); // restore, load once (stamp), then change the size
  (await CARZero.load(d, { device: 'cpu' })).dispose();
  writeFileSync(f, text + ' ');
  await refused(t, d, 'config.json', { device: 'cpu', verify: 'never' });
});

test('names: store models and shipped models resolve; unknown names say where they looked', async (t) => {
  t.is(modelStoreDir(), join(home, 'models'));
  const ship = resolveModel('phantom-demo');
  t.is(ship.origin, 'shipped');
  t.is(ship.dir, join(shippedModelsDir(), 'phantom-demo'));
  cpSync(good, join(home, 'models', 'tiny-store'), { recursive: true });
  const st = resolveModel('tiny-store');
  t.is(st.origin, 'store');
  const e = t.throws(() => resolveModel('no-such-model'));
  t.true(e!.message.includes(shippedModelsDir()) && e!.message.includes(modelStoreDir()));
  t.throws(() => resolveModel('./no/such/dir'), { message: /no such model directory/ });
  // an existing directory wins over a name
  t.is(resolveModel(good).origin, 'directory');
  const m = await CARZero.load('tiny-store', { device: 'cpu' });
  t.is(m.dir, join(home, 'models', 'tiny-store'));
  m.dispose();
  const listed = await listModels();
  t.truthy(listed.find((x) => x.name === 'phantom-demo' && x.origin === 'shipped'));
  t.truthy(listed.find((x) => x.name === 'tiny-store' && x.origin === 'store' && x.precision === 'f32'));
});

const cliStoreTitle =
  'CLI: convert --name, classify --model <name> (same scores as the directory), models list and verify';
test(cliStoreTitle, async (t) => {
  const env = { ...process.env, CARZERO_HOME: home };
  const cfg = JSON.parse(readFileSync(join(tiny, 'config.json'), 'utf8'));
  const conv = await run(
    process.execPath,
    [
      bin,
      'convert',
      '--checkpoint',
      join(tiny, 'carzero-tiny.ckpt'),
      '--text-model',
      join(tiny, 'bert-tiny'),
      '--vit-heads',
      String(cfg.vision.heads),
      '--head-heads',
      String(cfg.head.heads),
      '--name',
      'tiny-cli',
    ],
    { env },
  );
  t.regex(conv.stdout, /manifest:/);
  t.true(existsSync(join(home, 'models', 'tiny-cli', 'manifest.json')));
  const byName = await run(
    process.execPath,
    [bin, 'classify', '--model', 'tiny-cli', '--prompts', promptsFile, '--format', 'csv', '--quiet', ...batch],
    { env, cwd: tmpdir() },
  );
  const byDir = await run(
    process.execPath,
    [bin, 'classify', '--model', good, '--prompts', promptsFile, '--format', 'csv', '--quiet', ...batch],
    { env },
  );
  t.is(byName.stdout, byDir.stdout);
  const list = await run(process.execPath, [bin, 'models'], { env });
  t.regex(list.stdout, /^phantom-demo\s+shipped\s/m);
  t.regex(list.stdout, /^tiny-cli\s+store\s.*\s(yes|not yet)\s/m);
  const ok = await run(process.execPath, [bin, 'models', 'verify', 'tiny-cli'], { env });
  t.regex(ok.stdout, /tiny-cli: ok/);
  const f = join(home, 'models', 'tiny-cli', 'tokenizer.json');
  writeFileSync(f, readFileSync(f, 'utf8').replace('[UNK]', '[UNX]'));
  const bad = await t.throwsAsync(run(process.execPath, [bin, 'models', 'verify', 'tiny-cli'], { env }));
  t.is((bad as unknown as { code: number }).code, 1);
  t.regex((bad as unknown as { stdout: string }).stdout, /FAILED .*tokenizer\.json: contents changed/);
  // a shipped name cannot be taken
  const taken = await t.throwsAsync(
    run(
      process.execPath,
      [
        bin,
        'convert',
        '--checkpoint',
        join(tiny, 'carzero-tiny.ckpt'),
        '--text-model',
        join(tiny, 'bert-tiny'),
        '--name',
        'phantom-demo',
      ],
      { env },
    ),
  );
  t.regex((taken as unknown as { stderr: string }).stderr, /shipped/);
});

test('registry: the carzero tensors are what convert checks for the full-size config', (t) => {
  const reg = JSON.parse(readFileSync(join(shippedModelsDir(), 'registry.json'), 'utf8'));
  const c = reg.models.carzero;
  const want = expectedTensors(c.config as CarzeroModelConfig);
  t.deepEqual(Object.keys(c.tensors), [...want.keys()]);
  for (const [k, s] of want) t.deepEqual(c.tensors[k], s, k);
  t.is(reg.models['phantom-demo'].dir, 'phantom-demo');
});

test('the shipped phantom-demo verifies, loads and classifies from any folder with its own prompts', async (t) => {
  const dir = join(shippedModelsDir(), 'phantom-demo');
  const r = await verifyModel(dir);
  t.true(r.manifest && r.ok, JSON.stringify(r.files.filter((f) => !f.ok)));
  const demo = JSON.parse(readFileSync(join(dir, 'demo.json'), 'utf8'));
  t.is(demo.format, 'carzero-demo-model');
  t.true(statSync(join(dir, 'model.safetensors')).size < 4 << 20);
  const out = await run(
    process.execPath,
    [bin, 'classify', '--model', 'phantom-demo', '--format', 'csv', '--quiet', batch[0]],
    { cwd: tmpdir() },
  );
  const [head, row] = out.stdout.trim().split('\n');
  const prompts = JSON.parse(readFileSync(join(dir, 'prompts.json'), 'utf8'));
  t.is(head, ['Path', ...Object.keys(prompts)].map((k) => (/[",]/.test(k) ? `"${k}"` : k)).join(','));
  t.is(row.split(',').length, 1 + Object.keys(prompts).length);
});

test('demo --pretrained reproduces the macro AUROC recorded in demo.json (same test split, same model)', async (t) => {
  const { runPretrainedDemo } = await import('../src/apps/demo/demo.js');
  const out = join(work, 'pretrained');
  const res = await runPretrainedDemo({ out, device: 'cpu' });
  const rec = JSON.parse(readFileSync(join(shippedModelsDir(), 'phantom-demo', 'demo.json'), 'utf8'));
  t.is(res.macro_auroc!.toFixed(4), rec.results.macro_auroc.toFixed(4));
  for (const c of res.classes) t.is(res.auroc[c]?.toFixed(4), rec.results.auroc[c]?.toFixed(4), c);
  t.is(res.pointing.hits, rec.results.pointing.hits);
  for (const f of ['auroc.txt', 'roc.svg', 'pr.svg', 'scores.csv', 'summary.json']) t.true(existsSync(join(out, f)), f);
});
