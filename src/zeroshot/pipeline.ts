// The streaming front half shared by classify, grounding and embedding: pull inputs one at a time,
// decode + preprocess at most `concurrency` of them ahead (the bound on memory), and hand out
// batches of up to `batchSize` prepared images in input order, with the inputs that could not be
// read in between as per-item errors. Pixels are never accumulated beyond one batch + read-ahead.
//
// Decoding and preprocessing run on the native decode pool (src/image/feed.ts: its own threads,
// default one per core) while the encoder runs on the addon's compute pool, so the read-ahead of
// `concurrency` images keeps every decode thread busy behind the model. Without the native
// codecs, the JavaScript decoders run on this thread instead (docs/ZEROSHOT-API.md, "Decoding").
import { inputPixels } from '../image/feed.js';
import type { ZeroShotModel } from './types.js';
import type { ImageInput, StreamOptions } from './types.js';

/** One input after preparation: pixels, or the reason it was skipped. */
export interface PreparedEntry {
  index: number;
  name: string;
  pixels?: Float32Array;
  error?: Error;
}

/** An AbortError (DOMException) for a signal, keeping a custom reason as its cause. */
export function abortError(signal: AbortSignal): DOMException {
  const r: unknown = signal.reason;
  if (r instanceof DOMException && r.name === 'AbortError') return r;
  return new DOMException('The operation was aborted', { name: 'AbortError', cause: r });
}

/** The name an input is reported under: its path, its `name`, or `<buffer #i>` / `<pixels #i>`. */
export function inputName(input: ImageInput, index: number): string {
  if (typeof input === 'string') return input;
  if (input instanceof Uint8Array) return `<buffer #${index}>`;
  if ('path' in input) return input.name ?? `${input.path}#${input.frame}`;
  return input.name ?? `<pixels #${index}>`;
}

function checkInput(input: unknown, index: number, fn: string): ImageInput {
  if (typeof input === 'string' || input instanceof Uint8Array) return input;
  if (input !== null && typeof input === 'object' && (input as { pixels?: unknown }).pixels instanceof Float32Array) {
    const name = (input as { name?: unknown }).name;
    if (name !== undefined && typeof name !== 'string')
      throw new TypeError(`${fn}: images[${index}].name must be a string`);
    return input as ImageInput;
  }
  if (input !== null && typeof input === 'object' && typeof (input as { path?: unknown }).path === 'string') {
    const { frame, name } = input as { frame?: unknown; name?: unknown };
    if (typeof frame !== 'number' || !Number.isInteger(frame) || frame < 0)
      throw new TypeError(`${fn}: images[${index}].frame must be a non-negative integer`);
    if (name !== undefined && typeof name !== 'string')
      throw new TypeError(`${fn}: images[${index}].name must be a string`);
    return input as ImageInput;
  }
  throw new TypeError(
    `${fn}: images[${index}] must be a file path, a Uint8Array/Buffer of encoded bytes, ` +
      `{ pixels: Float32Array, name? } or { path, frame, name? }, got ${input === null ? 'null' : typeof input}`,
  );
}

export interface ResolvedStreamOptions {
  batchSize: number;
  concurrency: number;
  signal?: AbortSignal;
  total?: number;
}

/** Validates the shared streaming options (TypeError/RangeError naming the option). */
export function resolveStreamOptions(model: ZeroShotModel, options: StreamOptions, fn: string): ResolvedStreamOptions {
  if (options === null || typeof options !== 'object')
    throw new TypeError(`${fn}: argument 'options' must be an object`);
  const images = options.images as unknown;
  if (
    images === null ||
    typeof images !== 'object' ||
    (typeof (images as Iterable<unknown>)[Symbol.iterator] !== 'function' &&
      typeof (images as AsyncIterable<unknown>)[Symbol.asyncIterator] !== 'function')
  )
    throw new TypeError(`${fn}: option 'images' must be an iterable or async iterable of images`);
  if (typeof images === 'string')
    throw new TypeError(
      `${fn}: option 'images' must be an iterable of images, not a string (wrap one path in an array)`,
    );
  const int = (v: unknown, name: string, def: number, max: number) => {
    if (v === undefined) return def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max)
      throw new RangeError(`${fn}: option '${name}' must be an integer in [1, ${max}], got ${String(v)}`);
    return v;
  };
  const batchSize = int(options.batchSize, 'batchSize', model.device.kind === 'cuda' ? 64 : 8, 4096);
  const concurrency = int(options.concurrency, 'concurrency', 2 * batchSize, 65536);
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal))
    throw new TypeError(`${fn}: option 'signal' must be an AbortSignal`);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function')
    throw new TypeError(`${fn}: option 'onProgress' must be a function`);
  const total = Array.isArray(images) ? images.length : undefined;
  return { batchSize, concurrency, signal: options.signal, total };
}

