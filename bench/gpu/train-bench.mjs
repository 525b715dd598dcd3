#!/usr/bin/env node
// train-bench.mjs: training-step throughput of the package (issue: training, GPU benchmark).
// One step = zeroGrad + forwardBackward (the contrastive loss over N image-report pairs, dropout
// on) + clip at global norm 0.25 + Adam, as the trainer does, on random pixels (1-channel 224 x
// 224, the trainer's layout) and tokenised report sentences. Plain JavaScript over dist/.
//
//   node bench/gpu/train-bench.mjs --model DIR [--device cuda] [--precisions fp32,bf16,fp16]
//        [--batches 64,128,256] [--recompute false,true] [--reps 5] [--warmup 2] [--json out.json]
// --recompute: activation recomputation off / on (each listed mode runs every configuration).
// Each (recompute, precision) pair runs in a child process of its own, so a model's device
// memory (its allocator keeps what it freed for reuse) is gone before the next one starts.
//
// Memory: model_peak_bytes is the most the model's device allocator held live during the
// configuration (parameters, gradients, activations, op scratch: NativeModel.deviceMemory, reset
// before each configuration); optimizer_bytes the Adam moments (two fp32 copies of the
// parameters, allocated outside the model); their sum is the step's device memory less the CUDA
// context and the library workspaces. scripts/gpu-model-check.sh also samples nvidia-smi.
// An out-of-memory error at a batch size is recorded and the next configuration runs.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const modelDir = opt('--model', '');
const device = opt('--device', 'cuda');
const precisions = opt('--precisions', 'fp32,bf16,fp16').split(',');
const batches = opt('--batches', '64,128,256').split(',').map(Number);
const reps = Number(opt('--reps', '5'));
const warmup = Number(opt('--warmup', '2'));
const jsonOut = opt('--json', '');
const recomputeModes = opt('--recompute', 'false')
  .split(',')
  .map((x) => x === 'true');
