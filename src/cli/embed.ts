// `carzero embed`: image or text embeddings to a safetensors or JSON file.
import { writeFile, rename } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { extname } from 'node:path';
import { CARZero } from '../model/carzero.js';
import { loadPrompts } from '../text/index.js';
import { writeSafetensors, type SafetensorsInput } from '../weights/safetensors.js';
import { DEVICES, HELP_OPTION, oneOf, parseCommand, positiveInt, PRECISIONS, UsageError } from './args.js';
import { expandFrames, imageList } from './classify.js';
import { createProgress } from './progress.js';

const EMBED_USAGE =
  'usage: carzero embed --model <name|dir> --out <file.safetensors|file.json> (--images | --texts) <inputs...>';
export const EMBED_HELP = `${EMBED_USAGE}

Writes CARZero embeddings.
  --images <images... | list.csv>   global image embeddings (N, C) [and --local: (N, P, C)]
  --texts <prompts.json | strings...> sentence (Q, C) and word (Q, L, C) embeddings of prompts;
                                    a .json argument is a prompt file {class: prompt}, anything
                                    else is a text to embed

options:
  --model <name|dir>     a model name (carzero models) or a converted model directory
  --out <file>           .safetensors (tensors + names in __metadata__) or .json
  --local                with --images, also the local (patch) embeddings (large: P x C per image)
  --device <d>           auto | cpu | cuda (default auto)
  --precision <p>        fp32 | tf32 | bf16 (default fp32 on CPU, tf32 on CUDA)
  --root <dir>           base folder for relative paths in list.csv
  --frames <f>           first | all: the first frame of a multi-frame DICOM file (default) or
                         every frame, each named <path>#<frame> (0-based)
  --batch <n>            images per batch
  --quiet                no progress bar
  -h, --help             this help

Unreadable images are reported and skipped (listed in the output's "skipped"); the exit status is
non-zero only when nothing could be embedded.

examples:
  npx carzero embed --model ./carzero --images --out images.safetensors scans/*.png
  npx carzero embed --model ./carzero --texts --out prompts.safetensors openi_prompts.json
  npx carzero embed --model ./carzero --texts --out t.json "There is cardiomegaly" "There is edema"
`;

