#!/usr/bin/env node
// carzero command line. Subcommands live in their own modules; this file only dispatches.
import { CarzeroError } from '../errors.js';
import { formatInfo, info } from '../info.js';
import { parseCommand, UsageError } from './args.js';

const HELP = `usage: carzero <command> [options]

commands:
  info [--json]    version, CPU features in use, threads, and whether CUDA is available (and if
                   not, why)
  convert --checkpoint <ckpt> --text-model <bert dir> (--out <dir> | --name <name>) [--json]
                   turn a CARZero checkpoint into a carzero model directory, or into the model
                   store under a name (\`carzero convert --help\` for all options)
  models [list | verify [<name>...] | path <name>]
                   the shipped models (phantom-demo) and your store; hash checks
  classify --model <name|dir> [--prompts <json>] [options] <images... | list.csv>
                   zero-shot scores of images against class prompts (default: the model's own
                   prompts.json) (\`carzero classify --help\` for all options)
  embed --model <dir> --out <file> (--images | --texts) <inputs...>
                   image or prompt embeddings to .safetensors or .json
  ground --model <dir> --prompts <json> --out <dir> <images... | list.csv>
                   grounding heat-map overlays (PNG) per image and class, with an index.json
  eval --protocol <name> --labels <file> (--scores <csv> | --model <dir> --images <csv> --prompts <json>)
                   the original evaluation protocols: AUROC, AUPRC (trapezoid), groups, F1,
                   accuracy (\`carzero eval --help\` for all options)
  prepare --csv <mimic.csv> --root <dir> --out <dir> [--split train] [--shard-size 1024]
                   pack a split's padded frontal images + report sentences into training shards
  train --config <json> --out <run dir> | --resume <run dir> | --print-config
                   fine-tune a converted model with the original recipe; checkpoints, exact resume
                   (\`carzero train --help\` for all options)
  demo [--pretrained] [--out <dir>] [--device cpu|cuda] [--quick]
                   phantom X-rays -> a small CARZero trained from scratch (or, --pretrained, the
                   shipped phantom-demo model, in seconds) -> zero-shot AUROC table, ROC/PR plots
                   and grounding overlays (\`carzero demo --help\`)

options:
  -h, --help       this help
  -v, --version    the package version

examples:
  npx carzero demo --pretrained
  npx carzero classify --model phantom-demo images/*.png
  npx carzero info
  npx carzero info --json
  npx carzero convert --checkpoint CARZero.ckpt --text-model BioClinicalMPBERT --name carzero
  npx carzero classify --model carzero --prompts prompts.json --format csv images/*.png
  npx carzero eval --protocol openi --labels custom.csv --scores openi_scores.csv
  npx carzero embed --model carzero-model --images --out images.safetensors images/*.png
  npx carzero demo --out carzero-demo
  npx carzero ground --model carzero-model --prompts prompts.json --out maps/ images/a.png
`;

// A closed pipe (`carzero info | head -1`) is not an error worth a stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

async function infoMain(argv: string[]): Promise<number> {
  const a = parseCommand(argv, { json: { type: 'boolean', default: false } }, 'info');
  if (a.positionals.length) throw new UsageError(`carzero info: unexpected argument '${a.positionals[0]}'`);
  const i = info();
  process.stdout.write(a.values.json ? `${JSON.stringify(i, null, 2)}\n` : `${formatInfo(i)}\n`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    process.stdout.write(HELP);
    return cmd ? 0 : 1;
  }
  if (cmd === '-v' || cmd === '--version') {
    process.stdout.write(`${info().version}\n`);
    return 0;
  }
  // Loaded on demand: convert pulls in the weight readers and the tokenizer library.
  if (cmd === 'convert') return (await import('./convert.js')).runConvert(rest);
  const sub: Record<string, () => Promise<(argv: string[]) => Promise<number>>> = {
    info: async () => infoMain,
    classify: async () => (await import('./classify.js')).classifyMain,
    embed: async () => (await import('./embed.js')).embedMain,
    ground: async () => (await import('./ground.js')).groundMain,
    eval: async () => (await import('./eval.js')).evalMain,
    prepare: async () => (await import('./prepare.js')).prepareMain,
    train: async () => (await import('./train.js')).trainMain,
    demo: async () => (await import('./demo.js')).demoMain,
    models: async () => (await import('./models.js')).modelsMain,
  };
  if (Object.hasOwn(sub, cmd)) {
    const fn = await sub[cmd]();
    try {
      return await fn(rest);
    } catch (e) {
      if (e instanceof UsageError) {
        process.stderr.write(`${e.message}\n`);
        return 2;
      }
      throw e;
    }
  }
  process.stderr.write(`carzero: unknown command '${cmd}'\n\n${HELP}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const msg = e instanceof CarzeroError ? `${e.message} (${e.code})` : e instanceof Error ? e.message : String(e);
    process.stderr.write(`carzero: ${msg}\n`);
    process.exitCode = 1;
  },
);
