// `carzero ground`: grounding maps (spec 5) as heat-map overlays, one PNG per image per class.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { CARZero } from '../model/carzero.js';
import { loadPrompts } from '../text/index.js';
import { overlayPng } from '../zeroshot/grounding.js';
import { DEVICES, HELP_OPTION, numberIn, oneOf, parseCommand, positiveInt, PRECISIONS, UsageError } from './args.js';
import { expandFrames, imageList } from './classify.js';
import { createProgress } from './progress.js';

const GROUND_USAGE =
  'usage: carzero ground --model <name|dir> --prompts <prompts.json> --out <dir> [options] <images... | list.csv>';
export const GROUND_HELP = `${GROUND_USAGE}

Writes, per image and class, the grounding map (the alignment head's image-to-text attention
over the 14 x 14 patches, upsampled to 224) as a jet heat map blended on the 224 x 224 crop the
model saw: <out>/<image>__<class>.png, and <out>/index.json listing the files and the scores.

options:
  --model <name|dir>     a model name (carzero models) or a converted model directory
  --prompts <file>       {"class": "prompt"} JSON (key order = class order)
  --out <dir>            output folder (created)
  --raw                  also write each raw map as <image>__<class>.f32 (224 x 224 float32, LE)
  --alpha <a>            heat-map weight in the blend, 0..1 (default 0.45)
  --device <d>           auto | cpu | cuda (default auto)
  --precision <p>        fp32 | tf32 | bf16
  --root <dir>           base folder for relative paths in list.csv
  --frames <f>           first | all: the first frame of a multi-frame DICOM file (default) or
                         every frame, each named <path>#<frame> (0-based)
  --batch <n>            images per batch (default 8 on CPU)
  --quiet                no progress bar
  -h, --help             this help

examples:
  npx carzero ground --model ./carzero --prompts prompts.json --out maps/ scans/a.png scans/b.png
  npx carzero ground --model ./carzero --prompts prompts.json --out maps/ --raw test.csv
`;

/** A file-name-safe form of a class or image name. */
export function safeName(s: string): string {
  return (
    s
      .replace(/[^A-Za-z0-9._-]+/g, '_')
      .replace(/^\.+/, '_')
      .slice(0, 80) || '_'
  );
}

export async function groundMain(argv: string[]): Promise<number> {
  const a = parseCommand(
    argv,
    {
      ...HELP_OPTION,
      model: { type: 'string' },
      prompts: { type: 'string' },
      out: { type: 'string' },
      alpha: { type: 'string' },
      device: { type: 'string', default: 'auto' },
      precision: { type: 'string' },
      root: { type: 'string' },
      batch: { type: 'string' },
      frames: { type: 'string', default: 'first' },
      raw: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
    },
    'ground',
  );
  const v = a.values;
  if (v.help) {
    process.stdout.write(GROUND_HELP);
    return 0;
  }
  const modelDir = v.model;
  const promptsFile = v.prompts;
  const outDir = v.out;
  if (!modelDir) throw new UsageError('carzero ground: --model <name|dir> is required');
  if (!promptsFile) throw new UsageError('carzero ground: --prompts <file> is required');
  if (!outDir) throw new UsageError('carzero ground: --out <dir> is required');
  if (a.positionals.length === 0) throw new UsageError('carzero ground: no images given (paths or a list.csv)');
  const alpha = numberIn(v.alpha, [0, 1], 'alpha', 'ground', 0.45);
  const device = oneOf(v.device, DEVICES, 'device', 'ground', 'auto');
  const precision = oneOf(v.precision, PRECISIONS, 'precision', 'ground', undefined);
  const batch = v.batch === undefined ? undefined : positiveInt(v.batch, 'batch', 'ground', 8);
  const raw = v.raw;

  const frames = oneOf(v.frames, ['first', 'all'] as const, 'frames', 'ground', 'first');
  const images = expandFrames(await imageList(a.positionals, v.root), frames);
  const prompts = await loadPrompts(promptsFile, {
    onWarning: (w) => process.stderr.write(`carzero ground: warning: ${w}\n`),
  });
  await mkdir(outDir, { recursive: true });
  using model = await CARZero.load(modelDir, { device, precision });
  using texts = await model.embedTexts(prompts.prompts);
  const crop = model.config.preprocess.crop;
  const { mean, std } = model.config.preprocess;
  const bar = createProgress({ label: 'carzero ground', total: images.length, enabled: !v.quiet });
  const entries: {
    path: string;
    scores: Record<string, number>;
    overlays: Record<string, string>;
    raw?: Record<string, string>;
  }[] = [];
  const skipped: { path: string; error: string }[] = [];
  const used = new Map<string, number>();
  const classNames = prompts.classes.map(safeName);
  const writeIndex = async () => {
    const file = join(outDir, 'index.json');
    await writeFile(
      `${file}.tmp`,
      JSON.stringify({ classes: prompts.classes, size: [crop, crop], images: entries, skipped }, null, 1) + '\n',
    );
    await rename(`${file}.tmp`, file);
  };
  for await (const r of model.groundingStream({
    images,
    prompts: Object.assign(texts, { classes: prompts.classes }),
    batchSize: batch,
    onProgress: (e) => bar.update(e.done),
  })) {
    if ('error' in r) {
      bar.log(`carzero ground: skipping ${r.name}: ${r.error.message}`);
      skipped.push({ path: r.name, error: r.error.message });
      continue;
    }
    let stem = safeName(basename(r.name, extname(r.name)));
    const n = used.get(stem) ?? 0;
    used.set(stem, n + 1);
    if (n) stem = `${stem}_${n}`;
    const entry: (typeof entries)[number] = { path: r.name, scores: {}, overlays: {}, ...(raw ? { raw: {} } : {}) };
    const plane = crop * crop;
    for (let q = 0; q < prompts.classes.length; q++) {
      const cls = prompts.classes[q];
      const map = r.maps.subarray(q * plane, (q + 1) * plane);
      const png = `${stem}__${classNames[q]}.png`;
      await writeFile(join(outDir, png), overlayPng(r.pixels, map, { alpha, mean, std }));
      entry.scores[cls] = r.scores[q];
      entry.overlays[cls] = png;
      if (raw) {
        const f = `${stem}__${classNames[q]}.f32`;
        await writeFile(join(outDir, f), Buffer.from(map.buffer, map.byteOffset, map.byteLength));
        entry.raw![cls] = f;
      }
    }
    entries.push(entry);
    // The index is rewritten as images finish, so an interrupted run still lists what it wrote.
    if (entries.length % 16 === 0) await writeIndex();
  }
  bar.end();
  await writeIndex();
  process.stderr.write(
    `carzero ground: ${entries.length} images x ${prompts.classes.length} classes -> ` +
      `${outDir}${skipped.length ? `, ${skipped.length} skipped` : ''}\n`,
  );
  for (const s of skipped.slice(0, 20)) process.stderr.write(`  skipped ${s.path}: ${s.error}\n`);
  return entries.length > 0 ? 0 : 1;
}
