// Mutators for the fuzz harness (tools/fuzz/run.ts): a seeded generator, byte-level mutations,
// and mutations that know the formats (PNG chunks, JPEG segments, DICOM elements, zip records,
// safetensors headers, pickle opcodes, JSON trees), so that inputs get past the first checks and
// reach the code behind them. Everything is a pure function of (seed bytes, generator state):
// an input is reproduced from its family, seed index and input index.
import { crc32, deflateSync } from 'node:zlib';

/** mulberry32: small, fast, good enough to drive mutations. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

export const INTERESTING_U32 = [
  0, 1, 2, 7, 8, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 65500, 65535, 30000, 0x7fffffff, 0x80000000,
  0xfffffffe, 0xffffffff,
];

// ---- byte level --------------------------------------------------------------------------------
export function byteMutation(rng: Rng, b: Buffer, others: readonly Buffer[] = []): Buffer {
  const out = Buffer.from(b);
  if (out.length === 0) return Buffer.from([rng.int(256)]);
  const at = rng.int(out.length);
  switch (rng.int(9)) {
    case 0: // flip a bit
      out[at] ^= 1 << rng.int(8);
      return out;
    case 1: // an interesting byte
      out[at] = rng.pick([0, 1, 0x7f, 0x80, 0xff]);
      return out;
    case 2: // an interesting 16/32-bit value, either byte order
      if (at + 4 <= out.length) {
        if (rng.chance(0.5)) out.writeUInt32LE(rng.pick(INTERESTING_U32), at);
        else out.writeUInt32BE(rng.pick(INTERESTING_U32), at);
      } else if (at + 2 <= out.length) out.writeUInt16LE(rng.pick(INTERESTING_U32) & 0xffff, at);
      return out;
    case 3: // delete a range
      return Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + 1 + rng.int(64)))]);
    case 4: // insert random bytes
      return Buffer.concat([
        out.subarray(0, at),
        Buffer.from(Array.from({ length: 1 + rng.int(32) }, () => rng.int(256))),
        out.subarray(at),
      ]);
    case 5: // duplicate a range
      return Buffer.concat([out.subarray(0, at), out.subarray(at, at + 1 + rng.int(256)), out.subarray(at)]);
    case 6: // truncate
      return out.subarray(0, at);
    case 7: {
      // splice in a piece of another seed
      const o = others.length ? rng.pick(others) : out;
      const from = rng.int(Math.max(1, o.length));
      return Buffer.concat([
        out.subarray(0, at),
        o.subarray(from, from + 1 + rng.int(512)),
        out.subarray(at + rng.int(64)),
      ]);
    }
    default: // overwrite a run with one value
      out.fill(rng.pick([0, 0xff, rng.int(256)]), at, Math.min(out.length, at + 1 + rng.int(16)));
      return out;
  }
}

// ---- PNG: chunks with CRCs -----------------------------------------------------------------------
interface Chunk {
  type: string;
  data: Buffer;
}
function pngChunks(b: Buffer): Chunk[] | null {
  if (b.length < 8) return null;
  const out: Chunk[] = [];
  for (let off = 8; off + 12 <= b.length;) {
    const len = b.readUInt32BE(off);
    if (off + 12 + len > b.length) return null;
    out.push({ type: b.toString('latin1', off + 4, off + 8), data: Buffer.from(b.subarray(off + 8, off + 8 + len)) });
    off += 12 + len;
  }
  return out;
}
function pngJoin(sig: Buffer, chunks: Chunk[], fixCrc: boolean, rng: Rng): Buffer {
  const parts = [sig];
  for (const c of chunks) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(c.data.length);
    const td = Buffer.concat([Buffer.from(c.type, 'latin1'), c.data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(fixCrc ? crc32(td) : rng.int(2 ** 32));
    parts.push(len, td, crc);
  }
  return Buffer.concat(parts);
}
export function pngMutation(rng: Rng, b: Buffer): Buffer {
  const chunks = pngChunks(b);
  if (!chunks || chunks.length === 0) return byteMutation(rng, b);
  const c = rng.pick(chunks);
  switch (rng.int(6)) {
    case 0: {
      const ihdr = chunks.find((x) => x.type === 'IHDR');
      if (ihdr && ihdr.data.length >= 13) {
        ihdr.data.writeUInt32BE(rng.pick(INTERESTING_U32), rng.chance(0.5) ? 0 : 4);
        if (rng.chance(0.3)) ihdr.data[8] = rng.pick([1, 2, 4, 8, 16, 3, 0, 255]);
        if (rng.chance(0.3)) ihdr.data[9] = rng.pick([0, 2, 3, 4, 6, 1, 7]);
      }
      break;
    }
    case 1:
      c.data = byteMutation(rng, c.data);
      break;
    case 2:
      chunks.splice(rng.int(chunks.length), 0, { type: c.type, data: Buffer.from(c.data) });
      break;
    case 3:
      chunks.splice(chunks.indexOf(c), 1);
      break;
    case 4: {
      // an IDAT that inflates far past the image (a bomb behind a small header)
      chunks.splice(Math.max(0, chunks.length - 1), 0, {
        type: 'IDAT',
        data: deflateSync(Buffer.alloc(1 << (16 + rng.int(10)))),
      });
      break;
    }
    default:
      c.type = rng.pick(['IHDR', 'IDAT', 'IEND', 'PLTE', 'tRNS', 'gAMA', 'eXIf', 'zzzz']);
  }
  return pngJoin(b.subarray(0, 8), chunks, rng.chance(0.9), rng);
}

// ---- JPEG: marker segments --------------------------------------------------------------------
export function jpegMutation(rng: Rng, b: Buffer): Buffer {
  const segs: number[] = [];
  for (let i = 2; i + 4 <= b.length && segs.length < 64;) {
    if (b[i] !== 0xff) break;
    const m = b[i + 1]!;
    if (m === 0xda) {
      segs.push(i);
      break;
    }
    segs.push(i);
    i += 2 + b.readUInt16BE(i + 2);
  }
  if (!segs.length) return byteMutation(rng, b);
  const out = Buffer.from(b);
  const at = rng.pick(segs);
  switch (rng.int(4)) {
    case 0: // segment length
      out.writeUInt16BE(rng.pick(INTERESTING_U32) & 0xffff, at + 2);
      return out;
    case 1: {
      // SOF sizes, components, precision
      const sof = segs.find((s) => [0xc0, 0xc1, 0xc2, 0xc3].includes(out[s + 1]!));
      if (sof === undefined || sof + 10 > out.length) return byteMutation(rng, out);
      const f = rng.int(4);
      if (f === 0) out.writeUInt16BE(rng.pick(INTERESTING_U32) & 0xffff, sof + 5);
      else if (f === 1) out.writeUInt16BE(rng.pick(INTERESTING_U32) & 0xffff, sof + 7);
      else if (f === 2) out[sof + 9] = rng.pick([0, 1, 2, 3, 4, 255]);
      else out[sof + 4] = rng.pick([8, 12, 16, 0, 2]);
      return out;
    }
    case 2: // duplicate a segment
      return Buffer.concat([
        out.subarray(0, at),
        out.subarray(at, at + 4 + (out.readUInt16BE(at + 2) || 0)),
        out.subarray(at),
      ]);
    default: // a byte inside the segment or the entropy-coded data after it
      return byteMutation(rng, out);
  }
}

// ---- DICOM: element values and lengths ----------------------------------------------------------
const DICOM_TAGS = [
  [0x0028, 0x0010], // Rows
  [0x0028, 0x0011], // Columns
  [0x0028, 0x0100], // BitsAllocated
  [0x0028, 0x0101], // BitsStored
  [0x0028, 0x0002], // SamplesPerPixel
  [0x0028, 0x0008], // NumberOfFrames
  [0x7fe0, 0x0010], // PixelData
  [0x0002, 0x0010], // TransferSyntaxUID
];
const SYNTAXES = [
  '1.2.840.10008.1.2',
  '1.2.840.10008.1.2.1',
  '1.2.840.10008.1.2.2',
  '1.2.840.10008.1.2.1.99',
  '1.2.840.10008.1.2.4.50',
  '1.2.840.10008.1.2.4.51',
  '1.2.840.10008.1.2.4.57',
  '1.2.840.10008.1.2.4.70',
  '1.2.840.10008.1.2.4.80',
  '1.2.840.10008.1.2.4.81',
  '1.2.840.10008.1.2.4.90',
  '1.2.840.10008.1.2.4.91',
  '1.2.840.10008.1.2.5',
];
export function dicomMutation(rng: Rng, b: Buffer): Buffer {
  const [g, e] = rng.pick(DICOM_TAGS);
  const tag = Buffer.alloc(4);
  tag.writeUInt16LE(g!, 0);
  tag.writeUInt16LE(e!, 2);
  const at = b.indexOf(tag, 128);
  if (at < 0 || at + 12 > b.length) return byteMutation(rng, b);
  const out = Buffer.from(b);
  const explicitVr = /^[A-Z]{2}$/.test(out.toString('latin1', at + 4, at + 6));
  const long = explicitVr && ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(out.toString('latin1', at + 4, at + 6));
  const lenAt = explicitVr ? (long ? at + 8 : at + 6) : at + 4;
  const valAt = explicitVr ? (long ? at + 12 : at + 8) : at + 8;
  switch (rng.int(4)) {
    case 0: // the length field
      if (explicitVr && !long) out.writeUInt16LE(rng.pick(INTERESTING_U32) & 0xffff, lenAt);
      else out.writeUInt32LE(rng.pick(INTERESTING_U32), lenAt);
      return out;
    case 1: // a US value
      if (valAt + 2 <= out.length) out.writeUInt16LE(rng.pick(INTERESTING_U32) & 0xffff, valAt);
      return out;
    case 2: {
      // another transfer syntax (same length field, value padded or cut)
      if (g !== 0x0002) return byteMutation(rng, out);
      const len = explicitVr ? out.readUInt16LE(lenAt) : out.readUInt32LE(lenAt);
      const uid = Buffer.alloc(len, 0);
      uid.write(rng.pick(SYNTAXES).slice(0, len), 'latin1');
      uid.copy(out, valAt);
      return out;
    }
    default: // an IS value (NumberOfFrames) or bytes nearby
      if (g === 0x0028 && e === 0x0008 && valAt + 2 <= out.length)
        out.write(rng.pick(['0 ', '-1', '99', '1e', 'ab']), valAt, 'latin1');
      else return byteMutation(rng, out);
      return out;
  }
}

// ---- zip: header fields ---------------------------------------------------------------------------
export function zipMutation(rng: Rng, b: Buffer): Buffer {
  const sigs = [
    Buffer.from([0x50, 0x4b, 0x03, 0x04]),
    Buffer.from([0x50, 0x4b, 0x01, 0x02]),
    Buffer.from([0x50, 0x4b, 0x05, 0x06]),
    Buffer.from([0x50, 0x4b, 0x07, 0x08]),
  ];
  const sig = rng.pick(sigs);
  const hits: number[] = [];
  for (let i = b.indexOf(sig); i >= 0 && hits.length < 400; i = b.indexOf(sig, i + 4)) hits.push(i);
  if (!hits.length) return byteMutation(rng, b);
  const at = rng.pick(hits);
  const out = Buffer.from(b);
  // field offsets (and widths) of each record type
  const fields: Record<number, [number, number][]> = {
    0x04: [
      [6, 2],
      [8, 2],
      [14, 4],
      [18, 4],
      [22, 4],
      [26, 2],
      [28, 2],
    ], // local: flags, method, crc, sizes, name/extra len
    0x02: [
      [8, 2],
      [10, 2],
      [16, 4],
      [20, 4],
      [24, 4],
      [28, 2],
      [30, 2],
      [32, 2],
      [42, 4],
    ], // central: ..., local header offset
    0x06: [
      [8, 2],
      [10, 2],
      [12, 4],
      [16, 4],
      [20, 2],
    ], // end of central directory
    0x08: [
      [4, 4],
      [8, 4],
      [12, 4],
    ], // data descriptor
  };
  const f = rng.pick(fields[sig[3]!]!);
  if (at + f[0] + f[1] > out.length) return byteMutation(rng, out);
  const v = rng.chance(0.5)
    ? rng.pick(INTERESTING_U32)
    : (f[1] === 2 ? out.readUInt16LE(at + f[0]) : out.readUInt32LE(at + f[0])) + rng.pick([-64, -4, -1, 1, 4, 64]);
  if (f[1] === 2) out.writeUInt16LE(((v % 65536) + 65536) % 65536, at + f[0]);
  else out.writeUInt32LE(((v % 2 ** 32) + 2 ** 32) % 2 ** 32, at + f[0]);
  if (sig[3] === 0x02 && rng.chance(0.2)) {
    // a central record copied over another one (duplicate names, crossed offsets)
    const other = rng.pick(hits);
    out.copy(out, at, other, other + 46);
  }
  return out;
}

// ---- safetensors: the JSON header ---------------------------------------------------------------
export function safetensorsMutation(rng: Rng, b: Buffer): Buffer {
  if (b.length < 8) return byteMutation(rng, b);
  const n = Number(b.readBigUInt64LE(0));
  if (n > b.length - 8) return byteMutation(rng, b);
  let h: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
  try {
    h = JSON.parse(b.toString('utf8', 8, 8 + n));
  } catch {
    return byteMutation(rng, b);
  }
  const data = b.subarray(8 + n);
  const keys = Object.keys(h).filter((k) => k !== '__metadata__');
  let lenDelta = 0;
  if (keys.length) {
    const k = rng.pick(keys);
    const t = h[k]!;
    switch (rng.int(7)) {
      case 0:
        t.data_offsets = t.data_offsets.map((o) => o + rng.pick([-8, -2, -1, 1, 2, 8]));
        break;
      case 1:
        t.data_offsets[rng.int(2)] = rng.pick([0, -1, 2 ** 31, 2 ** 53, 2 ** 60, data.length, data.length + 1]);
        break;
      case 2:
        t.data_offsets = [...h[rng.pick(keys)]!.data_offsets];
        break;
      case 3:
        t.dtype = rng.pick(['F32', 'F16', 'BF16', 'I64', 'U8', 'BOOL', 'F8', 'f32', '']);
        break;
      case 4:
        t.shape = rng.pick([[], [0], [2 ** 31, 2 ** 31], [...t.shape, 2], t.shape.slice(1), [-1]]);
        break;
      case 5:
        lenDelta = rng.pick([-2, -1, 1, 2, 1 << 20]);
        break;
      default:
        delete h[k];
    }
  }
  const json = Buffer.from(JSON.stringify(h));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Math.max(0, json.length + lenDelta)));
  return Buffer.concat([len, json, rng.chance(0.1) ? Buffer.concat([data, Buffer.alloc(1 + rng.int(16))]) : data]);
}

// ---- pickle: opcodes --------------------------------------------------------------------------
const OPCODES = [
  0x28, 0x29, 0x2e, 0x30, 0x31, 0x32, 0x4e, 0x5d, 0x7d, 0x85, 0x86, 0x87, 0x74, 0x6c, 0x64, 0x73, 0x75, 0x61, 0x65,
  0x52, 0x81, 0x62, 0x71, 0x72, 0x94, 0x68, 0x6a, 0x51, 0x93, 0x4b, 0x4a, 0x8a, 0x8c, 0x58,
];
export function pickleMutation(rng: Rng, b: Buffer): Buffer {
  const out = Buffer.from(b);
  const at = 2 + rng.int(Math.max(1, out.length - 3));
  switch (rng.int(5)) {
    case 0: // replace an opcode-looking byte
      out[at] = rng.pick(OPCODES);
      return out;
    case 1: // insert an opcode with an operand
      return Buffer.concat([
        out.subarray(0, at),
        Buffer.from([rng.pick(OPCODES), rng.int(256), rng.int(256), 0, 0]),
        out.subarray(at),
      ]);
    case 2: {
      // nesting: a tuple built from memo entries many times over (exponential when printed)
      const grow: number[] = [0x29, 0x94];
      const depth = 8 + rng.int(40);
      for (let i = 0; i < depth; i++) grow.push(0x68, i, 0x68, i, 0x86, 0x94);
      grow.push(0x30);
      return Buffer.concat([out.subarray(0, at), Buffer.from(grow), out.subarray(at)]);
    }
    case 3: {
      // a long run of TUPLE1 (deep) after an EMPTY_TUPLE
      const deep = Buffer.alloc(2 + rng.int(20000), 0x85);
      deep[0] = 0x29;
      deep[deep.length - 1] = 0x30;
      return Buffer.concat([out.subarray(0, at), deep, out.subarray(at)]);
    }
    default:
      return byteMutation(rng, out);
  }
}

// ---- JSON documents -------------------------------------------------------------------------------
const EXTREMES: unknown[] = [
  0,
  -1,
  1e308,
  -1e308,
  2 ** 53,
  2 ** 31,
  0.5,
  'x',
  '',
  null,
  true,
  [],
  {},
  'x'.repeat(100000),
];
export function jsonMutation(rng: Rng, b: Buffer): Buffer {
  let v: unknown;
  try {
    v = JSON.parse(b.toString('utf8'));
  } catch {
    return byteMutation(rng, b);
  }
  if (rng.chance(0.15)) return byteMutation(rng, b);
  // a random path into the tree
  const path: (string | number)[] = [];
  let node = v;
  while (node && typeof node === 'object' && rng.chance(0.8)) {
    const keys = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
    if (!keys.length) break;
    const k = rng.pick(keys as (string | number)[]);
    path.push(k);
    node = (node as Record<string | number, unknown>)[k];
  }
  const set = (val: unknown) => {
    if (!path.length) return (v = val);
    let p = v as Record<string | number, unknown>;
    for (const k of path.slice(0, -1)) p = p[k] as Record<string | number, unknown>;
    const last = path[path.length - 1]!;
    if (val === undefined) {
      if (Array.isArray(p)) p.splice(last as number, 1);
      else delete p[last];
    } else p[last] = val;
  };
  switch (rng.int(4)) {
    case 0:
      set(rng.pick(EXTREMES));
      break;
    case 1:
      set(undefined);
      break;
    case 2: {
      let deep: unknown = 1;
      for (let i = rng.int(20000); i > 0; i--) deep = [deep];
      set(deep);
      break;
    }
    default:
      if (node && typeof node === 'object' && !Array.isArray(node))
        (node as Record<string, unknown>)[rng.pick(['zzz', '__proto__', 'constructor', ''])] = rng.pick(EXTREMES);
      else set(rng.pick(EXTREMES));
  }
  try {
    return Buffer.from(JSON.stringify(v) ?? 'null');
  } catch {
    return byteMutation(rng, b); // a tree too deep to print
  }
}

// ---- CSV text ---------------------------------------------------------------------------------------
export function csvMutation(rng: Rng, b: Buffer): Buffer {
  if (rng.chance(0.5)) return byteMutation(rng, b);
  const at = rng.int(b.length + 1);
  const piece = rng.pick([
    '"',
    '""',
    ',',
    '\n',
    '\r\n',
    '\r',
    '"a\nb"',
    '\0',
    '\uFEFF',
    ',,,,,,,,,,',
    '"'.repeat(1000),
    'x'.repeat(100000),
  ]);
  return Buffer.concat([b.subarray(0, at), Buffer.from(piece), b.subarray(at)]);
}
