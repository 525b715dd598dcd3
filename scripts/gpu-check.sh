#!/usr/bin/env bash
# gpu-check.sh: the one GPU check, run from prebuilt binaries (it never builds anything).
#   CARZERO_CUBLAS_PATH=/path/to/libcublas.so.12 bash scripts/gpu-check.sh
# Steps (each with its own time limit; the whole script stays under 8 minutes on one H100):
#   1. op parity: every harness case on the CUDA backend (test_ops -b cuda) vs float64 references
#      (CARZERO_GPU_CHECK_PARITY=0 skips it when the caller already ran it)
#   2. GPU op benchmarks (bench_cuda: GEMM vs cuBLAS direct, attention fwd/bwd, three shapes)
#   3. PyTorch SDPA (bf16, f16, and f32 with allow_tf32) on the same shapes (bench/gpu/sdpa_bench.py)
#   4. compute-sanitizer memcheck and racecheck over a reduced list of CUDA cases
#      (CARZERO_GPU_CHECK_SANITIZER="memcheck" runs one tool, "" none)
#   5. a merged JSON report: $OUT/gpu_report.json (or bench/out/gpu_report.json)
# Binaries: $CARZERO_BUILD_DIR, else build-cuda/, else build/ (test_ops and bench_cuda).
# Exits 1 when any parity case fails (or the CUDA backend cannot start), 2 when binaries are missing.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUTDIR=${OUT:-$ROOT/bench/out}
mkdir -p "$OUTDIR"
T0=$(date +%s)
log() { echo "[gpu-check +$(( $(date +%s) - T0 ))s] $*"; }

BUILD=${CARZERO_BUILD_DIR:-}
if [ -z "$BUILD" ]; then
  for d in build-cuda build; do
    if [ -x "$ROOT/$d/test_ops" ] && [ -x "$ROOT/$d/bench_cuda" ]; then BUILD=$ROOT/$d; break; fi
  done
fi
if [ -z "$BUILD" ] || [ ! -x "$BUILD/test_ops" ]; then
  echo "gpu-check: no prebuilt test_ops/bench_cuda (set CARZERO_BUILD_DIR); this script does not build" >&2
  exit 2
fi
log "binaries in $BUILD"

# cuBLAS: keep a given path, else look for PyTorch's copy (pip wheels: nvidia/cublas/lib).
if [ -z "${CARZERO_CUBLAS_PATH:-}" ]; then
  for cand in $(python3 - <<'PY' 2>/dev/null
import glob, os, site
dirs = site.getsitepackages() + [site.getusersitepackages()]
for d in dirs:
    for p in sorted(glob.glob(os.path.join(d, "nvidia", "cublas", "lib", "libcublas.so*")) +
                    glob.glob(os.path.join(d, "torch", "lib", "libcublas.so*"))):
        if "Lt" not in os.path.basename(p):
            print(p)
PY
  ) $(ls /usr/local/cuda/lib64/libcublas.so.1[23] 2>/dev/null); do
    export CARZERO_CUBLAS_PATH=$cand
    break
  done
fi
if [ -z "${CARZERO_CUBLAS_PATH:-}" ]; then
  CARZERO_CUBLAS_PATH=$(find / -xdev -name 'libcublas.so.1[23]*' 2>/dev/null | grep -v Lt | head -1)
  export CARZERO_CUBLAS_PATH
fi
log "CARZERO_CUBLAS_PATH=${CARZERO_CUBLAS_PATH:-<none>}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/  gpu: /'

# 1. parity
PARITY_RC=0
if [ "${CARZERO_GPU_CHECK_PARITY:-1}" = 1 ]; then
log "parity: test_ops -b cuda"
CARZERO_REQUIRE_CUDA=1 timeout 240 "$BUILD/test_ops" -b cuda > "$OUTDIR/parity_cuda.log" 2>&1
PARITY_RC=$?
tail -3 "$OUTDIR/parity_cuda.log"
grep -E "^  FAIL" "$OUTDIR/parity_cuda.log" | head -40
# the bf16 attention cases again with the other forward kernels at head size 64
for kern in persist tiled wide wide8 lean pwide; do
  log "parity: bf16/fp16 attention with CARZERO_ATTN_KERNEL=$kern"
  CARZERO_REQUIRE_CUDA=1 CARZERO_ATTN_KERNEL=$kern timeout 60 "$BUILD/test_ops" -b cuda -o ",bf16)|,f16)" \
    >> "$OUTDIR/parity_cuda.log" 2>&1 || PARITY_RC=1
  tail -1 "$OUTDIR/parity_cuda.log"
