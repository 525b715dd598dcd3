// A minimal baseline JPEG encoder for 8-bit grey images (one component, 4:0:0): the standard
// luminance quantisation table of ITU-T T.81 Annex K scaled by quality (IJG's formula), the
// standard luminance Huffman tables (Annex K.3), a float forward DCT (the separable definition,
// exact enough for phantom images), JFIF APP0 header. Written for the demo data set only: the
// decoder in src/image/ reads its output like any baseline JPEG.

const ZIGZAG = new Uint8Array([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
  35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47,
  55, 62, 63,
]);

// Annex K table K.1, natural (row-major) order.
const STD_LUMA_Q = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51,
  87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101,
  72, 92, 95, 98, 112, 100, 103, 99,
];

// Annex K.3: DC and AC luminance tables (code counts per length 1..16, then values).
const DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_VALS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const AC_BITS = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
const AC_VALS = [
  0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14,
  0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09,
  0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a,
  0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65,
  0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88,
  0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9,
  0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca,
  0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea,
  0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
];

interface HuffTable {
  code: Uint16Array;
  size: Uint8Array;
}

/** Canonical codes (T.81 Annex C) indexed by symbol value. */
function buildHuffman(bits: number[], vals: number[]): HuffTable {
  const code = new Uint16Array(256);
  const size = new Uint8Array(256);
  let c = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    for (let i = 0; i < bits[len - 1]; i++) {
      code[vals[k]] = c;
      size[vals[k]] = len;
      c++;
      k++;
    }
    c <<= 1;
  }
  return { code, size };
}

const DC_TABLE = buildHuffman(DC_BITS, DC_VALS);
const AC_TABLE = buildHuffman(AC_BITS, AC_VALS);

// Cosine table for the 8-point DCT: COS[x * 8 + u] = c(u) / 2 * cos((2x + 1) u pi / 16).
const COS = new Float64Array(64);
for (let x = 0; x < 8; x++)
  for (let u = 0; u < 8; u++)
    COS[x * 8 + u] = (u === 0 ? Math.SQRT1_2 : 1) * 0.5 * Math.cos(((2 * x + 1) * u * Math.PI) / 16);

class BitWriter {
  private buf: Uint8Array;
  private len = 0;
  private acc = 0;
  private nbits = 0;
  constructor(capacity: number) {
    this.buf = new Uint8Array(Math.max(1024, capacity));
  }
  private byte(b: number): void {
    if (this.len + 2 > this.buf.length) {
      const n = new Uint8Array(this.buf.length * 2);
      n.set(this.buf);
      this.buf = n;
    }
    this.buf[this.len++] = b;
    if (b === 0xff) this.buf[this.len++] = 0; // byte stuffing
  }
  write(value: number, bits: number): void {
    for (let i = bits - 1; i >= 0; i--) {
      this.acc = (this.acc << 1) | ((value >>> i) & 1);
      if (++this.nbits === 8) {
        this.byte(this.acc);
        this.acc = 0;
        this.nbits = 0;
      }
    }
  }
  /** Pads the last byte with 1-bits (T.81 F.1.2.3). */
  flush(): Uint8Array {
    if (this.nbits > 0) this.write((1 << (8 - this.nbits)) - 1, 8 - this.nbits);
    return this.buf.subarray(0, this.len);
  }
}

/** Magnitude category (number of bits) of a coefficient. */
function category(v: number): number {
  let a = v < 0 ? -v : v;
  let n = 0;
  while (a) {
    n++;
    a >>= 1;
  }
  return n;
}

function writeCoef(w: BitWriter, v: number, n: number): void {
  w.write(v < 0 ? v + (1 << n) - 1 : v, n);
}

/** Quantisation table (natural order) for an IJG quality 1..100. */
export function jpegQuantTable(quality: number): Uint8Array {
  const q = Math.min(100, Math.max(1, Math.round(quality)));
  const scale = q < 50 ? Math.floor(5000 / q) : 200 - q * 2;
  return Uint8Array.from(STD_LUMA_Q, (v) => Math.min(255, Math.max(1, Math.floor((v * scale + 50) / 100))));
}

