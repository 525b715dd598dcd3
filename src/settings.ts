// settings.ts: every environment variable the TypeScript side reads, in one place (the native side
// reads its own in native/src/core/settings.cpp; docs/ARCHITECTURE.md lists both). Each is read
// when asked, not cached, so a variable set by a test or a parent process takes effect on the next
// call. Validation that needs a module's own limits stays with that module (image/limits.ts).

/** The process environment, for code that passes it on (child processes) or takes it as a parameter. */
export function processEnv(): NodeJS.ProcessEnv {
  return process.env;
}

/** CARZERO_DECODE_THREADS: decode threads of the image feed, an integer in [1, 1024]; undefined when unset. */
export function decodeThreadsSetting(): number | undefined {
  const env = process.env.CARZERO_DECODE_THREADS;
  if (env === undefined || env === '') return undefined;
  const n = Number(env);
  if (Number.isInteger(n) && n >= 1 && n <= 1024) return n;
  throw new RangeError(`CARZERO_DECODE_THREADS must be an integer in [1, 1024], got '${env}'`);
}

/** CARZERO_DECODER: 'auto', 'native' or 'js' (trimmed); undefined when unset or empty. */
export function decoderSetting(): 'auto' | 'native' | 'js' | undefined {
  const env = process.env.CARZERO_DECODER?.trim();
  if (!env) return undefined;
  if (env === 'auto' || env === 'native' || env === 'js') return env;
  throw new TypeError(`CARZERO_DECODER must be 'auto', 'native' or 'js', got '${env}'`);
}

/** CARZERO_MAX_PIXELS as written (trimmed); undefined when unset or blank. image/limits.ts checks it. */
export function maxPixelsSetting(): string | undefined {
  const env = process.env.CARZERO_MAX_PIXELS?.trim();
  return env ? env : undefined;
}

/** CARZERO_DP_RANK, CARZERO_DP_WORLD, CARZERO_DP_ID: set by `carzero train --gpus N` for its workers. */
export function dataParallelSetting(): { rank: number; world: number; id: Buffer } | undefined {
  const r = process.env.CARZERO_DP_RANK,
    w = process.env.CARZERO_DP_WORLD,
    id = process.env.CARZERO_DP_ID;
  if (r === undefined || w === undefined || id === undefined) return undefined;
  return { rank: Number(r), world: Number(w), id: Buffer.from(id, 'hex') };
}
