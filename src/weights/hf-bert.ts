// A Hugging Face BERT folder (spec 8): config.json, weights (model.safetensors or
// pytorch_model.bin), and tokenizer files (tokenizer.json, or vocab.txt + tokenizer_config.json).
// Weight names are normalised to BertModel's (`embeddings...`, `encoder.layer.{i}...`,
// `pooler...`): the `bert.` prefix of BertForPreTraining / BertForMaskedLM is dropped, their
// `cls.*` heads are ignored, and the TF-era `LayerNorm.gamma/beta` names become `weight/bias`
// (as transformers' loader renames them).
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointError } from '../errors.js';
import type { WeightDType, WeightTensor } from './dtype.js';
import { SafetensorsFile } from './safetensors.js';
import { TorchCheckpoint } from './torch-zip.js';

/** A tensor whose bytes are read on demand. */
export interface LazyTensor {
  readonly dtype: WeightDType;
  readonly shape: readonly number[];
  read(): Promise<WeightTensor>;
}

/** The BERT sizes carzero needs, from config.json. */
export interface BertConfig {
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  intermediateSize: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  typeVocabSize: number;
  layerNormEps: number;
}

export type BertTokenizerFiles =
  | { kind: 'tokenizer.json'; file: string; json: Record<string, unknown> }
  | {
      kind: 'vocab.txt';
      file: string;
      vocabText: string;
      lowercase: boolean;
      stripAccents: boolean | null;
      handleChineseChars: boolean;
    };

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isFile(),
    () => false,
  );
}

async function readJson(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new CheckpointError(`${file}: cannot read: ${(e as Error).message}`, file);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new CheckpointError(`${file}: invalid JSON: ${(e as Error).message}`, file);
  }
}

/** Parses and checks a BERT config.json object; errors name the file and the field. */
export function parseBertConfig(json: Record<string, unknown>, file: string): BertConfig {
  const int = (key: string): number => {
    const v = json[key];
    if (!Number.isSafeInteger(v) || (v as number) <= 0)
      throw new CheckpointError(`${file}: '${key}' must be a positive integer, got ${JSON.stringify(v)}`, file);
    return v as number;
  };
  const act = json.hidden_act ?? 'gelu';
  // carzero's native BERT implements exact (erf) GELU only; gelu_new/tanh would silently differ.
  if (act !== 'gelu')
    throw new CheckpointError(
      `${file}: 'hidden_act' is ${JSON.stringify(act)}; only "gelu" (exact, as BERT-base) is supported`,
      file,
    );
  const eps = json.layer_norm_eps ?? 1e-12;
  if (typeof eps !== 'number' || !(eps > 0))
    throw new CheckpointError(`${file}: 'layer_norm_eps' must be a positive number, got ${JSON.stringify(eps)}`, file);
  const cfg: BertConfig = {
    hiddenSize: int('hidden_size'),
    numHiddenLayers: int('num_hidden_layers'),
    numAttentionHeads: int('num_attention_heads'),
    intermediateSize: int('intermediate_size'),
    vocabSize: int('vocab_size'),
    maxPositionEmbeddings: int('max_position_embeddings'),
    typeVocabSize: int('type_vocab_size'),
    layerNormEps: eps,
  };
  if (cfg.hiddenSize % cfg.numAttentionHeads)
    throw new CheckpointError(
      `${file}: hidden_size ${cfg.hiddenSize} is not a multiple of num_attention_heads ${cfg.numAttentionHeads}`,
      file,
    );
  return cfg;
}

/** Maps a weight name of any BERT head class to BertModel's; undefined = not part of BertModel. */
export function normalizeBertName(name: string): string | undefined {
  let n = name.startsWith('bert.') ? name.slice(5) : name;
  // position_ids is a buffer (0..max_position-1), not a weight; safetensors exports omit it.
  if (n.startsWith('cls.') || n === 'embeddings.position_ids' || !/^(embeddings|encoder|pooler)\./.test(n))
    return undefined;
  n = n.replace(/LayerNorm\.gamma$/, 'LayerNorm.weight').replace(/LayerNorm\.beta$/, 'LayerNorm.bias');
  return n;
}

/** An opened BERT folder: config, lazy weights under BertModel names, tokenizer files. */
export class HfBertFolder implements AsyncDisposable {
  readonly dir: string;
  readonly config: BertConfig;
  /** The weights file used (model.safetensors preferred over pytorch_model.bin). */
  readonly weightsFile: string;
  readonly tensors: ReadonlyMap<string, LazyTensor>;
  /** Names in the weights file that are not BertModel weights (`cls.*` heads, position_ids). */
  readonly ignored: readonly string[];
  readonly tokenizer: BertTokenizerFiles;
  #close: () => Promise<void>;

