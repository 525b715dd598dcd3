// Argument parsing for the subcommands: node:util parseArgs in strict mode with typed options
// (--name value, --name=value, short aliases, `--` ends the options), wrapped so that a mistake is a
// UsageError whose message names the command and the option, plus the value checks the commands
// share (one of a set, positive or non-negative integers, numbers in a range).
import { parseArgs } from 'node:util';
import { CarzeroError } from '../errors.js';

/** A command line the command cannot run (exit status 2); the message says why. */
export class UsageError extends CarzeroError {
  constructor(message: string) {
    super(message, 'CZ_ERR_INVALID_ARGUMENT');
    this.name = 'UsageError';
  }
}

/** One option: a string value or a boolean flag, an optional one-letter alias and default. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  default?: string | boolean;
}
export type OptionsSpec = Record<string, OptionSpec>;

/** `-h, --help`, which every command takes. */
export const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;

type Config<O extends OptionsSpec> = { args: string[]; options: O; strict: true; allowPositionals: true; tokens: true };
/** The typed result: `values.<option>` (string | boolean by its type), positionals, tokens. */
export type ParsedCommand<O extends OptionsSpec> = ReturnType<typeof parseArgs<Config<O>>>;

/**
 * Parses `argv` against `options` (strict: unknown options, missing values and values given to
 * flags are errors). Throws UsageError `carzero <command>: ...` naming the offending option.
 */
export function parseCommand<const O extends OptionsSpec>(
  argv: readonly string[],
  options: O,
  command: string,
): ParsedCommand<O> {
  const config: Config<O> = { args: [...argv], options, strict: true, allowPositionals: true, tokens: true };
  try {
    return parseArgs(config);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS_')) throw e;
    throw new UsageError(`carzero ${command}: ${diagnose(argv, options) ?? (e as Error).message}`);
  }
}

/** Why a strict parse failed, in our words: the same arguments parsed loosely, token by token. */
function diagnose(argv: readonly string[], options: OptionsSpec): string | undefined {
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const spec = Object.hasOwn(options, t.name) ? options[t.name] : undefined;
    if (!spec) return `unknown option '${t.rawName}'`;
    if (spec.type === 'boolean') {
      if (t.inlineValue) return `option ${t.rawName} takes no value`;
    } else if (t.value === undefined) {
      return `option ${t.rawName} needs a value`;
    } else if (!t.inlineValue && t.value.length > 1 && t.value.startsWith('-')) {
      const hint = `write ${t.rawName}=${t.value} if that is the value`;
      return `option ${t.rawName} needs a value, got the option-like '${t.value}' (${hint})`;
    }
  }
  return undefined;
}

/** Precisions the model commands take (CARZero.load's). */
export const PRECISIONS = ['fp32', 'tf32', 'bf16'] as const;
export const DEVICES = ['auto', 'cpu', 'cuda'] as const;

type Default = number | undefined;
type Arg = string | undefined;

/** `v` if it is one of `allowed` (`def` when absent). */
export function oneOf<T extends string, D extends T | undefined>(
  v: string | undefined,
  allowed: readonly T[],
  name: string,
  command: string,
  def: D,
): T | D {
  if (v === undefined) return def;
  if (!(allowed as readonly string[]).includes(v))
    throw new UsageError(`carzero ${command}: --${name} must be one of ${allowed.join('|')}, got '${v}'`);
  return v as T;
}

/** `v` as an integer >= 1 (`def` when absent). */
export function positiveInt<D extends Default>(v: Arg, name: string, command: string, def: D): number | D {
  if (v === undefined) return def;
  const n = Number(v);
  if (v.trim() === '' || !Number.isSafeInteger(n) || n < 1)
    throw new UsageError(`carzero ${command}: --${name} must be a positive integer, got '${v}'`);
  return n;
}

/** `v` as an integer >= 0 (`def` when absent). */
export function nonNegativeInt<D extends Default>(v: Arg, name: string, command: string, def: D): number | D {
  if (v === undefined) return def;
  const n = Number(v);
  if (v.trim() === '' || !Number.isSafeInteger(n) || n < 0)
    throw new UsageError(`carzero ${command}: --${name} must be a non-negative integer, got '${v}'`);
  return n;
}

/** `v` as a number inside `[lo, hi]` (`open`: `(lo, hi)`); `def` when absent. */
export function numberIn<D extends Default>(
  v: string | undefined,
  [lo, hi]: readonly [number, number],
  name: string,
  command: string,
  def: D,
  open = false,
): number | D {
  if (v === undefined) return def;
  const n = v.trim() === '' ? NaN : Number(v);
  if (!(open ? n > lo && n < hi : n >= lo && n <= hi)) {
    const range = open ? `(${lo}, ${hi})` : `[${lo}, ${hi}]`;
    throw new UsageError(`carzero ${command}: --${name} must be a number in ${range}, got '${v}'`);
  }
  return n;
}
