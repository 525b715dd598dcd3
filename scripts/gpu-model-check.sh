#!/usr/bin/env bash
# gpu-model-check.sh: the model-level GPU checks in one run, from carried prebuilt files (it never
# compiles and needs no system Node): on the GPU machine, from the repository root,
#
#   bash scripts/gpu-model-check.sh            # after scripts/gpu-stage.sh, with carry [".gpu"]
#
# Steps (each with its own time limit, all inside CARZERO_GPU_CHECK_BUDGET_S, default 540 s):
#   setup    unpack .gpu/node.xz (a Node binary) and .gpu/bin.tar.xz (dist/, build/Release/
#            carzero.node, build/{bench_model,test_ops,bench_cuda}); node_modules -> .gpu/node_modules
#            (production dependencies only); CARZERO_CUBLAS_PATH from PyTorch's cuBLAS
#   info     node dist/cli/main.js info --json
#   autocast_tiny  tools/reference/autocast_bf16.py on test/fixtures/tiny on the device: PyTorch's
#            bf16 autocast errors there (the bf16 bar, issue 15; docs/PRECISION.md)
#   tf32_tiny  the same script with --tf32: PyTorch's fp32 model with allow_tf32 on the device (the
#            tf32 bar)
#   tiny     tools/parity/full-size.mjs on test/fixtures/tiny, fp32 (bound 1e-4), bf16 (each
#            tensor's relative Frobenius error at most autocast_tiny's) and tf32 (at most tf32_tiny's)
#   ref      the full-size PyTorch reference (tools/parity/gen_reference.py) unless present
#   autocast tools/reference/autocast_bf16.py on the full-size reference, on the device
#   tf32_ref the same with --tf32
#   parity   tools/parity/full-size.mjs: convert, then bf16 (at most autocast's error, tensor by
#            tensor; 2e-2 max relative error if the autocast step could not run) and fp32 (bound
#            1e-4) on the device; if our image decoding differs from this machine's cv2, again on
#            the reference's pixels (--ref-pixels) to isolate the model
#   oom      tools/parity/oom-check.mjs: a 1 TiB request throws CZ_ERR_OUT_OF_MEMORY, the process and
#            the loaded model keep working
#   nccl     tools/parity/nccl-check.mjs: the NCCL binding in a group of one (CARZERO_NCCL_PATH
#            from PyTorch's wheel)
#   train    tools/parity/train-device.mjs: a few trainer steps (tiny model, phantom data) on cuda
#            vs the CPU at fp32, bf16 and fp16
#   bench_train / bench_torch_train  a full-size training step at batch 64/128/256 (ours bf16,
#            fp16, fp32; PyTorch AMP fp16 and bf16) with nvidia-smi peak memory
#   bench_native  build/bench_model --device DEV (C++, random full-size weights, B up to 256)
#   bench_node    bench/gpu/model-bench.mjs (the package: embed, score, classify images/s)
#   feed     bench/gpu/feed-bench.mjs (issue 14): classifyStream through the decode pool (every
#            core) on N paths of the staged 2048 x 2500 and 256 x 256 PNGs, bf16, beside one
#            thread's decode time, ours and (where the python has cv2) OpenCV's; verdicts
#            feed_full (>= cores x cv2's single-thread rate) and feed_small (>= 3,000 images/s)
#   bench_torch   bench/gpu/torch_model_bench.py (timm ViT-B/16 eager bf16/fp32/tf32 with SDPA,
#                 torch.compile bf16; BERT-base L = 97 eager): the verdict's speed_vit_bf16,
#                 speed_vit_tf32 and speed_bert_bf16 ratios against bench_node (precisions fp32,
#                 tf32, bf16; BERT at the model batch)
#   ops      build/test_ops -b DEV (op parity vs float64), run right after info; with
#            CARZERO_GPU_CHECK_OPS=full, scripts/gpu-check.sh runs after the trainer check for the
#            rest (bench_cuda, SDPA bench, compute-sanitizer; limit CARZERO_GPU_CHECK_OPS_FULL_S,
#            default 200 s); =none skips both
#   report   $OUT/gpu_model_report.json (every step's JSON and the verdicts), $OUT/check.log,
#            $OUT/logs.tar.gz (each step's log and raw JSON)
#
# Environment:
#   CARZERO_GPU_CHECK_DEVICE  cuda (default) | cpu: the CPU rehearsal (small batches, no torch.compile)
#   CARZERO_GPU_REF           reference root (default /tmp/carzero-full; generated when missing)
#   CARZERO_GPU_CHECK_BUDGET_S  total seconds (default 540)
#   CARZERO_GPU_CHECK_BATCH   model batch for the benches (cuda 256, cpu 2)
#   CARZERO_GPU_CHECK_SKIP    space-separated step names to skip (e.g. "bench_torch ops")
#   CARZERO_GPU_CHECK_OPS     parity (default) | full | none
#   CARZERO_GPU_CHECK_TORCH_MODES  bench_torch modes (default eager,compile)
#   CARZERO_GPU_CHECK_TRAIN_PRECISIONS  bench_train precisions (default bf16,fp16,fp32)
#   CARZERO_GPU_CHECK_PROFILE  1: a bf16 training step at batch 256 under nsys (kernel time summary)
#   CARZERO_PYTHON            python with torch (default: python3 if it imports torch, else /usr/bin/python3)
# Exit status: 0 all parity checks passed, 1 a parity check (model or op level) failed or could not
# run (steps skipped on request do not count), 2 setup failed.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
T0=$(date +%s)
DEV=${CARZERO_GPU_CHECK_DEVICE:-cuda}
BUDGET=${CARZERO_GPU_CHECK_BUDGET_S:-540}
REF=${CARZERO_GPU_REF:-/tmp/carzero-full}
OPS_MODE=${CARZERO_GPU_CHECK_OPS:-parity}
SKIP=" ${CARZERO_GPU_CHECK_SKIP:-} "
OUTDIR=${OUT:-$ROOT/bench/out/gpu-model}
WORK=${CARZERO_GPU_CHECK_WORK:-/tmp/carzero-gpu-work}
MODEL_DIR=$WORK/model
case "$DEV" in
  cuda) BATCH=${CARZERO_GPU_CHECK_BATCH:-256}; NATIVE_BATCHES="1,8,32,$BATCH"; REPS=10; WARMUP=2
        TORCH_MODES=${CARZERO_GPU_CHECK_TORCH_MODES:-eager,compile}; E2E=64
        FEED_FULL=512; FEED_SMALL=4096; FEED_REPS=3 ;;
  cpu)  BATCH=${CARZERO_GPU_CHECK_BATCH:-2}; NATIVE_BATCHES="1,$BATCH"; REPS=1; WARMUP=1
        TORCH_MODES=${CARZERO_GPU_CHECK_TORCH_MODES:-eager,compile}; E2E=2
        FEED_FULL=4; FEED_SMALL=8; FEED_REPS=1 ;;
  *) echo "gpu-model-check: CARZERO_GPU_CHECK_DEVICE must be cuda or cpu, got $DEV" >&2; exit 2 ;;
