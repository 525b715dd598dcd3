// Where models live and how they are checked (docs/MODEL-FORMAT.md, "Model store and manifest").
//
// A model is named or given as a directory. `resolveModel` turns `--model NAME|DIR` into a
// directory: an existing directory wins (so `--model carzero-model` keeps meaning ./carzero-model);
// otherwise a name is looked up in the models shipped with the package (`weights/<name>/`) and then
// in the user's store (`$CARZERO_HOME/models/<name>/`, by default the platform's cache folder).
//
// Integrity: `carzero convert` writes `manifest.json` (each file's size and sha256, and the source
// checkpoint's). Every load checks that the manifest's files exist with the recorded sizes (cheap:
// a stat per file) before anything is read or mapped; the native loader then checks the
// safetensors header against the file length before mapping it. The full sha256 check runs on
// `carzero models verify` and on the first load of a model: a successful check leaves a stamp
// (`.verified.json`: the manifest's hash and each file's size, mtime and inode), and a later load
// hashes again only when the stamp no longer matches the files. Where the stamp cannot be written
// (a read-only install), the check runs on every load; the shipped models are a few MB.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { CarzeroError, type CarzeroErrorCode } from '../errors.js';
import { packageRoot } from '../native.js';
import { processEnv } from '../settings.js';

/** A model file or directory is missing, truncated, extended or altered; `file` names it. */
export class ModelIntegrityError extends CarzeroError {
  readonly file: string;
  constructor(message: string, file: string, code: CarzeroErrorCode = 'CZ_ERR_FORMAT') {
    super(message, code);
    this.name = 'ModelIntegrityError';
    this.file = file;
  }
}

export const MANIFEST = 'manifest.json';
const STAMP = '.verified.json';
/** The files a model directory must hold (docs/MODEL-FORMAT.md). */
export const MODEL_FILES = ['config.json', 'model.safetensors', 'tokenizer.json'] as const;
/** A model name: what `--name` accepts and what resolves in the store. */
export const MODEL_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface ManifestFile {
  size: number;
  sha256: string;
}

export interface Manifest {
  format: 'carzero-manifest';
  format_version: 1;
  /** Every file of the model directory the manifest covers (not itself, not the stamp). */
  files: Record<string, ManifestFile>;
  /** What the model was made from: the checkpoint (and text model folder) for a conversion. */
  source: Record<string, { file: string; size: number; sha256: string } | string>;
  carzero_version: string;
  created: string;
}

/** This package's version (package.json). */
export function packageVersion(): string {
  try {
    return String(
      (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version?: string }).version ?? '?',
    );
  } catch {
    return '?';
  }
}

/** The models shipped in the package (`weights/`). */
export function shippedModelsDir(): string {
  return join(packageRoot, 'weights');
}

/** The user's store: `$CARZERO_HOME/models`, else the platform's cache folder + carzero/models. */
export function modelStoreDir(env: NodeJS.ProcessEnv = processEnv()): string {
  if (env.CARZERO_HOME) return join(resolve(env.CARZERO_HOME), 'models');
  const home = homedir();
  if (process.platform === 'darwin') return join(home, 'Library', 'Caches', 'carzero', 'models');
  if (process.platform === 'win32')
    return join(env.LOCALAPPDATA ?? join(home, 'AppData', 'Local'), 'carzero', 'models');
  const cache = env.XDG_CACHE_HOME && isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : join(home, '.cache');
  return join(cache, 'carzero', 'models');
}

export interface RegistryEntry {
  description: string;
  source: string;
  [k: string]: unknown;
}

/** weights/registry.json: the models the package knows (shipped or to be converted). */
export async function readRegistry(): Promise<Record<string, RegistryEntry>> {
  const file = join(shippedModelsDir(), 'registry.json');
  try {
    const r = JSON.parse(await readFile(file, 'utf8')) as { models?: Record<string, RegistryEntry> };
    return r.models ?? {};
  } catch (e) {
    throw new ModelIntegrityError(
      `${file}: cannot read the model registry: ${(e as Error).message}`,
      file,
      'CZ_ERR_IO',
    );
  }
}

export type ModelOrigin = 'directory' | 'shipped' | 'store';

