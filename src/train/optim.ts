// Optimizers over the model's parameter/gradient views, and the learning-rate schedules.
//
// Adam / AdamW run the native `adam_update` op per parameter (L2 weight decay added to the
// gradient for 'adam', as the original's torch.optim.Adam; decoupled for 'adamw'). SGD with
// momentum (PyTorch semantics: dampening 0, not Nesterov, L2 decay in the gradient) runs on host
// copies: there is no axpy op yet, so it is correct on every device but slow on CUDA.
import { ops, runOpSync } from '../ops.js';
import { Tensor } from '../tensor.js';
import type { NamedTensor } from '../model/native-model.js';
import type { OptimizerConfig, SchedulerConfig } from './config.js';

/** CPU parameter tensors up to this many elements are updated on the calling thread. */
const SYNC_ELEMENTS = 1 << 16;

export class Optimizer {
  readonly config: OptimizerConfig;
  readonly params: NamedTensor[];
  readonly grads: NamedTensor[];
  /** State tensors by name: `m/<p>`, `v/<p>` (Adam) or `momentum/<p>` (SGD). */
  readonly state = new Map<string, Tensor>();
  /** Updates taken so far. */
  step = 0;

  constructor(config: OptimizerConfig, params: NamedTensor[], grads: NamedTensor[]) {
    this.config = config;
    this.params = params;
    this.grads = grads;
    if (params.length !== grads.length || params.some((p, i) => p.name !== grads[i].name))
      throw new Error('Optimizer: parameters and gradients do not line up');
    const kinds = config.name === 'sgd' ? ['momentum'] : ['m', 'v'];
    for (const p of params)
      for (const k of kinds)
        this.state.set(`${k}/${p.name}`, Tensor.zeros(p.tensor.shape, { device: p.tensor.device }));
  }

  /** Restores the state tensors from a checkpoint (every one must be there, same size). */
  load(tensors: Map<string, Buffer>, step: number): void {
    for (const [name, t] of this.state) {
      const b = tensors.get(name);
      if (!b) throw new Error(`optimizer state: '${name}' missing from the checkpoint`);
      if (b.byteLength !== t.nbytes)
        throw new Error(`optimizer state: '${name}' has ${b.byteLength} bytes, expected ${t.nbytes}`);
      const copy = new Float32Array(t.size);
      new Uint8Array(copy.buffer).set(b);
      t.write(copy);
    }
    if (tensors.size !== this.state.size)
      throw new Error(
        `optimizer state: the checkpoint has ${tensors.size} tensors, expected ${this.state.size} ` +
          '(another optimizer or freeze setting?)',
      );
    this.step = step;
  }

  /** One update with learning rate `lr` (the gradients already clipped). */
  async update(lr: number): Promise<void> {
    const c = this.config;
    this.step++;
    if (c.name === 'sgd') {
      for (let i = 0; i < this.params.length; i++) {
        const p = this.params[i].tensor;
        const buf = this.state.get(`momentum/${this.params[i].name}`)!;
        const [pv, gv, bv] = (await Promise.all([p.read(), this.grads[i].tensor.read(), buf.read()])) as Float32Array[];
        const mom = c.momentum;
        const wd = c.weight_decay;
        const first = this.step === 1;
        for (let j = 0; j < pv.length; j++) {
          const g = gv[j] + wd * pv[j];
          const b = first ? g : mom * bv[j] + g;
          bv[j] = b;
          pv[j] -= lr * (mom > 0 ? b : g);
        }
        buf.write(bv);
        p.write(pv);
      }
      return;
    }
    for (let i = 0; i < this.params.length; i++) {
      const n = this.params[i].name;
      const p = this.params[i].tensor;
      const args = {
        param: p,
        grad: this.grads[i].tensor,
        m: this.state.get(`m/${n}`)!,
        v: this.state.get(`v/${n}`)!,
        lr,
        beta1: c.betas[0],
        beta2: c.betas[1],
        eps: c.eps,
        weightDecay: c.weight_decay,
        step: this.step,
        decoupled: c.name === 'adamw',
      };
      // A small CPU tensor is updated on this thread: the same op, without the round trip to a
      // worker thread that costs more than the update itself (~3-7 ms a step over the ~100
      // tensors of the demo's model on 2 cores).
      if (p.device.kind === 'cpu' && p.size <= SYNC_ELEMENTS) runOpSync('adam_update', args);
      else await ops.adamUpdate(args);
    }
  }

  dispose(): void {
    for (const t of this.state.values()) t.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** ReduceLROnPlateau (mode 'min'), as torch.optim.lr_scheduler. */
export interface PlateauState {
  lr: number;
  best: number | null; // null = +inf (JSON has no Infinity)
  num_bad_epochs: number;
  cooldown_counter: number;
}

export function plateauInit(lr: number): PlateauState {
  return { lr, best: null, num_bad_epochs: 0, cooldown_counter: 0 };
}

/** One epoch's metric; mutates and returns whether the lr was reduced. */
export function plateauStep(s: PlateauState, metric: number, c: SchedulerConfig): boolean {
  const best = s.best ?? Infinity;
  const better = c.threshold_mode === 'rel' ? metric < best * (1 - c.threshold) : metric < best - c.threshold;
  if (better) {
    s.best = metric;
    s.num_bad_epochs = 0;
  } else {
    s.num_bad_epochs++;
  }
  if (s.cooldown_counter > 0) {
    s.cooldown_counter--;
    s.num_bad_epochs = 0;
  }
  if (s.num_bad_epochs > c.patience) {
    const nl = Math.max(s.lr * c.factor, c.min_lr);
    const reduced = s.lr - nl > 1e-8;
    if (reduced) s.lr = nl;
    s.cooldown_counter = c.cooldown;
    s.num_bad_epochs = 0;
    return reduced;
  }
  return false;
}

/**
 * The lr of optimizer step `t` (0-based): linear warm-up over warmup_steps ((t+1)/W of the lr),
 * then plateau's current lr, a cosine decay from the base lr to min_lr over totalSteps, or constant.
 */
export function lrAt(t: number, baseLr: number, plateauLr: number, c: SchedulerConfig, totalSteps: number): number {
  const W = c.warmup_steps;
  const warm = W > 0 && t < W ? (t + 1) / W : 1;
  if (c.name === 'plateau') return plateauLr * warm;
  if (c.name === 'none') return baseLr * warm;
  if (W > 0 && t < W) return baseLr * warm;
  const p = Math.min(1, Math.max(0, (t - W) / Math.max(1, totalSteps - W)));
  return c.min_lr + (baseLr - c.min_lr) * 0.5 * (1 + Math.cos(Math.PI * p));
}
