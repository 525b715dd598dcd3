// JPEG decoder for the grey image OpenCV's cv2.imread(path, IMREAD_GRAYSCALE) gets from libjpeg(-turbo)
// with out_color_space = JCS_GRAYSCALE: the first component's samples at image size, with no colour
// conversion (for YCbCr that is the luma, Y). Covers ITU-T T.81 DCT-based Huffman-coded JPEG,
// baseline/extended sequential and progressive, 8-bit, any sampling factors, restart intervals.
//
// This file walks the marker segments (T.81 B.2, B.3); ./jpeg-markers.ts parses them,
// ./jpeg-scan.ts decodes scans, ./jpeg-idct.ts is libjpeg's integer IDCT and ./jpeg-upsample.ts
// its upsampling. Where the data is damaged we do what libjpeg does (skip garbage between
// segments, zero-fill after an early marker, resynchronise on restart markers), except that a
// buffer ending inside a scan is an error rather than a grey-filled image.
import { BitReader, HuffmanTable } from './jpeg-huffman.js';
import { idctIslow } from './jpeg-idct.js';
import {
  JpegError,
  M_APP0,
  M_APP14,
  M_APP15,
  M_COM,
  M_DAC,
  M_DHT,
  M_DNL,
  M_DQT,
  M_DRI,
  M_EOI,
  M_RST0,
  M_RST7,
  M_SOF0,
  M_SOI,
  M_SOS,
  M_TEM,
  adobeTransform,
  checkFrameType,
  isJfif,
  parseFrame,
  parseHuffmanTables,
  parseQuantTables,
  parseRestartInterval,
  parseScan,
  type Frame,
  type HuffmanSpec,
  type Segment,
} from './jpeg-markers.js';
import { decodeScan, type ScanTarget } from './jpeg-scan.js';
import { upsampleComponent } from './jpeg-upsample.js';

export { JpegError } from './jpeg-markers.js';

/** The colour space libjpeg infers (jdapimin.c default_decompress_parms). */
export type JpegColorSpace = 'grayscale' | 'ycbcr' | 'rgb' | 'unknown';

export interface JpegLuma {
  width: number;
  height: number;
  /** Components in the frame (1 grey, 3 colour; 4 is refused). */
  components: number;
  colorSpace: JpegColorSpace;
  /** The first component at image size, width * height bytes, row-major. */
  data: Uint8Array;
}

/** Largest image accepted, in pixels (the 1000-megapixel ceiling the project has always applied). */
const MAX_PIXELS = 1000 * 1000 * 1000;

/** The component decoded and returned: the first of the frame (Y for YCbCr). */
const KEPT = 0;

function u16(data: Uint8Array, p: number): number {
  return (data[p] << 8) | data[p + 1];
}

function hex(m: number): string {
  return `0x${m.toString(16).toUpperCase().padStart(2, '0')}`;
}

/** The decoding state of one file. */
class Decoder {
  private readonly data: Uint8Array;
  private pos = 2;
  private frame: Frame | null = null;
  private readonly quant: (Int16Array | null)[] = [null, null, null, null];
  private readonly dcSpecs: (HuffmanSpec | null)[] = [null, null, null, null];
  private readonly acSpecs: (HuffmanSpec | null)[] = [null, null, null, null];
  /** Quantization tables latched at each component's first scan (as libjpeg does). */
  private latched: (Int16Array | null)[] = [];
  private restartInterval = 0;
  private jfif = false;
  private adobe = -1;
  private scans = 0;
  private target: ScanTarget | null = null;
  /** Samples of the kept component, allocWide * 8 per line. */
  private plane: Uint8Array | null = null;

  constructor(
    data: Uint8Array,
    private readonly checkSize?: (width: number, height: number) => void,
  ) {
    this.data = data;
  }

  /** Finds the next marker from pos as libjpeg's next_marker (garbage skipped); -1 at the end. */
  private nextMarker(): number {
    const br = new BitReader(this.data, this.pos);
    br.seekMarker();
    this.pos = br.pos;
    return br.atEnd ? -1 : br.marker;
  }

