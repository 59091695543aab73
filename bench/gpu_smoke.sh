#!/usr/bin/env bash
# GPU smoke test: SFT and ReFT a few steps under FSDP2 with bf16, on a tiny model and, if one is in the
# Hugging Face cache, on a real 100M-1B model (SMOKE_MODEL, default Qwen/Qwen2.5-0.5B); prints each run's
# peak CUDA memory and tokens/s as a table; then bench/rollout_options.py on the first GPU in bf16 with
# the tiny model (issue 13's rollout target: the static-cache engine against plain generate; skipped
# with SMOKE_ROLLOUT=0). Where no CUDA GPU exists it says so and exits 0.
#
#   bash bench/gpu_smoke.sh            # every visible GPU (FSDP2 over them)
#   SMOKE_STEPS=20 bash bench/gpu_smoke.sh
#
# Results go to docs/results/ by hand, with the printed table and the GPU model.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
if [ "$GPUS" = "0" ]; then
  echo "gpu_smoke: no CUDA GPU here (torch.cuda.is_available() is False): skipped"
  exit 0
fi
OUT=${SMOKE_OUT:-runs/gpu_smoke}
STEPS=${SMOKE_STEPS:-10}
MODEL=${SMOKE_MODEL:-Qwen/Qwen2.5-0.5B}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | sed 's/^/gpu: /' || true
[ -d "$OUT/tiny" ] || "$PY" -m reft_lightning.tiny --out "$OUT/tiny" --size micro
MODELS=("$OUT/tiny")
if HF_HUB_OFFLINE=1 "$PY" -c "from transformers import AutoConfig; AutoConfig.from_pretrained('$MODEL')" 2>/dev/null; then
  MODELS+=("$MODEL")
else
  echo "gpu_smoke: $MODEL is not in the Hugging Face cache: only the tiny model runs"
fi
STRATEGY="{class_path: lightning.pytorch.strategies.ModelParallelStrategy, init_args: {data_parallel_size: $GPUS, tensor_parallel_size: 1}}"
run() {  # stage model name extra...
  local stage=$1 model=$2 name=$3; shift 3
  PYTHONPATH="bench${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 "$PY" -m reft_lightning.cli fit \
    --config "configs/demo/${stage}_synthetic.yaml" --trainer.default_root_dir "$OUT/$name" \
    --trainer.accelerator gpu --trainer.devices "$GPUS" --trainer.strategy "$STRATEGY" \
    --trainer.precision bf16-mixed --trainer.max_steps "$STEPS" --trainer.limit_val_batches 0 \
    --trainer.num_sanity_val_steps 0 --trainer.val_check_interval null --trainer.enable_progress_bar false \
    --trainer.callbacks+=gpu_probe.PeakMemoryAndThroughput --trainer.callbacks.out "$OUT/$name.json" \
    --model.init_args.model "$model" "$@" > "$OUT/$name.log" 2>&1 \
    || { echo "gpu_smoke: $name failed, see $OUT/$name.log"; tail -5 "$OUT/$name.log"; return 1; }
}
for model in "${MODELS[@]}"; do
  tag=$(basename "$model")
  run sft "$model" "sft_$tag" --model.init_args.eval_generation.max_new_tokens 32
  run reft "$model" "reft_$tag" --model.init_args.rollout.max_new_tokens 64 \
    --model.init_args.eval_generation.max_new_tokens 32
done
"$PY" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
print("| run | steps | peak CUDA memory (GiB) | tokens/s (all GPUs) |")
print("| --- | --- | --- | --- |")
for path in sorted(Path(sys.argv[1]).glob("*.json")):
    r = json.loads(path.read_text())
    print(f"| {path.stem} | {r['steps']} | {r['peak_gib']:.2f} | {r['tokens_per_s']:.0f} |")
PY
if [ "${SMOKE_ROLLOUT:-1}" = "1" ]; then
  PYTHONPATH="bench${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 "$PY" bench/rollout_options.py \
    --model "$OUT/tiny" --device cuda --dtype bfloat16 --out "$OUT/rollout_options.md" > "$OUT/rollout_options.log" 2>&1 \
    && cat "$OUT/rollout_options.md" \
    || { echo "gpu_smoke: rollout_options failed, see $OUT/rollout_options.log"; tail -5 "$OUT/rollout_options.log"; exit 1; }
fi
