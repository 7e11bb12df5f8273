#!/usr/bin/env bash
# The GPU benchmark run (issues #10, #11) in one command, for the device tool. From the repository root:
#
#   # once, on the machine that sends the job (the GPU image has torch/transformers/peft but not mmengine):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl mmengine==0.10.7 addict yapf termcolor platformdirs
#
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD && bash benchmarks/run_gpu.sh
#
# Parts, each under its own timeout and all under TOTAL_BUDGET_S (a part that fails or times out is
# recorded and the next one still runs):
#   1. gpu_bench.py --size all (own budget 255 s; skip with SKIP_SINGLE=1)   -> $OUT/gpu_bench.json (rewritten after every figure)
#   2. torchrun 1 process  multi_gpu_bench.py       -> $OUT/multi_gpu_w1.json
#   3. torchrun all GPUs   multi_gpu_bench.py       -> $OUT/multi_gpu_wN.json   (skipped with one GPU)
#   4. compare                                      -> $OUT/multi_gpu.json (scaling efficiency, loss agreement)
# Full logs go to $OUT/gpu_bench.log and $OUT/multi_gpu.log (6 files in all).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-work_dirs/gpu_run}
PY=${PYTHON:-python3}
TOTAL_BUDGET_S=${TOTAL_BUDGET_S:-565}
SIZES=${SIZES:-05b,3b}
export NCCL_NVLS_ENABLE=0          # NVLink multicast stays off (the machine sets it too)
export TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"

DEADLINE=$(( $(date +%s) + TOTAL_BUDGET_S ))
NGPU=$($PY -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
echo "run_gpu: $NGPU GPU(s), budget ${TOTAL_BUDGET_S}s, out $OUT"
if [ "$NGPU" -lt 1 ]; then echo "run_gpu: no CUDA device visible" >&2; exit 1; fi

# part NAME LOG CAP_S CMD... : run CMD with timeout min(CAP_S, time left); full output to LOG, filtered to stdout.
part() {
  local name=$1 log=$2 cap=$3; shift 3
  local left=$(( DEADLINE - $(date +%s) ))
  local limit=$(( cap < left ? cap : left ))
  if [ "$limit" -lt 30 ]; then echo "== $name: skipped (${left}s left)"; return 0; fi
  echo "== $name (timeout ${limit}s)"
  local start=$(date +%s)
  timeout --signal=TERM --kill-after=15 "$limit" "$@" > >(tee -a "$OUT/$log" | grep -v -i -E "warn|^\s*$") 2>&1
  local rc=$?
  echo "== $name: exit $rc after $(( $(date +%s) - start ))s"
}

# Multi-GPU part (~200 s measured budget, capped at 300 s): the same global batch in both runs. 0.5B: 2
# micro-batches of 4 per GPU per step (the 1-GPU run accumulates all of them), DDP; 3B at the upstream
# batch of 4 per GPU with activation checkpointing (LLM layers and ViT blocks), one micro-batch per GPU,
# FSDP full sharding (the ZeRO-2-style setting is opt-in: see multi_gpu_bench.DEFAULT_STRATEGIES). 1 warm-up + 6 timed steps; medians and spread.
MICRO="05b=$(( 2 * (NGPU > 1 ? NGPU : 2) )),3b=$(( NGPU > 1 ? NGPU : 2 ))"
MULTI_ARGS=(--sizes "$SIZES" --micro-batches "$MICRO" --il-setup 3b=4:ckpt --warmup 1 --steps 6
            --fit-from "$OUT/gpu_bench.json" --out "$OUT")
PORT=$(( 29500 + RANDOM % 1000 ))
# gpu_bench keeps its own budget (255 s) 5 s inside the part's cap, writes gpu_bench.json after every
# measurement, and runs the figures in order of importance: 0.5B fast_act (act at batch 1 old -> fused
# decision+value -> + CUDA graphs -> + compiled ViT; decision-only vs generation at batch 32), 0.5B IL step
# eager then with the compiled ViT (MFU), 0.5B PPO, then 3B IL step, 3B fast_act.
if [ "${SKIP_SINGLE:-0}" = 1 ]; then echo "== gpu_bench: skipped (SKIP_SINGLE=1)"; else
  part gpu_bench gpu_bench.log 260 \
    $PY benchmarks/gpu_bench.py --size all --steps 5 --budget-s 255 --size-timeout 190 --out "$OUT"
fi
part multi_gpu_w1 multi_gpu.log 145 \
  $PY -m torch.distributed.run --nproc_per_node=1 --master_port=$PORT benchmarks/multi_gpu_bench.py "${MULTI_ARGS[@]}"
if [ "$NGPU" -gt 1 ]; then
  part "multi_gpu_w$NGPU" multi_gpu.log 150 \
    $PY -m torch.distributed.run --nproc_per_node=$NGPU --master_port=$((PORT + 1)) benchmarks/multi_gpu_bench.py \
      "${MULTI_ARGS[@]}"
  if [ -f "$OUT/multi_gpu_w1.json" ] && [ -f "$OUT/multi_gpu_w$NGPU.json" ]; then
    $PY benchmarks/multi_gpu_bench.py --compare "$OUT/multi_gpu_w1.json" "$OUT/multi_gpu_w$NGPU.json" --out "$OUT"
  else
    echo "== compare: skipped (a multi-GPU result is missing)"
  fi
fi
echo "run_gpu: done in $(( TOTAL_BUDGET_S - (DEADLINE - $(date +%s)) ))s; files:"; ls -la "$OUT"
