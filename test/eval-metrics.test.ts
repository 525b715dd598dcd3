// src/eval metrics and protocols against scikit-learn 1.2 (tools/fixtures-eval.py, committed).
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { close, compareResult, svgCurves, svgProblems } from './eval-helpers.js';
import {
  accuracy,
  argmax,
  softmaxRows,
  aucSummary,
  auprc,
  classGroups,
  evaluate,
  f1,
  argmaxOneHot,
  mapPixelToImage,
  matrix,
  percentile,
  pointingGame,
  pointingHit,
  precisionRecallCurve,
  readLabels,
  readScoreCsv,
  plotSvg,
  prSvg,
  rocCurve,
  rocSvg,
  column,
  rocAuc,
  EvalInputError,
  type LabelSet,
  type ProtocolName,
} from '../src/eval/index.js';

const dir = join(import.meta.dirname, 'fixtures', 'eval');

interface Case {
  name: string;
  labels: number[][];
  scores: number[][];
  expected: Record<string, any>;
}
const fx = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8')) as {
  cases: Case[];
  percentiles: { values: number[]; p65: number; groups: number[][] }[];
};

const toMatrix = (m: number[][]) => matrix(m.length, m[0].length, m.flat());

for (const c of fx.cases) {
  test(`metrics match sklearn: ${c.name}`, (t) => {
    const y = toMatrix(c.labels);
    const s = toMatrix(c.scores);
    const e = c.expected;
    const r = aucSummary(y, s);
    e.auroc.forEach((v: number | null, j: number) => close(t, r.auroc[j], v, `auroc[${j}]`));
    e.auprc.forEach((v: number | null, j: number) => close(t, r.auprc[j], v, `auprc[${j}]`));
    close(t, r.macroAuroc, e.macro_auroc, 'macro auroc');
    close(t, r.weightedAuroc, e.weighted_auroc, 'weighted auroc');
    close(t, r.microAuroc, e.micro_auroc, 'micro auroc');
    close(t, r.microAuprc, e.auprc_micro, 'micro auprc');
    close(t, r.macroAuprc, e.auprc_macro, 'macro auprc');
    t.deepEqual(r.singleClass, e.single_class);
    if (e.pr_curve_col0) {
      const col0y = c.labels.map((r) => r[0]);
      const col0s = c.scores.map((r) => r[0]);
      const pr = precisionRecallCurve(col0y, col0s);
      t.is(pr.precision.length, e.pr_curve_col0.precision.length);
      pr.precision.forEach((v, k) => close(t, v, e.pr_curve_col0.precision[k], `precision[${k}]`));
      pr.recall.forEach((v, k) => close(t, v, e.pr_curve_col0.recall[k], `recall[${k}]`));
      pr.thresholds.forEach((v, k) => close(t, v, e.pr_curve_col0.thresholds[k], `threshold[${k}]`));
    }
    if (e.groups) {
      const g = classGroups(r.positives);
      close(t, g.headThreshold, e.groups.head_threshold, 'head threshold');
    }
    if (e.accuracy) {
      const p = softmaxRows(s);
      const n = y.rows;
      const C = y.cols;
      const yArg = Array.from({ length: n }, (_, i) => argmax(y.data, i * C, C));
      const pArg = Array.from({ length: n }, (_, i) => argmax(p.data, i * C, C));
      close(t, accuracy(yArg, pArg), e.accuracy.overall, 'accuracy');
    }
    if (e.f1) {
      const f = f1(argmaxOneHot(s), y);
      close(t, f.micro, e.f1.micro, 'f1 micro');
      close(t, f.macro, e.f1.macro, 'f1 macro');
      close(t, f.weighted, e.f1.weighted, 'f1 weighted');
      e.f1.per_class.forEach((v: number, j: number) => close(t, f.perClass[j], v, `f1[${j}]`));
    }
  });
}

test('single-class columns: NaN here, sklearn raises (AUROC) or degenerates (AUPRC 0.5 / 1)', (t) => {
  const c = fx.cases.find((x) => x.name === 'single_class')!;
  const raw = c.expected.sklearn_auprc_raw as number[];
  t.is(raw[1], 0.5); // all-negative column: sklearn's curve gives 0.5
  t.is(raw[3], 1); // all-positive column
  t.true(Number.isNaN(rocAuc([0, 0, 0], [1, 2, 3])));
  t.true(Number.isNaN(auprc([1, 1], [1, 2])));
});

