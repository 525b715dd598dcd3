// The parser families the fuzz harness drives (tools/fuzz/run.ts): each has seeds (committed
// fixtures, themselves made by scripts and by independent implementations: OpenCV, pydicom/dcmtk,
// PyTorch), a format-aware mutator, and a runner that feeds one input to the package's real
// entry point and says whether it was accepted or refused.
//
// A runner's verdicts: 'accepted', 'refused' (a CarzeroError naming the input), or a Finding:
// an error of another class (TypeError, RangeError, ...), a refusal that does not name the input,
// or a wrong acceptance (a damaged checkpoint read to tensors other than the intact file's; the
// safetensors readers disagreeing).
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CarzeroError } from '../../src/errors.js';
import { ImageFeed } from '../../src/image/feed.js';
import { CARZero } from '../../src/model/carzero.js';
import { info } from '../../src/info.js';
import { parsePrompts } from '../../src/text/prompts.js';
import { parseCsv } from '../../src/data/csv.js';
import { readSafetensors } from '../../src/weights/safetensors.js';
import { loadTorchCheckpoint } from '../../src/weights/torch-zip.js';
import { BufferSource, ZipArchive } from '../../src/weights/zip.js';
import { zipStored } from './zip-stored.js';
import {
  Rng,
  byteMutation,
  csvMutation,
  dicomMutation,
  jpegMutation,
  jsonMutation,
  pickleMutation,
  pngMutation,
  safetensorsMutation,
  zipMutation,
} from './mutate.js';

export class Finding extends Error {
  constructor(
    readonly kind: 'foreign-error' | 'unnamed-error' | 'wrong-acceptance' | 'readers-disagree',
    message: string,
  ) {
    super(message);
  }
}

export type Verdict = 'accepted' | 'refused';

export interface Ctx {
  /** A scratch folder of this worker. */
  tmp: string;
  /** The tiny model directory (a converted copy, made by the parent). */
  model: string;
}

export interface Family {
  name: string;
  seeds(root: string, model: string): string[];
  /** The bytes a seed file contributes (default: the file). */
  loadSeed?(file: string): Promise<Buffer>;
  mutate(rng: Rng, seed: Buffer, others: readonly Buffer[]): Buffer;
  run(input: Buffer, seed: Buffer, seedFile: string, ctx: Ctx): Promise<Verdict>;
}

/** A thrown value as a verdict: refused when it is the package's own error naming `label`. */
export function judge(e: unknown, label: string): Verdict {
  if (e instanceof Finding) throw e;
  if (!(e instanceof CarzeroError)) {
    const err = e as Error;
    throw new Finding('foreign-error', `${err?.name ?? typeof e}: ${String(err?.message ?? e).slice(0, 300)}`);
  }
  if (!e.message.includes(label))
    throw new Finding('unnamed-error', `${e.name} without '${label}': ${e.message.slice(0, 300)}`);
  return 'refused';
}

const files = (dir: string, re: RegExp, maxBytes = 400_000) => {
  try {
    return readdirSync(dir)
      .filter((f) => re.test(f))
      .map((f) => join(dir, f))
      .filter((f) => statSync(f).size <= maxBytes);
  } catch {
    return [];
  }
};

/**
 * A copy of the tiny model in the worker's scratch folder with one file replaced by `bytes` (no
 * manifest.json, so nothing but the loader itself stands between the file and the model).
 */
function modelDirWith(ctx: Ctx, name: string, replaced: string, bytes: Buffer): string {
  const dir = join(ctx.tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(ctx.model))
    if (f !== replaced && f !== 'manifest.json' && !f.startsWith('.')) copyFileSync(join(ctx.model, f), join(dir, f));
  writeFileSync(join(dir, replaced), bytes);
  return dir;
}

// ---- images: the feed, native and JavaScript decoders ----------------------------------------------
let feeds: ImageFeed[] | undefined;
function imageFeeds(): ImageFeed[] {
  if (!feeds) {
    feeds = [new ImageFeed({ decoder: 'js' })];
    if (info().images.png) feeds.push(new ImageFeed({ decoder: 'native', threads: 1 }));
  }
  return feeds;
}
async function runImage(input: Buffer, label: string): Promise<Verdict> {
  let verdict: Verdict = 'accepted';
  for (const feed of imageFeeds()) {
    try {
      await feed.load(input, { output: 'crop' }, label);
    } catch (e) {
      if (judge(e, label) === 'refused') verdict = 'refused';
    }
  }
  return verdict;
}
const image = (name: string, re: RegExp, mutate: Family['mutate']): Family => ({
  name,
  seeds: (root) => [
    ...files(join(root, 'test/fixtures/tiny/images'), re),
    ...files(join(root, 'test/fixtures/image/src'), re),
    ...files(join(root, 'test/fixtures/dicom'), re),
  ],
  mutate,
  run: (input, _seed, _file, ctx) => runImage(input, join(ctx.tmp, `input.${name}`)),
});

