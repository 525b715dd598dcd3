// The phantom data set: determinism, decodability, the MIMIC CSV, Open-I labels, ChestXDet10
// boxes, reports consistent with labels, prompts unlike reports, the cache, and per-class
// separability of a trivial image statistic (proof the findings are learnable in principle).
import test from 'ava';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generatePhantomSet, makePhantomImage, type PhantomResult } from '../src/apps/demo/phantom.js';
import { DEMO_CLASSES, DEMO_PROMPTS, NEGATION, REPORT_KEYWORDS } from '../src/apps/demo/reports.js';
import type { BoxXY } from '../src/apps/demo/render.js';
import { readImage } from '../src/image/decode.js';
import { readMimicCsv } from '../src/data/mimic.js';
import { readLabels } from '../src/eval/protocols.js';
import { rocAuc } from '../src/eval/metrics.js';
import { cleanReportSentences, cleanText } from '../src/text/clean.js';
import type { GrayImage } from '../src/image/types.js';

const OPTS = {
  seed: 7,
  train: 30,
  validate: 6,
  test: 160,
  size: [320, 400] as [number, number],
  formats: { png8: 0.6, png16: 0.2, jpeg: 0.2 },
  lateral: 0.1,
};
let dir = '';
let res: PhantomResult;
const decoded = new Map<string, GrayImage>();

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'carzero-phantom-'));
  res = await generatePhantomSet({ out: dir, ...OPTS });
  for (const im of res.index.images) decoded.set(im.id, await readImage(join(dir, im.file)));
});

test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('deterministic: same seed same bytes, another seed differs', (t) => {
  const a = makePhantomImage(OPTS, 'test', 3);
  const b = makePhantomImage(OPTS, 'test', 3);
  t.true(a.bytes.equals(b.bytes));
  t.deepEqual(a.entry, b.entry);
  const c = makePhantomImage({ ...OPTS, seed: 8 }, 'test', 3);
  t.false(a.bytes.equals(c.bytes));
});

test('every image decodes with our decoders at its recorded size; all formats occur', (t) => {
  const formats = new Set<string>();
  for (const im of res.index.images) {
    const g = decoded.get(im.id)!;
    t.is(g.width, im.width, im.file);
    t.is(g.height, im.height, im.file);
    formats.add(im.format);
  }
  t.deepEqual([...formats].sort(), ['jpeg', 'png16', 'png8']);
  t.is(res.index.images.length, OPTS.train + OPTS.validate + OPTS.test + 3);
});

test('train.csv is read by readMimicCsv: frontal rows kept, lateral rows skipped', async (t) => {
  const tr = await readMimicCsv(join(dir, 'train.csv'), { split: 'train' });
  t.is(tr.counts.nonFrontal, 3);
  t.is(tr.counts.kept, OPTS.train);
  t.true(tr.items.every((it) => it.sentences.length > 0 && /train-\d+\.(png|jpg)$/.test(it.key)));
  const va = await readMimicCsv(join(dir, 'train.csv'), { split: 'validate' });
  t.is(va.counts.kept, OPTS.validate);
});

test('custom.csv is read by the Open-I protocol with the demo labels', async (t) => {
  const set = readLabels('openi', await readFile(join(dir, 'custom.csv'), 'utf8'), 'custom.csv');
  const test = res.index.images.filter((im) => im.split === 'test');
  t.is(set.rows, test.length);
  t.deepEqual(
    set.ids,
    test.map((im) => im.file),
  );
  for (let r = 0; r < set.rows; r++)
    set.classes.forEach((c, j) => {
      const k = DEMO_CLASSES.indexOf(c as (typeof DEMO_CLASSES)[number]);
      t.is(set.labels[r * set.classes.length + j], k >= 0 ? test[r].labels[k] : 0, `${test[r].id} ${c}`);
    });
  for (const [k] of DEMO_CLASSES.entries())
    t.true(test.filter((im) => im.labels[k]).length >= 10, `${DEMO_CLASSES[k]} has positives`);
  const prompts = JSON.parse(await readFile(join(dir, 'prompts-openi.json'), 'utf8')) as Record<string, string>;
  t.deepEqual(Object.keys(prompts), set.classes);
});