esac
rm -rf "$WORK/logs"
mkdir -p "$OUTDIR" "$WORK/logs"
LOGS=$WORK/logs
exec > >(tee "$LOGS/check.log") 2>&1
log() { echo "[gpu-model-check +$(( $(date +%s) - T0 ))s] $*"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
: > "$LOGS/steps.tsv"

# step NAME LIMIT_S CMD...: runs CMD with min(LIMIT, budget left) seconds, output to logs/NAME.log
# (and to the console), records "NAME rc seconds limit" in steps.tsv. Returns the command's rc
# (124/137 on timeout, 125 skipped for lack of time, 126 skipped by request).
step() {
  local name=$1 limit=$2; shift 2
  if [[ "$SKIP" == *" $name "* ]]; then
    log "step $name: skipped (CARZERO_GPU_CHECK_SKIP)"
    printf '%s\t126\t0\t0\n' "$name" >> "$LOGS/steps.tsv"
    return 126
  fi
  local l; l=$(left)
  if [ "$l" -lt 15 ]; then
    log "step $name: SKIPPED, only ${l}s of the budget left"
    printf '%s\t125\t0\t0\n' "$name" >> "$LOGS/steps.tsv"
    return 125
  fi
  [ "$limit" -gt "$l" ] && limit=$l
  log "step $name (limit ${limit}s): $*"
  local s; s=$(date +%s)
  set -o pipefail
  timeout -k 5 "$limit" "$@" 2>&1 | tee "$LOGS/$name.log"
  local rc=$?
  set +o pipefail
  local d=$(( $(date +%s) - s ))
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$d" "$limit" >> "$LOGS/steps.tsv"
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    log "step $name: TIMED OUT after ${d}s"
  else
    log "step $name: rc=$rc in ${d}s"
  fi
  return $rc
}

# ---------------------------------------------------------------- setup
log "repo $ROOT, device $DEV, budget ${BUDGET}s, out $OUTDIR, work $WORK"
log "host: $(uname -srm), $(nproc) cpus, $(ldd --version 2>/dev/null | head -1)"
command -v nvidia-smi >/dev/null \
  && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 \
  | sed 's/^/  gpu: /'
SETUP_FAIL=""
if [ -f .gpu/MANIFEST.json ]; then
  log "staged files: $(tr -d '\n' < .gpu/MANIFEST.json | head -c 600)"
fi
# Python with torch.
PY=${CARZERO_PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3 /usr/bin/python3; do
    if "$c" -c 'import torch' >/dev/null 2>&1; then PY=$c; break; fi
  done
fi
PY_VERSIONS='import sys, torch; print(sys.version.split()[0], "torch", torch.__version__,
  "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
[ -n "$PY" ] && log "python: $PY ($("$PY" -c "$PY_VERSIONS" 2>&1 | tail -1))" \
  || log "no python with torch: ref and bench_torch will be skipped"
# xz may be missing on a bare image: python's lzma then.
unxz() {  # unxz FILE: decompressed bytes to stdout
  if command -v xz >/dev/null 2>&1; then xz -dc "$1"
  elif [ -n "$PY" ]; then
    "$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"
  else echo "no xz and no python to unpack $1" >&2; return 1; fi
}
# Node: the carried binary, else one on PATH.
NODE=""
if [ -f .gpu/node.xz ]; then
  NODE_DIR=/tmp/carzero-node
  want=$(sha256sum .gpu/node.xz | cut -c1-16)
  if [ ! -x "$NODE_DIR/node" ] || [ "$(cat "$NODE_DIR/.src" 2>/dev/null)" != "$want" ]; then
    mkdir -p "$NODE_DIR" && unxz .gpu/node.xz > "$NODE_DIR/node.tmp" && chmod +x "$NODE_DIR/node.tmp" \
      && mv "$NODE_DIR/node.tmp" "$NODE_DIR/node" && echo "$want" > "$NODE_DIR/.src" \
      || SETUP_FAIL="$SETUP_FAIL node-unpack"
  fi
  NODE=$NODE_DIR/node
  export PATH="$NODE_DIR:$PATH"
else
  NODE=$(command -v node || true)
fi
if [ -z "$NODE" ] || ! "$NODE" --version >/dev/null 2>&1; then
  log "SETUP: no runnable node (carried .gpu/node.xz or PATH): $("$NODE" --version 2>&1 | head -2)"
  SETUP_FAIL="$SETUP_FAIL node"
else
  log "node: $NODE $("$NODE" --version)"
fi
# Compiled package files: .gpu/bin.tar.xz unless this tree already has its own (a dev checkout).
if [ -f .gpu/bin.tar.xz ]; then
  stamp=$(sha256sum .gpu/bin.tar.xz | cut -c1-16)
  cur=$(cat build/.gpu-stage-stamp 2>/dev/null || true)
  if [ "$cur" = "$stamp" ]; then
    log "dist/ and build/ binaries: already unpacked from .gpu/bin.tar.xz ($stamp)"
  elif [ "${CARZERO_GPU_CHECK_UNPACK:-auto}" = 1 ] || [ -n "$cur" ] || [ ! -e dist/index.js ] \
    || [ ! -e build/Release/carzero.node ]; then
    log "unpacking .gpu/bin.tar.xz ($stamp)"
    rm -rf dist
    if unxz .gpu/bin.tar.xz | tar -xf - ; then
      mkdir -p build && echo "$stamp" > build/.gpu-stage-stamp
      sha256sum -c --quiet .gpu/bin.sha256 || SETUP_FAIL="$SETUP_FAIL bin-checksum"
    else
      SETUP_FAIL="$SETUP_FAIL bin-unpack"
    fi
  else
    log "NOTE: using this tree's own dist/ and build/, not .gpu/bin.tar.xz" \
      "(CARZERO_GPU_CHECK_UNPACK=1 forces it)"
  fi
fi
if [ ! -d node_modules ] || [ -L node_modules ]; then
  if [ -d .gpu/node_modules ]; then
    ln -sfn .gpu/node_modules node_modules
  else
    SETUP_FAIL="$SETUP_FAIL node_modules"
  fi
fi
log "node_modules: $(readlink node_modules || echo 'own directory') ($(ls node_modules 2>/dev/null | tr '\n' ' '))"
for f in dist/index.js dist/cli/main.js build/Release/carzero.node; do
  [ -e "$f" ] || { log "SETUP: missing $f"; SETUP_FAIL="$SETUP_FAIL $f"; }
done
BIN=${CARZERO_BUILD_DIR:-$ROOT/build}
# cuBLAS: keep a given path, else PyTorch's (pip wheels: nvidia/cublas/lib or nvidia/cu13/lib), else any.
if [ "$DEV" = cuda ] && [ -z "${CARZERO_CUBLAS_PATH:-}" ]; then
  if [ -n "$PY" ]; then
    CARZERO_CUBLAS_PATH=$("$PY" - <<'PY' 2>/dev/null
import glob, os, site
dirs = [d for d in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(d)]
c = []
for d in dirs:
    c += glob.glob(os.path.join(d, "nvidia", "**", "libcublas.so.1[23]*"), recursive=True)
    c += glob.glob(os.path.join(d, "torch", "lib", "libcublas.so.1[23]*"))
c = sorted(p for p in c if "Lt" not in os.path.basename(p))
c.sort(key=lambda p: ".so.13" not in p)  # prefer cuBLAS 13
print(c[0] if c else "")
PY
)
  fi
  if [ -z "${CARZERO_CUBLAS_PATH:-}" ]; then
    CARZERO_CUBLAS_PATH=$(find / \( -path /proc -o -path /sys \) -prune -o -name 'libcublas.so.1[23]*' -print \
      2>/dev/null | grep -v Lt | sort | head -1)
  fi
  export CARZERO_CUBLAS_PATH
  log "CARZERO_CUBLAS_PATH=${CARZERO_CUBLAS_PATH:-<none found>}"
fi
if [ -n "$SETUP_FAIL" ]; then
  log "SETUP FAILED:$SETUP_FAIL"
fi

# ---------------------------------------------------------------- info
step info 30 "$NODE" dist/cli/main.js info --json
"$NODE" dist/cli/main.js info --json > "$WORK/logs/info.json" 2>/dev/null || true
if [ "$DEV" = cuda ] && ! grep -q '"available": true' "$WORK/logs/info.json" 2>/dev/null; then
  log "WARNING: carzero info says CUDA is not available (see info.log); the device steps will fail"
fi

# ---------------------------------------------------------------- op parity (first: cheapest, most telling)
case "$OPS_MODE" in
  parity|full)
    if [ "$DEV" = cuda ]; then step ops 150 env CARZERO_REQUIRE_CUDA=1 "$BIN/test_ops" -b cuda
      # the bf16 attention cases with the other forward kernels at head size 64 (the default is
      # the whole-sequence kernel, one block per pair): the persistent variant, and the tiled
      # kernel (which also sends the backward to the widening path)
      step ops_persist 60 env CARZERO_REQUIRE_CUDA=1 CARZERO_ATTN_KERNEL=persist "$BIN/test_ops" -b cuda \
        -o ",bf16)|,f16)"
      step ops_tiled 60 env CARZERO_REQUIRE_CUDA=1 CARZERO_ATTN_KERNEL=tiled "$BIN/test_ops" -b cuda \
        -o ",bf16)|,f16)"
      # the 32-row whole-sequence kernel (opt-in until it has been measured against the default)
      step ops_wide 60 env CARZERO_REQUIRE_CUDA=1 CARZERO_ATTN_KERNEL=wide "$BIN/test_ops" -b cuda \
        -o ",bf16)|,f16)"
      step ops_wide8 60 env CARZERO_REQUIRE_CUDA=1 CARZERO_ATTN_KERNEL=wide8 "$BIN/test_ops" -b cuda \
        -o ",bf16)|,f16)"
      step ops_lean 60 env CARZERO_REQUIRE_CUDA=1 CARZERO_ATTN_KERNEL=lean "$BIN/test_ops" -b cuda \
        -o ",bf16)|,f16)"
      step ops_pwide 60 env CARZERO_REQUIRE_CUDA=1 CARZERO_ATTN_KERNEL=pwide "$BIN/test_ops" -b cuda \
        -o ",bf16)|,f16)"
      # the bf16-C GEMM cases on the fp32-product path, plain and with the opt-in vectorised rounding
      # kernel (the default path is cuBLASLt's bf16 D, in the ops step above)
      step ops_gemm_dense 60 env CARZERO_REQUIRE_CUDA=1 CARZERO_GEMM_BF16_C=dense "$BIN/test_ops" -b cuda \
        -o "c=bf16"
      step ops_gemm_vec 60 env CARZERO_REQUIRE_CUDA=1 CARZERO_GEMM_BF16_C=dense CARZERO_GEMM_NARROW=vec \
        "$BIN/test_ops" -b cuda -o "c=bf16"
    else step ops 60 "$BIN/test_ops" -b cpu -o layernorm; fi ;;
  none) log "ops: skipped (CARZERO_GPU_CHECK_OPS=none)" ;;
