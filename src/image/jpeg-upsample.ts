// Bringing the kept component to the image size when it is sampled below the frame's maximum
// (T.81 A.1.1 leaves the method to the decoder). Reproduces libjpeg's choices (jdsample.c) with
// its default do_fancy_upsampling: "fancy" triangular filters for 2:1 horizontal (h2v1), 2:1
// vertical (h1v2) and 2:1 both ways (h2v2), each sample weighted 3/4 nearer + 1/4 farther with
// libjpeg's alternating rounding biases; plain replication for other integer ratios and for
// 2:1 horizontal ratios on a component 2 samples wide or less; fractional ratios are refused.
// Vertical neighbours past the top or bottom edge repeat the edge row, as libjpeg's context rows do.
import { JpegError, type Frame, type FrameComponent } from './jpeg-markers.js';

/**
 * The component's samples (plane, `stride` bytes per line, comp.width x comp.height valid) scaled to
 * frame.width x frame.height.
 */
export function upsampleComponent(plane: Uint8Array, stride: number, comp: FrameComponent, frame: Frame): Uint8Array {
  const { width, height, maxH, maxV } = frame;
  const { h, v } = comp;
  const inW = comp.width;
  const inH = comp.height;
  const out = new Uint8Array(width * height);
  if (h === maxH && v === maxV) {
    for (let y = 0; y < height; y++) out.set(plane.subarray(y * stride, y * stride + width), y * width);
    return out;
  }
  if (maxH % h !== 0 || maxV % v !== 0)
    throw new JpegError(
      `sampling factors ${h}x${v} against a ${maxH}x${maxV} maximum need fractional upsampling (not supported)`,
      true,
    );
  const hx = maxH / h;
  const vx = maxV / v;
  // One widened output row from input row `a`, nearer, and `b`, the vertical neighbour.
  const line = new Uint8Array(inW * hx);
  if (hx === 2 && vx === 1 && inW > 2) {
    for (let y = 0; y < height; y++) {
      h2v1Row(plane, y * stride, inW, line);
      out.set(line.subarray(0, width), y * width);
    }
    return out;
  }
  if (hx === 1 && vx === 2) {
    for (let y = 0; y < height; y++) {
      const i = y >> 1;
      // Even output rows lean on the row above (bias 1), odd ones on the row below (bias 2).
      const j = y & 1 ? Math.min(i + 1, inH - 1) : Math.max(i - 1, 0);
      const bias = y & 1 ? 2 : 1;
      const a = i * stride;
      const b = j * stride;
      const o = y * width;
      for (let x = 0; x < width; x++) out[o + x] = (plane[a + x] * 3 + plane[b + x] + bias) >> 2;
    }
    return out;
  }
  if (hx === 2 && vx === 2 && inW > 2) {
    for (let y = 0; y < height; y++) {
      const i = y >> 1;
      const j = y & 1 ? Math.min(i + 1, inH - 1) : Math.max(i - 1, 0);
      h2v2Row(plane, i * stride, j * stride, inW, line);
      out.set(line.subarray(0, width), y * width);
    }
    return out;
  }
  // Integer ratios: each sample repeated hx times across, vx times down.
  for (let y = 0; y < height; y++) {
    const a = Math.floor(y / vx) * stride;
    const o = y * width;
    for (let x = 0; x < width; x++) out[o + x] = plane[a + Math.floor(x / hx)];
  }
  return out;
}

/** h2v1: out[2i] = (3 in[i] + in[i-1] + 1) >> 2, out[2i+1] = (3 in[i] + in[i+1] + 2) >> 2; edges copy. */
function h2v1Row(p: Uint8Array, a: number, n: number, out: Uint8Array): void {
  out[0] = p[a];
  out[1] = (p[a] * 3 + p[a + 1] + 2) >> 2;
  for (let i = 1; i < n - 1; i++) {
    const c = p[a + i] * 3;
    out[2 * i] = (c + p[a + i - 1] + 1) >> 2;
    out[2 * i + 1] = (c + p[a + i + 1] + 2) >> 2;
  }
  out[2 * n - 2] = (p[a + n - 1] * 3 + p[a + n - 2] + 1) >> 2;
  out[2 * n - 1] = p[a + n - 1];
}

/**
 * h2v2: column sums 3 * nearer row + farther row, then the h2v1 weighting of those sums, /16 with
 * biases 8 and 7 alternating (edges: 4 * sum).
 */
function h2v2Row(p: Uint8Array, a: number, b: number, n: number, out: Uint8Array): void {
  let last = p[a] * 3 + p[b];
  let cur = last;
  let next = p[a + 1] * 3 + p[b + 1];
  out[0] = (cur * 4 + 8) >> 4;
  out[1] = (cur * 3 + next + 7) >> 4;
  last = cur;
  cur = next;
  for (let i = 1; i < n - 1; i++) {
    next = p[a + i + 1] * 3 + p[b + i + 1];
    out[2 * i] = (cur * 3 + last + 8) >> 4;
    out[2 * i + 1] = (cur * 3 + next + 7) >> 4;
    last = cur;
    cur = next;
  }
  out[2 * n - 2] = (cur * 3 + last + 8) >> 4;
  out[2 * n - 1] = (cur * 4 + 7) >> 4;
}
