// The six evaluation protocols of the original inference script (spec 7): how each data set's
// label file is read, which classes it defines (score columns are matched to them BY POSITION,
// as the original matches its prediction CSV), how label rows are tied to images, and which
// metrics the original reports.
//
// Label files, as the original reads them:
// - openi: the label CSV (custom.csv: `,uid,file_name,labels_major,labels_automatic`), one row
//   per listed image. Class j is positive when the row's `labels_automatic` text (empty -> "-1")
//   contains the lower-cased class name or a synonym (plain, case-sensitive substring test on the
//   text as written). 18 classes; No_Finding is not evaluated.
// - padchest: a JSON object {image id: [label, ...]}, rows in key order. Classes: the sorted
//   (code point order, like Python's sorted) set of all labels, without "normal".
// - chestxray14: test_list.txt: `<path> <14 x 0/1>` per line, separated by spaces, no header.
// - chexpert5: a CSV with the columns Atelectasis, Cardiomegaly, Consolidation, Edema,
//   Pleural Effusion (0/1), read by name.
// - chestxdet10: a JSON array [{file_name, syms: [class...], boxes: [[x1,y1,x2,y2]...]}]; syms
//   outside the 10 classes are ignored with a warning (as MultiLabelBinarizer does).
// - chexpert5x200: a CSV with the same 5 columns as chexpert5 (one-hot rows).
//
// Row identifiers (for matching label rows to scored images): a `Path`/`path`/`file_name`/
// `filename` column of a label CSV, the path of a test_list.txt line, a PadChest key, a
// ChestXDet10 `file_name`. Without one, label rows are matched to images by position.
import { CsvError, parseCsv } from '../data/csv.js';
import { CarzeroError } from '../errors.js';

export type ProtocolName = 'openi' | 'padchest' | 'chestxray14' | 'chexpert5' | 'chestxdet10' | 'chexpert5x200';
export const PROTOCOLS: readonly ProtocolName[] = [
  'openi',
  'padchest',
  'chestxray14',
  'chexpert5',
  'chestxdet10',
  'chexpert5x200',
];

export class EvalInputError extends CarzeroError {
  constructor(
    message: string,
    readonly file?: string,
  ) {
    super(message, 'CZ_ERR_FORMAT');
    this.name = 'EvalInputError';
  }
}