export interface ResolvedModel {
  dir: string;
  /** The name when resolved from one. */
  name?: string;
  origin: ModelOrigin;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** `NAME|DIR` -> the model directory (see the file comment). Throws a CarzeroError naming both
 * places looked in when a name is not found. */
export function resolveModel(model: string, env: NodeJS.ProcessEnv = processEnv()): ResolvedModel {
  if (typeof model !== 'string' || model.length === 0)
    throw new TypeError('model: expected a model name or a directory path');
  if (isDir(model)) return { dir: model, origin: 'directory' };
  const looksLikePath = model.includes('/') || model.includes('\\') || model.startsWith('.') || isAbsolute(model);
  if (looksLikePath || !MODEL_NAME.test(model))
    throw new ModelIntegrityError(`${model}: no such model directory`, model, 'CZ_ERR_IO');
  const shipped = join(shippedModelsDir(), model);
  if (existsSync(join(shipped, 'config.json'))) return { dir: shipped, name: model, origin: 'shipped' };
  const stored = join(modelStoreDir(env), model);
  if (isDir(stored)) return { dir: stored, name: model, origin: 'store' };
  throw new ModelIntegrityError(
    `model '${model}' is neither a directory nor a known model: not shipped in ${shippedModelsDir()} ` +
      `and not in the store ${modelStoreDir(env)} ` +
      `(\`carzero models\` lists them; \`carzero convert ... --name ${model}\` adds one)`,
    model,
    'CZ_ERR_IO',
  );
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Writes manifest.json for the files of a model directory. */
export async function writeManifest(
  dir: string,
  files: readonly string[],
  source: Manifest['source'],
  version: string,
): Promise<Manifest> {
  const m: Manifest = {
    format: 'carzero-manifest',
    format_version: 1,
    files: {},
    source,
    carzero_version: version,
    created: new Date().toISOString(),
  };
  for (const f of files) {
    const p = join(dir, f);
    m.files[f] = { size: (await stat(p)).size, sha256: await sha256File(p) };
  }
  const tmp = join(dir, `${MANIFEST}.tmp`);
  await writeFile(tmp, `${JSON.stringify(m, null, 2)}\n`);
  await rename(tmp, join(dir, MANIFEST));
  return m;
}

/** The manifest of a directory, or null when it has none. A corrupt manifest is an error. */
export async function readManifest(dir: string): Promise<Manifest | null> {
  const file = join(dir, MANIFEST);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ModelIntegrityError(`${file}: cannot read: ${(e as Error).message}`, file, 'CZ_ERR_IO');
  }
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch (e) {
    throw new ModelIntegrityError(`${file}: not JSON (${(e as Error).message})`, file);
  }
  const ok =
    m !== null &&
    typeof m === 'object' &&
    m.format === 'carzero-manifest' &&
    m.format_version === 1 &&
    m.files !== null &&
    typeof m.files === 'object' &&
    Object.entries(m.files).every(
      ([k, v]) =>
        /^[^/\\]+$/.test(k) &&
        k !== '.' &&
        k !== '..' &&
        v !== null &&
        typeof v === 'object' &&
        Number.isSafeInteger(v.size) &&
        v.size >= 0 &&
        typeof v.sha256 === 'string' &&
        /^[0-9a-f]{64}$/.test(v.sha256),
    );
  if (!ok)
    throw new ModelIntegrityError(
      `${file}: not a carzero manifest (format_version 1 with a size and sha256 per file)`,
      file,
    );
  return m;
}

/** The cheap check run on every load: the model files exist and have the manifest's sizes. */
export async function checkModelFiles(dir: string, manifest?: Manifest | null): Promise<Manifest | null> {
  const m = manifest === undefined ? await readManifest(dir) : manifest;
  const names = new Set<string>(MODEL_FILES);
  if (m) for (const f of Object.keys(m.files)) names.add(f);
  for (const f of names) {
    const p = join(dir, f);
    let size: number;
    try {
      const st = await stat(p);
      if (!st.isFile()) throw new ModelIntegrityError(`${p}: not a regular file`, p, 'CZ_ERR_IO');
      size = st.size;
    } catch (e) {
      if (e instanceof ModelIntegrityError) throw e;
      throw new ModelIntegrityError(
        `${p}: missing model file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
        p,
        'CZ_ERR_IO',
      );
    }
    const want = m?.files[f];
    if (want && want.size !== size)
      throw new ModelIntegrityError(
        `${p}: ${size < want.size ? 'truncated' : 'extended'}: ${size} bytes, the manifest says ${want.size}`,
        p,
      );
  }
  return m;
}

export interface VerifyResult {
  dir: string;
  /** false when the directory has no manifest (nothing to verify against). */
  manifest: boolean;
  ok: boolean;
  /** Each file with its problem, if any. */
  files: { file: string; ok: boolean; problem?: string }[];
}

interface Stamp {
  manifest_sha256: string;
  files: Record<string, { size: number; mtimeMs: number; ino: number }>;
}

async function fileIds(dir: string, m: Manifest): Promise<Stamp['files']> {
  const out: Stamp['files'] = {};
  for (const f of Object.keys(m.files)) {
    const st = await stat(join(dir, f));
    out[f] = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
  }
  return out;
}

function manifestHash(m: Manifest): string {
  return createHash('sha256').update(JSON.stringify(m.files)).digest('hex');
}

/** True when the stamp says the files were hashed as they are now. */
async function stampValid(dir: string, m: Manifest): Promise<boolean> {
  try {
    const s = JSON.parse(await readFile(join(dir, STAMP), 'utf8')) as Stamp;
    if (s.manifest_sha256 !== manifestHash(m)) return false;
    const now = await fileIds(dir, m);
    return (
      Object.keys(now).length === Object.keys(s.files ?? {}).length &&
      Object.entries(now).every(([f, v]) => {
        const o = s.files[f];
        return o && o.size === v.size && o.mtimeMs === v.mtimeMs && o.ino === v.ino;
      })
    );
  } catch {
    return false;
  }
}

/** The full check: every manifest file's size and sha256. Records a stamp when all pass (and the
 * folder is writable). Never throws for a bad file: the result lists the problems. */
export async function verifyModel(dir: string): Promise<VerifyResult> {
  const m = await readManifest(dir);
  if (!m) return { dir, manifest: false, ok: true, files: [] };
  const files: VerifyResult['files'] = [];
  for (const [f, want] of Object.entries(m.files)) {
    const p = join(dir, f);
    try {
      const st = await stat(p);
      if (st.size !== want.size) {
        const change = st.size < want.size ? 'truncated' : 'extended';
        files.push({
          file: p,
          ok: false,
          problem: `${change}: ${st.size} bytes, the manifest says ${want.size}`,
        });
        continue;
      }
      const got = await sha256File(p);
      files.push(
        got === want.sha256
          ? { file: p, ok: true }
          : { file: p, ok: false, problem: `contents changed: sha256 ${got}, the manifest says ${want.sha256}` },
      );
    } catch (e) {
      files.push({
        file: p,
        ok: false,
        problem: `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      });
    }
  }
  const ok = files.every((f) => f.ok);
  if (ok) {
    const stamp: Stamp = { manifest_sha256: manifestHash(m), files: await fileIds(dir, m) };
    // tmp + rename: loads running side by side never read half a stamp (read-only: no stamp,
    // the check runs again next time)
    const tmp = join(dir, `${STAMP}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    await writeFile(tmp, `${JSON.stringify(stamp)}\n`)
      .then(() => rename(tmp, join(dir, STAMP)))
      .catch(() => unlink(tmp).catch(() => undefined));
  }
  return { dir, manifest: true, ok, files };
}

/** 'yes' (hashes match, stamp current), 'stale' (files changed since the last check or never
 * checked), 'none' (no manifest). Cheap: no hashing. */
export async function verifiedState(dir: string): Promise<'yes' | 'stale' | 'none'> {
  const m = await readManifest(dir).catch(() => null);
  if (!m) return 'none';
  return (await stampValid(dir, m)) ? 'yes' : 'stale';
}

export type VerifyPolicy = 'first' | 'always' | 'never';

/** What `CARZero.load` runs before reading a model: the size check always, the hash check per
 * `policy` ('first': when no current stamp). Throws ModelIntegrityError naming the file. */
export async function checkModelForLoad(dir: string, policy: VerifyPolicy = 'first'): Promise<void> {
  const m = await checkModelFiles(dir);
  if (!m || policy === 'never') return;
  if (policy === 'first' && (await stampValid(dir, m))) return;
  const r = await verifyModel(dir);
  const bad = r.files.find((f) => !f.ok);
  if (bad)
    throw new ModelIntegrityError(
      `${bad.file}: ${bad.problem} (the model was altered or damaged after it was written; convert it again)`,
      bad.file,
    );
}

export interface ListedModel {
  name: string;
  origin: 'shipped' | 'store';
  dir: string;
  bytes: number;
  /** Weight dtypes in model.safetensors (F32, BF16, F16), from its header. */
  precision: string;
  verified: 'yes' | 'stale' | 'none';
  description?: string;
}

async function weightDtypes(file: string): Promise<string> {
  try {
    const { open } = await import('node:fs/promises');
    const fh = await open(file, 'r');
    try {
      const len = Buffer.alloc(8);
      await fh.read(len, 0, 8, 0);
      const n = Number(len.readBigUInt64LE(0));
      if (n > 100 << 20) return '?';
      const head = Buffer.alloc(n);
      await fh.read(head, 0, n, 8);
      const j = JSON.parse(head.toString('utf8')) as Record<string, { dtype?: string }>;
      const set = new Set(
        Object.entries(j)
          .filter(([k]) => k !== '__metadata__')
          .map(([, v]) => String(v.dtype)),
      );
      return [...set].sort().join('+').toLowerCase();
    } finally {
      await fh.close();
    }
  } catch {
    return '?';
  }
}

async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true }))
    if (e.isFile()) n += (await stat(join(dir, e.name))).size;
  return n;
}

/** The shipped models and the store's, by name. */
export async function listModels(env: NodeJS.ProcessEnv = processEnv()): Promise<ListedModel[]> {
  const out: ListedModel[] = [];
  const registry = await readRegistry().catch(() => ({}) as Record<string, RegistryEntry>);
  for (const [origin, root] of [
    ['shipped', shippedModelsDir()],
    ['store', modelStoreDir(env)],
  ] as const) {
    let names: string[];
    try {
      names = (await readdir(root, { withFileTypes: true }))
        .filter((e) => e.isDirectory() && MODEL_NAME.test(e.name))
        .map((e) => e.name)
        .sort();
    } catch {
      continue;
    }
    for (const name of names) {
      const dir = join(root, name);
      if (!existsSync(join(dir, 'config.json'))) continue;
      out.push({
        name,
        origin,
        dir,
        bytes: await dirBytes(dir),
        precision: await weightDtypes(join(dir, 'model.safetensors')),
        verified: await verifiedState(dir),
        description: registry[name]?.description,
      });
    }
  }
  return out;
}
