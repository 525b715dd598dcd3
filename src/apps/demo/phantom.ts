// A seeded, deterministic phantom chest X-ray data set for demos and end-to-end tests.
//
// generatePhantomSet({ out, seed, train, validate, test }) writes under `out`:
//   images/<split>/<id>.png|jpg   frontal images (8-bit PNG mostly, some 16-bit PNG and baseline
//                                 JPEG), plus a few lateral images (train split) the loader skips
//   train.csv        MIMIC-style: Path, Split, ViewPosition (PA / AP / LATERAL), Report Impression;
//                    all splits, read with src/data/mimic.ts readMimicCsv({ split })
//   custom.csv       test labels in the Open-I format (`,uid,file_name,labels_major,labels_automatic`);
//                    labels_automatic holds the lower-cased Open-I class names of the findings
//                    ("normal" for a normal study), so the openi protocol reads them directly
//   boxes.json       ChestXDet10-style [{file_name, syms, boxes}] for the test split (pointing game);
//                    Opacity is written as ChestXDet10's "Consolidation"; Cardiomegaly, not a
//                    ChestXDet10 class, has its box in the index only
//   prompts.json     the 8 demo classes -> a prompt worded unlike any report sentence
//   prompts-openi.json  all 18 Open-I classes in the protocol's order (score columns are matched
//                    to classes by position); the 10 never drawn have no positives and so NaN AUROC,
//                    which the macro means leave out
//   phantom.json     the index: options, their hash, classes, per image labels, facts, boxes,
//                    probes (see render.ts), report
// Class names: the demo's 8 findings are Open-I classes: cardiomegaly -> Cardiomegaly, pleural
// effusion -> Effusion, pneumothorax -> Pneumothorax, consolidation/opacity -> Opacity, nodule ->
// Nodule, mass -> Mass, atelectasis -> Atelectasis, rib fracture -> Fracture.
// Every image draws from its own generator Rng.derive(seed, split, index): the output does not
// depend on the order of generation. A second call with the same options finds phantom.json with
// the same hash and returns without writing.
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { PNG } from 'pngjs';
import { Rng } from '../../data/rng.js';
import { csvField } from '../../data/csv.js';
import { OPENI_CLASSES } from '../../eval/protocols.js';
import { encodeGrayJpeg } from './jpeg-encode.js';
import { renderFrontal, renderLateral, type BoxXY, type Probe } from './render.js';
import {
  DEMO_CLASSES,
  DEMO_PROMPTS,
  OTHER_OPENI_PROMPTS,
  writeReport,
  type DemoClass,
  type FindingFacts,
} from './reports.js';

export type PhantomFormat = 'png8' | 'png16' | 'jpeg';

export interface PhantomOptions {
  out: string;
  seed: number;
  train: number;
  validate: number;
  test: number;
  /** Image side range in pixels, default [320, 512]; heights vary by aspect 0.9-1.2. */
  size?: [number, number];
  /** Share of each format, default { png8: 0.8, png16: 0.1, jpeg: 0.1 }. */
  formats?: Partial<Record<PhantomFormat, number>>;
  /** Share of normal studies, default 0.3. */
  normal?: number;
  /** Lateral rows added to the train split per frontal image, default 0.03. */
  lateral?: number;
  /** Called after each image is rendered (progress); not part of the set's identity. */
  onImage?: () => void;
  /** Rendering threads (default: the available cores, at most 4; 0 or 1: this thread). Every
   * image has its own generator, so the set does not depend on it; not part of the identity. */
  workers?: number;
}

export interface PhantomImage {
  id: string;
  split: 'train' | 'validate' | 'test';
  file: string;
  view: 'PA' | 'AP' | 'LATERAL';
  width: number;
  height: number;
  format: PhantomFormat;
  /** 0/1 per DEMO_CLASSES. */
  labels: number[];
  facts: FindingFacts[];
  boxes: { cls: DemoClass; box: BoxXY }[];
  probes: Record<DemoClass, Probe> | null;
  ctr: number | null;
  report: string;
}