if (!modelDir) {
  console.error('usage: train-bench.mjs --model DIR [--device cuda|cpu] [--precisions ...] [--batches ...]');
  process.exit(2);
}
if (!args.includes('--child') && precisions.length * recomputeModes.length > 1) {
  const report = { tool: 'bench/gpu/train-bench.mjs', device, model: modelDir, reps, warmup, results: [] };
  const dir = mkdtempSync(join(tmpdir(), 'cz-train-bench-'));
  let rc = 0;
  try {
    for (const recompute of recomputeModes)
      for (const precision of precisions) {
        const out = join(dir, `${precision}-${recompute}.json`);
        const childArgs = [
          fileURLToPath(import.meta.url),
          '--child',
          '--model',
          modelDir,
          '--device',
          device,
          '--precisions',
          precision,
          '--recompute',
          String(recompute),
          '--batches',
          batches.join(','),
          '--reps',
          String(reps),
          '--warmup',
          String(warmup),
          '--json',
          out,
        ];
        const r = spawnSync(process.execPath, childArgs, { stdio: 'inherit' });
        if (r.status !== 0) rc = 1;
        try {
          report.results.push(...JSON.parse(readFileSync(out, 'utf8')).results);
        } catch {
          report.results.push({ precision, recompute, error: `child exited with ${r.status ?? r.signal}` });
        }
        if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(report, null, 1)}\n`);
      }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit(rc);
}
const { NativeModel } = await import(join(ROOT, 'dist', 'model', 'native-model.js'));
const { Tensor, ops } = await import(join(ROOT, 'dist', 'index.js'));
const { Tokenizer } = await import(join(ROOT, 'dist', 'text', 'tokenizer.js'));
const { Optimizer } = await import(join(ROOT, 'dist', 'train', 'optim.js'));

const SENTENCES = [
  'there is a small left pleural effusion',
  'mild cardiomegaly is noted',
  'no pneumothorax is seen',
  'patchy opacity in the right lower lobe concerning for pneumonia',
  'the lungs are clear',
  'a 1 cm nodule projects over the left upper lobe',
  'bibasilar atelectasis',
  'healing fracture of a left rib',
];
let seed = 12345;
const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
const report = { tool: 'bench/gpu/train-bench.mjs', device, model: modelDir, reps, warmup, results: [] };
const tok = await Tokenizer.fromFile(join(modelDir, 'tokenizer.json'));
for (const recompute of recomputeModes)
  for (const precision of precisions) {
    const model = await NativeModel.load(modelDir, { device, precision: 'fp32' });
    model.enableTraining({ seed: 1, precision, recompute });
    const params = model.parameters();
    const grads = model.gradients();
    const optim = new Optimizer(
      { name: 'adam', lr: 5e-5, betas: [0.5, 0.999], eps: 1e-8, weight_decay: 1e-6, momentum: 0.9 },
      params,
      grads,
    );
    const L = model.config.text.max_length;
    const optimizerBytes = 2 * params.reduce((s, p) => s + p.tensor.size * 4, 0);
    for (const n of batches) {
      let t = null;
      model.deviceMemory({ resetPeak: true });
      try {
        const px = new Float32Array(n * 224 * 224);
        for (let i = 0; i < px.length; i++) px[i] = rnd() * 4 - 2;
        const texts = Array.from({ length: n }, (_, i) => SENTENCES[i % SENTENCES.length]);
        const enc = tok.encode(texts, { maxLength: L });
        t = {
          pixels: Tensor.from(px, [n, 1, 224, 224], { device: model.device }),
          ids: Tensor.from(enc.ids, [n, L], { dtype: 'i32', device: model.device }),
          mask: Tensor.from(enc.mask, [n, L], { dtype: 'u8', device: model.device }),
          kinds: Tensor.from(enc.kinds, [n, L], { dtype: 'u8', device: model.device }),
        };
        const gradTensors = grads.map((g) => g.tensor);
        let micro = 0;
        const step = async () => {
          model.zeroGrad();
          const r = await model.forwardBackward({ ...t, lossScale: 1, dropout: true, step: micro++ });
          await ops.clipGradNorm({ grads: gradTensors, maxNorm: 0.25 });
          await optim.update(5e-5);
          return r.loss;
        };
        for (let i = 0; i < warmup; i++) await step();
        const times = [];
        let loss = 0;
        for (let i = 0; i < reps; i++) {
          const t0 = performance.now();
          loss = await step(); // awaits the device work (the loss is read back)
          times.push(performance.now() - t0);
        }
        times.sort((a, b) => a - b);
        const ms = times[Math.floor(times.length / 2)];
        const ws = model.workspaceBytes();
        const peak = model.deviceMemory().peakInUse;
        report.results.push({
          precision,
          recompute,
          batch: n,
          ms_median: ms,
          ms_min: times[0],
          samples_per_s: n / (ms / 1000),
          loss,
          workspace_bytes: ws,
          model_peak_bytes: peak,
          optimizer_bytes: optimizerBytes,
        });
        console.log(
          `[${device} ${precision}${recompute ? ' recompute' : ''}] train step B=${n}: ` +
            `median ${ms.toFixed(1)} ms (${(n / (ms / 1000)).toFixed(1)} samples/s), loss ${loss.toFixed(4)}, ` +
            `activation workspace ${(ws / 2 ** 30).toFixed(2)} GiB, model peak ${(peak / 2 ** 30).toFixed(2)} GiB ` +
            `+ optimizer ${(optimizerBytes / 2 ** 30).toFixed(2)} GiB`,
        );
      } catch (e) {
        report.results.push({ precision, recompute, batch: n, error: String(e?.message ?? e) });
        console.log(`[${device} ${precision}${recompute ? ' recompute' : ''}] train step B=${n}: ${e?.message ?? e}`);
      } finally {
        if (t) for (const x of Object.values(t)) x.dispose();
      }
      if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(report, null, 1)}\n`);
    }
    model.dispose();
  }
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(report, null, 1)}\n`);
