// Damaged model directories (issue 17, classes 1 and 5): one corpus of damaged model.safetensors
// files that both readers must refuse, the TypeScript one (readSafetensors: convert, inspection)
// and the native one (CARZero.load: every CLI command), so the two cannot drift apart again; and
// config.json values that used to fail later, in every image, with a RangeError.
import test from 'ava';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CARZero } from '../src/model/carzero.js';
import { readSafetensors } from '../src/weights/safetensors.js';
import { tinyModel } from './zeroshot-helpers.js';

const { dir: intact, work } = await tinyModel();
test.after.always(() => rmSync(work, { recursive: true, force: true }));
const original = readFileSync(join(intact, 'model.safetensors'));
const headerLen = Number(original.readBigUInt64LE(0));
const header = JSON.parse(original.toString('utf8', 8, 8 + headerLen)) as Record<
  string,
  { dtype: string; shape: number[]; data_offsets: [number, number] }
>;
const data = original.subarray(8 + headerLen);
const names = Object.keys(header).filter((k) => k !== '__metadata__');
const byOffset = [...names].sort((a, b) => header[a]!.data_offsets[0] - header[b]!.data_offsets[0]);

function file(h: unknown, d: Buffer = data, lenDelta = 0): Buffer {
  const json = Buffer.from(typeof h === 'string' ? h : JSON.stringify(h));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length + lenDelta));
  return Buffer.concat([len, json, d]);
}
function edit(f: (h: typeof header) => void): Buffer {
  const h = structuredClone(header);
  f(h);
  return file(h);
}

const first = byOffset[0]!;
const second = byOffset[1]!;
const last = byOffset[byOffset.length - 1]!;
const corpus: [string, Buffer][] = [
  ['header length one byte short', file(header, data, -1)],
  ['header length one byte long', file(header, data, 1)],
  ['header length past the end of the file', file(header, data, original.length)],
  [
    'a tensor shifted one byte into its neighbour',
    edit((h) => (h[second]!.data_offsets = [h[second]!.data_offsets[0] - 1, h[second]!.data_offsets[1] - 1])),
  ],
  [
    'two tensors aliasing the same bytes',
    edit((h) => (h[second]!.data_offsets = [...h[first]!.data_offsets] as [number, number])),
  ],
  ['trailing bytes after the data section', file(header, Buffer.concat([data, Buffer.alloc(16)]))],
  [
    'a gap before the last tensor',
    edit((h) => (h[last]!.data_offsets = [h[last]!.data_offsets[0] + 4, h[last]!.data_offsets[1] + 4])),
  ],
  ['an unknown dtype', edit((h) => (h[first]!.dtype = 'F8'))],
  ['a shape that does not match the byte range', edit((h) => (h[first]!.shape = [...h[first]!.shape, 2]))],
  ['an offset of 2^60', edit((h) => (h[last]!.data_offsets = [h[last]!.data_offsets[0], 2 ** 60]))],
  ['a negative offset', edit((h) => (h[first]!.data_offsets = [-4, h[first]!.data_offsets[1]]))],
  ['header JSON cut short', file(JSON.stringify(header).slice(0, -1))],
  ['header JSON not an object', file('[1, 2, 3]')],
  ['the file cut short', original.subarray(0, original.length - 10)],
];

function modelDirWith(name: string, st: Buffer): string {
  const d = join(work, name.replace(/[^a-z0-9]+/gi, '-'));
  mkdirSync(d, { recursive: true });
  for (const f of readdirSync(intact))
    if (f !== 'manifest.json' && f !== 'model.safetensors' && !f.startsWith('.'))
      copyFileSync(join(intact, f), join(d, f));
  writeFileSync(join(d, 'model.safetensors'), st);
  return d;
}

test('the intact file: both readers accept it', async (t) => {
  const dir = modelDirWith('intact-copy', original);
  t.is((await readSafetensors(join(dir, 'model.safetensors'))).tensors.size, names.length);
  const m = await CARZero.load(dir, { verify: 'never' });
  m.dispose();
  t.pass();
});

