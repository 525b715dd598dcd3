// `carzero eval` as a user runs it (dist/cli/main.js) on the mini Open-I data set of
// tools/fixtures-eval.py: through --scores (a score CSV with known values) and through --model
// (the tiny model, converted here). Metrics must equal scikit-learn's within 1e-6.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from '../src/native.js';
import { close, compareResult, svgCurves, svgProblems, worst } from './eval-helpers.js';

const run = promisify(execFile);
const bin = join(packageRoot, 'dist', 'cli', 'main.js');
const fx = join(import.meta.dirname, 'fixtures', 'eval');
const openi = join(fx, 'openi');
const tiny = join(import.meta.dirname, 'fixtures', 'tiny');
const work = mkdtempSync(join(tmpdir(), 'carzero-eval-'));
const modelDir = join(work, 'model');
const expected = JSON.parse(readFileSync(join(openi, 'expected.json'), 'utf8'));

test.before(async () => {
  if (!existsSync(bin)) throw new Error(`${bin} missing: run \`npx tsc -p tsconfig.json\` first`);
  await run(process.execPath, [
    bin,
    'convert',
    '--checkpoint',
    join(tiny, 'carzero-tiny.ckpt'),
    '--text-model',
    join(tiny, 'bert-tiny'),
    '--out',
    modelDir,
    '--vit-heads',
    '2',
    '--head-heads',
    '4',
  ]);
});
test.after.always(() => rmSync(work, { recursive: true, force: true }));

const evalArgs = (...more: string[]) => [
  bin,
  'eval',
  '--protocol',
  'openi',
  '--labels',
  join(openi, 'custom.csv'),
  ...more,
];

test('--scores --format json: the metrics equal sklearn (Open-I mini set)', async (t) => {
  const { stdout } = await run(process.execPath, evalArgs('--scores', join(openi, 'scores.csv'), '--format', 'json'));
  const r = JSON.parse(stdout);
  for (const k of ['classes', 'auroc', 'macro_auroc', 'auprc_micro', 'auprc_macro']) t.true(k in r, k);
  t.is(r.classes.length, 18);
  compareResult(t, r, expected);
  t.log(`largest |difference| to sklearn so far: ${worst.diff.toExponential(2)} (${worst.what})`);
});

test('the table: per-class positives, AUROC, AUPRC, macro, micro, the groups; --plots writes SVGs', async (t) => {
  const plots = join(work, 'plots');
  const { stdout, stderr } = await run(
    process.execPath,
    evalArgs('--scores', join(openi, 'scores.csv'), '--plots', plots),
  );
  t.regex(stdout, /^Open-I: 36 images, 18 classes/m);
  t.regex(stdout, /^class\s+positives\s+AUROC\s+AUPRC$/m);
  const line = stdout.split('\n').find((l) => l.startsWith('Calcified Granuloma'))!;
  const [pos, auc, prc] = line.slice('Calcified Granuloma'.length).trim().split(/\s+/);
  const j = expected.classes.indexOf('Calcified Granuloma');
  t.is(Number(pos), expected.positives[j]);
  t.is(auc, expected.auroc[j].toFixed(4));
  t.is(prc, expected.auprc[j].toFixed(4));
  t.regex(
    stdout,
    new RegExp(`^macro\\s+${expected.macro_auroc.toFixed(4)}\\s+${expected.auprc_macro.toFixed(4)}$`, 'm'),
  );
  t.regex(
    stdout,
    new RegExp(`^micro\\s+${expected.micro_auroc.toFixed(4)}\\s+${expected.auprc_micro.toFixed(4)}$`, 'm'),
  );
  t.regex(stdout, /^head \(\d+\)/m);
  t.regex(stdout, /^tail \(\d+\)/m);
  t.regex(stderr, /wrote .*roc\.svg/);
  const roc = readFileSync(join(plots, 'roc.svg'), 'utf8');
  const pr = readFileSync(join(plots, 'pr.svg'), 'utf8');
  for (const svg of [roc, pr]) t.deepEqual(svgProblems(svg), []);
  t.true(roc.includes(`macro AUROC ${expected.macro_auroc.toFixed(4)}`));
  t.true(roc.includes(`>Calcified Granuloma ${expected.auroc[j].toFixed(4)}</text>`));
  t.true(pr.includes(`macro AUPRC ${expected.auprc_macro.toFixed(4)}`));
  const curve = svgCurves(roc).get(`Calcified Granuloma ${expected.auroc[j].toFixed(4)}`)!;
  t.true(curve.length >= 2);
  t.deepEqual(
    [curve[0], curve.at(-1)],
    [
      [70, 560],
      [580, 50],
    ],
    'from (0, 0) to (1, 1)',
  );
  t.log(stdout);
});