test('boxes.json is read by the ChestXDet10 protocol; boxes lie inside the images', async (t) => {
  const set = readLabels('chestxdet10', await readFile(join(dir, 'boxes.json'), 'utf8'), 'boxes.json');
  t.deepEqual(set.warnings, []);
  const byFile = new Map(res.index.images.map((im) => [im.file, im]));
  set.ids!.forEach((id, r) => {
    const im = byFile.get(id)!;
    for (const list of set.boxes![r].values())
      for (const b of list)
        t.true(b.x1 >= 0 && b.y1 >= 0 && b.x2 < im.width && b.y2 < im.height && b.x2 > b.x1 && b.y2 > b.y1, id);
  });
  for (const im of res.index.images) {
    t.is(im.boxes.length >= im.facts.length, true);
    for (const b of im.boxes) t.true(b.box[0] >= 0 && b.box[1] >= 0 && b.box[2] < im.width && b.box[3] < im.height);
  }
});

test('reports state exactly the labelled findings, others only negated', (t) => {
  for (const im of res.index.images) {
    const sentences = cleanReportSentences(im.report);
    t.true(sentences.length > 0, im.id);
    DEMO_CLASSES.forEach((c, k) => {
      const pos = sentences.some((s) => REPORT_KEYWORDS[c].test(s) && !NEGATION.test(s));
      t.is(pos, im.labels[k] === 1, `${im.id} ${c}: ${im.report}`);
    });
    if (im.labels.every((v) => v === 0))
      t.true(
        sentences.some((s) => NEGATION.test(s)),
        im.report,
      );
  }
});

test('prompts are worded unlike every report sentence', (t) => {
  const all = new Set(res.index.images.flatMap((im) => cleanReportSentences(im.report)));
  for (const p of Object.values(DEMO_PROMPTS)) {
    t.false(all.has(cleanText(p)), p);
    t.true(cleanText(p).split(' ').length >= 4);
  }
});

test('a second call with the same options is a no-op', async (t) => {
  const before = (await stat(join(dir, 'phantom.json'))).mtimeMs;
  const again = await generatePhantomSet({ out: dir, ...OPTS });
  t.true(again.cached);
  t.is(again.index.hash, res.index.hash);
  t.is((await stat(join(dir, 'phantom.json'))).mtimeMs, before);
});

test('rendering on worker threads writes the same set as one thread, byte for byte', async (t) => {
  const o = { seed: 3, train: 280, validate: 4, test: 20, size: [64, 72] as [number, number], lateral: 0.02 };
  const one = await mkdtemp(join(tmpdir(), 'carzero-phantom-1-'));
  const two = await mkdtemp(join(tmpdir(), 'carzero-phantom-2-'));
  try {
    let calls = 0;
    const a = await generatePhantomSet({ out: one, ...o, workers: 0 });
    const b = await generatePhantomSet({ out: two, ...o, workers: 2, onImage: () => calls++ });
    t.is(calls, b.index.images.length);
    t.deepEqual(b.index, a.index);
    for (const f of ['phantom.json', 'train.csv', 'custom.csv', 'boxes.json', ...a.index.images.map((im) => im.file)])
      t.true((await readFile(join(one, f))).equals(await readFile(join(two, f))), f);
  } finally {
    await rm(one, { recursive: true, force: true });
    await rm(two, { recursive: true, force: true });
  }
});

function boxMean(g: GrayImage, b: BoxXY): number {
  let s = 0,
    n = 0;
  for (let y = Math.max(0, b[1]); y <= Math.min(g.height - 1, b[3]); y++)
    for (let x = Math.max(0, b[0]); x <= Math.min(g.width - 1, b[2]); x++) {
      s += g.data[y * g.width + x];
      n++;
    }
  return n ? s / n : 0;
}

test('signal: a trivial per-class statistic separates positives from negatives (AUROC > 0.9)', (t) => {
  const frontal = res.index.images.filter((im) => im.probes);
  const out: string[] = [];
  DEMO_CLASSES.forEach((c, k) => {
    const y = frontal.map((im) => im.labels[k]);
    const s = frontal.map((im) => {
      const p = im.probes![c];
      const g = decoded.get(im.id)!;
      return p.sign * (boxMean(g, p.box) - boxMean(g, p.ref));
    });
    const a = rocAuc(y, s);
    out.push(`${c} ${a.toFixed(3)}`);
    t.true(a > 0.9, `${c}: AUROC ${a}`);
  });
  t.log(out.join(', '));
});