for (const [what, bytes] of corpus)
  test(`damaged model.safetensors, ${what}: refused by both readers, naming the file`, async (t) => {
    const dir = modelDirWith(what, bytes);
    const st = join(dir, 'model.safetensors');
    const ts = await t.throwsAsync(readSafetensors(st));
    t.true(ts.message.includes(st), `TypeScript reader: ${ts.message}`);
    // no manifest.json here, so nothing but the native reader stands between the file and the model
    const nat = await t.throwsAsync(CARZero.load(dir, { verify: 'never' }));
    t.true(nat.message.includes('model.safetensors'), `native reader: ${nat.message}`);
  });

test('config.json: a preprocess size the image feed cannot hold is refused at load, naming the file', async (t) => {
  for (const [field, value, re] of [
    ['resize', 1e9, /preprocess\.resize' must be at most 8192/],
    ['crop', 300, /preprocess\.crop' \(300\) must not exceed 'preprocess\.resize' \(256\)/],
    ['resize', 2 ** 40, /preprocess\.resize' must be in \[1, 2\^31\]/],
  ] as const) {
    const dir = modelDirWith(`cfg-${field}-${value}`, original);
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    cfg.preprocess[field] = value;
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    const e = await t.throwsAsync(CARZero.load(dir, { verify: 'never' }));
    t.true(e.message.includes('config.json'), e.message);
    t.regex(e.message, re);
  }
});

// Found by the fuzz harness (tools/fuzz): a config.json of `null` threw a TypeError; native
// cross-checks and an integer field of 1e308 gave messages without the file's name.
const badConfigTitle =
  'config.json: null, a heads count that does not divide the width, a huge integer: ' +
  'CarzeroErrors naming config.json';
test(badConfigTitle, async (t) => {
  const { CarzeroError } = await import('../src/errors.js');
  const cases: [string, (cfg: Record<string, Record<string, unknown>>) => unknown, RegExp][] = [
    ['null', () => null, /not a JSON object/],
    ['heads', (c) => ((c.text!.heads = 12), c), /field 'text\.heads' = 12 does not divide the width/],
    ['huge', (c) => ((c.vision!.heads = 1e308), c), /field 'vision\.heads' must be in \[1, 2\^31\]/],
  ];
  for (const [name, f, re] of cases) {
    const dir = modelDirWith(`cfg-fuzz-${name}`, original);
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(f(cfg)));
    const e = await t.throwsAsync(CARZero.load(dir, { verify: 'never' }));
    t.true(e instanceof CarzeroError, `${name}: ${e.constructor.name}`);
    t.true(e.message.includes(join(dir, 'config.json')), e.message);
    t.regex(e.message, re);
  }
});

const parserErrorsTitle =
  "the text parsers fail with the package's own error classes " +
  '(CsvError, DatasetError, ConfigError, EvalInputError are CarzeroErrors)';
test(parserErrorsTitle, async (t) => {
  const { CarzeroError } = await import('../src/errors.js');
  const { parseCsv } = await import('../src/data/csv.js');
  const { parseMimicCsv } = await import('../src/data/mimic.js');
  const { validateConfig } = await import('../src/train/config.js');
  const { readLabels } = await import('../src/eval/protocols.js');
  const e1 = t.throws(() => parseCsv('a,b\n"x,1\n', 'broken.csv'));
  t.true(e1 instanceof CarzeroError && (e1 as InstanceType<typeof CarzeroError>).code === 'CZ_ERR_FORMAT', e1.message);
  const e2 = t.throws(() => parseMimicCsv('nothing,useful\n1,2\n', 'mimic.csv'));
  t.true(e2 instanceof CarzeroError, e2.message);
  const e3 = t.throws(() => validateConfig({ optimizer: { lr: -1 } }));
  t.true(e3 instanceof CarzeroError, e3.message);
  const e4 = t.throws(() => readLabels('chexpert5', 'x\n1\n', 'labels.csv'));
  t.true(e4 instanceof CarzeroError, e4.message);
});
