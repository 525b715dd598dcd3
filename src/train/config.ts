// The trainer's configuration: a JSON object whose defaults are the original CARZero recipe
// (spec 6, docs/TRAINING.md "Trainer"). Every field can be overridden in the config file;
// `carzero train --print-config` prints these defaults. validateConfig() merges a user object
// over the defaults and throws a ConfigError naming the offending field (e.g. `optimizer.lr`).
import { CarzeroError } from '../errors.js';

/** A batch size from an epoch on (the first entry must start at epoch 0). */
export interface BatchSizeStep {
  from_epoch: number;
  size: number;
}

export interface DataConfig {
  /** MIMIC-style CSV (Path, Split, ViewPosition / Frontal/Lateral, Report Impression). */
  csv: string | null;
  /** Base folder for the CSV's relative image paths (default: the CSV's folder). */
  root: string | null;
  /** A prepared training shard directory (`carzero prepare`), instead of csv. */
  prepared: string | null;
  /** A prepared validation shard directory; without it the csv's validation split is used. */
  validation_prepared: string | null;
  /** The CSV split trained on. */
  train_split: string;
  /** The CSV split validated on (MIMIC calls it `validate`). */
  validation_split: string;
  /** Loader worker threads (null: the loader's default; 0: this thread). */
  workers: number | null;
  /** Stop collecting a report's sentences when the running word count equals this (original 5). */
  max_words: number;
}

export interface OptimizerConfig {
  /** 'adam' (L2 weight decay added to the gradient, the original), 'adamw' (decoupled) or 'sgd'. */
  name: 'adam' | 'adamw' | 'sgd';
  /** Base learning rate (original 5e-5). */
  lr: number;
  /** Adam betas (original (0.5, 0.999)). */
  betas: [number, number];
  /** Adam epsilon (original 1e-8). */
  eps: number;
  /** Weight decay (original 1e-6, as L2 in the gradient for 'adam' and 'sgd'). */
  weight_decay: number;
  /** SGD momentum (sgd only). */
  momentum: number;
}

export interface SchedulerConfig {
  /** 'plateau' (ReduceLROnPlateau on the validation loss, the original), 'cosine' or 'none'. */
  name: 'plateau' | 'cosine' | 'none';
  /** plateau: multiply the lr by this on a plateau (original 0.5). */
  factor: number;
  /** plateau: epochs without improvement tolerated before reducing (original 5; reduces on the 6th). */
  patience: number;
  /** plateau: PyTorch's threshold (1e-4) ... */
  threshold: number;
  /** ... and its mode: 'rel' (better when < best * (1 - threshold)) or 'abs' (< best - threshold). */
  threshold_mode: 'rel' | 'abs';
  /** plateau: epochs to wait after a reduction before counting again (0). */
  cooldown: number;
  /** Lower bound of the lr (plateau and cosine; 0). */
  min_lr: number;
  /** Linear warm-up over this many optimizer steps (any scheduler; 0 = none). */
  warmup_steps: number;
}

export interface TrainConfig {
  /** The model to fine-tune from: a directory (carzero convert) or a model name (shipped or in the store). */
  model: string;
  data: DataConfig;
  /** 'auto' (CUDA when available), 'cpu' or 'cuda'. */
  device: 'auto' | 'cpu' | 'cuda';
  /** 'fp32'; or mixed precision with fp32 parameters, gradients and optimizer state and the linear
   * layers' products on rounded operands: 'bf16', or 'fp16' (as the original's AMP) with dynamic
   * loss scaling (loss_scale). */
  precision: 'fp32' | 'bf16' | 'fp16';
  /** fp16 only: dynamic loss scaling as torch.cuda.amp.GradScaler. The loss is multiplied by
   * `scale`; a step whose gradients are not finite is skipped and the scale multiplied by
   * `backoff_factor`; after `growth_interval` finite steps in a row it is multiplied by
   * `growth_factor`. */
  loss_scale: { initial: number; growth_factor: number; backoff_factor: number; growth_interval: number };
  /** Activation recomputation: keep only each ViT block's and BERT layer's input and re-run the
   * block before its backward (the gradients are identical; about a third more compute, a
   * fraction of the activation memory). */
  recompute: boolean;
  /** Seeds the data order, augmentations, sentence draws and dropout masks. */
  seed: number;
  /** Epochs (original 15). */
  epochs: number;
  /** Pairs per forward pass (the contrastive batch): a number, or a schedule by epoch
   * (original 64 for epochs 0-1, 128 for 2-5, 256 from 6). The last partial batch is dropped. */
  batch_size: number | BatchSizeStep[];
  /** Validation batch size (null: the epoch's training batch size). Mean loss over full batches. */
  validation_batch_size: number | null;
  /** Forward passes whose gradients accumulate into one optimizer step (lossScale 1/k). */
  accumulate_steps: number;
  optimizer: OptimizerConfig;
  /** Global L2 norm the gradients are clipped to before each step (original 0.25; 0 = off). */
  clip_grad_norm: number;
  scheduler: SchedulerConfig;
  /** Stop after this many epochs without a lower validation loss (original 10; 0 = never). */
  early_stopping_patience: number;
  /** Training-mode dropout (docs/TRAINING.md). */
  dropout: boolean;
  /** Frozen encoders get no gradient and no update. */
  freeze: { vision: boolean; text: boolean };
  /** Also write `last` every this many optimizer steps (0: at the end of each epoch only). */
  checkpoint_every: number;
  /** Write a step line to log.jsonl every this many optimizer steps. */
  log_every: number;
  /** Stop after this many optimizer steps in all (0: no limit). */
  max_steps: number;
  /** Training augmentations (spec 1); false: the centre crop. */
  augment: boolean;
}

