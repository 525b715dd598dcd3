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
// so a tuple key becomes its JSON text), set/frozenset -> Set.
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
  'os', 'posix', 'nt', 'subprocess', 'sys', 'shutil', 'socket', 'importlib', 'runpy', 'pickle', '_pickle',
  'cPickle', 'marshal', 'webbrowser', 'ctypes', '_ctypes', 'pty', 'multiprocessing', 'code', 'codeop', 'pdb',
  'bdb', 'signal', 'asyncio', 'commands', 'popen2', 'dill', 'cloudpickle', 'requests', 'urllib', 'urllib2',
  'http', 'ftplib', 'telnetlib', 'smtplib', 'xmlrpc', 'zipimport', 'imp', 'pkgutil', 'site', 'ensurepip',
  'venv', 'distutils', 'setuptools', 'pip',
];
const DANGEROUS_NAMES = new Set([
  'builtins.eval', 'builtins.exec', 'builtins.execfile', 'builtins.compile', 'builtins.open', 'builtins.__import__',
  'builtins.getattr', 'builtins.setattr', 'builtins.delattr', 'builtins.globals', 'builtins.locals', 'builtins.vars',
  'builtins.input', 'builtins.breakpoint', 'builtins.exit', 'builtins.quit', 'builtins.help', 'builtins.memoryview',
  'builtins.file', 'builtins.reload', 'builtins.apply', 'builtins.__builtins__',
  'io.open', '_io.open', 'io.open_code', '_io.open_code', 'platform.popen', 'operator.attrgetter', 'operator.methodcaller',
  'functools.reduce', 'torch.load', 'torch.hub.load', 'torch.hub.load_state_dict_from_url', 'torch.jit.load',
  'torch.serialization.load', 'numpy.load', 'numpy.testing._private.utils.runstring', 'pydoc.pipepager', 'pydoc.locate',
  'tempfile.mktemp', 'code.interact', 'timeit.timeit', 'trace.Trace', 'cProfile.run', 'profile.run',
]);

// Protocol 0-2 pickles written by Python 3 spell some modules the Python 2 way; Python's
// fix_imports maps them back (Lib/_compat_pickle.py). The ones weight files meet:
const PY2_MODULES: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg', exceptions: 'builtins', cPickle: 'pickle' };

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

const MARK = Symbol('mark');

function setKey(obj: Record<string, unknown>, key: unknown, value: unknown): void {
  let k: string;
  if (typeof key === 'string') k = key;
  else if (typeof key === 'number' || typeof key === 'bigint' || typeof key === 'boolean') k = String(key);
  else if (key === null) k = 'None';
  else {
    try {
      k = JSON.stringify(key, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)) ?? String(key);
    } catch {
      k = String(key); // a cyclic key (hostile input): any stable text will do
    }
  }
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
}

/** Runs the pickle in `data` from `offset`; returns the value and the offset just past STOP. */
export function unpickle(data: Buffer, interp: Interpreter, opts: UnpickleOptions): { value: unknown; end: number } {
  const { file, entry } = opts;
  const where = entry ? `${file}: ${entry}` : file;
  let pos = opts.offset ?? 0;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const fail = (msg: string): never => {
    throw new CheckpointError(`${where}: bad pickle at byte ${pos}: ${msg}`, file, entry);
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
      throw new UnsafePickleError(`${where}: refused: the pickle calls ${bad} (nothing was executed)`, file, bad, entry);
    const v = interp.resolveGlobal(module, name);
    return v === undefined ? new PickleGlobal(module, name) : v;
  };
  const call = (fn: unknown, args: unknown, kwargs?: Record<string, unknown>): unknown => {
    const a = Array.isArray(args) ? args : [args];
    if (fn instanceof PickleGlobal) return new PickleObject(fn.module, fn.name, a, kwargs);
    if (fn instanceof PickleObject) return new PickleObject(fn.module, `${fn.name}()`, a, kwargs);
    if (typeof fn === 'object' && fn !== null && 'call' in fn && 'qualname' in fn) {
      try {
        return (fn as InterpretedCallable).call(a, kwargs);
      } catch (e) {
        if (e instanceof CheckpointError) throw e;
        fail(`${(fn as InterpretedCallable).qualname}: ${(e as Error).message}`);
      }
    }
    return fail(`cannot call a ${fn === null ? 'None' : typeof fn} value`);
  };
  const setItems = (target: unknown, kv: unknown[]): void => {
    if (kv.length % 2) fail('odd number of items for SETITEMS');
    if (isDict(target)) for (let i = 0; i < kv.length; i += 2) setKey(target, kv[i], kv[i + 1]);
    else if (target instanceof PickleObject) {
      target.dictItems ??= [];
      for (let i = 0; i < kv.length; i += 2) target.dictItems.push([kv[i], kv[i + 1]]);
    } else fail('SETITEM on a value that is not a dict');
  };
  const append = (target: unknown, items: unknown[]): void => {
    if (Array.isArray(target)) target.push(...items);
    else if (target instanceof PickleObject) (target.listItems ??= []).push(...items);
    else if (target instanceof Set) for (const x of items) target.add(x);
    else fail('APPEND on a value that is not a list');
  };

  for (;;) {
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
        stack.push(line().replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a: string, b: string) => String.fromCodePoint(Number.parseInt(a ?? b, 16))));
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
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x74: // TUPLE
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x91: // FROZENSET
        stack.push(new Set(popMark()));
        break;
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
        memo.set(Number.parseInt(line(), 10), top());
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
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
        if (!interp.persistentLoad) fail('persistent ids are not supported here');
        stack.push(interp.persistentLoad!(pid));
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
