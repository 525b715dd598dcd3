// Benchmark driver: `npm run bench -- <suite> [options]`. Runs the native benchmark executables
// (built by `npm run build:native` into build/), saves their JSON under bench/out/, and rewrites
// the suite's section of bench/RESULTS.md (command, machine, date, table).
//
// Suites (`npm run bench` = `all` runs them in this order and writes bench/out/all.json):
//   gemm      fp32 and bf16 GEMM on the ViT-B/16 shapes and 2048^3, beside OpenBLAS sgemm
//   attention build/bench_attention (ViT, BERT and head attention forward/backward with the
//             model's real strides) beside plain eager PyTorch (/usr/bin/python3) when present
//   model     bench/model.ts (ViT, BERT, head, classify; onnxruntime-node beside the ViT)
//   zeroshot  bench/zeroshot.ts (throughput, flat memory, precision study)
//   decode    bench/decode.ts (image feed vs cv2.imread + INTER_AREA; classify on full-size files)
//   train     bench/train.ts (training steps/s, tiny config and one full-size step)
//   gpu       CUDA: bench_cuda + bench/gpu/model-bench.mjs, or skipped with the reason
// model, zeroshot and the full-size train step need the full-size reference model
// (/tmp/carzero-full); without it they are marked "not run" and the run goes on.
// `--quick` (any suite, or all) uses fewer repetitions.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'bench', 'out');
const resultsFile = join(root, 'bench', 'RESULTS.md');

interface GemmRow {
  shape: string;
  variant: string;
  ms: number;
  gflops: number;
  ratio_vs_openblas: number;
  speedup_vs_ours_f32: number;
  rel_err: number;
  ok: boolean;
}
interface GemmReport {
  cpu: string;
  isa: string;
  bf16_dot: boolean;
  threads: number;
  reps: number;
  openblas: string;
  results: GemmRow[];
}

function machine(): string {
  return `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}`;
}

function replaceSection(name: string, body: string): void {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  let text = existsSync(resultsFile) ? readFileSync(resultsFile, 'utf8') : '# Benchmark results\n';
  const block = `${begin}\n${body.trim()}\n${end}`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  text = i >= 0 && j > i ? text.slice(0, i) + block + text.slice(j + end.length) : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(resultsFile, text);
}

function runGemm(args: string[]): number {
  if (args.includes('--quick'))
    args = [...args.filter((a) => a !== '--quick'), ...(args.includes('--reps') ? [] : ['--reps', '5'])];
  const exe = join(root, 'build', 'bench_gemm');
  if (!existsSync(exe)) {
    console.error(`bench gemm: ${exe} not found; build it with \`npm run build:native\``);
    return 1;
  }
  let threads = String(cpus().length);
  const ti = args.indexOf('--threads');
  if (ti >= 0 && args[ti + 1]) threads = args[ti + 1];
  else args = [...args, '--threads', threads];
  mkdirSync(outDir, { recursive: true });
  const json = join(outDir, 'gemm.json');
  // OpenBLAS picks its kernels by CPUID only with OPENBLAS_CORETYPE unset (the environment here
  // sets it to work around old builds); its thread count matches ours.
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: threads };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const r = spawnSync(exe, [...args, '--json', json], { stdio: 'inherit', env });
  if (r.status !== 0 || !existsSync(json)) return r.status ?? 1;
  const rep = JSON.parse(readFileSync(json, 'utf8')) as GemmReport;
  const lines = [
    '## GEMM (CPU)',
    '',
    `- command: \`npm run bench -- gemm ${args.join(' ')}\` (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, ` +
      `OPENBLAS_NUM_THREADS=${threads})`,
    `- machine: ${machine()}; kernels: ${rep.isa}${rep.bf16_dot ? ' + AVX512_BF16' : ''}; ` +
      `threads: ${rep.threads}; medians of ${rep.reps} interleaved repetitions`,
    `- OpenBLAS: ${rep.openblas}`,
    `- date: ${new Date().toISOString().slice(0, 10)}`,
    '',
    '| shape (M x N x K) | variant | ms | GFLOP/s | vs OpenBLAS | vs our f32 | max rel err |',
    '|---|---|---:|---:|---:|---:|---:|',
    ...rep.results.map(
      (x) =>
        `| ${x.shape} | ${x.variant} | ${x.ms.toFixed(2)} | ${x.gflops.toFixed(1)} ` +
        `| ${x.ratio_vs_openblas > 0 ? x.ratio_vs_openblas.toFixed(3) : '-'} ` +
        `| ${x.speedup_vs_ours_f32 > 0 ? x.speedup_vs_ours_f32.toFixed(2) : '-'} ` +
        `| ${x.rel_err.toExponential(1)}${x.ok ? '' : ' MISMATCH'} |`,
    ),
  ];
  replaceSection('gemm', lines.join('\n'));
  console.log(`bench gemm: wrote ${json} and updated bench/RESULTS.md`);
  return rep.results.every((x) => x.ok) ? 0 : 1;
}

function optValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

function fullRoot(args: string[]): string {
  return optValue(args, '--root') ?? '/tmp/carzero-full';
}

/** Marks a suite's section "not run" (with why and how to get it run) and says so. */
function notRun(name: string, title: string, why: string): void {
  console.log(`bench ${name}: not run: ${why}`);
  replaceSection(
    name,
    [`## ${title}`, '', `- not run: ${why}`, `- date: ${new Date().toISOString().slice(0, 10)}`].join('\n'),
  );
}

const MAKE_FULL = (r: string) =>
  `make it with \`/usr/bin/python3 tools/reference/full_size.py --out ${r}\` (about 20 s; ` +
  'random full-size weights in the original format), then `npm run bench -- model`';

async function runModel(args: string[]): Promise<number> {
  if (args.includes('--quick'))
    args = [...args.filter((a) => a !== '--quick'), ...(args.includes('--reps') ? [] : ['--reps', '2'])];
  const r0 = fullRoot(args);
  if (!existsSync(join(r0, 'carzero-full.ckpt'))) {
    notRun(
      'model',
      'CARZero model (CPU)',
      `the full-size reference model ${r0}/carzero-full.ckpt is missing; ${MAKE_FULL(r0)}`,
    );
    return 0;
  }
  const { benchModel } = await import('./model.js');
  let res;
  try {
    res = await benchModel(args);
  } catch (e) {
    console.error(`bench model: ${(e as Error).message}`);
    return 1;
  }
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'model.json'), JSON.stringify(res, null, 2) + '\n');
  const lines = [
    '## CARZero model (CPU)',
    '',
    `- command: \`npm run bench -- model ${args.join(' ')}\` (full-size random weights from ` +
      `tools/reference/full_size.py in ${res.root}; OPENBLAS_* irrelevant here)`,
    `- machine: ${machine()}; threads: ${cpus().length}; medians of interleaved repetitions after warm-up, ` +
      "each ViT call after a 150 ms idle gap (onnxruntime's threads spin after a run)",
    ...res.notes.map((n) => `- ${n}`),
    `- date: ${new Date().toISOString().slice(0, 10)}`,
    '',
    '| what | implementation | batch | ms | throughput | vs onnxruntime |',
    '|---|---|---:|---:|---:|---:|',
    ...res.rows.map(
      (r) =>
        `| ${r.what} | ${r.impl} | ${r.batch} | ${r.ms.toFixed(1)} | ${r.per_s.toFixed(2)} ${r.unit} ` +
        `| ${r.vs_ort !== undefined ? r.vs_ort.toFixed(2) + 'x' : '-'} |`,
    ),
  ];
  replaceSection('model', lines.join('\n'));
  for (const r of res.rows)
    console.log(
      `${r.what.padEnd(34)} ${r.impl.padEnd(17)} B=${String(r.batch).padEnd(4)} ` +
        `${r.ms.toFixed(1).padStart(9)} ms ${r.per_s.toFixed(2).padStart(9)} ${r.unit}` +
        `${r.vs_ort !== undefined ? `  ${r.vs_ort.toFixed(2)}x onnxruntime` : ''}`,
    );
  console.log('bench model: wrote bench/out/model.json and updated bench/RESULTS.md');
  return 0;
}

