#!/usr/bin/env node
// train-device.mjs: the trainer on a device against the CPU (issue: training, GPU check).
// Generates a small phantom data set, converts the tiny fixture model and makes a small random
// model with head size 64 ("hs64": width 128, 2 heads; its ViT and BERT attention take the GPU's
// 16-bit tensor-core kernels, bf16 at bf16 and fp16 at fp16, graph.h encoder_attention), runs the same few training
// steps (dropout and augmentation included: both are counter-based, identical on every backend)
// on each device and precision, and compares the logged losses and gradient norms step by step
// with the CPU's run at the same precision. Plain JavaScript over dist/ (runs where only Node and
// the built package are present, e.g. the GPU machine).
//
//   node tools/parity/train-device.mjs [--devices cpu,cuda] [--precisions fp32,bf16,fp16]
//        [--models tiny,hs64] [--steps 4] [--json out.json]
//
// Compared: the FIRST step's loss and gradient norm (|device - cpu| / |cpu|): fp32 <= 1e-4,
// bf16 and fp16 <= 2e-2 (same operand rounding, different accumulation orders). Later steps are
// printed but not bounded: Adam turns last-bit differences in near-zero gradient coordinates into
// lr-sized parameter differences, so trajectories part after a step or two (H100, 2026-11-28:
// fp32 step 1 loss equal to 7 digits and grad norm to 1e-6, step 2 grad norm 5e-4, step 3 7e-2).
// Exit code: 0 within bounds, 1 out of bounds or a run failed, 2 usage.
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
const devices = opt('--devices', 'cpu,cuda').split(',');
const precisions = opt('--precisions', 'fp32,bf16,fp16').split(',');
const models = opt('--models', 'tiny,hs64').split(',');
const steps = Number(opt('--steps', '4'));
const jsonOut = opt('--json', '');
if (
  !(steps >= 1) ||
  devices.some((d) => !['cpu', 'cuda'].includes(d)) ||
  models.some((m) => !['tiny', 'hs64'].includes(m))
) {
  console.error(
    'usage: train-device.mjs [--devices cpu,cuda] [--precisions fp32,bf16,fp16] [--models tiny,hs64] ' +
      '[--steps N] [--json FILE]',
  );
  process.exit(2);
}
const BOUND = { fp32: 1e-4, bf16: 2e-2, fp16: 2e-2 };

// The CPU takes the same mixed-precision attention path as the GPU (16-bit copies of q/k/v and
// out; graph.h encoder_attention), so that bf16/fp16 runs compare like with like. Set before the
// addon loads (read once).
process.env.CARZERO_MIXED_ATTENTION ??= '1';
const { generatePhantomSet } = await import(join(ROOT, 'dist', 'demo', 'phantom.js'));
const { convertCheckpoint } = await import(join(ROOT, 'dist', 'weights', 'convert.js'));
const { Trainer } = await import(join(ROOT, 'dist', 'train', 'trainer.js'));
const { createDemoModel } = await import(join(ROOT, 'dist', 'demo', 'model.js'));

const dir = mkdtempSync(join(tmpdir(), 'cz-train-device-'));
const report = { tool: 'tools/parity/train-device.mjs', steps, runs: [], comparisons: [], ok: true };
try {
  const ph = await generatePhantomSet({
    out: join(dir, 'data'),
    seed: 5,
    train: 24,
    validate: 8,
    test: 0,
    size: [64, 80],
    formats: { png8: 1, png16: 0, jpeg: 0 },
  });
  const FX = join(ROOT, 'test', 'fixtures', 'tiny');
  const modelDirs = {};
  if (models.includes('tiny')) {
    modelDirs.tiny = join(dir, 'model-tiny');
    await convertCheckpoint({
      checkpoint: join(FX, 'carzero-tiny.ckpt'),
      textModel: join(FX, 'bert-tiny'),
      out: modelDirs.tiny,
      vitHeads: 2,
    });
  }
  if (models.includes('hs64')) {
    modelDirs.hs64 = join(dir, 'model-hs64');
    const words = readFileSync(join(ph.out, 'train.csv'), 'utf8')
      .toLowerCase()
      .split(/[^a-z]+/);
    await createDemoModel({
      dir: modelDirs.hs64,
      words,
      seed: 3,
      size: {
        image: 64,
        resize: 72,
        patch: 8,
        width: 128,
        visionDepth: 1,
        textDepth: 1,
        heads: 2,
        headDepth: 1,
        maxLength: 24,
      },
    });
  }
  const logs = {};
  for (const name of models)
    for (const precision of precisions)
      for (const device of devices) {
        const model = modelDirs[name];
        const runDir = join(dir, `run-${name}-${device}-${precision}`);
        const t0 = Date.now();
        try {
          const tr = await Trainer.create(
            {
              model,
              data: { csv: join(ph.out, 'train.csv'), root: ph.out, workers: 0 },
              device,
              precision,
              seed: 7,
              epochs: 50,
              batch_size: 8,
              validation_batch_size: 8,
              optimizer: { lr: 1e-3 },
              scheduler: { name: 'none' },
              max_steps: steps,
              loss_scale: { initial: 1024 },
            },
            runDir,
            { onLoaderError: () => undefined },
          );
          await tr.run();
          await tr.close();
          const lines = readFileSync(join(runDir, 'log.jsonl'), 'utf8')
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l))
            .filter((l) => l.type === 'step');
          logs[`${name}/${device}/${precision}`] = lines;
          report.runs.push({
            model: name,
            device,
            precision,
            seconds: (Date.now() - t0) / 1000,
            steps: lines.map((l) => ({ loss: l.loss, grad_norm: l.grad_norm, skipped: l.skipped ?? false })),
          });
          const perStep = lines.map(
            (l) => `${l.loss.toFixed(5)}/${l.grad_norm === null ? 'skip' : l.grad_norm.toFixed(4)}`,
          );
          console.log(`[${name} ${device} ${precision}] ${perStep.join('  ')}`);
        } catch (e) {
          report.ok = false;
          report.runs.push({ model: name, device, precision, error: String(e?.message ?? e) });
          console.log(`[${name} ${device} ${precision}] FAILED: ${e?.message ?? e}`);
        }
      }
  for (const name of models)
    for (const precision of precisions) {
      const ref = logs[`${name}/cpu/${precision}`];
      for (const device of devices) {
        if (device === 'cpu') continue;
        const got = logs[`${name}/${device}/${precision}`];
        if (!ref || !got) continue;
        let worst = 0;
        for (const k of ['loss', 'grad_norm']) {
          // the first step (see the header)
          if (ref[0]?.[k] == null || got[0]?.[k] == null) {
            worst = Infinity;
            continue;
          }
          worst = Math.max(worst, Math.abs(got[0][k] - ref[0][k]) / Math.abs(ref[0][k]));
        }
        const ok = got.length === ref.length && worst <= BOUND[precision];
        report.ok &&= ok;
        report.comparisons.push({ model: name, device, precision, max_rel_diff: worst, bound: BOUND[precision], ok });
        console.log(
          `[${name} ${device} vs cpu ${precision}] first step: max rel diff ${worst.toExponential(2)} ` +
            `(bound ${BOUND[precision]}): ${ok ? 'PASS' : 'FAIL'}`,
        );
      }
    }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(report, null, 1)}\n`);
process.exit(report.ok ? 0 : 1);
