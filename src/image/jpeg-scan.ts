// Decoding of one scan's entropy-coded data (ITU-T T.81 Annexes E, F and G, Huffman coding only):
// the MCU walk (A.2), restart intervals (E.2.4, with libjpeg's resynchronisation on a wrong or
// missing RSTn), sequential blocks (F.2.2) and the four progressive procedures (G.1.2: DC first,
// DC refinement, AC first with EOB runs, AC refinement with correction bits).
//
// Only the output component (index 0) is kept. The others are entropy-decoded to stay in step in
// interleaved scans, but never stored or transformed; scans holding only them are skipped whole.
import { BitReader, HuffmanTable } from './jpeg-huffman.js';
import { idctIslow } from './jpeg-idct.js';
import { JpegError, M_RST0, M_RST7, M_SOF0, ZIGZAG, type Frame, type Scan } from './jpeg-markers.js';

/** Where the kept component's decoded data goes. */
export interface ScanTarget {
  /** Frame index of the component kept. */
  component: number;
  /** Sequential: samples of the kept component, allocWide*8 per line (IDCT done as blocks arrive). */
  plane: Uint8Array | null;
  /** Progressive: coefficients of the kept component, 64 per block, allocWide blocks per row. */
  coefs: Int16Array | null;
  /** Sequential: the quantization table latched for the kept component. */
  quant: Int16Array | null;
}

/** Decoder state shared across the MCUs of a scan. */
interface State {
  br: BitReader;
  /** DC predictors per scan component (F.2.1.3.1), reset at restarts. */
  pred: Int32Array;
  /** Remaining blocks of an end-of-band run (G.1.2.2), progressive AC scans. */
  eobrun: number;
  block: Int16Array;
  ws: Int32Array;
}

const enum Mode {
  Sequential,
  DcFirst,
  DcRefine,
  AcFirst,
  AcRefine,
}

function describe(frame: Frame, scan: Scan): string {
  const ids = scan.components.map((c) => frame.components[c.index].id).join(',');
  return frame.progressive
    ? `progressive scan of component(s) ${ids}, Ss=${scan.ss} Se=${scan.se} Ah=${scan.ah} Al=${scan.al}`
    : `scan of component(s) ${ids}`;
}

/** Skips a scan's entropy-coded data up to the next marker other than RSTn. */
export function skipScan(br: BitReader): void {
  for (;;) {
    br.seekMarker();
    if (br.marker < M_RST0 || br.marker > M_RST7) return;
    br.pos += 2;
    br.marker = -1;
  }
}

/**
 * Reads the RSTn expected after a restart interval (libjpeg's read_restart_marker, with
 * jpeg_resync_to_restart when it is not the one expected). When it stops before some other marker,
 * the reader feeds zero bits for the coming interval, as libjpeg's does.
 */
function readRestart(br: BitReader, expected: number): void {
  br.reset(); // the bits left over in the last byte are padding (T.81 F.1.2.3)
  br.seekMarker();
  if (br.atEnd) return;
  const want = M_RST0 + expected;
  for (;;) {
    const m = br.marker;
    if (m === want) {
      br.pos += 2;
      br.marker = -1;
      return;
    }
    // libjpeg's resynchronisation choices: 1 = drop the marker and decode on; 2 = look further;
    // 3 = leave it (a later marker: treat the interval as empty, it will be read in turn).
    let action: number;
    if (m < M_SOF0)
      action = 2; // not a valid marker
    else if (m < M_RST0 || m > M_RST7) action = 3;
    else if (m === M_RST0 + ((expected + 1) & 7) || m === M_RST0 + ((expected + 2) & 7)) action = 3;
    else if (m === M_RST0 + ((expected - 1) & 7) || m === M_RST0 + ((expected - 2) & 7)) action = 2;
    else action = 1;
    if (action === 1) {
      br.pos += 2;
      br.marker = -1;
      return;
    }
    if (action === 3) return;
    br.pos += 2;
    br.marker = -1;
    br.seekMarker();
    if (br.atEnd) return;
  }
}

/** A sequential block (F.2.2.1, F.2.2.2, Figure F.13) into st.block, natural order. */
function sequentialBlock(st: State, dc: HuffmanTable, ac: HuffmanTable, ci: number, store: boolean): void {
  const br = st.br;
  const blk = st.block;
  const s0 = br.decode(dc);
  const diff = s0 === 0 ? 0 : br.receiveExtend(s0);
  const pred = (st.pred[ci] + diff) | 0;
  st.pred[ci] = pred;
  if (store) {
    blk.fill(0);
    blk[0] = pred;
    for (let k = 1; k < 64; k++) {
      const rs = br.decode(ac);
      const s = rs & 15;
      if (s !== 0) {
        k += rs >> 4;
        blk[ZIGZAG[k]] = br.receiveExtend(s);
      } else {
        if (rs !== 0xf0) break; // EOB; 0xF0 = ZRL, sixteen zeros
        k += 15;
      }
    }
  } else {
    for (let k = 1; k < 64; k++) {
      const rs = br.decode(ac);
      const s = rs & 15;
      if (s !== 0) {
        k += rs >> 4;
        br.bits(s);
      } else {
        if (rs !== 0xf0) break;
        k += 15;
      }
    }
  }
}

