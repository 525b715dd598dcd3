// `carzero demo` in its quick mode: it writes every promised file, and the model trained from
// scratch has learned something that luck cannot explain (validation loss well below the chance
// level 2 ln N, zero-shot AUROC on the held-out phantoms well above 0.5). Also: argument errors
// name the argument.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PNG } from 'pngjs';
import { runDemo, demoSettings, flatPrompts, DEMO_ZERO_SHOT_PROMPTS, type DemoResult } from '../src/apps/demo/demo.js';
import { sincosPosEmbed } from '../src/apps/demo/model.js';
import { packageRoot } from '../src/native.js';
import { svgProblems } from './eval-helpers.js';

const run = promisify(execFile);
let dir = '';
let res: DemoResult;
let seconds = 0;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'carzero-demo-'));
  const t0 = performance.now();
  res = await runDemo({ out: dir, quick: true, seed: 0 });
  seconds = (performance.now() - t0) / 1000;
});

test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('quick demo writes the table, plots, overlays, scores and the summary', async (t) => {
  const results = ['auroc.txt', 'auroc.json', 'auroc.csv', 'roc.svg', 'pr.svg', 'scores.csv', 'prompts.json'];
  for (const f of [...results, 'summary.json', 'data/custom.csv', 'data/boxes.json'])
    t.true(existsSync(join(dir, f)), f);
  const table = await readFile(join(dir, 'auroc.txt'), 'utf8');
  for (const c of res.classes) t.regex(table, new RegExp(`^${c}\\s+\\d+\\s+0\\.\\d{4}`, 'm'), c);
  t.regex(table, /^macro\s+0\.\d{4}/m);
  const csv = (await readFile(join(dir, 'auroc.csv'), 'utf8')).trim().split('\n');
  t.is(csv.length, 1 + res.classes.length + 1);
  const overlays = await readdir(join(dir, 'overlays'));
  t.true(overlays.length >= 8, `${overlays.length} overlays`);
  const png = PNG.sync.read(await readFile(join(dir, 'overlays', overlays[0])));
  t.is(png.width, 4 * res.settings.model.image);
  const roc = await readFile(join(dir, 'roc.svg'), 'utf8');
  t.deepEqual(svgProblems(roc), []);
  t.true(roc.includes(`macro AUROC ${res.macro_auroc!.toFixed(4)}`));
  const scores = (await readFile(join(dir, 'scores.csv'), 'utf8')).trim().split('\n');
  t.is(scores.length, 1 + res.settings.test);
  t.true(res.pointing.trials > 0);
  t.log(
    `quick demo: ${seconds.toFixed(1)} s, macro AUROC ${res.macro_auroc?.toFixed(4)}, ` +
      `val loss ${res.val_loss_initial.toFixed(3)} -> ${res.val_loss_final.toFixed(3)} ` +
      `(chance ${res.chance_loss.toFixed(3)})`,
  );
});

test('the model learns: validation loss clearly below chance, zero-shot AUROC clearly above 0.5', (t) => {
  // Chance (constant scores) is exactly 2 ln N; scores unrelated to the pairing can only be worse
  // on average. 0.1 below it over the validation batches is far outside the noise of a model
  // that learned nothing (its loss sits at or above chance).
  t.true(res.val_loss_final < res.chance_loss - 0.1, `val loss ${res.val_loss_final} vs chance ${res.chance_loss}`);
  // Macro AUROC of 8 classes on 160 test images: with scores unrelated to the labels its standard
  // deviation is about 0.025 (per class ~0.06-0.07), so 0.6 is about 4 sigma above 0.5 (measured:
  // 0.635 after the demo2 changes, 0.648 before); the easiest class, an enlarged heart, is about 5
  // sigma above 0.5 at 0.8 (measured 0.89 before).
  t.true(res.macro_auroc! > 0.6, `macro AUROC ${res.macro_auroc}`);
  t.true(res.auroc.Cardiomegaly! > 0.8, `Cardiomegaly AUROC ${res.auroc.Cardiomegaly}`);
});

test('zero-shot prompts: one per side for lateral findings, never a report sentence; flat keys', (t) => {
  for (const [c, list] of Object.entries(DEMO_ZERO_SHOT_PROMPTS)) {
    t.is(list.length, c === 'Cardiomegaly' ? 1 : 2, c);
    if (list.length === 2)
      t.deepEqual(
        list.map((p) => /\b(right|left)\b/.exec(p)?.[1]),
        ['right', 'left'],
        c,
      );
  }
  const f = flatPrompts({ A: ['x y'], B: ['p q', 'r s'] });
  t.deepEqual(f.prompts, { A: 'x y', 'B/1': 'p q', 'B/2': 'r s' });
  t.deepEqual(f.keys, { A: ['A'], B: ['B/1', 'B/2'] });
});

test('sin-cos ViT positions: a zero [CLS] row, values in [-1, 1], every patch position distinct', (t) => {
  const w = 64,
    g = 10;
  const p = sincosPosEmbed(w, g);
  t.is(p.length, (1 + g * g) * w);
  t.true(p.subarray(0, w).every((v) => v === 0));
  t.true(p.every((v) => v >= -1 && v <= 1));
  const rows = new Set(
    Array.from({ length: g * g }, (_, i) =>
      Array.from(p.subarray((1 + i) * w, (2 + i) * w), (v) => v.toFixed(5)).join(),
    ),
  );
  t.is(rows.size, g * g);
});

test('bad options are refused naming the option', (t) => {
  t.throws(() => demoSettings({ out: '' }), { message: /'out'/ });
  t.throws(() => demoSettings({ out: 'x', epochs: 0 }), { message: /'epochs'/ });
  t.throws(() => demoSettings({ out: 'x', device: 'tpu' as 'cpu' }), { message: /'device'/ });
  t.throws(() => demoSettings({ out: 'x', lr: -1 }), { message: /'lr'/ });
  t.throws(() => demoSettings({ out: 'x', train: 64, batchSize: 128 }), { message: /'batchSize'/ });
});

test('carzero demo --help and a bad option through the CLI', async (t) => {
  const bin = join(packageRoot, 'dist', 'cli', 'main.js');
  if (!existsSync(bin)) return t.pass('dist not built');
  const { stdout } = await run(process.execPath, [bin, 'demo', '--help']);
  t.regex(stdout, /usage: carzero demo/);
  const e = await t.throwsAsync(run(process.execPath, [bin, 'demo', '--epochs', 'zero']));
  t.is((e as { code?: number }).code, 2);
  t.regex((e as { stderr?: string }).stderr ?? '', /--epochs/);
  const e2 = await t.throwsAsync(run(process.execPath, [bin, 'demo', '--device', 'tpu']));
  t.regex((e2 as { stderr?: string }).stderr ?? '', /--device/);
});