esac

# ---------------------------------------------------------------- tiny parity (smoke test)
TINY_AC=(--autocast none)
if [ -n "$PY" ]; then
  step autocast_tiny 60 "$PY" tools/reference/autocast_bf16.py --fixtures test/fixtures/tiny --device "$DEV" \
    --out "$LOGS/autocast_tiny.json" && TINY_AC=(--autocast "$LOGS/autocast_tiny.json")
fi
TINY_TF=(--tf32-ref none)
if [ -n "$PY" ]; then
  step tf32_tiny 60 "$PY" tools/reference/autocast_bf16.py --tf32 --fixtures test/fixtures/tiny --device "$DEV" \
    --out "$LOGS/tf32_tiny.json" && TINY_TF=(--tf32-ref "$LOGS/tf32_tiny.json")
fi
step tiny 60 "$NODE" tools/parity/full-size.mjs test/fixtures/tiny --device "$DEV" --precision fp32,bf16,tf32 \
  "${TINY_AC[@]}" "${TINY_TF[@]}" --json "$LOGS/tiny.json"

# ---------------------------------------------------------------- reference
if [ -f "$REF/outputs/index.json" ] && [ -f "$REF/carzero-full.ckpt" ]; then
  log "reference present: $REF"
elif [ -n "$PY" ]; then
  step ref 240 "$PY" tools/parity/gen_reference.py --out "$REF" --threads "$(nproc)"
