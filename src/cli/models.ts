// `carzero models`: the shipped models and the user's store (src/model/store.ts).
import {
  listModels,
  modelStoreDir,
  readRegistry,
  resolveModel,
  shippedModelsDir,
  verifyModel,
  type ListedModel,
} from '../model/store.js';
import { HELP_OPTION, parseCommand, UsageError } from './args.js';

export const MODELS_HELP = `usage: carzero models [list] [--json]
       carzero models verify [<name|dir>...] [--json]
       carzero models path <name>

list     the models shipped with the package (weights/) and those in your store
         (${'$'}CARZERO_HOME/models, else the platform's cache folder): name, where, size, weight
         precision, and whether the files were verified against their manifest as they are now
verify   hash every file of the named models (default: all listed) against manifest.json;
         exit status 1 when one differs
path     print a model's directory (e.g. to find its prompts.json)

A model name works wherever a model directory does: --model <name>, CARZero.load('<name>').
Add one with \`carzero convert ... --name <name>\`.
`;

function mib(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`;
}

function table(rows: string[][]): string {
  const w = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  return (
    rows
      .map((r) =>
        r
          .map((c, j) => (j === r.length - 1 ? c : c.padEnd(w[j])))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

export async function modelsMain(argv: string[]): Promise<number> {
  const a = parseCommand(argv, { ...HELP_OPTION, json: { type: 'boolean', default: false } }, 'models');
  if (a.values.help) {
    process.stdout.write(MODELS_HELP);
    return 0;
  }
  const [sub = 'list', ...rest] = a.positionals;
  const json = a.values.json;
  if (sub === 'list') {
    if (rest.length) throw new UsageError(`carzero models list: unexpected argument '${rest[0]}'`);
    const models = await listModels();
    if (json) {
      process.stdout.write(
        `${JSON.stringify({ shipped: shippedModelsDir(), store: modelStoreDir(), models }, null, 2)}\n`,
      );
      return 0;
    }
    const rows = [['name', 'where', 'size', 'precision', 'verified', 'description']];
    for (const m of models)
      rows.push([
        m.name,
        m.origin,
        mib(m.bytes),
        m.precision,
        m.verified === 'none' ? 'no manifest' : m.verified === 'yes' ? 'yes' : 'not yet',
        m.description ?? '',
      ]);
    process.stdout.write(table(rows));
    process.stdout.write(`\nshipped: ${shippedModelsDir()}\nstore:   ${modelStoreDir()}\n`);
    const registry = await readRegistry().catch(() => ({}));
    const missing = Object.keys(registry).filter((n) => !models.some((m) => m.name === n));
    for (const n of missing)
      process.stdout.write(
        `not installed: ${n} (weights/registry.json says how to convert it: carzero convert ... --name ${n})\n`,
      );
    return 0;
  }
  if (sub === 'path') {
    if (rest.length !== 1) throw new UsageError('carzero models path: give one model name');
    process.stdout.write(`${resolveModel(rest[0]).dir}\n`);
    return 0;
  }
  if (sub === 'verify') {
    const targets: { label: string; dir: string }[] = rest.length
      ? rest.map((n) => ({ label: n, dir: resolveModel(n).dir }))
      : (await listModels()).map((m: ListedModel) => ({ label: m.name, dir: m.dir }));
    const results = [];
    let bad = 0;
    for (const t of targets) {
      const r = await verifyModel(t.dir);
      results.push({ model: t.label, ...r });
      if (!r.ok) bad++;
      if (!json) {
        if (!r.manifest) process.stdout.write(`${t.label}: no manifest.json in ${t.dir}: nothing to verify against\n`);
        else if (r.ok) process.stdout.write(`${t.label}: ok (${r.files.length} files match manifest.json)\n`);
        else
          for (const f of r.files.filter((x) => !x.ok))
            process.stdout.write(`${t.label}: FAILED ${f.file}: ${f.problem}\n`);
      }
    }
    if (json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    if (!targets.length && !json) process.stdout.write('no models to verify\n');
    return bad ? 1 : 0;
  }
  throw new UsageError(`carzero models: unknown subcommand '${sub}' (list, verify, path)`);
}