function f32Buffer(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

async function writeJsonAtomic(file: string, obj: unknown): Promise<void> {
  await writeFile(`${file}.tmp`, JSON.stringify(obj) + '\n');
  await rename(`${file}.tmp`, file);
}

function rows(a: Float32Array, n: number): number[][] {
  const d = a.length / Math.max(n, 1);
  return Array.from({ length: n }, (_, i) => Array.from(a.subarray(i * d, (i + 1) * d)));
}

export async function embedMain(argv: string[]): Promise<number> {
  const a = parseCommand(
    argv,
    {
      ...HELP_OPTION,
      model: { type: 'string' },
      out: { type: 'string' },
      device: { type: 'string', default: 'auto' },
      precision: { type: 'string' },
      root: { type: 'string' },
      batch: { type: 'string' },
      frames: { type: 'string', default: 'first' },
      images: { type: 'boolean', default: false },
      texts: { type: 'boolean', default: false },
      local: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
    },
    'embed',
  );
  const v = a.values;
  if (v.help) {
    process.stdout.write(EMBED_HELP);
    return 0;
  }
  const modelDir = v.model;
  const out = v.out;
  if (!modelDir) throw new UsageError('carzero embed: --model <name|dir> is required');
  if (!out) throw new UsageError('carzero embed: --out <file.safetensors|file.json> is required');
  const kind = extname(out).toLowerCase();
  if (kind !== '.safetensors' && kind !== '.json')
    throw new UsageError(`carzero embed: --out must end in .safetensors or .json, got '${out}'`);
  if (v.images === v.texts) throw new UsageError('carzero embed: give exactly one of --images or --texts');
  if (a.positionals.length === 0) throw new UsageError(`carzero embed: no ${v.images ? 'images' : 'texts'} given`);
  const device = oneOf(v.device, DEVICES, 'device', 'embed', 'auto');
  const precision = oneOf(v.precision, PRECISIONS, 'precision', 'embed', undefined);
  const batch = v.batch === undefined ? undefined : positiveInt(v.batch, 'batch', 'embed', 8);

  if (v.texts) {
    let classes: string[] | undefined;
    let texts: string[];
    if (
      a.positionals.length === 1 &&
      extname(a.positionals[0]).toLowerCase() === '.json' &&
      existsSync(a.positionals[0])
    ) {
      const set = await loadPrompts(a.positionals[0], {
        onWarning: (w) => process.stderr.write(`carzero embed: warning: ${w}\n`),
      });
      classes = set.classes;
      texts = set.prompts;
    } else texts = a.positionals;
    using model = await CARZero.load(modelDir, { device, precision });
    using emb = await model.embedTexts(texts);
    const sentence = (await emb.sentence.read()) as Float32Array;
    const words = (await emb.words.read()) as Float32Array;
    const meta = { kind: 'text', texts, cleaned: emb.cleaned, ...(classes ? { classes } : {}) };
    if (kind === '.json')
      await writeJsonAtomic(out, {
        ...meta,
        shape: { sentence: emb.sentence.shape, words: emb.words.shape },
        sentence: rows(sentence, emb.count),
      });
    else
      await writeSafetensors(
        out,
        [
          ['sentence', { dtype: 'F32', shape: emb.sentence.shape, data: f32Buffer(sentence) } as SafetensorsInput],
          ['words', { dtype: 'F32', shape: emb.words.shape, data: f32Buffer(words) } as SafetensorsInput],
        ],
        {
          metadata: {
            kind: 'text',
            texts: JSON.stringify(texts),
            cleaned: JSON.stringify(emb.cleaned),
            ...(classes ? { classes: JSON.stringify(classes) } : {}),
          },
        },
      );
    process.stderr.write(`carzero embed: ${emb.count} texts -> ${out}\n`);
    return 0;
  }

  const frames = oneOf(v.frames, ['first', 'all'] as const, 'frames', 'embed', 'first');
  const images = expandFrames(await imageList(a.positionals, v.root), frames);
  const local = v.local;
  using model = await CARZero.load(modelDir, { device, precision });
  const bar = createProgress({ label: 'carzero embed', total: images.length, enabled: !v.quiet });
  const names: string[] = [];
  const globals: Float32Array[] = [];
  const locals: Float32Array[] = [];
  const skipped: { path: string; error: string }[] = [];
  for await (const r of model.embedImageStream({
    images,
    local,
    batchSize: batch,
    onProgress: (e) => bar.update(e.done),
  })) {
    if ('error' in r) {
      bar.log(`carzero embed: skipping ${r.name}: ${r.error.message}`);
      skipped.push({ path: r.name, error: r.error.message });
      continue;
    }
    names.push(r.name);
    globals.push(r.global);
    if (r.local) locals.push(r.local);
  }
  bar.end();
  if (names.length === 0) {
    process.stderr.write(`carzero embed: nothing embedded (${skipped.length} skipped)\n`);
    return 1;
  }
  const C = globals[0].length;
  const N = names.length;
  if (kind === '.json') {
    await writeJsonAtomic(out, {
      kind: 'image',
      images: names,
      skipped,
      shape: [N, C],
      global: globals.map((g) => Array.from(g)),
      ...(local ? { local: locals.map((l) => Array.from(l)) } : {}),
    });
  } else {
    const concat = (parts: Float32Array[]) => () => Buffer.concat(parts.map(f32Buffer));
    const tensors: [string, SafetensorsInput][] = [
      ['global', { dtype: 'F32', shape: [N, C], data: concat(globals) } as SafetensorsInput],
    ];
    if (local)
      tensors.push([
        'local',
        { dtype: 'F32', shape: [N, locals[0].length / C, C], data: concat(locals) } as SafetensorsInput,
      ]);
    await writeSafetensors(out, tensors, {
      metadata: { kind: 'image', images: JSON.stringify(names), skipped: JSON.stringify(skipped) },
    });
  }
  process.stderr.write(`carzero embed: ${N} images -> ${out}${skipped.length ? `, ${skipped.length} skipped` : ''}\n`);
  for (const s of skipped.slice(0, 20)) process.stderr.write(`  skipped ${s.path}: ${s.error}\n`);
  return 0;
}
