// Ops through the binding: the TypeScript op table agrees with the native registry, each family
// computes what a plain JS reference computes, errors name their argument, and work really runs
// off the JS thread. (Exhaustive numerical parity lives in the native harness, native/tests/.)
import test from 'ava';
import { CarzeroError, Tensor, ops, runOp } from '../src/index.js';
import { OP_TABLE, native } from '../src/internal.js';

function rand(n: number, seed: number): Float32Array {
  // xorshift32: deterministic test data
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return out;
}

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / (den || 1);
}

test('the TypeScript op table matches the native registry', (t) => {
  const specs = JSON.parse(native().opList()) as {
    name: string;
    args: { name: string }[];
    params: { name: string }[];
    variadic: boolean;
  }[];
  t.deepEqual(Object.keys(OP_TABLE).sort(), specs.map((s) => s.name).sort());
  for (const s of specs) {
    const d = OP_TABLE[s.name];
    t.deepEqual(
      d.tensors,
      s.args.map((a) => a.name),
      s.name,
    );
    t.deepEqual(
      d.params.map(([, n]) => n),
      s.params.map((p) => p.name),
      s.name,
    );
    t.is(!!d.variadic, s.variadic, s.name);
  }
});

test('gemm: nn.Linear layout with bias and exact GELU', async (t) => {
  const M = 7,
    K = 13,
    N = 5;
  const x = rand(M * K, 1),
    w = rand(N * K, 2),
    b = rand(N, 3);
  const a = Tensor.from(x, [M, K]),
    W = Tensor.from(w, [N, K]),
    bias = Tensor.from(b, [N]);
  const c = Tensor.zeros([M, N]),
    pre = Tensor.zeros([M, N]);
  await ops.gemm({ a, b: W, c, bias, preact: pre, transB: true, act: 'gelu' });
  const ref = new Float64Array(M * N);
  const refPre = new Float64Array(M * N);
  const erf = (z: number) => {
    // Abramowitz-Stegun 7.1.26 is too coarse; use a series/continued fraction via Math functions
    const s = Math.sign(z),
      ax = Math.abs(z);
    const tt = 1 / (1 + 0.5 * ax);
    const y =
      1 -
      tt *
        Math.exp(
          -ax * ax -
            1.26551223 +
            tt *
              (1.00002368 +
                tt *
                  (0.37409196 +
                    tt *
                      (0.09678418 +
                        tt *
                          (-0.18628806 +
                            tt *
                              (0.27886807 +
                                tt * (-1.13520398 + tt * (1.48851587 + tt * (-0.82215223 + tt * 0.17087277)))))))),
        );
    return s * y;
  };
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = b[j];
      for (let k = 0; k < K; k++) s += x[i * K + k] * w[j * K + k];
      refPre[i * N + j] = s;
      ref[i * N + j] = 0.5 * s * (1 + erf(s / Math.SQRT2));
    }
  t.true(maxRel(pre.toArray() as Float32Array, refPre) < 1e-5);
  t.true(maxRel(c.toArray() as Float32Array, ref) < 1e-5);
});

test('gemm: batched with a shared operand and bf16 compute', async (t) => {
  const B = 3,
    M = 4,
    K = 32,
    N = 6;
  const x = rand(B * M * K, 4),
    w = rand(K * N, 5);
  const a = Tensor.from(x, [B, M, K]),
    W = Tensor.from(w, [K, N], { dtype: 'bf16' });
  const c = Tensor.zeros([B, M, N]);
  await ops.gemm({ a, b: W, c }); // compute 'auto' -> bf16 because b is bf16
  const wq = W.toFloat32();
  const ref = new Float64Array(B * M * N);
  for (let bb = 0; bb < B; bb++)
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += x[bb * M * K + i * K + k] * wq[k * N + j];
        ref[bb * M * N + i * N + j] = s;
      }
  t.true(maxRel(c.toArray() as Float32Array, ref) < 2e-2); // activations rounded to bf16 too
});