export const DEFAULT_CONFIG: Readonly<TrainConfig> = Object.freeze({
  model: '',
  data: {
    csv: null,
    root: null,
    prepared: null,
    validation_prepared: null,
    train_split: 'train',
    validation_split: 'validate',
    workers: null,
    max_words: 5,
  },
  device: 'auto',
  precision: 'fp32',
  loss_scale: { initial: 65536, growth_factor: 2, backoff_factor: 0.5, growth_interval: 2000 },
  recompute: false,
  seed: 0,
  epochs: 15,
  batch_size: [
    { from_epoch: 0, size: 64 },
    { from_epoch: 2, size: 128 },
    { from_epoch: 6, size: 256 },
  ],
  validation_batch_size: null,
  accumulate_steps: 1,
  optimizer: { name: 'adam', lr: 5e-5, betas: [0.5, 0.999], eps: 1e-8, weight_decay: 1e-6, momentum: 0.9 },
  clip_grad_norm: 0.25,
  scheduler: {
    name: 'plateau',
    factor: 0.5,
    patience: 5,
    threshold: 1e-4,
    threshold_mode: 'rel',
    cooldown: 0,
    min_lr: 0,
    warmup_steps: 0,
  },
  early_stopping_patience: 10,
  dropout: true,
  freeze: { vision: false, text: false },
  checkpoint_every: 0,
  log_every: 1,
  max_steps: 0,
  augment: true,
} as TrainConfig);

/** The defaults as a fresh mutable object. */
export function defaultConfig(): TrainConfig {
  return JSON.parse(JSON.stringify(DEFAULT_CONFIG)) as TrainConfig;
}

export class ConfigError extends CarzeroError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`config: ${field}: ${message}`, 'CZ_ERR_INVALID_ARGUMENT');
    this.name = 'ConfigError';
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

function merge(def: Obj, user: Obj, path: string): Obj {
  const out: Obj = { ...def };
  for (const [k, v] of Object.entries(user)) {
    const field = path ? `${path}.${k}` : k;
    if (!(k in def)) throw new ConfigError(field, `unknown field (known: ${Object.keys(def).join(', ')})`);
    out[k] = isObj(def[k])
      ? isObj(v)
        ? merge(def[k] as Obj, v, field)
        : fail(field, `must be an object, got ${JSON.stringify(v)}`)
      : v;
  }
  return out;
}

function fail(field: string, msg: string): never {
  throw new ConfigError(field, msg);
}