done
log "parity: bf16-C GEMMs on the fp32-product path with CARZERO_GEMM_NARROW=vec"
CARZERO_REQUIRE_CUDA=1 CARZERO_GEMM_BF16_C=dense CARZERO_GEMM_NARROW=vec timeout 60 "$BUILD/test_ops" -b cuda \
  -o "c=bf16" \
  >> "$OUTDIR/parity_cuda.log" 2>&1 || PARITY_RC=1
tail -1 "$OUTDIR/parity_cuda.log"
else
  log "parity: skipped (CARZERO_GPU_CHECK_PARITY=0: the caller ran it)"
fi

# 2. GPU op benchmarks
log "bench_cuda"
timeout 150 "$BUILD/bench_cuda" --json "$OUTDIR/bench_cuda.json" 2>&1 | tee "$OUTDIR/bench_cuda.log" | tail -40

# 3. PyTorch SDPA on the same card
log "sdpa_bench.py"
timeout 120 "${CARZERO_PYTHON:-python3}" "$ROOT/bench/gpu/sdpa_bench.py" --json "$OUTDIR/sdpa.json" 2>&1 \
  | tee "$OUTDIR/sdpa.log" | tail -12
timeout 120 "${CARZERO_PYTHON:-python3}" "$ROOT/bench/gpu/sdpa_bench.py" --dtype f16 --json "$OUTDIR/sdpa_f16.json" \
  >> "$OUTDIR/sdpa.log" 2>&1
timeout 120 "${CARZERO_PYTHON:-python3}" "$ROOT/bench/gpu/sdpa_bench.py" --dtype f32 --tf32 \
  --json "$OUTDIR/sdpa_tf32.json" >> "$OUTDIR/sdpa.log" 2>&1

# 4. sanitizer (reduced case list: one small case per op family; names are test_ops -o filters)
SAN_RC=0
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
SAN_CASES=(
  "gemm(ta=0,tb=1,m=23,n=17,k=11,batch=1,bias=1,act=gelu"
  "gemm_backward(ta=1,tb=1"
  "layernorm"
  "softmax("
  "attention(B=2,NH=2,Tq=7,Tk=13"
  "attention(B=2,NH=2,Tq=33,Tk=17"
  "attention(B=4,NH=2,Tq=1,Tk=19"
  "embedding("
  "patch_embed("
  "softmax_xent"
  "adam"
  "dropout("
  "convert("
  "sum_squares"
  "fwd,bf16)"
  "fwd+bwd,bf16)"
  "fwd+bwd,f16)"
  "fwd,tf32)"
  "add_layernorm"
  "copy2d"
  "c=bf16)"
)
if [ -n "$SAN" ]; then
  for tool in ${CARZERO_GPU_CHECK_SANITIZER:-memcheck racecheck}; do
    : > "$OUTDIR/sanitizer_$tool.log"
    for c in "${SAN_CASES[@]}"; do
      CARZERO_REQUIRE_CUDA=1 timeout 60 "$SAN" --tool "$tool" --error-exitcode 9 \
        "$BUILD/test_ops" -b cuda -o "$c" >> "$OUTDIR/sanitizer_$tool.log" 2>&1
      rc=$?
      if [ $rc -ne 0 ]; then
        echo "sanitizer $tool rc=$rc on '$c'" | tee -a "$OUTDIR/sanitizer_$tool.log"
        SAN_RC=1
      fi
    done
    log "sanitizer $tool done ($(grep -c 'ERROR SUMMARY: 0 errors' "$OUTDIR/sanitizer_$tool.log") clean runs)"
  done
else
  log "compute-sanitizer not found: sanitizer step skipped"
  SAN_RC=3
fi

# 5. merged report
python3 - "$OUTDIR" "$PARITY_RC" "$SAN_RC" <<'PY'
import json, os, re, sys
out, parity_rc, san_rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except Exception as e:
        return {"error": str(e)}
