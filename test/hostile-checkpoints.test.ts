// Hostile and broken checkpoints (issue 17, classes 2, 4 and 5): pickles that are small but
// exponential or very deep, pickles whose errors used to escape as RangeError / TypeError /
// SyntaxError or megabyte-long messages, and zip archives whose records disagree with their central
// directory. Every case must end in a CheckpointError naming the file, promptly, or (for large but
// well-formed input) load exactly.
import test from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CheckpointError } from '../src/errors.js';
import { unpickle } from '../src/weights/pickle.js';
import { TorchCheckpoint, loadTorchCheckpoint } from '../src/weights/torch-zip.js';
import { zipStored } from '../tools/fuzz/zip-stored.js';

const tinyCkpt = fileURLToPath(new URL('./fixtures/tiny/carzero-tiny.ckpt', import.meta.url));
const work = await mkdtemp(join(tmpdir(), 'carzero-hostile-'));
test.after.always(() => rm(work, { recursive: true, force: true }));

// ---- a small pickle assembler -------------------------------------------------------------------
class P {
  parts: Buffer[] = [Buffer.from([0x80, 2])];
  op(...bytes: number[]): this {
    this.parts.push(Buffer.from(bytes));
    return this;
  }
  u32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    this.parts.push(b);
    return this;
  }
  str(s: string): this {
    this.op(0x58).u32(Buffer.byteLength(s));
    this.parts.push(Buffer.from(s));
    return this;
  }
  text(s: string): this {
    this.parts.push(Buffer.from(s, 'latin1'));
    return this;
  }
  put(i: number): this {
    return this.op(0x72).u32(i); // LONG_BINPUT
  }
  get(i: number): this {
    return this.op(0x6a).u32(i); // LONG_BINGET
  }
  /** memo[depth] = a tuple (x, x) nested `depth` times through the memo (2^depth leaves when
   * printed); the stack is left as it was. */
  exponential(depth: number): this {
    this.op(0x29).put(0).op(0x30); // () PUT POP
    for (let i = 1; i <= depth; i++)
      this.get(i - 1)
        .get(i - 1)
        .op(0x86)
        .put(i)
        .op(0x30); // TUPLE2
    return this;
  }
  stop(): Buffer {
    return Buffer.concat([...this.parts, Buffer.from([0x2e])]);
  }
}

const interp = { resolveGlobal: () => undefined };
function run(data: Buffer, i: Parameters<typeof unpickle>[1] = interp): unknown {
  return unpickle(data, i, { file: 'hostile.pkl' }).value;
}
function refused(t: import('ava').ExecutionContext, f: () => unknown, re: RegExp): void {
  const e = t.throws(f);
  t.true(e instanceof CheckpointError, `${e?.constructor.name}: ${e?.message.slice(0, 200)}`);
  t.regex(e!.message, /hostile\.pkl/);
  t.regex(e!.message, re);
  t.true(e!.message.length < 400, `message of ${e!.message.length} characters`);
}

test('pickle: an exponential value as a dict key is refused (type and size), not stringified', (t) => {
  const data = new P().exponential(40).op(0x7d).get(40).op(0x4e).op(0x73).stop(); // {} x40 None SETITEM
  refused(t, () => run(data), /dict key .*tuple/);
});

test('pickle: an exponential persistent id gives a short message, no hang', (t) => {
  const data = new P().exponential(40).get(40).op(0x51).stop(); // BINPERSID
  refused(
    t,
    () => run(data, { resolveGlobal: () => undefined, persistentLoad: () => undefined }),
    /persistent id|unsupported/,
  );
});

test('pickle: a tuple nested 100,000 deep is refused by the depth limit', (t) => {
  const p = new P().op(0x29);
  for (let i = 0; i < 100_000; i++) p.op(0x85); // TUPLE1
  refused(t, () => run(p.stop()), /nested deeper than/);
});

test('pickle: APPENDS of 300,000 items loads (no spread into a call)', (t) => {
  const p = new P().op(0x5d).op(0x28);
  for (let i = 0; i < 300_000; i++) p.op(0x4b, i & 0xff); // BININT1
  const v = run(p.op(0x65).stop()) as number[];
  t.is(v.length, 300_000);
  t.is(v[299_999], 299_999 & 0xff);
});

test('pickle: a malformed text LONG is a CheckpointError, not a SyntaxError', (t) => {
  refused(t, () => run(new P().op(0x4c).text('12x34L\n').stop()), /LONG/);
});

