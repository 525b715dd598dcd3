// The training batch iterator (spec 6): per epoch a seeded shuffle of the dataset's items, N
// (image, sentence) pairs per batch with one sentence drawn at random per image, the last partial
// batch dropped; images decoded (or read from prepared shards) and augmented ahead of use in a
// bounded window, on worker threads or in this thread.
//
// Determinism: every random choice comes from a stream derived from (seed, purpose, epoch, item)
// (src/data/rng.ts): the epoch's order from (seed, ORDER, epoch), an item's augmentation from
// (seed, AUGMENT, epoch, item) and its sentence from (seed, SENTENCE, epoch, item). Batches are
// assembled in order on this thread, so they do not depend on the worker count or timing, and the
// loader's position (epoch, cursor into the epoch's order, batch number) is its whole state:
// state() after a batch, then `new DataLoader(dataset, { state })`, yields the very next batches.
//
// An image that cannot be read is reported (onError) and skipped; the batch is filled from the
// next items, so every batch has N pairs. An epoch ends when fewer than N unread items are left.
import { cpus } from 'node:os';
import { loadPrepared } from './shards.js';
import type { MimicDataset } from './mimic.js';
import { ItemPool, type ItemResult, type ItemTask } from './pool.js';
import { permutation, Rng } from './rng.js';
import type { AugmentOptions } from './augment.js';

/** Stream purposes (keys of Rng.derive). */
export const RNG_PURPOSE = { order: 1, augment: 2, sentence: 3 } as const;

/** The original's batch size by epoch: 64 for epochs 0-1, 128 for 2-5, 256 from 6. */
export function carzeroBatchSize(epoch: number): number {
  return epoch < 2 ? 64 : epoch < 6 ? 128 : 256;
}

export interface LoaderState {
  version: 1;
  seed: number;
  epoch: number;
  /** Next position in the epoch's order. */
  cursor: number;
  /** Batches yielded in this epoch. */
  step: number;
  /** Dataset size and a hash of its item keys (a state only resumes the same dataset). */
  items: number;
  fingerprint: string;
}

export interface LoaderError {
  /** Dataset item index. */
  index: number;
  path: string;
  epoch: number;
  error: string;
}

export interface Batch {
  /** (N, 224, 224) normalised float32, one channel (the model's three are equal). */
  pixels: Float32Array;
  /** The drawn sentence of each image (tokenised by the trainer). */
  texts: string[];
  /** Dataset item index of each image. */
  indices: number[];
  epoch: number;
  /** Batch number within the epoch. */
  step: number;
}

export interface LoaderOptions {
  /** Seed of every stream; default 0. */
  seed?: number;
  /** N, or N by epoch; default carzeroBatchSize. */
  batchSize?: number | ((epoch: number) => number);
  /** Shuffle each epoch; default true (false: dataset order, for validation). */
  shuffle?: boolean;
  /** Training augmentations; default true (false: the centre crop, for validation). */
  augment?: boolean;
  augmentOptions?: AugmentOptions;
  /** Worker threads; 0 = this thread. Default: defaultWorkers(). */
  workers?: number;
  /** Items decoded ahead of use; default 2 N. */
  prefetch?: number;
  /** A skipped image. */
  onError?: (e: LoaderError) => void;
  /** Resume at this position (from state()). */
  state?: LoaderState;
  /** Epoch to start at when there is no state; default 0. */
  epoch?: number;
}

/**
 * Default worker count. Measured on the shared 2-core development machine (bench/data-loader.ts,
 * other jobs running, so +-30 %): full-size 2544x3056 PNGs decoded + augmented, 0 workers 5-7
 * images/s but the main thread stalls 0.2 s per image (1.6 s with unbounded in-thread prefetch),
 * 1 worker 4-5 images/s, 2 workers 5-7 images/s, stalls <= 35 ms with workers; prepared shards:
 * 0 workers ~1300 images/s, 1 worker ~900, 2 workers 950-1650. So on up to 2 cores: 1 worker (the
 * trainer keeps its thread and a core, shards are far faster than any step needs); else
 * cores - 1, at most 8.
 */