log = open(os.path.join(out, "parity_cuda.log")).read() if os.path.exists(os.path.join(out, "parity_cuda.log")) else ""
m = re.search(r"(\d+) passed, (\d+) failed(?:, (\d+) skipped)?", log)
parity = {"rc": parity_rc, "passed": int(m.group(1)) if m else None,
          "failed": int(m.group(2)) if m else None,
          "skipped": int(m.group(3) or 0) if m else None,
          "failures": re.findall(r"^  FAIL (.*)$", log, re.M)}
ours, sdpa = load("bench_cuda.json"), load("sdpa.json")


def vs_sdpa(sdpa_rows, kind, dtype, opt_in=False):
    """Our attention rows of `kind` (fwd or bwd) stored as `dtype` against SDPA's on the same shapes;
    with opt_in, also the opt-in forward kernels (CARZERO_ATTN_KERNEL=persist|tiled|wide|...)."""
    rows = []
    for r in sdpa_rows.get("results", []):
        if kind not in r.get("impl", ""):
            continue
        mine = [x for x in ours.get("results", []) if x.get("shape") == r["shape"]
                and x.get("impl") == "carzero " + kind and x.get("dtype") == dtype]
        if not (mine and mine[0].get("ms") and r.get("ms")):
            rows.append({"shape": r["shape"], f"carzero_{dtype}_ms": None, f"sdpa_{dtype}_ms": r.get("ms"),
                         "note": mine[0].get("note") if mine else "no carzero row"})
            continue
        row = {"shape": r["shape"], f"carzero_{dtype}_ms": mine[0]["ms"], f"sdpa_{dtype}_ms": r["ms"],
               "speedup_vs_sdpa": r["ms"] / mine[0]["ms"], "kernel": mine[0].get("note")}
        alts = [x for x in ours.get("results", []) if opt_in and x.get("shape") == r["shape"]
                and x.get("impl", "").startswith("carzero fwd ") and x.get("ms")]
        if alts:
            row["opt_in"] = {x["impl"][len("carzero fwd "):]: {"ms": x["ms"], "speedup_vs_sdpa": r["ms"] / x["ms"],
                                                               "plan": x.get("note")} for x in alts}
        rows.append(row)
    return rows


cmp = vs_sdpa(sdpa, "fwd", "bf16", opt_in=True)
cmp_bwd = vs_sdpa(sdpa, "bwd", "bf16")  # dq, dk, dv from dout
cmp_f16 = vs_sdpa(load("sdpa_f16.json"), "fwd", "f16")
# precision tf32 (fp32 storage, TF32 tensor cores) against SDPA on fp32 with allow_tf32
cmp_tf32 = vs_sdpa(load("sdpa_tf32.json"), "fwd", "tf32")
report = {"parity": parity, "sanitizer_rc": san_rc, "bench_cuda": ours, "sdpa": sdpa,
          "sdpa_f16": load("sdpa_f16.json"), "attention_fwd_f16_vs_sdpa": cmp_f16,
          "sdpa_tf32": load("sdpa_tf32.json"), "attention_fwd_tf32_vs_sdpa": cmp_tf32,
          "attention_fwd_vs_sdpa": cmp, "attention_bwd_vs_sdpa": cmp_bwd}
json.dump(report, open(os.path.join(out, "gpu_report.json"), "w"), indent=1)
print(json.dumps({"parity": {k: parity[k] for k in ("passed", "failed", "skipped")}, "sanitizer_rc": san_rc,
                  "attention_fwd_vs_sdpa": cmp, "attention_bwd_vs_sdpa": cmp_bwd,
                  "attention_fwd_tf32_vs_sdpa": cmp_tf32}, indent=1))
PY
log "report: $OUTDIR/gpu_report.json"
if [ $PARITY_RC -ne 0 ]; then
  echo "gpu-check: CUDA PARITY FAILED (rc=$PARITY_RC): see $OUTDIR/parity_cuda.log" >&2
  exit 1
fi
[ $SAN_RC -eq 1 ] && { echo "gpu-check: SANITIZER REPORTED ERRORS: see $OUTDIR/sanitizer_*.log" >&2; exit 1; }
log "done"
exit 0
