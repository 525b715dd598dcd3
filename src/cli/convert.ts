// `carzero convert`: argument parsing and output for src/weights/convert.ts.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CarzeroError, ConvertError } from '../errors.js';
import { MODEL_NAME, modelStoreDir, shippedModelsDir } from '../model/store.js';
import { convertCheckpoint, formatConvertReport, type ConvertDType, type ConvertOptions } from '../weights/convert.js';

export const CONVERT_HELP = `usage: carzero convert --checkpoint <file.ckpt> --text-model <bert folder> (--out <model dir> | --name <name>) [options]

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

const VALUE_OPTS = ['--checkpoint', '--text-model', '--out', '--name', '--vit-heads', '--head-heads', '--bert-heads', '--dtype'] as const;

class UsageError extends Error {}

function parse(argv: string[]): { opts: ConvertOptions; json: boolean } | 'help' {
  const v: Record<string, string> = {};
  let json = false;
  let force = false;
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]!;
    if (a === '-h' || a === '--help') return 'help';
    if (a === '--json') json = true;
    else if (a === '--force') force = true;
    else {
      let val: string | undefined;
      const eq = a.indexOf('=');
      if (a.startsWith('--') && eq > 0) {
        val = a.slice(eq + 1);
        a = a.slice(0, eq);
      }
      if (!(VALUE_OPTS as readonly string[]).includes(a)) throw new UsageError(`unknown option '${a}'`);
      if (val === undefined) {
        val = argv[++i];
        if (val === undefined || val.startsWith('--')) throw new UsageError(`option '${a}' needs a value`);
      }
      v[a] = val;
    }
  }
  for (const req of ['--checkpoint', '--text-model']) if (!v[req]) throw new UsageError(`missing ${req}`);
  if (!v['--out'] === !v['--name']) throw new UsageError('give one of --out <dir> or --name <name>');
  if (v['--name'] !== undefined) {
    const name = v['--name'];
    if (!MODEL_NAME.test(name)) throw new UsageError(`--name must be lower-case letters, digits, '.', '_' or '-' (at most 64, starting with a letter or digit), got '${name}'`);
    if (existsSync(join(shippedModelsDir(), name))) throw new UsageError(`--name ${name}: a model shipped with the package has that name; choose another`);
    v['--out'] = join(modelStoreDir(), name);
  }
  const int = (k: string): number | undefined => {
    if (v[k] === undefined) return undefined;
    const n = Number(v[k]);
    if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`${k} must be a positive integer, got '${v[k]}'`);
    return n;
  };
  const dtype = v['--dtype'] ?? 'keep';
  if (!['keep', 'f32', 'f16', 'bf16'].includes(dtype)) throw new UsageError(`--dtype must be keep, f32, f16 or bf16, got '${dtype}'`);
  return {
    json,
    opts: {
      checkpoint: v['--checkpoint']!,
      textModel: v['--text-model']!,
      out: v['--out']!,
      vitHeads: int('--vit-heads'),
      headHeads: int('--head-heads'),
      bertHeads: int('--bert-heads'),
      dtype: dtype as ConvertDType,
      force,
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
    process.stderr.write(`carzero convert: ${e.message}\n\n${CONVERT_HELP}`);
    return 2;
  }
  if (parsed === 'help') {
    process.stdout.write(CONVERT_HELP);
    return 0;
  }
  const { opts, json } = parsed;
  try {
    const report = await convertCheckpoint(opts);
    process.stdout.write(json ? `${JSON.stringify({ ok: true, ...report }, null, 2)}\n` : `${formatConvertReport(report)}\n`);
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
