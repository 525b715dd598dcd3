// Streaming zero-shot classification, grounding maps and image embeddings over large inputs:
// bounded read-ahead (./pipeline.ts), one native embed + score call per batch, results in input
// order as they are produced, unreadable inputs as SkippedImage, AbortSignal and progress.
import type { ZeroShotModel } from './types.js';
import { abortError, preparedBatches, resolveStreamOptions, type PreparedEntry } from './pipeline.js';
import { resolvePrompts } from './prompts.js';
import { upsampleNearest } from './grounding.js';
import type {
  ClassifiedImage,
  ClassifyOptions,
  ClassifyResult,
  EmbeddedImage,
  GroundedImage,
  GroundingResult,
  SkippedImage,
  StreamOptions,
} from './types.js';

function skipped(e: PreparedEntry): SkippedImage {
  return { index: e.index, name: e.name, error: e.error! };
}

interface BatchScores {
  score: Float32Array; // (n, Q)
  attention?: Float32Array; // (n, Q, P)
}

async function* scoredStream<R>(
  model: ZeroShotModel,
  options: ClassifyOptions,
  fn: string,
  attention: boolean,
  make: (e: PreparedEntry, row: number, Q: number, r: BatchScores) => R,
): AsyncGenerator<R | SkippedImage> {
  const resolved = resolveStreamOptions(model, options, fn);
  const signal = resolved.signal;
  if (signal?.aborted) throw abortError(signal);
  const tx = await resolvePrompts(model, options.prompts, fn, options.onWarning);
  const Q = tx.classes.length;
  let scored = 0;
  let skippedCount = 0;
  try {
    for await (const batch of preparedBatches(model, options, fn, resolved)) {
      const ok = batch.filter((e) => e.pixels);
      let r: BatchScores | undefined;
      if (ok.length) {
        using emb = await model.embedPrepared(ok as { pixels: Float32Array }[]);
        const s = await model.score(emb, tx.texts, { attention });
        r = { score: s.score, attention: s.attention };
      }
      scored += ok.length;
      skippedCount += batch.length - ok.length;
      options.onProgress?.({ done: scored + skippedCount, scored, skipped: skippedCount, total: resolved.total });
      let row = 0;
      for (const e of batch) {
        if (e.pixels) yield make(e, row++, Q, r!);
        else yield skipped(e);
      }
    }
  } finally {
    if (tx.owned) tx.texts[Symbol.dispose]();
  }
}

/** Streams per-image scores (or SkippedImage) in input order; memory bounded by batch + read-ahead. */
export function classifyStream(
  model: ZeroShotModel,
  options: ClassifyOptions,
): AsyncGenerator<ClassifiedImage | SkippedImage> {
  return scoredStream(model, options, 'classifyStream', false, (e, row, Q, r) => ({
    index: e.index,
    name: e.name,
    scores: r.score.slice(row * Q, (row + 1) * Q),
  }));
}

/** Collects classifyStream: classes, scored image names and scores, skipped images. */
export async function classify(model: ZeroShotModel, options: ClassifyOptions): Promise<ClassifyResult> {
  const resolved = resolveStreamOptions(model, options, 'classify');
  if (resolved.signal?.aborted) throw abortError(resolved.signal);
  const out: ClassifyResult = { classes: [], images: [], scores: [], skipped: [] };
  const collect = { ...options };
  // Resolve the classes once, here, so they can be reported even when nothing is scored.
  const tx = await resolvePrompts(model, options.prompts, 'classify', options.onWarning);
  out.classes = tx.classes;
  try {
    collect.prompts = Object.assign(tx.texts, { classes: tx.classes });
    for await (const r of classifyStream(model, collect)) {
      if ('error' in r) out.skipped.push(r);
      else {
        out.images.push(r.name);
        out.scores.push(r.scores);
      }
    }
  } finally {
    if (tx.owned) tx.texts[Symbol.dispose]();
  }
  return out;
}

/** Streams scores and grounding maps (Q, crop, crop) per image (spec 5). */
export function groundingStream(
  model: ZeroShotModel,
  options: ClassifyOptions,
): AsyncGenerator<GroundedImage | SkippedImage> {
  const v = model.config.vision;
  const crop = model.config.preprocess.crop;
  const grid = v.image_size / v.patch_size;
  const P = grid * grid;
  const factor = crop / grid;
  return scoredStream(model, options, 'groundingMaps', true, (e, row, Q, r) => {
    const maps = new Float32Array(Q * crop * crop);
    for (let q = 0; q < Q; q++) {
      const att = r.attention!.subarray((row * Q + q) * P, (row * Q + q + 1) * P);
      upsampleNearest(att, grid, factor, maps.subarray(q * crop * crop, (q + 1) * crop * crop));
    }
    return { index: e.index, name: e.name, scores: r.score.slice(row * Q, (row + 1) * Q), maps, pixels: e.pixels! };
  });
}

/** Collects grounding maps: per image (Q, 224, 224); for large inputs use groundingStream. */
export async function groundingMaps(model: ZeroShotModel, options: ClassifyOptions): Promise<GroundingResult> {
  const resolved = resolveStreamOptions(model, options, 'groundingMaps');
  if (resolved.signal?.aborted) throw abortError(resolved.signal);
  const tx = await resolvePrompts(model, options.prompts, 'groundingMaps', options.onWarning);
  const out: GroundingResult = { classes: tx.classes, images: [], scores: [], maps: [], skipped: [] };
  try {
    for await (const r of groundingStream(model, {
      ...options,
      prompts: Object.assign(tx.texts, { classes: tx.classes }),
    })) {
      if ('error' in r) out.skipped.push(r);
      else {
        out.images.push(r.name);
        out.scores.push(r.scores);
        out.maps.push(r.maps);
      }
    }
  } finally {
    if (tx.owned) tx.texts[Symbol.dispose]();
  }
  return out;
}

/** Streams image embeddings (global (C), and local (P, C) when `local`) in input order. */
export async function* embedImageStream(
  model: ZeroShotModel,
  options: StreamOptions & { local?: boolean },
): AsyncGenerator<EmbeddedImage | SkippedImage> {
  const fn = 'embedImageStream';
  const resolved = resolveStreamOptions(model, options, fn);
  if (resolved.signal?.aborted) throw abortError(resolved.signal);
  let done = 0;
  let skippedCount = 0;
  for await (const batch of preparedBatches(model, options, fn, resolved)) {
    const ok = batch.filter((e) => e.pixels);
    let global: Float32Array | undefined;
    let local: Float32Array | undefined;
    if (ok.length) {
      using emb = await model.embedPrepared(ok as { pixels: Float32Array }[]);
      global = (await emb.global.read()) as Float32Array;
      if (options.local) local = (await emb.local.read()) as Float32Array;
    }
    done += batch.length;
    skippedCount += batch.length - ok.length;
    options.onProgress?.({ done, scored: done - skippedCount, skipped: skippedCount, total: resolved.total });
    const C = global ? global.length / ok.length : 0;
    const PC = local ? local.length / ok.length : 0;
    let row = 0;
    for (const e of batch) {
      if (!e.pixels) {
        yield skipped(e);
        continue;
      }
      const item: EmbeddedImage = { index: e.index, name: e.name, global: global!.slice(row * C, (row + 1) * C) };
      if (local) item.local = local.slice(row * PC, (row + 1) * PC);
      row++;
      yield item;
    }
  }
}