/** A ground-truth box in the original image's pixels (ChestXDet10). */
export interface Box {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

export interface LabelSet {
  protocol: ProtocolName;
  classes: string[];
  /** rows x classes, 0/1, row-major. */
  labels: Float64Array;
  rows: number;
  /** Per row an image identifier, or null when the file has none (positional matching). */
  ids: string[] | null;
  /** Per row where it came from, for messages ("line 12", "record 5", "key 'x'"). */
  where: string[];
  /** Per row its position among the file's data rows (rows skipped for bad values leave gaps). */
  filePos: number[];
  /** Data rows in the file, usable or not (positional matching needs as many images). */
  fileRows: number;
  /** ChestXDet10: per row the boxes of each class index. */
  boxes?: Map<number, Box[]>[];
  warnings: string[];
}

export const OPENI_CLASSES = [
  'Atelectasis',
  'Cardiomegaly',
  'Effusion',
  'Infiltration',
  'Mass',
  'Nodule',
  'Pneumonia',
  'Pneumothorax',
  'Edema',
  'Emphysema',
  'Fibrosis',
  'Pleural_Thickening',
  'Hernia',
  'Fracture',
  'Opacity',
  'Lesion',
  'Calcified Granuloma',
  'Granuloma',
];
export const OPENI_SYNONYMS: Record<string, string[]> = {
  Pleural_Thickening: ['pleural thickening'],
  Infiltration: ['infiltrate'],
  Atelectasis: ['atelectases'],
};
export const CHESTXRAY14_CLASSES = [
  'Atelectasis',
  'Cardiomegaly',
  'Effusion',
  'Infiltration',
  'Lung Mass',
  'Lung Nodule',
  'Pneumonia',
  'Pneumothorax',
  'Consolidation',
  'Edema',
  'Emphysema',
  'Fibrosis',
  'Pleural Thickening',
  'Hernia',
];
export const CHEXPERT5_CLASSES = ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Pleural Effusion'];
export const CHESTXDET10_CLASSES = [
  'Atelectasis',
  'Calcification',
  'Consolidation',
  'Effusion',
  'Emphysema',
  'Fibrosis',
  'Fracture',
  'Mass',
  'Nodule',
  'Pneumothorax',
];
/** PadChest classes whose AUROC the original prints separately. */
export const PADCHEST_QUERY = ['atelectasis', 'cardiomegaly', 'consolidation', 'pulmonary edema', 'pneumonia'];

export interface ProtocolInfo {
  name: ProtocolName;
  title: string;
  /** head / medium / tail group macro AUROC (and AUPRC). */
  groups: boolean;
  /** F1 on the arg-max one-hot. */
  f1: boolean;
  /** Accuracy on the arg-max of a softmax. */
  accuracy: boolean;
  /** PadChest20 / top-100-tail / query classes. */
  padchestExtras: boolean;
  /** Boxes for the pointing game. */
  boxes: boolean;
}

export const PROTOCOL_INFO: Record<ProtocolName, ProtocolInfo> = {
  openi: {
    name: 'openi',
    title: 'Open-I',
    groups: true,
    f1: false,
    accuracy: false,
    padchestExtras: false,
    boxes: false,
  },
  padchest: {
    name: 'padchest',
    title: 'PadChest',
    groups: true,
    f1: false,
    accuracy: false,
    padchestExtras: true,
    boxes: false,
  },
  chestxray14: {
    name: 'chestxray14',
    title: 'ChestXray14',
    groups: false,
    f1: false,
    accuracy: false,
    padchestExtras: false,
    boxes: false,
  },
  chexpert5: {
    name: 'chexpert5',
    title: 'CheXpert-5',
    groups: false,
    f1: false,
    accuracy: false,
    padchestExtras: false,
    boxes: false,
  },
  chestxdet10: {
    name: 'chestxdet10',
    title: 'ChestXDet10',
    groups: false,
    f1: true,
    accuracy: false,
    padchestExtras: false,
    boxes: true,
  },
  chexpert5x200: {
    name: 'chexpert5x200',
    title: 'CheXpert 5x200',
    groups: false,
    f1: false,
    accuracy: true,
    padchestExtras: false,
    boxes: false,
  },
};

const ID_COLUMNS = ['Path', 'path', 'file_name', 'filename', 'File Name', 'Image Index', 'ImageID', 'image'];

function idColumn(header: string[]): number {
  for (const name of ID_COLUMNS) {
    const k = header.indexOf(name);
    if (k >= 0) return k;
  }
  return -1;
}

function csvTable(text: string, file: string) {
  try {
    return parseCsv(text, file);
  } catch (e) {
    if (e instanceof CsvError) throw new EvalInputError(e.message, file);
    throw e;
  }
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (e) {
    throw new EvalInputError(`${file}: malformed JSON (${(e as Error).message})`, file);
  }
}

/** Python's sorted() order on str: code points. */
function codePointCompare(a: string, b: string): number {
  const A = Array.from(a);
  const B = Array.from(b);
  for (let i = 0; i < Math.min(A.length, B.length); i++) {
    const d = A[i].codePointAt(0)! - B[i].codePointAt(0)!;
    if (d) return d;
  }
  return A.length - B.length;
}

function finish(
  protocol: ProtocolName,
  file: string,
  classes: string[],
  rows: number[][],
  ids: string[] | null,
  where: string[],
  warnings: string[],
  filePos: number[],
  fileRows: number,
): LabelSet {
  if (rows.length === 0) throw new EvalInputError(`${file}: no usable label rows`, file);
  const C = classes.length;
  const labels = new Float64Array(rows.length * C);
  rows.forEach((r, i) => labels.set(r, i * C));
  return { protocol, classes, labels, rows: rows.length, ids, where, warnings, filePos, fileRows };
}

function readOpenI(text: string, file: string): LabelSet {
  const t = csvTable(text, file);
  const col = t.header.indexOf('labels_automatic');
  if (col < 0)
    throw new EvalInputError(`${file}: no 'labels_automatic' column (columns: ${t.header.join(', ')})`, file);
  const idc = idColumn(t.header);
  const rows = t.rows.map((r) => {
    const s = r[col] === '' ? '-1' : r[col];
    return OPENI_CLASSES.map((c) =>
      s.includes(c.toLowerCase()) || (OPENI_SYNONYMS[c] ?? []).some((y) => s.includes(y)) ? 1 : 0,
    );
  });
  const where = t.rows.map((_, k) => `record ${k + 2}`);
  return finish(
    'openi',
    file,
    [...OPENI_CLASSES],
    rows,
    idc >= 0 ? t.rows.map((r) => r[idc]) : null,
    where,
    [],
    t.rows.map((_, k) => k),
    t.rows.length,
  );
}

function readPadChest(text: string, file: string): LabelSet {
  const json = parseJson(text, file);
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new EvalInputError(
      `${file}: expected a JSON object {image: [labels]}, got ${Array.isArray(json) ? 'an array' : typeof json}`,
      file,
    );
  const obj = json as Record<string, unknown>;
  const keys = Object.keys(obj); // PadChest ids are file names, never integer-like keys
  const lists: string[][] = [];
  const warnings: string[] = [];
  const ids: string[] = [];
  const filePos: number[] = [];
  for (const [pos, k] of keys.entries()) {
    const v = obj[k];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
      warnings.push(`${file}: key '${k}': expected a list of label strings, row skipped`);
      continue;
    }
    lists.push(v as string[]);
    ids.push(k);
    filePos.push(pos);
  }
  const all = [...new Set(lists.flat())].sort(codePointCompare);
  const classes = all.filter((c) => c !== 'normal');
  if (classes.length === all.length) warnings.push(`${file}: no 'normal' label (the original removes that class)`);
  if (classes.length === 0) throw new EvalInputError(`${file}: no labels other than 'normal'`, file);
  const index = new Map(classes.map((c, j) => [c, j]));
  const rows = lists.map((l) => {
    const r = new Array<number>(classes.length).fill(0);
    for (const x of l) if (index.has(x)) r[index.get(x)!] = 1;
    return r;
  });
  return finish(
    'padchest',
    file,
    classes,
    rows,
    ids,
    ids.map((k) => `key '${k}'`),
    warnings,
    filePos,
    keys.length,
  );
}

