// `carzero classify`: zero-shot scores of images against class prompts (spec 5: raw logits).
import { createWriteStream, existsSync, type WriteStream } from 'node:fs';
import { readFile, rename, truncate, writeFile } from 'node:fs/promises';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { csvField, parseCsv } from '../data/csv.js';
import { CARZero } from '../model/carzero.js';
import { resolveModel } from '../model/store.js';
import { dicomFrameCount } from '../image/feed.js';
import type { ImageInput } from '../zeroshot/types.js';
import { loadPrompts } from '../text/index.js';
import { DEVICES, HELP_OPTION, oneOf, parseCommand, positiveInt, PRECISIONS, UsageError } from './args.js';
import { createProgress } from './progress.js';

const CLASSIFY_USAGE =
  'usage: carzero classify --model <name|dir> [--prompts <prompts.json>] [options] <images... | list.csv>';
export const CLASSIFY_HELP = `${CLASSIFY_USAGE}

Scores every image against every class prompt and prints one row per image, one column per
class in the prompt file's key order. Scores are CARZero's raw logits ((i2t + t2i) / 2).

inputs:
  <images...>            image files (PNG 8/16-bit, JPEG, DICOM)
  list.csv               a CSV with a Path column (the original data sets' image lists);
                         relative paths resolve against --root (default: the CSV's folder)
options:
  --model <name|dir>     a model name (carzero models) or a converted model directory
  --prompts <file>       {"class": "prompt"} or {"class": ["prompt"]} JSON; default: the model's
                         own prompts.json when it has one (the shipped phantom-demo does)
  --device <d>           auto | cpu | cuda (default auto)
  --precision <p>        fp32 | tf32 | bf16 (default fp32 on CPU, tf32 on CUDA: TF32 GEMMs there,
                         fp32 on CPU); bf16 is ~2x faster on CPU (cost: README, Precision)
  --format <f>           json | csv (default json)
  --out <file>           write there instead of stdout (CSV rows are written as they are scored)
  --root <dir>           base folder for relative paths in list.csv
  --batch <n>            images per batch (default 8 on CPU, 64 on CUDA)
  --frames <f>           first | all: of a multi-frame DICOM file, score the first frame (default)
                         or every frame, each as its own row named <path>#<frame> (0-based)
  --resume               with --format csv --out F: skip the images already in F, append the rest
  --quiet                no progress bar on stderr (it is drawn only on a terminal anyway)
  -h, --help             this help

Unreadable or corrupt images are reported and skipped; a summary follows at the end. The exit
status is non-zero only when nothing could be scored. Ctrl-C stops after the batch in flight; CSV
rows already written to --out stay there (run again with --resume to finish).

examples:
  npx carzero classify --model ./carzero --prompts openi_prompts.json images/*.png
  npx carzero classify --model ./carzero --prompts chestxray14.json --format csv --out scores.csv test.csv
  npx carzero classify --model ./carzero --prompts chestxray14.json --format csv --out scores.csv --resume test.csv
`;

/**
 * With frames 'all', each multi-frame DICOM file becomes one input per frame ({ path, frame },
 * named <path>#<frame>); everything else stays a path.
 */
export function expandFrames(paths: string[], frames: 'first' | 'all'): ImageInput[] {
  if (frames === 'first') return paths;
  const out: ImageInput[] = [];
  for (const p of paths) {
    const n = /\.(png|jpe?g)$/i.test(p) ? null : dicomFrameCount(p);
    if (n !== null && n > 1) for (let f = 0; f < n; f++) out.push({ path: p, frame: f });
    else out.push(p);
  }
  return out;
}

