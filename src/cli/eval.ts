// `carzero eval`: the original inference script's evaluation protocols (spec 7) on a score CSV
// written earlier (as the original evaluates its saved predictions) or on images scored now.
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseCsv } from '../data/csv.js';
import {
  evaluate,
  EvalInputError,
  formatResult,
  matrix,
  pointingGame,
  PROTOCOL_INFO,
  PROTOCOLS,
  readLabels,
  readScoreCsv,
  writePlots,
  type LabelSet,
  type PointingResult,
  type PointingTrial,
  type ProtocolName,
  type ScoreTable,
} from '../eval/index.js';
import { DEVICES, HELP_OPTION, oneOf, parseCommand, positiveInt, UsageError } from './args.js';

const EVAL_USAGE =
  'usage: carzero eval --protocol <name> --labels <file> ' +
  '(--scores <csv> | --model <name|dir> --images <csv> --prompts <json>) [options]';
export const EVAL_HELP = `${EVAL_USAGE}

Evaluates zero-shot scores with the original CARZero inference script's protocols: per-class
AUROC and AUPRC (trapezoid area under the precision-recall curve), macro and micro means,
head/medium/tail groups (Open-I, PadChest), PadChest20, F1 on the arg-max (ChestXDet10),
accuracy on the arg-max of a softmax (CheXpert 5x200). Score columns are matched to the
protocol's classes by position, as the original does.

protocols and their label files (as the original reads them):
  openi          custom.csv: a labels_automatic column, one row per listed image
  padchest       manual_image.json: {"<image>": ["label", ...], ...}
  chestxray14    test_list.txt: "<path> <14 x 0/1>" per line
  chexpert5      test_labels.csv: columns Atelectasis, Cardiomegaly, Consolidation, Edema,
                 Pleural Effusion
  chestxdet10    test.json: [{"file_name", "syms": [...], "boxes": [[x1,y1,x2,y2], ...]}]
  chexpert5x200  a CSV with the same 5 columns as chexpert5 (one-hot rows)

inputs:
  --labels <file>        the label file of the protocol
  --scores <csv>         a score CSV (carzero classify --format csv: Path,<classes...>; or the
                         original's saved predictions: class columns only, rows in label order)
  --model <name|dir>     score now with this model (a name or a converted model directory) ...
  --images <csv>         ... the images of this CSV's Path column (relative: against --root or
                         the CSV's folder) ...
  --prompts <json>       ... against these class prompts
options:
  --format <f>           table | json (default table)
  --out <file>           write the report there instead of stdout
  --plots <dir>          write the ROC and PR curves there as roc.svg and pr.svg
  --save-scores <csv>    with --model: also write the score CSV (for a later --scores run)
  --pointing             chestxdet10 with --model: the pointing game on the label file's boxes
  --root <dir>           base folder for relative image paths
  --device <d>           auto | cpu | cuda (default auto)
  --precision <p>        fp32 | bf16 (default fp32)
  --batch <n>            images per batch (default 8)
  --quiet                no progress or warnings on stderr
  -h, --help             this help

Rows are tied to label rows by image path when both have one (label ids may be path
suffixes, e.g. file names), else by position. Label rows without a score and images without a
label are left out with a warning. A class with a single label value among the evaluated images
gets a null AUROC/AUPRC and is left out of the macro means (with a warning). The exit code is
non-zero only when nothing could be evaluated.

examples:
  npx carzero eval --protocol openi --labels Dataset/OpenI/custom.csv --scores openi_scores.csv
  npx carzero eval --protocol chestxray14 --labels test_list.txt --scores cxr14.csv --format json --plots plots/
  npx carzero eval --protocol openi --labels custom.csv --model carzero-model \\
      --images openi_multi_label_image.csv --prompts openi_multi_label_text.json --save-scores openi.csv
`;

type Model = import('../model/carzero.js').CARZero;
type AnyFn = (...a: unknown[]) => unknown;

function progressBar(quiet: boolean) {
  let last = '';
  return {
    update(done: number, total: number, skipped: number) {
      if (quiet) return;
      const width = 30;
      const k = total ? Math.round((done / total) * width) : 0;
      const s =
        `\rcarzero eval: [${'#'.repeat(k)}${'.'.repeat(width - k)}] ` +
        `${done}/${total} images${skipped ? `, ${skipped} skipped` : ''}`;
      if (s !== last) process.stderr.write(s);
      last = s;
    },
    end() {
      if (!quiet && last) process.stderr.write('\n');
    },
  };
}

function imageList(file: string, text: string, root: string | undefined): string[] {
  let table;
  try {
    table = parseCsv(text, file);
  } catch (e) {
    throw new EvalInputError((e as Error).message, file);
  }
  let col = table.header.indexOf('Path');
  if (col < 0) col = table.header.findIndex((h) => h.toLowerCase() === 'path');
  if (col < 0) throw new EvalInputError(`${file}: no 'Path' column (columns: ${table.header.join(', ')})`, file);
  const base = root ?? dirname(file);
  return table.rows.map((r) => (isAbsolute(r[col]) ? r[col] : resolve(base, r[col])));
}

