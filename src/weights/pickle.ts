// A restricted unpickler: it interprets the pickle virtual machine (protocols 0-5, the opcodes in
// CPython's Lib/pickletools.py) but never imports or calls anything. GLOBAL yields either a
// callable the caller chose to interpret (a small allow-list, see `Interpreter`), or an inert
// PickleGlobal recording module and name; REDUCE/NEWOBJ/BUILD on an inert global give an inert
// PickleObject with the arguments recorded. Known-dangerous callables (os.system, eval, ...)
// abort loading with UnsafePickleError: a file that asks for them is hostile, and saying so is
// more useful than a placeholder.
//
// Python values map to: None -> null, bool, int -> number (bigint beyond 2^53), float -> number,
// str -> string, bytes -> Buffer, tuple and list -> Array, dict -> plain object (keys as strings,
// so a tuple key becomes its JSON text; a key that is not a small tuple of plain values is refused),
// set/frozenset -> Set.
//
// Hostile input: memory grows at most linearly with the pickle, but a value can be exponentially
// large when walked as a tree (a tuple (x, x) nested through the memo) or very deep. So containers
// are bounded as they are built (UNPICKLE_LIMITS: nesting depth, memo entries, items in all), and
// nothing here or in the callers turns a value into text without a bound (describeValue: type and
// size). Every failure is a CheckpointError naming the file, the record and the opcode's offset.
import { CheckpointError, UnsafePickleError } from '../errors.js';

/** An un-interpreted class or function reference (`module.name`). */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  toString(): string {
    return `${this.module}.${this.name}`;
  }
}

/** An object the pickle would have built by calling an un-interpreted global: nothing ran. */
export class PickleObject {
  /** Positional arguments (REDUCE / NEWOBJ). */
  args: unknown[];
  kwargs: Record<string, unknown> | undefined;
  /** The BUILD state (`__setstate__` argument), if any. */
  state: unknown = undefined;
  /** Items added by SETITEM(S) / APPEND(S), if any (dict and list subclasses). */
  dictItems: [unknown, unknown][] | undefined;
  listItems: unknown[] | undefined;
  constructor(
    readonly module: string,
    readonly name: string,
    args: unknown[] = [],
    kwargs?: Record<string, unknown>,
  ) {
    this.args = args;
    this.kwargs = kwargs;
  }
  toString(): string {
    return `<${this.module}.${this.name} placeholder>`;
  }
}

/** A callable the caller interprets (e.g. torch._utils._rebuild_tensor_v2). */
export interface InterpretedCallable {
  readonly qualname: string;
  call(args: unknown[], kwargs?: Record<string, unknown>): unknown;
}

export interface Interpreter {
  /** An interpreted value for `module.name`, or undefined to make it an inert PickleGlobal. */
  resolveGlobal(module: string, name: string): unknown;
  /** Resolves a persistent id (PERSID / BINPERSID); undefined means "not supported". */
  persistentLoad?(pid: unknown): unknown;
}

// Modules whose every attribute is refused, and single names refused in otherwise harmless ones.
const DANGEROUS_MODULES = [
  'os',
  'posix',
  'nt',
  'subprocess',
  'sys',
  'shutil',
  'socket',
  'importlib',
  'runpy',
  'pickle',
  '_pickle',
  'cPickle',
  'marshal',
  'webbrowser',
  'ctypes',
  '_ctypes',
  'pty',
  'multiprocessing',
  'code',
  'codeop',
  'pdb',
  'bdb',
  'signal',
  'asyncio',
  'commands',
  'popen2',
  'dill',
  'cloudpickle',
  'requests',
  'urllib',
  'urllib2',
  'http',
  'ftplib',
  'telnetlib',
  'smtplib',
  'xmlrpc',
  'zipimport',
  'imp',
  'pkgutil',
  'site',
  'ensurepip',
  'venv',
  'distutils',
  'setuptools',
  'pip',
];
const DANGEROUS_NAMES = new Set([
  'builtins.eval',
  'builtins.exec',
  'builtins.execfile',
  'builtins.compile',
  'builtins.open',
  'builtins.__import__',
  'builtins.getattr',
  'builtins.setattr',
  'builtins.delattr',
  'builtins.globals',
  'builtins.locals',
  'builtins.vars',
  'builtins.input',
  'builtins.breakpoint',
  'builtins.exit',
  'builtins.quit',
  'builtins.help',
  'builtins.memoryview',
  'builtins.file',
  'builtins.reload',
  'builtins.apply',
  'builtins.__builtins__',
  'io.open',
  '_io.open',
  'io.open_code',
  '_io.open_code',
  'platform.popen',
  'operator.attrgetter',
  'operator.methodcaller',
  'functools.reduce',
  'torch.load',
  'torch.hub.load',
  'torch.hub.load_state_dict_from_url',
  'torch.jit.load',
  'torch.serialization.load',
  'numpy.load',
  'numpy.testing._private.utils.runstring',
  'pydoc.pipepager',
  'pydoc.locate',
  'tempfile.mktemp',
  'code.interact',
  'timeit.timeit',
  'trace.Trace',
  'cProfile.run',
  'profile.run',
]);

