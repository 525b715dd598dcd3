// OpenCV's cv::resize(..., INTER_AREA) on one-channel uint8 images, transcribed from OpenCV 4.6
// modules/imgproc/src/resize.cpp (the build Debian's python3-opencv uses: no IPP, no custom HAL).
//
// Three paths, chosen exactly as cv::hal::resize does:
// - same size: copy;
// - scale_x >= 1 and scale_y >= 1 (shrinking), both integer: resizeAreaFast (the 2x2 case uses the
//   SIMD rounding (a+b+c+d+2)>>2, the others cvRound(sum * (1.f/area)) in float);
// - shrinking, otherwise: resizeArea with computeResizeAreaTab's float weights and float sums,
//   cvRound (half to even) at the end of each output row;
// - any side enlarging: the "linear-like" path: resizeGeneric_ with INTER_AREA's own coefficients
//   (fx = (dx+1) - (sx+1)*inv_scale_x, fractional part), converted to 11-bit fixed point
//   (INTER_RESIZE_COEF_BITS), horizontal pass in int, vertical pass as VResizeLinear's
//   ((b0*(S0>>4))>>16 + (b1*(S1>>4))>>16 + 2) >> 2.
// Float arithmetic is emulated with Math.fround (products of a uint8 and a float are exact in
// double, so fround after each operation gives the float result OpenCV computes without FMA).
//
// Dimension letters: W, H source width/height, DW, DH destination width/height.

const f32 = Math.fround;
const DBL_EPSILON = 2.220446049250313e-16;
const INTER_RESIZE_COEF_BITS = 11;
const INTER_RESIZE_COEF_SCALE = 1 << INTER_RESIZE_COEF_BITS;

