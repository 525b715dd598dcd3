// Huffman decoding tables and the entropy-coded-data bit reader (ITU-T T.81 Annex C, F.2.2.3,
// F.2.2.5, F.1.2.3, B.1.1.5), with libjpeg's handling of markers and corrupt codes.
import { JpegError, type HuffmanSpec } from './jpeg-markers.js';

/** Codes up to this many bits are resolved by one table look-up. */
const LOOKAHEAD = 9;

export class HuffmanTable {
  /** LOOKAHEAD-bit prefix -> (code length << 8) | symbol; 0 when the code is longer (or invalid). */
  readonly lookup = new Uint16Array(1 << LOOKAHEAD);
  /** MAXCODE[l]: largest code of length l, -1 when none (F.2.2.3); maxCode[17] is a sentinel. */
  readonly maxCode = new Int32Array(18);
  /** VALPTR[l] - MINCODE[l]: add to a code of length l to index `symbols`. */
  readonly valOffset = new Int32Array(17);
  readonly symbols: Uint8Array;
  /** Largest symbol, for the DC-table check (a DC category above 15 cannot be decoded). */
  readonly maxSymbol: number;

  constructor(spec: HuffmanSpec) {
    const { counts, symbols } = spec;
    this.symbols = symbols;
    this.maxSymbol = symbols.reduce((m, s) => Math.max(m, s), 0);
    // Generate the code of each symbol: HUFFSIZE / HUFFCODE (T.81 C.2, Figures C.1 and C.2).
    let code = 0;
    let k = 0;
    let maxLen = 0;
    for (let l = 1; l <= 16; l++) if (counts[l - 1]) maxLen = l;
    for (let l = 1; l <= 16; l++) {
      const n = counts[l - 1];
      this.valOffset[l] = k - code;
      for (let i = 0; i < n; i++, k++, code++) {
        if (l <= LOOKAHEAD) {
          // All LOOKAHEAD-bit strings starting with this code decode to it.
          const shift = LOOKAHEAD - l;
          const base = code << shift;
          for (let j = 0; j < 1 << shift; j++) this.lookup[base + j] = (l << 8) | symbols[k];
        }
      }
      this.maxCode[l] = n ? code - 1 : -1;
      // The next code must still fit in l bits: no code may be all ones (T.81 C.2 note), and more
      // would mean an over-subscribed table. libjpeg refuses both.
      if (l <= maxLen && code >= 1 << l) throw new JpegError('bad Huffman table (code lengths over-subscribed)');
      code <<= 1;
    }
    this.maxCode[17] = 0x7fffffff;
  }
}

/**
 * Reads the entropy-coded segment bit by bit. Undoes byte stuffing (0xFF 0x00 -> 0xFF, T.81
 * F.1.2.3) and skips fill bytes (0xFF 0xFF ..., B.1.1.2). On meeting a marker it stops before it
 * and, like libjpeg, feeds zero bits from then on; `pad` counts those, so a caller learns at the
 * end of an MCU whether it used any (cnt < pad): real marker -> libjpeg's "insufficient data"
 * (the rest of the restart interval stays zero), end of the buffer -> a truncated file.
 */
export class BitReader {
  /** Bit accumulator: the low `cnt` bits are unread, most significant first. */
  acc = 0;
  cnt = 0;
  /** Zero bits appended after the data ran out; the low `pad` bits of `acc` are fake. */
  pad = 0;
  /** Marker code met inside the entropy-coded data (data[pos] = 0xFF, data[pos + 1] = code), -1 none. */
  marker = -1;
  /** The buffer ended inside the entropy-coded data. */
  atEnd = false;
  pos: number;
  readonly data: Uint8Array;

  constructor(data: Uint8Array, pos: number) {
    this.data = data;
    this.pos = pos;
  }