/** Decodes and preprocesses one input; data problems become `error`, never a throw. */
export async function prepareEntry(model: ZeroShotModel, input: ImageInput, index: number): Promise<PreparedEntry> {
  const name = inputName(input, index);
  const p = model.config.preprocess;
  try {
    return { index, name, pixels: await inputPixels(input, p, name) };
  } catch (e) {
    return { index, name, error: e instanceof Error ? e : new Error(String(e)) };
  }
}

function iteratorOf(images: Iterable<unknown> | AsyncIterable<unknown>): AsyncIterator<unknown> {
  if (typeof (images as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function')
    return (images as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  const it = (images as Iterable<unknown>)[Symbol.iterator]();
  return {
    next: async () => it.next(),
    return: async (v?: unknown) => (it.return ? it.return(v) : { done: true, value: v }),
  };
}

/** Waits for `p`, or rejects with an AbortError as soon as `signal` aborts. */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((res, rej) => {
    const onAbort = () => rej(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        res(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        rej(e);
      },
    );
  });
}

/**
 * Prepared inputs in input order, at most `concurrency` in preparation or waiting at a time.
 * `prepare` must not reject for data problems (it returns an entry with `error`).
 */
export async function* prefetch(
  images: Iterable<unknown> | AsyncIterable<unknown>,
  concurrency: number,
  prepare: (input: ImageInput, index: number) => Promise<PreparedEntry>,
  fn: string,
  signal?: AbortSignal,
): AsyncGenerator<PreparedEntry> {
  const it = iteratorOf(images);
  const queue: Promise<PreparedEntry>[] = [];
  let index = 0;
  let ended = false;
  try {
    for (;;) {
      while (!ended && queue.length < concurrency) {
        if (signal?.aborted) throw abortError(signal);
        const n = await raceAbort(it.next(), signal);
        if (n.done) {
          ended = true;
          break;
        }
        const input = checkInput(n.value, index, fn);
        queue.push(prepare(input, index++));
      }
      const head = queue.shift();
      if (!head) return;
      yield await raceAbort(head, signal);
    }
  } finally {
    // Let what is being decoded finish (bounded by `concurrency`), so nothing runs after we return.
    await Promise.allSettled(queue);
    queue.length = 0;
    if (!ended) void Promise.resolve(it.return?.()).catch(() => {});
  }
}

/**
 * Batches of prepared entries in input order: each holds at most `batchSize` images with pixels,
 * plus the skipped entries among them (a run of skipped inputs is flushed every 4 * batchSize).
 */
export async function* preparedBatches(
  model: ZeroShotModel,
  options: StreamOptions,
  fn: string,
  resolved = resolveStreamOptions(model, options, fn),
): AsyncGenerator<PreparedEntry[]> {
  const { batchSize, concurrency, signal } = resolved;
  let batch: PreparedEntry[] = [];
  let ready = 0;
  for await (const e of prefetch(
    options.images,
    Math.max(concurrency, 1),
    (input, i) => prepareEntry(model, input, i),
    fn,
    signal,
  )) {
    batch.push(e);
    if (e.pixels) ready++;
    if (ready >= batchSize || batch.length >= 4 * batchSize) {
      if (signal?.aborted) throw abortError(signal);
      const out = batch;
      batch = [];
      ready = 0;
      yield out;
    }
  }
  if (signal?.aborted) throw abortError(signal);
  if (batch.length) yield batch;
}
