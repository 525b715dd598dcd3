// ROC and precision-recall curves as SVG: a small line-plot writer (axes, grid, tick labels, a
// legend, one polyline per curve) that returns the document as a string. Text stays text, so the
// plots are readable at any size and searchable; nothing beyond string building is needed.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { column, macroPrCurve, precisionRecallCurve, rocCurve, type Matrix } from './metrics.js';

const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
  '#393b79',
  '#ad494a',
  '#637939',
  '#ce6dbd',
  '#6baed6',
  '#fdae6b',
  '#74c476',
  '#9e9ac8',
];

export interface Series {
  label: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  /** Any SVG colour ('#1f77b4', 'black', 'rgb(0,0,0)'); default from the palette. */
  color?: string;
  /** Stroke width in pixels (default 1.5). */
  width?: number;
  dashed?: boolean;
}

export interface PlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Curves in the unit square; a series with label '' is drawn but left out of the legend. */
  series: Series[];
  width?: number;
  height?: number;
  /** Legend rows at most (the rest summarised). Default 24. */
  legendRows?: number;
}

/** Escapes text for SVG element content and attribute values. */
function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const fmt = (v: number): string => String(Math.round(v * 100) / 100);

/**
 * A line plot of curves in the unit square as a standalone SVG document. Each curve is a
 * `<polyline class="curve">` whose `data-label` is its label and whose points are its (x, y)
 * values mapped onto the plot area.
 */