async function runZeroshot(args: string[]): Promise<number> {
  if (args.includes('--quick')) {
    const q: [string, string][] = [
      ['--tiny-images', '1000'],
      ['--images', '8'],
      ['--study-images', '8'],
    ];
    args = [...args.filter((a) => a !== '--quick'), ...q.filter(([f]) => !args.includes(f)).flat()];
  }
  const r0 = fullRoot(args);
  if (!existsSync(join(r0, 'carzero-model', 'model.safetensors'))) {
    notRun(
      'zeroshot',
      'Zero-shot classification (CPU)',
      `the converted full-size reference model ${r0}/carzero-model is missing; ${MAKE_FULL(r0)} (which converts it)`,
    );
    return 0;
  }
  const { benchZeroshot } = await import('./zeroshot.js');
  mkdirSync(outDir, { recursive: true });
  let res;
  try {
    res = await benchZeroshot(args);
  } catch (e) {
    console.error(`bench zeroshot: ${(e as Error).message}`);
    return 1;
  }
  writeFileSync(join(outDir, 'zeroshot.json'), JSON.stringify(res, null, 2) + '\n');
  const sec = (s: string) => res.rows.filter((r) => r.section === s);
  const lines = [
    '## Zero-shot classification (CPU)',
    '',
    `- command: \`npm run bench -- zeroshot ${args.join(' ')}\` (bench/zeroshot.ts)`,
    `- machine: ${machine()}; threads: ${cpus().length}; shared with other jobs, single runs (not medians)`,
    `- date: ${new Date().toISOString().slice(0, 10)}`,
    ...res.notes.map((n) => `- ${n}`),
  ];
  if (sec('rss').length) {
    lines.push(
      '',
      '### Flat memory: classifyStream over many images (TINY model)',
      '',
      'The tiny random test-fixture model (width 32) keeps 10,000 images to a few minutes; ' +
        "the pipeline's memory (read-ahead, batches, results) is the same code as with the full model, " +
        'whose weights add a constant.',
      '',
      '| what | value |',
      '|---|---|',
      ...sec('rss').map((r) => `| ${r.what} | ${r.value} |`),
    );
  }
  if (sec('throughput').length) {
    lines.push(
      '',
      '### Throughput (full-size reference model, random weights)',
      '',
      'Reference images (small PNG/JPEG files) repeated; prompt embeddings computed once before timing; ' +
        '192 classes = PadChest scale (synthetic prompts).',
      '',
      '| what | images/s |',
      '|---|---|',
      ...sec('throughput').map((r) => `| ${r.what} | ${r.value} |`),
    );
  }
  if (sec('decode').length) {
    lines.push(
      '',
      '### Decoding cost (why no worker_threads decode pool)',
      '',
      '| what | value |',
      '|---|---|',
      ...sec('decode').map((r) => `| ${r.what} | ${r.value} |`),
    );
  }
  if (sec('precision').length) {
    lines.push(
      '',
      '### Precision study: fp32 vs tf32 vs bf16 (full-size reference model, random weights)',
      '',
      `${(res.study as { n: number }).n} images (the reference images and seeded shifted/contrast/noise variants) ` +
        'x 14 classes; synthetic labels = a noisy median threshold of the fp32 score per class. ' +
        'Random weights: the AUROC values mean nothing, only the differences against fp32 do. ' +
        'Score spread (sd of all fp32 scores): ' +
        `${(res.study as { score_sd_fp32: number }).score_sd_fp32.toExponential(2)}.`,
      '',
      '| precision | max abs diff vs fp32 | mean abs diff | Spearman (all cells) | Spearman (per class, mean) ' +
        '| macro AUROC | macro AUROC delta | max per-class AUROC delta | images/s |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...sec('precision').map((r) => `| ${r.what} ${r.value}`),
    );
  }
  replaceSection('zeroshot', lines.join('\n'));
  for (const r of res.rows) console.log(`[${r.section}] ${r.what}: ${r.value}`);
  console.log('bench zeroshot: wrote bench/out/zeroshot.json and updated bench/RESULTS.md');
  return 0;
}

