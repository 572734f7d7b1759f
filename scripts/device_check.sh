#!/usr/bin/env bash
# The prepared CUDA check (issue 15): on a machine with a GPU, in under 5 minutes,
#   env      what the machine is: GPU, driver, torch and CUDA versions
#   tests    the tests that place tensors on the device (tests/distributed/test_device.py: float64 on the
#            device equals the CPU, a one-rank NCCL group equals the plain operator) and the rest of
#            tests/distributed (two gloo ranks on the CPU: same numbers, failures end with one line)
#   compare  a small run (digits MLP, 150 SGD steps, 3 checkpoints) trained on the CPU, analyzed on the CPU
#            in float64 (the reference) and on the device in float64 and float32; eigenvalues and traces
#            must agree to 1e-9 (float64) and 1e-3 (float32) relative (scripts/device_compare.py)
#   timings  per-product and top-20 times on the device (scripts/bench_distributed.py): the MNIST-shaped
#            MLP 784-128-128-10 (real MNIST if --mnist DIR, else random MNIST-shaped images) and a
#            WRN-16-4 on CIFAR-format data (scripts/make_cifar_like.py), in float64 and float32. WRN-16-4
#            counts depth as Zagoruyko & Komodakis do (6n+4): 2.75M parameters, hessdyn's depth=14 (6n+2)
# and writes DIR/device_check.md (the report) and DIR/device_check.log (everything printed).
#
# usage: scripts/device_check.sh [--out DIR] [--steps env,tests,compare,timings] [--mnist DIR] [--cpu-dry-run]
#   --out          where the report goes (default $OUT when set, else ./device_check_out)
#   --cpu-dry-run  run the same steps with the CPU standing in for the GPU (tiny sizes): checks the script
#                  itself on a machine without one. Without it and without a visible GPU the script
#                  refuses with one line (exit 3).
# Python: $PYTHON, else python3. hessdyn is used from this checkout (PYTHONPATH), not installed; a GPU image
# without hydra-core / omegaconf gets them from wheels in .whl/ (scripts/device_wheels.sh prepares them).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
OUT_DIR=${OUT:-$REPO/device_check_out}
STEPS=env,tests,compare,timings
MNIST=""
DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT_DIR=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --mnist) MNIST=$2; shift 2 ;;
    --cpu-dry-run) DRY=1; shift ;;
    *) echo "device_check: unknown argument '$1' (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if ! "$PY" -c "import hydra, omegaconf" 2>/dev/null && [ -d .whl ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/hessdyn-site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/hessdyn-site"
fi
if ! "$PY" -c "import torch, hydra, omegaconf, pandas" 2>/dev/null; then
  echo "device_check: $PY lacks torch, hydra-core, omegaconf or pandas: run scripts/device_wheels.sh and carry .whl" >&2
  exit 2
fi
if [ "$DRY" = 1 ]; then
  DEV=cpu
elif "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  DEV=cuda
else
  echo "device_check: no CUDA device is visible (torch.cuda.is_available() is False): nothing to check; --cpu-dry-run runs the steps on the CPU" >&2
  exit 3
fi

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
REPORT=$OUT_DIR/device_check.md
LOG=$OUT_DIR/device_check.log
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
: >"$LOG"
FAILED=()
{
  echo "# hessdyn device check"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), device $DEV$([ "$DRY" = 1 ] && echo ' (CPU dry run: the CPU stands in for the GPU)'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
} >"$REPORT"

# step NAME COMMAND...: run, log, and record its status and seconds in the report
step() {
  local name=$1 start rc
  shift
  start=$SECONDS
  echo "=== $name: $*" >>"$LOG"
  "$@" >>"$LOG" 2>&1
  rc=$?
  printf '\n## %s: %s (%d s)\n' "$name" "$([ $rc = 0 ] && echo ok || echo "FAILED, exit $rc")" "$((SECONDS - start))" >>"$REPORT"
  [ $rc = 0 ] || FAILED+=("$name")
  return $rc
}
wanted() { [[ ",$STEPS," == *",$1,"* ]]; }
hessdyn() { "$PY" -m hessdyn "$@"; }

