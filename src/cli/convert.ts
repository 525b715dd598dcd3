// `carzero convert`: argument parsing and output for src/weights/convert.ts.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CarzeroError, ConvertError } from '../errors.js';
import { MODEL_NAME, modelStoreDir, shippedModelsDir } from '../model/store.js';
import { HELP_OPTION, oneOf, parseCommand, positiveInt, UsageError } from './args.js';
import { convertCheckpoint, formatConvertReport, type ConvertDType, type ConvertOptions } from '../weights/convert.js';

const CONVERT_USAGE =
  'usage: carzero convert --checkpoint <file.ckpt> --text-model <bert folder> ' +
  '(--out <model dir> | --name <name>) [options]';
export const CONVERT_HELP = `${CONVERT_USAGE}

Converts a CARZero PyTorch-Lightning checkpoint and its BERT folder into a carzero model directory
(config.json, model.safetensors, tokenizer.json, and manifest.json with each file's size and
sha256 and the checkpoint's). Nothing in the checkpoint is executed.

options:
  --checkpoint <file>   the CARZero .ckpt (required)
  --text-model <dir>    Hugging Face BERT folder: config.json, tokenizer files, fallback weights (required)
  --out <dir>           model directory to write
  --name <name>         write into the model store instead ($CARZERO_HOME/models/<name>; see
                        \`carzero models\`), then use it as --model <name> anywhere
  --vit-heads <n>       ViT attention heads (default 12)
  --head-heads <n>      alignment-head attention heads (default 4)
  --bert-heads <n>      BERT attention heads (default: the folder's config.json)
  --dtype <d>           keep | f32 | f16 | bf16 (default keep: as in the checkpoint)
  --force               overwrite existing files in --out
  --json                print the report as JSON
  -h, --help            this help
`;

const OPTIONS = {
  ...HELP_OPTION,
  checkpoint: { type: 'string' },
  'text-model': { type: 'string' },
  out: { type: 'string' },
  name: { type: 'string' },
  'vit-heads': { type: 'string' },
  'head-heads': { type: 'string' },
  'bert-heads': { type: 'string' },
  dtype: { type: 'string', default: 'keep' },
  force: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
} as const;

const DTYPES: readonly ConvertDType[] = ['keep', 'f32', 'f16', 'bf16'];

function parse(argv: string[]): { opts: ConvertOptions; json: boolean } | 'help' {
  const { values: v, positionals } = parseCommand(argv, OPTIONS, 'convert');
  if (v.help) return 'help';
  if (positionals.length) throw new UsageError(`carzero convert: unexpected argument '${positionals[0]}'`);
  for (const req of ['checkpoint', 'text-model'] as const)
    if (!v[req]) throw new UsageError(`carzero convert: missing --${req}`);
  if (!v.out === !v.name) throw new UsageError('carzero convert: give one of --out <dir> or --name <name>');
  let out = v.out;
  if (v.name !== undefined) {
    const name = v.name;
    if (!MODEL_NAME.test(name))
      throw new UsageError(
        "carzero convert: --name must be lower-case letters, digits, '.', '_' or '-' " +
          `(at most 64, starting with a letter or digit), got '${name}'`,
      );
    if (existsSync(join(shippedModelsDir(), name)))
      throw new UsageError(
        `carzero convert: --name ${name}: a model shipped with the package has that name; choose another`,
      );
    out = join(modelStoreDir(), name);
  }
  return {
    json: v.json,
    opts: {
      checkpoint: v.checkpoint!,
      textModel: v['text-model']!,
      out: out!,
      vitHeads: positiveInt(v['vit-heads'], 'vit-heads', 'convert', undefined),
      headHeads: positiveInt(v['head-heads'], 'head-heads', 'convert', undefined),
      bertHeads: positiveInt(v['bert-heads'], 'bert-heads', 'convert', undefined),
      dtype: oneOf(v.dtype, DTYPES, 'dtype', 'convert', 'keep'),
      force: v.force,
    },
  };
}

/** Runs `carzero convert`; returns the exit code (0 ok, 1 conversion failed, 2 usage). */
export async function runConvert(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`${e.message}\n\n${CONVERT_HELP}`);
    return 2;
  }
  if (parsed === 'help') {
    process.stdout.write(CONVERT_HELP);
    return 0;
  }
  const { opts, json } = parsed;
  try {
    const report = await convertCheckpoint(opts);
    process.stdout.write(
      json ? `${JSON.stringify({ ok: true, ...report }, null, 2)}\n` : `${formatConvertReport(report)}\n`,
    );
    return 0;
  } catch (e) {
    // Domain failures are reported (as JSON with --json); programming errors propagate.
    if (!(e instanceof CarzeroError)) throw e;
    if (json) {
      const problems = e instanceof ConvertError ? e.problems : [e.message];
      process.stdout.write(`${JSON.stringify({ ok: false, error: e.message, code: e.code, problems }, null, 2)}\n`);
    }
    process.stderr.write(`carzero convert: ${e.message.replace(/^convert: /, '')}\n`);
    return 1;
  }
}
