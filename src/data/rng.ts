// Seeded, serialisable pseudo-random numbers for the data pipeline: xoshiro128** (Blackman and
// Vigna; 128-bit state, period 2^128 - 1) seeded through splitmix32, in 32-bit integer arithmetic.
//
// The loader never shares one sequential generator between items: every random decision is drawn
// from a generator *derived* from (seed, purpose, epoch, item), so the result does not depend on
// which worker computes an item or in which order, and resuming needs only the position.

/** A generator's complete state: four uint32 words (never all zero). JSON-serialisable. */
export type RngState = [number, number, number, number];

const MASK = 0xffffffff;

/** splitmix32 step: returns [next state, output]. */
function splitmix32(s: number): [number, number] {
  s = (s + 0x9e3779b9) >>> 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return [s, (z ^ (z >>> 16)) >>> 0];
}

/** murmur3's 32-bit finaliser: a bijective avalanche mix. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function checkSeed(seed: unknown, what: string): number {
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0)
    throw new RangeError(`${what} must be a non-negative safe integer, got ${String(seed)}`);
  return seed;
}

/** Hashes a seed (safe integer) and integer keys into a generator state. */
function stateFrom(seed: number, keys: readonly number[]): RngState {
  let h = fmix32((seed % 0x100000000) ^ 0x5eed5eed);
  h = fmix32(h ^ Math.floor(seed / 0x100000000));
  for (const k of keys) {
    h = fmix32((h + 0x9e3779b9) ^ (k % 0x100000000));
    h = fmix32(h ^ Math.floor(k / 0x100000000));
  }
  const st: number[] = [];
  let s = h;
  for (let i = 0; i < 4; i++) {
    const [ns, out] = splitmix32(s);
    s = ns;
    st.push(out);
  }
  if ((st[0] | st[1] | st[2] | st[3]) === 0) st[0] = 1;
  return st as RngState;
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** A generator from a seed (non-negative safe integer) or a saved state. */
  constructor(seed: number | RngState = 0) {
    const st = Array.isArray(seed) ? Rng.checkState(seed) : stateFrom(checkSeed(seed, "Rng: argument 'seed'"), []);
    [this.s0, this.s1, this.s2, this.s3] = st;
  }

  /** An independent stream for (seed, keys...): e.g. derive(seed, PURPOSE, epoch, item). */
  static derive(seed: number, ...keys: number[]): Rng {
    checkSeed(seed, "Rng.derive: argument 'seed'");
    keys.forEach((k, i) => checkSeed(k, `Rng.derive: key ${i}`));
    return new Rng(stateFrom(seed, keys));
  }

  private static checkState(st: unknown): RngState {
    if (!Array.isArray(st) || st.length !== 4 || !st.every((v) => Number.isInteger(v) && v >= 0 && v <= MASK))
      throw new TypeError('Rng: a state must be 4 uint32 integers');
    if (st.every((v) => v === 0)) throw new RangeError('Rng: the all-zero state is invalid');
    return [st[0], st[1], st[2], st[3]];
  }

  /** The state (restore with new Rng(state)). */
  state(): RngState {
    return [this.s0, this.s1, this.s2, this.s3];
  }

  /** Next uint32 (xoshiro128**). */
  nextU32(): number {
    const r = Math.imul((Math.imul(this.s1, 5) << 7) | (Math.imul(this.s1, 5) >>> 25), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    this.s0 >>>= 0;
    this.s1 >>>= 0;
    this.s2 >>>= 0;
    this.s3 >>>= 0;
    return r;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [0, n), unbiased (n <= 2^32). */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 0x100000000)
      throw new RangeError(`Rng.int: n must be an integer in 1..2^32, got ${n}`);
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const v = this.nextU32();
      if (v < limit) return v % n;
    }
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(a: T[] | Uint32Array | Int32Array): typeof a {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
}

/** A permutation of 0..n-1. */
export function permutation(n: number, rng: Rng): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  rng.shuffle(p);
  return p;
}
