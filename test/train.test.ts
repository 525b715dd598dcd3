// The trainer (src/train/, docs/TRAINING.md "Trainer") on the tiny model and the generated
// MIMIC-style data set (test/data-helpers.ts): the validation loss falls, exact resume across a
// fresh process, crash safety under SIGKILL, config errors naming the field, the schedulers.
import test from 'ava';
import { spawn, execFile } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Device, Tensor } from '../src/index.js';
import { NativeModel } from '../src/model/native-model.js';
import { DataLoader, readMimicCsv } from '../src/data/index.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { convertCheckpoint } from '../src/weights/convert.js';
import { ConfigError, defaultConfig, validateConfig, batchSizeFor } from '../src/train/config.js';
import { lrAt, plateauInit, plateauStep } from '../src/train/optim.js';
import { contrastiveLoss, Trainer } from '../src/train/trainer.js';
import { makeDataset } from './data-helpers.js';

const run = promisify(execFile);
const FX = join(import.meta.dirname, 'fixtures', 'tiny');
const BIN = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
let dir = '';
let modelDir = '';
let data = { root: '', csv: '' };

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cz-trainer-test-'));
  modelDir = join(dir, 'model');
  await convertCheckpoint({
    checkpoint: join(FX, 'carzero-tiny.ckpt'),
    textModel: join(FX, 'bert-tiny'),
    out: modelDir,
    vitHeads: 2,
  });
  data = makeDataset();
});

test.after.always(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** 14 readable training images -> 3 batches of 4 per epoch; 2 validation images. */
function cfg(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: modelDir,
    data: { csv: data.csv, root: data.root, workers: 0 },
    device: 'cpu',
    epochs: 3,
    batch_size: 4,
    validation_batch_size: 2,
    optimizer: { lr: 1e-3 },
    ...over,
  };
}

const quiet = { onLoaderError: () => undefined };

function files(runDir: string, link: 'last' | 'best'): { model: Buffer; opt: Buffer; state: Record<string, unknown> } {
  const d = join(runDir, link);
  return {
    model: readFileSync(join(d, 'model.safetensors')),
    opt: readFileSync(join(d, 'optimizer.safetensors')),
    state: JSON.parse(readFileSync(join(d, 'trainer.json'), 'utf8')) as Record<string, unknown>,
  };
}

function logLines(runDir: string): Record<string, unknown>[] {
  return readFileSync(join(runDir, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const o = JSON.parse(l) as Record<string, unknown>;
      delete o.time;
      delete o.samples_per_s;
      return o;
    });
}

test('the validation loss of the contrastive objective matches forwardBackward (dropout off)', async (t) => {
  const device = Device.cpu();
  const m = await NativeModel.load(modelDir, { device });
  m.enableTraining({ seed: 0 });
  const tok = await Tokenizer.fromFile(join(modelDir, 'tokenizer.json'));
  const ds = await readMimicCsv(data.csv, { root: data.root, split: 'train' });
  const dl = new DataLoader(ds, { batchSize: 4, workers: 0, augment: false, shuffle: false, onError: () => undefined });
  const b = (await dl.next())!;
  await dl.close();
  const enc = tok.encode(b.texts, { maxLength: 97 });
  const px = Tensor.from(b.pixels, [4, 1, 224, 224], { device });
  const ids = Tensor.from(enc.ids, [4, 97], { dtype: 'i32', device });
  const mask = Tensor.from(enc.mask, [4, 97], { dtype: 'u8', device });
  const kinds = Tensor.from(enc.kinds, [4, 97], { dtype: 'u8', device });
  const r = await m.forwardBackward({ pixels: px, ids, mask, kinds, dropout: false, matrices: true });
  const c = contrastiveLoss(r.i2t!.toFloat32(), r.t2i!.toFloat32(), 4);
  t.true(Math.abs(c.loss - r.loss) < 1e-5 * r.loss, `${c.loss} vs ${r.loss}`);
  t.true(Math.abs(c.i2t_loss - r.i2t_loss) < 1e-5 * r.i2t_loss);
  t.true(Math.abs(c.t2i_loss - r.t2i_loss) < 1e-5 * r.t2i_loss);
  m.dispose();
});

