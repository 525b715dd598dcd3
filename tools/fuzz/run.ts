// The fuzz harness (issue 17): mutated inputs of every parser family (tools/fuzz/families.ts) fed
// to the package's real entry points in worker processes, with a watchdog per input (time) and per
// process (memory). Outcomes: accepted, refused (the package's own error, naming the input), or a
// finding: a crash (the process died), a hang (over --timeout-ms), a process over --mem-mb, an
// error of a foreign class or without the input's name, a wrong acceptance.
//
//   node --import tsx tools/fuzz/run.ts [--count N] [--families png,jpeg,...] [--seed S]
//        [--jobs J] [--timeout-ms 10000] [--mem-mb 2048] [--out DIR]
//
// --count is per family. Inputs are a function of (family, --seed, index): a finding is reproduced
// by the same command, and its input is kept in DIR/findings/. Exits 1 when there is a finding.
// CI runs a short pass (--count 150); the long run is in docs/FUZZING.md.
import { fork, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { convertCheckpoint } from '../../src/weights/convert.js';
import { FAMILIES } from './families.js';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const { values: a } = parseArgs({
  options: {
    count: { type: 'string', default: '150' },
    families: { type: 'string', default: FAMILIES.map((f) => f.name).join(',') },
    seed: { type: 'string', default: '1' },
    jobs: { type: 'string', default: String(availableParallelism()) },
    'timeout-ms': { type: 'string', default: '10000' },
    'mem-mb': { type: 'string', default: '2048' },
    out: { type: 'string', default: join(root, 'bench', 'out', 'fuzz') },
    quiet: { type: 'boolean', default: false },
  },
});
const int = (name: string, v: string, min: number) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new RangeError(`--${name} must be an integer >= ${min}, got '${v}'`);
  return n;
};
const count = int('count', a.count!, 1);
const runSeed = int('seed', a.seed!, 0);
const jobs = int('jobs', a.jobs!, 1);
const timeoutMs = int('timeout-ms', a['timeout-ms']!, 100);
const memKb = int('mem-mb', a['mem-mb']!, 64) * 1024;
const families = a
  .families!.split(',')
  .map((s) => s.trim())
  .filter(Boolean);
for (const f of families)
  if (!FAMILIES.some((x) => x.name === f))
    throw new RangeError(`--families: unknown family '${f}' (${FAMILIES.map((x) => x.name).join(', ')})`);
const out = resolve(a.out!);
mkdirSync(join(out, 'findings'), { recursive: true });

// The tiny model the safetensors and config families start from.
const model = join(out, 'model');
if (!existsSync(join(model, 'model.safetensors'))) {
  const tiny = join(root, 'test', 'fixtures', 'tiny');
  const cfg = JSON.parse(readFileSync(join(tiny, 'config.json'), 'utf8'));
  await convertCheckpoint({
    checkpoint: join(tiny, 'carzero-tiny.ckpt'),
    textModel: join(tiny, 'bert-tiny'),
    out: model,
    vitHeads: cfg.vision.heads,
    headHeads: cfg.head.heads,
    force: true,
  });
}

interface Stats {
  inputs: number;
  accepted: number;
  refused: number;
  findings: Record<string, number>;
  slowestMs: number;
  peakRssMb: number;
}
const stats = new Map<string, Stats>(
  families.map((f) => [f, { inputs: 0, accepted: 0, refused: 0, findings: {}, slowestMs: 0, peakRssMb: 0 }]),
);
const findings: { family: string; index: number; kind: string; message: string; file: string }[] = [];

// Tasks: ranges of 100 inputs, families interleaved so every worker sees all of them.
const CHUNK = 100;
const tasks: { family: string; from: number; to: number }[] = [];
for (let from = 0; from < count; from += CHUNK)
  for (const family of families) tasks.push({ family, from, to: Math.min(count, from + CHUNK) });
const total = tasks.reduce((n, t) => n + t.to - t.from, 0);
let done = 0;
const t0 = Date.now();

function record(family: string, index: number, kind: string, message: string, inputFile: string | null): void {
  const s = stats.get(family)!;
  s.findings[kind] = (s.findings[kind] ?? 0) + 1;
  const file = join(out, 'findings', `${family}-${runSeed}-${index}.${kind}`);
  if (inputFile && existsSync(inputFile)) copyFileSync(inputFile, `${file}.bin`);
  writeFileSync(`${file}.txt`, `${family} input ${index} (seed ${runSeed}): ${kind}\n${message}\n`);
  findings.push({ family, index, kind, message: message.slice(0, 300), file: `${file}.bin` });
  if (!a.quiet) console.error(`fuzz: ${family} #${index}: ${kind}: ${message.slice(0, 200)}`);
}

