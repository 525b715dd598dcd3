// A CARZero model made from scratch for the demo: a small ViT, a small BERT with a word-level
// vocabulary built from the training reports, and the alignment head, all randomly initialised
// (seeded), written as a model directory (docs/MODEL-FORMAT.md: config.json, model.safetensors,
// tokenizer.json) that the trainer and CARZero.load read like a converted checkpoint.
//
// Initialisation: BERT and timm's ViT draw weights from N(0, 0.02) (truncated at 2 sigma for the
// ViT, as timm's trunc_normal_), biases 0, LayerNorms (1, 0); the head's packed MultiheadAttention
// projection is Xavier-uniform with zero bias, as torch.nn does. The head's ReLU layers (the FFNs'
// linear1/linear2 and the 4-layer mlp_head) get He-normal weights N(0, 2/fan_in) and zero biases
// (`headInit: 'he'`, the default) instead of PyTorch's default U(+-1/sqrt(fan_in)) ('torch'):
// with the PyTorch default each ReLU layer shrinks the signal, and the score of a random model
// varies by only ~1e-3 across (image, text) pairs (its image x text interaction part ~1e-3);
// trained from scratch, that model stays at the chance loss (docs/TRAINING.md, demo experiments).
// He init keeps the variance through the ReLUs: score spread ~0.15, interaction ~0.06.
// `img_encoder.model.pos_embed` is frozen by the trainer (as in the original, whose MRM/M3AE ViT
// has MAE's fixed 2-D sin-cos table), so it stays what it starts as: MAE's 2-D sin-cos table
// (`posInit: 'sincos'`, the default; a zero [CLS] row), values in [-1, 1]. A random N(0, 0.02)
// table ('normal', the first demo's) is fixed and distinct per position too, but ~10x smaller
// than the patch embeddings: the from-scratch ViT then hardly knows where a patch is, and the
// demo's training sat at the chance loss for the first ~450 steps instead of ~100 (measured,
// docs/TRAINING.md).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Rng } from '../../data/rng.js';
import { vocabToTokenizerJson } from '../../text/tokenizer.js';
import { expectedTensors, type CarzeroModelConfig } from '../../weights/convert.js';
import { writeSafetensors, type SafetensorsInput } from '../../weights/safetensors.js';

export interface ModelSize {
  /** Input side (the centre crop) and the padded side it is cropped from. */
  image: number;
  resize: number;
  patch: number;
  /** Channels C shared by the ViT, BERT and the head. */
  width: number;
  visionDepth: number;
  textDepth: number;
  heads: number;
  headDepth: number;
  /** Tokens per text including [CLS] and [SEP]. */
  maxLength: number;
}

/** The demo's default size: 80 px crops of 88 px images, 8 px patches (100 patches), width 64;
 * 16 text positions (the longest phantom report sentence has 12 words, 14 tokens). */
export const DEMO_MODEL_SIZE: Readonly<ModelSize> = Object.freeze({
  image: 80,
  resize: 88,
  patch: 8,
  width: 64,
  visionDepth: 2,
  textDepth: 2,
  heads: 4,
  headDepth: 2,
  maxLength: 16,
});

const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];

/** vocab.txt text: the special tokens, then the given words sorted (deduplicated). */
export function wordVocab(words: Iterable<string>): string {
  const set = new Set<string>();
  for (const w of words) if (w && !SPECIALS.includes(w)) set.add(w);
  return [...SPECIALS, ...[...set].sort()].join('\n') + '\n';
}

/** The model config for a size and vocabulary size. */
export function demoModelConfig(size: ModelSize, vocabSize: number): CarzeroModelConfig {
  const s = size;
  if (s.image % s.patch !== 0)
    throw new RangeError(`demo model: image size ${s.image} is not a multiple of the patch size ${s.patch}`);
  if (s.resize < s.image) throw new RangeError(`demo model: resize ${s.resize} is smaller than the crop ${s.image}`);
  if (s.width % s.heads !== 0)
    throw new RangeError(`demo model: width ${s.width} is not a multiple of heads ${s.heads}`);
  return {
    format: 'carzero-model',
    format_version: 1,
    vision: {
      image_size: s.image,
      patch_size: s.patch,
      in_chans: 3,
      width: s.width,
      depth: s.visionDepth,
      heads: s.heads,
      mlp_dim: 4 * s.width,
      eps: 1e-6,
    },
    text: {
      vocab_size: vocabSize,
      width: s.width,
      depth: s.textDepth,
      heads: s.heads,
      intermediate: 4 * s.width,
      max_position: Math.max(32, s.maxLength),
      type_vocab: 2,
      eps: 1e-12,
      max_length: s.maxLength,
      last_n_layers: Math.min(4, s.textDepth),
    },
    head: {
      width: s.width,
      heads: s.heads,
      depth: s.headDepth,
      ffn: 2 * s.width,
      mlp: [2 * s.width, s.width, s.width / 2, 1],
      eps: 1e-5,
    },
    preprocess: { resize: s.resize, crop: s.image, mean: 0.4978, std: 0.2449 },
    source: { checkpoint: 'random-init (carzero demo)', text_model: 'word vocabulary of the phantom reports' },
  };
}

/** MAE's fixed 2-D sin-cos position table (get_2d_sincos_pos_embed with a zero [CLS] row): the
 * first half of the channels encodes the column, the second half the row, each as sin and cos
 * at width / 4 frequencies 1 / 10000^(i / (width / 4)). */