test('training lowers the validation loss; best/ is a loadable model directory; log.jsonl', async (t) => {
  const runDir = join(dir, 'run-fall');
  const tr = await Trainer.create(cfg({ epochs: 6 }), runDir, quiet);
  const before = await tr.validate();
  const r = await tr.run();
  await tr.close();
  const vals = r.history.map((h) => h.val_loss);
  t.log(`validation loss: untrained ${before.loss.toFixed(4)}, by epoch ${vals.map((v) => v.toFixed(4)).join(' ')}`);
  t.is(r.steps, 18);
  t.is(r.stopped, 'epochs');
  t.true(vals[vals.length - 1] < before.loss - 0.5, `last ${vals[vals.length - 1]} vs untrained ${before.loss}`);
  t.true(Math.min(...vals) < before.loss - 0.5);
  t.is(r.best_val_loss, Math.min(...vals));
  const log = logLines(runDir);
  t.is(log.filter((l) => l.type === 'step').length, 18);
  t.is(log.filter((l) => l.type === 'epoch').length, 6);
  for (const l of log.filter((x) => x.type === 'step'))
    for (const k of ['loss', 'i2t_loss', 't2i_loss', 'lr', 'grad_norm', 'epoch', 'step'])
      t.true(Number.isFinite(l[k]), k);
  // best/ is a complete model directory
  t.true(existsSync(join(runDir, 'best', 'config.json')) && existsSync(join(runDir, 'best', 'tokenizer.json')));
  const m = await NativeModel.load(join(runDir, 'best'), { device: Device.cpu() });
  t.is(m.config.vision.width, 32);
  m.dispose();
  const best = files(runDir, 'best').state as { best_val_loss: number };
  t.is(best.best_val_loss, Math.min(...vals));
});

test('exact resume: 4 steps straight == 2 steps + checkpoint + a fresh process + 2 steps', async (t) => {
  // 3 batches per epoch: the second half crosses an epoch end (validation, scheduler, new order).
  const a = join(dir, 'run-straight');
  const ta = await Trainer.create(cfg({ max_steps: 4 }), a, quiet);
  t.is((await ta.run()).steps, 4);
  await ta.close();

  const b = join(dir, 'run-split');
  const tb = await Trainer.create(cfg({ max_steps: 2 }), b, quiet);
  t.is((await tb.run()).steps, 2);
  await tb.close();
  const { stderr } = await run(process.execPath, [BIN, 'train', '--resume', b, '--max-steps', '4', '--quiet']);
  t.regex(stderr, /4 steps/);

  const fa = files(a, 'last');
  const fb = files(b, 'last');
  t.true(fa.model.equals(fb.model), 'model.safetensors bit-identical');
  t.true(fa.opt.equals(fb.opt), 'optimizer.safetensors bit-identical');
  const strip = (s: Record<string, unknown>) => ({
    ...s,
    log_bytes: 0,
    config: { ...(s.config as object), max_steps: 0 },
  });
  t.deepEqual(strip(fb.state), strip(fa.state));
  t.deepEqual(logLines(b), logLines(a), 'identical losses, lr and grad norms per step, identical epoch lines');
  t.is(logLines(a).filter((l) => l.type === 'step').length, 4);
});

