// RFC 4180 CSV: quoted fields with embedded commas, quotes ("") and newlines; CRLF or LF; a BOM
// at the start is dropped. Used for the original data sets' image lists and label files.
import { CarzeroError } from '../errors.js';

export interface CsvTable {
  header: string[];
  rows: string[][];
}

export class CsvError extends CarzeroError {
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message, 'CZ_ERR_FORMAT');
    this.name = 'CsvError';
  }
}

/** Splits CSV text into records of fields. */
export function parseCsvRecords(text: string, file = '<csv>'): string[][] {
  const out: string[][] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let field = '';
  let record: string[] = [];
  let quoted = false;
  let line = 1;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      if (c === '\n') line++;
      field += c;
      i++;
      continue;
    }
    if (c === '"' && field.length === 0) {
      quoted = true;
      i++;
    } else if (c === ',') {
      record.push(field);
      field = '';
      i++;
    } else if (c === '\n' || c === '\r') {
      record.push(field);
      field = '';
      out.push(record);
      record = [];
      if (c === '\r' && text[i + 1] === '\n') i++;
      i++;
      line++;
    } else {
      field += c;
      i++;
    }
  }
  if (quoted) throw new CsvError(`${file}: unterminated quoted field (starts before line ${line})`, file);
  if (field.length > 0 || record.length > 0) {
    record.push(field);
    out.push(record);
  }
  // Blank lines are not records.
  return out.filter((r) => !(r.length === 1 && r[0] === ''));
}

/** A CSV with a header row; rows shorter or longer than the header are errors naming the line. */
export function parseCsv(text: string, file = '<csv>'): CsvTable {
  const recs = parseCsvRecords(text, file);
  if (recs.length === 0) throw new CsvError(`${file}: empty CSV (no header row)`, file);
  const header = recs[0].map((h) => h.trim());
  const rows = recs.slice(1);
  rows.forEach((r, k) => {
    if (r.length !== header.length)
      throw new CsvError(`${file}: record ${k + 2} has ${r.length} fields, the header has ${header.length}`, file);
  });
  return { header, rows };
}

/** One CSV field, quoted when needed. */
export function csvField(v: string | number): string {
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