test('--model: the tiny model scores the images, and the metrics equal sklearn on its scores', async (t) => {
  const save = join(work, 'saved.csv');
  const { stdout } = await run(
    process.execPath,
    evalArgs(
      '--model',
      modelDir,
      '--images',
      join(openi, 'openi_multi_label_image.csv'),
      '--prompts',
      join(openi, 'openi_multi_label_text.json'),
      '--device',
      'cpu',
      '--format',
      'json',
      '--save-scores',
      save,
      '--quiet',
    ),
  );
  const exp = JSON.parse(readFileSync(join(openi, 'expected-model.json'), 'utf8'));
  compareResult(t, JSON.parse(stdout), exp);
  // the saved scores are what the generator saw from the same model (within fp32 kernel noise)
  const ref = readFileSync(join(openi, 'tiny-model-scores.csv'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split(',').slice(1).map(Number));
  const got = readFileSync(save, 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split(',').slice(1).map(Number));
  t.is(got.length, ref.length);
  let d = 0;
  got.forEach((r, i) => r.forEach((v, j) => (d = Math.max(d, Math.abs(v - ref[i][j])))));
  t.true(d < 1e-4, `scores differ from the fixture's by ${d}`);
  // and evaluating the saved CSV later gives the same report
  const again = JSON.parse((await run(process.execPath, evalArgs('--scores', save, '--format', 'json'))).stdout);
  close(t, again.macro_auroc, exp.macro_auroc, 'macro auroc from the saved CSV');
  t.log(`largest |difference| to sklearn: ${worst.diff.toExponential(2)} (${worst.what})`);
});

test('a class with one label value: null, left out of the macro mean, with a warning', async (t) => {
  const text = readFileSync(join(openi, 'custom.csv'), 'utf8').replace(/hernia, hiatal/g, 'no hrn');
  const labels = join(work, 'no-hernia.csv');
  writeFileSync(labels, text);
  const { stdout, stderr } = await run(process.execPath, [
    bin,
    'eval',
    '--protocol',
    'openi',
    '--labels',
    labels,
    '--scores',
    join(openi, 'scores.csv'),
    '--format',
    'json',
  ]);
  const r = JSON.parse(stdout);
  const j = r.classes.indexOf('Hernia');
  t.is(r.auroc[j], null);
  t.is(r.positives[j], 0);
  const rest = r.auroc.filter((v: number | null) => v !== null);
  close(t, r.macro_auroc, rest.reduce((a: number, b: number) => a + b, 0) / rest.length, 'macro without Hernia');
  t.regex(stderr, /warning: 1 class\(es\) have a single label value .*Hernia \(0 positive\)/);
});

test('bad input: clear errors naming the file; exit 1 only when nothing could be evaluated', async (t) => {
  const bad = join(work, 'bad.csv');
  writeFileSync(bad, ',uid,file_name,labels_automatic\n0,a,"x.png,cardiomegaly\n');
  const e1 = (await t.throwsAsync(
    run(process.execPath, [bin, 'eval', '--protocol', 'openi', '--labels', bad, '--scores', join(openi, 'scores.csv')]),
  )) as any;
  t.is(e1.code, 1);
  t.regex(e1.stderr, /bad\.csv: unterminated quoted field/);
  const other = join(work, 'other.csv');
  writeFileSync(other, ',uid,file_name,labels_automatic\n0,a,zzz.png,cardiomegaly\n');
  const e2 = (await t.throwsAsync(
    run(process.execPath, [
      bin,
      'eval',
      '--protocol',
      'openi',
      '--labels',
      other,
      '--scores',
      join(openi, 'scores.csv'),
    ]),
  )) as any;
  t.is(e2.code, 1);
  t.regex(e2.stderr, /other\.csv does not match .*scores\.csv/);
  const e3 = (await t.throwsAsync(
    run(process.execPath, [
      bin,
      'eval',
      '--protocol',
      'openi',
      '--labels',
      join(openi, 'custom.csv'),
      '--model',
      modelDir,
      '--images',
      join(openi, 'custom.csv'),
      '--prompts',
      join(openi, 'openi_multi_label_text.json'),
    ]),
  )) as any;
  t.is(e3.code, 1);
  t.regex(e3.stderr, /custom\.csv: no 'Path' column/);
  const e4 = (await t.throwsAsync(
    run(process.execPath, [bin, 'eval', '--protocol', 'mimic', '--labels', 'x', '--scores', 'y']),
  )) as any;
  t.is(e4.code, 2);
  t.regex(e4.stderr, /--protocol must be one of openi\|padchest/);
  const e5 = (await t.throwsAsync(run(process.execPath, [bin, 'eval', '--protocol', 'openi', '--scores', 'y']))) as any;
  t.is(e5.code, 2);
  t.regex(e5.stderr, /--labels <file> is required/);
  // one unreadable score row: skipped with a warning naming it, the rest evaluated
  const rows = readFileSync(join(openi, 'scores.csv'), 'utf8').split('\n');
  rows[3] = rows[3].replace(/,[^,]+$/, ',oops');
  const partial = join(work, 'partial.csv');
  writeFileSync(partial, rows.join('\n'));
  const { stdout, stderr } = await run(process.execPath, evalArgs('--scores', partial, '--format', 'json'));
  t.is(JSON.parse(stdout).images, 35);
  t.regex(stderr, /partial\.csv: record 4, column 'Granuloma': 'oops' is not a number, row skipped/);
  t.regex(stderr, /1 label row\(s\) of .*custom\.csv have no score/);
});

test('--help shows the protocols and examples', async (t) => {
  const { stdout } = await run(process.execPath, [bin, 'eval', '--help']);
  t.regex(stdout, /usage: carzero eval --protocol/);
  t.regex(stdout, /chexpert5x200/);
  t.regex(stdout, /examples:/);
  const { stdout: top } = await run(process.execPath, [bin, '--help']);
  t.regex(top, /eval --protocol/);
});

test('--pointing (chestxdet10, --model): the pointing game on the label file boxes', async (t) => {
  const imgs = ['grey8_large.png', 'grey16_tall.png', 'rgb_wide.png', 'palette.png'];
  const classes = [
    'Atelectasis',
    'Calcification',
    'Consolidation',
    'Effusion',
    'Emphysema',
    'Fibrosis',
    'Fracture',
    'Mass',
    'Nodule',
    'Pneumothorax',
  ];
  const list = join(work, 'det-images.csv');
  writeFileSync(list, 'Path\n' + imgs.map((f) => join(tiny, 'images', f)).join('\n') + '\n');
  const prompts = join(work, 'det-prompts.json');
  writeFileSync(prompts, JSON.stringify(Object.fromEntries(classes.map((c) => [c, `There is ${c.toLowerCase()}`]))));
  const everywhere = [-1e6, -1e6, 1e6, 1e6];
  const nowhere = [-10, -10, -5, -5];
  const labels = join(work, 'det.json');
  writeFileSync(
    labels,
    JSON.stringify([
      { file_name: imgs[0], syms: ['Effusion', 'Mass'], boxes: [everywhere, nowhere] },
      { file_name: imgs[1], syms: ['Effusion'], boxes: [everywhere] },
      { file_name: imgs[2], syms: ['Nodule', 'Mass'], boxes: [nowhere, everywhere] },
      { file_name: imgs[3], syms: [], boxes: [] },
    ]),
  );
  const { stdout } = await run(process.execPath, [
    bin,
    'eval',
    '--protocol',
    'chestxdet10',
    '--labels',
    labels,
    '--model',
    modelDir,
    '--images',
    list,
    '--prompts',
    prompts,
    '--pointing',
    '--format',
    'json',
    '--quiet',
    '--device',
    'cpu',
  ]);
  const r = JSON.parse(stdout);
  t.is(r.images, 4);
  t.is(r.pointing.trials, 5);
  t.is(r.pointing.hits, 3);
  t.is(r.pointing.per_class[classes.indexOf('Effusion')].rate, 1);
  t.is(r.pointing.per_class[classes.indexOf('Nodule')].rate, 0);
  t.is(r.pointing.per_class[classes.indexOf('Mass')].rate, 0.5);
  t.truthy(r.f1);
});
