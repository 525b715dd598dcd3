// MIMIC-CXR-style training lists: one CSV row per image, with its split, view and report text.
//
// The original (CARZero/datasets/pretraining_dataset.py, constants.py) reads a master CSV with
// the columns `Path`, `Split`, `Frontal/Lateral` (value "Frontal") and `Report Impression`, keeps
// the frontal rows, cleans every report into sentences (spec 3.1), and drops studies whose report
// is empty or leaves no sentence. MIMIC-CXR's own metadata names the view `ViewPosition`
// (PA / AP frontal; LATERAL / LL lateral) and the split `validate`; both spellings are accepted.
//
// Column names: the first header matching (case-insensitively) one of the candidates below is
// used, or the exact name given in `columns`:
//   path:   Path, path, image, image_path, filepath, file, jpg_path, dicom_path
//   split:  Split, split
//   view:   Frontal/Lateral, ViewPosition, view, view_position
//   report: Report Impression, report, text, impression
// `columns.report` may list several columns: their texts are concatenated directly, as the
// original's XH variant does (`captions += row[col]`).
//
// Faithful detail kept by default: the original stops collecting a report's sentences once the
// running word count equals exactly `captions_per_image` (5 in the released config; the check is
// `cnt == max_word_num`, so it only fires on exact equality). `maxWords: 0` disables it.
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { cleanReportSentences } from '../text/clean.js';
import { parseCsv } from './csv.js';
import { CarzeroError } from '../errors.js';

export type SplitName = 'train' | 'validate' | 'test';

export interface MimicColumns {
  path?: string;
  split?: string;
  view?: string;
  report?: string | string[];
}

export interface ReadMimicOptions {
  /** Base folder for relative image paths; default: the CSV's folder. */
  root?: string;
  /** The split to keep (default 'train'); 'validate' also matches valid/val/validation. */
  split?: SplitName | string;
  /** Column names (see the file comment for the defaults). */
  columns?: MimicColumns;
  /** View values counted as frontal (case-insensitive); default PA, AP, Frontal. */
  frontalViews?: readonly string[];
  /** Stop collecting sentences when the running word count equals this (original: 5); 0: never. */
  maxWords?: number;
  /** CSV paths (as written in the file) to leave out, e.g. the original's noise-sample list. */
  exclude?: Iterable<string>;
}

/** One training image. */
export interface DatasetItem {
  /** The image file, resolved against the root. */
  path: string;
  /** The path as the CSV writes it (the original's key). */
  key: string;
  /** 1-based CSV line of the record's start (the header is line 1, for single-line records). */
  row: number;
  /** The cleaned sentences (at least one). */
  sentences: string[];
  /** Where a prepared shard holds the padded 256x256 image (carzero prepare). */
  shard?: { file: string; offset: number };
}

export interface DroppedRow {
  key: string;
  row: number;
  reason: 'empty report' | 'no sentence' | 'excluded';
}

export interface MimicDataset {
  /** The CSV (or prepared index) it came from. */
  source: string;
  root: string;
  split: string;
  columns: { path: string; split: string; view: string; report: string[] };
  items: DatasetItem[];
  counts: {
    rows: number;
    inSplit: number;
    frontal: number;
    nonFrontal: number;
    emptyReport: number;
    noSentence: number;
    excluded: number;
    kept: number;
  };
  /** The frontal rows of the split that were dropped, and why. */
  dropped: DroppedRow[];
  /** Options that shaped the sentences (recorded by carzero prepare). */
  maxWords: number;
}

export class DatasetError extends CarzeroError {
  constructor(
    message: string,
    readonly file: string,
    readonly row?: number,
  ) {
    super(message, 'CZ_ERR_FORMAT');
    this.name = 'DatasetError';
  }
}

const CANDIDATES = {
  path: ['Path', 'path', 'image', 'image_path', 'filepath', 'file', 'jpg_path', 'dicom_path'],
  split: ['Split', 'split'],
  view: ['Frontal/Lateral', 'ViewPosition', 'view', 'view_position'],
  report: ['Report Impression', 'report', 'text', 'impression'],
} as const;

const SPLIT_ALIASES: Record<string, string[]> = {
  train: ['train', 'training'],
  validate: ['validate', 'valid', 'val', 'validation'],
  test: ['test'],
};

function findColumn(header: string[], given: string | undefined, role: keyof typeof CANDIDATES, file: string): number {
  if (given !== undefined) {
    const i = header.indexOf(given.trim());
    if (i < 0)
      throw new DatasetError(`${file}: no column '${given}' (${role}); the header has: ${header.join(', ')}`, file);
    return i;
  }
  const lower = header.map((h) => h.toLowerCase());
  for (const c of CANDIDATES[role]) {
    const i = lower.indexOf(c.toLowerCase());
    if (i >= 0) return i;
  }
  throw new DatasetError(
    `${file}: no ${role} column (looked for ${CANDIDATES[role].join(', ')}; the header has: ` +
      `${header.join(', ')}); name it with columns.${role}`,
    file,
  );
}

/** Words of a cleaned sentence (its non-empty ASCII matches). */
function wordCount(sentence: string): number {
  return sentence === '' ? 0 : sentence.split(' ').length;
}

/**
 * The sentences the original keeps for one report: cleanReportSentences, cut after the sentence
 * that brings the running word count to exactly `maxWords` (0: no cut).
 */
