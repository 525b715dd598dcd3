#!/usr/bin/env node
// The CARZero model through the COMPILED package (dist/, build/Release/carzero.node) on a device,
// with bare `node` (no tsx): the GPU session's model benchmark (scripts/gpu-model-check.sh), also
// runnable on the CPU with small batches as a rehearsal.
//
//   node bench/gpu/model-bench.mjs --model DIR [--device cuda|cpu] [--batch 256] [--texts 14]
//        [--precision fp32,tf32,bf16] [--bert-batch N] [--reps 10] [--warmup 2] [--max-images N] [--images DIR]
//        [--e2e-batch 64] [--json out.json]
//
// --model      a converted model directory (carzero convert; the parity tool's --keep writes one)
// --images     a folder of PNG/JPEG files (the reference root's images/): adds the end-to-end
//              classify row (decode + preprocess in JS on the CPU, then embed + score on the device)
// Rows (synthetic inputs, uploaded to the device once; medians of reps after warm-up; every timed
// call ends when its results are on the device and one small result has been read back):
//   embed_images B (NativeModel, (B, 3, 224, 224) f32)           images/s
//   embed_texts Q (NativeModel, ids/mask/kinds (Q, 97))          texts/s
//   embed_texts at --bert-batch texts (default: the largest --batch; one BERT chunk): the BERT-base
//     (L = 97) row that bench/gpu/torch_model_bench.py --bert times in PyTorch   texts/s
//   score B x Q, both directions (no maps) and with maps         pairs/s
//   classify B images x Q prompts: embed_images + score against prepared prompt embeddings, from
//     pixels already on the device ("model only") and from host pixels (upload included)  images/s
//   classify end to end (--images): CARZero decode + preprocess + embed + score        images/s
import { readdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const DIST = resolve(HERE, '..', '..', 'dist', 'index.js');
const DIST_INTERNAL = resolve(HERE, '..', '..', 'dist', 'internal.js'); // NativeModel (carzero/internal)

function parseArgs(argv) {
  const o = {
    model: undefined,
    device: 'cuda',
    batches: [256],
    texts: 14,
    precisions: undefined, // fp32,tf32,bf16 on cuda; fp32,bf16 on the CPU (tf32 is fp32 there)
    bertBatch: undefined,
    reps: 10,
    warmup: 2,
    maxImages: undefined,
    images: undefined,
    e2eBatch: 64,
    json: undefined,
  };
  const val = (i) => {
    if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value`);
    return argv[i + 1];
  };
  const int = (s, name) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${s}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--model') o.model = val(i++);
    else if (a === '--device') o.device = val(i++);
    else if (a === '--batch')
      o.batches = val(i++)
        .split(',')
        .map((s) => int(s, '--batch'));
    else if (a === '--texts') o.texts = int(val(i++), '--texts');
    else if (a === '--precision') o.precisions = val(i++).split(',').filter(Boolean);
    else if (a === '--bert-batch') o.bertBatch = int(val(i++), '--bert-batch');
    else if (a === '--reps') o.reps = int(val(i++), '--reps');
    else if (a === '--warmup') o.warmup = int(val(i++), '--warmup');
    else if (a === '--max-images') o.maxImages = int(val(i++), '--max-images');
    else if (a === '--images') o.images = val(i++);
    else if (a === '--e2e-batch') o.e2eBatch = int(val(i++), '--e2e-batch');
    else if (a === '--json') o.json = val(i++);
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.model) throw new Error('--model DIR is required (a converted model directory)');
  if (!['cpu', 'cuda'].includes(o.device)) throw new Error(`--device must be cpu or cuda, got ${o.device}`);
  o.precisions ??= o.device === 'cuda' ? ['fp32', 'tf32', 'bf16'] : ['fp32', 'bf16'];
  o.bertBatch ??= Math.max(...o.batches);
  for (const p of o.precisions)
    if (!['fp32', 'tf32', 'bf16'].includes(p)) throw new Error(`--precision: fp32, tf32 and/or bf16, got ${p}`);
  if (o.reps < 1 || o.texts < 1 || o.batches.some((b) => b < 1))
    throw new Error('--reps, --texts and --batch must be >= 1');
  return o;
}

let opt;
try {
  opt = parseArgs(process.argv.slice(2));
} catch (e) {
  console.error(`model-bench.mjs: ${e.message}`);
  process.exit(2);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function timeIt(fn, reps, warmup) {
  for (let i = 0; i < warmup; i++) await fn();
  const ts = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await fn();
    ts.push(performance.now() - t);
  }
  return { ms_median: median(ts), ms_min: Math.min(...ts), reps };
}

// Deterministic pseudo-random floats in [-1.5, 1.5).
function synth(n, seed) {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    a[i] = (s / 4294967296) * 3 - 1.5;
  }
  return a;
}

const report = {
  tool: 'bench/gpu/model-bench.mjs',
  node: process.version,
  device: opt.device,
  model: resolve(opt.model),
  texts: opt.texts,
  reps: opt.reps,
  warmup: opt.warmup,
  max_images: opt.maxImages ?? null,
  host_cpus: cpus().length,
  ok: false,
  results: [],
  notes: [],
};
const flush = () => {
  if (opt.json) writeFileSync(opt.json, JSON.stringify(report, null, 2) + '\n');
};

const tStart = performance.now();
try {
  const cz = await import(DIST);
  const { Device, Tensor, CARZero } = cz;
  const { NativeModel } = await import(DIST_INTERNAL);
  report.info = cz.info();
  const device = opt.device === 'cuda' ? Device.cuda() : Device.cpu();
  report.device_name = String(device);
  const row = (r) => {
    const out = { ...r, per_s: (r.items * 1000) / r.ms_median };
    report.results.push(out);
    console.log(
      `[${opt.device} ${r.precision}] ${r.what.padEnd(44)} B=${String(r.batch ?? '-').padEnd(4)} ` +
        `Q=${String(r.texts ?? '-').padEnd(3)} ` +
        `median ${r.ms_median.toFixed(2).padStart(9)} ms  min ${r.ms_min.toFixed(2).padStart(9)} ms  ` +
        `(${out.per_s.toFixed(1)} ${r.unit})`,
    );
    flush();
  };
  const Q = opt.texts;
  const L = 97;
  // Synthetic token rows like native/bench/bench_model.cpp: 8..47 tokens, some '##' pieces
  // (torch_model_bench.py --bert pads its rows the same way).
  const textRows = (count) => {
    const ids = new Int32Array(count * L);
    const mask = new Uint8Array(count * L);
    const kinds = new Uint8Array(count * L);
    for (let q = 0; q < count; q++) {
      const n = 8 + ((q * 3) % 40);
      for (let i = 0; i < L; i++) {
        if (i < n) {
          ids[q * L + i] = i === 0 ? 101 : i === n - 1 ? 102 : 1000 + ((q * 131 + i * 17) % 27000);
          mask[q * L + i] = 1;
          kinds[q * L + i] = i === n - 1 ? 2 : i > 1 && i % 4 === 0 ? 1 : 0;
        } else kinds[q * L + i] = 3;
      }
    }
    return [
      Tensor.from(ids, [count, L], { dtype: 'i32', device }),
      Tensor.from(mask, [count, L], { dtype: 'u8', device }),
      Tensor.from(kinds, [count, L], { dtype: 'u8', device }),
    ];
  };
  const [idsT, maskT, kindsT] = textRows(Q);
  const bertT = opt.bertBatch !== Q ? textRows(opt.bertBatch) : undefined;
  const hostPx = new Map(opt.batches.map((B) => [B, synth(B * 3 * 224 * 224, 12345 + B)]));
  const devPx = new Map([...hostPx].map(([B, px]) => [B, Tensor.from(px, [B, 3, 224, 224], { device })]));

  for (const precision of opt.precisions) {
    const tl = performance.now();
    const m = await NativeModel.load(opt.model, {
      device,
      precision,
      maxTexts: Math.max(128, opt.bertBatch),
      ...(opt.maxImages ? { maxImages: opt.maxImages } : {}),
    });
    report.results.push({ precision, what: 'load', ms: Math.round(performance.now() - tl) });
    const dispose = (r) => {
      for (const t of Object.values(r)) t?.dispose?.();
    };
    try {
      // embed_images at each batch
      for (const B of opt.batches) {
        const px = devPx.get(B);
        const t = await timeIt(
          async () => {
            const r = await m.embedImages(px);
            await r.global.read();
            dispose(r);
          },
          opt.reps,
          opt.warmup,
        );
        row({ precision, what: 'embed_images', batch: B, items: B, unit: 'images/s', ...t });
      }
      // embed_texts
      const tt = await timeIt(
        async () => {
          const r = await m.embedTexts(idsT, maskT, kindsT);
          await r.sentence.read();
          dispose(r);
        },
        opt.reps,
        opt.warmup,
      );
      row({ precision, what: 'embed_texts (L=97)', texts: Q, items: Q, unit: 'texts/s', ...tt });
      if (bertT) {
        const tb = await timeIt(
          async () => {
            const r = await m.embedTexts(...bertT);
            await r.sentence.read();
            dispose(r);
          },
          opt.reps,
          opt.warmup,
        );
        const n = opt.bertBatch;
        row({ precision, what: 'embed_texts (L=97)', texts: n, items: n, unit: 'texts/s', ...tb });
      }
      // score and classify at the largest batch
      const B = Math.max(...opt.batches);
      const txt = await m.embedTexts(idsT, maskT, kindsT);
      const img = await m.embedImages(devPx.get(B));
      for (const attention of [false, true]) {
        const t = await timeIt(
          async () => {
            const r = await m.score(img.global, img.local, txt.sentence, txt.words, { attention });
            await r.score.read();
            dispose(r);
          },
          opt.reps,
          opt.warmup,
        );
        row({
          precision,
          what: attention ? 'score with grounding maps' : 'score (both directions)',
          batch: B,
          texts: Q,
          items: B * Q,
          unit: 'pairs/s',
          ...t,
        });
      }
      dispose(img);
      const tc = await timeIt(
        async () => {
          const e = await m.embedImages(devPx.get(B));
          const r = await m.score(e.global, e.local, txt.sentence, txt.words);
          await r.score.read();
          dispose(r);
          dispose(e);
        },
        opt.reps,
        opt.warmup,
      );
      row({
        precision,
        what: `classify ${Q} prompts, model only`,
        batch: B,
        texts: Q,
        items: B,
        unit: 'images/s',
        ...tc,
      });
      const hp = hostPx.get(B);
      const th = await timeIt(
        async () => {
          const px = Tensor.from(hp, [B, 3, 224, 224], { device });
          const e = await m.embedImages(px);
          const r = await m.score(e.global, e.local, txt.sentence, txt.words);
          await r.score.read();
          dispose(r);
          dispose(e);
          px.dispose();
        },
        opt.reps,
        opt.warmup,
      );
      row({
        precision,
        what: `classify ${Q} prompts, host pixels`,
        batch: B,
        texts: Q,
        items: B,
        unit: 'images/s',
        ...th,
      });
      dispose(txt);
    } finally {
      m.dispose();
    }
    // End to end through CARZero (decode + preprocess on the CPU in JS, then the device).
    if (opt.images) {
      const dir = resolve(opt.images);
      const files = readdirSync(dir)
        .filter((f) => /\.(png|jpe?g)$/i.test(f))
        .sort()
        .map((f) => join(dir, f));
      if (files.length === 0) report.notes.push(`--images ${dir}: no PNG/JPEG files`);
      else {
        const E = opt.e2eBatch;
        const batch = Array.from({ length: E }, (_, i) => files[i % files.length]);
        const model = await CARZero.load(opt.model, { device, precision });
        try {
          const findings = [
            'atelectasis',
            'cardiomegaly',
            'effusion',
            'pleural thickening',
            'calcified granuloma',
            'edema',
            'pneumonia',
          ];
          const prompts = Array.from(
            { length: Q },
            (_, i) => `there is ${findings[i % 7]} in the ${['left', 'right'][i % 2]} lung`,
          );
          const txt = await model.embedTexts(prompts);
          const t = await timeIt(
            async () => {
              const prepared = await Promise.all(batch.map((f) => model.prepareImage(f)));
              const e = await model.embedPrepared(prepared);
              await model.score(e, txt);
              e[Symbol.dispose]();
            },
            Math.min(opt.reps, 3),
            1,
          );
          row({
            precision,
            what: `classify ${Q} prompts, end to end (files)`,
            batch: E,
            texts: Q,
            items: E,
            unit: 'images/s',
            ...t,
          });
          txt[Symbol.dispose]();
        } finally {
          model.dispose();
        }
      }
    }
  }
  for (const t of [idsT, maskT, kindsT, ...(bertT ?? []), ...devPx.values()]) t.dispose();
  report.ok = true;
} catch (e) {
  report.error = String(e?.stack ?? e);
  console.error(`model-bench.mjs: ERROR: ${e?.message ?? e}`);
}
report.seconds = Math.round((performance.now() - tStart) / 100) / 10;
flush();
process.exitCode = report.ok ? 0 : 1;
