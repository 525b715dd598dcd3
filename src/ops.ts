// Typed wrappers over the native op registry (native/src/opsapi.cpp). Each op takes one options
// object; tensors are named as in the registry, scalar parameters in camelCase. Ops run off the
// JS thread and resolve when done (with their scalar result where they have one). The table below
// mirrors the native registry; a test checks that the two agree, so they cannot drift apart.
import { CarzeroError } from './errors.js';
import { native, type NativeTensor } from './native.js';
import { Tensor } from './tensor.js';

export type Activation = 'none' | 'relu' | 'gelu';
const ACT: Record<Activation, number> = { none: 0, relu: 1, gelu: 2 };
const COMPUTE = { auto: -1, f32: 0, bf16: 1 } as const;

type ParamValue = number | boolean | string | bigint | undefined;
interface OpDesc {
  tensors: readonly string[];
  /** [camelCase option name, native parameter name] in native order. */
  params: readonly (readonly [string, string])[];
  variadic?: boolean;
}

/** Op name -> tensor argument names and parameter names, in native declaration order. */
export const OP_TABLE: Record<string, OpDesc> = {
  gemm: {
    tensors: ['a', 'b', 'c', 'bias', 'preact'],
    params: [
      ['transA', 'trans_a'],
      ['transB', 'trans_b'],
      ['alpha', 'alpha'],
      ['beta', 'beta'],
      ['act', 'act'],
      ['compute', 'compute'],
    ],
  },
  gemm_backward: {
    tensors: ['a', 'b', 'dc', 'preact', 'da', 'db', 'dbias'],
    params: [
      ['transA', 'trans_a'],
      ['transB', 'trans_b'],
      ['alpha', 'alpha'],
      ['act', 'act'],
    ],
  },
  layernorm_forward: { tensors: ['inp', 'weight', 'bias', 'out', 'mean', 'rstd'], params: [['eps', 'eps']] },
  layernorm_backward: { tensors: ['dout', 'inp', 'weight', 'mean', 'rstd', 'dinp', 'dweight', 'dbias'], params: [] },
  gelu_forward: { tensors: ['inp', 'out'], params: [] },
  gelu_backward: { tensors: ['inp', 'dout', 'dinp'], params: [] },
  relu_forward: { tensors: ['inp', 'out'], params: [] },
  relu_backward: { tensors: ['inp', 'dout', 'dinp'], params: [] },
  add_forward: { tensors: ['a', 'b', 'out'], params: [] },
  add_backward: { tensors: ['dout', 'da', 'db'], params: [] },
  softmax_forward: { tensors: ['inp', 'out'], params: [] },
  softmax_backward: { tensors: ['out', 'dout', 'dinp'], params: [] },
  attention_forward: {
    tensors: ['q', 'k', 'v', 'out', 'mask', 'lse', 'probs'],
    params: [
      ['numHeads', 'num_heads'],
      ['scale', 'scale'],
    ],
  },
  attention_backward: {
    tensors: ['q', 'k', 'v', 'out', 'lse', 'dout', 'dq', 'dk', 'dv', 'mask'],
    params: [
      ['numHeads', 'num_heads'],
      ['scale', 'scale'],
    ],
  },
  embedding_forward: { tensors: ['ids', 'table', 'out'], params: [] },
  embedding_backward: { tensors: ['dout', 'ids', 'dtable'], params: [] },
  patch_embed_forward: { tensors: ['img', 'weight', 'bias', 'out'], params: [] },
  patch_embed_backward: { tensors: ['dout', 'img', 'weight', 'dweight', 'dbias', 'dimg'], params: [] },
  softmax_xent_forward: { tensors: ['logits', 'targets', 'losses'], params: [['axis', 'axis']] },
  softmax_xent_backward: { tensors: ['logits', 'targets', 'dlosses', 'dlogits'], params: [['axis', 'axis']] },
  adam_update: {
    tensors: ['param', 'grad', 'm', 'v'],
    params: [
      ['lr', 'lr'],
      ['beta1', 'beta1'],
      ['beta2', 'beta2'],
      ['eps', 'eps'],
      ['weightDecay', 'weight_decay'],
      ['step', 'step'],
      ['decoupled', 'decoupled'],
      ['gradScale', 'grad_scale'],
    ],
  },
  sum_squares: { tensors: ['x'], params: [] },
  scale: { tensors: ['x'], params: [['s', 's']] },
  clip_grad_norm: { tensors: ['grads'], params: [['maxNorm', 'max_norm']], variadic: true },
  dropout_forward: {
    tensors: ['inp', 'out'],
    params: [
      ['p', 'p'],
      ['seed', 'seed'],
      ['offset', 'offset'],
    ],
  },
  dropout_backward: {
    tensors: ['dout', 'dinp'],
    params: [
      ['p', 'p'],
      ['seed', 'seed'],
      ['offset', 'offset'],
    ],
  },
  convert: { tensors: ['src', 'dst'], params: [] },
};