test('layernorm forward and backward', async (t) => {
  const N = 5,
    C = 97;
  const x = rand(N * C, 6),
    g = rand(C, 7),
    bb = rand(C, 8);
  const inp = Tensor.from(x, [N, C]),
    weight = Tensor.from(g, [C]),
    bias = Tensor.from(bb, [C]);
  const out = Tensor.zeros([N, C]),
    mean = Tensor.zeros([N]),
    rstd = Tensor.zeros([N]);
  await ops.layernormForward({ inp, weight, bias, out, mean, rstd, eps: 1e-6 });
  const ref = new Float64Array(N * C);
  for (let i = 0; i < N; i++) {
    let m = 0;
    for (let c = 0; c < C; c++) m += x[i * C + c];
    m /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[i * C + c] - m) ** 2;
    const r = 1 / Math.sqrt(v / C + 1e-6);
    for (let c = 0; c < C; c++) ref[i * C + c] = (x[i * C + c] - m) * r * g[c] + bb[c];
  }
  t.true(maxRel(out.toArray() as Float32Array, ref) < 1e-5);
  // backward: dbias accumulates the column sums of dout on top of what is there
  const dout = Tensor.from(rand(N * C, 9), [N, C]);
  const dbias = Tensor.from(new Float32Array(C).fill(1), [C]);
  const dinp = Tensor.zeros([N, C]);
  await ops.layernormBackward({ dout, inp, weight, mean, rstd, dinp, dbias });
  const d = dout.toArray() as Float32Array;
  const db = dbias.toArray() as Float32Array;
  for (let c = 0; c < C; c += 17) {
    let s = 1;
    for (let i = 0; i < N; i++) s += d[i * C + c];
    t.true(Math.abs(db[c] - s) < 1e-4);
  }
});

test('attention: cross-attention with a key-padding mask matches a JS reference', async (t) => {
  const B = 2,
    Tq = 3,
    Tk = 5,
    NH = 2,
    HS = 4,
    C = NH * HS;
  const qd = rand(B * Tq * C, 10),
    kd = rand(B * Tk * C, 11),
    vd = rand(B * Tk * C, 12);
  const md = new Uint8Array([1, 1, 1, 0, 0, 1, 1, 1, 1, 1]);
  const q = Tensor.from(qd, [B, Tq, C]),
    k = Tensor.from(kd, [B, Tk, C]),
    v = Tensor.from(vd, [B, Tk, C]);
  const mask = Tensor.from(md, [B, Tk]);
  const out = Tensor.zeros([B, Tq, C]),
    probs = Tensor.zeros([B, NH, Tq, Tk]);
  await ops.attentionForward({ q, k, v, out, mask, probs, numHeads: NH });
  const ref = new Float64Array(B * Tq * C);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < NH; h++)
      for (let i = 0; i < Tq; i++) {
        const s: number[] = [];
        for (let j = 0; j < Tk; j++) {
          let d = 0;
          for (let e = 0; e < HS; e++) d += qd[(b * Tq + i) * C + h * HS + e] * kd[(b * Tk + j) * C + h * HS + e];
          s.push(md[b * Tk + j] ? d / Math.sqrt(HS) : -Infinity);
        }
        const mx = Math.max(...s);
        const p = s.map((z) => Math.exp(z - mx));
        const z = p.reduce((a, c) => a + c, 0);
        for (let e = 0; e < HS; e++) {
          let o = 0;
          for (let j = 0; j < Tk; j++) o += (p[j] / z) * vd[(b * Tk + j) * C + h * HS + e];
          ref[(b * Tq + i) * C + h * HS + e] = o;
        }
      }
  t.true(maxRel(out.toArray() as Float32Array, ref) < 1e-5);
  const pr = probs.toArray() as Float32Array;
  t.is(pr[3], 0); // masked key of batch 0
  t.true(Math.abs(pr[0] + pr[1] + pr[2] - 1) < 1e-5);
});