export async function imageList(positionals: string[], root: string | undefined): Promise<string[]> {
  if (positionals.length === 1 && extname(positionals[0]).toLowerCase() === '.csv') {
    const file = positionals[0];
    const table = parseCsv(await readFile(file, 'utf8'), file);
    const col =
      table.header.findIndex((h) => h === 'Path') >= 0
        ? table.header.indexOf('Path')
        : table.header.findIndex((h) => h.toLowerCase() === 'path');
    if (col < 0) throw new UsageError(`${file}: no 'Path' column (columns: ${table.header.join(', ')})`);
    const base = root ?? dirname(file);
    return table.rows.map((r) => (isAbsolute(r[col]) ? r[col] : resolve(base, r[col])));
  }
  return positionals;
}

/** Paths already in a score CSV (for --resume); a partial last line (interrupted write) is cut. */
async function resumeState(file: string, header: string): Promise<{ done: Set<string>; fresh: boolean }> {
  if (!existsSync(file)) return { done: new Set(), fresh: true };
  let text = await readFile(file, 'utf8');
  if (text.length === 0) return { done: new Set(), fresh: true };
  if (!text.endsWith('\n')) {
    const cut = text.lastIndexOf('\n') + 1;
    await truncate(file, Buffer.byteLength(text.slice(0, cut)));
    text = text.slice(0, cut);
    if (cut === 0) return { done: new Set(), fresh: true };
  }
  if (!text.startsWith(header))
    throw new UsageError(
      `carzero classify: --resume: ${file} has a different header (other classes or prompt order?); ` +
        `expected ${header.trim()}`,
    );
  const table = parseCsv(text, file);
  return { done: new Set(table.rows.map((r) => r[0])), fresh: false };
}