/** AC first scan of one block (G.1.2.2, Figure G.3, with EOBRUN). */
function acFirst(
  st: State,
  ac: HuffmanTable,
  coefs: Int16Array,
  off: number,
  ss: number,
  se: number,
  al: number,
): void {
  if (st.eobrun > 0) {
    st.eobrun--;
    return;
  }
  const br = st.br;
  for (let k = ss; k <= se; k++) {
    const rs = br.decode(ac);
    const r = rs >> 4;
    const s = rs & 15;
    if (s !== 0) {
      k += r;
      coefs[off + ZIGZAG[k]] = br.receiveExtend(s) * (1 << al);
    } else if (r === 15) {
      k += 15;
    } else {
      // EOBr: a run of 2^r + (r more bits) blocks ends here, this one included.
      st.eobrun = (1 << r) - 1 + (r ? br.bits(r) : 0);
      break;
    }
  }
}

/**
 * AC refinement of one block (G.1.2.3, Figure G.7): one correction bit for each coefficient already
 * non-zero, new coefficients of +-2^Al placed after the run of still-zero ones.
 */
function acRefine(
  st: State,
  ac: HuffmanTable,
  coefs: Int16Array,
  off: number,
  ss: number,
  se: number,
  al: number,
): void {
  const br = st.br;
  const p1 = 1 << al;
  const m1 = -1 << al;
  let k = ss;
  if (st.eobrun === 0) {
    for (; k <= se; k++) {
      const rs = br.decode(ac);
      let r = rs >> 4;
      let s = rs & 15;
      if (s !== 0) {
        // s must be 1 here; libjpeg only warns otherwise and reads the sign bit all the same.
        s = br.bit() ? p1 : m1;
      } else if (r !== 15) {
        st.eobrun = 1 << r;
        if (r) st.eobrun += br.bits(r);
        break; // the rest of the band is handled as part of the run, below
      }
      // Skip r still-zero coefficients, refining the non-zero ones passed on the way.
      do {
        const p = off + ZIGZAG[k];
        const v = coefs[p];
        if (v !== 0) {
          if (br.bit() && (v & p1) === 0) coefs[p] = v >= 0 ? v + p1 : v + m1;
        } else {
          if (--r < 0) break;
        }
        k++;
      } while (k <= se);
      if (s !== 0) coefs[off + ZIGZAG[k]] = s;
    }
  }
  if (st.eobrun > 0) {
    // Inside an end-of-band run: only correction bits for the coefficients already non-zero.
    for (; k <= se; k++) {
      const p = off + ZIGZAG[k];
      const v = coefs[p];
      if (v !== 0 && br.bit() && (v & p1) === 0) coefs[p] = v >= 0 ? v + p1 : v + m1;
    }
    st.eobrun--;
  }
}

/**
 * Decodes one scan starting at br.pos. Leaves br before the marker that follows the scan data (or
 * at the end of the buffer). Throws a JpegError when the buffer ends while MCUs still need data.
 */