interface AttnRow {
  shape: string;
  what?: string;
  pass: string;
  B: number;
  NH: number;
  Tq: number;
  Tk: number;
  HS: number;
  ms: number;
  ms_min: number;
  gflops: number;
  rel_err?: number;
}
interface AttnReport {
  cpu: string;
  isa: string;
  threads: number;
  reps: number;
  warmup: number;
  ok: boolean;
  results: AttnRow[];
}

function runAttention(args: string[]): number {
  const quick = args.includes('--quick');
  const reps = optValue(args, '--reps') ?? (quick ? '5' : '15');
  const threads = optValue(args, '--threads') ?? String(cpus().length);
  const exe = join(root, 'build', 'bench_attention');
  if (!existsSync(exe)) {
    console.error(
      `bench attention: ${exe} not found; build it with \`npm run build:native\` ` +
        '(CMake builds every native/bench/*.cpp)',
    );
    return 1;
  }
  mkdirSync(outDir, { recursive: true });
  const json = join(outDir, 'attention.json');
  const r = spawnSync(exe, ['--reps', reps, '--warmup', '2', '--threads', threads, '--json', json], {
    stdio: 'inherit',
  });
  if (r.status !== 0 || !existsSync(json)) {
    console.error(`bench attention: bench_attention failed (exit ${r.status})`);
    return r.status || 1;
  }
  const rep = JSON.parse(readFileSync(json, 'utf8')) as AttnReport;
  // PyTorch peer: same shapes, plain eager softmax(QK^T)V, same thread count, run right after.
  const py = '/usr/bin/python3';
  const tjson = join(outDir, 'attention-torch.json');
  let torchNote: string;
  let torch: { torch: string; threads: number; results: AttnRow[] } | undefined;
  if (!existsSync(py)) torchNote = `PyTorch peer: skipped (${py} not found)`;
  else {
    const t = spawnSync(
      py,
      [
        join(root, 'bench', 'peers', 'torch_attention.py'),
        '--reps',
        reps,
        '--warmup',
        '2',
        '--threads',
        threads,
        '--json',
        tjson,
      ],
      { stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8', timeout: 300_000 },
    );
    if (t.status === 0 && existsSync(tjson)) {
      torch = JSON.parse(readFileSync(tjson, 'utf8'));
      torchNote =
        `PyTorch peer: torch ${torch!.torch} (${py}), ${torch!.threads} threads, ` +
        'eager softmax(Q K^T * scale + mask) V on views of the same packed buffers, backward by autograd ' +
        '(keeps the probabilities instead of recomputing them); run after ours, not interleaved';
    } else {
      const why =
        t.status === 3
          ? (t.stderr || '').trim() || 'torch not importable'
          : `exit ${t.status ?? t.signal}: ${(t.stderr || '').trim().split('\n').slice(-1)[0]}`;
      const install = `install it for Debian's ${py}, e.g. \`apt-get install python3-torch\``;
      torchNote = `PyTorch peer: skipped (${why}; ${install})`;
    }
  }
  console.log(`bench attention: ${torchNote}`);
  const peer = (x: AttnRow) => torch?.results.find((y) => y.shape === x.shape && y.pass === x.pass);
  const lines = [
    '## Attention (CPU)',
    '',
    `- command: \`npm run bench -- attention ${args.join(' ')}\` (build/bench_attention, ` +
      "cpu_ops().attention_forward/backward with the model's strides)",
    `- machine: ${machine()}; kernels: ${rep.isa}; threads: ${rep.threads}; ` +
      `medians of ${rep.reps} repetitions after ${rep.warmup} warm-up (forward and backward alternate)`,
    '- GFLOP/s: forward 4·B·NH·Tq·Tk·HS, backward 2.5x that (QK^T recomputed, dV, dP, dQ, dK), ' +
      'over all Tk keys even where masked; forward stores lse (as in training)',
    `- ${torchNote}`,
    `- date: ${new Date().toISOString().slice(0, 10)}`,
    '',
    '| shape | layout | pass | B | NH x HS | Tq x Tk | ms | GFLOP/s | torch ms | torch GFLOP/s | vs torch ' +
      '| max rel err (fwd) |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rep.results.map((x) => {
      const p = peer(x);
      return (
        `| ${x.shape} | ${x.what ?? ''} | ${x.pass} | ${x.B} | ${x.NH} x ${x.HS} | ${x.Tq} x ${x.Tk} ` +
        `| ${x.ms.toFixed(2)} | ${x.gflops.toFixed(1)} | ${p ? p.ms.toFixed(2) : '-'} ` +
        `| ${p ? p.gflops.toFixed(1) : '-'} | ${p ? (p.ms / x.ms).toFixed(2) + 'x' : '-'} ` +
        `| ${x.rel_err !== undefined ? x.rel_err.toExponential(1) : '-'} |`
      );
    }),
  ];
  replaceSection('attention', lines.join('\n'));
  console.log(`bench attention: wrote ${json}${torch ? ` and ${tjson}` : ''} and updated bench/RESULTS.md`);
  return rep.ok ? 0 : 1;
}

