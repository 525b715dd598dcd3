// The capabilities report: version, CPU features in use, threads, CUDA state (and why not).
import { native } from './native.js';
import { defaultDecodeThreads } from './image/feed.js';

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
    /** cuDriverGetVersion: the newest CUDA the driver supports (13000 = 13.0); 0 without a driver. */
    driver_version: number;
    /** The CUDA runtime this binary was built with (13000 = 13.0); 0 without a CUDA backend. */
    runtime_version: number;
    /** The driver predates the runtime: the CPU is used and `reason` names both versions. */
    driver_too_old: boolean;
    /** The kernel module's version ("580.65.06") when /proc/driver/nvidia/version is readable. */
    driver_release: string;
    devices: number;
    cublas: string | null;
    available: boolean;
    reason: string | null;
  };
  /** The image feed: which formats the native decoders read (the rest decode in JavaScript). */
  images: {
    png: boolean;
    jpeg: boolean;
    dicom: boolean;
    /** Library versions of the native codecs. */
    versions: string;
    /** DICOM transfer syntax UIDs the native reader decodes. */
    dicom_syntaxes: string[];
    /** Default decode threads (CARZERO_DECODE_THREADS, else the cores). */
    decode_threads: number;
  };
}

function cudaVersion(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}

export function info(): CarzeroInfo {
  const i = JSON.parse(native().info()) as CarzeroInfo;
  const m = i.images as Partial<CarzeroInfo['images']> | undefined;
  i.images = {
    png: m?.png ?? false,
    jpeg: m?.jpeg ?? false,
    dicom: m?.dicom ?? false,
    versions: m?.versions ?? '',
    dicom_syntaxes: m?.dicom_syntaxes ?? [],
    decode_threads: defaultDecodeThreads(),
  };
  return i;
}

function imageLine(m: CarzeroInfo['images']): string {
  const nat = [
    m.png && 'PNG',
    m.jpeg && 'JPEG',
    m.dicom && `DICOM (${m.dicom_syntaxes.length} transfer syntaxes)`,
  ].filter(Boolean);
  const js = [!m.png && 'PNG', !m.jpeg && 'JPEG', !m.dicom && 'DICOM'].filter(Boolean);
  const parts = [];
  if (nat.length) parts.push(`native ${nat.join(', ')}${m.versions ? ` [${m.versions}]` : ''}`);
  if (js.length) parts.push(`JavaScript ${js.join(', ')}`);
  return `image decoders: ${parts.join('; ')}; decode threads: ${m.decode_threads}`;
}

/** The human-readable form printed by `carzero info`. */
export function formatInfo(i: CarzeroInfo): string {
  const lines = [
    `carzero ${i.version}`,
    `cpu: ${i.cpu.brand || i.cpu.vendor}`,
    `cpu kernels: ${i.cpu.isa}` +
      (i.cpu.isa !== i.cpu.isa_detected ? ` (capped from ${i.cpu.isa_detected} by CARZERO_CPU)` : '') +
      `, bf16 dot products: ${i.cpu.bf16_dot ? 'yes (AVX512_BF16)' : 'no (emulated)'}`,
    `cpu features: ${i.cpu.features.join(' ')}`,
    `threads: ${i.threads}`,
    imageLine(i.images),
    i.cuda.available
      ? `cuda: available (${i.cuda.devices} device${i.cuda.devices === 1 ? '' : 's'}, ` +
        `driver ${i.cuda.driver_release || 'for'} CUDA ${cudaVersion(i.cuda.driver_version)}, ` +
        `runtime ${cudaVersion(i.cuda.runtime_version)}, ${i.cuda.cublas})`
      : `cuda: unavailable (${i.cuda.reason})`,
  ];
  return lines.join('\n');
}