test('crash safety: SIGKILL mid-run, stray temp files ignored and removed, resume == uninterrupted', async (t) => {
  const config = cfg({ epochs: 4, checkpoint_every: 1 });
  const ref = join(dir, 'run-ref');
  const tr = await Trainer.create(config, ref, quiet);
  await tr.run();
  await tr.close();

  const runDir = join(dir, 'run-crash');
  const cfgFile = join(dir, 'crash.json');
  writeFileSync(cfgFile, JSON.stringify(config));
  const child = spawn(process.execPath, [BIN, 'train', '--config', cfgFile, '--out', runDir, '--quiet'], {
    stdio: 'ignore',
  });
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  let killedAt = -1;
  for (let i = 0; i < 3000; i++) {
    if (existsSync(join(runDir, 'last'))) {
      // let it get into the next steps (and likely into a checkpoint write), then kill -9
      await new Promise((r) => setTimeout(r, 60));
      killedAt = i;
      child.kill('SIGKILL');
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const code = await exited;
  t.true(killedAt >= 0, 'a first checkpoint appeared');
  t.is(code, null, 'killed by the signal, not finished');
  const stepBefore = (files(runDir, 'last').state as { step: number }).step;
  t.true(stepBefore >= 1 && stepBefore < 12, `killed at step ${stepBefore}`);
  // A half-written checkpoint and link, as a crash in the middle of a write leaves them.
  const stray = join(runDir, 'checkpoints', '.tmp-deadbeef');
  mkdirSync(stray, { recursive: true });
  writeFileSync(join(stray, 'trainer.json'), '{"format": "carzero-train-st');
  symlinkSync(join('checkpoints', '.tmp-deadbeef'), join(runDir, '.last-deadbeef.tmp'));
  t.true(readlinkSync(join(runDir, 'last')).startsWith('checkpoints/ckpt-'));

  const tr2 = await Trainer.resume(runDir, quiet);
  t.false(existsSync(stray), 'temp checkpoint folder removed');
  t.throws(() => lstatSync(join(runDir, '.last-deadbeef.tmp')), { code: 'ENOENT' });
  t.is(tr2.state.step, stepBefore);
  const r = await tr2.run();
  await tr2.close();
  t.is(r.steps, 12);
  t.true(
    files(runDir, 'last').model.equals(files(ref, 'last').model),
    'the resumed run ends bit-identical to the uninterrupted one',
  );
  t.deepEqual(logLines(runDir), logLines(ref), 'the log has no duplicate or missing lines');
});

test('config errors name the field; precision and unknown fields; the defaults are the recipe', async (t) => {
  const base = { model: 'm', data: { csv: 'x.csv' } };
  const err = (c: unknown, field: string) => {
    const e = t.throws(() => validateConfig(c), { instanceOf: ConfigError });
    t.is(e?.field, field, e?.message);
  };
  err({ ...base, optimizer: { lr: -1 } }, 'optimizer.lr');
  err({ ...base, optimizer: { betas: [0.5] } }, 'optimizer.betas');
  err({ ...base, optimizr: {} }, 'optimizr');
  err({ ...base, scheduler: { name: 'step' } }, 'scheduler.name');
  err(
    {
      ...base,
      batch_size: [
        { from_epoch: 0, size: 8 },
        { from_epoch: 0, size: 16 },
      ],
    },
    'batch_size[1].from_epoch',
  );
  err({ ...base, accumulate_steps: 0 }, 'accumulate_steps');
  err({ data: { csv: 'x.csv' } }, 'model');
  err({ model: 'm' }, 'data');
  err({ ...base, data: { csv: 'x.csv', workers: 'two' } }, 'data.workers');
  const p = t.throws(() => validateConfig({ ...base, precision: 'tf32' }), { instanceOf: ConfigError });
  t.regex(p!.message, /precision.*'fp32', 'bf16', 'fp16'/);
  const ls = t.throws(() => validateConfig({ ...base, precision: 'fp16', loss_scale: { backoff_factor: 2 } }), {
    instanceOf: ConfigError,
  });
  t.regex(ls!.message, /loss_scale\.backoff_factor/);
  t.is(validateConfig({ ...base, precision: 'bf16' }).precision, 'bf16');
  const d = defaultConfig();
  t.deepEqual(d.optimizer, {
    name: 'adam',
    lr: 5e-5,
    betas: [0.5, 0.999],
    eps: 1e-8,
    weight_decay: 1e-6,
    momentum: 0.9,
  });
  t.is(d.clip_grad_norm, 0.25);
  t.is(d.epochs, 15);
  t.is(d.early_stopping_patience, 10);
  t.deepEqual(
    [0, 1, 2, 5, 6, 14].map((e) => batchSizeFor(d, e)),
    [64, 64, 128, 128, 256, 256],
  );
  // the CLI: --print-config, and a bad config file named with its field (exit 2)
  const { stdout } = await run(process.execPath, [BIN, 'train', '--print-config']);
  t.deepEqual(JSON.parse(stdout), d);
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify(cfg({ scheduler: { patience: -2 } })));
  const e = await run(process.execPath, [BIN, 'train', '--config', bad, '--out', join(dir, 'run-bad')]).then(
    () => null,
    (x: { code: number; stderr: string }) => x,
  );
  t.is(e?.code, 2);
  t.regex(e?.stderr ?? '', /scheduler\.patience/);
});

test('ReduceLROnPlateau (PyTorch semantics), warm-up and cosine', (t) => {
  const c = defaultConfig().scheduler;
  const s = plateauInit(1);
  t.false(plateauStep(s, 10, c));
  // 1e-4 rel threshold: 9.9995 is not an improvement on 10
  for (let i = 0; i < 5; i++) t.false(plateauStep(s, 9.9995, c));
  t.true(plateauStep(s, 9.9995, c), 'the 6th bad epoch (> patience 5) halves the lr');
  t.is(s.lr, 0.5);
  t.is(s.num_bad_epochs, 0);
  t.false(plateauStep(s, 9, c));
  t.is(s.best, 9);
  const w = { ...c, name: 'cosine' as const, warmup_steps: 4, min_lr: 0 };
  t.deepEqual(
    [0, 1, 2, 3].map((i) => lrAt(i, 1, 1, w, 104)),
    [0.25, 0.5, 0.75, 1],
  );
  t.is(lrAt(4, 1, 1, w, 104), 1);
  t.true(Math.abs(lrAt(54, 1, 1, w, 104) - 0.5) < 1e-12);
  t.is(lrAt(104, 1, 1, w, 104), 0);
  t.is(lrAt(7, 1, 0.25, { ...c, warmup_steps: 0 }, 100), 0.25);
});

test('AdamW, SGD, gradient accumulation and frozen encoders run and keep frozen weights unchanged', async (t) => {
  for (const [name, over] of [
    ['adamw', { optimizer: { name: 'adamw', lr: 1e-3, weight_decay: 0.01 } }],
    ['sgd', { optimizer: { name: 'sgd', lr: 1e-2 }, accumulate_steps: 2, batch_size: 2 }],
    ['frozen', { freeze: { vision: true, text: true }, scheduler: { name: 'cosine', warmup_steps: 2 } }],
  ] as const) {
    const runDir = join(dir, `run-${name}`);
    const tr = await Trainer.create(cfg({ epochs: 1, ...over }), runDir, quiet);
    const r = await tr.run();
    await tr.close();
    t.true(r.steps > 0 && Number.isFinite(r.history[0].val_loss), name);
    if (name === 'sgd') t.is(r.steps, 4, '7 batches of 2 -> 4 optimizer steps (the last with 1 batch)');
    if (name === 'frozen') {
      const { readSafetensors } = await import('../src/weights/safetensors.js');
      const a = await readSafetensors(join(modelDir, 'model.safetensors'));
      const b = await readSafetensors(join(runDir, 'last', 'model.safetensors'));
      let changedHead = false;
      for (const [k, v] of a.tensors) {
        const same = Buffer.compare(v.data, b.tensors.get(k)!.data) === 0;
        if (k.startsWith('img_encoder.') || k.startsWith('text_encoder.')) t.true(same, `${k} frozen`);
        else if (!same) changedHead = true;
      }
      t.true(changedHead, 'the head was trained');
    }
  }
});

const mixedPrecisionTitle =
  'mixed precision: bf16 and fp16 steps track fp32 without equalling it; ' +
  'fp16 loss scaling backs off on overflow, grows, and resumes exactly';
test(mixedPrecisionTitle, async (t) => {
  // 1. The first step of the same run at each precision: the loss and the gradient norm follow
  //    fp32 within the precision's rounding, and differ from it (so the precision is really used).
  const first = async (precision: string) => {
    const d = join(dir, `run-mp-${precision}`);
    const tr = await Trainer.create(cfg({ precision, max_steps: 1, loss_scale: { initial: 1024 } }), d, quiet);
    await tr.run();
    await tr.close();
    return logLines(d).find((l) => l.type === 'step') as unknown as StepLine;
  };
  const f32 = await first('fp32');
  for (const [p, tol] of [
    ['bf16', 3e-2],
    ['fp16', 5e-3],
  ] as const) {
    const x = await first(p);
    const lossErr = Math.abs(x.loss - f32.loss) / Math.abs(f32.loss);
    const normErr = Math.abs(x.grad_norm - f32.grad_norm) / f32.grad_norm;
    t.true(
      lossErr < tol && normErr < tol,
      `${p}: loss ${x.loss} vs ${f32.loss}, grad norm ${x.grad_norm} vs ${f32.grad_norm} (tolerance ${tol})`,
    );
    t.true(x.loss !== f32.loss && x.grad_norm !== f32.grad_norm, `${p} rounds: the numbers differ from fp32`);
  }

  // 2. fp16 with a loss scale so large that dZ overflows half: skipped steps halve the scale until
  //    the gradients are finite; growth after growth_interval good steps; exact resume of it all.
  const over = { precision: 'fp16', loss_scale: { initial: 2 ** 24, growth_interval: 3 }, epochs: 6 };
  const a = join(dir, 'run-fp16-straight');
  const ta = await Trainer.create(cfg({ ...over, max_steps: 16 }), a, quiet);
  t.is((await ta.run()).steps, 16);
  await ta.close();
  const steps = logLines(a).filter((l) => l.type === 'step') as unknown as StepLine[];
  t.true(steps[0].skipped === true && steps[0].loss_scale === 2 ** 24, 'the first step overflows and is skipped');
  const firstGood = steps.findIndex((s) => !s.skipped);
  t.true(firstGood > 0, 'a finite step follows after backing off');
  for (let i = 1; i <= firstGood; i++)
    t.is(steps[i].loss_scale, steps[i - 1].loss_scale! / 2, 'halved after each skip');
  const grown = steps.slice(firstGood).findIndex((s, i, arr) => i > 0 && s.loss_scale! > arr[i - 1].loss_scale!);
  t.true(grown > 0, 'the scale grows after growth_interval finite steps');
  t.true(steps.filter((s) => !s.skipped).every((s) => Number.isFinite(s.grad_norm) && Number.isFinite(s.loss)));
  const b = join(dir, 'run-fp16-split');
  const tb = await Trainer.create(cfg({ ...over, max_steps: 8 }), b, quiet);
  await tb.run();
  await tb.close();
  const tc = await Trainer.resume(b, { ...quiet, maxSteps: 16 });
  await tc.run();
  await tc.close();
  const fa = files(a, 'last');
  const fb = files(b, 'last');
  t.true(fa.model.equals(fb.model), 'model.safetensors bit-identical');
  t.deepEqual(
    (fb.state as { scaler: unknown }).scaler,
    (fa.state as { scaler: unknown }).scaler,
    'loss scaler state restored',
  );
});

interface StepLine {
  type: string;
  loss: number;
  grad_norm: number;
  loss_scale?: number;
  skipped?: boolean;
}

test('activation recomputation: the same training bit for bit (dropout on) in a smaller workspace', async (t) => {
  const ws: number[] = [];
  const models: Buffer[] = [];
  const steps: unknown[][] = [];
  for (const recompute of [false, true]) {
    const d = join(dir, `run-recompute-${recompute}`);
    const tr = await Trainer.create(cfg({ recompute, max_steps: 3, dropout: true }), d, quiet);
    await tr.run();
    ws.push((tr as unknown as { model: NativeModel }).model.workspaceBytes());
    await tr.close();
    models.push(files(d, 'last').model);
    steps.push(
      logLines(d)
        .filter((l) => l.type === 'step')
        .map((l) => [l.loss, l.grad_norm]),
    );
  }
  t.deepEqual(steps[1], steps[0], 'identical losses and gradient norms per step');
  t.true(models[0].equals(models[1]), 'identical parameters after 3 steps');
  t.true(ws[1] < ws[0], `workspace ${ws[1]} bytes with recompute < ${ws[0]} without`);
  t.log(`workspace: ${ws[0]} -> ${ws[1]} bytes`);
});

test('data parallel: rank slices, clear errors without CUDA/NCCL (the NCCL path itself needs GPUs)', async (t) => {
  const { rankSlice } = await import('../src/train/trainer.js');
  const px = Float32Array.from({ length: 6 * 4 }, (_, i) => i);
  const texts = ['a', 'b', 'c', 'd', 'e', 'f'];
  const [p1, t1] = rankSlice(px, texts, 1, 3);
  t.deepEqual(Array.from(p1), [8, 9, 10, 11, 12, 13, 14, 15]);
  t.deepEqual(t1, ['c', 'd']);
  t.throws(() => rankSlice(px, texts, 0, 4), { message: /does not split over 4 ranks/ });
  const { native } = await import('../src/native.js');
  const e = t.throws(() => native().collectiveUniqueId());
  t.regex(e!.message, /NCCL not found|no CUDA backend/);
  const m = await NativeModel.load(modelDir, { device: 'cpu', precision: 'fp32' });
  m.enableTraining({ seed: 0 });
  const e2 = t.throws(() => m.initCollective({ id: Buffer.alloc(128), rank: 0, world: 2 }));
  t.regex(e2!.message, /needs a CUDA model/);
  t.throws(() => m.initCollective({ id: Buffer.alloc(128), rank: 2, world: 2 }), { instanceOf: RangeError });
  m.dispose();
  const cfgFile = join(dir, 'dp-cpu.json');
  writeFileSync(cfgFile, JSON.stringify(cfg({ device: 'cpu' })));
  const r = await run(process.execPath, [
    BIN,
    'train',
    '--config',
    cfgFile,
    '--out',
    join(dir, 'run-dp'),
    '--gpus',
    '2',
  ]).catch((x) => x);
  t.is(r.code, 2);
  t.regex(r.stderr, /--gpus needs the cuda device/);
  writeFileSync(cfgFile, JSON.stringify(cfg({ device: 'auto' })));
  const r2 = await run(process.execPath, [
    BIN,
    'train',
    '--config',
    cfgFile,
    '--out',
    join(dir, 'run-dp'),
    '--gpus',
    '2',
  ]).catch((x) => x);
  t.is(r2.code, 2);
  t.regex(r2.stderr, /--gpus 2 needs CUDA/);
});