export interface PhantomIndex {
  version: 2;
  hash: string;
  options: Omit<PhantomOptions, 'out'>;
  classes: string[];
  images: PhantomImage[];
}

export interface PhantomResult {
  out: string;
  /** True when the cache matched and nothing was written. */
  cached: boolean;
  index: PhantomIndex;
  seconds: number;
}

const SPLIT_KEY = { train: 1, validate: 2, test: 3 } as const;
const VERSION = 2; // 2: pixel floors for nodules and rib fractures in small renders

function normalise(o: PhantomOptions): Omit<PhantomOptions, 'out' | 'onImage' | 'workers'> {
  for (const k of ['seed', 'train', 'validate', 'test'] as const)
    if (!Number.isSafeInteger(o[k]) || o[k] < 0)
      throw new RangeError(`generatePhantomSet: option '${k}' must be a non-negative integer, got ${o[k]}`);
  const size = o.size ?? [320, 512];
  if (!(size[0] >= 64 && size[1] >= size[0] && size[1] <= 4096))
    throw new RangeError(`generatePhantomSet: bad size range ${size.join('-')}`);
  const formats = { png8: 0.8, png16: 0.1, jpeg: 0.1, ...(o.formats ?? {}) };
  if (!(formats.png8 + formats.png16 + formats.jpeg > 0))
    throw new RangeError('generatePhantomSet: format shares sum to 0');
  return {
    seed: o.seed,
    train: o.train,
    validate: o.validate,
    test: o.test,
    size,
    formats,
    normal: o.normal ?? 0.3,
    lateral: o.lateral ?? 0.03,
  };
}

export function phantomHash(o: Omit<PhantomOptions, 'out'>): string {
  return createHash('sha256')
    .update(JSON.stringify({ v: VERSION, ...o }))
    .digest('hex')
    .slice(0, 16);
}

/** The classes present in one study. */
function sampleClasses(rng: Rng, normal: number): Set<DemoClass> {
  const set = new Set<DemoClass>();
  if (rng.next() < normal) return set;
  const p: Record<DemoClass, number> = {
    Atelectasis: 0.22,
    Cardiomegaly: 0.25,
    Effusion: 0.25,
    Mass: 0.15,
    Nodule: 0.2,
    Opacity: 0.22,
    Pneumothorax: 0.18,
    Fracture: 0.18,
  };
  while (set.size === 0) for (const c of DEMO_CLASSES) if (rng.next() < p[c]) set.add(c);
  return set;
}

function encode(pixels: Float32Array, w: number, h: number, format: PhantomFormat): Buffer {
  if (format === 'png16') {
    const u16 = new Uint16Array(w * h);
    for (let i = 0; i < u16.length; i++) u16[i] = Math.round(pixels[i] * 65535);
    return PNG.sync.write({ width: w, height: h, data: Buffer.from(u16.buffer) } as unknown as PNG, {
      colorType: 0,
      inputColorType: 0,
      bitDepth: 16,
      inputHasAlpha: false,
      filterType: 1,
    });
  }
  const u8 = new Uint8Array(w * h);
  for (let i = 0; i < u8.length; i++) u8[i] = Math.round(pixels[i] * 255);
  if (format === 'jpeg') return Buffer.from(encodeGrayJpeg(u8, w, h, 92));
  return PNG.sync.write({ width: w, height: h, data: Buffer.from(u8.buffer) } as unknown as PNG, {
    colorType: 0,
    inputColorType: 0,
    bitDepth: 8,
    inputHasAlpha: false,
    filterType: 1,
  });
}

function pickFormat(rng: Rng, f: Record<PhantomFormat, number>): PhantomFormat {
  const total = f.png8 + f.png16 + f.jpeg;
  let u = rng.next() * total;
  for (const k of ['png8', 'png16', 'jpeg'] as const) {
    if (u < f[k]) return k;
    u -= f[k];
  }
  return 'png8';
}

