// `npm run bench -- decode`: the image feed against OpenCV, and what full-size files cost inside
// classify.
//
//  (a) decode + CARZero preprocessing of one file, one thread, median of --reps runs: the native
//      feed (ImageFeed with 1 decode thread: read + libpng/libjpeg-turbo + INTER_AREA + pad + crop
//      + normalise), the JavaScript decoders (loadImage, the fallback path), and the peer,
//      cv2.imread(p, 0) + the original resize_img + crop + normalise with cv2.setNumThreads(1)
//      (bench/peers/cv2_decode.py, Debian's python3-opencv). The peer runs before and after ours
//      and the faster of its two medians is kept (the comparison never favours us).
//  (b) classify end to end (full-size reference model, bf16, CPU, default decode threads, batch 8,
//      one class): the same K files at 2048 x 2500 and at 256 x 256; (full - small) / K is what a
//      full-size image costs beyond a small one, set against the peer's single-thread time.
// Files: stand-in chest films made by the peer script into bench/out/decode-files/.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ImageFeed } from '../src/image/feed.js';
import { loadImage } from '../src/image/index.js';
import { info } from '../src/info.js';

const FORMATS = [
  { name: 'PNG 8-bit', full: 'png8-2048x2500.png', small: 'png8-256x256.png' },
  { name: 'PNG 16-bit', full: 'png16-2048x2500.png', small: 'png16-256x256.png' },
  { name: 'JPEG q95', full: 'jpeg95-2048x2500.jpg', small: 'jpeg95-256x256.jpg' },
];

export interface DecodeRow {
  format: string;
  file: string;
  native_ms: number;
  js_ms: number;
  cv2_ms: number;
  native_vs_cv2: number;
  js_vs_cv2: number;
}
export interface ClassifyRow {
  format: string;
  images: number;
  full_s: number;
  small_s: number;
  extra_ms_per_image: number;
  cv2_ms: number;
  extra_vs_cv2: number;
}
export interface DecodeResult {
  opencv: string;
  codecs: string;
  reps: number;
  decode: DecodeRow[];
  classify: ClassifyRow[];
  notes: string[];
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

function peer(root: string, args: string[]): { opencv: string; ms: Record<string, number> } {
  const r = spawnSync('/usr/bin/python3', [join(root, 'bench', 'peers', 'cv2_decode.py'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  if (r.status !== 0)
    throw new Error(`bench/peers/cv2_decode.py ${args[0]} failed (python3-opencv installed?): ${r.stderr || r.error}`);
  return args[0] === 'make' ? { opencv: '', ms: {} } : JSON.parse(r.stdout);
}

async function timeIt(reps: number, fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await fn();
    ts.push(performance.now() - t);
  }
  return median(ts);
}

export async function benchDecode(root: string, args: string[]): Promise<DecodeResult> {
  const reps = Number(args[args.indexOf('--reps') + 1]) || 7;
  const K = Number(args[args.indexOf('--images') + 1]) || 16;
  const dir = join(root, 'bench', 'out', 'decode-files');
  mkdirSync(dir, { recursive: true });
  peer(root, ['make', dir]);
  const files = FORMATS.flatMap((f) => [join(dir, f.full), join(dir, f.small)]);
  const notes: string[] = [];
  const i = info();
  const codecs =
    `native PNG ${i.images.png ? 'yes' : 'no'}, JPEG ${i.images.jpeg ? 'yes' : 'no'} ` +
    `(${i.images.versions || 'none'})`;

  // (a) one file at a time, one thread
  const before = peer(root, ['time', String(reps), ...files]);
  const feed1 = new ImageFeed({ threads: 1 });
  const ours: Record<string, { native: number; js: number }> = {};
  for (const f of files) {
    const native = await timeIt(reps, () => feed1.load(f));
    const js = await timeIt(reps, () => loadImage(f));
    ours[f] = { native, js };
  }
  feed1.close();
  const after = peer(root, ['time', String(reps), ...files]);
  const cv2 = (f: string) => Math.min(before.ms[f], after.ms[f]);
  const decode: DecodeRow[] = [];
  for (const fmt of FORMATS)
    for (const f of [fmt.full, fmt.small]) {
      const p = join(dir, f);
      decode.push({
        format: fmt.name,
        file: f,
        native_ms: ours[p].native,
        js_ms: ours[p].js,
        cv2_ms: cv2(p),
        native_vs_cv2: ours[p].native / cv2(p),
        js_vs_cv2: ours[p].js / cv2(p),
      });
    }

  // (b) classify end to end
  const classify: ClassifyRow[] = [];
  const modelDir = join(
    args.includes('--root') ? args[args.indexOf('--root') + 1] : '/tmp/carzero-full',
    'carzero-model',
  );
  if (!existsSync(join(modelDir, 'model.safetensors'))) {
    notes.push(
      `classify end to end: not run (${modelDir} missing: \`npm run bench -- model\` converts the full-size ` +
        'reference model)',
    );
  } else {
    const { CARZero } = await import('../src/model/carzero.js');
    using model = await CARZero.load(modelDir, { device: 'cpu', precision: 'bf16' });
    const prompts = { Cardiomegaly: 'There is cardiomegaly' };
    using text = await model.embedTexts(prompts);
    const run = async (file: string) => {
      const t = performance.now();
      let n = 0;
      for await (const r of model.classifyStream({
        images: Array.from({ length: K }, () => file),
        prompts: text,
        batchSize: 8,
      }))
        if ('scores' in r) n++;
      if (n !== K) throw new Error(`classify scored ${n} of ${K} copies of ${file}`);
      return (performance.now() - t) / 1000;
    };
    await run(join(dir, FORMATS[0].small)); // warm-up
    for (const fmt of FORMATS) {
      // interleaved, twice each; the faster run of each size counts
      const full: number[] = [];
      const small: number[] = [];
      for (let r = 0; r < 2; r++) {
        full.push(await run(join(dir, fmt.full)));
        small.push(await run(join(dir, fmt.small)));
      }
      const fs = Math.min(...full);
      const ss = Math.min(...small);
      const extra = ((fs - ss) * 1000) / K;
      const c = cv2(join(dir, fmt.full));
      classify.push({
        format: fmt.name,
        images: K,
        full_s: fs,
        small_s: ss,
        extra_ms_per_image: extra,
        cv2_ms: c,
        extra_vs_cv2: extra / c,
      });
    }
    notes.push(
      'classify: full-size reference model (random weights), bf16, CPU, batch 8, 1 class, ' +
        `${i.images.decode_threads} decode threads, ${K} copies of one file per run (page cache warm)`,
    );
  }
  return { opencv: before.opencv, codecs, reps, decode, classify, notes };
}