export function sincosPosEmbed(width: number, grid: number): Float32Array {
  if (width % 4 !== 0) throw new RangeError(`demo model: sin-cos positions need a width divisible by 4, got ${width}`);
  const out = new Float32Array((1 + grid * grid) * width);
  const q = width / 4;
  for (let r = 0; r < grid; r++)
    for (let c = 0; c < grid; c++) {
      const o = (1 + r * grid + c) * width;
      for (let i = 0; i < q; i++) {
        const w = 1 / Math.pow(10000, i / q);
        out[o + i] = Math.sin(c * w);
        out[o + q + i] = Math.cos(c * w);
        out[o + 2 * q + i] = Math.sin(r * w);
        out[o + 3 * q + i] = Math.cos(r * w);
      }
    }
  return out;
}

/** Box-Muller standard normal. */
function gauss(rng: Rng): number {
  const u = 1 - rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

/** The initial values of one tensor (see the file comment). */
function initTensor(name: string, shape: number[], rng: Rng, he: boolean): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const leaf = name.slice(name.lastIndexOf('.') + 1);
  const isNorm = /(norm\d?|LayerNorm|decoder_norm)\.(weight|bias)$/.test(name);
  if (isNorm) {
    if (leaf === 'weight') out.fill(1);
    return out;
  }
  if (name.startsWith('fusion_module.')) {
    if (leaf === 'in_proj_weight') {
      const a = Math.sqrt(6 / (shape[0] / 3 + shape[1])); // xavier over each of q, k, v
      for (let i = 0; i < n; i++) out[i] = rng.uniform(-a, a);
    } else if (he && leaf === 'weight' && /mlp_head|linear1|linear2/.test(name)) {
      const sd = Math.sqrt(2 / shape[1]);
      for (let i = 0; i < n; i++) out[i] = sd * gauss(rng);
    } else if (he && leaf === 'bias' && /mlp_head|linear1|linear2/.test(name)) {
      return out;
    } else if (leaf === 'weight' || leaf === 'bias') {
      if (name.includes('multihead_attn.out_proj.bias')) return out; // torch zeroes it
      const fanIn = leaf === 'weight' ? shape[1] : undefined;
      // a bias's bound uses its layer's fan_in; read it from the matching weight's shape
      const bound = 1 / Math.sqrt(fanIn ?? biasFanIn(name));
      for (let i = 0; i < n; i++) out[i] = rng.uniform(-bound, bound);
    }
    return out;
  }
  if (leaf === 'bias' && !name.endsWith('in_proj_bias')) return out;
  const trunc = name.startsWith('img_encoder.');
  for (let i = 0; i < n; i++) {
    let g = gauss(rng);
    if (trunc) while (Math.abs(g) > 2) g = gauss(rng);
    out[i] = 0.02 * g;
  }
  return out;
}

let fanIns = new Map<string, number>();
function biasFanIn(name: string): number {
  const f = fanIns.get(name.replace(/\.bias$/, '.weight'));
  if (!f) throw new Error(`demo model: no weight for bias ${name}`);
  return f;
}

export interface CreatedModel {
  dir: string;
  config: CarzeroModelConfig;
  parameters: number;
  vocabulary: number;
}

/** Writes a randomly initialised model directory for `words` (the vocabulary) and `size`. */
export async function createDemoModel(options: {
  dir: string;
  words: Iterable<string>;
  size?: ModelSize;
  seed: number;
  headInit?: 'he' | 'torch';
  posInit?: 'sincos' | 'normal';
  headBias?: number;
}): Promise<CreatedModel> {
  const size = options.size ?? DEMO_MODEL_SIZE;
  const vocabText = wordVocab(options.words);
  const vocabSize = vocabText.trimEnd().split('\n').length;
  const config = demoModelConfig(size, vocabSize);
  const expected = expectedTensors(config);
  fanIns = new Map(
    [...expected].filter(([k, s]) => k.endsWith('.weight') && s.length === 2).map(([k, s]) => [k, s[1]]),
  );
  const tensors = new Map<string, SafetensorsInput>();
  let parameters = 0;
  let k = 0;
  for (const [name, shape] of expected) {
    // One stream per tensor (its position in the fixed table): independent of write order.
    let data = initTensor(name, shape, Rng.derive(options.seed, 7, k++), (options.headInit ?? 'he') === 'he');
    if (options.headBias && /^fusion_module\.mlp_head\.[036]\.bias$/.test(name)) data.fill(options.headBias);
    if (name === 'img_encoder.model.pos_embed' && (options.posInit ?? 'sincos') === 'sincos')
      data = sincosPosEmbed(size.width, size.image / size.patch);
    parameters += data.length;
    tensors.set(name, { dtype: 'F32', shape, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) });
  }
  await mkdir(options.dir, { recursive: true });
  await writeSafetensors(join(options.dir, 'model.safetensors'), tensors, {
    metadata: { format: 'carzero-model', format_version: '1', source_checkpoint: config.source.checkpoint },
  });
  await writeFile(join(options.dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  await writeFile(join(options.dir, 'vocab.txt'), vocabText);
  await writeFile(join(options.dir, 'tokenizer.json'), `${JSON.stringify(vocabToTokenizerJson(vocabText), null, 2)}\n`);
  return { dir: options.dir, config, parameters, vocabulary: vocabSize };
}
