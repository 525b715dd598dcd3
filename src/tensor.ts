// Tensor: a dense row-major array in native memory on a Device.
import { Device } from './device.js';
import { CarzeroError } from './errors.js';
import { native, type DType, type NativeTensor } from './native.js';

export type { DType } from './native.js';
/** Host representation of each dtype (bf16 and f16 as raw 16-bit patterns). */
export type HostArray = Float32Array | Int32Array | Uint8Array | Uint16Array;

const DTYPES: readonly DType[] = ['f32', 'bf16', 'f16', 'i32', 'u8'];
const BYTES: Record<DType, number> = { f32: 4, bf16: 2, f16: 2, i32: 4, u8: 1 };

export function checkDtype(dtype: unknown, what: string): DType {
  if (typeof dtype !== 'string' || !DTYPES.includes(dtype as DType))
    throw new TypeError(`${what} must be one of ${DTYPES.join('|')}, got ${String(dtype)}`);
  return dtype as DType;
}

export function checkShape(shape: unknown, what: string): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${what} must be an array of sizes`);
  if (shape.length > 8) throw new RangeError(`${what} has ${shape.length} dimensions (at most 8)`);
  shape.forEach((d, i) => {
    if (typeof d !== 'number') throw new TypeError(`${what}[${i}] must be a number, got ${typeof d}`);
    if (!Number.isSafeInteger(d) || d < 0)
      throw new RangeError(`${what}[${i}] must be a non-negative integer, got ${d}`);
  });
  return shape.slice() as number[];
}

function hostView(dtype: DType, buf: ArrayBuffer): HostArray {
  switch (dtype) {
    case 'f32':
      return new Float32Array(buf);
    case 'i32':
      return new Int32Array(buf);
    case 'u8':
      return new Uint8Array(buf);
    default:
      return new Uint16Array(buf);
  }
}

function hostTypeMatches(dtype: DType, data: ArrayBufferView): boolean {
  switch (dtype) {
    case 'f32':
      return data instanceof Float32Array;
    case 'i32':
      return data instanceof Int32Array;
    case 'u8':
      return data instanceof Uint8Array;
    default:
      return data instanceof Uint16Array;
  }
}

const HOST_NAME: Record<DType, string> = {
  f32: 'Float32Array',
  i32: 'Int32Array',
  u8: 'Uint8Array',
  bf16: 'Uint16Array (raw bf16 bits) or Float32Array (converted)',
  f16: 'Uint16Array (raw f16 bits) or Float32Array (converted)',
};

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
}

export class Tensor implements Disposable {
  #native: NativeTensor;
  readonly device: Device;

  private constructor(t: NativeTensor, device: Device) {
    this.#native = t;
    this.device = device;
  }

  /** A zero-filled tensor. */
  static zeros(shape: readonly number[], options: TensorOptions = {}): Tensor {
    const s = checkShape(shape, "Tensor.zeros: argument 'shape'");
    const dtype = checkDtype(options.dtype ?? 'f32', "Tensor.zeros: option 'dtype'");
    const device = options.device ?? Device.cpu();
    return new Tensor(new (native().Tensor)(device.nativeContext, dtype, s), device);
  }

  /**
   * A tensor holding a copy of `data`. The host type must match the dtype (Float32Array for f32,
   * Int32Array for i32, Uint8Array for u8, Uint16Array bit patterns for bf16/f16); a Float32Array
   * with dtype bf16 or f16 is converted (round to nearest even) by the native core.
   */
  static from(data: HostArray | readonly number[], shape: readonly number[], options: TensorOptions = {}): Tensor {
    const s = checkShape(shape, "Tensor.from: argument 'shape'");
    const dtype = checkDtype(
      options.dtype ?? (data instanceof Int32Array ? 'i32' : data instanceof Uint8Array ? 'u8' : 'f32'),
      "Tensor.from: option 'dtype'",
    );
    const device = options.device ?? Device.cpu();
    const n = s.reduce((a, b) => a * b, 1);
    let view: ArrayBufferView;
    if (Array.isArray(data)) {
      view = dtype === 'i32' ? Int32Array.from(data) : dtype === 'u8' ? Uint8Array.from(data) : Float32Array.from(data);
    } else if (ArrayBuffer.isView(data)) {
      view = data as ArrayBufferView;
    } else {
      throw new TypeError("Tensor.from: argument 'data' must be a typed array or an array of numbers");
    }
    const len = (view as HostArray).length;
    if (len !== n)
      throw new RangeError(`Tensor.from: argument 'data' has ${len} elements but shape [${s.join(', ')}] needs ${n}`);
    if ((dtype === 'bf16' || dtype === 'f16') && view instanceof Float32Array) {
      using f32 = new Tensor(new (native().Tensor)(device.nativeContext, 'f32', s, view), device);
      const out = new Tensor(new (native().Tensor)(device.nativeContext, dtype, s), device);
      native().runOpSync(device.nativeContext, 'convert', [f32.native, out.native]);
      return out;
    }
    if (!hostTypeMatches(dtype, view))
      throw new TypeError(`Tensor.from: dtype ${dtype} needs a ${HOST_NAME[dtype]}, got ${view.constructor.name}`);
    return new Tensor(new (native().Tensor)(device.nativeContext, dtype, s, view), device);
  }

  get shape(): number[] {
    return this.native.shape;
  }
  get dtype(): DType {
    return this.native.dtype;
  }
  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get nbytes(): number {
    return this.size * BYTES[this.dtype];
  }
  get disposed(): boolean {
    return this.#native.disposed;
  }

  /** @internal The native handle; throws CarzeroError if the tensor was disposed. */
  get native(): NativeTensor {
    if (this.#native.disposed) throw new CarzeroError('tensor has been disposed', 'CZ_ERR_INVALID_ARGUMENT');
    return this.#native;
  }

  /** A host copy of the data (bf16/f16 as raw Uint16Array bits; see toFloat32). */
  toArray(): HostArray {
    return hostView(this.dtype, this.native.readSync());
  }

  /** The same, copied off the JS thread. */
  async read(): Promise<HostArray> {
    const dtype = this.dtype;
    return hostView(dtype, await this.native.read());
  }

  /** A host Float32Array copy, converting bf16/f16/i32/u8 values. */
  toFloat32(): Float32Array {
    if (this.dtype === 'f32') return this.toArray() as Float32Array;
    if (this.dtype === 'bf16' || this.dtype === 'f16') {
      using out = Tensor.zeros(this.shape, { dtype: 'f32', device: this.device });
      native().runOpSync(this.device.nativeContext, 'convert', [this.native, out.native]);
      return out.toArray() as Float32Array;
    }
    return Float32Array.from(this.toArray() as Int32Array | Uint8Array);
  }

  /** Overwrites the whole tensor with `data` (same element count and host type as toArray). */
  write(data: HostArray): void {
    if (!ArrayBuffer.isView(data)) throw new TypeError("Tensor.write: argument 'data' must be a typed array");
    if (!hostTypeMatches(this.dtype, data))
      throw new TypeError(
        `Tensor.write: dtype ${this.dtype} needs a ${HOST_NAME[this.dtype]}, got ${data.constructor.name}`,
      );
    if (data.length !== this.size)
      throw new RangeError(`Tensor.write: argument 'data' has ${data.length} elements, the tensor has ${this.size}`);
    this.native.writeSync(data);
  }

  /** Frees the native memory now (work already running on it finishes safely). Idempotent. */
  dispose(): void {
    this.#native.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return this.disposed ? 'Tensor(disposed)' : `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${this.device})`;
  }
}
