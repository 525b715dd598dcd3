// DICOM (Part 10 file) -> 8-bit grey. Our own small parser: 128-byte preamble + "DICM", the file
// meta group (explicit VR little endian), then the data set in explicit or implicit VR little endian
// (or deflated explicit little endian). Big endian and compressed (encapsulated) transfer syntaxes
// are rejected with an error naming the transfer syntax UID. Sequences, including undefined-length
// ones, are skipped. One sample per pixel (MONOCHROME1/2), BitsAllocated 8 or 16, signed or unsigned;
// multi-frame files give their first frame.
//
// Mapping to 8 bits (the rule tools/fixtures-image.py reproduces with pydicom + numpy):
//   x = stored value (masked to BitsStored, sign-extended when PixelRepresentation = 1)
//   y = x * RescaleSlope + RescaleIntercept                           (float64; defaults 1 and 0)
//   window (c, w) = first WindowCenter / WindowWidth values when both are present and w >= 1,
//     then the DICOM linear VOI function (PS3.3 C.11.2.1.2.1) onto 0..255:
//       y <= c - 0.5 - (w-1)/2 -> 0;  y > c - 0.5 + (w-1)/2 -> 255;
//       else ((y - (c - 0.5)) / (w - 1) + 0.5) * 255, rounded half up: floor(v + 0.5)
//     (w = 1 gives a hard threshold at c - 0.5);
//   otherwise min-max: floor((y - min) / (max - min) * 255 + 0.5), and 0 for a constant image;
//   (this is the reference engineer's rule, test/fixtures/tiny/images/index.json "dicom_rule", verbatim);
//   MONOCHROME1 is inverted afterwards: 255 - v.
// VOI LUT sequences and VOILUTFunction SIGMOID are not applied (the linear window is used).
import * as buffer from 'node:buffer';
import * as zlib from 'node:zlib';
import { ImageDecodeError } from './errors.js';
import { DEFAULT_MAX_PIXELS, checkDeclaredSize } from './limits.js';
import type { GrayImage } from './types.js';

const TS_NAMES: Record<string, string> = {
  '1.2.840.10008.1.2': 'implicit VR little endian',
  '1.2.840.10008.1.2.1': 'explicit VR little endian',
  '1.2.840.10008.1.2.1.99': 'deflated explicit VR little endian',
  '1.2.840.10008.1.2.2': 'explicit VR big endian',
  '1.2.840.10008.1.2.4.50': 'JPEG baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG extended',
  '1.2.840.10008.1.2.4.57': 'JPEG lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS near-lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.5': 'RLE lossless',
};

// VRs with a 2-byte reserved field and a 4-byte length in explicit VR.
const LONG_VR = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const UNDEFINED = 0xffffffff;

const TAG = {
  TransferSyntaxUID: 0x00020010,
  SamplesPerPixel: 0x00280002,
  Photometric: 0x00280004,
  NumberOfFrames: 0x00280008,
  Rows: 0x00280010,
  Columns: 0x00280011,
  BitsAllocated: 0x00280100,
  BitsStored: 0x00280101,
  PixelRepresentation: 0x00280103,
  WindowCenter: 0x00281050,
  WindowWidth: 0x00281051,
  RescaleIntercept: 0x00281052,
  RescaleSlope: 0x00281053,
  PixelData: 0x7fe00010,
  Item: 0xfffee000,
  ItemDelim: 0xfffee00d,
  SeqDelim: 0xfffee0dd,
};

interface Element {
  offset: number; // value offset
  length: number;
  vr: string;
}

class Reader {
  readonly els = new Map<number, Element>();
  constructor(
    readonly buf: Buffer,
    readonly explicit: boolean,
    readonly file: string,
  ) {}

  fail(msg: string): never {
    throw new ImageDecodeError(this.file, `invalid DICOM (${msg})`);
  }

  /** Reads elements from off until end (or a delimiter when nested); returns the offset after. */
  read(off: number, end: number, top: boolean): number {
    const b = this.buf;
    while (off < end) {
      if (off + 8 > b.length) this.fail('truncated element header');
      const tag = ((b.readUInt16LE(off) << 16) | b.readUInt16LE(off + 2)) >>> 0;
      if (tag === TAG.ItemDelim || tag === TAG.SeqDelim) return off + 8;
      let vr = '';
      let len: number;
      let hdr: number;
      if (tag === TAG.Item) {
        len = b.readUInt32LE(off + 4);
        hdr = 8;
      } else if (this.explicit) {
        vr = b.toString('latin1', off + 4, off + 6);
        if (LONG_VR.has(vr)) {
          if (off + 12 > b.length) this.fail('truncated element header');
          len = b.readUInt32LE(off + 8);
          hdr = 12;
        } else {
          len = b.readUInt16LE(off + 6);
          hdr = 8;
        }
      } else {
        len = b.readUInt32LE(off + 4);
        hdr = 8;
      }
      const value = off + hdr;
      if (len === UNDEFINED) {
        if (tag === TAG.PixelData && top) {
          this.els.set(tag, { offset: value, length: len, vr });
          return b.length; // encapsulated pixel data: the caller rejects the transfer syntax
        }
        // Undefined-length sequence or item: nested data sets up to the delimiter.
        off = this.skipUndefined(value, tag === TAG.Item);
        continue;
      }
      if (value + len > b.length) {
        if (tag === TAG.PixelData)
          this.fail(`pixel data truncated: ${len} bytes declared, ${b.length - value} present`);
        this.fail(
          `element (${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')}) ` +
            'runs past the end of the file',
        );
      }
      if (top && tag !== TAG.Item) this.els.set(tag, { offset: value, length: len, vr });
      off = value + len;
    }
    return off;
  }