/** Renders image `i` of a split: pixels, encoded bytes and its index entry. */
export function makePhantomImage(
  opts: Omit<PhantomOptions, 'out'>,
  split: PhantomImage['split'],
  i: number,
): { entry: PhantomImage; bytes: Buffer } {
  const o = normalise({ out: '', ...opts });
  const rng = Rng.derive(o.seed, SPLIT_KEY[split], i);
  const [lo, hi] = o.size!;
  const width = lo + rng.int(hi - lo + 1);
  const height = Math.min(Math.round(hi * 1.2), Math.max(lo, Math.round(width * rng.uniform(0.9, 1.2))));
  const format = pickFormat(rng, o.formats as Record<PhantomFormat, number>);
  const classes = sampleClasses(rng, o.normal!);
  const view = rng.next() < 0.7 ? 'PA' : 'AP';
  const r = renderFrontal(rng, { width, height, classes });
  const report = writeReport(r.facts, rng);
  const id = `${split}-${String(i).padStart(5, '0')}`;
  const file = `images/${split}/${id}.${format === 'jpeg' ? 'jpg' : 'png'}`;
  return {
    entry: {
      id,
      split,
      file,
      view,
      width,
      height,
      format,
      labels: DEMO_CLASSES.map((c) => (classes.has(c) ? 1 : 0)),
      facts: r.facts,
      boxes: r.boxes,
      probes: r.probes,
      ctr: r.ctr,
      report,
    },
    bytes: encode(r.pixels, width, height, format),
  };
}

export function makeLateral(opts: Omit<PhantomOptions, 'out'>, i: number): { entry: PhantomImage; bytes: Buffer } {
  const rng = Rng.derive(opts.seed, 4, i);
  const w = 320,
    h = 360;
  const px = renderLateral(rng, w, h);
  const id = `lateral-${String(i).padStart(5, '0')}`;
  const report = writeReport([], rng);
  return {
    entry: {
      id,
      split: 'train',
      file: `images/train/${id}.png`,
      view: 'LATERAL',
      width: w,
      height: h,
      format: 'png8',
      labels: DEMO_CLASSES.map(() => 0),
      facts: [],
      boxes: [],
      probes: null,
      ctr: null,
      report,
    },
    bytes: encode(px, w, h, 'png8'),
  };
}

/** One image to render: a split's image i, or lateral image i. */
export type PhantomJob = [PhantomImage['split'] | 'lateral', number];

/** Renders one job: its index entry and encoded bytes. */
export function renderJob(opts: Omit<PhantomOptions, 'out'>, job: PhantomJob): { entry: PhantomImage; bytes: Buffer } {
  return job[0] === 'lateral' ? makeLateral(opts, job[1]) : makePhantomImage(opts, job[0], job[1]);
}

async function renderHere(
  o: Omit<PhantomOptions, 'out'>,
  out: string,
  jobs: PhantomJob[],
  onImage?: () => void,
): Promise<PhantomImage[]> {
  const images: PhantomImage[] = [];
  const pending: Promise<void>[] = [];
  for (const job of jobs) {
    const m = renderJob(o, job);
    images.push(m.entry);
    onImage?.();
    pending.push(writeFile(join(out, m.entry.file), m.bytes));
    if (pending.length >= 16) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  return images;
}

/** The worker entry module, or a tsx bootstrap when running from TypeScript sources (tests). */
function spawnWorker(): Worker {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    const entry = new URL('./phantom-worker.ts', here).href;
    const tsx = import.meta.resolve('tsx/esm/api');
    const load = (url: string) => `import(${JSON.stringify(url)})`;
    const code = `${load(tsx)}.then((m) => { m.register(); return ${load(entry)}; });`;
    return new Worker(code, { eval: true });
  }
  return new Worker(new URL('./phantom-worker.js', here));
}

