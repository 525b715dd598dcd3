// carzero convert end to end on the miniature CARZero checkpoint of test/fixtures/weights/mini
// (made by make.py with the reference model) and, when present, on test/fixtures/tiny.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ConvertError } from '../src/errors.js';
import { packageRoot } from '../src/native.js';
import { toFloat32 } from '../src/weights/dtype.js';
import { convertCheckpoint, formatConvertReport, type CarzeroModelConfig } from '../src/weights/convert.js';
import { HfBertFolder } from '../src/weights/hf-bert.js';
import { readSafetensors, writeSafetensors } from '../src/weights/safetensors.js';

const mini = fileURLToPath(new URL('./fixtures/weights/mini/', import.meta.url));
const tiny = fileURLToPath(new URL('./fixtures/tiny/', import.meta.url));
const exp = JSON.parse(await readFile(join(mini, 'expected.json'), 'utf8')) as {
  config: CarzeroModelConfig;
  tensors: Record<string, { shape: number[]; first: number[] }>;
};
const IGNORED = /pooler\.|position_ids|decoder\.layers\.\d+\.(self_attn|norm1)\.|logit_scale|decoder\.norm\./;
const run = promisify(execFile);
const bin = join(packageRoot, 'dist', 'cli', 'main.js');

let dir = '';
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'carzero-convert-'));
});
test.after.always(async () => {
  await rm(dir, { recursive: true, force: true });
});

const base = (out: string) => ({
  checkpoint: join(mini, 'mini.ckpt'),
  textModel: join(mini, 'bert'),
  out: join(dir, out),
  vitHeads: 2,
  headHeads: 2,
});

test('mini checkpoint converts: sizes from shapes, complete tensor list, fine-tuned text weights', async (t) => {
  const r = await convertCheckpoint(base('m1'));
  const cfg = JSON.parse(await readFile(join(dir, 'm1', 'config.json'), 'utf8')) as CarzeroModelConfig;
  t.deepEqual(cfg, r.config);
  for (const part of ['vision', 'text', 'head'] as const) t.deepEqual(cfg[part], exp.config[part], part);
  t.is(cfg.format, 'carzero-model');
  t.is(cfg.format_version, 1);
  t.deepEqual(cfg.source, { checkpoint: 'mini.ckpt', text_model: 'bert' });

  const { tensors, metadata } = await readSafetensors(join(dir, 'm1', 'model.safetensors'));
  t.is(metadata.format, 'carzero-model');
  const want = Object.keys(exp.tensors)
    .filter((k) => !IGNORED.test(k))
    .sort();
  t.deepEqual([...tensors.keys()].sort(), want);
  for (const k of want) {
    const got = tensors.get(k)!;
    t.is(got.dtype, 'F32', k);
    t.deepEqual(got.shape, exp.tensors[k]!.shape, k);
    const v = toFloat32(got);
    exp.tensors[k]!.first.forEach((x, i) => t.true(Math.abs(v[i]! - x) < 1e-6, `${k}[${i}] ${v[i]} vs ${x}`));
  }
  t.is(r.tensors, want.length);
  t.is(
    r.parameters,
    want.reduce((n, k) => n + exp.tensors[k]!.shape.reduce((a, b) => a * b, 1), 0),
  );
  t.deepEqual(r.sources, {
    img_encoder: { checkpoint: 30 },
    text_encoder: { checkpoint: 37 },
    fusion_module: { checkpoint: 34 },
  });
  t.is(r.ignored.length, Object.keys(exp.tensors).filter((k) => IGNORED.test(k)).length);
  t.true(r.ignored.includes('fusion_module.decoder.norm.weight'));
  t.deepEqual(r.unexpected, []);
  t.deepEqual(r.warnings, []);
  t.is(r.tokenizer, 'vocab.txt');
  const tok = JSON.parse(await readFile(join(dir, 'm1', 'tokenizer.json'), 'utf8')) as {
    model: { type: string; vocab: Record<string, number> };
    normalizer: { lowercase: boolean };
  };
  t.is(tok.model.type, 'WordPiece');
  t.is(Object.keys(tok.model.vocab).length, 133);
  t.is(tok.normalizer.lowercase, true);
  t.regex(formatConvertReport(r), /101 tensors, 5,933 parameters/);
  t.regex(formatConvertReport(r), /text_encoder from checkpoint \(37\)/);
});

test('tensors missing from the checkpoint come from the BERT folder, and the report says so', async (t) => {
  const r = await convertCheckpoint({ ...base('m2'), checkpoint: join(mini, 'partial.ckpt') });
  t.deepEqual(r.sources.text_encoder, { checkpoint: 35, 'text-model': 2 });
  const { tensors } = await readSafetensors(join(dir, 'm2', 'model.safetensors'));
  // The folder's weights are the checkpoint's + 1 (make.py), and LayerNorm.gamma became .weight.
  for (const k of [
    'text_encoder.model.encoder.layer.1.output.dense.bias',
    'text_encoder.model.embeddings.LayerNorm.weight',
  ]) {
    const v = toFloat32(tensors.get(k)!);
    exp.tensors[k]!.first.forEach((x, i) => t.true(Math.abs(v[i]! - (x + 1)) < 1e-6, `${k}[${i}]`));
  }
  t.regex(formatConvertReport(r), /text_encoder from checkpoint \(35\) \+ text-model \(2\)/);
});

