// Evaluation of zero-shot scores with the original protocols (spec 7): protocols.ts reads the
// label files, metrics.ts computes, this module ties score rows to label rows and reports.
import { CsvError, parseCsv } from '../data/csv.js';
import {
  accuracy,
  argmax,
  argmaxOneHot,
  aucSummary,
  classGroups,
  column,
  f1,
  matrix,
  nanMean,
  selectColumns,
  softmaxRows,
  type Matrix,
} from './metrics.js';
import {
  alignRows,
  EvalInputError,
  PADCHEST_QUERY,
  PROTOCOL_INFO,
  type LabelSet,
  type ProtocolName,
} from './protocols.js';
import type { PointingResult } from './pointing.js';

export * from './metrics.js';
export * from './protocols.js';
export * from './pointing.js';
export { plotSvg, prSvg, rocSvg, writePlots, type CurveSource, type PlotOptions, type Series } from './plots.js';

/** Scores to evaluate: one row per scored image, one column per class (prompt order). */
export interface ScoreTable {
  /** Column names as written (prompt classes). */
  classes: string[];
  /** Per row the image name/path, or null when the source has none (the original's CSV). */
  names: string[] | null;
  /** rows x classes. */
  scores: Matrix;
  /** Per row its index in the image list (rows of a CSV, images of a list). */
  positions: number[];
  /** Images listed in all, scored or not. */
  listLength: number;
  /** Names the source in messages. */
  file: string;
  warnings: string[];
}

/**
 * A score CSV: `Path,<class...>` as `carzero classify --format csv` writes, or only class
 * columns as the original script's saved predictions. A row with a value that is not a finite
 * number is skipped with a warning naming the record and column.
 */
export function readScoreCsv(text: string, file = 'scores.csv'): ScoreTable {
  let t;
  try {
    t = parseCsv(text, file);
  } catch (e) {
    if (e instanceof CsvError) throw new EvalInputError(e.message, file);
    throw e;
  }
  const hasPath = t.header.length > 0 && t.header[0].toLowerCase() === 'path';
  const first = hasPath ? 1 : 0;
  const classes = t.header.slice(first);
  if (classes.length === 0) throw new EvalInputError(`${file}: no score columns (header: ${t.header.join(',')})`, file);
  const C = classes.length;
  const data: number[] = [];
  const names: string[] = [];
  const positions: number[] = [];
  const warnings: string[] = [];
  t.rows.forEach((r, k) => {
    const vals = r.slice(first).map((v) => (v.trim() === '' ? NaN : Number(v)));
    const bad = vals.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      warnings.push(
        `${file}: record ${k + 2}, column '${classes[bad]}': '${r[first + bad]}' is not a number, row skipped`,
      );
      return;
    }
    data.push(...vals);
    if (hasPath) names.push(r[0]);
    positions.push(k);
  });
  if (positions.length === 0) throw new EvalInputError(`${file}: no usable score rows`, file);
  return {
    classes,
    names: hasPath ? names : null,
    scores: matrix(positions.length, C, data),
    positions,
    listLength: t.rows.length,
    file,
    warnings,
  };
}

export interface GroupMetrics {
  classes: string[];
  macro_auroc: number | null;
  macro_auprc: number | null;
}

/** The report; NaN values are null (JSON). Arrays are aligned with `classes`. */
export interface EvalResult {
  protocol: ProtocolName;
  title: string;
  classes: string[];
  images: number;
  positives: number[];
  auroc: (number | null)[];
  auprc: (number | null)[];
  macro_auroc: number | null;
  micro_auroc: number | null;
  weighted_auroc: number | null;
  auprc_micro: number | null;
  auprc_macro: number | null;
  groups?: { head_threshold: number; head: GroupMetrics; medium: GroupMetrics; tail: GroupMetrics };
  padchest20?: GroupMetrics;
  tail100?: GroupMetrics;
  query_auroc?: Record<string, number | null>;
  f1?: { per_class: number[]; micro: number; macro: number; weighted: number };
  accuracy?: { overall: number; per_class: number[] };
  pointing?: {
    accuracy: number | null;
    macro: number | null;
    hits: number;
    trials: number;
    per_class: { hits: number; trials: number; rate: number | null }[];
  };
  warnings: string[];
}