/** Renders the jobs on worker threads in blocks (each writes its files); entries in job order. */
async function renderInWorkers(
  o: Omit<PhantomOptions, 'out'>,
  out: string,
  jobs: PhantomJob[],
  n: number,
  onImage?: () => void,
): Promise<PhantomImage[]> {
  const BLOCK = 64;
  const images: PhantomImage[] = new Array(jobs.length);
  let next = 0;
  const workers = Array.from({ length: n }, spawnWorker);
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolveAll, reject) => {
            let first = 0;
            const send = () => {
              if (next >= jobs.length) return resolveAll();
              first = next;
              next = Math.min(jobs.length, next + BLOCK);
              w.postMessage({ opts: o, out, jobs: jobs.slice(first, next) });
            };
            w.on('message', (m: { entries?: PhantomImage[]; error?: string }) => {
              if (m.error !== undefined) return reject(new Error(`phantom worker: ${m.error}`));
              m.entries!.forEach((e, k) => {
                images[first + k] = e;
                onImage?.();
              });
              send();
            });
            w.on('error', reject);
            send();
          }),
      ),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return images;
}

async function readIndex(file: string): Promise<PhantomIndex | null> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as PhantomIndex;
  } catch {
    return null;
  }
}

/** Writes the phantom data set (see the file comment); a no-op when `out` already holds it. */
export async function generatePhantomSet(options: PhantomOptions): Promise<PhantomResult> {
  const t0 = performance.now();
  const o = normalise(options);
  const hash = phantomHash(o);
  const out = options.out;
  const indexFile = join(out, 'phantom.json');
  const prev = await readIndex(indexFile);
  if (prev && prev.hash === hash) return { out, cached: true, index: prev, seconds: (performance.now() - t0) / 1000 };
  for (const s of ['train', 'validate', 'test']) await mkdir(join(out, 'images', s), { recursive: true });
  const jobs: PhantomJob[] = [];
  for (const s of ['train', 'validate', 'test'] as const) for (let i = 0; i < o[s]; i++) jobs.push([s, i]);
  const nLat = Math.round(o.train * o.lateral!);
  for (let i = 0; i < nLat; i++) jobs.push(['lateral', i]);
  const nWorkers = Math.min(options.workers ?? Math.min(4, availableParallelism()), Math.ceil(jobs.length / 256));
  const images =
    nWorkers > 1
      ? await renderInWorkers(o, out, jobs, nWorkers, options.onImage)
      : await renderHere(o, out, jobs, options.onImage);

  const csv = ['Path,Split,ViewPosition,Report Impression'];
  for (const im of images) csv.push([im.file, im.split, im.view, im.report].map(csvField).join(','));
  const test = images.filter((im) => im.split === 'test');
  const custom = [',uid,file_name,labels_major,labels_automatic'];
  test.forEach((im, k) => {
    const names = DEMO_CLASSES.filter((_, j) => im.labels[j]);
    custom.push(
      [
        k,
        im.id,
        im.file,
        names.length ? names.join(';') : 'normal',
        names.length ? names.map((c) => c.toLowerCase()).join(';') : 'normal',
      ]
        .map(csvField)
        .join(','),
    );
  });
  const det = test.map((im) => {
    const b = im.boxes.filter((x) => x.cls !== 'Cardiomegaly');
    return {
      file_name: im.file,
      syms: b.map((x) => (x.cls === 'Opacity' ? 'Consolidation' : x.cls)),
      boxes: b.map((x) => x.box),
    };
  });
  const openiPrompts: Record<string, string> = {};
  for (const c of OPENI_CLASSES) openiPrompts[c] = DEMO_PROMPTS[c] ?? OTHER_OPENI_PROMPTS[c];
  const index: PhantomIndex = { version: VERSION, hash, options: o, classes: [...DEMO_CLASSES], images };
  await writeFile(join(out, 'train.csv'), csv.join('\n') + '\n');
  await writeFile(join(out, 'custom.csv'), custom.join('\n') + '\n');
  await writeFile(join(out, 'boxes.json'), JSON.stringify(det) + '\n');
  await writeFile(join(out, 'prompts.json'), JSON.stringify(DEMO_PROMPTS, null, 2) + '\n');
  await writeFile(join(out, 'prompts-openi.json'), JSON.stringify(openiPrompts, null, 2) + '\n');
  await writeFile(indexFile, JSON.stringify(index) + '\n'); // last: its presence marks a complete set
  return { out, cached: false, index, seconds: (performance.now() - t0) / 1000 };
}
