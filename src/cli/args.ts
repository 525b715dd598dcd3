// A small, strict argument parser for the subcommands: --name value, --name=value, boolean flags,
// positionals; unknown options are errors naming the option.

export interface ArgSpec {
  /** Options taking a value. */
  values?: readonly string[];
  /** Boolean flags. */
  flags?: readonly string[];
}

export interface ParsedArgs {
  values: Map<string, string>;
  flags: Set<string>;
  positionals: string[];
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function parseArgs(argv: readonly string[], spec: ArgSpec, command: string): ParsedArgs {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  const positionals: string[] = [];
  const vals = new Set(spec.values ?? []);
  const fl = new Set(spec.flags ?? []);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('--') || a === '-') {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    if (vals.has(name)) {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new UsageError(`carzero ${command}: option --${name} needs a value`);
      values.set(name, v);
    } else if (fl.has(name) && eq < 0) {
      flags.add(name);
    } else {
      throw new UsageError(`carzero ${command}: unknown option '--${name}'`);
    }
  }
  return { values, flags, positionals };
}

export function oneOf<T extends string>(v: string | undefined, allowed: readonly T[], name: string, command: string, def: T): T {
  if (v === undefined) return def;
  if (!(allowed as readonly string[]).includes(v))
    throw new UsageError(`carzero ${command}: --${name} must be one of ${allowed.join('|')}, got '${v}'`);
  return v as T;
}

export function positiveInt(v: string | undefined, name: string, command: string, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`carzero ${command}: --${name} must be a positive integer, got '${v}'`);
  return n;
}