export function reportSentences(report: string, maxWords = 5): string[] {
  const all = cleanReportSentences(report);
  if (!maxWords) return all;
  let cnt = 0;
  const out: string[] = [];
  for (const s of all) {
    out.push(s);
    cnt += wordCount(s);
    if (cnt === maxWords) break;
  }
  return out;
}

/** 1-based line where each record starts (quoted fields may span lines). */
function recordLines(text: string): number[] {
  // Cheap re-scan: counts newlines outside quotes, like the parser.
  const starts: number[] = [];
  let line = 1;
  let quoted = false;
  let atStart = true;
  let fieldStart = true;
  for (let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; i < text.length; i++) {
    const c = text[i];
    if (atStart && c !== '\n' && c !== '\r') {
      starts.push(line);
      atStart = false;
    }
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') i++;
        else quoted = false;
      } else if (c === '\n') line++;
      continue;
    }
    if (c === '"' && fieldStart) quoted = true;
    fieldStart = c === ',';
    if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      line++;
      atStart = true;
      fieldStart = true;
    }
  }
  return starts;
}

/** Builds the dataset description from CSV text (see readMimicCsv). */
export function parseMimicCsv(text: string, file: string, options: ReadMimicOptions = {}): MimicDataset {
  const table = parseCsv(text, file);
  const { header, rows } = table;
  const cols = options.columns ?? {};
  const ip = findColumn(header, cols.path, 'path', file);
  const is = findColumn(header, cols.split, 'split', file);
  const iv = findColumn(header, cols.view, 'view', file);
  const reportCols = cols.report === undefined ? [undefined] : Array.isArray(cols.report) ? cols.report : [cols.report];
  if (reportCols.length === 0) throw new DatasetError(`${file}: columns.report is an empty list`, file);
  const ir = reportCols.map((c) => findColumn(header, c, 'report', file));
  const splitName = (options.split ?? 'train').trim();
  const accepted = new Set((SPLIT_ALIASES[splitName.toLowerCase()] ?? [splitName]).map((s) => s.toLowerCase()));
  const frontal = new Set((options.frontalViews ?? ['PA', 'AP', 'Frontal']).map((v) => v.trim().toLowerCase()));
  const maxWords = options.maxWords ?? 5;
  if (!Number.isInteger(maxWords) || maxWords < 0)
    throw new RangeError(`readMimicCsv: option 'maxWords' must be a non-negative integer, got ${maxWords}`);
  const exclude = new Set(options.exclude ?? []);
  const root = options.root ?? resolve(file, '..');
  const lines = recordLines(text);

  const counts = {
    rows: rows.length,
    inSplit: 0,
    frontal: 0,
    nonFrontal: 0,
    emptyReport: 0,
    noSentence: 0,
    excluded: 0,
    kept: 0,
  };
  const items: DatasetItem[] = [];
  const dropped: DroppedRow[] = [];
  rows.forEach((r, k) => {
    const row = lines[k + 1] ?? k + 2;
    if (!accepted.has(r[is].trim().toLowerCase())) return;
    counts.inSplit++;
    if (!frontal.has(r[iv].trim().toLowerCase())) {
      counts.nonFrontal++;
      return;
    }
    counts.frontal++;
    const key = r[ip];
    if (key.trim() === '')
      throw new DatasetError(`${file}: line ${row}: empty image path in column '${header[ip]}'`, file, row);
    if (exclude.has(key)) {
      counts.excluded++;
      dropped.push({ key, row, reason: 'excluded' });
      return;
    }
    const report = ir.map((i) => r[i]).join('');
    if (report.length === 0) {
      counts.emptyReport++;
      dropped.push({ key, row, reason: 'empty report' });
      return;
    }
    let sentences: string[];
    try {
      sentences = reportSentences(report, maxWords);
    } catch (e) {
      throw new DatasetError(`${file}: line ${row}: ${(e as Error).message}`, file, row);
    }
    if (sentences.length === 0) {
      counts.noSentence++;
      dropped.push({ key, row, reason: 'no sentence' });
      return;
    }
    items.push({ path: isAbsolute(key) ? key : resolve(root, key), key, row, sentences });
  });
  counts.kept = items.length;
  return {
    source: file,
    root,
    split: splitName,
    columns: { path: header[ip], split: header[is], view: header[iv], report: ir.map((i) => header[i]) },
    items,
    counts,
    dropped,
    maxWords,
  };
}

/**
 * Reads a MIMIC-CXR-style CSV: the frontal rows of one split with at least one usable sentence,
 * paths resolved against `root`. Rows dropped for their report are counted and listed.
 */
export async function readMimicCsv(file: string, options: ReadMimicOptions = {}): Promise<MimicDataset> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new DatasetError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, file);
  }
  return parseMimicCsv(text, file, options);
}

/** A one-line summary of what was kept and dropped. */
export function describeDataset(d: MimicDataset): string {
  const c = d.counts;
  return (
    `${d.source}: split '${d.split}': ${c.inSplit} rows, ${c.frontal} frontal (${c.nonFrontal} other views), ` +
    `${c.kept} kept; dropped ${c.emptyReport} empty reports, ${c.noSentence} with no usable sentence, ` +
    `${c.excluded} excluded`
  );
}