else
  log "no reference at $REF and no python with torch to make it"
fi
# PyTorch's bf16 autocast on the same model, inputs and device: the parity's bf16 bar.
PARITY_AC=(--autocast none)
if [ -f "$REF/outputs/index.json" ] && [ -n "$PY" ]; then
  step autocast 240 "$PY" tools/reference/autocast_bf16.py --fixtures "$REF" --device "$DEV" \
    --out "$LOGS/autocast.json" && PARITY_AC=(--autocast "$LOGS/autocast.json")
fi
# PyTorch's fp32 model with allow_tf32 on the same card: the parity's tf32 bar.
PARITY_TF=(--tf32-ref none)
if [ -f "$REF/outputs/index.json" ] && [ -n "$PY" ]; then
  step tf32_ref 240 "$PY" tools/reference/autocast_bf16.py --tf32 --fixtures "$REF" --device "$DEV" \
    --out "$LOGS/tf32_ref.json" && PARITY_TF=(--tf32-ref "$LOGS/tf32_ref.json")
fi

# ---------------------------------------------------------------- full-size parity
PARITY_RC=99
if [ -f "$REF/outputs/index.json" ]; then
  rm -rf "$MODEL_DIR"
  step parity 300 "$NODE" tools/parity/full-size.mjs "$REF" --device "$DEV" --precision bf16,fp32,tf32 \
    --keep "$MODEL_DIR" "${PARITY_AC[@]}" "${PARITY_TF[@]}" --json "$LOGS/parity.json"
  PARITY_RC=$?
  if grep -q '"pixels_ok": false' "$LOGS/parity.json" 2>/dev/null; then
    log "our image decoding differs from the reference's (this machine's cv2):" \
      "the model again on the reference's pixels"
    step parity_refpx 120 "$NODE" tools/parity/full-size.mjs "$REF" --device "$DEV" --precision bf16,fp32 \
      --model "$MODEL_DIR" --ref-pixels "${PARITY_AC[@]}" --json "$LOGS/parity_refpx.json"
  fi
fi

# ---------------------------------------------------------------- out of memory: caught, process goes on
if [ "$DEV" = cuda ]; then
  OOM_MODEL=(); [ -f "$MODEL_DIR/model.safetensors" ] && OOM_MODEL=(--model "$MODEL_DIR")
  step oom 60 "$NODE" tools/parity/oom-check.mjs --device cuda "${OOM_MODEL[@]}" --json "$LOGS/oom.json"
fi

# ---------------------------------------------------------------- NCCL binding (a group of one GPU)
if [ "$DEV" = cuda ]; then
  if [ -z "${CARZERO_NCCL_PATH:-}" ]; then
    CARZERO_NCCL_PATH=$(find / \( -path /proc -o -path /sys \) -prune -o -name 'libnccl.so.2*' -print 2>/dev/null \
      | sort | head -1)
    export CARZERO_NCCL_PATH
  fi
  log "CARZERO_NCCL_PATH=${CARZERO_NCCL_PATH:-<none found>}"
  step nccl 90 "$NODE" tools/parity/nccl-check.mjs --json "$LOGS/nccl.json"
fi

# ---------------------------------------------------------------- trainer on the device vs the CPU
if [ "$DEV" = cuda ]; then
  step train 150 "$NODE" tools/parity/train-device.mjs --devices cpu,cuda --precisions fp32,bf16,fp16 --steps 4 \
    --json "$LOGS/train.json"