  /** The segment of the marker at pos (its 0xFF), moving pos past it. */
  private segment(name: string): Segment {
    const d = this.data;
    if (this.pos + 4 > d.length) throw new JpegError(`truncated JPEG data: ends inside the ${name} marker segment`);
    const len = u16(d, this.pos + 2);
    if (len < 2) throw new JpegError(`bad ${name} segment length ${len}`);
    const start = this.pos + 4;
    const end = this.pos + 2 + len;
    if (end > d.length) throw new JpegError(`truncated JPEG data: ends inside the ${name} marker segment`);
    this.pos = end;
    return { start, end };
  }

  run(): JpegLuma {
    const d = this.data;
    if (d.length < 2 || d[0] !== 0xff || d[1] !== M_SOI) throw new JpegError('not a JPEG file (no SOI marker)');
    for (;;) {
      const m = this.nextMarker();
      if (m < 0) {
        // libjpeg's memory source treats the end as an EOI; a file that stops after whole scans
        // still decodes, one that stops before any scan has nothing to show.
        if (this.scans > 0) break;
        throw new JpegError(
          this.frame
            ? 'truncated JPEG data: ends before the first scan'
            : 'truncated JPEG data: ends before the frame header',
        );
      }
      if (m === M_EOI) break;
      if (m === M_SOS) {
        if (this.scan()) break;
        continue;
      }
      if ((m >= M_RST0 && m <= M_RST7) || m === M_TEM) {
        this.pos += 2; // parameterless; a stray RSTn between segments is ignored, as in libjpeg
        continue;
      }
      if (m === M_SOI) throw new JpegError('second SOI marker');
      if (m >= 0xc0 && m <= 0xcf && m !== M_DHT && m !== M_DAC) {
        checkFrameType(m);
        if (this.frame) throw new JpegError('more than one frame header (SOF)');
        this.startFrame(parseFrame(d, this.segment(`SOF${m - M_SOF0}`), m));
        continue;
      }
      switch (m) {
        case M_DHT:
          for (const spec of parseHuffmanTables(d, this.segment('DHT')))
            (spec.tc === 0 ? this.dcSpecs : this.acSpecs)[spec.th] = spec;
          break;
        case M_DQT:
          parseQuantTables(d, this.segment('DQT'), this.quant);
          break;
        case M_DRI:
          this.restartInterval = parseRestartInterval(d, this.segment('DRI'));
          break;
        case M_DAC: // arithmetic conditioning: the SOF check refuses such files anyway
        case M_DNL: // line count after the first scan: not needed with a non-zero SOF height
        case M_COM:
          this.segment(hex(m));
          break;
        default:
          if (m >= M_APP0 && m <= M_APP15) {
            const seg = this.segment(`APP${m - M_APP0}`);
            if (m === M_APP0 && isJfif(d, seg)) this.jfif = true;
            if (m === M_APP14) {
              const t = adobeTransform(d, seg);
              if (t >= 0) this.adobe = t;
            }
            break;
          }
          // DHP, EXP, JPGn and the reserved codes: libjpeg treats them as fatal (possible
          // incompatible extensions), and so do we.
          throw new JpegError(`unsupported JPEG marker ${hex(m)}`);
      }
    }
    return this.finish();
  }

  private startFrame(frame: Frame): void {
    if (frame.components.length === 4) throw new JpegError('CMYK/YCCK JPEG is not supported', true);
    this.checkSize?.(frame.width, frame.height);
    if (frame.width * frame.height > MAX_PIXELS)
      throw new JpegError(`${frame.width}x${frame.height} is over the ${MAX_PIXELS / 1e6}-megapixel limit`, true);
    this.frame = frame;
    this.latched = frame.components.map(() => null);
    const c = frame.components[KEPT];
    const blocks = c.allocWide * c.allocHigh;
    this.plane = new Uint8Array(blocks * 64);
    // A block no scan reaches has zero coefficients, which the IDCT turns into mid-grey.
    this.plane.fill(128);
    // Sequential scans transform each block as it arrives; progressive ones gather coefficients.
    this.target = {
      component: KEPT,
      plane: frame.progressive ? null : this.plane,
      coefs: frame.progressive ? new Int16Array(blocks * 64) : null,
      quant: null,
    };
  }