function parse01(v: string): number | null {
  const s = v.trim();
  if (s === '') return null;
  const n = Number(s);
  return n === 0 || n === 1 ? n : null;
}

function readChestXray14(text: string, file: string): LabelSet {
  const rows: number[][] = [];
  const ids: string[] = [];
  const where: string[] = [];
  const warnings: string[] = [];
  const filePos: number[] = [];
  let n = 0;
  const lines = text.replace(/^\ufeff/, '').split(/\r?\n/);
  lines.forEach((line, k) => {
    if (line.trim() === '') return;
    const pos = n++;
    const f = line.trim().split(/\s+/);
    if (f.length !== 15)
      throw new EvalInputError(`${file}: line ${k + 1} has ${f.length} fields, expected 15 (path and 14 labels)`, file);
    const r = f.slice(1).map(parse01);
    const bad = r.findIndex((x) => x === null);
    if (bad >= 0) {
      warnings.push(
        `${file}: line ${k + 1}, column ${bad + 2} (${CHESTXRAY14_CLASSES[bad]}): ` +
          `'${f[bad + 1]}' is not 0 or 1, row skipped`,
      );
      return;
    }
    rows.push(r as number[]);
    ids.push(f[0]);
    where.push(`line ${k + 1}`);
    filePos.push(pos);
  });
  return finish('chestxray14', file, [...CHESTXRAY14_CLASSES], rows, ids, where, warnings, filePos, n);
}

