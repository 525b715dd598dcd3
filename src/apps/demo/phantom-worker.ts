// Worker thread of generatePhantomSet (src/apps/demo/phantom.ts): renders blocks of phantom images,
// writes their files and returns their index entries.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort } from 'node:worker_threads';
import { renderJob, type PhantomJob, type PhantomOptions } from './phantom.js';

parentPort!.on('message', (m: { opts: Omit<PhantomOptions, 'out'>; out: string; jobs: PhantomJob[] }) => {
  try {
    const entries = m.jobs.map((job) => {
      const r = renderJob(m.opts, job);
      writeFileSync(join(m.out, r.entry.file), r.bytes);
      return r.entry;
    });
    parentPort!.postMessage({ entries });
  } catch (e) {
    parentPort!.postMessage({ error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  }
});