export function defaultWorkers(): number {
  const n = cpus().length;
  return n <= 2 ? 1 : Math.min(8, n - 1);
}

/** FNV-1a over the item keys (hex). */
export function datasetFingerprint(d: MimicDataset): string {
  let h = 0x811c9dc5;
  for (const it of d.items) {
    for (let i = 0; i < it.key.length; i++) h = Math.imul(h ^ it.key.charCodeAt(i), 0x01000193);
    h = Math.imul(h ^ 0x0a, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

export class DataLoader {
  readonly dataset: MimicDataset;
  private readonly seed: number;
  private readonly batchSizeOf: (epoch: number) => number;
  private readonly shuffle: boolean;
  private readonly augment: boolean;
  private readonly augmentOptions: AugmentOptions;
  private readonly prefetchOpt?: number;
  private readonly onError?: (e: LoaderError) => void;
  private readonly pool: ItemPool;
  private readonly fingerprint: string;
  private readonly crop: number;
  private epoch: number;
  private cursor: number;
  private step: number;
  private order: Uint32Array | null = null;
  private orderEpoch = -1;
  private inflight = new Map<number, Promise<ItemResult>>();
  private busy = false;

  constructor(dataset: MimicDataset, options: LoaderOptions = {}) {
    if (!dataset || !Array.isArray(dataset.items))
      throw new TypeError("DataLoader: argument 'dataset' must be a dataset (readMimicCsv / loadPrepared)");
    this.dataset = dataset;
    const bs = options.batchSize ?? carzeroBatchSize;
    this.batchSizeOf = typeof bs === 'function' ? bs : () => bs;
    this.shuffle = options.shuffle ?? true;
    this.augment = options.augment ?? true;
    this.augmentOptions = options.augmentOptions ?? {};
    this.crop = this.augmentOptions.crop ?? 224;
    this.prefetchOpt = options.prefetch;
    if (this.prefetchOpt !== undefined && (!Number.isInteger(this.prefetchOpt) || this.prefetchOpt < 1))
      throw new RangeError(`DataLoader: option 'prefetch' must be a positive integer, got ${this.prefetchOpt}`);
    this.onError = options.onError;
    this.fingerprint = datasetFingerprint(dataset);
    const st = options.state;
    if (st) {
      if (st.version !== 1) throw new TypeError(`DataLoader: unsupported state version ${String(st.version)}`);
      if (st.items !== dataset.items.length || st.fingerprint !== this.fingerprint)
        throw new RangeError(
          `DataLoader: the state is for another dataset (${st.items} items, fingerprint ${st.fingerprint}; ` +
            `this one: ${dataset.items.length}, ${this.fingerprint})`,
        );
      if (options.seed !== undefined && options.seed !== st.seed)
        throw new RangeError(`DataLoader: option 'seed' (${options.seed}) differs from the state's (${st.seed})`);
      this.seed = st.seed;
      this.epoch = st.epoch;
      this.cursor = st.cursor;
      this.step = st.step;
    } else {
      this.seed = options.seed ?? 0;
      this.epoch = options.epoch ?? 0;
      this.cursor = 0;
      this.step = 0;
    }
    Rng.derive(this.seed); // validates the seed
    this.pool = new ItemPool(options.workers ?? defaultWorkers());
  }

  /** The position after the last batch returned (JSON-serialisable). */
  state(): LoaderState {
    return {
      version: 1,
      seed: this.seed,
      epoch: this.epoch,
      cursor: this.cursor,
      step: this.step,
      items: this.dataset.items.length,
      fingerprint: this.fingerprint,
    };
  }

  /** N for an epoch. */
  batchSize(epoch = this.epoch): number {
    const n = this.batchSizeOf(epoch);
    if (!Number.isInteger(n) || n < 1)
      throw new RangeError(`DataLoader: batch size for epoch ${epoch} must be a positive integer, got ${n}`);
    return n;
  }

  /** Full batches an epoch yields when no image fails. */
  batchesPerEpoch(epoch = this.epoch): number {
    return Math.floor(this.dataset.items.length / this.batchSize(epoch));
  }

  private orderFor(epoch: number): Uint32Array {
    if (this.order && this.orderEpoch === epoch) return this.order;
    const n = this.dataset.items.length;
    this.order = this.shuffle
      ? permutation(n, Rng.derive(this.seed, RNG_PURPOSE.order, epoch))
      : Uint32Array.from({ length: n }, (_, i) => i);
    this.orderEpoch = epoch;
    this.inflight.clear();
    return this.order;
  }

  private task(index: number): ItemTask {
    const it = this.dataset.items[index];
    return {
      source: it.shard ? { shard: it.shard.file, offset: it.shard.offset } : { path: it.path },
      name: it.path,
      kind: this.augment ? 'train' : 'val',
      seed: [this.seed, RNG_PURPOSE.augment, this.epoch, index],
      options: this.augmentOptions,
    };
  }

  /** Keeps positions [from, from + prefetch) scheduled. */
  private schedule(order: Uint32Array, from: number, prefetch: number): void {
    const end = Math.min(order.length, from + prefetch);
    for (let p = from; p < end; p++)
      if (!this.inflight.has(p)) this.inflight.set(p, this.pool.run(this.task(order[p])));
  }

  /** The next batch of this epoch, or null when the epoch is over (the state moves to the next). */
  async next(): Promise<Batch | null> {
    if (this.busy) throw new Error('DataLoader: next() called while a batch is still being assembled');
    this.busy = true;
    try {
      return await this.assemble();
    } finally {
      this.busy = false;
    }
  }

  private async assemble(): Promise<Batch | null> {
    const epoch = this.epoch;
    const n = this.batchSize(epoch);
    const order = this.orderFor(epoch);
    const prefetch = this.prefetchOpt ?? 2 * n;
    const px = this.crop * this.crop;
    const pixels = new Float32Array(n * px);
    const texts: string[] = [];
    const indices: number[] = [];
    let pos = this.cursor;
    while (indices.length < n) {
      if (order.length - pos < n - indices.length) {
        // Not enough items left for a full batch: drop it, start the next epoch.
        this.inflight.clear();
        this.epoch = epoch + 1;
        this.cursor = 0;
        this.step = 0;
        return null;
      }
      this.schedule(order, pos, Math.max(prefetch, n - indices.length));
      const r = await this.inflight.get(pos)!;
      this.inflight.delete(pos);
      const index = order[pos];
      pos++;
      const it = this.dataset.items[index];
      if (!r.ok) {
        this.onError?.({ index, path: it.path, epoch, error: r.error });
        continue;
      }
      if (r.data.length !== px) throw new Error(`DataLoader: ${it.path}: expected ${px} pixels, got ${r.data.length}`);
      pixels.set(r.data as Float32Array, indices.length * px);
      const s = it.sentences;
      texts.push(s.length === 1 ? s[0] : s[Rng.derive(this.seed, RNG_PURPOSE.sentence, epoch, index).int(s.length)]);
      indices.push(index);
    }
    this.cursor = pos;
    const batch: Batch = { pixels, texts, indices, epoch, step: this.step };
    this.step++;
    this.schedule(order, pos, prefetch);
    return batch;
  }

  /** The remaining batches of the current epoch. */
  async *epochBatches(): AsyncGenerator<Batch, void, undefined> {
    for (;;) {
      const b = await this.next();
      if (!b) return;
      yield b;
    }
  }

  [Symbol.asyncIterator](): AsyncGenerator<Batch, void, undefined> {
    return this.epochBatches();
  }

  /** Stops the workers. */
  async close(): Promise<void> {
    this.inflight.clear();
    await this.pool.close();
  }

  /** The same as close(): the package's resources all have dispose(). */
  async dispose(): Promise<void> {
    await this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** A loader over a dataset, or over a prepared directory (carzero prepare). */
export async function createLoader(source: MimicDataset | string, options: LoaderOptions = {}): Promise<DataLoader> {
  const dataset = typeof source === 'string' ? await loadPrepared(source) : source;
  return new DataLoader(dataset, options);
}
