// Evaluation metrics of the original CARZero inference script (spec 7), computed the way
// scikit-learn 1.2 / numpy compute them, in float64:
// - AUROC: sklearn.metrics.roc_auc_score (ties share one threshold, i.e. count one half).
// - AUPRC: the TRAPEZOID area under sklearn's precision_recall_curve,
//   `auc(recall, precision)`; not average precision.
// - micro = all cells pooled into one binary problem; macro = mean over classes.
// - head / medium / tail groups by positive count (numpy percentile, linear).
// - F1 (micro / macro / weighted, zero when undefined, as sklearn's zero_division="warn").
// - accuracy, softmax (scipy.special.softmax), arg-max (first maximum, as numpy).
//
// Single-class columns (all 0 or all 1): sklearn raises for roc_auc_score, so the original
// script would stop there. Here AUROC and AUPRC of such a column are NaN, the column is left out
// of every macro mean (and of the weighted mean) and the evaluation reports a warning naming it.
// Micro values pool all cells and stay defined while the pooled cells hold both classes.

/** A row-major (rows x cols) float64 matrix. */
export interface Matrix {
  rows: number;
  cols: number;
  data: Float64Array;
}

export function matrix(rows: number, cols: number, data?: ArrayLike<number>): Matrix {
  const d = new Float64Array(rows * cols);
  if (data) {
    if (data.length !== rows * cols) throw new RangeError(`matrix: ${data.length} values for ${rows} x ${cols}`);
    d.set(data);
  }
  return { rows, cols, data: d };
}

/** Column j of m as a new array. */
export function column(m: Matrix, j: number): Float64Array {
  const out = new Float64Array(m.rows);
  for (let i = 0; i < m.rows; i++) out[i] = m.data[i * m.cols + j];
  return out;
}

/** The columns `idx` of m, in that order. */
export function selectColumns(m: Matrix, idx: readonly number[]): Matrix {
  const out = matrix(m.rows, idx.length);
  for (let i = 0; i < m.rows; i++)
    for (let k = 0; k < idx.length; k++) out.data[i * idx.length + k] = m.data[i * m.cols + idx[k]];
  return out;
}

interface BinaryCurve {
  /** Cumulative false / true positives at each distinct threshold, scores descending. */
  fps: Float64Array;
  tps: Float64Array;
  thresholds: Float64Array;
}

function checkBinary(y: ArrayLike<number>, s: ArrayLike<number>, what: string): void {
  if (y.length !== s.length) throw new RangeError(`${what}: ${y.length} labels but ${s.length} scores`);
  for (let i = 0; i < y.length; i++) {
    if (y[i] !== 0 && y[i] !== 1) throw new RangeError(`${what}: label ${i} is ${y[i]}, expected 0 or 1`);
    if (!Number.isFinite(s[i])) throw new RangeError(`${what}: score ${i} is ${s[i]}, expected a finite number`);
  }
}

/** sklearn's _binary_clf_curve: stable sort by score descending, one point per distinct score. */
function binaryCurve(y: ArrayLike<number>, s: ArrayLike<number>): BinaryCurve {
  const n = y.length;
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => s[b] - s[a] || a - b);
  const fps: number[] = [];
  const tps: number[] = [];
  const th: number[] = [];
  let tp = 0;
  for (let k = 0; k < n; k++) {
    const i = order[k];
    tp += y[i];
    if (k === n - 1 || s[order[k + 1]] !== s[i]) {
      tps.push(tp);
      fps.push(k + 1 - tp);
      th.push(s[i]);
    }
  }
  return { fps: Float64Array.from(fps), tps: Float64Array.from(tps), thresholds: Float64Array.from(th) };
}

/** sklearn.metrics.auc: trapezoid rule; x must be monotonic (either direction). */
export function trapezoid(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) throw new RangeError(`trapezoid: ${x.length} x values but ${y.length} y values`);
  if (x.length < 2) throw new RangeError('trapezoid: at least 2 points are needed');
  let up = true;
  let down = true;
  for (let i = 1; i < x.length; i++) {
    if (x[i] < x[i - 1]) up = false;
    if (x[i] > x[i - 1]) down = false;
  }
  if (!up && !down) throw new RangeError('trapezoid: x is neither increasing nor decreasing');
  let area = 0;
  for (let i = 1; i < x.length; i++) area += ((x[i] - x[i - 1]) * (y[i] + y[i - 1])) / 2;
  return up ? area : -area;
}