/** cvRound: round half to even (lrint in the default rounding mode). */
function cvRound(v: number): number {
  const r = Math.round(v); // half up
  return r - v === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

function saturateU8(v: number): number {
  const r = cvRound(v);
  return r < 0 ? 0 : r > 255 ? 255 : r;
}

/** saturate_cast<int>(double) as OpenCV: cvRound then clamp to int range. */
function saturateInt(v: number): number {
  return cvRound(v);
}

function checkDims(src: Uint8Array, w: number, h: number, dstW: number, dstH: number): void {
  if (!(src instanceof Uint8Array)) throw new TypeError("resizeArea: argument 'src' must be a Uint8Array");
  for (const [name, v] of [
    ['width', w],
    ['height', h],
    ['dstWidth', dstW],
    ['dstHeight', dstH],
  ] as const)
    if (!Number.isSafeInteger(v) || v < 1)
      throw new RangeError(`resizeArea: argument '${name}' must be a positive integer, got ${v}`);
  if (src.length < w * h) throw new RangeError(`resizeArea: 'src' has ${src.length} bytes, expected ${w * h}`);
}

/**
 * Resizes a grey uint8 image (W*H, row-major) to DW*DH like cv2.resize(img, (DW, DH),
 * interpolation=cv2.INTER_AREA). Writes into `out` when given (length DW*DH).
 */
export function resizeArea(
  src: Uint8Array,
  w: number,
  h: number,
  dstW: number,
  dstH: number,
  out?: Uint8Array,
): Uint8Array {
  checkDims(src, w, h, dstW, dstH);
  const dst = out ?? new Uint8Array(dstW * dstH);
  if (dst.length < dstW * dstH)
    throw new RangeError(`resizeArea: 'out' has ${dst.length} bytes, expected ${dstW * dstH}`);
  if (w === dstW && h === dstH) {
    dst.set(src.subarray(0, w * h));
    return dst;
  }
  const invScaleX = dstW / w;
  const invScaleY = dstH / h;
  const scaleX = 1 / invScaleX;
  const scaleY = 1 / invScaleY;
  if (scaleX >= 1 && scaleY >= 1) {
    const iscaleX = saturateInt(scaleX);
    const iscaleY = saturateInt(scaleY);
    const fast = Math.abs(scaleX - iscaleX) < DBL_EPSILON && Math.abs(scaleY - iscaleY) < DBL_EPSILON;
    if (fast) areaFast(src, w, h, dst, dstW, dstH, iscaleX, iscaleY);
    else areaGeneric(src, w, h, dst, dstW, dstH, scaleX, scaleY);
  } else {
    areaLinear(src, w, h, dst, dstW, dstH, scaleX, scaleY, invScaleX, invScaleY);
  }
  return dst;
}

// resizeAreaFast_Invoker<uchar, int, ResizeAreaFastVec<uchar, ResizeAreaFastVec_SIMD_8u>>
function areaFast(
  src: Uint8Array,
  w: number,
  h: number,
  dst: Uint8Array,
  dw: number,
  dh: number,
  sx: number,
  sy: number,
) {
  const area = sx * sy;
  const scale = f32(1 / area);
  const dwidth1 = Math.floor(w / sx); // output columns fully inside the source
  const twoByTwo = sx === 2 && sy === 2;
  for (let dy = 0; dy < dh; dy++) {
    const drow = dy * dw;
    const sy0 = dy * sy;
    if (sy0 >= h) {
      dst.fill(0, drow, drow + dw);
      continue;
    }
    const full = sy0 + sy <= h ? dwidth1 : 0;
    let dx = 0;
    if (twoByTwo) {
      const r0 = sy0 * w;
      const r1 = r0 + w;
      for (; dx < full; dx++) {
        const i = dx * 2;
        dst[drow + dx] = (src[r0 + i] + src[r0 + i + 1] + src[r1 + i] + src[r1 + i + 1] + 2) >> 2;
      }
    } else {
      for (; dx < full; dx++) {
        let sum = 0;
        const x0 = dx * sx;
        for (let k = 0; k < sy; k++) {
          const r = (sy0 + k) * w + x0;
          for (let j = 0; j < sx; j++) sum += src[r + j];
        }
        dst[drow + dx] = saturateU8(f32(sum * scale));
      }
    }
    // Partial cells at the right/bottom border: mean of the pixels that exist.
    for (; dx < dw; dx++) {
      let sum = 0;
      let count = 0;
      const sx0 = dx * sx;
      if (sx0 >= w) {
        dst[drow + dx] = 0;
        // OpenCV goes on and overwrites with sum/count; count is 0 here -> NaN -> saturate gives 0.
        continue;
      }
      for (let k = 0; k < sy && sy0 + k < h; k++) {
        const r = (sy0 + k) * w;
        for (let j = 0; j < sx && sx0 + j < w; j++) {
          sum += src[r + sx0 + j];
          count++;
        }
      }
      dst[drow + dx] = saturateU8(f32(f32(sum) / count));
    }
  }
}

// computeResizeAreaTab: per output index the source indices and float weights of its cell.
function areaTab(ssize: number, dsize: number, scale: number) {
  const di: number[] = [];
  const si: number[] = [];
  const alpha: number[] = [];
  for (let dx = 0; dx < dsize; dx++) {
    const fsx1 = dx * scale;
    const fsx2 = fsx1 + scale;
    const cellWidth = Math.min(scale, ssize - fsx1);
    let sx1 = Math.ceil(fsx1);
    let sx2 = Math.floor(fsx2);
    sx2 = Math.min(sx2, ssize - 1);
    sx1 = Math.min(sx1, sx2);
    if (sx1 - fsx1 > 1e-3) {
      di.push(dx);
      si.push(sx1 - 1);
      alpha.push(f32((sx1 - fsx1) / cellWidth));
    }
    for (let sx = sx1; sx < sx2; sx++) {
      di.push(dx);
      si.push(sx);
      alpha.push(f32(1.0 / cellWidth));
    }
    if (fsx2 - sx2 > 1e-3) {
      di.push(dx);
      si.push(sx2);
      alpha.push(f32(Math.min(Math.min(fsx2 - sx2, 1), cellWidth) / cellWidth));
    }
  }
  return { di: Int32Array.from(di), si: Int32Array.from(si), alpha: Float32Array.from(alpha), size: di.length };
}

// ResizeArea_Invoker<uchar, float>
function areaGeneric(
  src: Uint8Array,
  w: number,
  h: number,
  dst: Uint8Array,
  dw: number,
  dh: number,
  scaleX: number,
  scaleY: number,
) {
  const xt = areaTab(w, dw, scaleX);
  const yt = areaTab(h, dh, scaleY);
  const buf = new Float64Array(dw); // holds float32 values
  const sum = new Float64Array(dw);
  let prevDy = yt.di[0];
  for (let j = 0; j < yt.size; j++) {
    const beta = yt.alpha[j];
    const dy = yt.di[j];
    const srow = yt.si[j] * w;
    buf.fill(0);
    for (let k = 0; k < xt.size; k++) {
      const d = xt.di[k];
      buf[d] = f32(buf[d] + f32(src[srow + xt.si[k]] * xt.alpha[k]));
    }
    if (dy !== prevDy) {
      const drow = prevDy * dw;
      for (let dx = 0; dx < dw; dx++) {
        dst[drow + dx] = saturateU8(sum[dx]);
        sum[dx] = f32(beta * buf[dx]);
      }
      prevDy = dy;
    } else {
      for (let dx = 0; dx < dw; dx++) sum[dx] = f32(sum[dx] + f32(beta * buf[dx]));
    }
  }
  const drow = prevDy * dw;
  for (let dx = 0; dx < dw; dx++) dst[drow + dx] = saturateU8(sum[dx]);
}

// INTER_AREA when enlarging: cv::hal::resize's coefficient set-up in area_mode, fixed point, then
// resizeGeneric_<HResizeLinear<uchar,int,short,2048>, VResizeLinear<uchar,int,short,FixedPtCast>>.
function areaLinear(
  src: Uint8Array,
  w: number,
  h: number,
  dst: Uint8Array,
  dw: number,
  dh: number,
  scaleX: number,
  scaleY: number,
  invScaleX: number,
  invScaleY: number,
) {
  const xofs = new Int32Array(dw);
  const ialpha = new Int32Array(dw * 2);
  let xmax = dw;
  for (let dx = 0; dx < dw; dx++) {
    let sx = Math.floor(dx * scaleX);
    let fx = f32(dx + 1 - (sx + 1) * invScaleX);
    fx = fx <= 0 ? 0 : f32(fx - Math.floor(fx));
    // ksize2 = 1: `sx < ksize2 - 1` never holds for sx >= 0.
    if (sx + 1 >= w) {
      xmax = Math.min(xmax, dx);
      if (sx >= w - 1) {
        fx = 0;
        sx = w - 1;
      }
    }
    xofs[dx] = sx;
    ialpha[dx * 2] = cvRound(f32(f32(1 - fx) * INTER_RESIZE_COEF_SCALE));
    ialpha[dx * 2 + 1] = cvRound(f32(fx * INTER_RESIZE_COEF_SCALE));
  }
  const yofs = new Int32Array(dh);
  const ibeta = new Int32Array(dh * 2);
  for (let dy = 0; dy < dh; dy++) {
    const sy = Math.floor(dy * scaleY);
    let fy = f32(dy + 1 - (sy + 1) * invScaleY);
    fy = fy <= 0 ? 0 : f32(fy - Math.floor(fy));
    yofs[dy] = sy;
    ibeta[dy * 2] = cvRound(f32(f32(1 - fy) * INTER_RESIZE_COEF_SCALE));
    ibeta[dy * 2 + 1] = cvRound(f32(fy * INTER_RESIZE_COEF_SCALE));
  }
  // Horizontal pass per needed source row (cached: consecutive output rows share source rows).
  const rows = [new Int32Array(dw), new Int32Array(dw)];
  const rowOf = [-1, -1];
  const hresize = (sy: number, out: Int32Array) => {
    const r = sy * w;
    let dx = 0;
    for (; dx < xmax; dx++) {
      const sx = xofs[dx];
      out[dx] = src[r + sx] * ialpha[dx * 2] + src[r + sx + 1] * ialpha[dx * 2 + 1];
    }
    for (; dx < dw; dx++) out[dx] = src[r + xofs[dx]] * INTER_RESIZE_COEF_SCALE;
  };
  const getRow = (sy: number): Int32Array => {
    for (let k = 0; k < 2; k++) if (rowOf[k] === sy) return rows[k];
    // Replace the slot not holding the other row we need next (simple LRU of two).
    const slot = rowOf[0] === -1 || rowOf[0] < sy - 1 ? 0 : 1;
    rowOf[slot] = sy;
    hresize(sy, rows[slot]);
    return rows[slot];
  };
  for (let dy = 0; dy < dh; dy++) {
    const sy0 = yofs[dy];
    const syA = Math.min(Math.max(sy0, 0), h - 1);
    const syB = Math.min(Math.max(sy0 + 1, 0), h - 1);
    const s0 = getRow(syA);
    const s1 = syB === syA ? s0 : getRow(syB);
    const b0 = ibeta[dy * 2];
    const b1 = ibeta[dy * 2 + 1];
    const drow = dy * dw;
    for (let x = 0; x < dw; x++) {
      const v = (((b0 * (s0[x] >> 4)) >> 16) + ((b1 * (s1[x] >> 4)) >> 16) + 2) >> 2;
      dst[drow + x] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
}
