// Where cuBLAS is looked for (issue 18, README "Requirements"): CARZERO_CUBLAS_PATH (a file or a
// folder), the loader's path, the CUDA toolkit ($CUDA_HOME), and the pip wheels PyTorch installs
// (nvidia-cublas: nvidia/cu13/lib; nvidia-cublas-cu12: nvidia/cublas/lib) in a virtualenv. The
// libraries are stubs built here (a libcublas.so.N that needs libcublasLt.so.N from its own folder,
// no RUNPATH), so the test also shows libcublasLt is opened from beside libcublas. `carzero info
// --json` reports the path the CUDA backend would load. Needs a C compiler, as a source build does.
import test from 'ava';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { bin } from './zeroshot-helpers.js';

const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'carzero-cublas-'));
test.after.always(() => rmSync(work, { recursive: true, force: true }));

// libcublasLt.so.<major> and libcublas.so.<major> (needing the first) in dir.
function stubPair(dir: string, major: number): string {
  mkdirSync(dir, { recursive: true });
  const src = join(work, 'stub.c');
  writeFileSync(src, 'int cz_stub_marker(void) { return 1; }\n');
  execFileSync('cc', [
    '-shared',
    '-fPIC',
    `-Wl,-soname,libcublasLt.so.${major}`,
    '-o',
    join(dir, `libcublasLt.so.${major}`),
    src,
  ]);
  execFileSync('cc', [
    '-shared',
    '-fPIC',
    `-Wl,-soname,libcublas.so.${major}`,
    '-o',
    join(dir, `libcublas.so.${major}`),
    src,
    `-L${dir}`,
    `-l:libcublasLt.so.${major}`,
    '-Wl,--no-as-needed',
  ]);
  return join(dir, `libcublas.so.${major}`);
}

// The environment without anything that would point at a real cuBLAS.
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: join(work, 'home') };
  for (const k of ['CARZERO_CUBLAS_PATH', 'CUDA_HOME', 'CUDA_PATH', 'CONDA_PREFIX', 'VIRTUAL_ENV', 'LD_LIBRARY_PATH'])
    delete env[k];
  return { ...env, ...extra };
}

async function cublasWith(extra: Record<string, string>): Promise<string | null> {
  const out = await run(process.execPath, [bin, 'info', '--json'], { env: cleanEnv(extra) });
  return JSON.parse(out.stdout).cuda.cublas;
}

let systemCublas: string | null = null;
test.before(async () => {
  systemCublas = await cublasWith({});
});

test('nvidia-cublas (CUDA 13) in a virtualenv: site-packages/nvidia/cu13/lib', async (t) => {
  if (systemCublas) return t.pass(`this machine has ${systemCublas} on the loader's path, which comes first`);
  const venv = join(work, 'venv13');
  const lib = stubPair(join(venv, 'lib', 'python3.12', 'site-packages', 'nvidia', 'cu13', 'lib'), 13);
  t.is(await cublasWith({ VIRTUAL_ENV: venv }), lib);
});

test('nvidia-cublas-cu12 in a virtualenv: site-packages/nvidia/cublas/lib', async (t) => {
  if (systemCublas) return t.pass(`this machine has ${systemCublas} on the loader's path, which comes first`);
  const venv = join(work, 'venv12');
  const lib = stubPair(join(venv, 'lib', 'python3.10', 'site-packages', 'nvidia', 'cublas', 'lib'), 12);
  t.is(await cublasWith({ VIRTUAL_ENV: venv }), lib);
});

test('the CUDA toolkit: $CUDA_HOME/lib64', async (t) => {
  if (systemCublas) return t.pass(`this machine has ${systemCublas} on the loader's path, which comes first`);
  const home = join(work, 'cuda-13.0');
  const lib = stubPair(join(home, 'lib64'), 13);
  t.is(await cublasWith({ CUDA_HOME: home }), lib);
});

test('CARZERO_CUBLAS_PATH, a file or a folder, comes before everything else', async (t) => {
  const dir = join(work, 'explicit');
  const lib = stubPair(dir, 12);
  t.is(await cublasWith({ CARZERO_CUBLAS_PATH: lib }), lib);
  t.is(await cublasWith({ CARZERO_CUBLAS_PATH: dir }), lib);
  // and a folder that holds no cuBLAS leaves the search to the rest (no crash, nothing found here)
  const empty = join(work, 'empty');
  mkdirSync(empty, { recursive: true });
  t.is(await cublasWith({ CARZERO_CUBLAS_PATH: empty }), systemCublas);
});

test('nothing found: the reason lists what was tried', async (t) => {
  if (systemCublas) return t.pass('this machine has a cuBLAS');
  const out = await run(process.execPath, [bin, 'info', '--json'], { env: cleanEnv({}) });
  t.regex(JSON.parse(out.stdout).cuda.reason, /cuBLAS not found \(tried libcublas\.so\.13, libcublas\.so\.12\)/);
});