// ---- safetensors: both readers on the same file ---------------------------------------------------
// name -> [dtype and shape, bytes]
async function tensorsOf(file: string): Promise<Map<string, [string, Buffer]>> {
  const c = await readSafetensors(file);
  const m = new Map<string, [string, Buffer]>();
  for (const [k, t] of c.tensors) m.set(k, [`${t.dtype}${JSON.stringify(t.shape)}`, Buffer.from(t.data)]);
  return m;
}
const seedTensors = new Map<string, Map<string, [string, Buffer]>>();
let nativeRuns = 0;
const safetensors: Family = {
  name: 'safetensors',
  seeds: (_root, model) => [join(model, 'model.safetensors')],
  // The header only: safetensors has no checksum, so changed tensor bytes are a different file,
  // not a misread; a changed header must be refused or read to the intact file's tensors.
  mutate: (rng, seed) => {
    if (rng.chance(0.8) || seed.length < 8) return safetensorsMutation(rng, seed);
    const n = Math.min(seed.length, 8 + Number(seed.readBigUInt64LE(0)));
    return Buffer.concat([byteMutation(rng, seed.subarray(0, n)), seed.subarray(n)]);
  },
  async run(input, _seed, seedFile, ctx) {
    const dir = modelDirWith(ctx, 'st-model', 'model.safetensors', input);
    const file = join(dir, 'model.safetensors');
    let ts: Verdict;
    try {
      const got = await tensorsOf(file);
      if (!seedTensors.has(seedFile)) seedTensors.set(seedFile, await tensorsOf(seedFile));
      const want = seedTensors.get(seedFile)!;
      // a tensor the header still describes as before must read as before
      for (const [k, [sig, bytes]] of got) {
        const w = want.get(k);
        if (w && w[0] === sig && !w[1].equals(bytes))
          throw new Finding('wrong-acceptance', `tensor '${k}' (${sig}) read with other bytes than the intact file's`);
      }
      ts = 'accepted';
    } catch (e) {
      ts = judge(e, file);
    }
    // the native reader (CARZero.load) on every 4th input: it must agree with the TypeScript one
    if (nativeRuns++ % 4 === 0) {
      let nat: Verdict;
      try {
        (await CARZero.load(dir, { verify: 'never' })).dispose();
        nat = 'accepted';
      } catch (e) {
        nat = judge(e, 'model.safetensors');
      }
      // the native loader also needs every tensor the model uses: it may refuse what TS accepts
      if (nat === 'accepted' && ts === 'refused')
        throw new Finding('readers-disagree', 'the native reader accepted a file the TypeScript reader refused');
    }
    return ts;
  },
};

// ---- checkpoints: zip records, and pickles inside an intact archive --------------------------------
const seedStates = new Map<string, Map<string, Buffer>>();
async function stateOf(file: string): Promise<Map<string, Buffer>> {
  const c = await loadTorchCheckpoint(file);
  const m = new Map<string, Buffer>();
  for (const [k, t] of c.stateDict)
    m.set(k, Buffer.concat([Buffer.from(`${t.dtype}${JSON.stringify(t.shape)}`), t.data]));
  return m;
}
const checkpoint: Family = {
  name: 'checkpoint',
  seeds: (root) => [
    join(root, 'test/fixtures/tiny/carzero-tiny-halves.ckpt'),
    ...files(join(root, 'test/fixtures/weights'), /\.(ckpt|bin)$/),
  ],
  mutate: (rng, seed) => (rng.chance(0.7) ? zipMutation(rng, seed) : byteMutation(rng, seed)),
  async run(input, _seed, seedFile, ctx) {
    const file = join(ctx.tmp, 'input.ckpt');
    writeFileSync(file, input);
    try {
      const got = await stateOf(file);
      // A zip checkpoint's records are covered by CRC-32: whatever loads must be the intact
      // file's tensors. (The legacy format has no checksum: changed bytes there are a different
      // file, not a misread.)
      if (seedFile.endsWith('.ckpt') && input.subarray(0, 2).toString('latin1') === 'PK') {
        if (!seedStates.has(seedFile)) seedStates.set(seedFile, await stateOf(seedFile));
        const want = seedStates.get(seedFile)!;
        for (const [k, v] of got)
          if (want.has(k) && !want.get(k)!.equals(v))
            throw new Finding('wrong-acceptance', `tensor '${k}' read with other bytes than the intact file's`);
      }
      return 'accepted';
    } catch (e) {
      return judge(e, file);
    }
  },
};

