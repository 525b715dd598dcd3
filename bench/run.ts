// Benchmark driver: `npm run bench -- <suite> [options]`. Runs the native benchmark executables
// (built by `npm run build:native` into build/), saves their JSON under bench/out/, and rewrites
// the suite's section of bench/RESULTS.md (command, machine, date, table).
//
// Suites: gemm (fp32 and bf16 GEMM on the ViT-B/16 shapes and 2048^3, beside OpenBLAS sgemm),
// model (bench/model.ts), zeroshot (bench/zeroshot.ts: throughput, flat memory, precision study).
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
  const env = { ...process.env, OPENBLAS_NUM_THREADS: threads };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const r = spawnSync(exe, [...args, '--json', json], { stdio: 'inherit', env });
  if (r.status !== 0 || !existsSync(json)) return r.status ?? 1;
  const rep = JSON.parse(readFileSync(json, 'utf8')) as GemmReport;
  const lines = [
    '## GEMM (CPU)',
    '',
    `- command: \`npm run bench -- gemm ${args.join(' ')}\` (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, OPENBLAS_NUM_THREADS=${threads})`,
    `- machine: ${machine()}; kernels: ${rep.isa}${rep.bf16_dot ? ' + AVX512_BF16' : ''}; threads: ${rep.threads}; medians of ${rep.reps} interleaved repetitions`,
    `- OpenBLAS: ${rep.openblas}`,
    `- date: ${new Date().toISOString().slice(0, 10)}`,
    '',
    '| shape (M x N x K) | variant | ms | GFLOP/s | vs OpenBLAS | vs our f32 | max rel err |',
    '|---|---|---:|---:|---:|---:|---:|',
    ...rep.results.map(
      (x) =>
        `| ${x.shape} | ${x.variant} | ${x.ms.toFixed(2)} | ${x.gflops.toFixed(1)} | ${x.ratio_vs_openblas > 0 ? x.ratio_vs_openblas.toFixed(3) : '-'} | ${x.speedup_vs_ours_f32 > 0 ? x.speedup_vs_ours_f32.toFixed(2) : '-'} | ${x.rel_err.toExponential(1)}${x.ok ? '' : ' MISMATCH'} |`,
    ),
  ];
  replaceSection('gemm', lines.join('\n'));
  console.log(`bench gemm: wrote ${json} and updated bench/RESULTS.md`);
  return rep.results.every((x) => x.ok) ? 0 : 1;
}

async function runModel(args: string[]): Promise<number> {
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
    `- command: \`npm run bench -- model ${args.join(' ')}\` (full-size random weights from tools/reference/full_size.py in ${res.root}; OPENBLAS_* irrelevant here)`,
    `- machine: ${machine()}; threads: ${cpus().length}; medians of interleaved repetitions after warm-up`,
    ...res.notes.map((n) => `- ${n}`),
    `- date: ${new Date().toISOString().slice(0, 10)}`,
    '',
    '| what | implementation | batch | ms | throughput | vs onnxruntime |',
    '|---|---|---:|---:|---:|---:|',
    ...res.rows.map((r) => `| ${r.what} | ${r.impl} | ${r.batch} | ${r.ms.toFixed(1)} | ${r.per_s.toFixed(2)} ${r.unit} | ${r.vs_ort !== undefined ? r.vs_ort.toFixed(2) + 'x' : '-'} |`),
  ];
  replaceSection('model', lines.join('\n'));
  for (const r of res.rows) console.log(`${r.what.padEnd(34)} ${r.impl.padEnd(17)} B=${String(r.batch).padEnd(4)} ${r.ms.toFixed(1).padStart(9)} ms ${r.per_s.toFixed(2).padStart(9)} ${r.unit}${r.vs_ort !== undefined ? `  ${r.vs_ort.toFixed(2)}x onnxruntime` : ''}`);
  console.log('bench model: wrote bench/out/model.json and updated bench/RESULTS.md');
  return 0;
}

async function runZeroshot(args: string[]): Promise<number> {
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
    lines.push('', '### Flat memory: classifyStream over many images (TINY model)', '',
      'The tiny random test-fixture model (width 32) keeps 10,000 images to a few minutes; the pipeline\'s memory (read-ahead, batches, results) is the same code as with the full model, whose weights add a constant.', '',
      '| what | value |', '|---|---|', ...sec('rss').map((r) => `| ${r.what} | ${r.value} |`));
  }
  if (sec('throughput').length) {
    lines.push('', '### Throughput (full-size reference model, random weights)', '',
      'Reference images (small PNG/JPEG files) repeated; prompt embeddings computed once before timing; 192 classes = PadChest scale (synthetic prompts).', '',
      '| what | images/s |', '|---|---|', ...sec('throughput').map((r) => `| ${r.what} | ${r.value} |`));
  }
  if (sec('decode').length) {
    lines.push('', '### Decoding cost (why no worker_threads decode pool)', '', '| what | value |', '|---|---|', ...sec('decode').map((r) => `| ${r.what} | ${r.value} |`));
  }
  if (sec('precision').length) {
    lines.push('', '### Precision study: fp32 vs tf32 vs bf16 (full-size reference model, random weights)', '',
      `${(res.study as { n: number }).n} images (the reference images and seeded shifted/contrast/noise variants) x 14 classes; synthetic labels = a noisy median threshold of the fp32 score per class. Random weights: the AUROC values mean nothing, only the differences against fp32 do. Score spread (sd of all fp32 scores): ${((res.study as { score_sd_fp32: number }).score_sd_fp32).toExponential(2)}.`, '',
      '| precision | max abs diff vs fp32 | mean abs diff | Spearman (all cells) | Spearman (per class, mean) | macro AUROC | macro AUROC delta | max per-class AUROC delta | images/s |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|', ...sec('precision').map((r) => `| ${r.what} ${r.value}`));
  }
  replaceSection('zeroshot', lines.join('\n'));
  for (const r of res.rows) console.log(`[${r.section}] ${r.what}: ${r.value}`);
  console.log('bench zeroshot: wrote bench/out/zeroshot.json and updated bench/RESULTS.md');
  return 0;
}

const suites: Record<string, (args: string[]) => number | Promise<number>> = { gemm: runGemm, model: runModel, zeroshot: runZeroshot };
const [suite = 'all', ...rest] = process.argv.slice(2);
if (suite === 'all') {
  let code = 0;
  for (const [name, fn] of Object.entries(suites)) {
    console.log(`== ${name}`);
    code ||= await fn(rest);
  }
  process.exit(code);
} else if (suites[suite]) {
  process.exit(await suites[suite](rest));
} else {
  console.error(`bench: unknown suite '${suite}' (available: ${Object.keys(suites).join(', ')}, all)`);
  process.exit(2);
}