fi

# ---------------------------------------------------------------- op-level checks (rest)
# Before the model benches: the op benches (attention vs SDPA) and the sanitizer are the checks
# the CUDA backend is judged by, so they run while the budget is fresh.
if [ "$OPS_MODE" = full ]; then
  # op parity already ran above; gpu-check.sh adds the op benches, SDPA and compute-sanitizer
  step ops_full "${CARZERO_GPU_CHECK_OPS_FULL_S:-200}" env OUT="$LOGS/gpu-check" CARZERO_BUILD_DIR="$BIN" \
    CARZERO_GPU_CHECK_PARITY=0 CARZERO_PYTHON="${PY:-python3}" bash scripts/gpu-check.sh
fi

# ---------------------------------------------------------------- benches
step bench_native 150 "$BIN/bench_model" both --device "$DEV" --batch "$NATIVE_BATCHES" --reps "$REPS" \
  --warmup "$WARMUP" --json "$LOGS/bench_native.json"
if [ -f "$MODEL_DIR/model.safetensors" ]; then
  step bench_node 180 "$NODE" bench/gpu/model-bench.mjs --model "$MODEL_DIR" --device "$DEV" --batch "$BATCH" \
    --reps "$REPS" --warmup "$WARMUP" --images "$REF/images" --e2e-batch "$E2E" --json "$LOGS/bench_node.json"
else
  log "bench_node: no converted model ($MODEL_DIR): skipped"
fi
# Issue 14's GPU lines: classify end to end through the decode pool (every core decoding) on
# 2048 x 2500 and on 256 x 256 PNGs (bench/gpu/feed-bench.mjs; files staged by gpu-stage.sh).
CV2_PY=""  # a python that imports cv2, for OpenCV's single-thread time (the full-size bar)
for c in ${PY:-} python3 /usr/bin/python3; do
  if "$c" -c 'import cv2' >/dev/null 2>&1; then CV2_PY=$c; break; fi
done
FEED_HERE=""
[ -f .gpu/feed/here.json ] && FEED_HERE=.gpu/feed/here.json
if [ -f "$MODEL_DIR/model.safetensors" ] && [ -f .gpu/feed/png8-2048x2500.png ]; then
  step feed 120 "$NODE" bench/gpu/feed-bench.mjs --model "$MODEL_DIR" --device "$DEV" --precision bf16 \
    --full .gpu/feed/png8-2048x2500.png --small .gpu/feed/png8-256x256.png --full-count "$FEED_FULL" \
    --small-count "$FEED_SMALL" --batch "$BATCH" --reps "$FEED_REPS" --python "${CV2_PY:-python3}" \
    ${FEED_HERE:+--here "$FEED_HERE"} --json "$LOGS/feed.json"
else
  log "feed: no converted model ($MODEL_DIR) or no .gpu/feed files (scripts/gpu-stage.sh): skipped"
fi
if [ -n "$PY" ]; then
  step bench_torch 240 env PYTHONUNBUFFERED=1 "$PY" bench/gpu/torch_model_bench.py --device "$DEV" --batch "$BATCH" \
    --dtypes bf16,fp32,tf32 --modes "$TORCH_MODES" --compile-dtypes bf16 --reps "$REPS" --warmup "$WARMUP" \
    --bert --json "$LOGS/bench_torch.json"
  # The original per-image zero-shot loop (get_dqn_similarities) for the >= 10x classify check.
  step bench_torch_loop 180 env PYTHONUNBUFFERED=1 "$PY" bench/gpu/torch_zeroshot_loop.py --device "$DEV" \
    --batch "$E2E" --texts 14,192 --dtypes bf16,fp32 --reps "$REPS" --warmup "$WARMUP" \
    --json "$LOGS/bench_torch_loop.json"
fi

# ---------------------------------------------------------------- training step (ours and PyTorch's, peak memory)
# nvidia-smi samples the device memory in use (this process's context included) while each runs.
mem_sample() {  # mem_sample NAME CMD...: runs step NAME with a memory sampler, max MiB -> logs/NAME.mem
  local name=$1; shift
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 > "$LOGS/$name.memlog" 2>/dev/null &
    local sp=$!
    step "$name" "$@"; local rc=$?
    kill "$sp" 2>/dev/null; wait "$sp" 2>/dev/null
    sort -n "$LOGS/$name.memlog" | tail -1 > "$LOGS/$name.mem"
    log "$name: peak device memory in use $(cat "$LOGS/$name.mem") MiB (nvidia-smi)"
    return $rc
  fi
  step "$name" "$@"
}
if [ "$DEV" = cuda ] && [ -f "$MODEL_DIR/model.safetensors" ]; then
  mem_sample bench_train 200 "$NODE" bench/gpu/train-bench.mjs --model "$MODEL_DIR" --device cuda \
    --precisions "${CARZERO_GPU_CHECK_TRAIN_PRECISIONS:-bf16,fp16,fp32}" --recompute false,true \
    --batches "${CARZERO_GPU_CHECK_TRAIN_BATCHES:-64,128,256}" --reps 3 --warmup 1 --json "$LOGS/bench_train.json"
  [ -n "$PY" ] && mem_sample bench_torch_train 240 env PYTHONUNBUFFERED=1 "$PY" bench/gpu/torch_train_bench.py \
    --device cuda --batches "${CARZERO_GPU_CHECK_TRAIN_BATCHES:-64,128,256}" --amp fp16,bf16 --reps 3 --warmup 1 \
    --json "$LOGS/bench_torch_train.json"
fi