  /** Tops the accumulator up to at least 25 bits. */
  fill(): void {
    const data = this.data;
    const len = data.length;
    let acc = this.acc;
    let cnt = this.cnt;
    let pos = this.pos;
    while (cnt <= 24) {
      let b = 0;
      if (this.marker < 0 && !this.atEnd) {
        if (pos >= len) {
          this.atEnd = true;
        } else {
          b = data[pos];
          if (b !== 0xff) {
            pos++;
          } else {
            let q = pos + 1;
            while (q < len && data[q] === 0xff) q++;
            if (q >= len) {
              this.atEnd = true;
              b = 0;
            } else if (data[q] === 0) {
              pos = q + 1; // stuffed zero: the 0xFF is data
            } else {
              this.marker = data[q];
              pos = q - 1;
              b = 0;
            }
          }
        }
        if (this.marker >= 0 || this.atEnd) this.pad += 8;
      } else {
        this.pad += 8;
      }
      acc = (acc << 8) | b;
      cnt += 8;
    }
    this.acc = acc;
    this.cnt = cnt;
    this.pos = pos;
  }

  /** Decodes one Huffman-coded symbol (T.81 F.2.2.3, with a LOOKAHEAD-bit table first). */
  decode(t: HuffmanTable): number {
    if (this.cnt < 17) this.fill();
    let cnt = this.cnt;
    const acc = this.acc;
    const e = t.lookup[(acc >>> (cnt - LOOKAHEAD)) & ((1 << LOOKAHEAD) - 1)];
    if (e !== 0) {
      this.cnt = cnt - (e >> 8);
      return e & 0xff;
    }
    let l = LOOKAHEAD + 1;
    let code = (acc >>> (cnt - l)) & ((1 << l) - 1);
    const maxCode = t.maxCode;
    while (code > maxCode[l]) {
      l++;
      code = (acc >>> (cnt - l)) & ((1 << l) - 1);
    }
    cnt -= l;
    this.cnt = cnt;
    // No code of 16 bits or fewer matched: libjpeg warns and uses symbol 0 after 17 bits.
    if (l > 16) return 0;
    return t.symbols[(code + t.valOffset[l]) & 0xff];
  }

  /** The next n bits (0 <= n <= 16) as an unsigned number. */
  bits(n: number): number {
    if (this.cnt < n) this.fill();
    this.cnt -= n;
    return (this.acc >>> this.cnt) & ((1 << n) - 1);
  }

  /** One bit. */
  bit(): number {
    if (this.cnt < 1) this.fill();
    this.cnt -= 1;
    return (this.acc >>> this.cnt) & 1;
  }

  /** RECEIVE(s) then EXTEND (T.81 F.2.2.1, Figure F.12): an s-bit magnitude category to a signed value. */
  receiveExtend(s: number): number {
    if (this.cnt < s) this.fill();
    this.cnt -= s;
    const v = (this.acc >>> this.cnt) & ((1 << s) - 1);
    return v < 1 << (s - 1) ? v - (1 << s) + 1 : v;
  }

  /** Whether any fake bits (past a marker or the end) were consumed. */
  get overrun(): boolean {
    return this.cnt < this.pad;
  }

  /** Drops the buffered bits: the rest of a byte before a marker is padding (T.81 F.1.2.3). */
  reset(): void {
    this.acc = 0;
    this.cnt = 0;
    this.pad = 0;
  }

  /**
   * Finds the next marker from `pos` as libjpeg's next_marker does: skips non-0xFF garbage, fill
   * bytes and stuffed zeros. Sets `marker` (pos at its 0xFF) or `atEnd`.
   */
  seekMarker(): void {
    if (this.marker >= 0) return;
    const data = this.data;
    const len = data.length;
    let p = this.pos;
    for (;;) {
      while (p < len && data[p] !== 0xff) p++;
      while (p + 1 < len && data[p + 1] === 0xff) p++;
      if (p + 1 >= len) {
        this.pos = len;
        this.atEnd = true;
        return;
      }
      if (data[p + 1] !== 0) {
        this.pos = p;
        this.marker = data[p + 1];
        return;
      }
      p += 2;
    }
  }
}
