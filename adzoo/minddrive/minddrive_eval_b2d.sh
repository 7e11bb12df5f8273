#!/usr/bin/env bash
# Bench2Drive closed-loop evaluation of MindDrive (220 routes) over several GPUs / CARLA servers.
#
#   BENCH2DRIVE_ROOT=/path/to/Bench2Drive bash adzoo/minddrive/minddrive_eval_b2d.sh CONFIG CKPT_DIR [GPU_LIST] [TASKS_PER_GPU]
#   e.g.  ... adzoo/minddrive/configs/minddrive_qwen2_05B_infer.py ckpts/minddrive_rl 0,1,2,3,4,5,6,7 1
#
# As Bench2Drive's run_evaluation_multi_*.sh: the route file is split into one contiguous chunk per task,
# task i talks to CARLA on port 30000+150*i (traffic manager 50000+150*i), writes its own leaderboard
# checkpoint JSON, and is looped until its chunk is finished (the leaderboard exits after a simulator crash;
# RESUME=True continues from the first unfinished route). Finally `minddrive score DIR` merges and scores.
set -euo pipefail

CONFIG=${1:?usage: BENCH2DRIVE_ROOT=... $0 CONFIG CKPT_DIR [GPU_LIST] [TASKS_PER_GPU]}
CKPT=${2:?usage: BENCH2DRIVE_ROOT=... $0 CONFIG CKPT_DIR [GPU_LIST] [TASKS_PER_GPU]}
GPU_LIST=${3:-0}
TASKS_PER_GPU=${4:-1}
: "${BENCH2DRIVE_ROOT:?set BENCH2DRIVE_ROOT to a Bench2Drive checkout (with leaderboard/ and scenario_runner/)}"
: "${CARLA_ROOT:=${BENCH2DRIVE_ROOT}/carla}"
BASE_ROUTES=${BASE_ROUTES:-${BENCH2DRIVE_ROOT}/leaderboard/data/bench2drive220.xml}
ALGO=${ALGO:-minddrive}
PLANNER_TYPE=${PLANNER_TYPE:-traj}
MAX_ATTEMPTS=${MAX_ATTEMPTS:-20}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PYTHON=${PYTHON:-python}
OUT_DIR=${OUT_DIR:-${REPO_ROOT}/work_dirs/b2d_eval/${ALGO}_b2d_${PLANNER_TYPE}}
export SAVE_PATH=${SAVE_PATH:-${OUT_DIR}/save}
for path in "$CONFIG" "$CKPT" "$BASE_ROUTES" "$BENCH2DRIVE_ROOT/leaderboard/leaderboard/leaderboard_evaluator.py"; do
    [ -e "$path" ] || { echo "minddrive_eval_b2d.sh: error: $path not found" >&2; exit 2; }
done

IFS=',' read -r -a GPUS <<< "$GPU_LIST"
TASK_NUM=$(( ${#GPUS[@]} * TASKS_PER_GPU ))
mkdir -p "$OUT_DIR/checkpoints" "$SAVE_PATH"
ROUTE_DIR="$OUT_DIR/routes"
if [ ! -f "$ROUTE_DIR/split_done.flag" ]; then
    # same chunks and names as Bench2Drive's tools/split_xml.py
    "$PYTHON" -m minddrive.sim.routes split "$BASE_ROUTES" "$TASK_NUM" --algo "$ALGO" --planner "$PLANNER_TYPE" \
        --out-dir "$ROUTE_DIR" > /dev/null
    touch "$ROUTE_DIR/split_done.flag"
fi

export CARLA_ROOT
export PYTHONPATH="${CARLA_ROOT}/PythonAPI:${CARLA_ROOT}/PythonAPI/carla:${BENCH2DRIVE_ROOT}/leaderboard:${BENCH2DRIVE_ROOT}/scenario_runner:${REPO_ROOT}:${PYTHONPATH:-}"
export CHALLENGE_TRACK_CODENAME=SENSORS REPETITIONS=1 RESUME=True DEBUG_CHALLENGE=0 IS_BENCH2DRIVE=True
STEM=$(basename "$BASE_ROUTES" .xml)

run_task() {  # task index, gpu: loop the leaderboard until its checkpoint says the chunk is finished
    local i=$1 gpu=$2
    local port=$((30000 + 150 * i)) tm_port=$((50000 + 150 * i))
    local routes="$ROUTE_DIR/${STEM}_${i}_${ALGO}_${PLANNER_TYPE}.xml"
    local checkpoint="$OUT_DIR/checkpoints/eval_${STEM}_${i}.json"
    for attempt in $(seq 1 "$MAX_ATTEMPTS"); do
        CUDA_VISIBLE_DEVICES=$gpu "$PYTHON" "$BENCH2DRIVE_ROOT/leaderboard/leaderboard/leaderboard_evaluator.py" \
            --routes="$routes" --repetitions=1 --track=SENSORS --checkpoint="$checkpoint" \
            --agent="$REPO_ROOT/team_code/minddrive_b2d_agent.py" --agent-config="${CONFIG}+${CKPT}" \
            --debug=0 --resume=True --port="$port" --traffic-manager-port="$tm_port" --gpu-rank="$gpu" \
            >> "$OUT_DIR/task_${i}.log" 2>&1 || true
        if "$PYTHON" - "$checkpoint" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
done, total = data["_checkpoint"]["progress"]
sys.exit(0 if data.get("entry_status") == "Finished" or (total and done >= total) else 1)
PY
        then echo "task $i finished (attempt $attempt)"; return 0; fi
        echo "task $i: leaderboard exited before finishing (attempt $attempt); restarting" >&2
        sleep 10
    done
    echo "task $i: gave up after $MAX_ATTEMPTS attempts" >&2
}

for ((i = 0; i < TASK_NUM; i++)); do
    run_task "$i" "${GPUS[$((i % ${#GPUS[@]}))]}" &
    sleep 5
done
wait
"$PYTHON" -m minddrive.cli score "$OUT_DIR/checkpoints" --routes "$BASE_ROUTES" --output "$OUT_DIR/score.json"
