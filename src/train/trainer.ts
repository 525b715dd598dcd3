// The CARZero trainer (docs/TRAINING.md "Trainer"): epochs of contrastive fine-tuning over a
// MIMIC-style data set with the original recipe (src/train/config.ts), validation each epoch,
// ReduceLROnPlateau / cosine / warm-up, early stopping, atomic `last`/`best` checkpoints
// (src/train/checkpoint.ts) and exact resume: parameters, optimizer moments, scheduler and
// early-stopping counters, the data loader's position and the dropout step counter are all in the
// checkpoint, so `Trainer.resume` continues with bit-identical results.
import { checkModelForLoad, resolveModel } from '../model/store.js';
import { appendFileSync, existsSync, mkdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { AugmentOptions } from '../data/augment.js';
import { DataLoader, type LoaderState } from '../data/loader.js';
import { readMimicCsv, type MimicDataset } from '../data/mimic.js';
import { loadPrepared } from '../data/shards.js';
import { NativeModel, type NamedTensor } from '../model/native-model.js';
import { ops } from '../ops.js';
import { Tensor } from '../tensor.js';
import { Tokenizer } from '../text/tokenizer.js';
import { batchSizeFor, validateConfig, type TrainConfig } from './config.js';
import { cleanRunDir, linkTarget, pointTo, readCheckpoint, writeCheckpoint } from './checkpoint.js';
import { lrAt, Optimizer, plateauInit, plateauStep, type PlateauState } from './optim.js';

export interface TrainerState {
  format: 'carzero-train-state';
  version: 1;
  config: TrainConfig;
  /** The epoch being trained (or next, after an epoch-end checkpoint). */
  epoch: number;
  /** Optimizer steps taken. */
  step: number;
  /** Forward/backward passes taken (seeds each pass's dropout masks). */
  micro_step: number;
  loader: LoaderState | null;
  plateau: PlateauState;
  early: { best: number | null; wait: number };
  best_val_loss: number | null;
  /** Running sums of the epoch in progress (for its mean train loss). */
  epoch_sums: { loss: number; i2t: number; t2i: number; batches: number };
  total_steps: number;
  history: {
    epoch: number;
    train_loss: number | null;
    val_loss: number;
    val_i2t_loss: number;
    val_t2i_loss: number;
    lr: number;
  }[];
  /** log.jsonl's size when this checkpoint was written (resume cuts lines written after it). */
  log_bytes: number;
  stopped: null | 'early_stopping' | 'epochs';
  /** fp16 dynamic loss scaling (null otherwise; absent in checkpoints written before it). */
  scaler?: { scale: number; good_steps: number; skipped_steps: number } | null;
}

export interface StepInfo {
  type: 'step';
  epoch: number;
  step: number;
  batch: number;
  loss: number;
  i2t_loss: number;
  t2i_loss: number;
  lr: number;
  grad_norm: number;
  samples_per_s: number;
  /** fp16: the loss scale used by this step, and whether its gradients overflowed (update skipped). */
  loss_scale?: number;
  skipped?: boolean;
}

export interface EpochInfo {
  type: 'epoch';
  epoch: number;
  step: number;
  train_loss: number | null;
  val_loss: number;
  val_i2t_loss: number;
  val_t2i_loss: number;
  lr: number;
  best: boolean;
  lr_reduced: boolean;
  bad_epochs: number;
}

/** One process of a data-parallel run (`carzero train --gpus N`): rank `rank` of `world`, all
 * joined through the collective id from `collectiveUniqueId()` (NCCL; CUDA only). Each rank
 * trains on its slice of every global batch (world x batch_size pairs; the contrastive negatives
 * stay within a rank's slice), the gradients are averaged over the ranks before clipping and the
 * update, so every rank keeps the same parameters; rank 0 alone writes logs and checkpoints. */
export interface DistributedOptions {
  rank: number;
  world: number;
  id: Buffer;
}

export interface TrainerOptions {
  distributed?: DistributedOptions;
  onStep?: (s: StepInfo) => void;
  onEpoch?: (e: EpochInfo) => void;
  onCheckpoint?: (name: string, which: ('last' | 'best')[]) => void;
  onLoaderError?: (message: string) => void;
}

export interface TrainResult {
  steps: number;
  epochs: number;
  stopped: 'early_stopping' | 'epochs' | 'max_steps';
  best_val_loss: number | null;
  history: TrainerState['history'];
}

/** The contrastive loss from the matrices, in float64: ce(X) = (CE(X) + CE(X^T)) / 2 (spec 6). */
/** Rank `rank`'s slice of a global batch (n = world x b images, b each): its pixels and texts. */
export function rankSlice(
  pixels: Float32Array,
  texts: string[],
  rank: number,
  world: number,
): [Float32Array, string[]] {
  const n = texts.length;
  if (n % world !== 0) throw new Error(`rankSlice: a global batch of ${n} does not split over ${world} ranks`);
  const b = n / world,
    per = pixels.length / n;
  return [pixels.subarray(rank * b * per, (rank + 1) * b * per), texts.slice(rank * b, (rank + 1) * b)];
}

export function contrastiveLoss(
  i2t: Float32Array,
  t2i: Float32Array,
  n: number,
): { loss: number; i2t_loss: number; t2i_loss: number } {
  const ce = (x: Float32Array, transpose: boolean): number => {
    let s = 0;
    for (let r = 0; r < n; r++) {
      let mx = -Infinity;
      for (let c = 0; c < n; c++) mx = Math.max(mx, transpose ? x[c * n + r] : x[r * n + c]);
      let z = 0;
      for (let c = 0; c < n; c++) z += Math.exp((transpose ? x[c * n + r] : x[r * n + c]) - mx);
      s += mx + Math.log(z) - x[r * n + r];
    }
    return s / n;
  };
  const a = (ce(i2t, false) + ce(i2t, true)) / 2;
  const b = (ce(t2i, false) + ce(t2i, true)) / 2;
  return { loss: a + b, i2t_loss: a, t2i_loss: b };
}

async function loadDatasets(c: TrainConfig): Promise<{ train: MimicDataset; val: MimicDataset }> {
  const d = c.data;
  if (d.prepared) return { train: await loadPrepared(d.prepared), val: await loadPrepared(d.validation_prepared!) };
  const opt = { root: d.root ?? undefined, maxWords: d.max_words };
  const train = await readMimicCsv(d.csv!, { ...opt, split: d.train_split });
  const val = d.validation_prepared
    ? await loadPrepared(d.validation_prepared)
    : await readMimicCsv(d.csv!, { ...opt, split: d.validation_split });
  if (train.items.length === 0) throw new Error(`data: no training items in split '${d.train_split}' of ${d.csv}`);
  if (val.items.length === 0) throw new Error(`data: no validation items in split '${d.validation_split}' of ${d.csv}`);
  return { train, val };
}

export class Trainer {
  readonly runDir: string;
  readonly config: TrainConfig;
  readonly model: NativeModel;
  readonly tokenizer: Tokenizer;
  private readonly options: TrainerOptions;
  private readonly train: MimicDataset;
  private readonly val: MimicDataset;
  private loader: DataLoader;
  private readonly optimizer: Optimizer;
  private readonly params: NamedTensor[];
  private readonly grads: NamedTensor[];
  private st: TrainerState;
  private readonly logFile: string;
  private maxSteps: number;
  /** Optimizer steps since the last checkpoint. */
  private dirty = false;

  private constructor(args: {
    runDir: string;
    config: TrainConfig;
    model: NativeModel;
    tokenizer: Tokenizer;
    options: TrainerOptions;
    train: MimicDataset;
    val: MimicDataset;
    state: TrainerState;
  }) {
    this.runDir = args.runDir;
    this.config = args.config;
    this.model = args.model;
    this.tokenizer = args.tokenizer;
    this.options = args.options;
    this.train = args.train;
    this.val = args.val;
    this.st = args.state;
    this.maxSteps = args.config.max_steps;
    this.logFile = join(this.runDir, 'log.jsonl');
    this.params = this.model.parameters();
    this.grads = this.model.gradients();
    this.optimizer = new Optimizer(this.config.optimizer, this.params, this.grads);
    this.loader = this.makeLoader(this.st.loader ?? undefined);
  }

  private makeLoader(state?: LoaderState): DataLoader {
    const c = this.config;
    return new DataLoader(this.train, {
      seed: c.seed,
      batchSize: (e) => batchSizeFor(c, e) * (this.options.distributed?.world ?? 1), // global batch
      augment: c.augment,
      augmentOptions: this.viewOptions(),
      shuffle: true,
      workers: c.data.workers ?? undefined,
      state,
      onError: (e) => this.options.onLoaderError?.(`skipped ${e.path}: ${e.error}`),
    });
  }

  /** The model's own input geometry (config.json `preprocess`): padded side, crop, normalisation.
   * A converted CARZero model says 256 / 224, the defaults; a small model (the demo's) trains on
   * its own smaller crops. */
  private viewOptions(): AugmentOptions {
    const p = this.model.config.preprocess;
    return { size: p.resize, crop: p.crop, mean: p.mean, std: p.std };
  }

  private static async loadModel(dir: string, c: TrainConfig, dist?: DistributedOptions): Promise<NativeModel> {
    const model = await NativeModel.load(dir, { device: c.device, precision: 'fp32' });
    model.enableTraining({ seed: c.seed, precision: c.precision, recompute: c.recompute });
    if (dist && dist.world > 1) model.initCollective(dist);
    if (c.freeze.vision || c.freeze.text) model.freeze({ vision: c.freeze.vision, text: c.freeze.text });
    return model;
  }

  /** A new run in `runDir` (created; refused if it already holds a checkpoint: use resume). */
  static async create(config: unknown, runDir: string, options: TrainerOptions = {}): Promise<Trainer> {
    const c = validateConfig(config);
    c.model = resolve(resolveModel(c.model).dir); // a name (shipped or store model) or a directory
    await checkModelForLoad(c.model);
    for (const k of ['csv', 'root', 'prepared', 'validation_prepared'] as const)
      if (c.data[k]) c.data[k] = resolve(c.data[k]!);
    runDir = resolve(runDir);
    const rank0 = (options.distributed?.rank ?? 0) === 0;
    if (rank0 && (await linkTarget(runDir, 'last')))
      throw new Error(`${runDir} already holds a run; resume it (--resume) or choose another --out`);
    if (rank0) mkdirSync(runDir, { recursive: true });
    const { train, val } = await loadDatasets(c);
    const tokenizer = await Tokenizer.fromFile(join(c.model, 'tokenizer.json'));
    const model = await Trainer.loadModel(c.model, c, options.distributed);
    let total = 0;
    const world = options.distributed?.world ?? 1;
    for (let e = 0; e < c.epochs; e++)
      total += Math.ceil(Math.floor(train.items.length / (batchSizeFor(c, e) * world)) / c.accumulate_steps);
    const state: TrainerState = {
      format: 'carzero-train-state',
      version: 1,
      config: c,
      epoch: 0,
      step: 0,
      micro_step: 0,
      loader: null,
      plateau: plateauInit(c.optimizer.lr),
      early: { best: null, wait: 0 },
      best_val_loss: null,
      epoch_sums: { loss: 0, i2t: 0, t2i: 0, batches: 0 },
      total_steps: total,
      history: [],
      log_bytes: 0,
      stopped: null,
      scaler: c.precision === 'fp16' ? { scale: c.loss_scale.initial, good_steps: 0, skipped_steps: 0 } : null,
    };
    if (rank0) {
      writeFileSync(join(runDir, 'config.json'), `${JSON.stringify(c, null, 2)}\n`);
      writeFileSync(join(runDir, 'log.jsonl'), '');
    }
    return new Trainer({ runDir, config: c, model, tokenizer, options, train, val, state });
  }

  /** Continues the run in `runDir` from its `last` checkpoint, exactly. `maxSteps` overrides the
   * config's max_steps (0: none). Stray temp files of an interrupted write are removed. */
  static async resume(runDir: string, options: TrainerOptions & { maxSteps?: number } = {}): Promise<Trainer> {
    runDir = resolve(runDir);
    const rank0 = (options.distributed?.rank ?? 0) === 0;
    if (rank0) await cleanRunDir(runDir);
    const ck = await readCheckpoint(runDir, 'last');
    const state = ck.state as TrainerState;
    if (state?.format !== 'carzero-train-state' || state.version !== 1)
      throw new Error(`${ck.dir}/trainer.json: not a carzero trainer state`);
    const c = validateConfig(state.config);
    if (state.scaler === undefined)
      state.scaler = c.precision === 'fp16' ? { scale: c.loss_scale.initial, good_steps: 0, skipped_steps: 0 } : null;
    if (options.maxSteps !== undefined) c.max_steps = options.maxSteps;
    state.config = c;
    const { train, val } = await loadDatasets(c);
    const tokenizer = await Tokenizer.fromFile(join(ck.dir, 'tokenizer.json'));
    const model = await Trainer.loadModel(ck.dir, c, options.distributed);
    const logFile = join(runDir, 'log.jsonl');
    if (rank0 && existsSync(logFile) && statSync(logFile).size > state.log_bytes)
      truncateSync(logFile, state.log_bytes);
    const t = new Trainer({ runDir, config: c, model, tokenizer, options, train, val, state });
    t.optimizer.load(ck.optimizer, Number(ck.optimizerMeta.step ?? state.step));
    return t;
  }

  get state(): Readonly<TrainerState> {
    return this.st;
  }

  private get rank(): number {
    return this.options.distributed?.rank ?? 0;
  }

  private get world(): number {
    return this.options.distributed?.world ?? 1;
  }

  private log(obj: object): void {
    if (this.rank !== 0) return;
    appendFileSync(this.logFile, `${JSON.stringify({ ...obj, time: new Date().toISOString() })}\n`);
  }

  private async checkpoint(which: ('last' | 'best')[]): Promise<string> {
    this.st.loader = this.loader.state();
    if (this.rank !== 0) {
      // every rank holds the same state; rank 0 writes it
      this.dirty = false;
      return '';
    }
    this.st.log_bytes = existsSync(this.logFile) ? statSync(this.logFile).size : 0;
    const name = await writeCheckpoint(this.runDir, this.st.step, {
      baseModel: this.config.model,
      params: this.params,
      optimizer: this.optimizer.state,
      optimizerMeta: { step: String(this.optimizer.step), optimizer: this.config.optimizer.name },
      state: this.st,
    });
    for (const w of which) await pointTo(this.runDir, w, name);
    await cleanRunDir(this.runDir);
    this.dirty = false;
    this.options.onCheckpoint?.(name, which);
    return name;
  }

  private tensors(pixels: Float32Array, texts: string[]) {
    const n = texts.length;
    const L = this.model.config.text.max_length;
    const side = Math.round(Math.sqrt(pixels.length / n));
    const enc = this.tokenizer.encode(texts, { maxLength: L });
    const device = this.model.device;
    return {
      n,
      pixels: Tensor.from(pixels, [n, 1, side, side], { device }),
      ids: Tensor.from(enc.ids, [n, L], { dtype: 'i32', device }),
      mask: Tensor.from(enc.mask, [n, L], { dtype: 'u8', device }),
      kinds: Tensor.from(enc.kinds, [n, L], { dtype: 'u8', device }),
      dispose() {
        this.pixels.dispose();
        this.ids.dispose();
        this.mask.dispose();
        this.kinds.dispose();
      },
    };
  }

  /** Mean validation loss over the full batches (centre crop, no dropout, fixed sentences). */
  async validate(): Promise<{ loss: number; i2t_loss: number; t2i_loss: number; batches: number }> {
    const c = this.config;
    const bs = c.validation_batch_size ?? batchSizeFor(c, this.st.epoch);
    if (this.val.items.length < bs)
      throw new Error(
        `validation_batch_size: the validation set has ${this.val.items.length} items, fewer than one batch of ${bs}`,
      );
    const loader = new DataLoader(this.val, {
      seed: c.seed,
      batchSize: bs,
      shuffle: false,
      augment: false,
      augmentOptions: this.viewOptions(),
      workers: c.data.workers ?? undefined,
      epoch: 0,
    });
    let loss = 0;
    let a = 0;
    let b = 0;
    let k = 0;
    try {
      for await (const batch of loader.epochBatches()) {
        const t = this.tensors(batch.pixels, batch.texts);
        try {
          const im = await this.model.embedImages(t.pixels);
          const tx = await this.model.embedTexts(t.ids, t.mask, t.kinds);
          const s = await this.model.score(im.global, im.local, tx.sentence, tx.words);
          const r = contrastiveLoss(s.i2t.toFloat32(), s.t2i.toFloat32(), t.n);
          for (const x of [im.global, im.local, tx.sentence, tx.words, s.i2t, s.t2i, s.score]) x.dispose();
          loss += r.loss;
          a += r.i2t_loss;
          b += r.t2i_loss;
          k++;
        } finally {
          t.dispose();
        }
      }
    } finally {
      await loader.close();
    }
    if (k === 0) throw new Error('validation: no full batch could be read (unreadable images?)');
    return { loss: loss / k, i2t_loss: a / k, t2i_loss: b / k, batches: k };
  }

  /** Trains until the epochs are done, early stopping, or max_steps. */
  async run(): Promise<TrainResult> {
    const c = this.config;
    const st = this.st;
    const acc = c.accumulate_steps;
    if (st.stopped) return this.result(st.stopped);
    while (st.epoch < c.epochs) {
      // ---- one epoch (possibly resumed in the middle) ----
      let epochOver = false;
      while (!epochOver) {
        if (this.maxSteps && st.step >= this.maxSteps) {
          if (this.dirty || (await linkTarget(this.runDir, 'last')) === null) await this.checkpoint(['last']);
          return this.result('max_steps');
        }
        const t0 = performance.now();
        const lossScale = st.scaler ? st.scaler.scale : 1;
        this.model.zeroGrad();
        let k = 0;
        let samples = 0;
        let loss = 0;
        let li = 0;
        let lt = 0;
        let batchNo = 0;
        while (k < acc) {
          const batch = await this.loader.next();
          if (!batch) {
            epochOver = true;
            break;
          }
          batchNo = batch.step;
          const t =
            this.world > 1
              ? this.tensors(...rankSlice(batch.pixels, batch.texts, this.rank, this.world))
              : this.tensors(batch.pixels, batch.texts);
          try {
            const r = await this.model.forwardBackward({
              pixels: t.pixels,
              ids: t.ids,
              mask: t.mask,
              kinds: t.kinds,
              lossScale: lossScale / acc,
              dropout: c.dropout,
              step: st.micro_step * this.world + this.rank,
            });
            st.micro_step++;
            loss += r.loss;
            li += r.i2t_loss;
            lt += r.t2i_loss;
            samples += t.n;
            k++;
          } finally {
            t.dispose();
          }
        }
        if (k === 0) break;
        if (this.world > 1) {
          // average the gradients over the ranks (every rank then clips and steps identically),
          // and the logged losses and sample counts
          this.model.allReduceGradients();
          const v = Tensor.from(new Float32Array([loss, li, lt, samples]), [4], { device: this.model.device });
          this.model.allReduceSum(v);
          const a = v.toArray() as Float32Array;
          v.dispose();
          loss = a[0] / this.world;
          li = a[1] / this.world;
          lt = a[2] / this.world;
          samples = a[3];
        }
        const gradTensors = this.grads.map((g) => g.tensor);
        let norm: number;
        let skipped = false;
        if (st.scaler) {
          // fp16: gradients carry the loss scale. Not finite: skip the update and back off;
          // else unscale (then clip as usual) and grow the scale after a run of good steps.
          let s = 0;
          for (const g of gradTensors) s += await ops.sumSquares({ x: g });
          if (!Number.isFinite(s)) {
            skipped = true;
            st.scaler.scale *= c.loss_scale.backoff_factor;
            st.scaler.good_steps = 0;
            st.scaler.skipped_steps++;
          } else {
            for (const g of gradTensors) await ops.scale({ x: g, s: 1 / lossScale });
            if (++st.scaler.good_steps >= c.loss_scale.growth_interval) {
              st.scaler.scale *= c.loss_scale.growth_factor;
              st.scaler.good_steps = 0;
            }
          }
        }
        if (skipped) norm = Number.NaN;
        else if (c.clip_grad_norm > 0) norm = await ops.clipGradNorm({ grads: gradTensors, maxNorm: c.clip_grad_norm });
        else {
          let s = 0;
          for (const g of gradTensors) s += await ops.sumSquares({ x: g });
          norm = Math.sqrt(s);
        }
        const lr = lrAt(st.step, c.optimizer.lr, st.plateau.lr, c.scheduler, st.total_steps);
        if (!skipped) await this.optimizer.update(lr);
        st.step++;
        this.dirty = true;
        st.epoch_sums.loss += loss / k;
        st.epoch_sums.i2t += li / k;
        st.epoch_sums.t2i += lt / k;
        st.epoch_sums.batches++;
        const info: StepInfo = {
          type: 'step',
          epoch: st.epoch,
          step: st.step,
          batch: batchNo,
          loss: loss / k,
          i2t_loss: li / k,
          t2i_loss: lt / k,
          lr,
          grad_norm: norm,
          samples_per_s: samples / ((performance.now() - t0) / 1000),
          ...(st.scaler ? { loss_scale: lossScale, skipped } : {}),
        };
        if (st.step % c.log_every === 0) this.log(info);
        this.options.onStep?.(info);
        if (c.checkpoint_every && st.step % c.checkpoint_every === 0) await this.checkpoint(['last']);
      }
      // ---- epoch end: validation, scheduler, early stopping, checkpoints ----
      const v = await this.validate();
      const lrBefore = st.plateau.lr;
      const reduced = c.scheduler.name === 'plateau' ? plateauStep(st.plateau, v.loss, c.scheduler) : false;
      const improved = st.early.best === null || v.loss < st.early.best;
      if (improved) {
        st.early.best = v.loss;
        st.early.wait = 0;
      } else st.early.wait++;
      const isBest = st.best_val_loss === null || v.loss < st.best_val_loss;
      if (isBest) st.best_val_loss = v.loss;
      const sums = st.epoch_sums;
      const trainLoss = sums.batches ? sums.loss / sums.batches : null;
      st.history.push({
        epoch: st.epoch,
        train_loss: trainLoss,
        val_loss: v.loss,
        val_i2t_loss: v.i2t_loss,
        val_t2i_loss: v.t2i_loss,
        lr: lrBefore,
      });
      const info: EpochInfo = {
        type: 'epoch',
        epoch: st.epoch,
        step: st.step,
        train_loss: trainLoss,
        val_loss: v.loss,
        val_i2t_loss: v.i2t_loss,
        val_t2i_loss: v.t2i_loss,
        lr: lrBefore,
        best: isBest,
        lr_reduced: reduced,
        bad_epochs: st.early.wait,
      };
      this.log(info);
      this.options.onEpoch?.(info);
      st.epoch++;
      st.epoch_sums = { loss: 0, i2t: 0, t2i: 0, batches: 0 };
      if (c.early_stopping_patience && st.early.wait >= c.early_stopping_patience) st.stopped = 'early_stopping';
      else if (st.epoch >= c.epochs) st.stopped = 'epochs';
      await this.checkpoint(isBest ? ['last', 'best'] : ['last']);
      if (st.stopped) break;
    }
    return this.result(st.stopped ?? 'epochs');
  }

  private result(stopped: TrainResult['stopped']): TrainResult {
    return {
      steps: this.st.step,
      epochs: this.st.epoch,
      stopped,
      best_val_loss: this.st.best_val_loss,
      history: this.st.history,
    };
  }

  /** Stops the data loader and frees the model and optimizer state (`await using` works too). */
  async dispose(): Promise<void> {
    await this.loader.close();
    this.optimizer.dispose();
    this.model.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  /** The same as dispose() (the name before 0.1.1). */
  async close(): Promise<void> {
    await this.dispose();
  }
}

/** Reads a JSON config file (JSON only; YAML is not supported). */
export async function readConfigFile(file: string): Promise<unknown> {
  const text = await readFile(file, 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new Error(
      `${file}: not valid JSON (${(e as Error).message}); the config file is JSON (YAML is not supported)`,
      { cause: e },
    );
  }
}