export interface RocCurve {
  fpr: Float64Array;
  tpr: Float64Array;
  thresholds: Float64Array;
}

/** ROC curve with the (0, 0) start point (intermediate collinear points kept). Null for one class. */
export function rocCurve(y: ArrayLike<number>, s: ArrayLike<number>): RocCurve | null {
  checkBinary(y, s, 'rocCurve');
  const c = binaryCurve(y, s);
  const P = c.tps[c.tps.length - 1];
  const N = c.fps[c.fps.length - 1];
  if (!(P > 0) || !(N > 0)) return null;
  const m = c.tps.length + 1;
  const fpr = new Float64Array(m);
  const tpr = new Float64Array(m);
  const thresholds = new Float64Array(m);
  thresholds[0] = Infinity;
  for (let k = 0; k < c.tps.length; k++) {
    fpr[k + 1] = c.fps[k] / N;
    tpr[k + 1] = c.tps[k] / P;
    thresholds[k + 1] = c.thresholds[k];
  }
  return { fpr, tpr, thresholds };
}

/** roc_auc_score of one binary column; NaN when y holds a single class. */
export function rocAuc(y: ArrayLike<number>, s: ArrayLike<number>): number {
  const c = rocCurve(y, s);
  return c ? trapezoid(c.fpr, c.tpr) : NaN;
}

export interface PrCurve {
  /** sklearn order: recall decreasing, ending at (recall 0, precision 1). */
  precision: Float64Array;
  recall: Float64Array;
  thresholds: Float64Array;
}

/**
 * sklearn 1.2's precision_recall_curve. When y has no positive, recall is 1 everywhere (as
 * sklearn, which warns); callers that need the single-class rule use auprc().
 */
export function precisionRecallCurve(y: ArrayLike<number>, s: ArrayLike<number>): PrCurve {
  checkBinary(y, s, 'precisionRecallCurve');
  if (y.length === 0) throw new RangeError('precisionRecallCurve: no samples');
  const c = binaryCurve(y, s);
  const m = c.tps.length;
  const P = c.tps[m - 1];
  const precision = new Float64Array(m + 1);
  const recall = new Float64Array(m + 1);
  const thresholds = new Float64Array(m);
  for (let k = 0; k < m; k++) {
    const j = m - 1 - k; // reversed: recall decreasing
    const ps = c.tps[j] + c.fps[j];
    precision[k] = ps === 0 ? 0 : c.tps[j] / ps;
    recall[k] = P === 0 ? 1 : c.tps[j] / P;
    thresholds[k] = c.thresholds[j];
  }
  precision[m] = 1;
  recall[m] = 0;
  return { precision, recall, thresholds };
}

/** auc(recall, precision) of one binary column: the trapezoid AUPRC; NaN for a single class. */
export function auprc(y: ArrayLike<number>, s: ArrayLike<number>): number {
  checkBinary(y, s, 'auprc');
  let pos = 0;
  for (let i = 0; i < y.length; i++) pos += y[i];
  if (pos === 0 || pos === y.length) return NaN;
  const c = precisionRecallCurve(y, s);
  return trapezoid(c.recall, c.precision);
}

/** Mean of the finite values (NaN when there are none). */
export function nanMean(values: ArrayLike<number>): number {
  let s = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++)
    if (Number.isFinite(values[i])) {
      s += values[i];
      n++;
    }
  return n ? s / n : NaN;
}

/** numpy.percentile(values, p) with the default linear method. */
export function percentile(values: ArrayLike<number>, p: number): number {
  const v = Float64Array.from(values).sort();
  const n = v.length;
  if (n === 0) return NaN;
  const q = p / 100;
  const virt = (n - 1) * q;
  const lo = Math.floor(virt);
  const hi = Math.min(lo + 1, n - 1);
  const g = virt - lo;
  const a = v[Math.min(lo, n - 1)];
  const b = v[hi];
  const d = b - a;
  // numpy's _lerp: a + d * g, and b - d * (1 - g) where g >= 0.5.
  return g >= 0.5 ? b - d * (1 - g) : a + d * g;
}

