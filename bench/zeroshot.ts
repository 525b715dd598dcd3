// `npm run bench -- zeroshot`: the zero-shot product path (src/zeroshot/) on this machine's CPU.
//  (b) classify over 10,000 images with the TINY model (test fixture, converted here) to show flat
//      memory: RSS after 1k / 5k / 10k images and the peak (VmHWM). Run first so that the peak
//      is this run's, not the full-size model's.
//  (a) images/s of classifyStream for 14 and 192 classes (PadChest scale) with the full-size
//      reference model (random weights, /tmp/carzero-full/carzero-model from `npm run bench -- model`),
//      prompt embeddings computed once beforehand (their time reported apart); fp32 and bf16.
//  (d) decode + preprocess time per image (a synthetic 2048 x 2500 X-ray-sized PNG) against the
//      native time per image, the numbers behind not using a worker_threads decode pool.
//  (c) precision study: fp32 vs tf32 vs bf16 scores on the same images (reference images and
//      seeded variants), with synthetic labels; score differences, rank correlation, AUROC deltas.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { CARZero } from '../src/model/carzero.js';
import { decodeImage, preprocess } from '../src/image/index.js';
import { convertCheckpoint } from '../src/weights/convert.js';
import { packageRoot } from '../src/native.js';

export interface ZsRow {
  section: string;
  what: string;
  value: string;
}

function rssMiB(): number {
  return process.memoryUsage().rss / 2 ** 20;
}
function vmHwmMiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function auroc(scores: number[], labels: number[]): number {
  const idx = scores.map((s, i) => [s, labels[i]] as const).sort((a, b) => a[0] - b[0]);
  let rankSum = 0;
  let pos = 0;
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j < idx.length && idx[j][0] === idx[i][0]) j++;
    const r = (i + j + 1) / 2; // average 1-based rank of ties
    for (let k = i; k < j; k++)
      if (idx[k][1]) {
        rankSum += r;
        pos++;
      }
    i = j;
  }
  const neg = idx.length - pos;
  return pos && neg ? (rankSum - (pos * (pos + 1)) / 2) / (pos * neg) : NaN;
}
function ranks(x: number[]): number[] {
  const o = x.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const r = new Array<number>(x.length);
  o.forEach(([, i], k) => (r[i] = k));
  return r;
}
function spearman(a: number[], b: number[]): number {
  const ra = ranks(a);
  const rb = ranks(b);
  const n = a.length;
  const m = (n - 1) / 2;
  let num = 0,
    da = 0,
    db = 0;
  for (let i = 0; i < n; i++) {
    num += (ra[i] - m) * (rb[i] - m);
    da += (ra[i] - m) ** 2;
    db += (rb[i] - m) ** 2;
  }
  return num / Math.sqrt(da * db);
}