async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new EvalInputError(
      `${what} ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
      file,
    );
  }
}

interface Scored {
  table: ScoreTable;
  pointing?: PointingResult;
}

/** Scores the listed images: model.classifyStream / classify when present, else embed + score. */
async function scoreImages(
  model: Model,
  images: string[],
  classes: string[],
  prompts: string[],
  opts: { batch: number; quiet: boolean; imagesFile: string; warn: (m: string) => void; pointing?: { set: LabelSet } },
): Promise<Scored> {
  const Q = classes.length;
  const rows: { index: number; name: string; scores: ArrayLike<number> }[] = [];
  const bar = progressBar(opts.quiet);
  let skipped = 0;
  const record = (r: { index: number; name: string; scores?: ArrayLike<number>; error?: Error }) => {
    if (r.error || !r.scores) {
      skipped++;
      opts.warn(`skipping ${r.name}: ${r.error?.message ?? 'no scores'}`);
    } else rows.push({ index: r.index, name: images[r.index] ?? r.name, scores: r.scores });
    bar.update(rows.length + skipped, images.length, skipped);
  };
  const promptObj: Record<string, string> = {};
  classes.forEach((c, j) => (promptObj[c] = prompts[j]));
  const m = model as unknown as Record<string, AnyFn | undefined>;
  const trials: PointingTrial[] = [];
  let pointing: PointingResult | undefined;

  if (opts.pointing) {
    if (typeof m.groundingStream !== 'function') {
      opts.warn(
        '--pointing needs model.groundingStream (the zero-shot grounding API), which this build lacks; ' +
          'pointing game skipped',
      );
    } else {
      const { defaultFeed } = await import('../image/feed.js');
      const set = opts.pointing.set;
      const byName = new Map<string, number>();
      (set.ids ?? []).forEach((id, r) => byName.set(id.replace(/\\/g, '/').split('/').pop()!, r));
      const stream = m.groundingStream.call(model, {
        images,
        prompts: promptObj,
        batchSize: opts.batch,
        onWarning: opts.warn,
      }) as AsyncIterable<{
        index: number;
        name: string;
        scores?: Float32Array;
        maps?: Float32Array;
        error?: Error;
      }>;
      for await (const r of stream) {
        record(r);
        if (!r.maps) continue;
        const row = byName.get(images[r.index].replace(/\\/g, '/').split('/').pop()!);
        const boxes = row === undefined ? undefined : set.boxes?.[row];
        if (!boxes || boxes.size === 0) continue;
        const img = await defaultFeed().load(images[r.index]); // its size maps the boxes into the crop
        const size = Math.round(Math.sqrt(r.maps.length / Q));
        for (const [j, b] of boxes)
          trials.push({
            classIndex: j,
            map: r.maps.subarray(j * size * size, (j + 1) * size * size),
            mapSize: size,
            boxes: b,
            geometry: { width: img.width, height: img.height },
          });
      }
      pointing = pointingGame(trials, set.classes.length);
    }
  }
  if (!pointing) {
    rows.length = 0;
    skipped = 0;
    if (typeof m.classifyStream === 'function') {
      const stream = m.classifyStream.call(model, {
        images,
        prompts: promptObj,
        batchSize: opts.batch,
        onWarning: opts.warn,
      }) as AsyncIterable<{
        index: number;
        name: string;
        scores?: Float32Array;
        error?: Error;
      }>;
      for await (const r of stream) record(r);
    } else {
      // The model's building blocks (src/model/carzero.ts), batch by batch.
      using texts = await model.embedTexts(prompts);
      for (let s = 0; s < images.length; s += opts.batch) {
        const chunk = images.slice(s, s + opts.batch);
        const prepared: { index: number; img: Awaited<ReturnType<Model['prepareImage']>> }[] = [];
        for (const [k, p] of chunk.entries()) {
          try {
            prepared.push({ index: s + k, img: await model.prepareImage(p) });
          } catch (e) {
            record({ index: s + k, name: p, error: e as Error });
          }
        }
        if (prepared.length === 0) continue;
        using emb = await model.embedPrepared(prepared.map((p) => p.img));
        const r = await model.score(emb, texts);
        prepared.forEach((p, i) =>
          record({ index: p.index, name: images[p.index], scores: r.score.subarray(i * Q, (i + 1) * Q) }),
        );
      }
    }
  }
  bar.end();
  rows.sort((a, b) => a.index - b.index);
  if (rows.length === 0)
    throw new EvalInputError(
      `${opts.imagesFile}: none of the ${images.length} images could be scored`,
      opts.imagesFile,
    );
  const data = matrix(rows.length, Q);
  rows.forEach((r, i) => data.data.set(Array.from(r.scores), i * Q));
  return {
    table: {
      classes,
      names: rows.map((r) => r.name),
      scores: data,
      positions: rows.map((r) => r.index),
      listLength: images.length,
      file: opts.imagesFile,
      warnings: [],
    },
    pointing,
  };
}

export async function evalMain(argv: string[]): Promise<number> {
  const a = parseCommand(
    argv,
    {
      ...HELP_OPTION,
      protocol: { type: 'string' },
      labels: { type: 'string' },
      scores: { type: 'string' },
      model: { type: 'string' },
      images: { type: 'string' },
      prompts: { type: 'string' },
      format: { type: 'string', default: 'table' },
      out: { type: 'string' },
      plots: { type: 'string' },
      'save-scores': { type: 'string' },
      pointing: { type: 'boolean', default: false },
      root: { type: 'string' },
      device: { type: 'string', default: 'auto' },
      precision: { type: 'string', default: 'fp32' },
      batch: { type: 'string' },
      quiet: { type: 'boolean', default: false },
    },
    'eval',
  );
  const v = a.values;
  if (v.help) {
    process.stdout.write(EVAL_HELP);
    return 0;
  }
  if (a.positionals.length)
    throw new UsageError(`carzero eval: unexpected argument '${a.positionals[0]}' (see carzero eval --help)`);
  if (!v.protocol) throw new UsageError(`carzero eval: --protocol is required (${PROTOCOLS.join('|')})`);
  const protocol = oneOf(v.protocol, PROTOCOLS, 'protocol', 'eval', 'openi') as ProtocolName;
  const labelsFile = v.labels;
  if (!labelsFile) throw new UsageError('carzero eval: --labels <file> is required');
  const scoresFile = v.scores;
  const modelDir = v.model;
  if (scoresFile && modelDir) throw new UsageError('carzero eval: give either --scores or --model, not both');
  if (!scoresFile && !modelDir)
    throw new UsageError(
      'carzero eval: give --scores <csv>, or --model <name|dir> with --images <csv> and --prompts <json>',
    );
  if (modelDir && (!v.images || !v.prompts))
    throw new UsageError('carzero eval: --model needs --images <csv> and --prompts <json>');
  if (v.pointing && (protocol !== 'chestxdet10' || !modelDir))
    throw new UsageError('carzero eval: --pointing needs --protocol chestxdet10 and --model');
  const format = oneOf(v.format, ['table', 'json'] as const, 'format', 'eval', 'table');
  const device = oneOf(v.device, DEVICES, 'device', 'eval', 'auto');
  const precision = oneOf(v.precision, ['fp32', 'bf16'] as const, 'precision', 'eval', 'fp32');
  const batch = positiveInt(v.batch, 'batch', 'eval', 8);
  const quiet = v.quiet;
  const warn = (m: string) => {
    if (!quiet) process.stderr.write(`carzero eval: warning: ${m}\n`);
  };

  try {
    const set = readLabels(protocol, await readText(labelsFile, 'label file'), labelsFile);
    let scored: Scored;
    if (scoresFile) {
      scored = { table: readScoreCsv(await readText(scoresFile, 'score CSV'), scoresFile) };
    } else {
      const imagesFile = v.images!;
      const images = imageList(imagesFile, await readText(imagesFile, 'image list'), v.root);
      const { loadPrompts } = await import('../text/index.js');
      const prompts = await loadPrompts(v.prompts!, { onWarning: warn });
      const { CARZero } = await import('../model/carzero.js');
      using model = await CARZero.load(modelDir!, { device, precision });
      scored = await scoreImages(model, images, prompts.classes, prompts.prompts, {
        batch,
        quiet: quiet || !process.stderr.isTTY,
        imagesFile,
        warn,
        pointing: v.pointing ? { set } : undefined,
      });
      const save = v['save-scores'];
      if (save) {
        const { csvField } = await import('../data/csv.js');
        const t = scored.table;
        const lines = [['Path', ...t.classes].map(csvField).join(',')];
        for (let i = 0; i < t.scores.rows; i++)
          lines.push(
            [
              t.names![i],
              ...Array.from(t.scores.data.subarray(i * t.scores.cols, (i + 1) * t.scores.cols), (v) =>
                String(Math.fround(v)),
              ),
            ]
              .map(csvField)
              .join(','),
          );
        await writeFile(save, lines.join('\n') + '\n');
      }
    }
    const ev = evaluate(set, scored.table, labelsFile, scored.pointing);
    for (const w of ev.result.warnings) warn(w);
    if (v.plots) {
      const files = await writePlots(v.plots, ev);
      if (!quiet) process.stderr.write(`carzero eval: wrote ${files.join(', ')}\n`);
    }
    const text = format === 'json' ? JSON.stringify(ev.result, null, 2) + '\n' : formatResult(ev.result);
    const out = v.out;
    if (out) await writeFile(out, text);
    else process.stdout.write(text);
    return 0;
  } catch (e) {
    if (e instanceof EvalInputError) {
      process.stderr.write(`carzero eval: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

export { PROTOCOL_INFO };
