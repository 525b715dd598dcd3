// Per-item image work for the loader and `carzero prepare`: read (a file, decoded and padded like
// the inference path, or a record of a prepared shard), then either return the padded 256x256
// uint8 image, a training view (seeded augmentation) or the validation centre crop.
//
// ItemPool runs that work on node:worker_threads (workers >= 1) or in this thread (workers = 0,
// one item per macrotask so timers and native async work keep going). The result of an item is a
// pure function of the task, so the worker count never changes the output.
import { Worker } from 'node:worker_threads';
import { open } from 'node:fs/promises';
import { defaultFeed } from '../image/feed.js';
import { augment, centreCrop, type AugmentOptions } from './augment.js';
import { Rng } from './rng.js';

export type ItemSource = { path: string } | { shard: string; offset: number };

export interface ItemTask {
  source: ItemSource;
  /** Names the item in errors (its path). */
  name: string;
  kind: 'padded' | 'train' | 'val';
  /** For 'train': the augmentation stream is Rng.derive(...seed). */
  seed?: number[];
  options?: AugmentOptions;
}

export type ItemResult = { ok: true; data: Uint8Array | Float32Array } | { ok: false; error: string };

/** Reads a padded image from a prepared shard record. */
async function readRecord(file: string, offset: number, bytes: number): Promise<Uint8Array> {
  const fh = await open(file, 'r');
  try {
    const buf = new Uint8Array(bytes);
    const { bytesRead } = await fh.read(buf, 0, bytes, offset);
    if (bytesRead !== bytes)
      throw new Error(`${file}: truncated record at offset ${offset} (${bytesRead} of ${bytes} bytes)`);
    return buf;
  } finally {
    await fh.close();
  }
}

/** Does one task (any thread). */
export async function processItem(task: ItemTask): Promise<Uint8Array | Float32Array> {
  const size = task.options?.size ?? 256;
  let padded: Uint8Array;
  if ('shard' in task.source) padded = await readRecord(task.source.shard, task.source.offset, size * size);
  else
    padded = (await defaultFeed().load(task.source.path, { resize: size, crop: Math.min(224, size), output: 'padded' }))
      .padded!;
  if (task.kind === 'padded') return padded;
  if (task.kind === 'val') return centreCrop(padded, task.options);
  const seed = task.seed ?? [0];
  return augment(padded, Rng.derive(seed[0], ...seed.slice(1)), task.options);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

interface Slot {
  worker: Worker;
  busy: number;
}

/** The worker entry module, or a tsx bootstrap when running from TypeScript sources (tests). */
function spawn(): Worker {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    const entry = new URL('./worker.ts', here).href;
    const tsx = import.meta.resolve('tsx/esm/api');
    const load = (url: string) => `import(${JSON.stringify(url)})`;
    const code = `${load(tsx)}.then((m) => { m.register(); return ${load(entry)}; });`;
    return new Worker(code, { eval: true });
  }
  return new Worker(new URL('./worker.js', here));
}

export class ItemPool {
  private slots: Slot[] = [];
  private queue: { id: number; task: ItemTask }[] = [];
  private pending = new Map<number, (r: ItemResult) => void>();
  private nextId = 1;
  private closed = false;
  /** Tasks one worker holds at once (overlaps its file reads with decoding). */
  private readonly perWorker = 2;
  /** workers = 0: items run one after another, each in its own macrotask. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(readonly workers: number) {
    if (!Number.isInteger(workers) || workers < 0)
      throw new RangeError(`ItemPool: workers must be a non-negative integer, got ${workers}`);
    for (let i = 0; i < workers; i++) {
      const worker = spawn();
      const slot: Slot = { worker, busy: 0 };
      worker.unref();
      worker.on('message', (m: { id: number } & ItemResult) => {
        slot.busy--;
        if (slot.busy === 0) worker.unref();
        const done = this.pending.get(m.id);
        this.pending.delete(m.id);
        done?.(m.ok ? { ok: true, data: m.data } : { ok: false, error: m.error });
        this.dispatch();
      });
      worker.on('error', (e) => this.fail(`worker failed: ${errorText(e)}`));
      // A worker that ends without an 'error' event (killed, out of memory) must not leave tasks
      // waiting forever: an unref'd dead worker keeps nothing alive, so they would never settle.
      worker.on('exit', (code) => {
        if (!this.closed) this.fail(`worker exited unexpectedly (code ${code})`);
      });
      this.slots.push(slot);
    }
  }

  private fail(message: string): void {
    for (const [, done] of this.pending) done({ ok: false, error: message });
    this.pending.clear();
    this.queue.length = 0;
    this.closed = true;
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let best: Slot | undefined;
      for (const s of this.slots) if (s.busy < this.perWorker && (!best || s.busy < best.busy)) best = s;
      if (!best) return;
      const { id, task } = this.queue.shift()!;
      if (best.busy === 0) best.worker.ref();
      best.busy++;
      best.worker.postMessage({ id, task });
    }
  }

  /** Runs one task; never rejects (a failure is { ok: false, error }). */
  run(task: ItemTask): Promise<ItemResult> {
    if (this.closed) return Promise.resolve({ ok: false, error: 'the item pool is closed' });
    if (this.workers === 0) {
      const r: Promise<ItemResult> = this.chain
        .then(() => new Promise((next) => setImmediate(next)))
        .then(() => processItem(task))
        .then(
          (data) => ({ ok: true as const, data }),
          (e: unknown) => ({ ok: false as const, error: errorText(e) }),
        );
      this.chain = r;
      return r;
    }
    const id = this.nextId++;
    return new Promise((res) => {
      this.pending.set(id, res);
      this.queue.push({ id, task });
      this.dispatch();
    });
  }

  /** Stops the workers; pending tasks end as failures. */
  async close(): Promise<void> {
    if (this.slots.length === 0) {
      this.closed = true;
      return;
    }
    this.fail('the item pool is closed');
    const slots = this.slots;
    this.slots = [];
    // Idle workers are unref'd, and a terminating worker does not reliably hold the event loop
    // open (seen here: an otherwise idle process ended with this promise never settled), so a
    // timer keeps the loop alive until every worker has exited.
    const keepAlive = setInterval(() => {}, 1000);
    try {
      await Promise.all(slots.map((s) => s.worker.terminate()));
    } finally {
      clearInterval(keepAlive);
    }
  }

  /** The same as close(). */
  async dispose(): Promise<void> {
    await this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
