#!/usr/bin/env node
// carzero command line. Subcommands live in their own modules; this file only dispatches.
import { CarzeroError } from '../errors.js';
import { formatInfo, info } from '../info.js';

const HELP = `usage: carzero <command> [options]

commands:
  info [--json]    version, CPU features in use, threads, and whether CUDA is available (and if
                   not, why)
  convert --checkpoint <ckpt> --text-model <bert dir> --out <dir> [--json]
                   turn a CARZero checkpoint into a carzero model directory
                   (\`carzero convert --help\` for all options)
  classify --model <dir> --prompts <json> [options] <images... | list.csv>
                   zero-shot scores of images against class prompts
                   (\`carzero classify --help\` for all options)

options:
  -h, --help       this help
  -v, --version    the package version

examples:
  npx carzero info
  npx carzero info --json
  npx carzero convert --checkpoint CARZero.ckpt --text-model BioClinicalMPBERT --out carzero-model
  npx carzero classify --model carzero-model --prompts prompts.json --format csv images/*.png
`;

// A closed pipe (`carzero info | head -1`) is not an error worth a stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

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
  if (cmd === 'info') {
    for (const a of rest)
      if (a !== '--json') {
        process.stderr.write(`carzero info: unknown option '${a}'\n`);
        return 2;
      }
    const i = info();
    process.stdout.write(rest.includes('--json') ? `${JSON.stringify(i, null, 2)}\n` : `${formatInfo(i)}\n`);
    return 0;
  }
  // Loaded on demand: convert pulls in the weight readers and the tokenizer library.
  if (cmd === 'convert') return (await import('./convert.js')).runConvert(rest);
  if (cmd === 'classify') {
    const { classifyMain } = await import('./classify.js');
    const { UsageError } = await import('./args.js');
    try {
      return await classifyMain(rest);
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
