// Worker-thread entry of ItemPool (./pool.ts): one message per task, one reply per task with the
// result's buffer transferred.
import { parentPort } from 'node:worker_threads';
import { processItem, type ItemTask } from './pool.js';

const port = parentPort;
if (!port) throw new Error('carzero data worker: not started as a worker thread');

port.on('message', (m: { id: number; task: ItemTask }) => {
  processItem(m.task).then(
    (data) => {
      // Transfer only a buffer the result owns whole; copy a view.
      const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
      port.postMessage({ id: m.id, ok: true, data: own }, [own.buffer as ArrayBuffer]);
    },
    (e: unknown) => port.postMessage({ id: m.id, ok: false, error: e instanceof Error ? e.message : String(e) }),
  );
});
