// `carzero convert`: a released CARZero Lightning checkpoint + its BERT folder -> a carzero model
// directory (docs/MODEL-FORMAT.md): config.json, model.safetensors, tokenizer.json.
//
// Every size comes from tensor shapes (so tiny test models convert like the real one); only the
// head counts cannot be seen in shapes and come from options (defaults: ViT 12, head 4, BERT from
// its config.json). The text encoder's weights come from the checkpoint (CARZero fine-tunes BERT);
// the BERT folder supplies the tokenizer, the config (heads, eps) and any tensor the checkpoint
// lacks. Every problem is collected before failing, so one run reports all of them.
import { mkdir, open, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, join, resolve } from 'node:path';
import { ConvertError } from '../errors.js';
import { MODEL_FILES, packageVersion, sha256File, writeManifest, type Manifest } from '../model/store.js';
import type { CarzeroConfig } from '../model/types.js';
import { vocabToTokenizerJson } from '../text/tokenizer.js';
import { castFloat, isFloatDType, numel, shapeString, type WeightDType } from './dtype.js';
import { HfBertFolder, type LazyTensor } from './hf-bert.js';
import { writeSafetensors, type SafetensorsInput } from './safetensors.js';
import { TorchCheckpoint } from './torch-zip.js';

export type ConvertDType = 'keep' | 'f32' | 'f16' | 'bf16';

export interface ConvertOptions {
  /** The Lightning checkpoint (.ckpt) of CARZero. */
  checkpoint: string;
  /** The Hugging Face BERT folder (tokenizer files, config.json, fallback weights). */
  textModel: string;
  /** The model directory to write. */
  out: string;
  /** ViT attention heads (default 12). */
  vitHeads?: number;
  /** Alignment-head attention heads (default 4). */
  headHeads?: number;
  /** BERT attention heads (default: the folder's config.json). */
  bertHeads?: number;
  /** Output dtype: keep the source's float dtype per tensor (f64 becomes f32), or cast all. Default keep. */
  dtype?: ConvertDType;
  /** Overwrite an existing model directory's files. Default false. */
  force?: boolean;
}

/** The config.json that convert writes: the model's config (CarzeroConfig) and where it came from. */
export interface CarzeroModelConfig extends CarzeroConfig {
  format: 'carzero-model';
  format_version: 1;
  source: { checkpoint: string; text_model: string };
}

export type TensorSourceName = 'checkpoint' | 'text-model';

export interface ConvertReport {
  out: string;
  /** manifest.json as written: each file's size and sha256, the source checkpoint's. */
  manifest: Manifest;
  config: CarzeroModelConfig;
  /** Tensors written and their parameter (element) count. */
  tensors: number;
  parameters: number;
  /** Output dtypes and how many tensors have each. */
  dtypes: Partial<Record<WeightDType, number>>;
  /** Bytes of model.safetensors. */
  bytes: number;
  /** Per group (img_encoder, text_encoder, fusion_module): how many tensors came from where. */
  sources: Record<string, Partial<Record<TensorSourceName, number>>>;
  /** Checkpoint tensors known to be unused at inference, not written. */
  ignored: string[];
  /** Checkpoint tensors neither expected nor known-unused, not written. */
  unexpected: string[];
  /** Where tokenizer.json came from. */
  tokenizer: 'tokenizer.json' | 'vocab.txt';
  warnings: string[];
}

// Present in the original, unused at inference (docs/MODEL-FORMAT.md "Not written").
const KNOWN_UNUSED = [
  /^text_encoder\.model\.pooler\./,
  /^text_encoder\.model\.embeddings\.position_ids$/,
  /^fusion_module\.decoder\.layers\.\d+\.self_attn\./,
  /^fusion_module\.decoder\.layers\.\d+\.norm1\./,
  /^fusion_module\.decoder\.norm\./,
  /^fusion_module\.logit_scale$/,
];

const VISION_EPS = 1e-6;
const HEAD_EPS = 1e-5;
const TEXT_MAX_LENGTH = 97;
const LAST_N_LAYERS = 4;