async function runTrain(args: string[]): Promise<number> {
  const { benchTrain } = await import('./train.js');
  let res;
  try {
    res = await benchTrain(args);
  } catch (e) {
    console.error(`bench train: ${(e as Error).stack ?? (e as Error).message}`);
    return 1;
  }
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'train.json'), JSON.stringify(res, null, 2) + '\n');
  const lines = [
    '## Training step (CPU)',
    '',
    `- command: \`npm run bench -- train ${args.join(' ')}\` (bench/train.ts)`,
    `- machine: ${machine()}; threads: ${cpus().length}; fp32`,
    '- one step = zeroGrad + forwardBackward (dropout off, one fixed batch) + ops.clipGradNorm(0.25) ' +
      '+ ops.adamUpdate per parameter (the step of test/train-step.test.ts)',
    ...res.notes.map((n) => `- ${n}`),
    `- date: ${new Date().toISOString().slice(0, 10)}`,
    '',
    '| config | parameters | batch | ms / step | steps/s | images/s | forwardBackward ms | clip + Adam ms ' +
      '| loss first -> last |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...res.rows.map(
      (r) =>
        `| ${r.config} | ${(r.params / 1e6).toFixed(2)} M | ${r.batch} | ${r.ms.toFixed(1)} ` +
        `| ${r.steps_per_s.toFixed(3)} | ${r.images_per_s.toFixed(2)} | ${r.fb_ms.toFixed(1)} ` +
        `| ${r.opt_ms.toFixed(1)} | ${r.loss_first.toFixed(4)} -> ${r.loss_last.toFixed(4)} |`,
    ),
  ];
  replaceSection('train', lines.join('\n'));
  console.log('bench train: wrote bench/out/train.json and updated bench/RESULTS.md');
  return 0;
}