export interface Groups {
  head: number[];
  medium: number[];
  tail: number[];
  /** The 65th percentile of the positive counts. */
  headThreshold: number;
}

/** obtaion_LT_multi_label_distribution: head > p65, medium in (10, p65], tail <= 10. */
export function classGroups(counts: ArrayLike<number>, tailMax = 10): Groups {
  const thr = percentile(counts, 65);
  const g: Groups = { head: [], medium: [], tail: [], headThreshold: thr };
  for (let j = 0; j < counts.length; j++) {
    const c = counts[j];
    if (c > thr) g.head.push(j);
    if (c <= thr && c > tailMax) g.medium.push(j);
    if (c <= tailMax) g.tail.push(j);
  }
  return g;
}

/** Positives per column. */
export function positives(labels: Matrix): Float64Array {
  const out = new Float64Array(labels.cols);
  for (let i = 0; i < labels.rows; i++)
    for (let j = 0; j < labels.cols; j++) out[j] += labels.data[i * labels.cols + j];
  return out;
}

/** Index of the first maximum (numpy argmax). */
export function argmax(v: ArrayLike<number>, from = 0, len = v.length - from): number {
  let best = 0;
  for (let k = 1; k < len; k++) if (v[from + k] > v[from + best]) best = k;
  return best;
}

/** scipy.special.softmax(m, axis=1). */
export function softmaxRows(m: Matrix): Matrix {
  const out = matrix(m.rows, m.cols);
  for (let i = 0; i < m.rows; i++) {
    const o = i * m.cols;
    let mx = -Infinity;
    for (let j = 0; j < m.cols; j++) mx = Math.max(mx, m.data[o + j]);
    let s = 0;
    for (let j = 0; j < m.cols; j++) s += out.data[o + j] = Math.exp(m.data[o + j] - mx);
    for (let j = 0; j < m.cols; j++) out.data[o + j] /= s;
  }
  return out;
}

/** The arg-max one-hot of each row (ties: the first). */
export function argmaxOneHot(m: Matrix): Matrix {
  const out = matrix(m.rows, m.cols);
  for (let i = 0; i < m.rows; i++) out.data[i * m.cols + argmax(m.data, i * m.cols, m.cols)] = 1;
  return out;
}

/** accuracy_score: the fraction of equal entries. */
export function accuracy(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`accuracy: ${a.length} vs ${b.length} values`);
  let k = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) k++;
  return a.length ? k / a.length : NaN;
}

export interface F1Result {
  perClass: number[];
  micro: number;
  macro: number;
  weighted: number;
}

function f1Of(tp: number, fp: number, fn: number): number {
  const p = tp + fp === 0 ? 0 : tp / (tp + fp);
  const r = tp + fn === 0 ? 0 : tp / (tp + fn);
  return p + r === 0 ? 0 : (2 * p * r) / (p + r);
}

/** sklearn f1_score on multilabel indicator matrices (undefined values count 0). */
export function f1(pred: Matrix, labels: Matrix): F1Result {
  if (pred.rows !== labels.rows || pred.cols !== labels.cols)
    throw new RangeError('f1: prediction and label shapes differ');
  const C = labels.cols;
  const tp = new Float64Array(C);
  const fp = new Float64Array(C);
  const fn = new Float64Array(C);
  for (let i = 0; i < labels.rows; i++)
    for (let j = 0; j < C; j++) {
      const y = labels.data[i * C + j] === 1;
      const p = pred.data[i * C + j] === 1;
      if (y && p) tp[j]++;
      else if (p) fp[j]++;
      else if (y) fn[j]++;
    }
  const perClass = Array.from({ length: C }, (_, j) => f1Of(tp[j], fp[j], fn[j]));
  const sum = (a: Float64Array) => a.reduce((x, y) => x + y, 0);
  const support = Array.from({ length: C }, (_, j) => tp[j] + fn[j]);
  const totalSupport = support.reduce((x, y) => x + y, 0);
  return {
    perClass,
    micro: f1Of(sum(tp), sum(fp), sum(fn)),
    macro: C ? perClass.reduce((x, y) => x + y, 0) / C : NaN,
    weighted: totalSupport === 0 ? 0 : perClass.reduce((x, f, j) => x + f * support[j], 0) / totalSupport,
  };
}

