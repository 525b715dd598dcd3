#!/usr/bin/env node
// The image feed on a device machine: issue 14's GPU lines, through the COMPILED package with bare
// `node` (scripts/gpu-model-check.sh runs it as step `feed`; also runs on the CPU as a rehearsal).
//
//   node bench/gpu/feed-bench.mjs --model DIR --full FILE --small FILE [--device cuda|cpu]
//        [--precision bf16] [--full-count 512] [--small-count 4096] [--batch 256] [--reps 3]
//        [--python PY] [--here FILE] [--json out.json]
//
// Rows:
//   classify end to end: model.classifyStream over N paths of one file (page cache warm, as in
//     bench/decode.ts): the decode pool with its default threads (every core), overlapped with the
//     model on --device; images/s over the whole stream (median of --reps streams after one warm-up)
//   one thread: ImageFeed({ threads: 1 }).load(file), read + decode + preprocess, median of 7
//   cv2 (when --python, default python3, imports cv2): bench/peers/cv2_decode.py time 7 FILE,
//     cv2.imread(p, 0) + INTER_AREA + pad + crop + normalise on one thread (cv2.setNumThreads(1))
// Bars (issue 14): the full-size stream at least cores x cv2's single-thread rate; the 256 x 256
// stream at least 3,000 images/s (bf16), both on a GPU (pass is null on the CPU). Without cv2 on
// the machine the first bar is reported as not measured (our one-thread time is printed either way);
// with --here FILE (the staging machine's one-thread times of the same files, ours and cv2's) an
// estimate of it is reported beside (bar_estimate, pass_estimate).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');