// Protocol 0-2 pickles written by Python 3 spell some modules the Python 2 way; Python's
// fix_imports maps them back (Lib/_compat_pickle.py). The ones weight files meet:
const PY2_MODULES: Record<string, string> = {
  __builtin__: 'builtins',
  copy_reg: 'copyreg',
  exceptions: 'builtins',
  cPickle: 'pickle',
};

export function normalizeModule(module: string): string {
  return PY2_MODULES[module] ?? module;
}

/** `module.name` (Python 3 spelling) if it is a known-dangerous callable. */
export function dangerousCallable(module: string, name: string): string | undefined {
  const mod = normalizeModule(module);
  const q = `${mod}.${name}`;
  if (DANGEROUS_NAMES.has(q)) return q;
  for (const m of DANGEROUS_MODULES) if (mod === m || mod.startsWith(`${m}.`)) return q;
  return undefined;
}

/**
 * A short description of any unpickled value for messages: its type and size, never its contents
 * beyond 60 characters (a value may be exponentially large when printed: a tuple (x, x) nested 40
 * times through the memo is 1 KB of pickle).
 */
export function describeValue(v: unknown): string {
  if (v === null) return 'None';
  if (v === undefined) return 'nothing';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'bigint') {
    const t = v.toString();
    return t.length <= 40 ? t : `an integer of ${t.length} digits`;
  }
  if (typeof v === 'string')
    return v.length <= 60
      ? JSON.stringify(v)
      : `a string of ${v.length} characters (${JSON.stringify(v.slice(0, 40))}...)`;
  if (Buffer.isBuffer(v)) return `bytes (${v.length})`;
  if (Array.isArray(v)) return `a tuple/list of ${v.length} item${v.length === 1 ? '' : 's'}`;
  if (v instanceof Set) return `a set of ${v.size} items`;
  if (v instanceof PickleObject || v instanceof PickleGlobal) return v.toString();
  if (isDict(v)) return `a dict of ${Object.keys(v).length} keys`;
  if (typeof v === 'object') {
    const own = (v as { toString?: unknown }).toString;
    if (typeof own === 'function' && own !== Object.prototype.toString) {
      const t = String(v);
      return t.length <= 80 ? t : `${t.slice(0, 77)}...`;
    }
    return `a ${(v as object).constructor?.name ?? 'object'}`;
  }
  return typeof v;
}

// The text of a dict key that is not a str: JSON of a small tuple of plain values (at most
// KEY_NODES values in all, KEY_DEPTH deep), else undefined (the key is refused).
const KEY_NODES = 256;
const KEY_DEPTH = 8;
function keyText(key: unknown): string | undefined {
  let nodes = 0;
  const enc = (v: unknown, depth: number): string | undefined => {
    if (++nodes > KEY_NODES || depth > KEY_DEPTH) return undefined;
    if (v === null) return 'null';
    if (typeof v === 'string') return JSON.stringify(v);
    if (typeof v === 'number') return Number.isFinite(v) ? String(v) : JSON.stringify(String(v));
    if (typeof v === 'bigint') return JSON.stringify(v.toString());
    if (typeof v === 'boolean') return String(v);
    if (Array.isArray(v)) {
      const parts: string[] = [];
      for (const x of v) {
        const e = enc(x, depth + 1);
        if (e === undefined) return undefined;
        parts.push(e);
      }
      return `[${parts.join(',')}]`;
    }
    return undefined;
  };
  return enc(key, 0);
}

