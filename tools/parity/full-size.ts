// Full-size golden parity: the PyTorch reference's full-size random CARZero (written by
// tools/reference/full_size.py in the original checkpoint format) converted with our converter and
// run through the whole TypeScript pipeline (image decoding, preprocessing, text cleaning,
// tokenisation, native model), compared tensor by tensor with the reference outputs.
//
//   /usr/bin/python3 tools/reference/full_size.py --out /tmp/carzero-full     # once, ~2.5 min
//   node --import tsx tools/parity/full-size.ts /tmp/carzero-full [--precision fp32|bf16] [--json out.json]
//
// Exit code 0 when every tensor meets the bound: fp32 max relative error (max |ours - ref| over
// max |ref|) <= 1e-4; bf16 <= 2e-2.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CARZero } from '../../src/model/carzero.js';
import { loadPrompts } from '../../src/text/index.js';
import { convertCheckpoint } from '../../src/weights/convert.js';

const args = process.argv.slice(2);
const root = args.find((a) => !a.startsWith('--')) ?? '/tmp/carzero-full';
const precision = (args[args.indexOf('--precision') + 1] === 'bf16' ? 'bf16' : 'fp32') as 'fp32' | 'bf16';
const jsonOut = args.includes('--json') ? args[args.indexOf('--json') + 1] : undefined;
if (!existsSync(join(root, 'carzero-full.ckpt'))) {
  console.error(`${root}/carzero-full.ckpt not found: run /usr/bin/python3 tools/reference/full_size.py --out ${root}`);
  process.exit(2);
}

function f32(file: string): Float32Array {
  const b = readFileSync(join(root, file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function compare(name: string, got: Float32Array, ref: Float32Array) {
  if (got.length !== ref.length) throw new Error(`${name}: ${got.length} values, reference has ${ref.length}`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < ref.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(got[i] - ref[i]));
    maxRef = Math.max(maxRef, Math.abs(ref[i]));
  }
  return { name, count: ref.length, max_abs_diff: maxDiff, max_abs_ref: maxRef, max_rel_err: maxDiff / (maxRef || 1) };
}

const index = JSON.parse(readFileSync(join(root, 'outputs', 'index.json'), 'utf8')) as {
  images: string[];
  classes: string[];
};
const imgIndex = JSON.parse(readFileSync(join(root, 'images', 'index.json'), 'utf8')) as {
  images: { name: string; file: string }[];
};
const work = mkdtempSync(join(tmpdir(), 'carzero-full-'));
try {
  const t0 = performance.now();
  const report = await convertCheckpoint({
    checkpoint: join(root, 'carzero-full.ckpt'),
    textModel: join(root, 'bert-full'),
    out: join(work, 'model'),
    vitHeads: 12,
    headHeads: 4,
  });
  const tConvert = performance.now() - t0;
  const model = await CARZero.load(join(work, 'model'), { device: 'cpu', precision });
  const files = index.images.map((n) => join(root, 'images', imgIndex.images.find((e) => e.name === n)!.file));
  const prompts = await loadPrompts(join(root, 'text', 'prompts.json'));
  if (prompts.classes.join() !== index.classes.join())
    throw new Error('prompt classes differ from the reference outputs');
  const t1 = performance.now();
  using img = await model.embedImages(files);
  using txt = await model.embedTexts(prompts.prompts);
  const s = await model.score(img, txt, { attention: true });
  const tRun = performance.now() - t1;
  const results = [
    compare('img_global', img.global.toArray() as Float32Array, f32('outputs/img_global.f32')),
    compare('img_local', img.local.toArray() as Float32Array, f32('outputs/img_local.f32')),
    compare('txt_sentence', txt.sentence.toArray() as Float32Array, f32('outputs/txt_sentence.f32')),
    compare('txt_words', txt.words.toArray() as Float32Array, f32('outputs/txt_words.f32')),
    compare('i2t', s.i2t, f32('outputs/i2t.f32')),
    compare('t2i', s.t2i, f32('outputs/t2i.f32')),
    compare('score', s.score, f32('outputs/score.f32')),
    compare('attention', s.attention!, f32('outputs/attention.f32')),
  ];
  model.dispose();
  const bound = precision === 'fp32' ? 1e-4 : 2e-2;
  const ok = results.every((r) => r.max_rel_err <= bound);
  const out = {
    precision,
    bound,
    ok,
    convert_ms: Math.round(tConvert),
    run_ms: Math.round(tRun),
    parameters: report.parameters,
    results,
  };
  for (const r of results)
    console.log(
      `${r.name.padEnd(13)} max rel err ${r.max_rel_err.toExponential(2)}  ` +
        `(max |diff| ${r.max_abs_diff.toExponential(2)}, max |ref| ${r.max_abs_ref.toExponential(2)})`,
    );
  console.log(
    `${precision}: ${ok ? 'PASS' : 'FAIL'} (bound ${bound}); convert ${(tConvert / 1000).toFixed(1)} s, ` +
      `embed+score ${(tRun / 1000).toFixed(1)} s`,
  );
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(out, null, 2) + '\n');
  process.exitCode = ok ? 0 : 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