function readNamedColumns(protocol: ProtocolName, text: string, file: string, classes: string[]): LabelSet {
  const t = csvTable(text, file);
  const cols = classes.map((c) => t.header.indexOf(c));
  const missing = classes.filter((_, j) => cols[j] < 0);
  if (missing.length)
    throw new EvalInputError(
      `${file}: missing label column(s) ${missing.map((m) => `'${m}'`).join(', ')} (columns: ${t.header.join(', ')})`,
      file,
    );
  const idc = idColumn(t.header);
  const rows: number[][] = [];
  const ids: string[] = [];
  const where: string[] = [];
  const warnings: string[] = [];
  const filePos: number[] = [];
  t.rows.forEach((rec, k) => {
    const r = cols.map((c) => parse01(rec[c]));
    const bad = r.findIndex((x) => x === null);
    if (bad >= 0) {
      warnings.push(
        `${file}: record ${k + 2}, column '${classes[bad]}': '${rec[cols[bad]]}' is not 0 or 1, row skipped`,
      );
      return;
    }
    rows.push(r as number[]);
    if (idc >= 0) ids.push(rec[idc]);
    where.push(`record ${k + 2}`);
    filePos.push(k);
  });
  return finish(protocol, file, [...classes], rows, idc >= 0 ? ids : null, where, warnings, filePos, t.rows.length);
}

function readChestXDet10(text: string, file: string): LabelSet {
  const json = parseJson(text, file);
  if (!Array.isArray(json))
    throw new EvalInputError(`${file}: expected a JSON array of {file_name, syms, boxes}`, file);
  const index = new Map(CHESTXDET10_CLASSES.map((c, j) => [c, j]));
  const rows: number[][] = [];
  const ids: string[] = [];
  const where: string[] = [];
  const boxes: Map<number, Box[]>[] = [];
  const warnings: string[] = [];
  const filePos: number[] = [];
  const unknown = new Set<string>();
  json.forEach((e: unknown, k) => {
    const entry = e as { file_name?: unknown; syms?: unknown; boxes?: unknown };
    if (
      typeof e !== 'object' ||
      e === null ||
      typeof entry.file_name !== 'string' ||
      !Array.isArray(entry.syms) ||
      entry.syms.some((s) => typeof s !== 'string')
    ) {
      warnings.push(`${file}: entry ${k}: expected {file_name: string, syms: [string]}, skipped`);
      return;
    }
    const r = new Array<number>(CHESTXDET10_CLASSES.length).fill(0);
    const bx = new Map<number, Box[]>();
    const list = Array.isArray(entry.boxes) ? entry.boxes : [];
    (entry.syms as string[]).forEach((s, m) => {
      const j = index.get(s);
      if (j === undefined) {
        unknown.add(s);
        return;
      }
      r[j] = 1;
      const b = list[m];
      if (Array.isArray(b) && b.length === 4 && b.every((x) => Number.isFinite(x))) {
        const [x1, y1, x2, y2] = b as number[];
        if (!bx.has(j)) bx.set(j, []);
        bx.get(j)!.push({ x1: Math.min(x1, x2), y1: Math.min(y1, y2), x2: Math.max(x1, x2), y2: Math.max(y1, y2) });
      } else if (entry.boxes !== undefined) {
        warnings.push(`${file}: entry ${k} ('${entry.file_name as string}'): box ${m} is not [x1, y1, x2, y2]`);
      }
    });
    rows.push(r);
    ids.push(entry.file_name as string);
    where.push(`entry ${k}`);
    filePos.push(k);
    boxes.push(bx);
  });
  if (unknown.size) warnings.push(`${file}: label(s) outside the 10 classes ignored: ${[...unknown].join(', ')}`);
  const set = finish('chestxdet10', file, [...CHESTXDET10_CLASSES], rows, ids, where, warnings, filePos, json.length);
  set.boxes = boxes;
  return set;
}

/** Reads a label file's text the way the original script reads that data set. */
export function readLabels(protocol: ProtocolName, text: string, file = 'labels'): LabelSet {
  switch (protocol) {
    case 'openi':
      return readOpenI(text, file);
    case 'padchest':
      return readPadChest(text, file);
    case 'chestxray14':
      return readChestXray14(text, file);
    case 'chexpert5':
      return readNamedColumns('chexpert5', text, file, CHEXPERT5_CLASSES);
    case 'chexpert5x200':
      return readNamedColumns('chexpert5x200', text, file, CHEXPERT5_CLASSES);
    case 'chestxdet10':
      return readChestXDet10(text, file);
    default:
      throw new EvalInputError(`unknown protocol '${String(protocol)}' (one of ${PROTOCOLS.join(', ')})`);
  }
}

// ---- matching label rows to scored images -------------------------------------------------

