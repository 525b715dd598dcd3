// JPEG marker segments (ITU-T T.81 Annex B): the frame, scan, table and restart-interval headers,
// plus the APP0 JFIF and APP14 Adobe markers that decide the colour space. Parsing only; the scan
// data is decoded by ./jpeg-scan.ts. Checks mirror the ones libjpeg(-turbo) makes, so that a file
// cv2.imread refuses is refused here too, with a message naming the problem.

import { CarzeroError } from '../errors.js';

/**
 * Something wrong with the JPEG data (code CZ_ERR_FORMAT); `unsupported` marks valid JPEG we do not
 * decode (code CZ_ERR_UNSUPPORTED).
 */
export class JpegError extends CarzeroError {
  readonly unsupported: boolean;
  constructor(message: string, unsupported = false) {
    super(message, unsupported ? 'CZ_ERR_UNSUPPORTED' : 'CZ_ERR_FORMAT');
    this.name = 'JpegError';
    this.unsupported = unsupported;
  }
}

// Marker codes (T.81 Table B.1), the byte after 0xFF.
export const M_SOF0 = 0xc0; // baseline DCT
export const M_SOF1 = 0xc1; // extended sequential DCT, Huffman
export const M_SOF2 = 0xc2; // progressive DCT, Huffman
export const M_DHT = 0xc4;
export const M_DAC = 0xcc; // arithmetic conditioning
export const M_RST0 = 0xd0;
export const M_RST7 = 0xd7;
export const M_SOI = 0xd8;
export const M_EOI = 0xd9;
export const M_SOS = 0xda;
export const M_DQT = 0xdb;
export const M_DNL = 0xdc;
export const M_DRI = 0xdd;
export const M_APP0 = 0xe0;
export const M_APP14 = 0xee;
export const M_APP15 = 0xef;
export const M_COM = 0xfe;
export const M_TEM = 0x01;

/** libjpeg's JPEG_MAX_DIMENSION. */
const MAX_DIMENSION = 65500;
/** libjpeg's MAX_COMPONENTS (per frame) and MAX_COMPS_IN_SCAN. */
const MAX_COMPONENTS = 10;
const MAX_COMPS_IN_SCAN = 4;
/** libjpeg's D_MAX_BLOCKS_IN_MCU: blocks in one interleaved MCU (T.81 B.2.3 caps it at 10). */
const MAX_BLOCKS_IN_MCU = 10;

export interface FrameComponent {
  /** Component identifier C_i (T.81 B.2.2). */
  id: number;
  /** Horizontal and vertical sampling factors H_i, V_i (1..4). */
  h: number;
  v: number;
  /** Quantization table selector Tq_i. */
  tq: number;
  /** Samples per line / lines of this component: ceil(X * H_i / Hmax), ceil(Y * V_i / Vmax) (T.81 A.1.1). */
  width: number;
  height: number;
  /** Blocks covering the component (T.81 A.2.2, used by non-interleaved scans). */
  blocksWide: number;
  blocksHigh: number;
  /** Blocks allocated: whole MCUs of the interleaved layout (T.81 A.2.3), >= blocksWide/High. */
  allocWide: number;
  allocHigh: number;
}

export interface Frame {
  /** SOF marker code: M_SOF0, M_SOF1 or M_SOF2. */
  marker: number;
  progressive: boolean;
  precision: number;
  width: number;
  height: number;
  components: FrameComponent[];
  maxH: number;
  maxV: number;
  /** MCUs of an interleaved scan across and down the image. */
  mcusWide: number;
  mcusHigh: number;
}

export interface ScanComponent {
  /** Index into Frame.components. */
  index: number;
  td: number;
  ta: number;
}

export interface Scan {
  components: ScanComponent[];
  ss: number;
  se: number;
  ah: number;
  al: number;
}

/** A marker segment's payload: data[start, end) after the two length bytes. */
export interface Segment {
  start: number;
  end: number;
}

function u16(data: Uint8Array, p: number): number {
  return (data[p] << 8) | data[p + 1];
}

function sofName(marker: number): string {
  return `SOF${marker - M_SOF0}`;
}

/**
 * Refuses frame types other than Huffman-coded DCT, sequential or progressive (T.81 Table B.1):
 * lossless (SOF3), the hierarchical ones (SOF5-7, SOF13-15) and arithmetic coding (SOF9-11).
 */
export function checkFrameType(marker: number): void {
  if (marker === M_SOF0 || marker === M_SOF1 || marker === M_SOF2) return;
  if (marker >= 0xc9 && marker <= 0xcb)
    throw new JpegError(`arithmetic-coded JPEG (${sofName(marker)}) is not supported`, true);
  if (marker === 0xc3) throw new JpegError('lossless JPEG (SOF3) is not supported', true);
  if (marker >= 0xcd && marker <= 0xcf)
    throw new JpegError(`arithmetic-coded hierarchical JPEG (${sofName(marker)}) is not supported`, true);
  throw new JpegError(`hierarchical JPEG (${sofName(marker)}) is not supported`, true);
}

