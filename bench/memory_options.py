"""Memory of each way to train ReFT, measured on a tiny GPT-2 (6 layers, 256 wide) on CPU.

    python bench/memory_options.py [--out runs/bench_memory] [--steps 3] [--only NAME_PART]

Runs a few ReFT iterations per option (DDP float32 on 1 and 2 processes; FSDP2 on 2 processes in
float32, with bf16 compute, with a bf16 reference, with the reference offloaded; LoRA on one
process over a float32 and a bf16 base and under FSDP2, the reference being the base itself) and
prints, per process (the largest over processes), the bytes of each model's weights, the
gradients, the AdamW states and the peak RSS (``bench/memory_probe.py``). Tensor bytes are the
figures that scale to a 7B model (docs/scaling.md); on CPU the RSS is mostly the interpreter and
torch, and CPU offload moves nothing (the "accelerator" is the host). Numbers:
docs/results/memory_options.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from runs import reft

FSDP2 = (
    "{class_path: lightning.pytorch.strategies.ModelParallelStrategy, "
    "init_args: {data_parallel_size: 2, tensor_parallel_size: 1}}"
)
OPTIONS: dict[str, list[str]] = {
    "DDP float32, 1 process": ["--trainer.devices=1"],
    "DDP float32, 2 processes": ["--trainer.devices=2", "--trainer.strategy=ddp"],
    "FSDP2 x 2, float32": ["--trainer.devices=2", f"--trainer.strategy={FSDP2}"],
    "FSDP2 x 2, bf16 compute": [
        "--trainer.devices=2", f"--trainer.strategy={FSDP2}",
        "--model.init_args.fsdp={param_dtype: bfloat16, reduce_dtype: float32}",
    ],
    "FSDP2 x 2, bf16 compute + bf16 reference": [
        "--trainer.devices=2", f"--trainer.strategy={FSDP2}",
        "--model.init_args.fsdp={param_dtype: bfloat16, reduce_dtype: float32}",
        "--model.init_args.reference_dtype=bfloat16",
    ],
    "FSDP2 x 2, bf16 compute + reference offload": [
        "--trainer.devices=2", f"--trainer.strategy={FSDP2}",
        "--model.init_args.fsdp={param_dtype: bfloat16, reduce_dtype: float32}",
        "--model.init_args.reference_offload=true",
    ],
    "DDP, 1 process, LoRA r=8 (float32 base)": ["--trainer.devices=1", "--model.init_args.lora.r=8"],
    "DDP, 1 process, LoRA r=8 (bf16 base)": [
        "--trainer.devices=1", "--model.init_args.lora.r=8", "--model.init_args.dtype=bfloat16",
    ],
    "FSDP2 x 2, LoRA r=8 (bf16 base)": [
        "--trainer.devices=2", f"--trainer.strategy={FSDP2}", "--model.init_args.lora.r=8",
        "--model.init_args.dtype=bfloat16",
    ],
}  # fmt: skip
COLUMNS = ("model", "reference", "reference_host", "value_head", "gradients", "adam_states", "peak_rss")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench_memory"))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--only", default="", help="run only the options whose name contains this")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, ["bench", os.environ.get("PYTHONPATH")]))
    model = args.out / "tiny"
    if not model.is_dir():
        subprocess.run(
            [sys.executable, "-m", "reft_lightning.tiny", "--out", str(model), "--size", "mini"], check=True
        )
    rows = []
    for index, (name, extra) in enumerate(OPTIONS.items()):
        if args.only not in name:
            continue
        record = args.out / f"option_{index}.json"
        reft(
            "fit", "--config=configs/demo/reft_synthetic.yaml",
            f"--trainer.default_root_dir={args.out}/run_{index}", f"--model.init_args.model={model}",
            f"--trainer.max_steps={args.steps}", "--trainer.limit_val_batches=0",
            "--trainer.num_sanity_val_steps=0", "--trainer.val_check_interval=null", "--trainer.logger=false",
            "--trainer.callbacks+=memory_probe.TensorMemory", f"--trainer.callbacks.out={record}",
            "--model.init_args.rollout.max_new_tokens=32", "--data.init_args.num_train=64",
            "--data.init_args.num_val=4", "--data.init_args.num_test=4", "--data.init_args.batch_size=4",
            *extra,
        )  # fmt: skip
        rows.append((name, json.loads(record.read_text())))
        print(f"done: {name}", file=sys.stderr)
    mib = 2**20
    print("| option | " + " | ".join(f"{c} (MiB)" for c in COLUMNS) + " |")
    print("| --- |" + " --- |" * len(COLUMNS))
    for name, record in rows:
        print(f"| {name} | " + " | ".join(f"{record.get(c, 0.0) / mib:.2f}" for c in COLUMNS) + " |")


if __name__ == "__main__":
    main()