export function decodeScan(
  br: BitReader,
  frame: Frame,
  scan: Scan,
  dcTables: (HuffmanTable | null)[],
  acTables: (HuffmanTable | null)[],
  restartInterval: number,
  target: ScanTarget,
): void {
  const n = scan.components.length;
  const keptAt = scan.components.findIndex((c) => c.index === target.component);
  // A scan without the component we keep changes nothing we output: skip its data whole.
  if (keptAt < 0) {
    skipScan(br);
    return;
  }
  let mode = Mode.Sequential;
  if (frame.progressive) {
    if (scan.ss === 0) mode = scan.ah === 0 ? Mode.DcFirst : Mode.DcRefine;
    else mode = scan.ah === 0 ? Mode.AcFirst : Mode.AcRefine;
  }
  // The tables each mode uses must exist (libjpeg: "Huffman table 0x.. was not defined").
  const dcT: HuffmanTable[] = [];
  const acT: HuffmanTable[] = [];
  for (let i = 0; i < n; i++) {
    const sc = scan.components[i];
    if (mode === Mode.Sequential || mode === Mode.DcFirst) {
      const t = dcTables[sc.td];
      if (!t) throw new JpegError(`DC Huffman table ${sc.td} is not defined`);
      if (t.maxSymbol > 15) throw new JpegError(`bad DC Huffman table ${sc.td} (category above 15)`);
      dcT.push(t);
    } else dcT.push(null as unknown as HuffmanTable);
    if (mode === Mode.Sequential || mode === Mode.AcFirst || mode === Mode.AcRefine) {
      const t = acTables[sc.ta];
      if (!t) throw new JpegError(`AC Huffman table ${sc.ta} is not defined`);
      acT.push(t);
    } else acT.push(null as unknown as HuffmanTable);
  }

  const kept = frame.components[target.component];
  const single = n === 1;
  const mcusWide = single ? frame.components[scan.components[0].index].blocksWide : frame.mcusWide;
  const mcusHigh = single ? frame.components[scan.components[0].index].blocksHigh : frame.mcusHigh;
  const total = mcusWide * mcusHigh;
  // Blocks per MCU for each scan component (1x1 in a non-interleaved scan, A.2.2; H x V otherwise, A.2.3).
  const hs = scan.components.map((c) => (single ? 1 : frame.components[c.index].h));
  const vs = scan.components.map((c) => (single ? 1 : frame.components[c.index].v));
  const st: State = { br, pred: new Int32Array(n), eobrun: 0, block: new Int16Array(64), ws: new Int32Array(64) };
  const plane = target.plane;
  const coefs = target.coefs;
  const quant = target.quant;
  const stride = kept.allocWide * 8;
  const { ss, se, al } = scan;
  const p1 = 1 << al;
  let nextRst = 0;
  let noData = false;

  for (let m = 0; m < total; m++) {
    if (restartInterval > 0 && m > 0 && m % restartInterval === 0) {
      // E.2.4: the entropy coder restarts; DC predictions and EOB runs start afresh.
      readRestart(br, nextRst);
      nextRst = (nextRst + 1) & 7;
      // libjpeg clears its out-of-data flag unless it was left against a marker; if so, the
      // interval is decoded from zero bits until the first MCU runs out, then left alone.
      if (br.marker < 0 && !br.atEnd) noData = false;
      st.pred.fill(0);
      st.eobrun = 0;
    }
    if (noData) {
      // libjpeg leaves the MCUs of a data-less interval untouched (zero in a sequential scan).
      if (br.atEnd) throw new JpegError(`truncated JPEG data: ${describe(frame, scan)} ends at MCU ${m} of ${total}`);
      continue;
    }
    const mx = m % mcusWide;
    const my = (m - mx) / mcusWide;
    for (let i = 0; i < n; i++) {
      const h = hs[i];
      const v = vs[i];
      const keep = i === keptAt;
      for (let by = 0; by < v; by++) {
        for (let bx = 0; bx < h; bx++) {
          const row = my * v + by;
          const col = mx * h + bx;
          switch (mode) {
            case Mode.Sequential:
              sequentialBlock(st, dcT[i], acT[i], i, keep);
              if (keep && plane && quant)
                idctIslow(st.block, 0, quant, plane, row * 8 * stride + col * 8, stride, st.ws);
              break;
            case Mode.DcFirst: {
              // G.1.2.1: the DC difference, point-transformed by Al.
              const s = br.decode(dcT[i]);
              const pred = (st.pred[i] + (s === 0 ? 0 : br.receiveExtend(s))) | 0;
              st.pred[i] = pred;
              if (keep && coefs) coefs[(row * kept.allocWide + col) * 64] = pred * p1;
              break;
            }
            case Mode.DcRefine: {
              const b = br.bit();
              if (keep && coefs && b) coefs[(row * kept.allocWide + col) * 64] |= p1;
              break;
            }
            case Mode.AcFirst:
              if (coefs) acFirst(st, acT[i], coefs, (row * kept.allocWide + col) * 64, ss, se, al);
              break;
            case Mode.AcRefine:
              if (coefs) acRefine(st, acT[i], coefs, (row * kept.allocWide + col) * 64, ss, se, al);
              break;
          }
        }
      }
    }
    if (br.overrun) {
      // The MCU used bits past the data: the buffer ended (a truncated file), or a marker came
      // early, in which case libjpeg keeps what it decoded and leaves the interval's other MCUs.
      if (br.atEnd) throw new JpegError(`truncated JPEG data: ${describe(frame, scan)} ends at MCU ${m} of ${total}`);
      noData = true;
    }
  }
  // Whatever follows the last MCU up to the next marker is padding (or garbage libjpeg skips).
  br.reset();
  br.seekMarker();
}
