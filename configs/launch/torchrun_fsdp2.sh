#!/usr/bin/env bash
# torchrun: FSDP2 on 2 nodes x 8 GPUs through Lightning (it reads torchrun's RANK, LOCAL_RANK,
# WORLD_SIZE, MASTER_ADDR and MASTER_PORT). Run the same command on every node, from the repository
# root on a filesystem every node sees, with NODE_RANK 0 on the node whose address is MASTER_ADDR:
#   NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash configs/launch/torchrun_fsdp2.sh [CONFIG] [extra reft args...]
#   NODE_RANK=1 MASTER_ADDR=10.0.0.1 bash configs/launch/torchrun_fsdp2.sh [CONFIG] [extra reft args...]
# CONFIG defaults to configs/reft_gsm8k.yaml; add --ckpt_path last to resume. What must be shared
# between nodes: docs/multinode.md. Untested on a real cluster.
set -euo pipefail
: "${NODE_RANK:?set NODE_RANK (0 on the MASTER_ADDR node, 1 on the other)}"
: "${MASTER_ADDR:?set MASTER_ADDR (the address of the NODE_RANK 0 node, reachable from both)}"
CONFIG=${1:-configs/reft_gsm8k.yaml}
shift || true
[ -f "$CONFIG" ] || { echo "torchrun_fsdp2: config not found: $CONFIG" >&2; exit 2; }
exec torchrun --nnodes 2 --nproc-per-node 8 --node-rank "$NODE_RANK" \
  --master-addr "$MASTER_ADDR" --master-port "${MASTER_PORT:-29500}" \
  -m reft_lightning.cli fit --config "$CONFIG" --config configs/launch/fsdp2_multinode.yaml "$@"
