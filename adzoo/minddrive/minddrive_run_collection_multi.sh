#!/usr/bin/env bash
# Roll the policy out in parallel simulators, then decouple the buffers into $DECOUPLE_OUTPUT/dataset_index.pkl.
# Thin wrapper over `minddrive collect` + `minddrive decouple` (the logic lives in minddrive/rl/).
#
# Environment (upstream names kept):
#   CONFIG           rollout config        (default: adzoo/minddrive/configs/minddrive_qwen2_05B_lora_rollout.py)
#   CKPT             checkpoint to roll out (converted IL checkpoint, or the last PPO checkpoint)
#   GPUS             number of rollout workers, one per GPU (default: 8; CPU-only: the config's device)
#   OUTPUT_DIR       rollout buffers        (default: work_dirs/rollouts)
#   DECOUPLE_OUTPUT  decoupled dataset      (default: $OUTPUT_DIR/decoupled)
#   RAY_ADDRESS      optional: "auto" or ray://head:10001 to run the workers as Ray actors on a cluster
# Re-running the same command resumes: finished routes are kept, crashed workers' routes are driven again.
set -euo pipefail
CONFIG=${CONFIG:-adzoo/minddrive/configs/minddrive_qwen2_05B_lora_rollout.py}
CKPT=${CKPT:?set CKPT to the checkpoint to roll out}
GPUS=${GPUS:-8}
OUTPUT_DIR=${OUTPUT_DIR:-work_dirs/rollouts}
DECOUPLE_OUTPUT=${DECOUPLE_OUTPUT:-${OUTPUT_DIR}/decoupled}
PYTHON=${PYTHON:-python}
EXTRA=()
if [[ -n "${RAY_ADDRESS:-}" ]]; then EXTRA+=(--ray-address "${RAY_ADDRESS}"); fi

"${PYTHON}" -m minddrive.cli collect "${CONFIG}" --ckpt "${CKPT}" --out "${OUTPUT_DIR}" --workers "${GPUS}" "${EXTRA[@]}"
"${PYTHON}" -m minddrive.cli decouple "${OUTPUT_DIR}" --out "${DECOUPLE_OUTPUT}" --config "${CONFIG}"
echo "dataset index: ${DECOUPLE_OUTPUT}/dataset_index.pkl"