async function runGpu(args: string[]): Promise<number> {
  let cuda: {
    available: boolean;
    reason: string | null;
    devices: number;
    driver_version: number;
    cublas: string | null;
  };
  try {
    const { info } = await import('../src/info.js');
    cuda = info().cuda;
  } catch (e) {
    cuda = {
      available: false,
      reason: `carzero info failed: ${(e as Error).message}`,
      devices: 0,
      driver_version: 0,
      cublas: null,
    };
  }
  mkdirSync(outDir, { recursive: true });
  const date = `- date: ${new Date().toISOString().slice(0, 10)}`;
  if (!cuda.available) {
    const msg =
      `gpu: skipped — ${cuda.reason ?? 'CUDA unavailable'}; run scripts/gpu-model-check.sh on a GPU machine ` +
      '(bench/README.md, GPU checks)';
    console.log(msg);
    writeFileSync(
      join(outDir, 'gpu.json'),
      JSON.stringify({ skipped: true, reason: cuda.reason, cuda }, null, 2) + '\n',
    );
    replaceSection('gpu', ['## GPU', '', `- ${msg}`, `- machine: ${machine()}`, date].join('\n'));
    return 0;
  }
  console.log(`gpu: CUDA available (${cuda.devices} device(s), driver ${cuda.driver_version}, ${cuda.cublas})`);
  const notes: string[] = [];
  let code = 0;
  const exe = join(root, 'build', 'bench_cuda');
  if (!existsSync(exe))
    notes.push('bench_cuda: not built (build/bench_cuda missing: `npm run build:native` with nvcc)');
  else {
    const r = spawnSync(exe, [], { stdio: 'inherit', timeout: 600_000 });
    notes.push(`bench_cuda: exit ${r.status ?? r.signal} (output above / in the log)`);
    if (r.status !== 0) code = 1;
  }
  const model = join(fullRoot(args), 'carzero-model');
  if (!existsSync(join(root, 'dist', 'index.js'))) notes.push('model-bench: dist/ missing (`npm run build:ts`)');
  else if (!existsSync(join(model, 'model.safetensors')))
    notes.push(`model-bench: ${model} missing; ${MAKE_FULL(fullRoot(args))}`);
  else {
    const j = join(outDir, 'gpu-model.json');
    const r = spawnSync(
      process.execPath,
      [
        join(root, 'bench', 'gpu', 'model-bench.mjs'),
        '--model',
        model,
        '--device',
        'cuda',
        '--images',
        join(fullRoot(args), 'images'),
        '--json',
        j,
      ],
      { stdio: 'inherit', timeout: 600_000 },
    );
    notes.push(`model-bench: exit ${r.status ?? r.signal}; rows in bench/out/gpu-model.json`);
    if (r.status !== 0) code = 1;
  }
  writeFileSync(join(outDir, 'gpu.json'), JSON.stringify({ skipped: false, cuda, notes }, null, 2) + '\n');
  replaceSection(
    'gpu',
    [
      '## GPU',
      '',
      `- CUDA available: ${cuda.devices} device(s), driver ${cuda.driver_version}, ${cuda.cublas}`,
      ...notes.map((n) => `- ${n}`),
      `- machine: ${machine()}`,
      date,
    ].join('\n'),
  );
  return code;
}

async function runDecode(args: string[]): Promise<number> {
  if (args.includes('--quick')) args = [...args.filter((a) => a !== '--quick'), '--reps', '3', '--images', '8'];
  const { benchDecode } = await import('./decode.js');
  mkdirSync(outDir, { recursive: true });
  let res;
  try {
    res = await benchDecode(root, args);
  } catch (e) {
    console.error(`bench decode: ${(e as Error).message}`);
    return 1;
  }
  writeFileSync(join(outDir, 'decode.json'), JSON.stringify(res, null, 2) + '\n');
  const f1 = (v: number) => v.toFixed(1);
  const f2 = (v: number) => v.toFixed(2);
  const lines = [
    '## Image feed: decode + preprocess vs OpenCV (CPU)',
    '',
    `- command: \`npm run bench -- decode ${args.join(' ')}\` (bench/decode.ts, peer bench/peers/cv2_decode.py)`,
    `- machine: ${machine()}; shared with other jobs; medians of ${res.reps} runs after a warm-up, ` +
      `one thread each (OpenCV ${res.opencv}, cv2.setNumThreads(1); the faster of its runs before and after ours)`,
    `- binary: ${res.codecs}`,
    `- date: ${new Date().toISOString().slice(0, 10)}`,
    '',
    'Read + decode + resize + pad + crop + normalise of one file (ms/image; ratio < 1: faster than OpenCV):',
    '',
    '| format | file | native feed | JavaScript decoders | cv2.imread(p, 0) + INTER_AREA | native / cv2 | JS / cv2 |',
    '|---|---|---:|---:|---:|---:|---:|',
    ...res.decode.map(
      (r) =>
        `| ${r.format} | ${r.file} | ${f1(r.native_ms)} | ${f1(r.js_ms)} | ${f1(r.cv2_ms)} ` +
        `| ${f2(r.native_vs_cv2)}x | ${f2(r.js_vs_cv2)}x |`,
    ),
    '',
    ...(res.classify.length
      ? [
          'Classify end to end: what a 2048 x 2500 file costs beyond a 256 x 256 one (bar: ' +
            "<= 0.75x cv2's single-thread time):",
          '',
          '| format | images | full-size run (s) | 256 x 256 run (s) | extra ms/image | cv2 ms/image | extra / cv2 |',
          '|---|---:|---:|---:|---:|---:|---:|',
          ...res.classify.map(
            (r) =>
              `| ${r.format} | ${r.images} | ${f2(r.full_s)} | ${f2(r.small_s)} | ${f1(r.extra_ms_per_image)} ` +
              `| ${f1(r.cv2_ms)} | ${f2(r.extra_vs_cv2)}x |`,
          ),
          '',
        ]
      : []),
    ...res.notes.map((n) => `- ${n}`),
  ];
  replaceSection('decode', lines.join('\n'));
  console.log(lines.join('\n'));
  return 0;
}