  /** Decodes a scan; true when it completes the image the way libjpeg + OpenCV see it (below). */
  private scan(): boolean {
    const frame = this.frame;
    const target = this.target;
    if (!frame || !target) throw new JpegError('SOS marker before the frame header (SOF)');
    const scan = parseScan(this.data, this.segment('SOS'), frame);
    // libjpeg fixes each component's quantization table when its first scan starts.
    for (const sc of scan.components) {
      if (this.latched[sc.index]) continue;
      const tq = frame.components[sc.index].tq;
      const t = tq < 4 ? this.quant[tq] : null;
      if (!t) throw new JpegError(`quantization table ${tq} is not defined`);
      this.latched[sc.index] = t.slice();
    }
    target.quant = this.latched[KEPT];
    const dc = this.dcSpecs.map((s) => (s ? new HuffmanTable(s) : null));
    const ac = this.acSpecs.map((s) => (s ? new HuffmanTable(s) : null));
    const br = new BitReader(this.data, this.pos);
    decodeScan(br, frame, scan, dc, ac, this.restartInterval, target);
    this.pos = br.atEnd ? this.data.length : br.pos;
    this.scans++;
    // libjpeg decodes a sequential file whose first scan holds every component in a single pass,
    // producing all output rows before it reads on; OpenCV counts the image read once the rows
    // are out and ignores what jpeg_finish_decompress then finds (more scans, bad or truncated
    // segments). So the image is complete here, whatever follows.
    return !frame.progressive && this.scans === 1 && scan.components.length === frame.components.length;
  }

  private finish(): JpegLuma {
    const frame = this.frame;
    const target = this.target;
    const plane = this.plane;
    if (!frame || !target || !plane) throw new JpegError('no image data (no frame header)');
    if (this.scans === 0) throw new JpegError('no image data (no scan)');
    const c = frame.components[KEPT];
    const stride = c.allocWide * 8;
    if (target.coefs) {
      // Progressive: the coefficients are complete only now; transform every block once.
      const q = this.latched[KEPT];
      if (q) {
        const ws = new Int32Array(64);
        const coefs = target.coefs;
        for (let by = 0; by < c.blocksHigh; by++)
          for (let bx = 0; bx < c.blocksWide; bx++)
            idctIslow(coefs, (by * c.allocWide + bx) * 64, q, plane, by * 8 * stride + bx * 8, stride, ws);
      }
    }
    return {
      width: frame.width,
      height: frame.height,
      components: frame.components.length,
      colorSpace: this.colorSpace(frame),
      data: upsampleComponent(plane, stride, c, frame),
    };
  }

  /** libjpeg's guess of the colour space from the component count, JFIF, Adobe and component ids. */
  private colorSpace(frame: Frame): JpegColorSpace {
    const n = frame.components.length;
    if (n === 1) return 'grayscale';
    if (n !== 3) return 'unknown';
    if (this.jfif) return 'ycbcr';
    if (this.adobe >= 0) return this.adobe === 0 ? 'rgb' : 'ycbcr';
    const [a, b, c] = frame.components.map((x) => x.id);
    if (a === 82 && b === 71 && c === 66) return 'rgb'; // 'R', 'G', 'B'
    return 'ycbcr';
  }
}

/**
 * Decodes a JPEG file to its first component at image size (the grey image libjpeg gives for
 * JCS_GRAYSCALE output from grey or YCbCr data). Throws JpegError naming the problem;
 * `unsupported` is set for valid JPEG outside what we decode (arithmetic coding, 12-bit, lossless,
 * hierarchical, CMYK).
 */
/** `checkSize(width, height)` runs on the frame header, before anything is allocated for it. */
export function decodeJpegLuma(data: Uint8Array, checkSize?: (width: number, height: number) => void): JpegLuma {
  return new Decoder(data, checkSize).run();
}