const num = (v: number): number | null => (Number.isFinite(v) ? v : null);

function groupOf(idx: number[], classes: string[], auroc: number[], auprc: number[]): GroupMetrics {
  return {
    classes: idx.map((j) => classes[j]),
    macro_auroc: num(nanMean(idx.map((j) => auroc[j]))),
    macro_auprc: num(nanMean(idx.map((j) => auprc[j]))),
  };
}

function norm(s: string): string {
  return s
    .toLowerCase()
    .replace(/[_\s]+/g, ' ')
    .trim();
}

export interface Evaluated {
  result: EvalResult;
  /** The aligned matrices (for plots). */
  labels: Matrix;
  scores: Matrix;
  /** Per evaluated row: its label-set row. */
  labelRows: number[];
}

/** Evaluates a score table against a label set with the protocol's metrics. */
export function evaluate(set: LabelSet, table: ScoreTable, labelFile = 'labels', pointing?: PointingResult): Evaluated {
  const info = PROTOCOL_INFO[set.protocol];
  const C = set.classes.length;
  const warnings = [...set.warnings, ...table.warnings];
  if (table.classes.length !== C)
    throw new EvalInputError(
      `${table.file} has ${table.classes.length} score columns but the ${info.title} labels of ${labelFile} ` +
        `define ${C} classes (score columns are matched to them by position)`,
      table.file,
    );
  const differ = set.classes.map((c, j) => [c, table.classes[j]]).filter(([a, b]) => norm(a) !== norm(b));
  if (differ.length)
    warnings.push(
      `score columns are matched to the classes by position; ${differ.length} differ by name: ${differ
        .slice(0, 5)
        .map(([a, b]) => `'${b}' -> ${a}`)
        .join(', ')}${differ.length > 5 ? ', ...' : ''}`,
    );
  const al = alignRows(set, labelFile, table);
  warnings.push(...al.warnings);
  const n = al.labelRows.length;
  const labels = matrix(n, C);
  const scores = matrix(n, C);
  al.labelRows.forEach((r, i) => {
    labels.data.set(set.labels.subarray(r * C, (r + 1) * C), i * C);
    scores.data.set(table.scores.data.subarray(al.scoreRows[i] * C, (al.scoreRows[i] + 1) * C), i * C);
  });
  const s = aucSummary(labels, scores);
  if (s.singleClass.length)
    warnings.push(
      `${s.singleClass.length} class(es) have a single label value among the ${n} evaluated images ` +
        '(AUROC/AUPRC undefined, reported null, left out of the macro means): ' +
        `${s.singleClass.map((j) => `${set.classes[j]} (${s.positives[j]} positive)`).join(', ')}`,
    );
  const result: EvalResult = {
    protocol: set.protocol,
    title: info.title,
    classes: [...set.classes],
    images: n,
    positives: s.positives,
    auroc: s.auroc.map(num),
    auprc: s.auprc.map(num),
    macro_auroc: num(s.macroAuroc),
    micro_auroc: num(s.microAuroc),
    weighted_auroc: num(s.weightedAuroc),
    auprc_micro: num(s.microAuprc),
    auprc_macro: num(s.macroAuprc),
    warnings,
  };
  if (info.groups) {
    const g = classGroups(s.positives);
    result.groups = {
      head_threshold: g.headThreshold,
      head: groupOf(g.head, set.classes, s.auroc, s.auprc),
      medium: groupOf(g.medium, set.classes, s.auroc, s.auprc),
      tail: groupOf(g.tail, set.classes, s.auroc, s.auprc),
    };
  }
  if (info.padchestExtras) {
    // PadChest20 as the original script computes it: the classes with at most 10 positives.
    const tail = s.positives
      .map((c, j) => [c, j])
      .filter(([c]) => c <= 10)
      .map(([, j]) => j);
    result.padchest20 = groupOf(tail, set.classes, s.auroc, s.auprc);
    // The 100 classes with the fewest positives (stable order on ties).
    const order = s.positives
      .map((c, j) => [c, j])
      .sort((a, b) => a[0] - b[0] || a[1] - b[1])
      .map(([, j]) => j);
    result.tail100 = groupOf(order.slice(0, 100), set.classes, s.auroc, s.auprc);
    result.query_auroc = {};
    for (const q of PADCHEST_QUERY) {
      const j = set.classes.indexOf(q);
      if (j >= 0) result.query_auroc[q] = num(s.auroc[j]);
    }
  }
  if (info.f1) {
    const r = f1(argmaxOneHot(scores), labels);
    result.f1 = { per_class: r.perClass, micro: r.micro, macro: r.macro, weighted: r.weighted };
  }
  if (info.accuracy) {
    const p = softmaxRows(scores);
    const yArg = Array.from({ length: n }, (_, i) => argmax(labels.data, i * C, C));
    const pArg = Array.from({ length: n }, (_, i) => argmax(p.data, i * C, C));
    // Per class: accuracy of the rounded softmax probability (round half to even: 0.5 -> 0).
    const perClass = set.classes.map((_, j) =>
      accuracy(
        column(labels, j),
        Array.from(column(p, j), (v) => (v > 0.5 ? 1 : 0)),
      ),
    );
    result.accuracy = { overall: accuracy(yArg, pArg), per_class: perClass };
  }
  if (pointing)
    result.pointing = {
      accuracy: num(pointing.accuracy),
      macro: num(pointing.macro),
      hits: pointing.hits,
      trials: pointing.trials,
      per_class: pointing.perClass.map((c) => ({ hits: c.hits, trials: c.trials, rate: num(c.rate) })),
    };
  return { result, labels, scores, labelRows: al.labelRows };
}