// One worker slot: a child process working through tasks, replaced when it dies or is killed.
async function slot(id: number): Promise<void> {
  const tmp = join(out, `worker-${id}`);
  for (;;) {
    const task = tasks.shift();
    if (!task) return;
    let next = task.from;
    while (next < task.to) {
      next = await runRange(tmp, task.family, next, task.to);
    }
  }
}

/** Runs family inputs [from, to) in a fresh child; returns where to go on (to, or past a finding that killed it). */
function runRange(tmp: string, family: string, from: number, to: number): Promise<number> {
  return new Promise((resolveRange) => {
    const child: ChildProcess = fork(join(root, 'tools', 'fuzz', 'worker.ts'), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    let current = -1;
    let timer: NodeJS.Timeout | undefined;
    let killedFor: string | null = null;
    let finished = false;
    const s = stats.get(family)!;
    const kill = (why: string) => {
      if (killedFor || finished) return;
      killedFor = why;
      child.kill('SIGKILL');
    };
    const mem = setInterval(() => {
      try {
        const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
        s.peakRssMb = Math.max(s.peakRssMb, Math.round(kb / 1024));
        if (kb > memKb) kill(`memory: ${Math.round(kb / 1024)} MB resident, over ${memKb / 1024} MB`);
      } catch {
        // the process is gone
      }
    }, 100);
    child.on(
      'message',
      (m: {
        type: string;
        i: number;
        verdict?: 'accepted' | 'refused';
        finding?: { kind: string; message: string; input: string };
        ms?: number;
      }) => {
        if (m.type === 'start') {
          current = m.i;
          clearTimeout(timer);
          timer = setTimeout(() => kill(`hang: no answer within ${timeoutMs} ms`), timeoutMs);
        } else if (m.type === 'done') {
          clearTimeout(timer);
          s.inputs++;
          done++;
          s.slowestMs = Math.max(s.slowestMs, m.ms ?? 0);
          if (m.verdict) s[m.verdict]++;
          else {
            record(family, m.i, m.finding!.kind, m.finding!.message, m.finding!.input);
            rmSync(m.finding!.input, { force: true });
          }
          current = -1;
        } else if (m.type === 'task-done') {
          finished = true;
          child.disconnect();
        }
      },
    );
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      clearInterval(mem);
      if (finished) return resolveRange(to);
      const at = current >= 0 ? current : from;
      s.inputs++;
      done++;
      const kind = killedFor ? (killedFor.startsWith('hang') ? 'hang' : 'memory') : 'crash';
      record(
        family,
        at,
        kind,
        killedFor ?? `the worker died (${signal ?? `exit ${code}`}): ${stderr.slice(-1500)}`,
        join(tmp, 'current'),
      );
      resolveRange(at + 1);
    });
    child.send({ setup: { root, model, tmp }, task: { family, from, to, runSeed } });
  });
}

const progress = a.quiet
  ? undefined
  : setInterval(
      () =>
        process.stderr.write(
          `fuzz: ${done}/${total} inputs, ${findings.length} findings, ${((Date.now() - t0) / 1000).toFixed(0)} s\n`,
        ),
      10_000,
    );
await Promise.all(Array.from({ length: Math.min(jobs, tasks.length) }, (_, i) => slot(i)));
clearInterval(progress);

const seconds = (Date.now() - t0) / 1000;
const summary = {
  seed: runSeed,
  countPerFamily: count,
  jobs,
  timeoutMs,
  memMb: memKb / 1024,
  seconds: Math.round(seconds),
  inputs: done,
  findings: findings.length,
  families: Object.fromEntries(stats),
  list: findings,
};
writeFileSync(join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
console.log(
  `fuzz: ${done} inputs in ${seconds.toFixed(0)} s (seed ${runSeed}, ${jobs} workers, ` +
    `limits ${timeoutMs} ms and ${memKb / 1024} MB per input)`,
);
console.log('family        inputs  accepted   refused  findings  slowest ms  peak RSS MB');
for (const [f, s] of stats) {
  const nf = Object.values(s.findings).reduce((x, y) => x + y, 0);
  console.log(
    `${f.padEnd(12)} ${String(s.inputs).padStart(7)} ${String(s.accepted).padStart(9)} ` +
      `${String(s.refused).padStart(9)} ${String(nf).padStart(9)} ${s.slowestMs.toFixed(0).padStart(11)} ` +
      `${String(s.peakRssMb).padStart(12)}`,
  );
}
for (const f of findings.slice(0, 30))
  console.log(`finding: ${f.family} #${f.index} ${f.kind}: ${f.message.slice(0, 160)} (${f.file})`);
process.exitCode = findings.length ? 1 : 0;