function segments(p: string): string[] {
  return p
    .replace(/\\/g, '/')
    .split('/')
    .filter((s) => s !== '' && s !== '.');
}

/** Number of trailing path segments two paths share. */
function commonSuffix(a: string[], b: string[]): number {
  let k = 0;
  while (k < a.length && k < b.length && a[a.length - 1 - k] === b[b.length - 1 - k]) k++;
  return k;
}

export interface Alignment {
  /** Per kept label row: its index in the label set and the score row it matched. */
  labelRows: number[];
  scoreRows: number[];
  warnings: string[];
}

/**
 * Ties label rows to score rows. With identifiers on both sides: by path, a label id matching
 * the score row whose path ends with it (or which it ends with) segment-wise, the longest shared
 * suffix winning; otherwise by position (score row `positions[k]` = index in the image list).
 */
export function alignRows(
  set: LabelSet,
  labelFile: string,
  score: { names: string[] | null; positions: number[]; listLength: number; file: string },
): Alignment {
  const warnings: string[] = [];
  const labelRows: number[] = [];
  const scoreRows: number[] = [];
  if (set.ids && score.names) {
    const byBase = new Map<string, number[]>();
    const segs = score.names.map(segments);
    segs.forEach((s, i) => {
      const b = s[s.length - 1] ?? '';
      if (!byBase.has(b)) byBase.set(b, []);
      byBase.get(b)!.push(i);
    });
    const used = new Map<number, number>();
    const missing: string[] = [];
    set.ids.forEach((id, r) => {
      const ls = segments(id);
      const cands = byBase.get(ls[ls.length - 1] ?? '') ?? [];
      let best = -1;
      let bestLen = 0;
      let tie = false;
      for (const c of cands) {
        const n = commonSuffix(ls, segs[c]);
        if (n < Math.min(ls.length, segs[c].length)) continue; // not a suffix of either
        if (n > bestLen) {
          best = c;
          bestLen = n;
          tie = false;
        } else if (n === bestLen) tie = true;
      }
      if (best < 0) {
        missing.push(`${set.where[r]} ('${id}')`);
        return;
      }
      if (tie)
        throw new EvalInputError(
          `${labelFile}: ${set.where[r]} ('${id}') matches several images of ${score.file}; use longer paths`,
          labelFile,
        );
      if (used.has(best))
        throw new EvalInputError(
          `${labelFile}: ${set.where[r]} and ${set.where[used.get(best)!]} both match image ` +
            `'${score.names![best]}' of ${score.file}`,
          labelFile,
        );
      used.set(best, r);
      labelRows.push(r);
      scoreRows.push(best);
    });
    if (labelRows.length === 0)
      throw new EvalInputError(
        `${labelFile} does not match ${score.file}: none of its ${set.rows} rows names a scored image ` +
          `(first: '${set.ids[0]}'; first image: '${score.names[0] ?? ''}')`,
        labelFile,
      );
    if (missing.length)
      warnings.push(
        `${missing.length} label row(s) of ${labelFile} have no score and are left out: ` +
          `${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`,
      );
    const extra = score.names.length - used.size;
    if (extra > 0)
      warnings.push(`${extra} scored image(s) of ${score.file} have no label row in ${labelFile} and are ignored`);
    return { labelRows, scoreRows, warnings };
  }
  if (score.listLength !== set.fileRows)
    throw new EvalInputError(
      `${labelFile} has ${set.fileRows} label rows but ${score.file} lists ${score.listLength} images; ` +
        'without image names in both they are matched by position and must be as many',
      labelFile,
    );
  const rowAt = new Map(set.filePos.map((p, r) => [p, r]));
  score.positions.forEach((p, k) => {
    const r = rowAt.get(p);
    if (r === undefined) return; // a label row skipped for a bad value (warned when read)
    labelRows.push(r);
    scoreRows.push(k);
  });
  if (labelRows.length < set.rows)
    warnings.push(`${set.rows - labelRows.length} labelled image(s) were not scored and are left out`);
  if (labelRows.length === 0)
    throw new EvalInputError(`${labelFile}: no labelled image has a score in ${score.file}`, labelFile);
  return { labelRows, scoreRows, warnings };
}
