// Devices: a native execution context (CPU thread pool, or a CUDA device's streams and handles).
import { native, type DeviceKind, type NativeContext } from './native.js';

export interface CpuDeviceOptions {
  /** Worker threads for this device's own pool; omitted or 0 shares the process default pool
   * (CARZERO_NUM_THREADS or the number of cores). */
  threads?: number;
}

let defaultCpu: Device | undefined;

let driverWarned = false;

export class Device implements Disposable {
  readonly #ctx: NativeContext;
  readonly kind: DeviceKind;
  readonly index: number;

  private constructor(ctx: NativeContext, kind: DeviceKind, index: number) {
    this.#ctx = ctx;
    this.kind = kind;
    this.index = index;
  }

  /** The CPU. Without options, one shared instance backed by the default thread pool. */
  static cpu(options: CpuDeviceOptions = {}): Device {
    if (options === null || typeof options !== 'object')
      throw new TypeError("Device.cpu: argument 'options' must be an object");
    const threads = options.threads ?? 0;
    if (!Number.isInteger(threads) || threads < 0 || threads > 1024)
      throw new RangeError(`Device.cpu: option 'threads' must be an integer in [0, 1024], got ${threads}`);
    if (threads === 0) {
      if (!defaultCpu || defaultCpu.disposed) defaultCpu = new Device(new (native().Context)('cpu', 0, 0), 'cpu', 0);
      return defaultCpu;
    }
    return new Device(new (native().Context)('cpu', 0, threads), 'cpu', 0);
  }

  /** A CUDA device; throws CarzeroError (CZ_ERR_UNSUPPORTED) saying why CUDA is unavailable. */
  static cuda(index = 0): Device {
    if (!Number.isInteger(index) || index < 0)
      throw new RangeError(`Device.cuda: argument 'index' must be a non-negative integer, got ${index}`);
    return new Device(new (native().Context)('cuda', index, 0), 'cuda', index);
  }

  /** 'auto' picks CUDA when available, else the CPU. */
  static resolve(spec: 'auto' | 'cpu' | 'cuda' | Device = 'auto'): Device {
    if (spec instanceof Device) return spec;
    if (spec === 'cpu') return Device.cpu();
    if (spec === 'cuda') return Device.cuda();
    if (spec === 'auto') {
      const info = JSON.parse(native().info()) as {
        cuda: { available: boolean; driver_too_old?: boolean; reason: string | null };
      };
      // A GPU with a driver older than the runtime: say so once, then use the CPU.
      if (!info.cuda.available && info.cuda.driver_too_old && !driverWarned) {
        driverWarned = true;
        process.emitWarning(`carzero: ${info.cuda.reason}`, 'CarzeroDriverWarning');
      }
      return info.cuda.available ? Device.cuda() : Device.cpu();
    }
    throw new TypeError(`argument 'device' must be 'auto', 'cpu', 'cuda' or a Device, got ${String(spec)}`);
  }

  get threads(): number {
    return this.#ctx.threads;
  }

  get disposed(): boolean {
    return this.#ctx.disposed;
  }

  toString(): string {
    return this.kind === 'cpu' ? 'cpu' : `cuda:${this.index}`;
  }

  /** @internal The native context (throws if disposed). */
  get nativeContext(): NativeContext {
    return this.#ctx;
  }

  /** Releases the context; tensors and in-flight work keep it alive until they are done. */
  dispose(): void {
    if (this === defaultCpu) defaultCpu = undefined;
    this.#ctx.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