export async function classifyMain(argv: string[]): Promise<number> {
  const a = parseCommand(
    argv,
    {
      ...HELP_OPTION,
      model: { type: 'string' },
      prompts: { type: 'string' },
      device: { type: 'string', default: 'auto' },
      precision: { type: 'string' },
      format: { type: 'string', default: 'json' },
      out: { type: 'string' },
      root: { type: 'string' },
      batch: { type: 'string' },
      frames: { type: 'string', default: 'first' },
      resume: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
    },
    'classify',
  );
  const v = a.values;
  if (v.help) {
    process.stdout.write(CLASSIFY_HELP);
    return 0;
  }
  const modelDir = v.model;
  if (!modelDir) throw new UsageError('carzero classify: --model <name|dir> is required');
  // Without --prompts: the model's own prompts.json (the shipped models carry one).
  let promptsFile = v.prompts;
  if (!promptsFile) {
    const own = join(resolveModel(modelDir).dir, 'prompts.json');
    if (!existsSync(own))
      throw new UsageError(`carzero classify: --prompts <file> is required (the model has no prompts.json of its own)`);
    promptsFile = own;
  }
  const device = oneOf(v.device, DEVICES, 'device', 'classify', 'auto');
  const precision = oneOf(v.precision, PRECISIONS, 'precision', 'classify', undefined);
  const format = oneOf(v.format, ['json', 'csv'] as const, 'format', 'classify', 'json');
  const frames = oneOf(v.frames, ['first', 'all'] as const, 'frames', 'classify', 'first');
  const batch = v.batch === undefined ? undefined : positiveInt(v.batch, 'batch', 'classify', 8);
  const out = v.out;
  const resume = v.resume;
  if (resume && (format !== 'csv' || !out))
    throw new UsageError('carzero classify: --resume needs --format csv and --out <file>');
  if (a.positionals.length === 0) throw new UsageError('carzero classify: no images given (paths or a list.csv)');

  const bar = createProgress({ label: 'carzero classify', enabled: !v.quiet });
  let images = await imageList(a.positionals, v.root);
  const prompts = await loadPrompts(promptsFile, {
    onWarning: (w) => process.stderr.write(`carzero classify: warning: ${w}\n`),
  });
  const header = ['Path', ...prompts.classes].map(csvField).join(',') + '\n';
  let append = false;
  let already = 0;
  let done: Set<string> | undefined;
  if (resume) {
    const st = await resumeState(out!, header);
    done = st.done;
    append = !st.fresh;
    const before = images.length;
    images = images.filter((p) => !st.done.has(p));
    already = before - images.length;
    if (already)
      process.stderr.write(`carzero classify: --resume: ${already} images already in ${out}, ${images.length} to go\n`);
    if (images.length === 0) return 0;
  }
  // frames of a multi-frame file are rows <path>#<frame>: --resume skips those already written
  const inputs = expandFrames(images, frames).filter(
    (i) => typeof i === 'string' || !('path' in i) || !done?.has(`${i.path}#${i.frame}`),
  );
  const model = await CARZero.load(modelDir, { device, precision });
  const controller = new AbortController();
  const onSigint = () => {
    bar.log('carzero classify: interrupted; finishing the batch in flight');
    process.off('SIGINT', onSigint);
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  let csvOut: WriteStream | undefined;
  const scored: { path: string; scores: number[] }[] = [];
  const skipped: { path: string; error: string }[] = [];
  let scoredCount = 0;
  let interrupted = false;
  try {
    using texts = await model.embedTexts(prompts.prompts);
    // CSV to a file is streamed row by row so an interrupted run keeps what it scored.
    if (format === 'csv' && out) {
      csvOut = createWriteStream(out, { flags: append ? 'a' : 'w' });
      if (!append) csvOut.write(header);
    }
    const stream = model.classifyStream({
      images: inputs,
      prompts: Object.assign(texts, { classes: prompts.classes }),
      batchSize: batch,
      signal: controller.signal,
      onProgress: (p) => bar.update(p.done, inputs.length, p.skipped ? `(${p.skipped} skipped)` : ''),
    });
    try {
      for await (const r of stream) {
        if ('error' in r) {
          bar.log(`carzero classify: skipping ${r.name}: ${r.error.message}`);
          skipped.push({ path: r.name, error: r.error.message });
          continue;
        }
        scoredCount++;
        const row = Array.from(r.scores);
        if (csvOut) csvOut.write([r.name, ...row.map((v) => String(v))].map(csvField).join(',') + '\n');
        else scored.push({ path: r.name, scores: row });
      }
    } catch (e) {
      if ((e as Error)?.name !== 'AbortError') throw e;
      interrupted = true;
    }
    bar.end();
    if (csvOut) {
      await new Promise<void>((res, rej) => csvOut!.end((e?: Error | null) => (e ? rej(e) : res())));
    } else {
      const text =
        format === 'json'
          ? JSON.stringify({
              classes: prompts.classes,
              images: scored.map((o) => o.path),
              scores: scored.map((o) => o.scores),
              skipped,
              ...(interrupted ? { interrupted: true } : {}),
            }) + '\n'
          : header +
            scored.map((o) => [o.path, ...o.scores.map(String)].map(csvField).join(',')).join('\n') +
            (scored.length ? '\n' : '');
      if (out) {
        await writeFile(`${out}.tmp`, text);
        await rename(`${out}.tmp`, out);
      } else {
        process.stdout.write(text);
      }
    }
    if (skipped.length || interrupted || already) {
      const lines = [
        `carzero classify: ${scoredCount} scored, ${skipped.length} skipped (unreadable)` +
          (already ? `, ${already} already done` : '') +
          (interrupted ? `, interrupted after ${scoredCount + skipped.length} of ${inputs.length}` : ''),
      ];
      for (const s of skipped.slice(0, 20)) lines.push(`  skipped ${s.path}: ${s.error}`);
      if (skipped.length > 20) lines.push(`  ... and ${skipped.length - 20} more`);
      if (interrupted && out && format === 'csv')
        lines.push(`  rows so far are in ${out}; rerun with --resume to finish`);
      process.stderr.write(lines.join('\n') + '\n');
    }
    if (interrupted) return 130;
    return scoredCount > 0 || already > 0 ? 0 : 1;
  } finally {
    process.off('SIGINT', onSigint);
    csvOut?.destroy();
    model.dispose();
  }
}