async function tinyRss(rows: ZsRow[], n: number): Promise<void> {
  const tiny = join(packageRoot, 'test', 'fixtures', 'tiny');
  const work = mkdtempSync(join(tmpdir(), 'carzero-bench-zs-'));
  try {
    const dir = join(work, 'model');
    await convertCheckpoint({
      checkpoint: join(tiny, 'carzero-tiny.ckpt'),
      textModel: join(tiny, 'bert-tiny'),
      out: dir,
      vitHeads: 2,
      headHeads: 4,
    });
    using model = await CARZero.load(dir, { device: 'cpu' });
    const prompts = JSON.parse(readFileSync(join(tiny, 'text', 'prompts.json'), 'utf8'));
    const files = [
      'grey8_tall_quirk.png',
      'grey16_tall.png',
      'rgb_wide.png',
      'colour.jpg',
      'grey.jpg',
      'palette.png',
    ].map((f) => join(tiny, 'images', f));
    function* paths() {
      for (let i = 0; i < n; i++) yield files[i % files.length];
    }
    global.gc?.();
    const base = rssMiB();
    const marks = new Map<number, number>();
    let maxRss = base;
    const timer = setInterval(() => (maxRss = Math.max(maxRss, rssMiB())), 20);
    const t0 = performance.now();
    let scored = 0;
    for await (const r of model.classifyStream({
      images: paths(),
      prompts,
      batchSize: 8,
      onWarning: () => {},
      onProgress: (p) => {
        maxRss = Math.max(maxRss, rssMiB());
        for (const k of [1000, 5000, 10000]) if (p.done >= k && !marks.has(k)) marks.set(k, rssMiB());
      },
    }))
      if (!('error' in r)) scored++;
    const secs = (performance.now() - t0) / 1000;
    clearInterval(timer);
    rows.push({
      section: 'rss',
      what: 'images scored (tiny model, 14 classes, batch 8, paths of 6 fixture images cycled)',
      value: `${scored} in ${secs.toFixed(1)} s (${(scored / secs).toFixed(0)} images/s)`,
    });
    rows.push({ section: 'rss', what: 'RSS after the model load and prompt setup', value: `${base.toFixed(0)} MiB` });
    for (const [k, v] of marks)
      rows.push({ section: 'rss', what: `RSS after ${k} images`, value: `${v.toFixed(0)} MiB` });
    rows.push({ section: 'rss', what: 'peak RSS sampled every 20 ms / per batch', value: `${maxRss.toFixed(0)} MiB` });
    rows.push({
      section: 'rss',
      what: 'VmHWM (process peak, includes the conversion of the tiny checkpoint)',
      value: `${vmHwmMiB().toFixed(0)} MiB`,
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function refImages(root: string): string[] {
  const dir = join(root, 'images');
  return [
    'grey8_tall_quirk.png',
    'grey16_tall.png',
    'rgb_wide.png',
    'colour.jpg',
    'grey.jpg',
    'grey8_large.png',
    'palette.png',
    'rgba_square.png',
  ]
    .map((f) => join(dir, f))
    .filter(existsSync);
}

function manyPrompts(n: number, base: Record<string, string[]>): Record<string, string> {
  const words = [
    'left',
    'right',
    'upper',
    'lower',
    'small',
    'large',
    'mild',
    'severe',
    'basilar',
    'apical',
    'pleural',
    'lobe',
    'nodule',
    'opacity',
    'effusion',
    'edema',
  ];
  const out: Record<string, string> = {};
  const keys = Object.keys(base);
  for (let i = 0; i < n; i++) {
    const k = keys[i % keys.length];
    out[`${k} ${i}`] = `There is ${words[i % 16]} ${words[(i >> 4) % 16]} ${base[k][0].replace(/^There is /, '')}`;
  }
  return out;
}

async function throughput(rows: ZsRow[], modelDir: string, root: string, nImages: number): Promise<void> {
  const base = JSON.parse(readFileSync(join(root, 'text', 'prompts.json'), 'utf8')) as Record<string, string[]>;
  const imgs = refImages(root);
  for (const precision of ['fp32', 'bf16'] as const) {
    using model = await CARZero.load(modelDir, { device: 'cpu', precision });
    for (const Q of [14, 192]) {
      const prompts = Q === 14 ? Object.fromEntries(Object.entries(base).slice(0, 14)) : manyPrompts(Q, base);
      const t0 = performance.now();
      using texts = await model.embedTexts(prompts, { onWarning: () => {} });
      const tText = (performance.now() - t0) / 1000;
      // warm-up batch
      await model.classify({ images: imgs.slice(0, 8), prompts: texts });
      const n = Q === 14 ? nImages : Math.max(8, nImages / 2);
      const list = Array.from({ length: n }, (_, i) => imgs[i % imgs.length]);
      const t1 = performance.now();
      const r = await model.classify({ images: list, prompts: texts, batchSize: 8 });
      const secs = (performance.now() - t1) / 1000;
      rows.push({
        section: 'throughput',
        what: `${precision}, ${Q} classes: classify ${r.scores.length} images (decode + embed + score, batch 8)`,
        value:
          `${(r.scores.length / secs).toFixed(2)} images/s ` +
          `(${((secs * 1000) / r.scores.length).toFixed(0)} ms/image); prompt embedding once: ${tText.toFixed(2)} s`,
      });
    }
  }
}

async function decodeCost(rows: ZsRow[], modelDir: string): Promise<void> {
  const W = 2048,
    H = 2500;
  const png = new PNG({ width: W, height: H, colorType: 0, inputColorType: 0, bitDepth: 8, inputHasAlpha: false });
  const r = rng(7);
  const data = Buffer.alloc(W * H);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++)
      data[y * W + x] = Math.min(
        255,
        Math.max(0, Math.round(128 + 60 * Math.sin(x / 200) * Math.cos(y / 300) + 25 * (r() - 0.5))),
      );
  png.data = data;
  const buf = PNG.sync.write(png, { colorType: 0, inputColorType: 0, bitDepth: 8, inputHasAlpha: false });
  const reps = 5;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) preprocess(decodeImage(buf), { resize: 256, crop: 224 });
  const decMs = (performance.now() - t0) / reps;
  using model = await CARZero.load(modelDir, { device: 'cpu' });
  const texts = await model.embedTexts({ a: 'There is atelectasis' });
  const list = Array.from({ length: 16 }, () => buf);
  await model.classify({ images: list.slice(0, 8), prompts: texts });
  const t1 = performance.now();
  await model.classify({ images: list, prompts: texts });
  const clsMs = (performance.now() - t1) / 16;
  texts[Symbol.dispose]();
  rows.push({
    section: 'decode',
    what: `decode + preprocess of a ${W} x ${H} 8-bit PNG (${(buf.length / 2 ** 20).toFixed(1)} MiB) on the JS thread`,
    value: `${decMs.toFixed(0)} ms/image`,
  });
  rows.push({
    section: 'decode',
    what: 'classify of the same PNGs end to end (fp32, 1 class, batch 8: decode overlapped with the native call)',
    value: `${clsMs.toFixed(0)} ms/image`,
  });
}

async function precisionStudy(
  rows: ZsRow[],
  modelDir: string,
  root: string,
  n: number,
): Promise<Record<string, unknown>> {
  const prompts = Object.fromEntries(
    Object.entries(
      JSON.parse(readFileSync(join(root, 'text', 'prompts.json'), 'utf8')) as Record<string, string[]>,
    ).slice(0, 14),
  );
  const r = rng(42);
  // n preprocessed crops: the reference images and seeded variants (shifts, contrast, noise).
  const crops: Float32Array[] = [];
  const srcs = refImages(root).map((f) => preprocess(decodeImage(readFileSync(f), { name: f })).pixels);
  for (let i = 0; i < n; i++) {
    const s = srcs[i % srcs.length];
    const px = new Float32Array(224 * 224);
    const dx = Math.floor(r() * 21) - 10,
      dy = Math.floor(r() * 21) - 10,
      gain = 0.7 + 0.6 * r(),
      noise = 0.3 * r();
    for (let y = 0; y < 224; y++)
      for (let x = 0; x < 224; x++) {
        const sx = Math.min(223, Math.max(0, x + dx)),
          sy = Math.min(223, Math.max(0, y + dy));
        px[y * 224 + x] = gain * s[sy * 224 + sx] + noise * (r() - 0.5) * 2;
      }
    crops.push(px);
  }
  const scores: Record<string, number[][]> = {};
  const times: Record<string, number> = {};
  for (const precision of ['fp32', 'tf32', 'bf16'] as const) {
    using model = await CARZero.load(modelDir, { device: 'cpu', precision });
    const t0 = performance.now();
    const res = await model.classify({
      images: crops.map((pixels, i) => ({ pixels, name: `img${i}` })),
      prompts,
      onWarning: () => {},
    });
    times[precision] = (performance.now() - t0) / 1000;
    scores[precision] = res.scores.map((s) => Array.from(s));
  }
  const Q = scores.fp32[0].length;
  // Synthetic labels: a noisy threshold of the fp32 score per class (random weights: the labels
  // only make the AUROCs non-trivial, so that their sensitivity to precision can be read).
  const lr = rng(1234);
  const labels: number[][] = scores.fp32.map(() => new Array(Q).fill(0));
  for (let q = 0; q < Q; q++) {
    const col = scores.fp32.map((s) => s[q]);
    const mean = col.reduce((a, b) => a + b, 0) / n;
    const sd = Math.sqrt(col.reduce((a, b) => a + (b - mean) ** 2, 0) / n) || 1;
    const noisy = col.map((v) => v + sd * 1.0 * Math.sqrt(-2 * Math.log(lr() + 1e-12)) * Math.cos(2 * Math.PI * lr()));
    const med = [...noisy].sort((a, b) => a - b)[Math.floor(n / 2)];
    noisy.forEach((v, i) => (labels[i][q] = v > med ? 1 : 0));
  }
  const macro = (p: string) => {
    const a: number[] = [];
    for (let q = 0; q < Q; q++)
      a.push(
        auroc(
          scores[p].map((s) => s[q]),
          labels.map((l) => l[q]),
        ),
      );
    return a;
  };
  const aFp32 = macro('fp32');
  const spread = (() => {
    const all = scores.fp32.flat();
    const m = all.reduce((a, b) => a + b, 0) / all.length;
    return Math.sqrt(all.reduce((a, b) => a + (b - m) ** 2, 0) / all.length);
  })();
  const out: Record<string, unknown> = { n, classes: Q, score_sd_fp32: spread, times };
  for (const p of ['fp32', 'tf32', 'bf16']) {
    const d = scores[p].flat().map((v, i) => Math.abs(v - scores.fp32.flat()[i]));
    const maxAbs = Math.max(...d);
    const meanAbs = d.reduce((a, b) => a + b, 0) / d.length;
    const rho = spearman(scores[p].flat(), scores.fp32.flat());
    let rhoCls = 0;
    for (let q = 0; q < Q; q++)
      rhoCls +=
        spearman(
          scores[p].map((s) => s[q]),
          scores.fp32.map((s) => s[q]),
        ) / Q;
    const a = macro(p);
    const macroA = a.reduce((x, y) => x + y, 0) / Q;
    const deltas = a.map((v, q) => Math.abs(v - aFp32[q]));
    const row = {
      maxAbs,
      meanAbs,
      rho,
      rhoCls,
      macroA,
      macroDelta: macroA - aFp32.reduce((x, y) => x + y, 0) / Q,
      maxClassDelta: Math.max(...deltas),
      secs: times[p],
    };
    out[p] = row;
    rows.push({
      section: 'precision',
      what: p,
      value:
        `| ${maxAbs.toExponential(2)} | ${meanAbs.toExponential(2)} | ${rho.toFixed(5)} | ${rhoCls.toFixed(5)} ` +
        `| ${macroA.toFixed(4)} | ${row.macroDelta >= 0 ? '+' : ''}${row.macroDelta.toFixed(4)} ` +
        `| ${row.maxClassDelta.toFixed(4)} | ${(n / times[p]).toFixed(2)} |`,
    });
  }
  return out;
}

export async function benchZeroshot(
  args: string[],
): Promise<{ rows: ZsRow[]; notes: string[]; study: Record<string, unknown> }> {
  const root = args.includes('--root') ? args[args.indexOf('--root') + 1] : '/tmp/carzero-full';
  const nTiny = args.includes('--tiny-images') ? Number(args[args.indexOf('--tiny-images') + 1]) : 10000;
  const nImages = args.includes('--images') ? Number(args[args.indexOf('--images') + 1]) : 32;
  const nStudy = args.includes('--study-images') ? Number(args[args.indexOf('--study-images') + 1]) : 64;
  const only = args.includes('--only')
    ? args[args.indexOf('--only') + 1].split(',')
    : ['rss', 'throughput', 'decode', 'precision'];
  const modelDir = join(root, 'carzero-model');
  if (!existsSync(join(modelDir, 'model.safetensors')))
    throw new Error(
      `${modelDir} missing: run \`npm run bench -- model\` first (it converts the full-size reference model)`,
    );
  const rows: ZsRow[] = [];
  const notes: string[] = [];
  let study: Record<string, unknown> = {};
  if (only.includes('rss')) await tinyRss(rows, nTiny);
  if (only.includes('throughput')) await throughput(rows, modelDir, root, nImages);
  if (only.includes('decode')) await decodeCost(rows, modelDir);
  if (only.includes('precision')) study = await precisionStudy(rows, modelDir, root, nStudy);
  writeFileSync(join(packageRoot, 'bench', 'out', 'zeroshot-study.json'), JSON.stringify(study, null, 2) + '\n');
  return { rows, notes, study };
}