test('pickle: a megabyte string in a persistent id is not copied into the message', (t) => {
  const data = new P()
    .str('x'.repeat(1 << 20))
    .op(0x85)
    .op(0x51)
    .stop();
  refused(
    t,
    () => run(data, { resolveGlobal: () => undefined, persistentLoad: () => undefined }),
    /persistent id|unsupported/,
  );
});

test('pickle: the memo and container limits', (t) => {
  const p = new P().op(0x5d);
  for (let i = 0; i < 2000; i++) p.put(i);
  refused(t, () => unpickle(p.stop(), interp, { file: 'hostile.pkl', limits: { maxMemo: 1000 } }), /memo/);
  const q = new P().op(0x5d).op(0x28);
  for (let i = 0; i < 2000; i++) q.op(0x4e);
  refused(t, () => unpickle(q.op(0x65).stop(), interp, { file: 'hostile.pkl', limits: { maxItems: 1000 } }), /items/);
});

// ---- checkpoints: torch's own globals fed hostile arguments --------------------------------------
// A zip checkpoint whose data.pkl is replaced (the entry keeps its place; sizes and CRC are fixed up).
async function withPickle(name: string, pkl: Buffer): Promise<string> {
  const file = join(work, name);
  await writeFile(
    file,
    zipStored([
      ['archive/data.pkl', pkl],
      ['archive/version', Buffer.from('3\n')],
    ]),
  );
  return file;
}

const hugeSizeListTitle =
  'checkpoint: an exponential size list in _rebuild_tensor_v2 and a BigInt persistent id ' +
  'give short CheckpointErrors';
test(hugeSizeListTitle, async (t) => {
  // _rebuild_tensor_v2(<persistent id ('storage', 2**64)>, 0, x40, x40)
  const pkl = new P()
    .exponential(40)
    .op(0x63)
    .text('torch._utils\n_rebuild_tensor_v2\n')
    .op(0x28) // MARK: the arguments
    .op(0x28)
    .str('storage')
    .op(0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1)
    .op(0x74)
    .op(0x51) // ('storage', 2**64) BINPERSID
    .op(0x4b, 0)
    .get(40)
    .get(40)
    .op(0x74)
    .op(0x52) // 0, x40, x40 TUPLE REDUCE
    .stop();
  const f1 = await withPickle('bigint-pid.ckpt', pkl);
  const e = await t.throwsAsync(loadTorchCheckpoint(f1));
  t.true(e instanceof CheckpointError, `${e?.constructor.name}: ${e?.message.slice(0, 200)}`);
  t.regex(e!.message, /bigint-pid\.ckpt/);
  t.true(e!.message.length < 400);
});

// ---- zip: records that disagree with the central directory ---------------------------------------
interface Local {
  offset: number;
  nameLen: number;
  extraLen: number;
}
function locals(b: Buffer): Map<string, Local> {
  const m = new Map<string, Local>();
  for (let off = 0; off + 30 <= b.length;) {
    if (b.readUInt32LE(off) !== 0x04034b50) break;
    const nameLen = b.readUInt16LE(off + 26);
    const extraLen = b.readUInt16LE(off + 28);
    m.set(b.toString('latin1', off + 30, off + 30 + nameLen), { offset: off, nameLen, extraLen });
    // find the next local header (entries use data descriptors: sizes are not in the local header)
    const next = b.indexOf(Buffer.from([0x50, 0x4b, 0x03, 0x04]), off + 30 + nameLen + extraLen);
    if (next < 0) break;
    off = next;
  }
  return m;
}
function centralOffsets(b: Buffer): { name: string; at: number }[] {
  const out: { name: string; at: number }[] = [];
  for (let p = b.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06])); ;) {
    const cd = b.readUInt32LE(p + 16);
    const n = b.readUInt16LE(p + 10);
    let q = cd;
    for (let i = 0; i < n; i++) {
      const nl = b.readUInt16LE(q + 28);
      out.push({ name: b.toString('latin1', q + 46, q + 46 + nl), at: q });
      q += 46 + nl + b.readUInt16LE(q + 30) + b.readUInt16LE(q + 32);
    }
    return out;
  }
}

async function mutated(name: string, f: (b: Buffer) => void): Promise<string> {
  const b = Buffer.from(await readFile(tinyCkpt));
  f(b);
  const file = join(work, name);
  await writeFile(file, b);
  return file;
}