export function plotSvg(o: PlotOptions): string {
  const W = o.width ?? 900;
  const H = o.height ?? 620;
  const left = 70;
  const top = 50;
  const size = Math.min(H - top - 60, W - left - 280);
  const X = (v: number) => fmt(left + v * size);
  const Y = (v: number) => fmt(top + (1 - v) * size);
  const out: string[] = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}"` +
      ' font-family="Helvetica, Arial, sans-serif" font-size="13">',
    `<title>${esc(o.title)}</title>`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
  ];
  const grid: string[] = [];
  const ticks: string[] = [];
  for (let k = 0; k <= 10; k++) {
    const v = k / 10;
    grid.push(`M${X(v)} ${Y(0)}V${Y(1)}M${X(0)} ${Y(v)}H${X(1)}`);
    if (k % 2 === 0) {
      const t = k === 0 ? '0' : k === 10 ? '1' : `0.${k}`;
      ticks.push(`<text x="${X(v)}" y="${fmt(top + size + 18)}" text-anchor="middle">${t}</text>`);
      ticks.push(`<text x="${fmt(left - 8)}" y="${fmt(top + (1 - v) * size + 4)}" text-anchor="end">${t}</text>`);
    }
  }
  out.push(`<path d="${grid.join('')}" stroke="#e1e1e1" stroke-width="1" fill="none"/>`, ...ticks);
  out.push(`<rect x="${left}" y="${top}" width="${size}" height="${size}" stroke="black" fill="none"/>`);
  out.push(`<text x="${left}" y="30" font-size="18" font-weight="bold">${esc(o.title)}</text>`);
  const xMid = fmt(left + size / 2);
  out.push(`<text x="${xMid}" y="${fmt(top + size + 42)}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  const yMid = fmt(top + size / 2);
  out.push(`<text x="20" y="${yMid}" text-anchor="middle" transform="rotate(-90 20 ${yMid})">${esc(o.yLabel)}</text>`);
  const colour = (s: Series, i: number) => s.color ?? PALETTE[i % PALETTE.length];
  const stroke = (s: Series, i: number, width = s.width ?? 1.5) =>
    `stroke="${esc(colour(s, i))}" stroke-width="${width}"${s.dashed ? ' stroke-dasharray="6 6"' : ''}`;
  o.series.forEach((s, i) => {
    const pts: string[] = [];
    for (let k = 0; k < s.x.length; k++) pts.push(`${X(s.x[k])},${Y(s.y[k])}`);
    out.push(
      `<polyline class="curve" data-label="${esc(s.label)}" fill="none" ${stroke(s, i)} stroke-linejoin="round"` +
        ` points="${pts.join(' ')}"/>`,
    );
  });
  const rows = o.legendRows ?? 24;
  const lx = left + size + 20;
  const shown = o.series.map((s, i) => ({ s, i })).filter(({ s }) => s.label !== '');
  shown.slice(0, rows).forEach(({ s, i }, k) => {
    const y = top + k * 20 + 5;
    out.push(`<line x1="${lx}" y1="${y}" x2="${lx + 20}" y2="${y}" ${stroke(s, i, Math.max(2, s.width ?? 1.5))}/>`);
    out.push(`<text x="${lx + 28}" y="${y + 4}">${esc(s.label)}</text>`);
  });
  if (shown.length > rows)
    out.push(`<text x="${lx + 28}" y="${top + rows * 20 + 9}">+${shown.length - rows} more</text>`);
  out.push('</svg>', '');
  return out.join('\n');
}

/** What the curves need of an evaluation: `evaluate()`'s result (Evaluated) fits. */
export interface CurveSource {
  result: {
    title: string;
    classes: string[];
    auroc: (number | null)[];
    auprc: (number | null)[];
    macro_auroc: number | null;
    micro_auroc: number | null;
    auprc_macro: number | null;
    auprc_micro: number | null;
  };
  /** Evaluated rows x classes: labels (0/1) and scores. */
  labels: Matrix;
  scores: Matrix;
}

/** A class name short enough for the legend (the value after it stays visible). */
const short = (c: string): string => (c.length > 28 ? `${c.slice(0, 27)}\u2026` : c);

const f4 = (v: number | null | undefined): string =>
  v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(4);

/**
 * The ROC plot: one curve per class with a defined AUROC (legend: class and AUROC), the micro
 * curve over all (image, class) pairs, the chance diagonal; the title gives the macro AUROC.
 */
export function rocSvg(ev: CurveSource): string {
  const r = ev.result;
  const series: Series[] = [];
  r.classes.forEach((c, j) => {
    if (r.auroc[j] === null) return;
    const rc = rocCurve(column(ev.labels, j), column(ev.scores, j))!;
    series.push({ label: `${short(c)} ${f4(r.auroc[j])}`, x: rc.fpr, y: rc.tpr });
  });
  const micro = rocCurve(ev.labels.data, ev.scores.data);
  if (micro) series.push({ label: `micro ${f4(r.micro_auroc)}`, x: micro.fpr, y: micro.tpr, color: 'black', width: 3 });
  series.push({ label: '', x: [0, 1], y: [0, 1], color: '#969696', dashed: true });
  return plotSvg({
    title: `${r.title} ROC, macro AUROC ${f4(r.macro_auroc)}`,
    xLabel: 'false positive rate',
    yLabel: 'true positive rate',
    series,
  });
}

/**
 * The precision-recall plot: one curve per class (legend: class and AUPRC), the micro curve and
 * the macro curve (per-class precision interpolated on a common recall grid, then averaged).
 */
export function prSvg(ev: CurveSource): string {
  const r = ev.result;
  const series: Series[] = [];
  r.classes.forEach((c, j) => {
    if (r.auroc[j] === null) return;
    const p = precisionRecallCurve(column(ev.labels, j), column(ev.scores, j));
    series.push({ label: `${short(c)} ${f4(r.auprc[j])}`, x: p.recall, y: p.precision });
  });
  if (r.auprc_micro !== null) {
    const p = precisionRecallCurve(ev.labels.data, ev.scores.data);
    series.push({ label: `micro ${f4(r.auprc_micro)}`, x: p.recall, y: p.precision, color: 'black', width: 3 });
  }
  const m = macroPrCurve(ev.labels, ev.scores);
  series.push({ label: 'macro (interp.)', x: m.recall, y: m.precision, color: '#5a5a5a', width: 3, dashed: true });
  return plotSvg({
    title: `${r.title} PR, macro AUPRC ${f4(r.auprc_macro)}`,
    xLabel: 'recall',
    yLabel: 'precision',
    series,
  });
}

/** Writes roc.svg and pr.svg into `dir` (created); returns their paths. */
export async function writePlots(dir: string, ev: CurveSource): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files = [join(dir, 'roc.svg'), join(dir, 'pr.svg')];
  await writeFile(files[0], rocSvg(ev));
  await writeFile(files[1], prSvg(ev));
  return files;
}
