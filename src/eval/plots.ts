// ROC and precision-recall curves as PNG (pngjs): a small raster line-plot writer with axes,
// grid, tick labels and a legend drawn in a built-in 3x5 pixel font (upper case, digits, a few
// signs), so no text-rendering dependency is needed.
import { writeFile } from 'node:fs/promises';
import { PNG } from 'pngjs';

const FONT: Record<string, string> = {
  '0': '111101101101111', '1': '010110010010111', '2': '111001111100111', '3': '111001111001111', '4': '101101111001001',
  '5': '111100111001111', '6': '111100111101111', '7': '111001001001001', '8': '111101111101111', '9': '111101111001111',
  A: '010101111101101', B: '110101110101110', C: '011100100100011', D: '110101101101110', E: '111100110100111',
  F: '111100110100100', G: '011100101101011', H: '101101111101101', I: '111010010010111', J: '001001001101010',
  K: '101101110101101', L: '100100100100111', M: '101111111101101', N: '110101101101101', O: '010101101101010',
  P: '110101110100100', Q: '010101101110011', R: '110101110101101', S: '011100010001110', T: '111010010010010',
  U: '101101101101111', V: '101101101101010', W: '101101111111101', X: '101101010101101', Y: '101101010010010',
  Z: '111001010100111', _: '000000000000111', '-': '000000111000000', '.': '000000000000010', '(': '010100100100010',
  ')': '010001001001010', '=': '000111000111000', ':': '000010000010000', '/': '001001010100100', '+': '000010111010000',
  ' ': '000000000000000',
};

const PALETTE: [number, number, number][] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75], [227, 119, 194],
  [127, 127, 127], [188, 189, 34], [23, 190, 207], [57, 59, 121], [173, 73, 74], [99, 121, 57], [206, 109, 189],
  [107, 174, 214], [253, 174, 107], [116, 196, 118], [158, 154, 200],
];

export interface Series {
  label: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  /** RGB; default from the palette. */
  color?: [number, number, number];
  /** Line width in pixels (default 1). */
  width?: number;
  dashed?: boolean;
}

export interface PlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  width?: number;
  height?: number;
  /** Legend rows at most (the rest summarised). Default 24. */
  legendRows?: number;
}

class Canvas {
  readonly png: PNG;
  constructor(readonly w: number, readonly h: number) {
    this.png = new PNG({ width: w, height: h });
    this.png.data.fill(255);
  }
  set(x: number, y: number, c: [number, number, number]): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.w || y >= this.h) return;
    const o = (y * this.w + x) * 4;
    this.png.data[o] = c[0];
    this.png.data[o + 1] = c[1];
    this.png.data[o + 2] = c[2];
    this.png.data[o + 3] = 255;
  }
  line(x0: number, y0: number, x1: number, y1: number, c: [number, number, number], width = 1, dashed = false): void {
    const n = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0)) * 2));
    const r = (width - 1) / 2;
    for (let k = 0; k <= n; k++) {
      if (dashed && Math.floor(k / 12) % 2 === 1) continue;
      const x = x0 + ((x1 - x0) * k) / n;
      const y = y0 + ((y1 - y0) * k) / n;
      for (let dy = -Math.ceil(r); dy <= Math.ceil(r); dy++) for (let dx = -Math.ceil(r); dx <= Math.ceil(r); dx++) this.set(x + dx, y + dy, c);
    }
  }
  text(x: number, y: number, s: string, c: [number, number, number], scale = 2): number {
    for (const ch of s.toUpperCase()) {
      const g = FONT[ch] ?? FONT['-'];
      for (let r = 0; r < 5; r++)
        for (let q = 0; q < 3; q++)
          if (g[r * 3 + q] === '1') for (let a = 0; a < scale; a++) for (let b = 0; b < scale; b++) this.set(x + q * scale + b, y + r * scale + a, c);
      x += 4 * scale;
    }
    return x;
  }
  static textWidth(s: string, scale = 2): number {
    return s.length * 4 * scale - scale;
  }
}

/** Renders a line plot of curves in the unit square to PNG bytes. */
export function renderPlot(o: PlotOptions): Buffer {
  const W = o.width ?? 900;
  const H = o.height ?? 620;
  const cv = new Canvas(W, H);
  const left = 70;
  const top = 50;
  const size = Math.min(H - top - 60, W - left - 280);
  const X = (v: number) => left + v * size;
  const Y = (v: number) => top + (1 - v) * size;
  const grey: [number, number, number] = [225, 225, 225];
  const black: [number, number, number] = [0, 0, 0];
  for (let k = 0; k <= 10; k++) {
    const v = k / 10;
    cv.line(X(v), Y(0), X(v), Y(1), grey);
    cv.line(X(0), Y(v), X(1), Y(v), grey);
    if (k % 2 === 0) {
      const t = k === 0 ? '0' : k === 10 ? '1' : `0.${k}`;
      cv.text(X(v) - Canvas.textWidth(t) / 2, Y(0) + 8, t, black);
      cv.text(X(0) - 8 - Canvas.textWidth(t), Y(v) - 5, t, black);
    }
  }
  cv.line(X(0), Y(0), X(1), Y(0), black);
  cv.line(X(0), Y(0), X(0), Y(1), black);
  cv.line(X(1), Y(0), X(1), Y(1), black);
  cv.line(X(0), Y(1), X(1), Y(1), black);
  cv.text(left, 14, o.title, black, 3);
  cv.text(X(0.5) - Canvas.textWidth(o.xLabel) / 2, Y(0) + 30, o.xLabel, black);
  cv.text(8, top - 18, o.yLabel, black);
  o.series.forEach((s, i) => {
    const c = s.color ?? PALETTE[i % PALETTE.length];
    for (let k = 1; k < s.x.length; k++) cv.line(X(s.x[k - 1]), Y(s.y[k - 1]), X(s.x[k]), Y(s.y[k]), c, s.width ?? 1, s.dashed);
  });
  const rows = o.legendRows ?? 24;
  const lx = X(1) + 20;
  const shown = o.series.filter((s) => s.label !== '');
  shown.slice(0, rows).forEach((s, k) => {
    const c = s.color ?? PALETTE[o.series.indexOf(s) % PALETTE.length];
    const y = top + k * 20;
    cv.line(lx, y + 5, lx + 20, y + 5, c, Math.max(2, s.width ?? 1));
    cv.text(lx + 28, y, s.label.slice(0, 28), black);
  });
  if (shown.length > rows) cv.text(lx + 28, top + rows * 20, `+${shown.length - rows} MORE`, black);
  return PNG.sync.write(cv.png);
}

export async function writePlot(file: string, o: PlotOptions): Promise<void> {
  await writeFile(file, renderPlot(o));
}