function positiveInt(v: unknown, what: string, dflt?: number): number | undefined {
  if (v === undefined) return dflt;
  if (typeof v !== 'number')
    throw new TypeError(`convertCheckpoint: option '${what}' must be a number, got ${typeof v}`);
  if (!Number.isSafeInteger(v) || v <= 0)
    throw new RangeError(`convertCheckpoint: option '${what}' must be a positive integer, got ${v}`);
  return v;
}

/** Counts `prefix{i}.` groups from 0 upwards (a gap ends the count; the gap is reported missing). */
function countIndexed(names: Iterable<string>, prefix: string): number {
  const re = new RegExp(`^${prefix.replace(/\./g, '\\.')}(\\d+)\\.`);
  let max = -1;
  for (const n of names) {
    const m = re.exec(n);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max + 1;
}

/** The expected tensors (name -> shape) of a carzero model with these sizes. */
export function expectedTensors(c: CarzeroModelConfig): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const v = c.vision;
  const P = (v.image_size / v.patch_size) ** 2;
  const iv = 'img_encoder.model.';
  out.set(`${iv}cls_token`, [1, 1, v.width]);
  out.set(`${iv}pos_embed`, [1, 1 + P, v.width]);
  out.set(`${iv}patch_embed.proj.weight`, [v.width, v.in_chans, v.patch_size, v.patch_size]);
  out.set(`${iv}patch_embed.proj.bias`, [v.width]);
  const lin = (name: string, o: number, i: number): void => {
    out.set(`${name}.weight`, [o, i]);
    out.set(`${name}.bias`, [o]);
  };
  const ln = (name: string, n: number): void => {
    out.set(`${name}.weight`, [n]);
    out.set(`${name}.bias`, [n]);
  };
  for (let i = 0; i < v.depth; i++) {
    const b = `${iv}blocks.${i}.`;
    ln(`${b}norm1`, v.width);
    lin(`${b}attn.qkv`, 3 * v.width, v.width);
    lin(`${b}attn.proj`, v.width, v.width);
    ln(`${b}norm2`, v.width);
    lin(`${b}mlp.fc1`, v.mlp_dim, v.width);
    lin(`${b}mlp.fc2`, v.width, v.mlp_dim);
  }
  ln(`${iv}norm`, v.width);
  const t = c.text;
  const tv = 'text_encoder.model.';
  out.set(`${tv}embeddings.word_embeddings.weight`, [t.vocab_size, t.width]);
  out.set(`${tv}embeddings.position_embeddings.weight`, [t.max_position, t.width]);
  out.set(`${tv}embeddings.token_type_embeddings.weight`, [t.type_vocab, t.width]);
  ln(`${tv}embeddings.LayerNorm`, t.width);
  for (let i = 0; i < t.depth; i++) {
    const l = `${tv}encoder.layer.${i}.`;
    for (const q of ['query', 'key', 'value']) lin(`${l}attention.self.${q}`, t.width, t.width);
    lin(`${l}attention.output.dense`, t.width, t.width);
    ln(`${l}attention.output.LayerNorm`, t.width);
    lin(`${l}intermediate.dense`, t.intermediate, t.width);
    lin(`${l}output.dense`, t.width, t.intermediate);
    ln(`${l}output.LayerNorm`, t.width);
  }
  const h = c.head;
  const fv = 'fusion_module.';
  ln(`${fv}decoder_norm`, h.width);
  for (let i = 0; i < h.depth; i++) {
    const l = `${fv}decoder.layers.${i}.`;
    ln(`${l}norm2`, h.width);
    ln(`${l}norm3`, h.width);
    out.set(`${l}multihead_attn.in_proj_weight`, [3 * h.width, h.width]);
    out.set(`${l}multihead_attn.in_proj_bias`, [3 * h.width]);
    lin(`${l}multihead_attn.out_proj`, h.width, h.width);
    lin(`${l}linear1`, h.ffn, h.width);
    lin(`${l}linear2`, h.width, h.ffn);
  }
  let prev = h.width;
  h.mlp.forEach((n, k) => {
    lin(`${fv}mlp_head.${3 * k}`, n, prev);
    prev = n;
  });
  return out;
}

interface Sourced {
  t: LazyTensor;
  from: TensorSourceName;
}

