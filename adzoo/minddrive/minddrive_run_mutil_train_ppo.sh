#!/usr/bin/env bash
# PPO on the decision expert over NGPUS processes (torchrun; gradients all-reduced every step).
#   bash adzoo/minddrive/minddrive_run_mutil_train_ppo.sh NGPUS CONFIG IL_CKPT DATASET_INDEX [--work-dir DIR]
# (The upstream file name, typo included, is kept so existing instructions work.)
set -euo pipefail
if [[ $# -lt 4 ]]; then
  echo "usage: $0 NGPUS CONFIG CKPT DATASET_INDEX [extra minddrive ppo args]" >&2
  exit 2
fi
NGPUS=$1; CONFIG=$2; CKPT=$3; INDEX=$4; shift 4
PORT=${PORT:-29511}
PYTHON=${PYTHON:-python}
"${PYTHON}" -m torch.distributed.run --nproc_per_node="${NGPUS}" --master_port="${PORT}" -m minddrive.cli ppo "${CONFIG}" \
  --ckpt "${CKPT}" --index "${INDEX}" "$@"