const f4 = (v: number | null | undefined): string =>
  v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(4);

/** The human-readable table. */
export function formatResult(r: EvalResult): string {
  const w = Math.max(5, ...r.classes.map((c) => c.length));
  const line = (a: string, b: string, c: string, d: string) =>
    `${a.padEnd(w)}  ${b.padStart(9)}  ${c.padStart(7)}  ${d.padStart(7)}`;
  const out: string[] = [
    `${r.title}: ${r.images} images, ${r.classes.length} classes`,
    '',
    line('class', 'positives', 'AUROC', 'AUPRC'),
  ];
  r.classes.forEach((c, j) => out.push(line(c, String(r.positives[j]), f4(r.auroc[j]), f4(r.auprc[j]))));
  out.push(
    '',
    line('macro', '', f4(r.macro_auroc), f4(r.auprc_macro)),
    line('micro', '', f4(r.micro_auroc), f4(r.auprc_micro)),
  );
  out.push(line('weighted', '', f4(r.weighted_auroc), ''));
  if (r.groups) {
    out.push('', `groups by positives (head > ${r.groups.head_threshold.toFixed(2)}, medium > 10, tail <= 10):`);
    for (const k of ['head', 'medium', 'tail'] as const) {
      const g = r.groups[k];
      out.push(line(`${k} (${g.classes.length})`, '', f4(g.macro_auroc), f4(g.macro_auprc)));
    }
  }
  if (r.padchest20)
    out.push(
      line(
        `PadChest20 (${r.padchest20.classes.length})`,
        '',
        f4(r.padchest20.macro_auroc),
        f4(r.padchest20.macro_auprc),
      ),
    );
  if (r.tail100)
    out.push(line(`tail100 (${r.tail100.classes.length})`, '', f4(r.tail100.macro_auroc), f4(r.tail100.macro_auprc)));
  if (r.query_auroc) for (const [q, v] of Object.entries(r.query_auroc)) out.push(line(`${q}`, '', f4(v), ''));
  if (r.f1)
    out.push(
      '',
      `F1 (arg-max one-hot): micro ${f4(r.f1.micro)}, macro ${f4(r.f1.macro)}, weighted ${f4(r.f1.weighted)}`,
    );
  if (r.accuracy) out.push('', `accuracy (arg-max of softmax): ${f4(r.accuracy.overall)}`);
  if (r.pointing)
    out.push(
      '',
      `pointing game: ${f4(r.pointing.accuracy)} (${r.pointing.hits}/${r.pointing.trials}), ` +
        `class mean ${f4(r.pointing.macro)}`,
    );
  return out.map((l) => l.trimEnd()).join('\n') + '\n';
}

export { selectColumns };
