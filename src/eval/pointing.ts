// The pointing game on ChestXDet10-style boxes.
//
// Box file: the ChestXDet10 test.json the original script reads, a JSON array of
//   {"file_name": "36204.png", "syms": ["Effusion", "Nodule"], "boxes": [[x1, y1, x2, y2], ...]}
// with boxes[k] the box of syms[k] in the ORIGINAL image's pixel coordinates (x to the right,
// y down, corners inclusive); a class may have several boxes. protocols.ts reads it.
//
// A grounding map (spec 5) covers the model's input: the centre crop (224 x 224) of the image
// resized so its longer side is 256 and zero-padded to 256 x 256. A map of any size M x M is
// taken as covering that crop evenly. For one (image, class) pair with boxes, the pair is a HIT
// when the map's maximum over the pixels whose centres fall inside one of the class's boxes
// equals the map's global maximum, i.e. when some pixel attaining the maximum points into a box
// (the nearest x16 upsampling makes the maximum a 16 x 16 block; any of its pixels counts).
// Pixel centres are taken back to original coordinates through the crop offset, the padding
// and the per-axis resize factors (resized size / original size, as cv2.resize maps them).
// Results: hits / pairs overall, per class, and the mean of the per-class rates.
import { centreCropOffset, padLayout } from '../image/preprocess.js';
import type { Box } from './protocols.js';

export interface Geometry {
  /** Original image size in pixels. */
  width: number;
  height: number;
  /** Resize target (longer side) and centre crop; defaults 256 and 224. */
  resize?: number;
  crop?: number;
}

/** Maps a map pixel (u, v) of an M x M map to the original image coordinates of its centre. */
export function mapPixelToImage(u: number, v: number, mapSize: number, g: Geometry): { x: number; y: number } {
  const resize = g.resize ?? 256;
  const crop = g.crop ?? 224;
  const r = padLayout(g.width, g.height, resize);
  const { left, top } = r;
  const off = centreCropOffset(resize, crop);
  const cx = ((u + 0.5) * crop) / mapSize + off - left;
  const cy = ((v + 0.5) * crop) / mapSize + off - top;
  return { x: cx * (g.width / r.width), y: cy * (g.height / r.height) };
}

/** One pointing-game trial; `map` is mapSize x mapSize, row-major. */
export function pointingHit(map: ArrayLike<number>, mapSize: number, boxes: readonly Box[], g: Geometry): boolean {
  if (map.length !== mapSize * mapSize)
    throw new RangeError(`pointingHit: map has ${map.length} values, expected ${mapSize} x ${mapSize}`);
  let max = -Infinity;
  for (let i = 0; i < map.length; i++) if (map[i] > max) max = map[i];
  for (let v = 0; v < mapSize; v++)
    for (let u = 0; u < mapSize; u++) {
      if (map[v * mapSize + u] !== max) continue;
      const p = mapPixelToImage(u, v, mapSize, g);
      if (boxes.some((b) => p.x >= b.x1 && p.x <= b.x2 && p.y >= b.y1 && p.y <= b.y2)) return true;
    }
  return false;
}

export interface PointingTrial {
  classIndex: number;
  map: ArrayLike<number>;
  mapSize: number;
  boxes: readonly Box[];
  geometry: Geometry;
}

export interface PointingResult {
  hits: number;
  trials: number;
  /** hits / trials over all (image, class) pairs. */
  accuracy: number;
  /** Per class index: hits, trials, rate (NaN without trials). */
  perClass: { hits: number; trials: number; rate: number }[];
  /** Mean of the per-class rates over classes with trials. */
  macro: number;
}

export function pointingGame(trials: Iterable<PointingTrial>, classCount: number): PointingResult {
  const perClass = Array.from({ length: classCount }, () => ({ hits: 0, trials: 0, rate: NaN }));
  let hits = 0;
  let n = 0;
  for (const t of trials) {
    const hit = pointingHit(t.map, t.mapSize, t.boxes, t.geometry);
    perClass[t.classIndex].trials++;
    n++;
    if (hit) {
      perClass[t.classIndex].hits++;
      hits++;
    }
  }
  let s = 0;
  let k = 0;
  for (const c of perClass)
    if (c.trials) {
      c.rate = c.hits / c.trials;
      s += c.rate;
      k++;
    }
  return { hits, trials: n, accuracy: n ? hits / n : NaN, perClass, macro: k ? s / k : NaN };
}
