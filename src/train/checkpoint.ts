// Run-directory checkpoints (docs/TRAINING.md "Trainer").
//
// Layout of a run directory:
//   config.json                the resolved training config
//   log.jsonl                  one JSON line per logged step and per epoch
//   checkpoints/ckpt-<step>-<id>/
//       config.json, tokenizer.json, model.safetensors   a complete model directory
//                                                        (usable by `carzero classify --model`)
//       optimizer.safetensors                            the optimizer's moments by parameter name
//       trainer.json                                     everything else needed to resume exactly
//   last -> checkpoints/ckpt-...                         symbolic links, replaced atomically
//   best -> checkpoints/ckpt-...
//
// Atomicity: a checkpoint is written into checkpoints/.tmp-<id>/ and renamed to its final name
// only once every file in it is complete (and fsynced); `last`/`best` are then switched with a
// new symbolic link renamed over the old one. A crash at any point leaves `last` pointing at a
// complete checkpoint; leftover .tmp-* folders are never read and are removed by the next run.
import { randomBytes } from 'node:crypto';
import {
  copyFile,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  symlink,
  unlink,
} from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { SafetensorsFile, writeSafetensors, type SafetensorsInput } from '../weights/safetensors.js';
import type { NamedTensor } from '../model/native-model.js';
import type { Tensor } from '../tensor.js';

export const CHECKPOINTS = 'checkpoints';

/** Bytes of a tensor's host copy (f32 tensors -> F32). */
export async function tensorBytes(t: Tensor): Promise<Buffer> {
  const a = await t.read();
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

async function writeJsonSynced(file: string, value: unknown): Promise<void> {
  const fh = await open(file, 'w');
  try {
    await fh.writeFile(`${JSON.stringify(value, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface CheckpointContents {
  /** The model directory the run started from (config.json, tokenizer.json and the tensors that
   * training does not change are copied from there). */
  baseModel: string;
  /** The trainable parameters (their current values). */
  params: NamedTensor[];
  /** Optimizer state tensors by name (e.g. `m/<param>`), and its metadata. */
  optimizer: Map<string, Tensor>;
  optimizerMeta: Record<string, string>;
  /** trainer.json. */
  state: unknown;
}

/** Writes a complete checkpoint folder atomically; returns its name under checkpoints/. */
export async function writeCheckpoint(runDir: string, step: number, c: CheckpointContents): Promise<string> {
  const root = join(runDir, CHECKPOINTS);
  await mkdir(root, { recursive: true });
  const id = randomBytes(4).toString('hex');
  const tmp = join(root, `.tmp-${id}`);
  const name = `ckpt-${String(step).padStart(7, '0')}-${id}`;
  await mkdir(tmp);
  try {
    await copyFile(join(c.baseModel, 'config.json'), join(tmp, 'config.json'));
    await copyFile(join(c.baseModel, 'tokenizer.json'), join(tmp, 'tokenizer.json'));
    const trained = new Map(c.params.map((p) => [p.name, p.tensor]));
    const base = await SafetensorsFile.open(join(c.baseModel, 'model.safetensors'));
    try {
      const tensors: [string, SafetensorsInput][] = [];
      for (const [name, e] of base.entries) {
        const t = trained.get(name);
        if (t) {
          if (e.dtype !== 'F32' || t.dtype !== 'f32') throw new Error(`checkpoint: parameter '${name}' is not f32`);
          tensors.push([name, { dtype: 'F32', shape: e.shape, data: () => tensorBytes(t) }]);
          trained.delete(name);
        } else {
          tensors.push([name, { dtype: e.dtype, shape: e.shape, data: async () => (await base.read(name)).data }]);
        }
      }
      if (trained.size)
        throw new Error(
          `checkpoint: parameters not in ${c.baseModel}/model.safetensors: ` +
            `${[...trained.keys()].slice(0, 5).join(', ')}`,
        );
      await writeSafetensors(join(tmp, 'model.safetensors'), tensors, {
        metadata: { format: 'carzero-model', trainer_step: String(step) },
      });
    } finally {
      await base.close();
    }
    const opt: [string, SafetensorsInput][] = [...c.optimizer].map(([n, t]) => [
      n,
      { dtype: 'F32', shape: t.shape, data: () => tensorBytes(t) },
    ]);
    await writeSafetensors(join(tmp, 'optimizer.safetensors'), opt, { metadata: c.optimizerMeta });
    await writeJsonSynced(join(tmp, 'trainer.json'), c.state);
    await syncDir(tmp);
    await rename(tmp, join(root, name));
    await syncDir(root);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
  return name;
}

async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // some file systems refuse fsync on directories
  } finally {
    await fh.close();
  }
}

/** Points `<runDir>/<link>` (last or best) at checkpoints/<name>, atomically. */
export async function pointTo(runDir: string, link: 'last' | 'best', name: string): Promise<void> {
  const tmp = join(runDir, `.${link}-${randomBytes(4).toString('hex')}.tmp`);
  if (process.platform === 'win32') await symlink(resolve(runDir, CHECKPOINTS, name), tmp, 'junction');
  else await symlink(join(CHECKPOINTS, name), tmp);
  try {
    await rename(tmp, join(runDir, link));
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

/** The checkpoint name a link points at, or null. */
export async function linkTarget(runDir: string, link: 'last' | 'best'): Promise<string | null> {
  try {
    const t = await readlink(join(runDir, link));
    return basename(t);
  } catch {
    return null;
  }
}

/** Removes temp folders/links and checkpoints that neither `last` nor `best` points at. */
export async function cleanRunDir(runDir: string): Promise<string[]> {
  const keep = new Set(
    [await linkTarget(runDir, 'last'), await linkTarget(runDir, 'best')].filter((x): x is string => !!x),
  );
  const removed: string[] = [];
  const root = join(runDir, CHECKPOINTS);
  for (const e of await readdir(root).catch(() => [] as string[])) {
    if (keep.has(e)) continue;
    if (e.startsWith('.tmp-') || e.startsWith('ckpt-')) {
      await rm(join(root, e), { recursive: true, force: true });
      removed.push(join(CHECKPOINTS, e));
    }
  }
  for (const e of await readdir(runDir).catch(() => [] as string[])) {
    if (/^\.(last|best)-[0-9a-f]+\.tmp$/.test(e) || (e.startsWith('.') && e.endsWith('.tmp'))) {
      const st = await lstat(join(runDir, e)).catch(() => null);
      if (st) {
        await rm(join(runDir, e), { recursive: true, force: true });
        removed.push(e);
      }
    }
  }
  return removed;
}

export interface LoadedCheckpoint {
  /** The checkpoint folder (a model directory). */
  dir: string;
  state: unknown;
  optimizer: Map<string, Buffer>;
  optimizerMeta: Record<string, string>;
}

/** Reads the checkpoint `last` points at. */
export async function readCheckpoint(runDir: string, link: 'last' | 'best' = 'last'): Promise<LoadedCheckpoint> {
  const name = await linkTarget(runDir, link);
  if (!name)
    throw new Error(`${runDir}: no '${link}' checkpoint (not a run directory, or no checkpoint was written yet)`);
  const dir = join(runDir, CHECKPOINTS, name);
  const state = JSON.parse(await readFile(join(dir, 'trainer.json'), 'utf8')) as unknown;
  const f = await SafetensorsFile.open(join(dir, 'optimizer.safetensors'));
  const optimizer = new Map<string, Buffer>();
  try {
    for (const n of f.entries.keys()) optimizer.set(n, (await f.read(n)).data);
  } finally {
    await f.close();
  }
  return { dir, state, optimizer, optimizerMeta: { ...f.metadata } };
}
