#!/usr/bin/env node
// oom-check.mjs: GPU out-of-memory is an exception the caller can catch, and the process keeps
// running (the brief's rule for native code). On the device: a 1 TiB tensor, without and with a
// model loaded, must throw a CarzeroError with code CZ_ERR_OUT_OF_MEMORY naming the call; after
// each, a small GEMM on the same device must give the right answer, and the model must still embed
// images. Plain JavaScript over dist/.
//
//   node tools/parity/oom-check.mjs [--model DIR] [--device cuda] [--json out.json]
// Exit code: 0 passed, 1 failed.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const devName = opt('--device', 'cuda');
const modelDir = opt('--model', '');
const jsonOut = opt('--json', '');
const { Tensor, Device, ops } = await import(join(ROOT, 'dist', 'index.js'));
const device = devName === 'cuda' ? Device.cuda() : Device.cpu();
const report = { tool: 'tools/parity/oom-check.mjs', device: devName, checks: [], ok: true };
const gemmOk = async () => {
  const a = Tensor.from(new Float32Array([1, 2, 3, 4]), [2, 2], { device });
  const c = Tensor.zeros([2, 2], { device });
  await ops.gemm({ a, b: a, c });
  const got = Array.from(c.toArray()).join();
  a.dispose();
  c.dispose();
  return got === '7,10,15,22';
};
async function check(name, fn) {
  let code = null,
    message = '';
  try {
    await fn();
  } catch (e) {
    code = e?.code ?? null;
    message = String(e?.message ?? e);
  }
  const after = await gemmOk().catch((e) => `gemm after: ${e?.message ?? e}`);
  const ok = code === 'CZ_ERR_OUT_OF_MEMORY' && after === true;
  report.ok &&= ok;
  report.checks.push({ name, ok, code, message: message.slice(0, 300), gemm_after: after });
  console.log(
    `${ok ? 'PASS' : 'FAIL'} ${name}: ${code ?? 'no error'} ${message.slice(0, 160)}; ` +
      `gemm afterwards ${after === true ? 'ok' : after}`,
  );
}
await check('a 1 TiB tensor', async () => {
  const t = Tensor.zeros([2 ** 38], { device }); // 2^38 floats = 1 TiB
  t.dispose();
});
if (modelDir) {
  const { NativeModel } = await import(join(ROOT, 'dist', 'model', 'native-model.js'));
  const model = await NativeModel.load(modelDir, { device: devName, precision: 'bf16' });
  // (embedImages runs the ViT in fixed chunks, so a big batch does not exhaust the card by
  // itself; the 1 TiB request above is the out-of-memory case.)
  await check('a 1 TiB tensor with a model loaded', async () => {
    const t = Tensor.zeros([2 ** 38], { device: model.device });
    t.dispose();
  });
  // and the model still works at a normal batch
  const px = Tensor.zeros([2, 1, 224, 224], { device: model.device });
  let ok = true;
  try {
    await model.embedImages(px);
  } catch (e) {
    ok = false;
    console.log(`FAIL model after OOM: ${e?.message ?? e}`);
  }
  px.dispose();
  report.checks.push({ name: 'model embeds at batch 2 after the OOM', ok });
  report.ok &&= ok;
  if (ok) console.log('PASS model embeds at batch 2 after the OOM');
  model.dispose();
}
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(report, null, 1)}\n`);
process.exit(report.ok ? 0 : 1);
