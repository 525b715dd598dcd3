// Host-side weight tensors: the dtypes weight files use (safetensors names), element sizes, and the
// float conversions convert needs (f32 <-> f16 / bf16, f64 -> f32). These run on plain Buffers, not
// native Tensors, so the converter works without the addon (and without a GPU).

/** Element types of weight files, named as safetensors names them. */
export type WeightDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Readonly<Record<WeightDType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export function isWeightDType(s: unknown): s is WeightDType {
  return typeof s === 'string' && Object.hasOwn(DTYPE_BYTES, s);
}

/** One tensor on the host: little-endian, row-major (C-contiguous) bytes. */
export interface WeightTensor {
  dtype: WeightDType;
  shape: number[];
  data: Buffer;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function byteLength(dtype: WeightDType, shape: readonly number[]): number {
  return numel(shape) * DTYPE_BYTES[dtype];
}

export function shapeString(shape: readonly number[]): string {
  return `(${shape.join(', ')})`;
}

// A Buffer slice may start at any byte offset, so typed-array views over it are only possible when
// the offset is aligned; otherwise copy. Callers get a fresh or shared view, never mutate it.
function view<T>(data: Buffer, bytes: number, Ctor: new (b: ArrayBufferLike, o: number, n: number) => T): T {
  if (data.byteOffset % bytes === 0) return new Ctor(data.buffer, data.byteOffset, data.length / bytes);
  const copy = Buffer.alloc(data.length);
  data.copy(copy);
  return new Ctor(copy.buffer, copy.byteOffset, copy.length / bytes);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** f16 bits -> number (exact). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** number -> f16 bits, round to nearest even (as torch's .half()), overflow to infinity. */
export function floatToHalf(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): shift the implicit-one mantissa right, rounding to nearest even.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let r = mant >>> shift;
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  const rest = mant & 0x1fff;
  let r = (e << 10) | (mant >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r++; // may carry into the exponent: still right
  return sign | r;
}

/** number -> bf16 bits, round to nearest even; NaN stays a (quiet) NaN. */
export function floatToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16ToFloat(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

/** The values of a floating or integer tensor as a Float32Array (a copy unless already F32 and aligned). */
export function toFloat32(t: WeightTensor): Float32Array {
  const n = numel(t.shape);
  switch (t.dtype) {
    case 'F32':
      return view(t.data, 4, Float32Array);
    case 'F64':
      return Float32Array.from(view(t.data, 8, Float64Array));
    case 'F16': {
      const src = view(t.data, 2, Uint16Array);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(src[i]!);
      return out;
    }
    case 'BF16': {
      const src = view(t.data, 2, Uint16Array);
      const out = new Float32Array(n);
      const o32 = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) o32[i] = src[i]! << 16;
      return out;
    }
    case 'I64': {
      const src = view(t.data, 8, BigInt64Array);
      return Float32Array.from(src, (v) => Number(v));
    }
    case 'I32':
      return Float32Array.from(view(t.data, 4, Int32Array));
    case 'I16':
      return Float32Array.from(view(t.data, 2, Int16Array));
    case 'I8':
      return Float32Array.from(new Int8Array(t.data.buffer, t.data.byteOffset, t.data.length));
    case 'U8':
    case 'BOOL':
      return Float32Array.from(t.data);
  }
}

const FLOATS: readonly WeightDType[] = ['F64', 'F32', 'F16', 'BF16'];
export function isFloatDType(d: WeightDType): boolean {
  return FLOATS.includes(d);
}

/**
 * Casts a floating tensor to F32, F16 or BF16 (returns `t` itself when the dtype already matches).
 * Integer tensors are refused: weights are floats, and silently turning ids into floats hides bugs.
 */
export function castFloat(t: WeightTensor, to: 'F32' | 'F16' | 'BF16'): WeightTensor {
  if (t.dtype === to) return t;
  if (!isFloatDType(t.dtype)) throw new TypeError(`castFloat: cannot cast a ${t.dtype} tensor to ${to}`);
  const n = numel(t.shape);
  // bf16 -> f32 and f16 -> f32 are exact; going through f32 first keeps one rounding for the rest
  // except f64 -> f16/bf16 (double rounding via f32), which is what torch's .to() does too.
  const src = toFloat32(t);
  if (to === 'F32')
    return { dtype: 'F32', shape: t.shape.slice(), data: Buffer.from(src.buffer, src.byteOffset, src.byteLength) };
  const out = new Uint16Array(n);
  const conv = to === 'F16' ? floatToHalf : floatToBf16;
  for (let i = 0; i < n; i++) out[i] = conv(src[i]!);
  return { dtype: to, shape: t.shape.slice(), data: Buffer.from(out.buffer) };
}
