// Grounding maps (spec 5) and their heat-map overlays: the head's i2t cross-attention over the
// image patches (native score(..., { attention: true }): (B, Q, P), heads and layers averaged, the
// global entry dropped), reshaped to grid x grid (14 x 14) and upsampled x16 nearest to 224; the
// overlay blends a jet-like colormap of the min-max normalised map onto the 224 crop the model saw.
import { writeFile } from 'node:fs/promises';
import { PNG } from 'pngjs';

/** (grid*grid) row-major patch values -> (grid*factor)^2 nearest-neighbour upsampled. */
export function upsampleNearest(att: Float32Array, grid: number, factor: number, out?: Float32Array): Float32Array {
  if (att.length !== grid * grid)
    throw new RangeError(`upsampleNearest: argument 'att' has ${att.length} values, expected ${grid}x${grid}`);
  const size = grid * factor;
  const o = out ?? new Float32Array(size * size);
  if (o.length !== size * size)
    throw new RangeError(`upsampleNearest: argument 'out' has ${o.length} values, expected ${size * size}`);
  for (let y = 0; y < size; y++) {
    const src = Math.floor(y / factor) * grid;
    const row = y * size;
    for (let x = 0; x < size; x++) o[row + x] = att[src + Math.floor(x / factor)];
  }
  return o;
}

/** The jet colormap (matplotlib's piecewise-linear 'jet'): t in [0, 1] -> [r, g, b] in 0..255. */
export function jet(t: number): [number, number, number] {
  const v = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  const ch = (x: number) => Math.round(255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - x))));
  return [ch(3), ch(2), ch(1)];
}

export interface OverlayOptions {
  /** Heat-map weight in the blend, 0..1 (default 0.45). */
  alpha?: number;
  /** Normalisation of the pixels (to undo it): defaults CARZero's 0.4978 / 0.2449. */
  mean?: number;
  std?: number;
}

/**
 * A PNG (RGB, size x size) of `map` (size x size) in the jet colormap, min-max normalised, blended
 * on the grey crop: `pixels` as the model's normalised float32 crop, or 8-bit grey.
 */
export function overlayPng(pixels: Float32Array | Uint8Array, map: Float32Array, options: OverlayOptions = {}): Buffer {
  const n = map.length;
  const size = Math.round(Math.sqrt(n));
  if (size * size !== n) throw new RangeError(`overlayPng: argument 'map' must be square, got ${n} values`);
  if (pixels.length !== n)
    throw new RangeError(`overlayPng: argument 'pixels' has ${pixels.length} values, the map ${n}`);
  const { alpha = 0.45, mean = 0.4978, std = 0.2449 } = options;
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`overlayPng: option 'alpha' must be in [0, 1], got ${alpha}`);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    if (map[i] < lo) lo = map[i];
    if (map[i] > hi) hi = map[i];
  }
  const span = hi > lo ? hi - lo : 1;
  const png = new PNG({ width: size, height: size, colorType: 2, inputHasAlpha: true });
  const grey = (i: number) =>
    pixels instanceof Uint8Array ? pixels[i] : Math.min(255, Math.max(0, (pixels[i] * std + mean) * 255));
  for (let i = 0; i < n; i++) {
    const g = grey(i);
    const [r, gg, b] = jet((map[i] - lo) / span);
    png.data[4 * i] = Math.round((1 - alpha) * g + alpha * r);
    png.data[4 * i + 1] = Math.round((1 - alpha) * g + alpha * gg);
    png.data[4 * i + 2] = Math.round((1 - alpha) * g + alpha * b);
    png.data[4 * i + 3] = 255;
  }
  return PNG.sync.write(png, { colorType: 2 });
}

/** Writes overlayPng(...) to `file`. */
export async function writeOverlayPng(
  file: string,
  pixels: Float32Array | Uint8Array,
  map: Float32Array,
  options: OverlayOptions = {},
): Promise<void> {
  if (typeof file !== 'string' || !file) throw new TypeError("writeOverlayPng: argument 'file' must be a path string");
  await writeFile(file, overlayPng(pixels, map, options));
}