function encodeParam(op: string, key: string, v: ParamValue): number | undefined {
  if (v === undefined) return undefined;
  if (key === 'act') {
    if (typeof v !== 'string' || !(v in ACT))
      throw new TypeError(`${op}: option 'act' must be 'none', 'relu' or 'gelu', got ${String(v)}`);
    return ACT[v as Activation];
  }
  if (key === 'compute') {
    if (typeof v !== 'string' || !(v in COMPUTE))
      throw new TypeError(`${op}: option 'compute' must be 'auto', 'f32' or 'bf16', got ${String(v)}`);
    return COMPUTE[v as keyof typeof COMPUTE];
  }
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'bigint') {
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER))
      throw new RangeError(`${op}: option '${key}' must be in [0, 2^53), got ${v}`);
    return Number(v);
  }
  if (typeof v !== 'number') throw new TypeError(`${op}: option '${key}' must be a number, got ${typeof v}`);
  if (!Number.isFinite(v)) throw new RangeError(`${op}: option '${key}' must be finite, got ${v}`);
  return v;
}

/** Validates and orders the arguments of `op`; returns the context, tensors and params. */
function prepare(op: string, args: Record<string, unknown>) {
  const desc = OP_TABLE[op];
  if (!desc) throw new TypeError(`unknown op '${op}'`);
  if (args === null || typeof args !== 'object') throw new TypeError(`${op}: expected an options object`);
  let first: Tensor | undefined;
  let firstName = '';
  const check = (name: string, t: unknown): NativeTensor | null => {
    if (t === undefined || t === null) return null;
    if (!(t instanceof Tensor)) throw new TypeError(`${op}: argument '${name}' must be a Tensor`);
    if (t.disposed) throw new CarzeroError(`${op}: argument '${name}' has been disposed`, 'CZ_ERR_INVALID_ARGUMENT');
    if (!first) {
      first = t;
      firstName = name;
    } else if (t.device !== first.device && t.device.toString() !== first.device.toString()) {
      throw new RangeError(`${op}: argument '${name}' is on ${t.device} but '${firstName}' is on ${first.device}`);
    }
    return t.native;
  };
  let tensors: (NativeTensor | null)[];
  if (desc.variadic) {
    const list = args[desc.tensors[0]];
    if (!Array.isArray(list)) throw new TypeError(`${op}: argument '${desc.tensors[0]}' must be an array of Tensors`);
    tensors = list.map((t, i) => check(`${desc.tensors[0]}[${i}]`, t));
  } else {
    tensors = desc.tensors.map((n) => check(n, args[n]));
  }
  for (const key of Object.keys(args))
    if (!desc.tensors.includes(key) && !desc.params.some(([k]) => k === key))
      throw new TypeError(`${op}: unknown option '${key}'`);
  const params: number[] = [];
  const enc = desc.params.map(([k]) => encodeParam(op, k, args[k] as ParamValue));
  // Native defaults apply to a trailing run of omitted parameters; an omitted one before a given
  // one takes its native default explicitly from the registry.
  const last = enc.reduce<number>((acc, v, i) => (v === undefined ? acc : i), -1);
  for (let i = 0; i <= last; i++) params.push(enc[i] ?? defaults(op)[i]);
  if (!first) throw new TypeError(`${op}: at least one tensor argument is required`);
  const ctx = (first as Tensor).device.nativeContext;
  return { ctx, tensors, params };
}

let defaultCache: Map<string, number[]> | undefined;
function defaults(op: string): number[] {
  if (!defaultCache) {
    defaultCache = new Map();
    for (const spec of JSON.parse(native().opList()) as { name: string; params: { default: number }[] }[])
      defaultCache.set(
        spec.name,
        spec.params.map((p) => p.default),
      );
  }
  return defaultCache.get(op) ?? [];
}

/** Runs `op` off the JS thread; resolves with its scalar results. */
export async function runOp(op: string, args: Record<string, unknown>): Promise<number[]> {
  const { ctx, tensors, params } = prepare(op, args);
  return native().runOp(ctx, op, tensors, params);
}

/** Runs `op` on the calling thread (for tiny ops; blocks the event loop). */
export function runOpSync(op: string, args: Record<string, unknown>): number[] {
  const { ctx, tensors, params } = prepare(op, args);
  return native().runOpSync(ctx, op, tensors, params);
}