test('ties count one half (Mann-Whitney) and a constant score gives 0.5', (t) => {
  t.is(rocAuc([0, 1], [0.5, 0.5]), 0.5);
  t.is(rocAuc([0, 0, 1, 1], [0.1, 0.4, 0.4, 0.8]), 0.875);
  t.throws(() => rocAuc([0, 2], [1, 2]), { instanceOf: RangeError });
  t.throws(() => rocAuc([0, 1], [1, NaN]), { instanceOf: RangeError });
});

test('percentile (numpy linear) and head/medium/tail groups match numpy', (t) => {
  for (const p of fx.percentiles) {
    t.true(Math.abs(percentile(p.values, 65) - p.p65) < 1e-12, `p65 of ${p.values}`);
    const g = classGroups(p.values);
    t.deepEqual([g.head, g.medium, g.tail], p.groups, `groups of ${p.values}`);
  }
});

// ---- protocols on the mini data sets -------------------------------------------------------

const files: Record<ProtocolName, string> = {
  openi: 'openi/custom.csv',
  padchest: 'padchest/manual_image.json',
  chestxray14: 'chestxray14/test_list.txt',
  chexpert5: 'chexpert5/test_labels.csv',
  chestxdet10: 'chestxdet10/test.json',
  chexpert5x200: 'chexpert5x200/chexpert_5x200.csv',
};

for (const [p, f] of Object.entries(files) as [ProtocolName, string][]) {
  test(`${p}: label file read as the original and metrics equal sklearn`, (t) => {
    const labelFile = join(dir, f);
    const set = readLabels(p, readFileSync(labelFile, 'utf8'), labelFile);
    const scoreFile = join(dir, p, 'scores.csv');
    const table = readScoreCsv(readFileSync(scoreFile, 'utf8'), scoreFile);
    const ev = evaluate(set, table, labelFile);
    compareResult(t, ev.result, JSON.parse(readFileSync(join(dir, p, 'expected.json'), 'utf8')));
  });
}

test('Open-I label rules: substring with synonyms, case-sensitive, empty -> none', (t) => {
  const csv =
    ',uid,file_name,labels_automatic\n' +
    '0,a,a.png,calcified granuloma\n' +
    '0,b,b.png,atelectases|infiltrate\n' +
    '0,c,c.png,\n' +
    '0,d,d.png,Cardiomegaly\n' +
    '0,e,e.png,pleural thickening\n';
  const s = readLabels('openi', csv, 'custom.csv');
  const row = (i: number) => s.classes.filter((_, j) => s.labels[i * 18 + j] === 1);
  t.deepEqual(row(0), ['Calcified Granuloma', 'Granuloma']);
  t.deepEqual(row(1), ['Atelectasis', 'Infiltration']);
  t.deepEqual(row(2), []);
  t.deepEqual(row(3), []);
  t.deepEqual(row(4), ['Pleural_Thickening']);
  t.deepEqual(s.ids, ['a.png', 'b.png', 'c.png', 'd.png', 'e.png']);
});

test('PadChest classes are the sorted labels without normal', (t) => {
  const s = readLabels('padchest', '{"x.png": ["normal"], "y.png": ["b", "COPD signs", "a"], "z.png": []}', 'm.json');
  t.deepEqual(s.classes, ['COPD signs', 'a', 'b']);
  t.deepEqual(Array.from(s.labels), [0, 0, 0, 1, 1, 1, 0, 0, 0]);
});