/** SOF0/1/2 frame header (T.81 B.2.2). */
export function parseFrame(data: Uint8Array, seg: Segment, marker: number): Frame {
  const len = seg.end - seg.start;
  if (len < 6) throw new JpegError(`${sofName(marker)} segment too short`);
  const p = seg.start;
  const precision = data[p];
  const height = u16(data, p + 1);
  const width = u16(data, p + 3);
  const nf = data[p + 5];
  // 8-bit samples only: the 12-bit DCT modes need a second sample type throughout (libjpeg builds
  // them as a separate library; Debian's cv2 uses the 8-bit one and refuses them too).
  if (precision !== 8) throw new JpegError(`${precision}-bit JPEG is not supported (8-bit samples only)`, true);
  if (height === 0) throw new JpegError('image height 0 (height defined by a DNL marker is not supported)', true);
  if (width === 0 || nf === 0) throw new JpegError('empty image (width or component count 0)');
  if (width > MAX_DIMENSION || height > MAX_DIMENSION)
    throw new JpegError(`${width}x${height} exceeds the ${MAX_DIMENSION}-pixel maximum dimension`, true);
  if (nf > MAX_COMPONENTS) throw new JpegError(`${nf} components (at most ${MAX_COMPONENTS})`);
  if (len !== 6 + 3 * nf) throw new JpegError(`${sofName(marker)} segment has a bad length`);
  const comps: FrameComponent[] = [];
  let maxH = 1;
  let maxV = 1;
  for (let i = 0; i < nf; i++) {
    const q = p + 6 + 3 * i;
    const h = data[q + 1] >> 4;
    const v = data[q + 1] & 15;
    if (h < 1 || h > 4 || v < 1 || v > 4)
      throw new JpegError(`bad sampling factors ${h}x${v} for component ${data[q]}`);
    maxH = Math.max(maxH, h);
    maxV = Math.max(maxV, v);
    comps.push({
      id: data[q],
      h,
      v,
      tq: data[q + 2],
      width: 0,
      height: 0,
      blocksWide: 0,
      blocksHigh: 0,
      allocWide: 0,
      allocHigh: 0,
    });
  }
  const mcusWide = Math.ceil(width / (8 * maxH));
  const mcusHigh = Math.ceil(height / (8 * maxV));
  for (const c of comps) {
    c.width = Math.ceil((width * c.h) / maxH);
    c.height = Math.ceil((height * c.v) / maxV);
    c.blocksWide = Math.ceil(c.width / 8);
    c.blocksHigh = Math.ceil(c.height / 8);
    c.allocWide = mcusWide * c.h;
    c.allocHigh = mcusHigh * c.v;
  }
  return {
    marker,
    progressive: marker === M_SOF2,
    precision,
    width,
    height,
    components: comps,
    maxH,
    maxV,
    mcusWide,
    mcusHigh,
  };
}

/** SOS scan header (T.81 B.2.3), checked against the frame as libjpeg does. */
export function parseScan(data: Uint8Array, seg: Segment, frame: Frame): Scan {
  const p = seg.start;
  const len = seg.end - p;
  const ns = len > 0 ? data[p] : 0;
  if (ns < 1 || ns > MAX_COMPS_IN_SCAN || len !== 4 + 2 * ns) throw new JpegError('bad SOS segment');
  const components: ScanComponent[] = [];
  for (let i = 0; i < ns; i++) {
    const id = data[p + 1 + 2 * i];
    const index = frame.components.findIndex((c) => c.id === id);
    if (index < 0) throw new JpegError(`SOS names component ${id}, which the frame does not have`);
    if (components.some((c) => c.index === index)) throw new JpegError(`SOS names component ${id} twice`);
    const t = data[p + 2 + 2 * i];
    components.push({ index, td: t >> 4, ta: t & 15 });
  }
  const q = p + 1 + 2 * ns;
  const scan: Scan = { components, ss: data[q], se: data[q + 1], ah: data[q + 2] >> 4, al: data[q + 2] & 15 };
  if (ns > 1) {
    let blocks = 0;
    for (const sc of components) blocks += frame.components[sc.index].h * frame.components[sc.index].v;
    if (blocks > MAX_BLOCKS_IN_MCU) throw new JpegError(`${blocks} blocks per MCU (at most ${MAX_BLOCKS_IN_MCU})`);
  }
  if (frame.progressive) {
    // The checks of libjpeg's progressive decoder (T.81 G.1.1.1.1, with Al <= 13).
    const dc = scan.ss === 0;
    const bad =
      (dc ? scan.se !== 0 : scan.ss > scan.se || scan.se > 63 || ns !== 1) ||
      (scan.ah !== 0 && scan.al !== scan.ah - 1) ||
      scan.al > 13;
    if (bad)
      throw new JpegError(
        `invalid progressive scan parameters Ss=${scan.ss} Se=${scan.se} Ah=${scan.ah} Al=${scan.al}`,
      );
  }
  // A sequential scan with other Ss/Se/Ah/Al is decoded as full sequential, as libjpeg does (it only warns).
  return scan;
}