# ---------------------------------------------------------------- training step profile (optional)
# CARZERO_GPU_CHECK_PROFILE=1: one bf16 training step at batch 256 under Nsight Systems, with its
# GPU kernel summary (time per kernel name) in logs/profile_train_kernels.csv.
if [ "${CARZERO_GPU_CHECK_PROFILE:-0}" = 1 ] && [ "$DEV" = cuda ] && [ -f "$MODEL_DIR/model.safetensors" ]; then
  NSYS=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null \
    | head -1 || true)
  if [ -n "$NSYS" ]; then
    step profile_train 150 "$NSYS" profile --trace=cuda --sample=none --cpuctxsw=none -f true -o "$LOGS/profile_train" \
      "$NODE" bench/gpu/train-bench.mjs --child --model "$MODEL_DIR" --device cuda --precisions bf16 \
      --recompute false --batches 256 --reps 1 --warmup 1
    "$NSYS" stats --report cuda_gpu_kern_sum --format csv --output "$LOGS/profile_train" \
      "$LOGS/profile_train.nsys-rep" > /dev/null 2>&1 || true
    ls "$LOGS"/profile_train*.csv >/dev/null 2>&1 \
      && cp "$(ls "$LOGS"/profile_train*kern_sum*.csv | head -1)" "$LOGS/profile_train_kernels.csv"
    head -40 "$LOGS/profile_train_kernels.csv" 2>/dev/null | cut -c1-220
    rm -f "$LOGS/profile_train.nsys-rep" "$LOGS/profile_train.sqlite"
  else
    log "profile_train: no nsys on this machine"
  fi
fi

# ---------------------------------------------------------------- report
log "merging the report"
"$NODE" - "$LOGS" "$DEV" "$BATCH" <<'JS' > "$LOGS/verdict.txt"
const fs = require('node:fs');
const path = require('node:path');
const [logs, dev, batch] = process.argv.slice(2);
const load = (f) => {
  try {
    return JSON.parse(fs.readFileSync(path.join(logs, f), 'utf8'));
  } catch (e) {
    return undefined;
  }
};
const steps = fs.readFileSync(path.join(logs, 'steps.tsv'), 'utf8').trim().split('\n').filter(Boolean)
  .map((l) => {
    const [name, rc, seconds, limit] = l.split('\t');
    return { name, rc: +rc, seconds: +seconds, limit: +limit };
  });
const rep = { tool: 'scripts/gpu-model-check.sh', device: dev, batch: +batch, date: new Date().toISOString(), steps,
  info: load('info.json'), tiny: load('tiny.json'), parity: load('parity.json'),
  autocast_tiny: load('autocast_tiny.json'), autocast: load('autocast.json'),
  tf32_tiny: load('tf32_tiny.json'), tf32_ref: load('tf32_ref.json'),
  parity_refpx: load('parity_refpx.json'),
  train: load('train.json'), oom: load('oom.json'), nccl: load('nccl.json'), bench_train: load('bench_train.json'),
  bench_torch_train: load('bench_torch_train.json'), bench_native: load('bench_native.json'),
  bench_node: load('bench_node.json'), bench_torch: load('bench_torch.json'), feed: load('feed.json'),
  bench_torch_loop: load('bench_torch_loop.json') };
const ops = fs.existsSync(path.join(logs, 'ops.log')) ? fs.readFileSync(path.join(logs, 'ops.log'), 'utf8') : '';
const opsAlt = steps.filter((s) =>
  ['ops_persist', 'ops_whole', 'ops_tiled', 'ops_wide', 'ops_wide8', 'ops_lean', 'ops_pwide', 'ops_gemm_dense',
    'ops_gemm_vec']
    .includes(s.name));
const m = ops.match(/(\d+) passed, (\d+) failed(?:, (\d+) skipped)?/);
rep.ops = m
  ? { passed: +m[1], failed: +m[2], skipped: +(m[3] ?? 0),
      failures: [...ops.matchAll(/^ {2}FAIL (.*)$/gm)].map((x) => x[1]).slice(0, 50) }
  : undefined;
const gc = path.join(logs, 'gpu-check', 'gpu_report.json');
if (fs.existsSync(gc)) rep.gpu_check = JSON.parse(fs.readFileSync(gc, 'utf8'));
// Verdicts
const v = {};
const runOf = (p, prec) => p?.runs?.find((r) => r.precision === prec);
// Per tensor: our relative Frobenius error over PyTorch autocast's (the bar is 1), and the same
// ratio of the max relative errors (reported, not the bar).
const vsAutocast = (r) => (r.max_vs_autocast === undefined ? {} : {
  max_vs_autocast: r.max_vs_autocast,
  vs_autocast: Object.fromEntries((r.results ?? []).map((x) => [x.name,
    { rel_fro: x.vs_autocast, max_rel: x.vs_autocast_max_rel }])) });
for (const prec of ['bf16', 'fp32', 'tf32']) {
  const r = runOf(rep.parity, prec);
  v[`parity_${prec}`] = r
    ? { ok: r.ok, max_rel_err: r.max_rel_err, bound: r.bound, pixels_ok: r.pixels?.ok, ...vsAutocast(r) }
    : { ok: false, note: rep.parity?.error ?? 'did not run' };
  const rr = runOf(rep.parity_refpx, prec);
  if (rr) {
    v[`parity_${prec}_ref_pixels`] = { ok: rr.ok, max_rel_err: rr.max_rel_err, bound: rr.bound, ...vsAutocast(rr) };
  }
}
const tf = runOf(rep.tiny, 'fp32');
v.tiny_fp32 = tf ? { ok: tf.ok, max_rel_err: tf.max_rel_err } : { ok: false, note: rep.tiny?.error ?? 'did not run' };
const tb = runOf(rep.tiny, 'bf16');
v.tiny_bf16 = tb ? { ok: tb.ok, max_rel_err: tb.max_rel_err, bound: tb.bound, ...vsAutocast(tb) }
  : { ok: false, note: rep.tiny?.error ?? 'did not run' };