export interface AucSummary {
  /** Per class, NaN for single-class columns. */
  auroc: number[];
  auprc: number[];
  positives: number[];
  macroAuroc: number;
  microAuroc: number;
  weightedAuroc: number;
  macroAuprc: number;
  microAuprc: number;
  /** Columns holding a single class (left out of the macro and weighted means). */
  singleClass: number[];
}

/** Per-class, macro, micro and weighted AUROC / AUPRC of a label and a score matrix. */
export function aucSummary(labels: Matrix, scores: Matrix): AucSummary {
  if (labels.rows !== scores.rows || labels.cols !== scores.cols)
    throw new RangeError(
      `aucSummary: labels are ${labels.rows} x ${labels.cols} but scores are ${scores.rows} x ${scores.cols}`,
    );
  const pos = Array.from(positives(labels));
  const auroc: number[] = [];
  const ap: number[] = [];
  const single: number[] = [];
  let wSum = 0;
  let w = 0;
  for (let j = 0; j < labels.cols; j++) {
    const y = column(labels, j);
    const s = column(scores, j);
    const a = rocAuc(y, s);
    auroc.push(a);
    ap.push(auprc(y, s));
    if (Number.isNaN(a)) single.push(j);
    else {
      wSum += a * pos[j];
      w += pos[j];
    }
  }
  const pooledY = labels.data;
  const pooledS = scores.data;
  return {
    auroc,
    auprc: ap,
    positives: pos,
    macroAuroc: nanMean(auroc),
    microAuroc: pooledY.length ? rocAuc(pooledY, pooledS) : NaN,
    weightedAuroc: w > 0 ? wSum / w : NaN,
    macroAuprc: nanMean(ap),
    microAuprc: pooledY.length ? auprc(pooledY, pooledS) : NaN,
    singleClass: single,
  };
}

/**
 * Macro-average PR curve as the original's save_macro_auprc_plot: each class's precision
 * interpolated at 100 recall points in [0, 1] (numpy.interp on the reversed curve), averaged.
 */
export function macroPrCurve(
  labels: Matrix,
  scores: Matrix,
  points = 100,
): { recall: Float64Array; precision: Float64Array } {
  const recall = Float64Array.from({ length: points }, (_, k) => k / (points - 1));
  const precision = new Float64Array(points);
  let n = 0;
  for (let j = 0; j < labels.cols; j++) {
    const y = column(labels, j);
    if (Number.isNaN(auprc(y, column(scores, j)))) continue;
    const c = precisionRecallCurve(y, column(scores, j));
    const xs = Array.from(c.recall).reverse();
    const ys = Array.from(c.precision).reverse();
    for (let k = 0; k < points; k++) precision[k] += interp(recall[k], xs, ys);
    n++;
  }
  if (n) for (let k = 0; k < points; k++) precision[k] /= n;
  return { recall, precision };
}

/** numpy.interp for increasing xp (equal neighbours: the last one wins, as numpy). */
export function interp(x: number, xp: readonly number[], fp: readonly number[]): number {
  const n = xp.length;
  if (x <= xp[0]) return x < xp[0] ? fp[0] : fp[lastIndexOf(xp, xp[0])];
  if (x >= xp[n - 1]) return fp[n - 1];
  let lo = 0;
  let hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xp[mid] <= x) lo = mid;
    else hi = mid;
  }
  if (xp[lo] === x) return fp[lo];
  return fp[lo] + ((x - xp[lo]) * (fp[hi] - fp[lo])) / (xp[hi] - xp[lo]);
}

function lastIndexOf(a: readonly number[], v: number): number {
  let k = 0;
  while (k + 1 < a.length && a[k + 1] === v) k++;
  return k;
}