// Options through node:util's parseArgs (strict: an unknown option is an error).
function parseOptions(argv) {
  const { values: v } = parseArgs({
    args: argv,
    strict: true,
    options: {
      model: { type: 'string' },
      full: { type: 'string' },
      small: { type: 'string' },
      device: { type: 'string', default: 'cuda' },
      precision: { type: 'string', default: 'bf16' },
      'full-count': { type: 'string', default: '512' },
      'small-count': { type: 'string', default: '4096' },
      batch: { type: 'string', default: '256' },
      reps: { type: 'string', default: '3' },
      python: { type: 'string', default: 'python3' },
      json: { type: 'string' },
      here: { type: 'string' },
    },
  });
  for (const k of ['model', 'full', 'small']) if (!v[k]) throw new Error(`--${k} is required`);
  const int = (name) => {
    const n = Number(v[name]);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${v[name]}`);
    return n;
  };
  return {
    model: v.model,
    full: v.full,
    small: v.small,
    device: v.device,
    precision: v.precision,
    fullCount: int('full-count'),
    smallCount: int('small-count'),
    batch: int('batch'),
    reps: int('reps'),
    python: v.python,
    here: v.here,
    json: v.json,
  };
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

/** cv2's one-thread ms for each file, or the reason it could not be measured. */
function cv2Times(python, files) {
  const r = spawnSync(python, [resolve(ROOT, 'bench', 'peers', 'cv2_decode.py'), 'time', '7', ...files], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  if (r.error) return { why: `${python}: ${r.error.message}` };
  if (r.status !== 0)
    return { why: `${python} bench/peers/cv2_decode.py: ${(r.stderr || '').trim().split('\n').pop()}` };
  const out = JSON.parse(r.stdout);
  return { opencv: out.opencv, ms: out.ms };
}

let opt;
try {
  opt = parseOptions(process.argv.slice(2));
} catch (e) {
  console.error(`feed-bench.mjs: ${e.message}`);
  console.error('usage: node bench/gpu/feed-bench.mjs --model DIR --full FILE --small FILE [options]');
  process.exit(2);
}
const report = { device: opt.device, precision: opt.precision, cores: availableParallelism(), rows: [], ok: false };
const tStart = performance.now();
try {
  const { CARZero } = await import(resolve(ROOT, 'dist', 'index.js'));
  const { ImageFeed, defaultDecodeThreads } = await import(resolve(ROOT, 'dist', 'image', 'feed.js'));
  report.decode_threads = defaultDecodeThreads();
  const files = { full: resolve(opt.full), small: resolve(opt.small) };

  // One thread's decode + preprocess (ours), then cv2's on the same files.
  const one = {};
  {
    const feed = new ImageFeed({ threads: 1 });
    try {
      for (const [k, f] of Object.entries(files)) {
        await feed.load(f);
        const ts = [];
        for (let i = 0; i < 7; i++) {
          const t = performance.now();
          await feed.load(f);
          ts.push(performance.now() - t);
        }
        one[k] = median(ts);
      }
    } finally {
      feed.close();
    }
  }
  const cv2 = cv2Times(opt.python, Object.values(files));
  // --here: the same files' one-thread times, ours and cv2's, measured on the machine that staged
  // them (bench/out/decode.json of `npm run bench -- decode`): without cv2 here, cv2's time on this
  // machine is estimated as ours times that ratio (reported as an estimate, never as the bar).
  const here = opt.here ? JSON.parse(readFileSync(opt.here, 'utf8')) : undefined;
  if (here) report.here = here;
  if (cv2.why) report.cv2_unavailable = cv2.why;
  else report.opencv = cv2.opencv;

  const model = await CARZero.load(opt.model, { device: opt.device, precision: opt.precision });
  try {
    const text = await model.embedTexts({ Cardiomegaly: 'There is cardiomegaly', Effusion: 'There is effusion' });
    for (const [k, count] of [
      ['small', opt.smallCount],
      ['full', opt.fullCount],
    ]) {
      const stream = async () => {
        let scored = 0;
        const t = performance.now();
        for await (const r of model.classifyStream({
          images: Array.from({ length: count }, () => files[k]),
          prompts: text,
          batchSize: opt.batch,
        })) {
          if (r.error) throw new Error(`${r.name}: ${r.error.message}`);
          scored++;
        }
        if (scored !== count) throw new Error(`classifyStream scored ${scored} of ${count} images`);
        return performance.now() - t;
      };
      await stream(); // warm-up: workspace growth, the decode pool's threads
      const ts = [];
      for (let i = 0; i < opt.reps; i++) ts.push(await stream());
      const ms = median(ts);
      const cv2Ms = cv2.ms?.[files[k]];
      const row = {
        file: k,
        path: files[k],
        images: count,
        stream_ms: ms,
        images_per_s: (count * 1000) / ms,
        ours_one_thread_ms: one[k],
        cv2_one_thread_ms: cv2Ms ?? null,
      };
      if (k === 'full') {
        row.bar = cv2Ms ? (report.cores * 1000) / cv2Ms : null;
        const h = here?.rows?.find((x) => x.file === basename(files[k]));
        if (!cv2Ms && h) {
          row.cv2_estimate_ms = one[k] * (h.cv2_ms / h.native_ms);
          row.bar_estimate = (report.cores * 1000) / row.cv2_estimate_ms;
          row.pass_estimate = opt.device === 'cuda' ? row.images_per_s >= row.bar_estimate : null;
        }
        row.bar_what = 'cores x cv2 single-thread rate';
      } else {
        row.bar = 3000;
        row.bar_what = '3,000 images/s (bf16, GPU)';
      }
      // The bars are GPU lines: on the CPU the model, not the feed, sets the rate.
      row.pass = row.bar === null || opt.device !== 'cuda' ? null : row.images_per_s >= row.bar;
      report.rows.push(row);
      const verdict = row.pass === null ? '' : row.pass ? ' PASS' : ' FAIL';
      const estimate = row.bar_estimate
        ? `; estimated bar ${row.bar_estimate.toFixed(1)} from the staging machine's ratio`
        : '';
      console.log(
        `feed-bench: ${k} ${count} x ${files[k]}: ${row.images_per_s.toFixed(1)} images/s ` +
          `(one thread: ours ${one[k].toFixed(2)} ms, cv2 ${cv2Ms ? cv2Ms.toFixed(2) + ' ms' : 'n/a'}; ` +
          `bar ${row.bar === null ? 'not measured: ' + report.cv2_unavailable : row.bar.toFixed(1)}` +
          `${verdict}${estimate})`,
      );
    }
    text[Symbol.dispose]();
  } finally {
    model.dispose();
  }
  report.ok = true;
} catch (e) {
  report.error = String(e?.stack ?? e);
  console.error(`feed-bench.mjs: ERROR: ${e?.message ?? e}`);
}
report.seconds = Math.round((performance.now() - tStart) / 100) / 10;
if (opt.json) writeFileSync(opt.json, JSON.stringify(report, null, 2) + '\n');
process.exitCode = report.ok ? 0 : 1;