const tt = runOf(rep.tiny, 'tf32');
v.tiny_tf32 = tt ? { ok: tt.ok, max_rel_err: tt.max_rel_err, bound: tt.bound, ...vsAutocast(tt) }
  : { ok: false, note: rep.tiny?.error ?? 'did not run' };
const B = +batch;
const nat = rep.bench_native?.results?.find(
  (r) => r.precision === 'bf16' && r.what === 'embed_images' && r.batch === B);
const nod = rep.bench_node?.results?.find(
  (r) => r.precision === 'bf16' && r.what === 'embed_images' && r.batch === B);
const torchRow = (model, dtype, mode) => rep.bench_torch?.results?.find(
  (r) => (r.model ?? 'vit') === model && r.dtype === dtype && r.mode === mode && !r.error);
const tor = (mode) => torchRow('vit', 'bf16', mode);
const eager = tor('eager');
const comp = tor('compile');
const ours = nod ?? nat;
v.speed_vit_bf16 = {
  batch: B,
  ours_node_images_per_s: nod?.per_s, ours_native_images_per_s: nat?.per_s,
  torch_eager_images_per_s: eager?.images_per_s, torch_compile_images_per_s: comp?.images_per_s,
  vs_eager: ours && eager ? ours.per_s / eager.images_per_s : undefined,
  vs_compile: ours && comp ? ours.per_s / comp.images_per_s : undefined,
};
v.speed_vit_bf16.ok_1_5x_eager = v.speed_vit_bf16.vs_eager === undefined ? undefined : v.speed_vit_bf16.vs_eager >= 1.5;
// Issue 15's other speed lines, same call and card: tf32 ViT against PyTorch fp32 with allow_tf32,
// BERT-base (L = 97) bf16 at the same batch against PyTorch eager bf16.
{
  const o = rep.bench_node?.results?.find((r) => r.precision === 'tf32' && r.what === 'embed_images' && r.batch === B);
  const t = torchRow('vit', 'tf32', 'eager');
  const x = o && t ? o.per_s / t.images_per_s : undefined;
  v.speed_vit_tf32 = { batch: B, ours_images_per_s: o?.per_s, torch_eager_tf32_images_per_s: t?.images_per_s,
    vs_torch: x, ok_1_5x: x === undefined ? undefined : x >= 1.5 };
  const ob = rep.bench_node?.results?.find((r) => r.precision === 'bf16' && r.what === 'embed_texts (L=97)' &&
    r.texts === B);
  const tb = torchRow('bert', 'bf16', 'eager');
  const xb = ob && tb ? ob.per_s / tb.texts_per_s : undefined;
  v.speed_bert_bf16 = { batch: B, ours_texts_per_s: ob?.per_s, torch_eager_texts_per_s: tb?.texts_per_s,
    vs_eager: xb, ok_1_5x_eager: xb === undefined ? undefined : xb >= 1.5 };
}
const cls = rep.bench_node?.results?.filter((r) => r.what.startsWith('classify'))
  .map((r) => ({ precision: r.precision, what: r.what, batch: r.batch, images_per_s: r.per_s }));