  skipUndefined(off: number, isItem: boolean): number {
    const b = this.buf;
    if (isItem) return this.read(off, b.length, false);
    // A sequence: items until the sequence delimiter.
    while (off + 8 <= b.length) {
      const tag = ((b.readUInt16LE(off) << 16) | b.readUInt16LE(off + 2)) >>> 0;
      const len = b.readUInt32LE(off + 4);
      if (tag === TAG.SeqDelim) return off + 8;
      if (tag !== TAG.Item) this.fail('malformed sequence');
      off = len === UNDEFINED ? this.read(off + 8, b.length, false) : off + 8 + len;
    }
    this.fail('truncated sequence');
  }

  str(tag: number): string | undefined {
    const e = this.els.get(tag);
    if (!e) return undefined;
    return this.buf
      .toString('latin1', e.offset, e.offset + e.length)
      .replace(/[\0 ]+$/, '')
      .trim();
  }

  us(tag: number): number | undefined {
    const e = this.els.get(tag);
    if (!e || e.length < 2) return undefined;
    return this.buf.readUInt16LE(e.offset);
  }

  /** First value of a DS/IS (backslash-separated decimal strings). */
  num(tag: number): number | undefined {
    const s = this.str(tag);
    if (s === undefined || s === '') return undefined;
    const v = Number(s.split('\\')[0].trim());
    return Number.isFinite(v) ? v : undefined;
  }
}

export function isDicom(buf: Uint8Array): boolean {
  return buf.length >= 132 && buf[128] === 0x44 && buf[129] === 0x49 && buf[130] === 0x43 && buf[131] === 0x4d;
}

// The deflated data set is inflated in two steps, so that what a file declares bounds what it may
// inflate to: a prefix first (at most DEFLATE_PROBE compressed bytes, so at most ~1032 times that
// inflated) for the image's declared size, then the whole with an output cap of the header seen so
// far plus that image plus slack. A deflate bomb is refused after a few MB, whatever it inflates to.
const DEFLATE_PROBE = 16 << 10;
const DEFLATE_SLACK = 1 << 20;

function inflateDataSet(file: string, deflated: Buffer, explicit: boolean, maxPixels: number): Buffer {
  const inflate = (data: Buffer, opts: zlib.ZlibOptions): Buffer => {
    try {
      return zlib.inflateRawSync(data, opts);
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError)
        throw new ImageDecodeError(
          file,
          `deflated DICOM data set inflates past ${opts.maxOutputLength} bytes, ` +
            'more than its declared image needs; refused',
          'CZ_ERR_OUT_OF_MEMORY',
        );
      throw new ImageDecodeError(file, `invalid DICOM (deflated data set: ${(e as Error).message})`);
    }
  };
  const head = inflate(deflated.subarray(0, DEFLATE_PROBE), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  const r = new Reader(head, explicit, file);
  try {
    r.read(0, head.length, true);
  } catch {
    // the prefix ends inside an element: what was read before it is what counts
  }
  const rows = r.us(TAG.Rows);
  const cols = r.us(TAG.Columns);
  const frames = Math.max(1, Math.floor(r.num(TAG.NumberOfFrames) ?? 1));
  const bytesPer =
    Math.max(1, Math.ceil((r.us(TAG.BitsAllocated) ?? 16) / 8)) * Math.max(1, r.us(TAG.SamplesPerPixel) ?? 1);
  let cap: number;
  if (rows !== undefined && cols !== undefined) {
    checkDeclaredSize(file, cols, rows, maxPixels, frames);
    const px = r.els.get(TAG.PixelData);
    cap = (px ? px.offset : head.length) + rows * cols * frames * bytesPer + DEFLATE_SLACK;
  } else {
    // Rows/Columns not in the first part: the largest image the limits allow
    cap = head.length + maxPixels * 4 + DEFLATE_SLACK;
  }
  return inflate(deflated, { maxOutputLength: Math.min(cap, buffer.constants.MAX_LENGTH) });
}

