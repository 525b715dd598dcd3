// The capabilities report: version, CPU features in use, threads, CUDA state (and why not).
import { native } from './native.js';

export interface CarzeroInfo {
  version: string;
  cpu: {
    vendor: string;
    brand: string;
    features: string[];
    /** ISA level the CPU kernels use (CARZERO_CPU can cap it). */
    isa: 'generic' | 'avx2' | 'avx512';
    isa_detected: 'generic' | 'avx2' | 'avx512';
    /** AVX512_BF16 dot products used for bf16 GEMM. */
    bf16_dot: boolean;
  };
  threads: number;
  cuda: {
    compiled: boolean;
    driver: boolean;
    driver_version: number;
    devices: number;
    cublas: string | null;
    available: boolean;
    reason: string | null;
  };
}

export function info(): CarzeroInfo {
  return JSON.parse(native().info()) as CarzeroInfo;
}

/** The human-readable form printed by `carzero info`. */
export function formatInfo(i: CarzeroInfo): string {
  const lines = [
    `carzero ${i.version}`,
    `cpu: ${i.cpu.brand || i.cpu.vendor}`,
    `cpu kernels: ${i.cpu.isa}${i.cpu.isa !== i.cpu.isa_detected ? ` (capped from ${i.cpu.isa_detected} by CARZERO_CPU)` : ''}, bf16 dot products: ${i.cpu.bf16_dot ? 'yes (AVX512_BF16)' : 'no (emulated)'}`,
    `cpu features: ${i.cpu.features.join(' ')}`,
    `threads: ${i.threads}`,
    i.cuda.available
      ? `cuda: available (${i.cuda.devices} device${i.cuda.devices === 1 ? '' : 's'}, driver ${i.cuda.driver_version}, ${i.cuda.cublas})`
      : `cuda: unavailable (${i.cuda.reason})`,
  ];
  return lines.join('\n');
}