if wanted env; then
  env_info() {
    "$PY" - <<'EOF'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("gpu", p.name, f"{p.total_memory / 2**30:.0f} GiB", "capability", f"{p.major}.{p.minor}", "nccl", torch.cuda.nccl.version())
EOF
  }
  step env env_info
  sed -n '/^=== env/,$p' "$LOG" | tail -n +2 | sed 's/^/    /' >>"$REPORT"
fi

if wanted tests; then
  # test_device_check.py would run this script again
  step tests env HESSDYN_TEST_DEVICE=$DEV "$PY" -m pytest -q -p no:cacheprovider tests/distributed \
    --ignore=tests/distributed/test_device_check.py
  grep -E '^[0-9]+ (passed|failed)|passed|failed' "$LOG" | tail -n 1 | sed 's/^/    /' >>"$REPORT"
fi

if wanted compare; then
  RESULTS=$WORK/results
  analyze() {  # analyze NAME DEVICE DTYPE TOL
    HESSDYN_RESULTS=$RESULTS hessdyn analyze run_dir="$RUN" analysis.name="$1" analysis.device="$2" \
      analysis.dtype="$3" analysis.tol="$4" analysis.top_k=5 analysis.bottom_k=1 analysis.trace_hvps=30 \
      analysis.null_init_seeds=0 analysis.null_random_vectors=0 'analysis.metrics=[spectrum,bottom,trace,localization]'
  }
  compare() {
    HESSDYN_RESULTS=$RESULTS hessdyn train experiment=quickstart name=device_check seed=0 device=cpu \
      trainer.max_steps=150 checkpoint.num=2 || return
    RUN=$(dirname "$(find "$RESULTS/device_check" -name run.json | head -n 1)")
    analyze ref_cpu64 cpu float64 1e-8 || return
    if [ "$DRY" = 1 ]; then  # the device is the CPU: float64 is the reference itself, so only float32 runs
      analyze dev_f32 cpu float32 1e-4 || return
      "$PY" scripts/device_compare.py "$RUN" ref_cpu64 ref_cpu64=1e-9 dev_f32=1e-3
    else
      analyze dev_f64 "$DEV" float64 1e-8 && analyze dev_f32 "$DEV" float32 1e-4 || return
      "$PY" scripts/device_compare.py "$RUN" ref_cpu64 dev_f64=1e-9 dev_f32=1e-3
    fi
  }
  step compare compare
  grep -E '^\|' "$LOG" | tail -n 4 >>"$REPORT"
fi

if wanted timings; then
  if [ "$DRY" = 1 ]; then SIZE=(--n 200 --k 3 --products 2 --repeats 1); else SIZE=(--n 5000 --k 20 --products 10 --repeats 1); fi
  if [ "$DRY" = 1 ]; then WRN=(--n 16 --k 2 --products 1 --repeats 1 --depth 8 --width 1); else WRN=(--n 500 --k 20 --products 5 --repeats 1 --depth 14 --width 4); fi
  MLP_DATA=(--synthetic)
  [ -n "$MNIST" ] && MLP_DATA=(--data-root "$MNIST")
  "$PY" scripts/make_cifar_like.py "$WORK/cifar" --train 600 --test 100 >>"$LOG" 2>&1
  for dtype in float64 float32; do
    step "timings mlp $dtype" "$PY" scripts/bench_distributed.py --device "$DEV" --dtype "$dtype" \
      "${MLP_DATA[@]}" "${SIZE[@]}" --configs 1x1 1x1d --json "$OUT_DIR/timings_mlp_$dtype.json"
    step "timings wrn $dtype" "$PY" scripts/bench_distributed.py --device "$DEV" --dtype "$dtype" --model wrn \
      --data-root "$WORK/cifar" --batch-size 250 "${WRN[@]}" --configs 1x1 1x1d --json "$OUT_DIR/timings_wrn_$dtype.json"
  done
  grep -E '^(bench_distributed:|1x1 |1x1d )' "$LOG" | sed 's/^/    /' >>"$REPORT"
fi

{
  echo
  if [ ${#FAILED[@]} = 0 ]; then echo "all steps passed"; else echo "FAILED: ${FAILED[*]}"; fi
} >>"$REPORT"
cat "$REPORT"
[ ${#FAILED[@]} = 0 ]
