#!/usr/bin/env bash
# Distributed imitation learning through torchrun.
#   ./adzoo/minddrive/minddrive_dist_train.sh CONFIG NGPUS [minddrive train args...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT on every node (torchrun's standard
# rendezvous variables); NGPUS is the number of processes per node. PYTHON picks the interpreter.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NGPUS [--work-dir DIR] [--resume] [--cfg-options KEY=VALUE ...]" >&2
    exit 2
fi
CONFIG=$1
NGPUS=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
PYTHON=${PYTHON:-python}

exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --nproc_per_node="$NGPUS" \
    --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" \
    -m minddrive.cli train "$CONFIG" --launcher pytorch "$@"