async function zipRefused(t: import('ava').ExecutionContext, file: string, re: RegExp): Promise<void> {
  for (const inMemory of [true, false]) {
    const e = await t.throwsAsync(async () => {
      const c = await TorchCheckpoint.open(file, { inMemory });
      try {
        for (const [, tt] of c.stateDict) await tt.read();
      } finally {
        await c.close();
      }
    });
    t.true(e instanceof CheckpointError, `${e?.constructor.name}: ${e?.message}`);
    t.regex(e!.message, new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    t.regex(e!.message, re);
  }
}

test('zip: a local header whose extra-field length is off shifts no tensor silently', async (t) => {
  const b0 = await readFile(tinyCkpt);
  const entries = [...locals(b0)].filter(([n]) => n.startsWith('archive/data/'));
  t.true(entries.length > 10);
  for (const delta of [1, 4, -4]) {
    const [name, l] = entries[3]!;
    const file = await mutated(`extra${delta}.ckpt`, (b) => b.writeUInt16LE(l.extraLen + delta, l.offset + 28));
    await zipRefused(t, file, new RegExp(`${name.replace(/\//g, '\\/')}|CRC|local header`));
  }
});

test("zip: a central-directory entry pointing at another entry's local header is refused", async (t) => {
  const b0 = await readFile(tinyCkpt);
  const cds = centralOffsets(b0);
  const a = cds.find((c) => c.name === 'archive/data/1')!;
  const other = cds.find((c) => c.name === 'archive/data/10')!;
  const file = await mutated('crossed.ckpt', (b) => b.writeUInt32LE(b0.readUInt32LE(other.at + 42), a.at + 42));
  await zipRefused(t, file, /archive\/data\/1\b.*(local header|names)/);
});

test('zip: duplicate entry names are refused', async (t) => {
  const b0 = await readFile(tinyCkpt);
  const cds = centralOffsets(b0);
  // rename archive/data/10 to archive/data/11 in the central directory (same length)
  const e10 = cds.find((c) => c.name === 'archive/data/10')!;
  const file = await mutated('dup.ckpt', (b) => b.write('archive/data/11', e10.at + 46, 'latin1'));
  await zipRefused(t, file, /archive\/data\/11.*(twice|duplicate)/);
});

test('zip: a flipped byte inside a tensor record fails its CRC-32', async (t) => {
  const b0 = await readFile(tinyCkpt);
  const [, l] = [...locals(b0)].find(([n]) => n === 'archive/data/1')!;
  const file = await mutated('flip.ckpt', (b) => (b[l.offset + 30 + l.nameLen + l.extraLen + 100] ^= 0x10));
  await zipRefused(t, file, /archive\/data\/1.*CRC-32/);
});

test('zip: the intact fixture still loads, lazily and in memory, to the same bytes', async (t) => {
  const a = await loadTorchCheckpoint(tinyCkpt);
  const c = await TorchCheckpoint.open(tinyCkpt, { inMemory: false });
  let n = 0;
  for (const [k, tt] of c.stateDict) {
    const w = await tt.read();
    t.deepEqual(
      Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength),
      Buffer.from(
        a.stateDict.get(k)!.data.buffer,
        a.stateDict.get(k)!.data.byteOffset,
        a.stateDict.get(k)!.data.byteLength,
      ),
    );
    n++;
  }
  await c.close();
  t.true(n > 100);
});

// Found by the fuzz harness (tools/fuzz, seed 2026): a legacy checkpoint whose storage length
// field is negative threw a RangeError from Buffer.readBigInt64LE.
test('legacy checkpoint: a negative or huge storage length is a CheckpointError naming the file', async (t) => {
  const src = await readFile(fileURLToPath(new URL('./fixtures/weights/legacy.bin', import.meta.url)));
  // the storage lengths are the int64 fields after the key list: find them by trying every 8-byte
  // position and keeping the mutations that the intact loader would have read as a length
  let tried = 0;
  for (const v of [-1n, -(2n ** 62n), 2n ** 62n]) {
    for (let at = src.length - 8; at > src.length - 200 && at > 0; at--) {
      const b = Buffer.from(src);
      b.writeBigInt64LE(v, at);
      const file = join(work, `legacy-${tried}.bin`);
      await writeFile(file, b);
      tried++;
      try {
        await loadTorchCheckpoint(file);
      } catch (e) {
        t.true(e instanceof CheckpointError, `${(e as Error).constructor.name} at ${at}: ${(e as Error).message}`);
        t.true((e as Error).message.includes(file));
      }
    }
  }
  t.true(tried > 100);
});