function num(v: unknown, field: string, o: { min?: number; max?: number; int?: boolean; gt?: number } = {}): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(field, `must be a finite number, got ${JSON.stringify(v)}`);
  if (o.int && !Number.isSafeInteger(v)) fail(field, `must be an integer, got ${v}`);
  if (o.min !== undefined && v < o.min) fail(field, `must be >= ${o.min}, got ${v}`);
  if (o.gt !== undefined && !(v > o.gt)) fail(field, `must be > ${o.gt}, got ${v}`);
  if (o.max !== undefined && v > o.max) fail(field, `must be <= ${o.max}, got ${v}`);
  return v;
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[], field: string): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v))
    fail(field, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

function str(v: unknown, field: string, nullable: boolean): void {
  if (nullable && v === null) return;
  if (typeof v !== 'string' || v.length === 0)
    fail(field, `must be a non-empty string${nullable ? ' or null' : ''}, got ${JSON.stringify(v)}`);
}

function bool(v: unknown, field: string): void {
  if (typeof v !== 'boolean') fail(field, `must be true or false, got ${JSON.stringify(v)}`);
}

/** Merges `user` over the defaults and validates every field; throws ConfigError naming the field. */
export function validateConfig(user: unknown): TrainConfig {
  if (!isObj(user)) throw new ConfigError('(root)', 'the config must be a JSON object');
  const c = merge(defaultConfig() as unknown as Obj, user, '') as unknown as TrainConfig;
  str(c.model, 'model', false);
  const d = c.data;
  str(d.csv, 'data.csv', true);
  str(d.root, 'data.root', true);
  str(d.prepared, 'data.prepared', true);
  str(d.validation_prepared, 'data.validation_prepared', true);
  str(d.train_split, 'data.train_split', false);
  str(d.validation_split, 'data.validation_split', false);
  if (d.workers !== null) num(d.workers, 'data.workers', { int: true, min: 0, max: 64 });
  num(d.max_words, 'data.max_words', { int: true, min: 0 });
  if (d.csv === null && d.prepared === null)
    fail('data', 'give data.csv (a MIMIC-style CSV) or data.prepared (a `carzero prepare` directory)');
  if (d.csv !== null && d.prepared !== null) fail('data', 'give data.csv or data.prepared, not both');
  if (d.prepared !== null && d.validation_prepared === null)
    fail('data.validation_prepared', 'is needed with data.prepared (a prepared validation split)');
  oneOf(c.device, ['auto', 'cpu', 'cuda'] as const, 'device');
  oneOf(c.precision, ['fp32', 'bf16', 'fp16'] as const, 'precision');
  num(c.loss_scale.initial, 'loss_scale.initial', { gt: 0 });
  num(c.loss_scale.growth_factor, 'loss_scale.growth_factor', { min: 1 });
  num(c.loss_scale.backoff_factor, 'loss_scale.backoff_factor', { gt: 0, max: 1 });
  num(c.loss_scale.growth_interval, 'loss_scale.growth_interval', { int: true, min: 1 });
  bool(c.recompute, 'recompute');
  num(c.seed, 'seed', { int: true, min: 0, max: 2 ** 32 - 1 });
  num(c.epochs, 'epochs', { int: true, min: 1 });
  if (typeof c.batch_size === 'number') num(c.batch_size, 'batch_size', { int: true, min: 2 });
  else if (Array.isArray(c.batch_size)) {
    const sched: BatchSizeStep[] = c.batch_size;
    if (sched.length === 0) fail('batch_size', 'the schedule is empty');
    sched.forEach((s, i) => {
      const f = `batch_size[${i}]`;
      if (!isObj(s)) fail(f, 'must be { from_epoch, size }');
      for (const k of Object.keys(s))
        if (k !== 'from_epoch' && k !== 'size') fail(`${f}.${k}`, 'unknown field (known: from_epoch, size)');
      num(s.from_epoch, `${f}.from_epoch`, { int: true, min: 0 });
      num(s.size, `${f}.size`, { int: true, min: 2 });
      if (i === 0 && s.from_epoch !== 0) fail(`${f}.from_epoch`, 'the first entry must start at epoch 0');
      if (i > 0 && s.from_epoch <= sched[i - 1].from_epoch) fail(`${f}.from_epoch`, 'must increase');
    });
  } else
    fail('batch_size', `must be an integer or a list of { from_epoch, size }, got ${JSON.stringify(c.batch_size)}`);
  if (c.validation_batch_size !== null) num(c.validation_batch_size, 'validation_batch_size', { int: true, min: 2 });
  num(c.accumulate_steps, 'accumulate_steps', { int: true, min: 1 });
  const o = c.optimizer;
  oneOf(o.name, ['adam', 'adamw', 'sgd'] as const, 'optimizer.name');
  num(o.lr, 'optimizer.lr', { gt: 0 });
  if (!Array.isArray(o.betas) || o.betas.length !== 2)
    fail('optimizer.betas', `must be [beta1, beta2], got ${JSON.stringify(o.betas)}`);
  num(o.betas[0], 'optimizer.betas[0]', { min: 0, max: 0.999999 });
  num(o.betas[1], 'optimizer.betas[1]', { min: 0, max: 0.999999 });
  num(o.eps, 'optimizer.eps', { gt: 0 });
  num(o.weight_decay, 'optimizer.weight_decay', { min: 0 });
  num(o.momentum, 'optimizer.momentum', { min: 0, max: 1 });
  num(c.clip_grad_norm, 'clip_grad_norm', { min: 0 });
  const s = c.scheduler;
  oneOf(s.name, ['plateau', 'cosine', 'none'] as const, 'scheduler.name');
  num(s.factor, 'scheduler.factor', { gt: 0, max: 0.999999 });
  num(s.patience, 'scheduler.patience', { int: true, min: 0 });
  num(s.threshold, 'scheduler.threshold', { min: 0 });
  oneOf(s.threshold_mode, ['rel', 'abs'] as const, 'scheduler.threshold_mode');
  num(s.cooldown, 'scheduler.cooldown', { int: true, min: 0 });
  num(s.min_lr, 'scheduler.min_lr', { min: 0 });
  num(s.warmup_steps, 'scheduler.warmup_steps', { int: true, min: 0 });
  num(c.early_stopping_patience, 'early_stopping_patience', { int: true, min: 0 });
  bool(c.dropout, 'dropout');
  bool(c.freeze.vision, 'freeze.vision');
  bool(c.freeze.text, 'freeze.text');
  num(c.checkpoint_every, 'checkpoint_every', { int: true, min: 0 });
  num(c.log_every, 'log_every', { int: true, min: 1 });
  num(c.max_steps, 'max_steps', { int: true, min: 0 });
  bool(c.augment, 'augment');
  return c;
}

/** The batch size of an epoch under the config's schedule. */
export function batchSizeFor(c: TrainConfig, epoch: number): number {
  if (typeof c.batch_size === 'number') return c.batch_size;
  let n = c.batch_size[0].size;
  for (const s of c.batch_size) if (epoch >= s.from_epoch) n = s.size;
  return n;
}