const suites: Record<string, (args: string[]) => number | Promise<number>> = {
  gemm: runGemm,
  attention: runAttention,
  model: runModel,
  zeroshot: runZeroshot,
  decode: runDecode,
  train: runTrain,
  gpu: runGpu,
};
// `all` passes only --quick to the suites; each suite's own options are for `npm run bench -- <suite>`.
// Each suite's default sizes; a full run takes about 6 minutes on the shared 2-core machine.
const allArgs: Record<string, string[]> = {
  gemm: ['--reps', '11'],
  attention: ['--reps', '15'],
  model: ['--reps', '5'],
  zeroshot: [],
  decode: [],
  train: [],
  gpu: [],
};
const [suite = 'all', ...rest] = process.argv.slice(2);
if (suite === 'all' || suite === '--quick') {
  const quick = suite === '--quick' || rest.includes('--quick');
  const unknown = rest.filter((a) => a !== '--quick');
  if (unknown.length)
    console.log(`bench all: ignoring ${unknown.join(' ')} (options are per suite: npm run bench -- <suite> ...)`);
  const t0 = performance.now();
  const summary: { suite: string; args: string[]; exit: number; seconds: number; status: string; json?: string }[] = [];
  let code = 0;
  for (const [name, fn] of Object.entries(suites)) {
    console.log(`\n== ${name}`);
    const args = quick ? ['--quick'] : allArgs[name];
    const t = performance.now();
    let c: number;
    try {
      c = await fn(args);
    } catch (e) {
      console.error(`bench ${name}: ${(e as Error).stack ?? (e as Error).message}`);
      c = 1;
    }
    const section = existsSync(resultsFile) ? readFileSync(resultsFile, 'utf8') : '';
    const m = new RegExp(
      `<!-- ${name}:begin -->[\\s\\S]*?- (not run: [^\\n]*|gpu: skipped[^\\n]*)[\\s\\S]*?<!-- ${name}:end -->`,
    ).exec(section);
    const status = c !== 0 ? 'failed' : m ? m[1] : 'ok';
    const json = join(outDir, `${name}.json`);
    summary.push({
      suite: name,
      args,
      exit: c,
      seconds: Math.round((performance.now() - t) / 100) / 10,
      status,
      json: existsSync(json) ? `bench/out/${name}.json` : undefined,
    });
    console.log(
      `== ${name}: ${status.startsWith('gpu: ') ? status.slice(5) : status} ` +
        `(${((performance.now() - t) / 1000).toFixed(1)} s)`,
    );
    if (c !== 0) code = 1;
  }
  mkdirSync(outDir, { recursive: true });
  const total = Math.round((performance.now() - t0) / 100) / 10;
  writeFileSync(
    join(outDir, 'all.json'),
    JSON.stringify(
      { date: new Date().toISOString(), machine: machine(), quick, seconds: total, exit: code, suites: summary },
      null,
      2,
    ) + '\n',
  );
  const brief = (status: string) =>
    status.startsWith('not run') ? 'not run' : status.startsWith('gpu: skipped') ? 'skipped' : status;
  console.log(
    `\nbench all: ${summary.map((s) => `${s.suite} ${brief(s.status)}`).join(', ')}; ` +
      `${total} s; wrote bench/out/all.json`,
  );
  process.exit(code);
} else if (suites[suite]) {
  process.exit(await suites[suite](rest));
} else {
  console.error(`bench: unknown suite '${suite}' (available: ${Object.keys(suites).join(', ')}, all)`);
  process.exit(2);
}