type T = Tensor;
export interface GemmOptions {
  a: T;
  b: T;
  c: T;
  bias?: T;
  preact?: T;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
  act?: Activation;
  compute?: 'auto' | 'f32' | 'bf16';
}
export interface GemmBackwardOptions {
  a: T;
  b: T;
  dc: T;
  preact?: T;
  da?: T;
  db?: T;
  dbias?: T;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  act?: Activation;
}
export interface LayerNormOptions {
  inp: T;
  weight: T;
  bias: T;
  out: T;
  mean?: T;
  rstd?: T;
  eps?: number;
}
export interface LayerNormBackwardOptions {
  dout: T;
  inp: T;
  weight: T;
  mean: T;
  rstd: T;
  dinp?: T;
  dweight?: T;
  dbias?: T;
}
export interface UnaryOptions {
  inp: T;
  out: T;
}
export interface UnaryBackwardOptions {
  inp: T;
  dout: T;
  dinp: T;
}
export interface AttentionOptions {
  q: T;
  k: T;
  v: T;
  out: T;
  mask?: T;
  lse?: T;
  probs?: T;
  numHeads: number;
  scale?: number;
}
export interface AttentionBackwardOptions {
  q: T;
  k: T;
  v: T;
  out: T;
  lse: T;
  dout: T;
  dq?: T;
  dk?: T;
  dv?: T;
  mask?: T;
  numHeads: number;
  scale?: number;
}
export interface XentOptions {
  logits: T;
  targets: T;
  losses: T;
  axis?: 0 | 1;
}
export interface XentBackwardOptions {
  logits: T;
  targets: T;
  dlosses: T;
  dlogits: T;
  axis?: 0 | 1;
}
export interface AdamOptions {
  param: T;
  grad: T;
  m: T;
  v: T;
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  step: number;
  decoupled?: boolean;
  gradScale?: number;
}
export interface DropoutOptions {
  inp: T;
  out: T;
  p: number;
  seed: number | bigint;
  offset?: number | bigint;
}
export interface DropoutBackwardOptions {
  dout: T;
  dinp: T;
  p: number;
  seed: number | bigint;
  offset?: number | bigint;
}

const v = async (op: string, a: object): Promise<void> => {
  await runOp(op, a as Record<string, unknown>);
};

/** Every native op, typed. Buffers are caller-allocated; see native/src/ops.h for semantics. */
export const ops = {
  gemm: (a: GemmOptions) => v('gemm', a),
  gemmBackward: (a: GemmBackwardOptions) => v('gemm_backward', a),
  layernormForward: (a: LayerNormOptions) => v('layernorm_forward', a),
  layernormBackward: (a: LayerNormBackwardOptions) => v('layernorm_backward', a),
  geluForward: (a: UnaryOptions) => v('gelu_forward', a),
  geluBackward: (a: UnaryBackwardOptions) => v('gelu_backward', a),
  reluForward: (a: UnaryOptions) => v('relu_forward', a),
  reluBackward: (a: UnaryBackwardOptions) => v('relu_backward', a),
  addForward: (a: { a: T; b: T; out: T }) => v('add_forward', a),
  addBackward: (a: { dout: T; da?: T; db?: T }) => v('add_backward', a),
  softmaxForward: (a: UnaryOptions) => v('softmax_forward', a),
  softmaxBackward: (a: { out: T; dout: T; dinp: T }) => v('softmax_backward', a),
  attentionForward: (a: AttentionOptions) => v('attention_forward', a),
  attentionBackward: (a: AttentionBackwardOptions) => v('attention_backward', a),
  embeddingForward: (a: { ids: T; table: T; out: T }) => v('embedding_forward', a),
  embeddingBackward: (a: { dout: T; ids: T; dtable: T }) => v('embedding_backward', a),
  patchEmbedForward: (a: { img: T; weight: T; bias?: T; out: T }) => v('patch_embed_forward', a),
  patchEmbedBackward: (a: { dout: T; img: T; weight: T; dweight: T; dbias?: T; dimg?: T }) =>
    v('patch_embed_backward', a),
  /** Resolves with the mean loss over the distributions. */
  softmaxXentForward: async (a: XentOptions) =>
    (await runOp('softmax_xent_forward', a as unknown as Record<string, unknown>))[0],
  softmaxXentBackward: (a: XentBackwardOptions) => v('softmax_xent_backward', a),
  adamUpdate: (a: AdamOptions) => v('adam_update', a),
  sumSquares: async (a: { x: T }) => (await runOp('sum_squares', a))[0],
  scale: (a: { x: T; s: number }) => v('scale', a),
  /** Scales the gradients in place so their global L2 norm is at most maxNorm (PyTorch's
   * clip_grad_norm_); resolves with the norm before clipping. */
  clipGradNorm: async (a: { grads: T[]; maxNorm: number }) => (await runOp('clip_grad_norm', a))[0],
  dropoutForward: (a: DropoutOptions) => v('dropout_forward', a),
  dropoutBackward: (a: DropoutBackwardOptions) => v('dropout_backward', a),
  convert: (a: { src: T; dst: T }) => v('convert', a),
};