/** Reads a shape dimension, collecting a problem instead of throwing when the tensor is absent. */
function dimOf(all: Map<string, Sourced>, problems: string[], name: string, dim: number, fallback = 0): number {
  const s = all.get(name);
  if (!s) {
    problems.push(`missing ${name} (needed to derive the model sizes)`);
    return fallback;
  }
  const d = s.t.shape[dim];
  if (d === undefined) {
    problems.push(`${name} has shape ${shapeString(s.t.shape)}, needs at least ${dim + 1} dimensions`);
    return fallback;
  }
  return d;
}

/** Converts; returns the report. Throws ConvertError listing every problem when the inputs don't fit. */
export async function convertCheckpoint(options: ConvertOptions): Promise<ConvertReport> {
  if (typeof options !== 'object' || options === null)
    throw new TypeError("convertCheckpoint: argument 'options' must be an object");
  for (const k of ['checkpoint', 'textModel', 'out'] as const)
    if (typeof options[k] !== 'string' || !options[k])
      throw new TypeError(`convertCheckpoint: option '${k}' must be a non-empty path string`);
  const vitHeads = positiveInt(options.vitHeads, 'vitHeads', 12)!;
  const headHeads = positiveInt(options.headHeads, 'headHeads', 4)!;
  const bertHeadsOpt = positiveInt(options.bertHeads, 'bertHeads');
  const dtype = options.dtype ?? 'keep';
  if (!['keep', 'f32', 'f16', 'bf16'].includes(dtype))
    throw new RangeError(`convertCheckpoint: option 'dtype' must be keep|f32|f16|bf16, got ${String(dtype)}`);
  if (options.force !== undefined && typeof options.force !== 'boolean')
    throw new TypeError("convertCheckpoint: option 'force' must be a boolean");
  const out = options.out;

  await using ckpt = await TorchCheckpoint.open(options.checkpoint);
  await using bert = await HfBertFolder.open(options.textModel);
  const warnings: string[] = [];
  const problems: string[] = [];

  // Checkpoint names without the Lightning prefix, as the original's load_CARZero
  // (`key.split("CARZero.")[-1]`).
  const all = new Map<string, Sourced>();
  for (const [k, t] of ckpt.stateDict) {
    const name = k.split('CARZero.').pop()!;
    if (all.has(name)) problems.push(`checkpoint holds '${name}' twice (as '${k}' and another key)`);
    all.set(name, { t, from: 'checkpoint' });
  }
  const fromCheckpoint = new Set(all.keys());
  // BERT folder weights fill in what the checkpoint lacks (the checkpoint's are fine-tuned).
  for (const [k, t] of bert.tensors) {
    const name = `text_encoder.model.${k}`;
    if (!all.has(name)) all.set(name, { t, from: 'text-model' });
  }

  // ---- sizes from shapes
  const names = [...all.keys()];
  const iv = 'img_encoder.model.';
  const C = dimOf(all, problems, `${iv}patch_embed.proj.weight`, 0);
  const inChans = dimOf(all, problems, `${iv}patch_embed.proj.weight`, 1, 3);
  const patch = dimOf(all, problems, `${iv}patch_embed.proj.weight`, 2, 16);
  const P = dimOf(all, problems, `${iv}pos_embed`, 1, 1) - 1;
  const grid = Math.round(Math.sqrt(P));
  if (all.has(`${iv}pos_embed`) && grid * grid !== P)
    problems.push(`${iv}pos_embed has ${P} patch positions, not a square grid`);
  const imageSize = grid * patch;
  const tv = 'text_encoder.model.';
  const fv = 'fusion_module.';
  const mlpIdx = names
    .map((n) => /^fusion_module\.mlp_head\.(\d+)\.weight$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  if (!mlpIdx.length) problems.push(`missing ${fv}mlp_head.0.weight (needed to derive the model sizes)`);
  const bertCfg = bert.config;
  const config: CarzeroModelConfig = {
    format: 'carzero-model',
    format_version: 1,
    vision: {
      image_size: imageSize,
      patch_size: patch,
      in_chans: inChans,
      width: C,
      depth: countIndexed(names, `${iv}blocks.`),
      heads: vitHeads,
      mlp_dim: dimOf(all, problems, `${iv}blocks.0.mlp.fc1.weight`, 0),
      eps: VISION_EPS,
    },
    text: {
      vocab_size: dimOf(all, problems, `${tv}embeddings.word_embeddings.weight`, 0),
      width: dimOf(all, problems, `${tv}embeddings.word_embeddings.weight`, 1),
      depth: countIndexed(names, `${tv}encoder.layer.`),
      heads: bertHeadsOpt ?? bertCfg.numAttentionHeads,
      intermediate: dimOf(all, problems, `${tv}encoder.layer.0.intermediate.dense.weight`, 0),
      max_position: dimOf(all, problems, `${tv}embeddings.position_embeddings.weight`, 0),
      type_vocab: dimOf(all, problems, `${tv}embeddings.token_type_embeddings.weight`, 0),
      eps: bertCfg.layerNormEps,
      max_length: TEXT_MAX_LENGTH,
      last_n_layers: LAST_N_LAYERS,
    },
    head: {
      width: dimOf(all, problems, `${fv}decoder_norm.weight`, 0),
      heads: headHeads,
      depth: countIndexed(names, `${fv}decoder.layers.`),
      ffn: dimOf(all, problems, `${fv}decoder.layers.0.linear1.weight`, 0),
      mlp: mlpIdx.map((k) => dimOf(all, problems, `${fv}mlp_head.${k}.weight`, 0)),
      eps: HEAD_EPS,
    },
    // The original's preprocessing for 224 inputs; a smaller test model crops its own size from
    // a proportionally smaller resize.
    preprocess:
      imageSize === 224 || imageSize === 0
        ? { resize: 256, crop: 224, mean: 0.4978, std: 0.2449 }
        : { resize: Math.round((imageSize * 256) / 224), crop: imageSize, mean: 0.4978, std: 0.2449 },
    source: { checkpoint: basename(options.checkpoint), text_model: basename(resolve(options.textModel)) },
  };
  const { vision, text, head } = config;
  if (mlpIdx.some((k, i) => k !== 3 * i))
    problems.push(`${fv}mlp_head Linear layers are at indices ${mlpIdx.join(', ')}; expected 0, 3, 6, ...`);
  if (head.mlp.length && head.mlp[head.mlp.length - 1] !== 1)
    problems.push(`${fv}mlp_head ends in ${head.mlp[head.mlp.length - 1]} outputs; expected 1 (a logit)`);
  if (!(vision.width === text.width && text.width === head.width))
    problems.push(`widths differ: vision ${vision.width}, text ${text.width}, head ${head.width} (they must be equal)`);
  for (const [what, width, heads, opt] of [
    ['ViT', vision.width, vision.heads, '--vit-heads'],
    ['BERT', text.width, text.heads, '--bert-heads'],
    ['head', head.width, head.heads, '--head-heads'],
  ] as const)
    if (width && width % heads)
      problems.push(`${what} width ${width} is not a multiple of ${heads} heads (set ${opt})`);
  for (const [what, depth] of [
    ['ViT blocks', vision.depth],
    ['BERT layers', text.depth],
    ['head decoder layers', head.depth],
  ] as const)
    if (depth === 0) problems.push(`no ${what} found`);
  // The folder's config should describe the same BERT; a mismatch suggests the wrong folder.
  const cfgPairs: [string, number, number][] = [
    ['hidden_size', bertCfg.hiddenSize, text.width],
    ['num_hidden_layers', bertCfg.numHiddenLayers, text.depth],
    ['intermediate_size', bertCfg.intermediateSize, text.intermediate],
    ['vocab_size', bertCfg.vocabSize, text.vocab_size],
    ['max_position_embeddings', bertCfg.maxPositionEmbeddings, text.max_position],
    ['type_vocab_size', bertCfg.typeVocabSize, text.type_vocab],
  ];
  for (const [k, a, b] of cfgPairs)
    if (a !== b) warnings.push(`${options.textModel}/config.json says ${k} ${a}, the weights have ${b}`);
  if (text.max_position < TEXT_MAX_LENGTH)
    problems.push(`BERT has ${text.max_position} positions, CARZero needs ${TEXT_MAX_LENGTH}`);

  // ---- names and shapes
  const expected = expectedTensors(config);
  const sources: ConvertReport['sources'] = {};
  for (const [name, shape] of expected) {
    const s = all.get(name);
    if (!s) {
      problems.push(`missing ${name} ${shapeString(shape)}`);
      continue;
    }
    if (s.t.shape.length !== shape.length || s.t.shape.some((d, i) => d !== shape[i]))
      problems.push(
        `${name}: expected shape ${shapeString(shape)}, got ${shapeString(s.t.shape)} (from the ${s.from})`,
      );
    if (!isFloatDType(s.t.dtype)) problems.push(`${name}: dtype ${s.t.dtype} is not a floating type`);
    const group = name.slice(0, name.indexOf('.'));
    const g = (sources[group] ??= {});
    g[s.from] = (g[s.from] ?? 0) + 1;
  }
  const ignored: string[] = [];
  const unexpected: string[] = [];
  for (const name of fromCheckpoint) {
    if (expected.has(name)) continue;
    if (KNOWN_UNUSED.some((re) => re.test(name))) ignored.push(name);
    else unexpected.push(name);
  }
  if (unexpected.length)
    warnings.push(
      `${unexpected.length} checkpoint tensor(s) are not part of the model and were not written: ` +
        `${unexpected.join(', ')}`,
    );

  // decoder.norm is the same module as decoder_norm in the original; differing copies would mean
  // the checkpoint is not what we think it is.
  for (const p of ['weight', 'bias']) {
    const a = all.get(`${fv}decoder.norm.${p}`);
    const b = all.get(`${fv}decoder_norm.${p}`);
    if (a && b) {
      const [x, y] = [await a.t.read(), await b.t.read()];
      if (x.dtype !== y.dtype || !x.data.equals(y.data))
        warnings.push(`${fv}decoder.norm.${p} differs from ${fv}decoder_norm.${p} (the model uses decoder_norm)`);
    }
  }

  // ---- tokenizer
  let tokenizerJson: Record<string, unknown>;
  const tk = bert.tokenizer;
  if (tk.kind === 'tokenizer.json') tokenizerJson = tk.json;
  else
    tokenizerJson = vocabToTokenizerJson(tk.vocabText, {
      lowercase: tk.lowercase,
      stripAccents: tk.stripAccents,
      handleChineseChars: tk.handleChineseChars,
    });
  const vocab = ((tokenizerJson.model as Record<string, unknown> | undefined)?.vocab ?? {}) as Record<string, number>;
  const maxId = Math.max(-1, ...Object.values(vocab).filter((x) => typeof x === 'number'));
  if (text.vocab_size && maxId >= text.vocab_size)
    problems.push(`the tokenizer has ids up to ${maxId} but the word embeddings have ${text.vocab_size} rows`);

  if (problems.length) {
    const msg =
      `convert: ${options.checkpoint} + ${options.textModel} do not make a carzero model ` +
      `(${problems.length} problem${problems.length > 1 ? 's' : ''}):\n` +
      `${problems.map((p) => `  - ${p}`).join('\n')}`;
    throw new ConvertError(msg, problems);
  }

  // ---- write
  await mkdir(out, { recursive: true });
  const outFiles = ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => join(out, f));
  if (!options.force)
    for (const f of outFiles)
      if (
        await stat(f).then(
          () => true,
          () => false,
        )
      )
        throw new ConvertError(`convert: ${f} exists (pass --force / force: true to overwrite)`, [`${f} exists`]);
  const toDType = (d: WeightDType): WeightDType =>
    dtype === 'f32' ? 'F32' : dtype === 'f16' ? 'F16' : dtype === 'bf16' ? 'BF16' : d === 'F64' ? 'F32' : d;
  const inputs = new Map<string, SafetensorsInput>();
  const dtypes: ConvertReport['dtypes'] = {};
  let parameters = 0;
  for (const [name, shape] of expected) {
    const s = all.get(name)!;
    const od = toDType(s.t.dtype);
    dtypes[od] = (dtypes[od] ?? 0) + 1;
    parameters += numel(shape);
    inputs.set(name, {
      dtype: od,
      shape,
      data: async () => castFloat(await s.t.read(), od as 'F32' | 'F16' | 'BF16').data,
    });
  }
  const bytes = await writeSafetensors(join(out, 'model.safetensors'), inputs, {
    metadata: {
      format: 'carzero-model',
      format_version: '1',
      source_checkpoint: config.source.checkpoint,
      source_text_model: config.source.text_model,
    },
  });
  await writeAtomic(join(out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  await writeAtomic(join(out, 'tokenizer.json'), `${JSON.stringify(tokenizerJson, null, 2)}\n`);
  // The manifest: each file's size and sha256 and the source checkpoint's (checked at load and by
  // `carzero models verify`); a stale stamp of an earlier conversion into the same folder goes.
  await unlink(join(out, '.verified.json')).catch(() => undefined);
  const ckptPath = resolve(options.checkpoint);
  const manifest = await writeManifest(
    out,
    [...MODEL_FILES],
    {
      checkpoint: { file: basename(ckptPath), size: (await stat(ckptPath)).size, sha256: await sha256File(ckptPath) },
      text_model: basename(resolve(options.textModel)),
    },
    packageVersion(),
  );
  return {
    manifest,
    out,
    config,
    tensors: expected.size,
    parameters,
    dtypes,
    bytes,
    sources,
    ignored,
    unexpected,
    tokenizer: tk.kind,
    warnings,
  };
}

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, text);
    const fh = await open(tmp, 'r+');
    await fh.sync();
    await fh.close();
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

/** A human-readable summary of a report. */
export function formatConvertReport(r: ConvertReport): string {
  const c = r.config;
  const mb = (r.bytes / 2 ** 20).toFixed(1);
  const lines = [
    `wrote ${r.out}: ${r.tensors} tensors, ${r.parameters.toLocaleString('en-US')} parameters, ${mb} MiB`,
    `dtype: ${Object.entries(r.dtypes)
      .map(([d, n]) => `${d.toLowerCase()} (${n})`)
      .join(', ')}`,
    `vision: ${c.vision.image_size}px, patch ${c.vision.patch_size}, width ${c.vision.width}, ` +
      `depth ${c.vision.depth}, heads ${c.vision.heads}, mlp ${c.vision.mlp_dim}`,
    `text:   vocab ${c.text.vocab_size}, width ${c.text.width}, depth ${c.text.depth}, heads ${c.text.heads}, ` +
      `intermediate ${c.text.intermediate}, positions ${c.text.max_position}, eps ${c.text.eps}`,
    `head:   width ${c.head.width}, depth ${c.head.depth}, heads ${c.head.heads}, ffn ${c.head.ffn}, ` +
      `mlp ${c.head.mlp.join('-')}`,
    `sources: ${Object.entries(r.sources)
      .map(
        ([g, s]) =>
          `${g} from ${Object.entries(s)
            .map(([k, n]) => `${k} (${n})`)
            .join(' + ')}`,
      )
      .join('; ')}`,
    'tokenizer: ' +
      (r.tokenizer === 'tokenizer.json' ? 'copied from tokenizer.json' : 'made from vocab.txt + tokenizer_config.json'),
    `manifest: ${join(r.out, 'manifest.json')} (sizes and sha256 of ` +
      `${Object.keys(r.manifest.files).join(', ')}; ` +
      `checkpoint sha256 ${(r.manifest.source.checkpoint as { sha256: string }).sha256.slice(0, 16)}...)`,
    'ignored (unused at inference): ' +
      (r.ignored.length ? r.ignored.length + ' tensors: ' + summarizeNames(r.ignored) : 'none'),
  ];
  if (r.unexpected.length) lines.push(`unexpected (not written): ${r.unexpected.join(', ')}`);
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}

/** `a.0.x, a.1.x, ...` -> `a.{0..1}.x` style groups, so 50 ignored names fit on a line. */
function summarizeNames(names: string[]): string {
  const groups = new Map<string, number[]>();
  const plain: string[] = [];
  for (const n of names) {
    const m = /^(.*?\.)(\d+)(\..*)$/.exec(n);
    if (!m) plain.push(n);
    else {
      const k = `${m[1]}{i}${m[3]}`;
      (groups.get(k) ?? groups.set(k, []).get(k)!).push(Number(m[2]));
    }
  }
  const parts = [...groups].map(([k, idx]) =>
    idx.length > 1 ? k.replace('{i}', `{${Math.min(...idx)}..${Math.max(...idx)}}`) : k.replace('{i}', String(idx[0])),
  );
  return [...parts, ...plain].join(', ');
}