test('bad input: errors name the file and row; bad rows are skipped with warnings', (t) => {
  t.throws(() => readLabels('padchest', '{"a": [', 'manual_image.json'), {
    instanceOf: EvalInputError,
    message: /manual_image\.json: malformed JSON/,
  });
  t.throws(() => readLabels('chestxray14', 'a.png 0 1\n', 'test_list.txt'), {
    message: /test_list\.txt: line 1 has 3 fields/,
  });
  t.throws(() => readLabels('openi', 'uid,x\n1,2\n', 'custom.csv'), {
    message: /custom\.csv: no 'labels_automatic' column/,
  });
  t.throws(() => readLabels('chexpert5', 'Path,Atelectasis\na,1\n', 't.csv'), {
    message: /t\.csv: missing label column\(s\) 'Cardiomegaly'/,
  });
  t.throws(() => readLabels('openi', ',uid,labels_automatic\n0,"a\n', 'c.csv'), {
    message: /c\.csv: unterminated quoted field/,
  });
  const s = readLabels(
    'chexpert5',
    'Path,Atelectasis,Cardiomegaly,Consolidation,Edema,Pleural Effusion\na,1,0,0,0,0\nb,1,-1,0,0,0\nc,0,1,1,1,1\n',
    't.csv',
  );
  t.is(s.rows, 2);
  t.regex(s.warnings[0], /t\.csv: record 3, column 'Cardiomegaly': '-1' is not 0 or 1, row skipped/);
  const sc = readScoreCsv('Path,a\nx,1\ny,oops\n', 's.csv');
  t.is(sc.scores.rows, 1);
  t.regex(sc.warnings[0], /s\.csv: record 3, column 'a': 'oops' is not a number/);
  // label rows that do not match the images at all
  const set = readLabels(
    'chexpert5',
    'Path,Atelectasis,Cardiomegaly,Consolidation,Edema,Pleural Effusion\na.png,1,0,0,0,0\nb.png,0,1,0,0,0\n',
    'l.csv',
  );
  const table = readScoreCsv('Path,A,B,C,D,E\nq.png,1,2,3,4,5\n', 's.csv');
  t.throws(() => evaluate(set, table, 'l.csv'), { message: /l\.csv does not match s\.csv/ });
  const wrongCols = readScoreCsv('Path,A,B\na.png,1,2\n', 's.csv');
  t.throws(() => evaluate(set, wrongCols, 'l.csv'), { message: /s\.csv has 2 score columns but .* define 5 classes/ });
  const positional = readScoreCsv('A,B,C,D,E\n1,2,3,4,5\n', 'p.csv');
  const noIds = readLabels(
    'chexpert5',
    'Atelectasis,Cardiomegaly,Consolidation,Edema,Pleural Effusion\n1,0,0,0,0\n0,1,0,0,0\n',
    'l.csv',
  );
  t.throws(() => evaluate(noIds, positional, 'l.csv'), {
    message: /l\.csv has 2 label rows but p\.csv lists 1 images/,
  });
});

test('pointing game: the map maximum inside the box, through resize, pad and crop', (t) => {
  // 512 x 256 image -> resized 256 x 128, padded 64 above; the crop starts at (16, 16).
  const g = { width: 512, height: 256 };
  const c = mapPixelToImage(0, 0, 224, g);
  t.is(c.x, (0.5 + 16) * 2);
  t.is(c.y, (0.5 + 16 - 64) * 2);
  const map = new Float32Array(14 * 14);
  map[7 * 14 + 3] = 1; // cell (u 3, v 7): crop centre x 56, y 120 -> image (144, 144)
  t.true(pointingHit(map, 14, [{ x1: 130, y1: 130, x2: 160, y2: 160 }], g));
  t.false(pointingHit(map, 14, [{ x1: 0, y1: 0, x2: 100, y2: 100 }], g));
  const r = pointingGame(
    [
      { classIndex: 0, map, mapSize: 14, boxes: [{ x1: 130, y1: 130, x2: 160, y2: 160 }], geometry: g },
      { classIndex: 1, map, mapSize: 14, boxes: [{ x1: 0, y1: 0, x2: 10, y2: 10 }], geometry: g },
      { classIndex: 1, map, mapSize: 14, boxes: [{ x1: 140, y1: 140, x2: 150, y2: 150 }], geometry: g },
    ],
    3,
  );
  t.is(r.accuracy, 2 / 3);
  t.is(r.perClass[1].rate, 0.5);
  t.is(r.macro, 0.75);
  t.true(Number.isNaN(r.perClass[2].rate));
});