const archives = new Map<string, [string, Buffer][]>();
async function entriesOf(file: string): Promise<[string, Buffer][]> {
  if (!archives.has(file)) {
    const zip = await ZipArchive.open(new BufferSource(readFileSync(file)), file);
    const out: [string, Buffer][] = [];
    for (const name of zip.entries.keys()) out.push([name, Buffer.from(await zip.read(name))]);
    archives.set(file, out);
  }
  return archives.get(file)!;
}
const pickle: Family = {
  name: 'pickle',
  seeds: (root) => [
    join(root, 'test/fixtures/tiny/carzero-tiny-halves.ckpt'),
    join(root, 'test/fixtures/weights/mixed.ckpt'),
  ],
  // the seed is the checkpoint's data.pkl; the other records come back around it in run()
  loadSeed: async (file) => (await entriesOf(file)).find(([n]) => n.endsWith('data.pkl'))![1],
  mutate: (rng, seed) => (rng.chance(0.8) ? pickleMutation(rng, seed) : byteMutation(rng, seed)),
  async run(input, _seed, seedFile, ctx) {
    const entries = await entriesOf(seedFile);
    const file = join(ctx.tmp, 'input-pkl.ckpt');
    writeFileSync(file, zipStored(entries.map(([n, d]): [string, Buffer] => [n, n.endsWith('data.pkl') ? input : d])));
    try {
      await loadTorchCheckpoint(file);
      return 'accepted';
    } catch (e) {
      return judge(e, file);
    }
  },
};

// ---- model config.json ---------------------------------------------------------------------------
const config: Family = {
  name: 'config',
  seeds: (_root, model) => [join(model, 'config.json')],
  mutate: (rng, seed) => jsonMutation(rng, seed),
  async run(input, _seed, _file, ctx) {
    const dir = modelDirWith(ctx, 'cfg-model', 'config.json', input);
    try {
      (await CARZero.load(dir, { verify: 'never' })).dispose();
      return 'accepted';
    } catch (e) {
      return judge(e, 'config.json');
    }
  },
};

// ---- prompts and CSV: text parsers ---------------------------------------------------------------
const prompts: Family = {
  name: 'prompts',
  seeds: (root) => [
    join(root, 'test/fixtures/tiny/text/prompts.json'),
    join(root, 'weights/phantom-demo/prompts.json'),
  ],
  mutate: (rng, seed) => jsonMutation(rng, seed),
  async run(input, _seed, _file, ctx) {
    const label = join(ctx.tmp, 'prompts.json');
    try {
      parsePrompts(input.toString('utf8'), label);
      return 'accepted';
    } catch (e) {
      return judge(e, label);
    }
  },
};
const csv: Family = {
  name: 'csv',
  seeds: (root) => [
    join(root, 'test/fixtures/data/mimic.csv'),
    ...files(join(root, 'test/fixtures/eval/openi'), /\.csv$/, 100_000),
  ],
  mutate: (rng, seed) => csvMutation(rng, seed),
  async run(input, _seed, _file, ctx) {
    const label = join(ctx.tmp, 'table.csv');
    try {
      parseCsv(input.toString('utf8'), label);
      return 'accepted';
    } catch (e) {
      return judge(e, label);
    }
  },
};

export const FAMILIES: Family[] = [
  image('png', /\.png$/, (rng, s, o) => (rng.chance(0.7) ? pngMutation(rng, s) : byteMutation(rng, s, o))),
  image('jpeg', /\.jpe?g$/, (rng, s, o) => (rng.chance(0.6) ? jpegMutation(rng, s) : byteMutation(rng, s, o))),
  image('dicom', /\.dcm$/, (rng, s, o) => (rng.chance(0.6) ? dicomMutation(rng, s) : byteMutation(rng, s, o))),
  safetensors,
  checkpoint,
  pickle,
  config,
  prompts,
  csv,
];

export function familyByName(name: string): Family {
  const f = FAMILIES.find((x) => x.name === name);
  if (!f) throw new Error(`unknown family '${name}' (${FAMILIES.map((x) => x.name).join(', ')})`);
  return f;
}

/** The input `index` of a family: 1-3 stacked mutations of one seed, from (seed, index) alone. */
export function makeInput(
  family: Family,
  seeds: readonly Buffer[],
  runSeed: number,
  index: number,
): { input: Buffer; seedIndex: number } {
  const rng = new Rng((runSeed * 0x9e3779b1) ^ (index * 0x85ebca6b) ^ family.name.length);
  const seedIndex = rng.int(seeds.length);
  let input = seeds[seedIndex]!;
  for (let n = 1 + rng.int(3); n > 0; n--) input = family.mutate(rng, input, seeds);
  return { input, seedIndex };
}
