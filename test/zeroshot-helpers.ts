// Shared by the zero-shot and grounding tests: the tiny model converted once per test file.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/native.js';
import { convertCheckpoint } from '../src/weights/convert.js';

export const tiny = join(packageRoot, 'test', 'fixtures', 'tiny');
export const bin = join(packageRoot, 'dist', 'cli', 'main.js');
export const batchNames = ['grey8_tall_quirk', 'grey16_tall', 'rgb_wide', 'colour'];
export const batch = ['grey8_tall_quirk.png', 'grey16_tall.png', 'rgb_wide.png', 'colour.jpg'].map((f) =>
  join(tiny, 'images', f),
);
export const promptsFile = join(tiny, 'text', 'prompts.json');

export function f32(file: string): Float32Array {
  const b = readFileSync(join(tiny, file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
export const refScore = f32('outputs/score.f32'); // (4, 14)
export const classes = (JSON.parse(readFileSync(join(tiny, 'outputs', 'index.json'), 'utf8')) as { classes: string[] })
  .classes;
export const Q = classes.length;

/** Within 1e-5 + 1e-4 |ref| (the classify golden test's tolerance)? Returns the worst ratio. */
export function worst(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let w = 0;
  for (let i = 0; i < ref.length; i++) w = Math.max(w, Math.abs(got[i] - ref[i]) / (1e-5 + 1e-4 * Math.abs(ref[i])));
  return w;
}

export async function tinyModel(): Promise<{ dir: string; work: string }> {
  const work = mkdtempSync(join(tmpdir(), 'carzero-zs-'));
  const dir = join(work, 'model');
  const cfg = JSON.parse(readFileSync(join(tiny, 'config.json'), 'utf8'));
  await convertCheckpoint({
    checkpoint: join(tiny, 'carzero-tiny.ckpt'),
    textModel: join(tiny, 'bert-tiny'),
    out: dir,
    vitHeads: cfg.vision.heads,
    headHeads: cfg.head.heads,
  });
  return { dir, work };
}