  private constructor(
    dir: string,
    config: BertConfig,
    weightsFile: string,
    tensors: Map<string, LazyTensor>,
    ignored: string[],
    tokenizer: BertTokenizerFiles,
    close: () => Promise<void>,
  ) {
    this.dir = dir;
    this.config = config;
    this.weightsFile = weightsFile;
    this.tensors = tensors;
    this.ignored = ignored;
    this.tokenizer = tokenizer;
    this.#close = close;
  }

  static async open(dir: string): Promise<HfBertFolder> {
    if (typeof dir !== 'string') throw new TypeError("HfBertFolder.open: argument 'dir' must be a path string");
    const isDir = await stat(dir).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (!isDir) throw new CheckpointError(`${dir}: not a directory (expected a Hugging Face BERT folder)`, dir);
    const configFile = join(dir, 'config.json');
    if (!(await exists(configFile)))
      throw new CheckpointError(`${dir}: no config.json (expected a Hugging Face BERT folder)`, configFile);
    const config = parseBertConfig(await readJson(configFile), configFile);
    const tokenizer = await readTokenizerFiles(dir);

    const raw = new Map<string, LazyTensor>();
    let weightsFile: string;
    let close: () => Promise<void>;
    const st = join(dir, 'model.safetensors');
    const bin = join(dir, 'pytorch_model.bin');
    if (await exists(st)) {
      weightsFile = st;
      const f = await SafetensorsFile.open(st);
      for (const [name, e] of f.entries) raw.set(name, { dtype: e.dtype, shape: e.shape, read: () => f.read(name) });
      close = () => f.close();
    } else if (await exists(bin)) {
      weightsFile = bin;
      const ck = await TorchCheckpoint.open(bin);
      for (const [name, t] of ck.stateDict) raw.set(name, t);
      close = () => ck.close();
    } else {
      throw new CheckpointError(`${dir}: no model.safetensors or pytorch_model.bin`, dir);
    }
    const tensors = new Map<string, LazyTensor>();
    const ignored: string[] = [];
    for (const [name, t] of raw) {
      const n = normalizeBertName(name);
      if (n === undefined || tensors.has(n)) ignored.push(name);
      else tensors.set(n, t);
    }
    return new HfBertFolder(dir, config, weightsFile, tensors, ignored, tokenizer, close);
  }

  async close(): Promise<void> {
    const c = this.#close;
    this.#close = async () => undefined;
    await c();
  }

  /** The same as close(): the package's resources all have dispose(). */
  async dispose(): Promise<void> {
    await this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** tokenizer.json if present, else vocab.txt with tokenizer_config.json's normaliser settings. */
export async function readTokenizerFiles(dir: string): Promise<BertTokenizerFiles> {
  const tj = join(dir, 'tokenizer.json');
  if (await exists(tj)) return { kind: 'tokenizer.json', file: tj, json: await readJson(tj) };
  const vocab = join(dir, 'vocab.txt');
  if (!(await exists(vocab))) throw new CheckpointError(`${dir}: no tokenizer.json or vocab.txt`, dir);
  const vocabText = await readFile(vocab, 'utf8');
  const tcFile = join(dir, 'tokenizer_config.json');
  const tc = (await exists(tcFile)) ? await readJson(tcFile) : {};
  const flag = (key: string, dflt: boolean): boolean => {
    const v = tc[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean')
      throw new CheckpointError(`${tcFile}: '${key}' must be true or false, got ${JSON.stringify(v)}`, tcFile);
    return v;
  };
  // BertTokenizer's defaults: do_lower_case true, tokenize_chinese_chars true, strip_accents None.
  const sa = tc.strip_accents;
  if (sa !== undefined && sa !== null && typeof sa !== 'boolean')
    throw new CheckpointError(
      `${tcFile}: 'strip_accents' must be true, false or null, got ${JSON.stringify(sa)}`,
      tcFile,
    );
  return {
    kind: 'vocab.txt',
    file: vocab,
    vocabText,
    lowercase: flag('do_lower_case', true),
    stripAccents: (sa ?? null) as boolean | null,
    handleChineseChars: flag('tokenize_chinese_chars', true),
  };
}