test("plots are well-formed SVG with readable text: the AUROC values and the curves' points", (t) => {
  // 3 classes; the last has a single label value (null AUROC: no curve, no legend row)
  const labels = matrix(6, 3, [1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0]);
  const scores = matrix(
    6,
    3,
    [0.9, 0.1, 0.5, 0.2, 0.8, 0.4, 0.7, 0.6, 0.3, 0.4, 0.3, 0.2, 0.6, 0.5, 0.1, 0.1, 0.9, 0.6],
  );
  const rows = [0, 1, 2, 3, 4, 5];
  const set: LabelSet = {
    protocol: 'openi',
    classes: ['A & B', 'C<D>', 'E'],
    labels: labels.data,
    rows: 6,
    ids: null,
    where: rows.map((r) => `line ${r + 2}`),
    filePos: rows,
    fileRows: 6,
    warnings: [],
  };
  const table = { classes: set.classes, names: null, scores, positions: rows, listLength: 6, file: 's.csv' };
  const ev = evaluate(set, { ...table, warnings: [] });
  const roc = rocSvg(ev);
  t.deepEqual(svgProblems(roc), []);
  t.regex(roc, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  t.true(roc.includes(`macro AUROC ${ev.result.macro_auroc!.toFixed(4)}`));
  t.true(roc.includes(`>A &amp; B ${ev.result.auroc[0]!.toFixed(4)}</text>`), 'legend text, escaped');
  t.true(roc.includes(`>C&lt;D&gt; ${ev.result.auroc[1]!.toFixed(4)}</text>`));
  t.false(roc.includes('>E '), 'no legend row for the class without an AUROC');
  // the curve of class 0: its ROC points mapped onto the 510 px plot square at (70, 50)
  const curves = svgCurves(roc);
  const rc = rocCurve(column(labels, 0), column(scores, 0))!;
  const pts = curves.get(`A &amp; B ${ev.result.auroc[0]!.toFixed(4)}`)!;
  t.is(pts.length, rc.fpr.length);
  pts.forEach(([x, y], k) => {
    t.true(Math.abs(x - (70 + rc.fpr[k] * 510)) <= 0.005, `x ${k}`);
    t.true(Math.abs(y - (50 + (1 - rc.tpr[k]) * 510)) <= 0.005, `y ${k}`);
  });
  t.deepEqual(pts[0], [70, 560]);
  t.deepEqual(pts.at(-1), [580, 50]);
  t.true(curves.has(`micro ${ev.result.micro_auroc!.toFixed(4)}`));
  const pr = prSvg(ev);
  t.deepEqual(svgProblems(pr), []);
  t.true(pr.includes(`macro AUPRC ${ev.result.auprc_macro!.toFixed(4)}`));
  t.true(svgCurves(pr).has('macro (interp.)'));
  const p = precisionRecallCurve(column(labels, 1), column(scores, 1));
  t.is(svgCurves(pr).get(`C&lt;D&gt; ${ev.result.auprc[1]!.toFixed(4)}`)!.length, p.recall.length);
  // the checker itself catches what a browser would refuse
  t.notDeepEqual(svgProblems('<svg><g></svg>'), []);
  t.notDeepEqual(svgProblems('<svg><text>a < b</text></svg>'), []);
  t.notDeepEqual(svgProblems('<svg><text>a & b</text></svg>'), []);
  t.notDeepEqual(svgProblems('<svg x=1></svg>'), []);
  t.notDeepEqual(svgProblems('<svg/><svg/>'), []);
});

test('plotSvg: a legend beyond legendRows is summarised; dashed and coloured series', (t) => {
  const series = Array.from({ length: 5 }, (_, i) => ({ label: `c${i}`, x: [0, 1], y: [0, i / 4] }));
  series.push({ label: 'd', x: [0, 1], y: [1, 0], color: 'black', dashed: true } as (typeof series)[number]);
  const svg = plotSvg({ title: 'T', xLabel: 'x', yLabel: 'y', series, legendRows: 3 });
  t.deepEqual(svgProblems(svg), []);
  t.true(svg.includes('>+3 more</text>'));
  t.is(svgCurves(svg).size, 6);
  t.regex(svg, /data-label="d" fill="none" stroke="black" stroke-width="1.5" stroke-dasharray="6 6"/);
});