test('softmax cross-entropy rows and columns, and the symmetric CARZero loss', async (t) => {
  const n = 4;
  const x = rand(n * n, 13);
  const logits = Tensor.from(x, [n, n]);
  const targets = Tensor.from(new Int32Array([0, 1, 2, 3]), [n]);
  const losses = Tensor.zeros([n]);
  const rowMean = await ops.softmaxXentForward({ logits, targets, losses, axis: 1 });
  const colMean = await ops.softmaxXentForward({ logits, targets, losses, axis: 0 });
  const ce = (get: (i: number, j: number) => number) => {
    let tot = 0;
    for (let i = 0; i < n; i++) {
      let mx = -Infinity;
      for (let j = 0; j < n; j++) mx = Math.max(mx, get(i, j));
      let z = 0;
      for (let j = 0; j < n; j++) z += Math.exp(get(i, j) - mx);
      tot += Math.log(z) + mx - get(i, i);
    }
    return tot / n;
  };
  t.true(Math.abs(rowMean - ce((i, j) => x[i * n + j])) < 1e-5);
  t.true(Math.abs(colMean - ce((i, j) => x[j * n + i])) < 1e-5);
});

test('adam (L2 in gradient) and adamw follow the PyTorch formulas', async (t) => {
  for (const decoupled of [false, true]) {
    const p0 = rand(9, 14),
      g = rand(9, 15);
    const param = Tensor.from(p0, [9]),
      grad = Tensor.from(g, [9]),
      m = Tensor.zeros([9]),
      v = Tensor.zeros([9]);
    const lr = 5e-2,
      b1 = 0.5,
      b2 = 0.999,
      eps = 1e-8,
      wd = 0.1;
    const ref = Array.from(p0),
      mm = new Array(9).fill(0),
      vv = new Array(9).fill(0);
    for (let step = 1; step <= 3; step++) {
      await ops.adamUpdate({ param, grad, m, v, lr, beta1: b1, beta2: b2, eps, weightDecay: wd, step, decoupled });
      for (let i = 0; i < 9; i++) {
        let gi = g[i];
        if (decoupled) ref[i] *= 1 - lr * wd;
        else gi += wd * ref[i];
        mm[i] = b1 * mm[i] + (1 - b1) * gi;
        vv[i] = b2 * vv[i] + (1 - b2) * gi * gi;
        const bc1 = 1 - b1 ** step,
          bc2 = 1 - b2 ** step;
        ref[i] -= ((lr / bc1) * mm[i]) / (Math.sqrt(vv[i]) / Math.sqrt(bc2) + eps);
      }
    }
    t.true(maxRel(param.toArray() as Float32Array, ref) < 1e-5, `decoupled=${decoupled}`);
  }
});

test('global-norm clipping scales every gradient like clip_grad_norm_', async (t) => {
  const a = Tensor.from(new Float32Array([3, 0]), [2]);
  const b = Tensor.from(new Float32Array([0, 4, 0]), [3]);
  const norm = await ops.clipGradNorm({ grads: [a, b], maxNorm: 0.25 });
  t.true(Math.abs(norm - 5) < 1e-6);
  const coef = 0.25 / (5 + 1e-6);
  t.true(Math.abs((a.toArray() as Float32Array)[0] - 3 * coef) < 1e-6);
  t.true(Math.abs((b.toArray() as Float32Array)[1] - 4 * coef) < 1e-6);
  const n2 = await ops.clipGradNorm({ grads: [a, b], maxNorm: 1 });
  t.true(Math.abs(n2 - 0.25) < 1e-5);
  t.true(Math.abs((a.toArray() as Float32Array)[0] - 3 * coef) < 1e-6); // below max: untouched
});

test('dropout is deterministic per (seed, offset) and backward reuses the mask', async (t) => {
  const n = 4096;
  const inp = Tensor.from(new Float32Array(n).fill(1), [n]);
  const o1 = Tensor.zeros([n]),
    o2 = Tensor.zeros([n]),
    o3 = Tensor.zeros([n]);
  await ops.dropoutForward({ inp, out: o1, p: 0.25, seed: 42 });
  await ops.dropoutForward({ inp, out: o2, p: 0.25, seed: 42 });
  await ops.dropoutForward({ inp, out: o3, p: 0.25, seed: 43 });
  const a = o1.toArray() as Float32Array,
    b = o2.toArray() as Float32Array,
    c = o3.toArray() as Float32Array;
  t.deepEqual(a, b);
  t.notDeepEqual(a, c);
  const kept = a.filter((z) => z !== 0);
  t.true(Math.abs(kept.length / n - 0.75) < 0.05);
  t.true(kept.every((z) => Math.abs(z - 1 / 0.75) < 1e-6));
  const dinp = Tensor.zeros([n]);
  await ops.dropoutBackward({ dout: inp, dinp, p: 0.25, seed: 42 });
  t.deepEqual(dinp.toArray(), a);
});

