// Grounding overlays for the demo: the model's i2t attention map (jet colormap, min-max
// normalised) blended on the grey crop the model saw, enlarged by an integer factor so a 64 px
// crop is visible, with the finding's true box drawn as a white/black outline.
import { PNG } from 'pngjs';
import { centreCropOffset, padLayout } from '../../image/preprocess.js';
import { jet } from '../../zeroshot/grounding.js';
import type { BoxXY } from './render.js';

export interface CropGeometry {
  /** Original image size. */
  width: number;
  height: number;
  /** The model's preprocessing: padded side and centre crop. */
  resize: number;
  crop: number;
}

/** A box in original image pixels -> the same box in crop pixels (spec 1 geometry). */
export function boxToCrop(b: BoxXY, g: CropGeometry): BoxXY {
  const r = padLayout(g.width, g.height, g.resize);
  const { left, top } = r;
  const off = centreCropOffset(g.resize, g.crop);
  const sx = r.width / g.width;
  const sy = r.height / g.height;
  return [b[0] * sx + left - off, b[1] * sy + top - off, (b[2] + 1) * sx + left - off, (b[3] + 1) * sy + top - off];
}

/**
 * PNG (RGB) of `map` (crop x crop) over `pixels` (crop x crop normalised float32), scaled up by
 * `zoom`, with `boxes` (crop pixels, x1 y1 x2 y2 as edges) outlined.
 */
export function groundingOverlayPng(
  pixels: Float32Array,
  map: Float32Array,
  boxes: readonly BoxXY[],
  o: { zoom?: number; alpha?: number; mean?: number; std?: number } = {},
): Buffer {
  const n = map.length;
  const size = Math.round(Math.sqrt(n));
  if (size * size !== n || pixels.length !== n)
    throw new RangeError(`groundingOverlayPng: map (${n}) and pixels (${pixels.length}) must be the same square size`);
  const { zoom = 4, alpha = 0.45, mean = 0.4978, std = 0.2449 } = o;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of map) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const span = hi > lo ? hi - lo : 1;
  const W = size * zoom;
  const png = new PNG({ width: W, height: W, colorType: 2 });
  for (let y = 0; y < W; y++)
    for (let x = 0; x < W; x++) {
      const i = Math.floor(y / zoom) * size + Math.floor(x / zoom);
      const g = Math.min(255, Math.max(0, (pixels[i] * std + mean) * 255));
      const c = jet((map[i] - lo) / span);
      const d = 4 * (y * W + x);
      for (let k = 0; k < 3; k++) png.data[d + k] = Math.round((1 - alpha) * g + alpha * c[k]);
      png.data[d + 3] = 255;
    }
  const put = (x: number, y: number, v: number) => {
    if (x < 0 || y < 0 || x >= W || y >= W) return;
    const d = 4 * (y * W + x);
    png.data[d] = png.data[d + 1] = png.data[d + 2] = v;
  };
  for (const b of boxes) {
    const x1 = Math.round(b[0] * zoom),
      y1 = Math.round(b[1] * zoom);
    const x2 = Math.round(b[2] * zoom) - 1,
      y2 = Math.round(b[3] * zoom) - 1;
    // a 2 px outline: white inside, black outside, visible on any colour
    for (const [d, v] of [
      [0, 255],
      [1, 0],
    ] as const) {
      for (let x = x1 - d; x <= x2 + d; x++) {
        put(x, y1 - d, v);
        put(x, y2 + d, v);
      }
      for (let y = y1 - d; y <= y2 + d; y++) {
        put(x1 - d, y, v);
        put(x2 + d, y, v);
      }
    }
  }
  return PNG.sync.write(png, { colorType: 2 });
}
