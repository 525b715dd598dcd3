// `carzero prepare`: pack a MIMIC-CXR-style split's frontal images, decoded and padded to 256x256,
// into shard files that the training loader streams (format: src/data/shards.ts).
import { readMimicCsv, describeDataset, type MimicColumns } from '../data/mimic.js';
import { prepareShards } from '../data/shards.js';
import { defaultWorkers } from '../data/loader.js';
import { HELP_OPTION, nonNegativeInt, parseCommand, positiveInt, UsageError } from './args.js';
import { createProgress } from './progress.js';

export const PREPARE_HELP = `usage: carzero prepare --csv <mimic.csv> --root <dir> --out <dir> [options]

Decodes the frontal images of one split (resized and zero-padded to 256x256, as the inference and
training preprocessing do) and packs them with their cleaned report sentences into shard files
(<out>/shard-NNNNN.bin + <out>/index.json) for the training loader. Rerunning keeps the complete
shards already written and redoes the rest.

options:
  --csv <file>           CSV with image path, split, view and report columns (the original's
                         Path, Split, Frontal/Lateral, Report Impression, or MIMIC's ViewPosition)
  --root <dir>           base folder for relative image paths (default: the CSV's folder)
  --out <dir>            output folder
  --split <name>         train | validate | test (default train; validate also matches valid/val)
  --shard-size <n>       images per shard (default 1024)
  --workers <n>          decoding threads (default: ${defaultWorkers()} on this machine)
  --path-col <name>      image path column     --split-col <name>   split column
  --view-col <name>      view column           --report-col <name>  report column (repeat with
                                                                      commas to concatenate)
  --max-words <n>        stop a report's sentences when the running word count equals n, as the
                         original does with captions_per_image (default 5; 0 = keep all)
  --quiet                no progress bar
  -h, --help             this help

Unreadable images are reported and left out; the exit status is non-zero only when nothing could
be packed.

example:
  npx carzero prepare --csv mimic-cxr.csv --root /data/mimic --out /data/mimic-train --split train
`;

export async function prepareMain(argv: string[]): Promise<number> {
  const a = parseCommand(
    argv,
    {
      ...HELP_OPTION,
      csv: { type: 'string' },
      root: { type: 'string' },
      out: { type: 'string' },
      split: { type: 'string', default: 'train' },
      'shard-size': { type: 'string' },
      workers: { type: 'string' },
      'path-col': { type: 'string' },
      'split-col': { type: 'string' },
      'view-col': { type: 'string' },
      'report-col': { type: 'string' },
      'max-words': { type: 'string' },
      quiet: { type: 'boolean', default: false },
    },
    'prepare',
  );
  const v = a.values;
  if (v.help) {
    process.stdout.write(PREPARE_HELP);
    return 0;
  }
  if (a.positionals.length > 0) throw new UsageError(`carzero prepare: unexpected argument '${a.positionals[0]}'`);
  const csv = v.csv;
  const out = v.out;
  if (!csv) throw new UsageError('carzero prepare: --csv <mimic.csv> is required');
  if (!out) throw new UsageError('carzero prepare: --out <dir> is required');
  const shardSize = positiveInt(v['shard-size'], 'shard-size', 'prepare', 1024);
  const workers = nonNegativeInt(v.workers, 'workers', 'prepare', defaultWorkers());
  const maxWords = nonNegativeInt(v['max-words'], 'max-words', 'prepare', 5);
  const columns: MimicColumns = {};
  if (v['path-col'] !== undefined) columns.path = v['path-col'];
  if (v['split-col'] !== undefined) columns.split = v['split-col'];
  if (v['view-col'] !== undefined) columns.view = v['view-col'];
  if (v['report-col'] !== undefined) columns.report = v['report-col'].split(',');

  const dataset = await readMimicCsv(csv, { root: v.root, split: v.split, columns, maxWords });
  const progress = createProgress({ label: 'prepare', total: dataset.items.length, enabled: !v.quiet });
  progress.log(`carzero prepare: ${describeDataset(dataset)}`);
  if (dataset.items.length === 0) {
    progress.log('carzero prepare: nothing to pack');
    return 1;
  }
  const r = await prepareShards(dataset, out, {
    shardSize,
    workers,
    onProgress: (done, total) => progress.update(done, total),
    onError: (item, error) => {
      progress.log(`carzero prepare: skipped ${item.key} (line ${item.row}): ${error}`);
    },
  });
  progress.end();
  process.stderr.write(
    `carzero prepare: ${r.index.items.length} images in ${r.index.shards.length} shards under ${out} ` +
      `(${r.written} written, ${r.kept} kept from an earlier run); ${r.index.failed.length} unreadable\n`,
  );
  return r.index.items.length > 0 ? 0 : 1;
}
