// The library core (src/ less src/apps/ and src/cli/) depends on no application: nothing in it
// imports from src/apps/ (the demo lives there), statically, as a type, or dynamically.
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const src = resolve(import.meta.dirname, '..', 'src');

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

test('the core imports nothing from src/apps/', (t) => {
  const apps = join(src, 'apps');
  const core = files(src).filter((f) => !f.startsWith(apps + '/') && !f.startsWith(join(src, 'cli') + '/'));
  t.true(core.length > 50, `${core.length} core files`);
  const bad: string[] = [];
  const patterns = [/^\s*(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'/gm, /import\(\s*'(\.[^']+)'\s*\)/g];
  for (const f of core)
    for (const re of patterns)
      for (const m of readFileSync(f, 'utf8').matchAll(re))
        if (resolve(dirname(f), m[1]).startsWith(apps + '/')) bad.push(`${relative(src, f)} -> ${m[1]}`);
  t.deepEqual(bad, []);
});