v.classify = cls;
// Zero-shot throughput against the original per-image loop (same dtype, 14 prompts, model only).
const loop = (dt) => rep.bench_torch_loop?.results?.find((r) => r.dtype === dt && r.texts === 14 && !r.error);
v.classify_vs_original_loop = ['bf16', 'fp32'].map((dt) => {
  const o = rep.bench_node?.results?.find((r) => r.precision === dt && r.what === 'classify 14 prompts, model only');
  const l = loop(dt);
  const x = o && l ? o.per_s / l.loop_images_per_s : undefined;
  return { precision: dt, ours_images_per_s: o?.per_s, original_loop_images_per_s: l?.loop_images_per_s, ratio: x,
    ok_10x: x === undefined ? undefined : x >= 10 };
});
if (rep.ops) v.ops = { passed: rep.ops.passed, failed: rep.ops.failed, skipped: rep.ops.skipped };
// Attention against SDPA (CARZERO_GPU_CHECK_OPS=full: scripts/gpu-check.sh's op benches): forward
// >= 1.0x at the ViT shape, backward >= 0.8x at the ViT and BERT shapes.
if (rep.gpu_check) {
  const pick = (rows) => (rows ?? []).map((r) => ({ shape: r.shape, speedup_vs_sdpa: r.speedup_vs_sdpa }));
  v.attention_vs_sdpa = { forward: pick(rep.gpu_check.attention_fwd_vs_sdpa),
    backward: pick(rep.gpu_check.attention_bwd_vs_sdpa) };
}
if (rep.train) v.train = { ok: rep.train.ok, comparisons: rep.train.comparisons };
if (rep.nccl) v.nccl = { ok: rep.nccl.ok, steps: rep.nccl.steps };
if (rep.oom) v.oom = { ok: rep.oom.ok, checks: rep.oom.checks.map((c) => `${c.ok ? 'PASS' : 'FAIL'} ${c.name}`) };
const memOf = (n) => {
  try {
    return +fs.readFileSync(path.join(logs, n + '.mem'), 'utf8').trim();
  } catch {
    return undefined;
  }
};
if (rep.bench_train || rep.bench_torch_train) {
  const ours = (p, b, rc = false) =>
    rep.bench_train?.results?.find((r) => r.precision === p && r.batch === b && !!r.recompute === rc && !r.error);
  const theirs = (p, b) => rep.bench_torch_train?.results?.find((r) => r.amp === p && r.batch === b && !r.error);
  v.train_speed = [64, 128, 256].map((b) => ({ batch: b,
    ours_bf16: ours('bf16', b)?.samples_per_s, ours_fp16: ours('fp16', b)?.samples_per_s,
    ours_fp32: ours('fp32', b)?.samples_per_s,
    ours_bf16_recompute: ours('bf16', b, true)?.samples_per_s,
    ours_bf16_workspace_gib: ours('bf16', b)?.workspace_bytes / 2 ** 30,
    ours_bf16_recompute_workspace_gib: ours('bf16', b, true)?.workspace_bytes / 2 ** 30,
    ours_bf16_model_peak_plus_optimizer_gib: ours('bf16', b)
      ? (ours('bf16', b).model_peak_bytes + ours('bf16', b).optimizer_bytes) / 2 ** 30 : undefined,
    ours_fp16_model_peak_plus_optimizer_gib: ours('fp16', b)
      ? (ours('fp16', b).model_peak_bytes + ours('fp16', b).optimizer_bytes) / 2 ** 30 : undefined,
    torch_amp_fp16_peak_gib: theirs('fp16', b)?.max_memory_allocated_gib,
    torch_amp_fp16: theirs('fp16', b)?.samples_per_s, torch_amp_bf16: theirs('bf16', b)?.samples_per_s,
    ratio_fp16_vs_torch_amp_fp16: ours('fp16', b) && theirs('fp16', b)
      ? ours('fp16', b).samples_per_s / theirs('fp16', b).samples_per_s : undefined }));
  v.train_peak_mib = { ours: memOf('bench_train'), torch: memOf('bench_torch_train'),
    note: 'nvidia-smi, max over the whole step (all batch sizes, CUDA context included)' };
  // bench_train runs one child process per (recompute, precision): the samples fall back to the
  // idle level between them, which splits the log into one peak per child, in order.
  try {
    const samples = fs.readFileSync(path.join(logs, 'bench_train.memlog'), 'utf8').trim().split(/\s+/)
      .map(Number);
    const idle = Math.min(...samples) + 1024;
    const peaks = [];
    let cur = 0;
    for (const x of samples) {
      if (x < idle) { if (cur) peaks.push(cur); cur = 0; } else cur = Math.max(cur, x);
    }
    if (cur) peaks.push(cur);
    v.train_peak_mib.ours_per_child = peaks;
    v.train_peak_mib.ours_per_child_note =
      'one per bench_train child in run order: recompute false then true, each over the precisions; nvidia-smi MiB';
  } catch { /* no memlog */ }
}
// Issue 14: the image feed end to end (bench/gpu/feed-bench.mjs); pass is null where no bar applies
// (no cv2 on the machine for the full-size one, or not a GPU run).
for (const k of ['full', 'small']) {
  const r = rep.feed?.rows?.find((x) => x.file === k);
  v[`feed_${k}`] = r
    ? { pass: r.pass, images_per_s: r.images_per_s, bar: r.bar, bar_what: r.bar_what, cores: rep.feed.cores,
        decode_threads: rep.feed.decode_threads, ours_one_thread_ms: r.ours_one_thread_ms,
        cv2_one_thread_ms: r.cv2_one_thread_ms, cv2_unavailable: rep.feed.cv2_unavailable,
        cv2_estimate_ms: r.cv2_estimate_ms, bar_estimate: r.bar_estimate, pass_estimate: r.pass_estimate }
    : { pass: null, note: rep.feed?.error ?? 'did not run' };
}
rep.verdict = v;
const skipped = new Set(steps.filter((s) => s.rc === 126).map((s) => s.name));
const opsFull = steps.find((s) => s.name === 'ops_full');
const parityOk = (skipped.has('tiny') || (v.tiny_fp32.ok && v.tiny_bf16.ok && v.tiny_tf32.ok)) &&
  (skipped.has('parity') || (v.parity_bf16.ok && v.parity_fp32.ok && v.parity_tf32.ok)) &&
  !(rep.ops && rep.ops.failed > 0) && !(opsFull && opsFull.rc !== 0) && !(rep.train && !rep.train.ok) &&
  !(rep.oom && !rep.oom.ok) && !(rep.nccl && !rep.nccl.ok) &&
  !opsAlt.some((s) => s.rc !== 0 && s.rc !== 126);
if (opsFull) v.ops_full = { rc: opsFull.rc,
  note: 'scripts/gpu-check.sh: 1 = op parity or sanitizer failure, 2 = binaries missing' };
rep.parity_ok = !!parityOk;
fs.writeFileSync(path.join(logs, 'gpu_model_report.json'), JSON.stringify(rep, null, 1) + '\n');
console.log(JSON.stringify(v, null, 1));
console.log(parityOk ? 'PARITY: PASS' : 'PARITY: FAIL');
JS
cat "$LOGS/verdict.txt"
cp "$LOGS/gpu_model_report.json" "$OUTDIR/gpu_model_report.json" 2>/dev/null \
  || log "report merge failed (see check.log)"
printf 'step\trc\tseconds\tlimit\n'; cat "$LOGS/steps.tsv"
RC=0
if [ -n "$SETUP_FAIL" ]; then
  echo "gpu-model-check: SETUP FAILED:$SETUP_FAIL" >&2; RC=2
elif ! grep -q '^PARITY: PASS' "$LOGS/verdict.txt"; then
  echo "gpu-model-check: PARITY FAILED on $DEV (or did not run):" \
    "see $OUTDIR/gpu_model_report.json and check.log" >&2
  RC=1
fi
log "done in $(( $(date +%s) - T0 ))s, exit $RC; files in $OUTDIR: gpu_model_report.json check.log logs.tar.gz"
sleep 0.5  # let tee flush check.log
cp "$LOGS/check.log" "$OUTDIR/check.log"
tar -C "$WORK" -czf "$OUTDIR/logs.tar.gz" logs 2>/dev/null
exit $RC