test('missing and mis-shaped tensors fail with every problem listed, nothing written', async (t) => {
  const e = await t.throwsAsync(convertCheckpoint({ ...base('m3'), checkpoint: join(mini, 'broken.ckpt') }), {
    instanceOf: ConvertError,
  });
  const err = e as ConvertError;
  t.true(err.problems.includes('missing img_encoder.model.blocks.1.attn.proj.bias (8)'), err.message);
  t.true(err.problems.includes('missing fusion_module.mlp_head.3.bias (4)'), err.message);
  t.true(
    err.problems.includes(
      'fusion_module.decoder.layers.0.linear2.weight: expected shape (8, 12), got (8, 11) (from the checkpoint)',
    ),
    err.message,
  );
  t.is(err.problems.length, 3, err.message);
  t.regex(err.message, /3 problems/);
  t.false(existsSync(join(dir, 'm3', 'model.safetensors')));
});

test('head counts must divide the widths; dtype casts; existing output needs force', async (t) => {
  // Defaults (ViT 12, head 4) do not divide the mini width 8.
  const e = await t.throwsAsync(convertCheckpoint({ ...base('m4'), vitHeads: undefined }), {
    instanceOf: ConvertError,
  });
  t.regex(e!.message, /ViT width 8 is not a multiple of 12 heads \(set --vit-heads\)/);
  const r = await convertCheckpoint({ ...base('m5'), dtype: 'bf16' });
  t.deepEqual(r.dtypes, { BF16: 101 });
  const { tensors } = await readSafetensors(join(dir, 'm5', 'model.safetensors'));
  const v = toFloat32(tensors.get('img_encoder.model.cls_token')!);
  exp.tensors['img_encoder.model.cls_token']!.first.forEach((x, i) =>
    t.true(Math.abs(v[i]! - x) <= Math.abs(x) / 128, `bf16 ${i}`),
  );
  await t.throwsAsync(convertCheckpoint({ ...base('m5'), dtype: 'bf16' }), {
    instanceOf: ConvertError,
    message: /exists \(pass --force/,
  });
  await t.notThrowsAsync(convertCheckpoint({ ...base('m5'), dtype: 'f16', force: true }));
  await t.throwsAsync(convertCheckpoint({ ...base('m6'), dtype: 'f8' as 'f16' }), {
    instanceOf: RangeError,
    message: /option 'dtype'/,
  });
  await t.throwsAsync(convertCheckpoint({ ...base('m6'), vitHeads: 0 }), {
    instanceOf: RangeError,
    message: /option 'vitHeads'/,
  });
  await t.throwsAsync(convertCheckpoint({ ...base('m6'), checkpoint: 1 as unknown as string }), {
    instanceOf: TypeError,
    message: /option 'checkpoint'/,
  });
});

const hfBertFolderTitle =
  'HF BERT folder: pytorch_model.bin (bert. prefix, gamma/beta, cls.*) and model.safetensors variants';
test(hfBertFolderTitle, async (t) => {
  await using a = await HfBertFolder.open(join(mini, 'bert'));
  t.is(a.config.hiddenSize, 8);
  t.true(a.weightsFile.endsWith('pytorch_model.bin'));
  t.true(a.tensors.has('embeddings.LayerNorm.weight'));
  t.true(a.tensors.has('encoder.layer.1.output.dense.bias'));
  t.deepEqual(a.ignored, ['bert.embeddings.position_ids', 'cls.predictions.bias']);
  t.is(a.tokenizer.kind, 'vocab.txt');
  // A safetensors variant of the same folder, written here (BertModel names, tokenizer.json).
  const st = join(dir, 'bert-st');
  const { mkdir, copyFile, writeFile } = await import('node:fs/promises');
  await mkdir(st);
  await copyFile(join(mini, 'bert', 'config.json'), join(st, 'config.json'));
  const entries = await Promise.all([...a.tensors].map(async ([k, v]) => [k, await v.read()] as const));
  await writeSafetensors(join(st, 'model.safetensors'), entries);
  await writeFile(join(st, 'tokenizer.json'), JSON.stringify({ model: { type: 'WordPiece', vocab: { '[PAD]': 0 } } }));
  await using b = await HfBertFolder.open(st);
  t.true(b.weightsFile.endsWith('model.safetensors'));
  t.deepEqual([...b.tensors.keys()].sort(), [...a.tensors.keys()].sort());
  t.is(b.tokenizer.kind, 'tokenizer.json');
  const r = await convertCheckpoint({ ...base('m7'), textModel: st });
  t.is(r.tokenizer, 'tokenizer.json');
  // Bad configs are named.
  await writeFile(join(st, 'config.json'), JSON.stringify({ hidden_size: 8, hidden_act: 'gelu_new' }));
  await t.throwsAsync(HfBertFolder.open(st), { message: /config\.json: 'hidden_act' is "gelu_new"/ });
  await writeFile(join(st, 'config.json'), JSON.stringify({ hidden_size: 8 }));
  await t.throwsAsync(HfBertFolder.open(st), {
    message: /config\.json: 'num_hidden_layers' must be a positive integer, got undefined/,
  });
});

test('carzero convert CLI: summary, --json, usage errors, failure report', async (t) => {
  if (!existsSync(bin)) return t.fail(`${bin} missing: run \`npx tsc -p tsconfig.json\` first`);
  const args = [
    'convert',
    '--checkpoint',
    join(mini, 'mini.ckpt'),
    '--text-model',
    join(mini, 'bert'),
    '--vit-heads',
    '2',
    '--head-heads=2',
  ];
  const { stdout } = await run(process.execPath, [bin, ...args, '--out', join(dir, 'c1')]);
  t.regex(stdout, /wrote .*c1: 101 tensors/);
  t.regex(stdout, /ignored \(unused at inference\): 18 tensors/);
  const { stdout: js } = await run(process.execPath, [
    bin,
    ...args,
    '--out',
    join(dir, 'c2'),
    '--json',
    '--dtype',
    'f16',
  ]);
  const rep = JSON.parse(js);
  t.true(rep.ok);
  t.deepEqual(rep.dtypes, { F16: 101 });
  t.is(rep.config.vision.width, 8);
  const e1 = await t.throwsAsync(run(process.execPath, [bin, 'convert', '--checkpoint', 'x']));
  t.is((e1 as { code?: number }).code, 2);
  t.regex((e1 as { stderr?: string }).stderr ?? '', /missing --text-model/);
  const e2 = await t.throwsAsync(run(process.execPath, [bin, ...args, '--out', join(dir, 'c3'), '--frob']));
  t.regex((e2 as { stderr?: string }).stderr ?? '', /unknown option '--frob'/);
  const e3 = await t.throwsAsync(
    run(process.execPath, [
      bin,
      'convert',
      '--checkpoint',
      join(mini, 'broken.ckpt'),
      '--text-model',
      join(mini, 'bert'),
      '--vit-heads',
      '2',
      '--head-heads',
      '2',
      '--out',
      join(dir, 'c4'),
      '--json',
    ]),
  );
  t.is((e3 as { code?: number }).code, 1);
  const fail = JSON.parse((e3 as { stdout?: string }).stdout ?? '{}');
  t.false(fail.ok);
  t.is(fail.problems.length, 3);
  t.regex((e3 as { stderr?: string }).stderr ?? '', /missing img_encoder\.model\.blocks\.1\.attn\.proj\.bias/);
});

test('fixtures/tiny converts to the reference config.json; all three BERT folder variants agree', async (t) => {
  const ck = join(tiny, 'carzero-tiny.ckpt');
  t.true(existsSync(ck) && existsSync(join(tiny, 'config.json')), 'test/fixtures/tiny is committed');
  const want = JSON.parse(await readFile(join(tiny, 'config.json'), 'utf8')) as CarzeroModelConfig;
  const r = await convertCheckpoint({
    checkpoint: ck,
    textModel: join(tiny, 'bert-tiny'),
    out: join(dir, 'tiny'),
    vitHeads: want.vision.heads,
    headHeads: want.head.heads,
  });
  t.deepEqual(r.config, want);
  t.deepEqual(r.unexpected, []);
  t.deepEqual(r.warnings, []);
  t.deepEqual(Object.keys(r.sources).sort(), ['fusion_module', 'img_encoder', 'text_encoder']);
  t.true(Object.values(r.sources).every((s) => Object.keys(s).join() === 'checkpoint'));
  const folders = ['bert-tiny', 'bert-tiny-legacy', 'bert-tiny-st'];
  const names: string[][] = [];
  for (const f of folders) {
    await using b = await HfBertFolder.open(join(tiny, f));
    names.push([...b.tensors.keys()].sort());
    t.is(b.config.hiddenSize, want.text.width, f);
  }
  for (const n of names) t.deepEqual(n, names[0]);
  // halves: keep gives f16 ViT blocks, bf16 BERT layers, f32 elsewhere.
  const halves = join(tiny, 'carzero-tiny-halves.ckpt');
  {
    const h = await convertCheckpoint({
      checkpoint: halves,
      textModel: join(tiny, 'bert-tiny-st'),
      out: join(dir, 'tiny-h'),
      vitHeads: want.vision.heads,
      headHeads: want.head.heads,
    });
    t.true((h.dtypes.F16 ?? 0) > 0 && (h.dtypes.BF16 ?? 0) > 0 && (h.dtypes.F32 ?? 0) > 0, JSON.stringify(h.dtypes));
    const { tensors } = await readSafetensors(join(dir, 'tiny-h', 'model.safetensors'));
    t.is(tensors.get('img_encoder.model.blocks.0.attn.qkv.weight')!.dtype, 'F16');
    t.is(tensors.get('text_encoder.model.encoder.layer.0.output.dense.weight')!.dtype, 'BF16');
  }
});