test('op errors name the argument and leave the process running', async (t) => {
  const a = Tensor.zeros([2, 3]),
    b = Tensor.zeros([4, 5]),
    c = Tensor.zeros([2, 5]);
  await t.throwsAsync(ops.gemm({ a, b, c }), {
    instanceOf: CarzeroError,
    message: /gemm: inner dimensions differ.*'a'.*'b'/,
  });
  await t.throwsAsync(ops.gemm({ a, b: Tensor.zeros([3, 5]), c: Tensor.zeros([2, 4]) }), {
    message: /argument 'c' must be \(2, 5\)/,
  });
  await t.throwsAsync(ops.gemm({ a: Tensor.zeros([2, 3], { dtype: 'i32' }), b: Tensor.zeros([3, 5]), c }), {
    instanceOf: CarzeroError,
    message: /argument 'a' must be f32\|bf16, got i32/,
  });
  const ids = Tensor.from(new Int32Array([0, 9]), [2]);
  await t.throwsAsync(ops.embeddingForward({ ids, table: Tensor.zeros([9, 4]), out: Tensor.zeros([2, 4]) }), {
    instanceOf: CarzeroError,
    message: /9/,
  });
  const gone = Tensor.zeros([2, 3]);
  gone.dispose();
  await t.throwsAsync(ops.gemm({ a: gone, b: Tensor.zeros([3, 5]), c }), {
    instanceOf: CarzeroError,
    message: /argument 'a' has been disposed/,
  });
  await t.throwsAsync(runOp('no_such_op', {}), { instanceOf: TypeError, message: /unknown op/ });
  await t.throwsAsync(ops.gemm({ a, b: Tensor.zeros([3, 5]), c, act: 'tanh' as never }), {
    instanceOf: TypeError,
    message: /act/,
  });
  await t.throwsAsync(ops.gemm({ a, b: Tensor.zeros([3, 5]), c, alpha: NaN }), {
    instanceOf: RangeError,
    message: /alpha/,
  });
  await t.throwsAsync(runOp('gemm', { a, b, c, bogus: 1 }), {
    instanceOf: TypeError,
    message: /unknown option 'bogus'/,
  });
  await t.throwsAsync(ops.dropoutForward({ inp: a, out: Tensor.zeros([2, 3]), p: 1.5, seed: 1 }), {
    message: /'p' must be in \[0, 1\]/,
  });
  // still alive and computing
  const x = Tensor.from(new Float32Array([1, 2]), [1, 2]),
    y = Tensor.from(new Float32Array([3, 4]), [2, 1]),
    z = Tensor.zeros([1, 1]);
  await ops.gemm({ a: x, b: y, c: z });
  t.is((z.toArray() as Float32Array)[0], 11);
});

test('ops run off the JS thread: timers keep firing during a long GEMM', async (t) => {
  const n = 1536;
  const a = Tensor.from(rand(n * n, 16), [n, n]),
    b = Tensor.from(rand(n * n, 17), [n, n]),
    c = Tensor.zeros([n, n]);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const t0 = performance.now();
  await Promise.all([ops.gemm({ a, b, c }), ops.gemm({ a, b, c: Tensor.zeros([n, n]) })]);
  const ms = performance.now() - t0;
  clearInterval(timer);
  t.log(`two ${n}^3 GEMMs took ${ms.toFixed(0)} ms; ${ticks} timer ticks meanwhile`);
  t.true(ticks >= 3, 'the event loop was blocked');
});