export function decodeDicom(input: Uint8Array, file: string, maxPixels = DEFAULT_MAX_PIXELS): GrayImage {
  let buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (!isDicom(buf))
    throw new ImageDecodeError(file, 'not a DICOM Part 10 file (no "DICM" after the 128-byte preamble)');
  // File meta group: explicit VR little endian, group 0002.
  const meta = new Reader(buf, true, file);
  let off = 132;
  let metaEnd = off;
  while (metaEnd + 8 <= buf.length && buf.readUInt16LE(metaEnd) === 0x0002) {
    const before = meta.els.size;
    metaEnd = meta.read(metaEnd, metaEnd + 1, true); // one element at a time
    if (meta.els.size === before) break;
  }
  const ts = meta.str(TAG.TransferSyntaxUID) ?? '1.2.840.10008.1.2.1';
  const tsName = TS_NAMES[ts] ? ` (${TS_NAMES[ts]})` : '';
  let explicit: boolean;
  if (ts === '1.2.840.10008.1.2') explicit = false;
  else if (ts === '1.2.840.10008.1.2.1' || ts === '1.2.840.10008.1.2.1.99') explicit = true;
  else
    throw new ImageDecodeError(
      file,
      `unsupported DICOM transfer syntax ${ts}${tsName}: only uncompressed little endian is read`,
      'CZ_ERR_UNSUPPORTED',
    );
  off = metaEnd;
  if (ts === '1.2.840.10008.1.2.1.99') {
    buf = Buffer.concat([buf.subarray(0, off), inflateDataSet(file, buf.subarray(off), explicit, maxPixels)]);
  }
  const r = new Reader(buf, explicit, file);
  r.read(off, buf.length, true);

  const px = r.els.get(TAG.PixelData);
  if (!px) throw new ImageDecodeError(file, 'invalid DICOM (no pixel data)');
  if (px.length === UNDEFINED)
    throw new ImageDecodeError(
      file,
      `unsupported DICOM transfer syntax ${ts}${tsName}: encapsulated pixel data`,
      'CZ_ERR_UNSUPPORTED',
    );
  const spp = r.us(TAG.SamplesPerPixel) ?? 1;
  const photometric = (r.str(TAG.Photometric) ?? 'MONOCHROME2').toUpperCase();
  if (spp !== 1 || (photometric !== 'MONOCHROME1' && photometric !== 'MONOCHROME2'))
    throw new ImageDecodeError(
      file,
      `unsupported DICOM photometric interpretation ${photometric} with ${spp} samples per pixel`,
      'CZ_ERR_UNSUPPORTED',
    );
  const rows = r.us(TAG.Rows);
  const cols = r.us(TAG.Columns);
  if (!rows || !cols) throw new ImageDecodeError(file, 'invalid DICOM (missing Rows/Columns)');
  checkDeclaredSize(file, cols, rows, maxPixels);
  const bitsAllocated = r.us(TAG.BitsAllocated) ?? 16;
  if (bitsAllocated !== 8 && bitsAllocated !== 16)
    throw new ImageDecodeError(
      file,
      `unsupported DICOM BitsAllocated ${bitsAllocated} (8 or 16 are read)`,
      'CZ_ERR_UNSUPPORTED',
    );
  const bitsStored = Math.min(r.us(TAG.BitsStored) ?? bitsAllocated, bitsAllocated);
  const signed = r.us(TAG.PixelRepresentation) === 1;
  const n = rows * cols;
  const bytes = n * (bitsAllocated / 8);
  if (px.length < bytes)
    r.fail(`pixel data has ${px.length} bytes, ${rows}x${cols}x${bitsAllocated / 8} = ${bytes} expected`);

  // Stored values -> rescaled float64.
  const slope = r.num(TAG.RescaleSlope) ?? 1;
  const intercept = r.num(TAG.RescaleIntercept) ?? 0;
  const y = new Float64Array(n);
  const mask = bitsStored >= 32 ? 0xffffffff : 2 ** bitsStored - 1;
  const signBit = 2 ** (bitsStored - 1);
  let mn = Infinity;
  let mx = -Infinity;
  for (let i = 0; i < n; i++) {
    let v = bitsAllocated === 8 ? buf[px.offset + i] : buf.readUInt16LE(px.offset + 2 * i);
    v &= mask;
    if (signed && v >= signBit) v -= 2 * signBit;
    const t = v * slope + intercept;
    y[i] = t;
    if (t < mn) mn = t;
    if (t > mx) mx = t;
  }
  const out = new Uint8Array(n);
  const c = r.num(TAG.WindowCenter);
  const w = r.num(TAG.WindowWidth);
  if (c !== undefined && w !== undefined && w >= 1) {
    const lo = c - 0.5 - (w - 1) / 2;
    const hi = c - 0.5 + (w - 1) / 2;
    for (let i = 0; i < n; i++) {
      const t = y[i];
      if (t <= lo) out[i] = 0;
      else if (t > hi) out[i] = 255;
      else {
        const v = Math.floor(((t - (c - 0.5)) / (w - 1) + 0.5) * 255 + 0.5);
        out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  } else if (mx > mn) {
    const range = mx - mn;
    for (let i = 0; i < n; i++) {
      const v = Math.floor(((y[i] - mn) / range) * 255 + 0.5);
      out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  if (photometric === 'MONOCHROME1') for (let i = 0; i < n; i++) out[i] = 255 - out[i];
  return { width: cols, height: rows, data: out };
}
