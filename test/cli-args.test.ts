// The subcommands' argument parsing (src/cli/args.ts over node:util parseArgs): values, flags,
// defaults, the -h alias, `--`, and usage errors that name the command and the option.
import test from 'ava';
import {
  HELP_OPTION,
  nonNegativeInt,
  numberIn,
  oneOf,
  parseCommand,
  positiveInt,
  UsageError,
} from '../src/cli/args.js';

const SPEC = {
  ...HELP_OPTION,
  model: { type: 'string' },
  format: { type: 'string', default: 'json' },
  quiet: { type: 'boolean', default: false },
} as const;

test('values, flags, defaults, positionals, --name=value and the -h alias', (t) => {
  const a = parseCommand(['--model', 'm', 'a.png', '--quiet', '--format=csv', 'b.png'], SPEC, 'classify');
  t.is(a.values.model, 'm');
  t.is(a.values.format, 'csv');
  t.true(a.values.quiet);
  t.deepEqual(a.positionals, ['a.png', 'b.png']);
  const d = parseCommand([], SPEC, 'classify');
  t.is(d.values.format, 'json');
  t.false(d.values.quiet);
  t.is(d.values.model, undefined);
  t.true(parseCommand(['-h'], SPEC, 'classify').values.help);
  t.deepEqual(parseCommand(['--', '--not-an-option', '-x'], SPEC, 'classify').positionals, ['--not-an-option', '-x']);
  t.is(parseCommand(['--model', 'a', '--model', 'b'], SPEC, 'classify').values.model, 'b', 'last one wins');
});

test('usage errors name the command and the option', (t) => {
  const err = (argv: string[]) =>
    t.throws(() => parseCommand(argv, SPEC, 'classify'), { instanceOf: UsageError })!.message;
  t.is(err(['--frob']), "carzero classify: unknown option '--frob'");
  t.is(err(['--frob=1']), "carzero classify: unknown option '--frob'");
  t.is(err(['-x']), "carzero classify: unknown option '-x'");
  t.is(err(['--model']), 'carzero classify: option --model needs a value');
  const likeOption = /^carzero classify: option --model needs a value, got the option-like '--quiet'/;
  t.regex(err(['--model', '--quiet']), likeOption);
  t.is(err(['--quiet=yes']), 'carzero classify: option --quiet takes no value');
  t.is(parseCommand(['--model=-odd'], SPEC, 'classify').values.model, '-odd');
});

test('value checks', (t) => {
  t.is(oneOf(undefined, ['a', 'b'] as const, 'x', 'c', 'a'), 'a');
  t.is(oneOf(undefined, ['a', 'b'] as const, 'x', 'c', undefined), undefined);
  t.is(oneOf('b', ['a', 'b'] as const, 'x', 'c', 'a'), 'b');
  const notOne = "carzero c: --x must be one of a|b, got 'z'";
  t.throws(() => oneOf('z', ['a', 'b'] as const, 'x', 'c', 'a'), { message: notOne });
  t.is(positiveInt('3', 'n', 'c', 1), 3);
  t.is(positiveInt(undefined, 'n', 'c', undefined), undefined);
  for (const bad of ['0', '-1', '1.5', '', 'x', '1e400'])
    t.throws(() => positiveInt(bad, 'n', 'c', 1), {
      message: `carzero c: --n must be a positive integer, got '${bad}'`,
    });
  t.is(nonNegativeInt('0', 'n', 'c', 5), 0);
  t.throws(() => nonNegativeInt('-1', 'n', 'c', 5), { message: /--n must be a non-negative integer, got '-1'/ });
  t.is(numberIn('0.5', [0, 1], 'a', 'c', 0.45), 0.5);
  t.is(numberIn('1', [0, 1], 'a', 'c', 0.45), 1);
  const open = "carzero c: --lr must be a number in (0, 1), got '1'";
  t.throws(() => numberIn('1', [0, 1], 'lr', 'c', undefined, true), { message: open });
  t.throws(() => numberIn('nan', [0, 1], 'a', 'c', 0), { message: /\[0, 1\]/ });
});