/** Encodes an 8-bit grey image (row-major, width*height bytes) as a baseline JFIF JPEG. */
export function encodeGrayJpeg(data: Uint8Array, width: number, height: number, quality = 90): Uint8Array {
  if (!(width > 0 && height > 0 && width < 65536 && height < 65536))
    throw new RangeError(`encodeGrayJpeg: bad size ${width}x${height}`);
  if (data.length !== width * height)
    throw new RangeError(`encodeGrayJpeg: ${data.length} bytes for ${width}x${height}`);
  const qt = jpegQuantTable(quality);
  const head: number[] = [0xff, 0xd8];
  const seg = (marker: number, body: number[]) =>
    head.push(0xff, marker, (body.length + 2) >> 8, (body.length + 2) & 0xff, ...body);
  seg(0xe0, [0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]); // JFIF 1.01, aspect 1:1
  seg(0xdb, [0, ...Array.from(ZIGZAG, (z) => qt[z])]); // DQT 0, 8-bit, zig-zag order
  seg(0xc0, [8, height >> 8, height & 0xff, width >> 8, width & 0xff, 1, 1, 0x11, 0]); // SOF0, 1 component
  seg(0xc4, [0x00, ...DC_BITS, ...DC_VALS]);
  seg(0xc4, [0x10, ...AC_BITS, ...AC_VALS]);
  seg(0xda, [1, 1, 0x00, 0, 63, 0]); // SOS: component 1, tables 0/0, Ss 0, Se 63, Ah/Al 0
  const w = new BitWriter(width * height);
  const block = new Float64Array(64);
  const tmp = new Float64Array(64);
  const coef = new Int32Array(64);
  let prevDc = 0;
  for (let by = 0; by < height; by += 8) {
    for (let bx = 0; bx < width; bx += 8) {
      for (let y = 0; y < 8; y++) {
        const sy = Math.min(by + y, height - 1); // edge replication
        for (let x = 0; x < 8; x++) block[y * 8 + x] = data[sy * width + Math.min(bx + x, width - 1)] - 128;
      }
      // rows then columns
      for (let y = 0; y < 8; y++)
        for (let u = 0; u < 8; u++) {
          let s = 0;
          for (let x = 0; x < 8; x++) s += block[y * 8 + x] * COS[x * 8 + u];
          tmp[y * 8 + u] = s;
        }
      for (let u = 0; u < 8; u++)
        for (let v = 0; v < 8; v++) {
          let s = 0;
          for (let y = 0; y < 8; y++) s += tmp[y * 8 + u] * COS[y * 8 + v];
          const k = v * 8 + u;
          coef[k] = Math.round(s / qt[k]);
        }
      const dc = coef[0];
      const diff = dc - prevDc;
      prevDc = dc;
      const dn = category(diff);
      w.write(DC_TABLE.code[dn], DC_TABLE.size[dn]);
      if (dn) writeCoef(w, diff, dn);
      let run = 0;
      for (let i = 1; i < 64; i++) {
        const v = coef[ZIGZAG[i]];
        if (v === 0) {
          run++;
          continue;
        }
        while (run > 15) {
          w.write(AC_TABLE.code[0xf0], AC_TABLE.size[0xf0]);
          run -= 16;
        }
        const n = category(v);
        const sym = (run << 4) | n;
        w.write(AC_TABLE.code[sym], AC_TABLE.size[sym]);
        writeCoef(w, v, n);
        run = 0;
      }
      if (run > 0) w.write(AC_TABLE.code[0], AC_TABLE.size[0]); // EOB
    }
  }
  const scan = w.flush();
  const out = new Uint8Array(head.length + scan.length + 2);
  out.set(head, 0);
  out.set(scan, head.length);
  out[out.length - 2] = 0xff;
  out[out.length - 1] = 0xd9;
  return out;
}