/** Sets `obj[key]`, with the key's text as `unpickle` makes it; throws RangeError for a key it refuses. */
export function setKey(obj: Record<string, unknown>, key: unknown, value: unknown): void {
  let k: string | undefined;
  if (typeof key === 'string') k = key;
  else if (typeof key === 'number' || typeof key === 'bigint' || typeof key === 'boolean') k = String(key);
  else if (key === null) k = 'None';
  else k = keyText(key);
  if (k === undefined) throw new RangeError(`dict key ${describeValue(key)} is not a str, number or small tuple`);
  // defineProperty, not assignment: a key "__proto__" must stay a key, never a prototype swap.
  Object.defineProperty(obj, k, { value, enumerable: true, writable: true, configurable: true });
}

function isDict(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

export interface UnpickleOptions {
  /** For error messages: the file and, in archives, the entry (`archive/data.pkl`). */
  file: string;
  entry?: string;
  /** Start offset in `data` (several pickles may follow each other, as in torch's legacy format). */
  offset?: number;
  /** Bounds on what the pickle may build (defaults: UNPICKLE_LIMITS). */
  limits?: Partial<UnpickleLimits>;
}

export interface UnpickleLimits {
  /** Containers nested deeper than this are refused (measured as they are built). */
  maxDepth: number;
  /** Memo entries. */
  maxMemo: number;
  /** Items in all containers together (list, tuple, dict and set entries, call arguments). */
  maxItems: number;
}

/**
 * Defaults far above any checkpoint's needs (CARZero's: depth < 10, a few thousand memo entries
 * and items) and far below what would exhaust memory or the call stack of anything that walks the
 * result.
 */
export const UNPICKLE_LIMITS: Readonly<UnpickleLimits> = { maxDepth: 1000, maxMemo: 1 << 24, maxItems: 1 << 26 };

/** Runs the pickle in `data` from `offset`; returns the value and the offset just past STOP. */
export function unpickle(data: Buffer, interp: Interpreter, opts: UnpickleOptions): { value: unknown; end: number } {
  const { file, entry } = opts;
  const limits = { ...UNPICKLE_LIMITS, ...opts.limits };
  const where = entry ? `${file}: ${entry}` : file;
  let pos = opts.offset ?? 0;
  let opPos = pos;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  // Nesting depth of each container built here (a value not in the map is depth 0).
  const depths = new WeakMap<object, number>();
  let itemCount = 0;
  const fail = (msg: string): never => {
    throw new CheckpointError(`${where}: bad pickle at byte ${opPos}: ${msg}`, file, entry);
  };
  const depthOf = (v: unknown): number => (typeof v === 'object' && v !== null ? (depths.get(v) ?? 0) : 0);
  // Records that `container` holds `members`: its depth and the item count, both bounded.
  const holds = <T extends object>(container: T, members: readonly unknown[]): T => {
    itemCount += members.length;
    if (itemCount > limits.maxItems) fail(`more than ${limits.maxItems} container items in all (limit)`);
    let d = depthOf(container);
    for (const m of members) d = Math.max(d, depthOf(m) + 1);
    if (d > limits.maxDepth) fail(`containers nested deeper than ${limits.maxDepth} levels (limit)`);
    depths.set(container, d);
    return container;
  };
  const memoSet = (k: number, v: unknown): void => {
    if (!memo.has(k) && memo.size >= limits.maxMemo) fail(`more than ${limits.maxMemo} memo entries (limit)`);
    memo.set(k, v);
  };
  const need = (n: number): void => {
    if (pos + n > data.length) fail(`truncated (needs ${n} more bytes, ${data.length - pos} left)`);
  };
  const u8 = (): number => (need(1), data[pos++]!);
  const u16 = (): number => (need(2), (pos += 2), data.readUInt16LE(pos - 2));
  const u32 = (): number => (need(4), (pos += 4), data.readUInt32LE(pos - 4));
  const i32 = (): number => (need(4), (pos += 4), data.readInt32LE(pos - 4));
  const u64 = (): number => {
    need(8);
    const v = data.readBigUInt64LE(pos);
    pos += 8;
    if (v > BigInt(data.length)) fail(`length ${v} exceeds the data`);
    return Number(v);
  };
  const bytes = (n: number): Buffer => (need(n), (pos += n), data.subarray(pos - n, pos));
  const line = (): string => {
    const e = data.indexOf(0x0a, pos);
    if (e < 0) fail('truncated (unterminated text argument)');
    const s = data.toString('latin1', pos, e);
    pos = e + 1;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1]!)) fail('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail('MARK missing');
    return stack.splice(m!);
  };
  const longFrom = (b: Buffer): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const global = (rawModule: string, name: string): unknown => {
    const module = normalizeModule(rawModule);
    const bad = dangerousCallable(module, name);
    if (bad)
      throw new UnsafePickleError(
        `${where}: refused: the pickle calls ${bad} (nothing was executed)`,
        file,
        bad,
        entry,
      );
    const v = interp.resolveGlobal(module, name);
    return v === undefined ? new PickleGlobal(module, name) : v;
  };
  const call = (fn: unknown, args: unknown, kwargs?: Record<string, unknown>): unknown => {
    const a = Array.isArray(args) ? args : [args];
    if (fn instanceof PickleGlobal) return holds(new PickleObject(fn.module, fn.name, a, kwargs), [a]);
    if (fn instanceof PickleObject) return holds(new PickleObject(fn.module, `${fn.name}()`, a, kwargs), [a]);
    if (typeof fn === 'object' && fn !== null && 'call' in fn && 'qualname' in fn) {
      try {
        // what an interpreted callable builds from its arguments is as deep as they are
        const r = (fn as InterpretedCallable).call(a, kwargs);
        if (typeof r === 'object' && r !== null && depthOf(r) < depthOf(a)) depths.set(r, depthOf(a));
        return r;
      } catch (e) {
        if (e instanceof CheckpointError) throw e;
        const m = String((e as Error)?.message ?? e);
        fail(`${(fn as InterpretedCallable).qualname}: ${m.length <= 300 ? m : `${m.slice(0, 297)}...`}`);
      }
    }
    return fail(`cannot call ${describeValue(fn)}`);
  };
  const setItems = (target: unknown, kv: unknown[]): void => {
    if (kv.length % 2) fail('odd number of items for SETITEMS');
    if (isDict(target)) {
      holds(target, kv);
      for (let i = 0; i < kv.length; i += 2) {
        try {
          setKey(target, kv[i], kv[i + 1]);
        } catch (e) {
          fail((e as Error).message);
        }
      }
    } else if (target instanceof PickleObject) {
      holds(target, kv);
      target.dictItems ??= [];
      for (let i = 0; i < kv.length; i += 2) target.dictItems.push([kv[i], kv[i + 1]]);
    } else fail(`SETITEM on ${describeValue(target)}, not a dict`);
  };
  // Item by item: a spread of a large array into push() overflows the call stack.
  const append = (target: unknown, list: unknown[]): void => {
    if (Array.isArray(target)) {
      holds(target, list);
      for (const x of list) target.push(x);
    } else if (target instanceof PickleObject) {
      holds(target, list);
      const li = (target.listItems ??= []);
      for (const x of list) li.push(x);
    } else if (target instanceof Set) {
      holds(target, list);
      for (const x of list) target.add(x);
    } else fail(`APPEND on ${describeValue(target)}, not a list`);
  };
  const popMarkInto = (): unknown[] => {
    const list = popMark();
    return holds(list, list);
  };

  for (;;) {
    opPos = pos;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail('pickle protocol above 5');
        break;
      case 0x95: // FRAME: a length hint only
        u64();
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || marks.length) fail(`STOP with ${stack.length} values on the stack`);
        return { value: stack[0], end: pos };
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        if (marks.length && marks[marks.length - 1] === stack.length) marks.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(longFrom(bytes(u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = i32();
        if (n < 0) fail('negative LONG4 length');
        stack.push(longFrom(bytes(n)));
        break;
      }
      case 0x49: {
        // INT (text): also encodes True/False as 01/00 in protocol 0
        const s = line();
        stack.push(s === '01' ? true : s === '00' ? false : Number.parseInt(s, 10));
        break;
      }
      case 0x4c: {
        // LONG (text)
        const s = line().replace(/L$/, '');
        if (!/^[+-]?\d{1,100000}$/.test(s)) fail(`malformed LONG ${describeValue(s)}`);
        const v = BigInt(s);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        stack.push(data.readDoubleBE(pos));
        pos += 8;
        break;
      case 0x46: // FLOAT (text)
        stack.push(Number.parseFloat(line()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(bytes(u8()).toString('utf8'));
        break;
      case 0x58: // BINUNICODE
        stack.push(bytes(u32()).toString('utf8'));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(bytes(u64()).toString('utf8'));
        break;
      case 0x56: // UNICODE (raw-unicode-escape text)
        stack.push(
          line().replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a: string, b: string) =>
            String.fromCodePoint(Number.parseInt(a ?? b, 16)),
          ),
        );
        break;
      case 0x55: // SHORT_BINSTRING (Python 2 str: decode as latin-1 like encoding='latin1')
        stack.push(bytes(u8()).toString('latin1'));
        break;
      case 0x54: {
        // BINSTRING
        const n = i32();
        if (n < 0) fail('negative BINSTRING length');
        stack.push(bytes(n).toString('latin1'));
        break;
      }
      case 0x53: {
        // STRING (quoted text)
        const s = line();
        stack.push(s.slice(1, -1));
        break;
      }
      case 0x43: // SHORT_BINBYTES
        stack.push(Buffer.from(bytes(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(Buffer.from(bytes(u32())));
        break;
      case 0x8e: // BINBYTES8
        stack.push(Buffer.from(bytes(u64())));
        break;
      case 0x96: // BYTEARRAY8
        stack.push(Buffer.from(bytes(u64())));
        break;
      case 0x7d: // EMPTY_DICT
        stack.push({});
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x85: {
        // TUPLE1
        const t1 = [pop()];
        stack.push(holds(t1, t1));
        break;
      }
      case 0x86: {
        // TUPLE2
        const b = pop();
        const t2 = [pop(), b];
        stack.push(holds(t2, t2));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const t3 = [pop(), b, c];
        stack.push(holds(t3, t3));
        break;
      }
      case 0x74: // TUPLE
      case 0x6c: // LIST
        stack.push(popMarkInto());
        break;
      case 0x91: {
        // FROZENSET
        const members = popMark();
        stack.push(holds(new Set(members), members));
        break;
      }
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x64: {
        // DICT
        const kv = popMark();
        const d = {};
        setItems(d, kv);
        stack.push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const kv = popMark();
        setItems(top(), kv);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        append(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x70: // PUT (text)
        memoSet(Number.parseInt(line(), 10), top());
        break;
      case 0x71: // BINPUT
        memoSet(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memoSet(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memoSet(memo.size, top());
        break;
      case 0x67: // GET (text)
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const k = op === 0x67 ? Number.parseInt(line(), 10) : op === 0x68 ? u8() : u32();
        if (!memo.has(k)) fail(`memo key ${k} missing`);
        stack.push(memo.get(k));
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        stack.push(global(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args); interpreted classes get called like REDUCE
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args, isDict(kwargs) ? kwargs : undefined));
        break;
      }
      case 0x69: {
        // INST "module\nname\n" with MARKed args
        const module = line();
        const cls = global(module, line());
        stack.push(call(cls, popMark()));
        break;
      }
      case 0x6f: {
        // OBJ: MARK cls args...
        const items = popMark();
        if (!items.length) fail('OBJ without a class');
        stack.push(call(items[0], items.slice(1)));
        break;
      }
      case 0x62: {
        // BUILD: obj.__setstate__(state) or obj.__dict__.update(state)
        const state = pop();
        const obj = top();
        if (obj instanceof PickleObject) obj.state = state;
        // Anything else: BUILD sets instance attributes, never items (an OrderedDict state dict
        // carries `_metadata` this way, which must not become a key); nothing to keep.
        break;
      }
      case 0x50: // PERSID (text)
      case 0x51: {
        // BINPERSID
        const pid = op === 0x50 ? line() : pop();
        if (!interp.persistentLoad) fail(`persistent id ${describeValue(pid)}: persistent ids are not supported here`);
        let loaded: unknown;
        try {
          loaded = interp.persistentLoad!(pid);
        } catch (e) {
          if (e instanceof CheckpointError) throw e;
          fail(`persistent id ${describeValue(pid)}: ${(e as Error).message}`);
        }
        if (loaded === undefined) fail(`unsupported persistent id ${describeValue(pid)}`);
        stack.push(loaded);
        break;
      }
      case 0x82:
      case 0x83:
      case 0x84:
        return fail('extension registry opcodes (EXT1/2/4) are not supported');
      case 0x97:
      case 0x98:
        return fail('out-of-band buffers (protocol 5) are not supported');
      default:
        return fail(`unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }
}
