// The TypeScript side's environment variables (src/settings.ts): parsed when asked, validated with
// messages naming the variable, and an explicit option wins over the environment.
import test from 'ava';
import { decodeThreadsSetting, decoderSetting, maxPixelsSetting, dataParallelSetting } from '../src/settings.js';
import { ImageFeed } from '../src/image/feed.js';
import { resolveMaxPixels } from '../src/image/limits.js';

function withEnv(vars: Record<string, string | undefined>, fn: () => void): void {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const set = (v: Record<string, string | undefined>) => {
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) delete process.env[k];
      else process.env[k] = x;
    }
  };
  set(vars);
  try {
    fn();
  } finally {
    set(before);
  }
}

test.serial('CARZERO_DECODE_THREADS: unset, valid, invalid', (t) => {
  withEnv({ CARZERO_DECODE_THREADS: undefined }, () => t.is(decodeThreadsSetting(), undefined));
  withEnv({ CARZERO_DECODE_THREADS: '3' }, () => t.is(decodeThreadsSetting(), 3));
  withEnv({ CARZERO_DECODE_THREADS: '0' }, () =>
    t.throws(() => decodeThreadsSetting(), { instanceOf: RangeError, message: /CARZERO_DECODE_THREADS.*'0'/ }),
  );
});

test.serial('CARZERO_DECODER: read when no option is given, an option wins over a bad value', (t) => {
  withEnv({ CARZERO_DECODER: ' js ' }, () => {
    t.is(decoderSetting(), 'js');
    using feed = new ImageFeed({ threads: 1 });
    t.is(feed.decoder, 'js');
  });
  withEnv({ CARZERO_DECODER: 'fast' }, () => {
    t.throws(() => new ImageFeed({ threads: 1 }), { instanceOf: TypeError, message: /CARZERO_DECODER.*'fast'/ });
    using feed = new ImageFeed({ threads: 1, decoder: 'js' });
    t.is(feed.decoder, 'js');
  });
});

test.serial('CARZERO_MAX_PIXELS: blank is unset; a bad value names the variable', (t) => {
  withEnv({ CARZERO_MAX_PIXELS: '  ' }, () => t.is(maxPixelsSetting(), undefined));
  withEnv({ CARZERO_MAX_PIXELS: ' 1000 ' }, () => t.is(resolveMaxPixels(), 1000));
  withEnv({ CARZERO_MAX_PIXELS: 'lots' }, () =>
    t.throws(() => resolveMaxPixels(), { instanceOf: RangeError, message: /CARZERO_MAX_PIXELS/ }),
  );
  withEnv({ CARZERO_MAX_PIXELS: 'lots' }, () => t.is(resolveMaxPixels(5), 5));
});

test.serial('CARZERO_DP_*: all three or none', (t) => {
  withEnv({ CARZERO_DP_RANK: '1', CARZERO_DP_WORLD: '2', CARZERO_DP_ID: undefined }, () =>
    t.is(dataParallelSetting(), undefined),
  );
  withEnv({ CARZERO_DP_RANK: '1', CARZERO_DP_WORLD: '2', CARZERO_DP_ID: 'ab01' }, () =>
    t.deepEqual(dataParallelSetting(), { rank: 1, world: 2, id: Buffer.from([0xab, 0x01]) }),
  );
});
