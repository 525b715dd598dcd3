// One fuzz worker process (forked by tools/fuzz/run.ts). For each task {family, from, to} it makes
// inputs from..to-1 (tools/fuzz/families.ts: makeInput), writes each to <tmp>/current before
// running it (so that the parent can keep the input of a crash or a hang), and reports
// 'start' and 'done' (with the verdict, or a finding) for each.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Finding, familyByName, makeInput, type Family } from './families.js';

interface Task {
  family: string;
  from: number;
  to: number;
  runSeed: number;
}
interface Setup {
  root: string;
  model: string;
  tmp: string;
}

const seedCache = new Map<string, { files: string[]; bytes: Buffer[] }>();
async function seedsOf(f: Family, setup: Setup) {
  if (!seedCache.has(f.name)) {
    const files = f.seeds(setup.root, setup.model);
    const bytes = await Promise.all(files.map((p) => (f.loadSeed ? f.loadSeed(p) : Promise.resolve(readFileSync(p)))));
    seedCache.set(f.name, { files, bytes });
  }
  return seedCache.get(f.name)!;
}

let setup: Setup | undefined;
let queue = Promise.resolve();
process.on('message', (m: { setup?: Setup; task?: Task }) => {
  if (m.setup) {
    setup = m.setup;
    mkdirSync(setup.tmp, { recursive: true });
  }
  if (m.task) queue = queue.then(() => runTask(m.task!));
});

async function runTask(t: Task): Promise<void> {
  const f = familyByName(t.family);
  const seeds = await seedsOf(f, setup!);
  for (let i = t.from; i < t.to; i++) {
    const { input, seedIndex } = makeInput(f, seeds.bytes, t.runSeed, i);
    writeFileSync(join(setup!.tmp, 'current'), input);
    process.send!({ type: 'start', family: t.family, i });
    const t0 = performance.now();
    try {
      const verdict = await f.run(input, seeds.bytes[seedIndex]!, seeds.files[seedIndex]!, {
        tmp: setup!.tmp,
        model: setup!.model,
      });
      process.send!({ type: 'done', family: t.family, i, verdict, ms: performance.now() - t0 });
    } catch (e) {
      if (!(e instanceof Finding)) throw e; // runner bug: let the parent see the crash
      // kept under its own name: 'current' is the next input by the time the parent reads it
      const saved = join(setup!.tmp, `finding-${t.family}-${i}`);
      writeFileSync(saved, input);
      process.send!({
        type: 'done',
        family: t.family,
        i,
        finding: { kind: e.kind, message: e.message, input: saved },
        ms: performance.now() - t0,
      });
    }
  }
  process.send!({ type: 'task-done', family: t.family, from: t.from, to: t.to });
}