/** The Huffman table specification of one DHT entry (T.81 B.2.4.2). */
export interface HuffmanSpec {
  /** 0 = DC, 1 = AC. */
  tc: number;
  th: number;
  /** counts[l - 1]: number of codes of length l, l = 1..16 (BITS). */
  counts: Uint8Array;
  /** HUFFVAL, in order of increasing code length. */
  symbols: Uint8Array;
}

/** DHT: one or more Huffman tables (T.81 B.2.4.2). */
export function parseHuffmanTables(data: Uint8Array, seg: Segment): HuffmanSpec[] {
  const out: HuffmanSpec[] = [];
  let p = seg.start;
  while (p < seg.end) {
    if (p + 17 > seg.end) throw new JpegError('DHT segment too short');
    const tc = data[p] >> 4;
    const th = data[p] & 15;
    if (tc > 1 || th > 3) throw new JpegError(`bad DHT table class/index 0x${data[p].toString(16)}`);
    const counts = data.slice(p + 1, p + 17);
    let n = 0;
    for (let i = 0; i < 16; i++) n += counts[i];
    if (n > 256 || p + 17 + n > seg.end) throw new JpegError('bad Huffman table definition (too many codes)');
    out.push({ tc, th, counts, symbols: data.slice(p + 17, p + 17 + n) });
    p += 17 + n;
  }
  return out;
}

/** Zig-zag order -> natural (row-major) position (T.81 Figure A.6), with 16 guard entries of 63. */
export const ZIGZAG = new Uint8Array([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
  35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47,
  55, 62, 63,
  // A corrupt run length can push the index past 63 (at most 63 + 15); libjpeg's natural-order
  // table carries the same guard entries, sending such coefficients to position 63.
  63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
]);

/**
 * DQT: quantization tables (T.81 B.2.4.1), stored in natural order into `tables[tq]`. Held as
 * 16-bit signed values, the type libjpeg keeps them in for the integer IDCT.
 */
export function parseQuantTables(data: Uint8Array, seg: Segment, tables: (Int16Array | null)[]): void {
  let p = seg.start;
  while (p < seg.end) {
    const pq = data[p] >> 4;
    const tq = data[p] & 15;
    if (tq > 3) throw new JpegError(`bad DQT table index ${tq}`);
    if (pq > 1) throw new JpegError(`bad DQT precision ${pq}`);
    const size = pq === 0 ? 64 : 128;
    if (p + 1 + size > seg.end) throw new JpegError('DQT segment too short');
    const t = new Int16Array(64);
    for (let k = 0; k < 64; k++) t[ZIGZAG[k]] = pq === 0 ? data[p + 1 + k] : u16(data, p + 1 + 2 * k);
    tables[tq] = t;
    p += 1 + size;
  }
}

/** DRI: restart interval in MCUs, 0 = none (T.81 B.2.4.4). */
export function parseRestartInterval(data: Uint8Array, seg: Segment): number {
  if (seg.end - seg.start !== 2) throw new JpegError('bad DRI segment length');
  return u16(data, seg.start);
}

/** APP0 "JFIF\0" (JFIF 1.02 section "JPEG File Interchange Format"), at least 14 payload bytes. */
export function isJfif(data: Uint8Array, seg: Segment): boolean {
  const p = seg.start;
  return (
    seg.end - p >= 14 &&
    data[p] === 0x4a &&
    data[p + 1] === 0x46 &&
    data[p + 2] === 0x49 &&
    data[p + 3] === 0x46 &&
    data[p + 4] === 0
  );
}

/**
 * APP14 "Adobe" (Adobe Technical Note #5116): version(2) flags0(2) flags1(2) transform(1); the
 * transform byte says 0 = RGB/CMYK, 1 = YCbCr, 2 = YCCK. Returns it, or -1 when not an Adobe marker.
 */
export function adobeTransform(data: Uint8Array, seg: Segment): number {
  const p = seg.start;
  if (seg.end - p < 12) return -1;
  if (data[p] !== 0x41 || data[p + 1] !== 0x64 || data[p + 2] !== 0x6f || data[p + 3] !== 0x62 || data[p + 4] !== 0x65)
    return -1;
  return data[p + 11];
}
