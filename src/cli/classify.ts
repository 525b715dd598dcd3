// `carzero classify`: zero-shot scores of images against class prompts (spec 5: raw logits).
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { csvField, parseCsv } from '../data/csv.js';
import { CARZero, type PreparedImage } from '../model/carzero.js';
import { loadPrompts } from '../text/index.js';
import { oneOf, parseArgs, positiveInt, UsageError } from './args.js';

export const CLASSIFY_HELP = `usage: carzero classify --model <dir> --prompts <prompts.json> [options] <images... | list.csv>

Scores every image against every class prompt and prints one row per image, one column per
class in the prompt file's key order. Scores are CARZero's raw logits ((i2t + t2i) / 2).

inputs:
  <images...>            image files (PNG 8/16-bit, JPEG, DICOM)
  list.csv               a CSV with a Path column (the original data sets' image lists);
                         relative paths resolve against --root (default: the CSV's folder)
options:
  --model <dir>          a converted model directory (carzero convert)
  --prompts <file>       {"class": "prompt"} or {"class": ["prompt"]} JSON
  --device <d>           auto | cpu | cuda (default auto)
  --precision <p>        fp32 | bf16 (default fp32)
  --format <f>           json | csv (default json)
  --out <file>           write there instead of stdout (CSV rows are written as they are scored)
  --root <dir>           base folder for relative paths in list.csv
  --batch <n>            images per batch (default 8)
  --quiet                no progress on stderr

examples:
  npx carzero classify --model ./carzero --prompts openi_prompts.json images/*.png
  npx carzero classify --model ./carzero --prompts chestxray14.json --format csv --out scores.csv test.csv
`;

interface Outcome {
  path: string;
  scores?: number[];
  error?: string;
}

async function imageList(positionals: string[], root: string | undefined): Promise<string[]> {
  if (positionals.length === 1 && extname(positionals[0]).toLowerCase() === '.csv') {
    const file = positionals[0];
    const table = parseCsv(await readFile(file, 'utf8'), file);
    const col = table.header.findIndex((h) => h === 'Path') >= 0 ? table.header.indexOf('Path') : table.header.findIndex((h) => h.toLowerCase() === 'path');
    if (col < 0) throw new UsageError(`${file}: no 'Path' column (columns: ${table.header.join(', ')})`);
    const base = root ?? dirname(file);
    return table.rows.map((r) => (isAbsolute(r[col]) ? r[col] : resolve(base, r[col])));
  }
  return positionals;
}

export async function classifyMain(argv: string[]): Promise<number> {
  const a = parseArgs(argv, { values: ['model', 'prompts', 'device', 'precision', 'format', 'out', 'root', 'batch'], flags: ['quiet', 'help'] }, 'classify');
  if (a.flags.has('help')) {
    process.stdout.write(CLASSIFY_HELP);
    return 0;
  }
  const modelDir = a.values.get('model');
  const promptsFile = a.values.get('prompts');
  if (!modelDir) throw new UsageError('carzero classify: --model <dir> is required');
  if (!promptsFile) throw new UsageError('carzero classify: --prompts <file> is required');
  const device = oneOf(a.values.get('device'), ['auto', 'cpu', 'cuda'] as const, 'device', 'classify', 'auto');
  const precision = oneOf(a.values.get('precision'), ['fp32', 'bf16'] as const, 'precision', 'classify', 'fp32');
  const format = oneOf(a.values.get('format'), ['json', 'csv'] as const, 'format', 'classify', 'json');
  const batch = positiveInt(a.values.get('batch'), 'batch', 'classify', 8);
  const out = a.values.get('out');
  const quiet = a.flags.has('quiet') || !process.stderr.isTTY;
  if (a.positionals.length === 0) throw new UsageError('carzero classify: no images given (paths or a list.csv)');

  const images = await imageList(a.positionals, a.values.get('root'));
  const prompts = await loadPrompts(promptsFile, { onWarning: (w) => process.stderr.write(`carzero classify: warning: ${w}\n`) });
  const model = await CARZero.load(modelDir, { device, precision });
  try {
    using texts = await model.embedTexts(prompts.prompts);
    const Q = prompts.classes.length;

    // CSV to a file is streamed row by row so an interrupted run keeps what it scored.
    let csvOut: WriteStream | undefined;
    const header = ['Path', ...prompts.classes].map(csvField).join(',') + '\n';
    if (format === 'csv' && out) {
      csvOut = createWriteStream(out);
      csvOut.write(header);
    }
    const outcomes: Outcome[] = [];
    let done = 0;
    for (let s = 0; s < images.length; s += batch) {
      const chunk = images.slice(s, s + batch);
      const prepared: { path: string; img: PreparedImage }[] = [];
      await Promise.all(
        chunk.map(async (path) => {
          try {
            prepared.push({ path, img: await model.prepareImage(path) });
          } catch (e) {
            process.stderr.write(`carzero classify: skipping ${path}: ${(e as Error).message}\n`);
            outcomes.push({ path, error: (e as Error).message });
          }
        }),
      );
      prepared.sort((x, y) => chunk.indexOf(x.path) - chunk.indexOf(y.path));
      if (prepared.length > 0) {
        using emb = await model.embedPrepared(prepared.map((p) => p.img));
        const r = await model.score(emb, texts);
        prepared.forEach((p, i) => {
          const row = Array.from(r.score.subarray(i * Q, (i + 1) * Q));
          outcomes.push({ path: p.path, scores: row });
          csvOut?.write([p.path, ...row.map((v) => String(v))].map(csvField).join(',') + '\n');
        });
      }
      done += chunk.length;
      if (!quiet) process.stderr.write(`\rcarzero classify: ${done}/${images.length} images`);
    }
    if (!quiet) process.stderr.write('\n');
    const order = new Map(images.map((p, i) => [p, i]));
    outcomes.sort((x, y) => (order.get(x.path) ?? 0) - (order.get(y.path) ?? 0));
    const scored = outcomes.filter((o) => o.scores);
    const skipped = outcomes.filter((o) => o.error).map((o) => ({ path: o.path, error: o.error! }));

    if (csvOut) {
      await new Promise<void>((res, rej) => csvOut!.end((e?: Error | null) => (e ? rej(e) : res())));
    } else {
      const text =
        format === 'json'
          ? JSON.stringify({ classes: prompts.classes, images: scored.map((o) => o.path), scores: scored.map((o) => o.scores), skipped }) + '\n'
          : header + scored.map((o) => [o.path, ...o.scores!.map(String)].map(csvField).join(',')).join('\n') + (scored.length ? '\n' : '');
      if (out) {
        await writeFile(`${out}.tmp`, text);
        await rename(`${out}.tmp`, out);
      } else {
        process.stdout.write(text);
      }
    }
    if (skipped.length) process.stderr.write(`carzero classify: ${scored.length} scored, ${skipped.length} skipped (unreadable)\n`);
    return scored.length > 0 ? 0 : 1;
  } finally {
    model.dispose();
  }
}
