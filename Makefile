# Two entry points for a fresh clone: `make demo` (offline CPU demo) and `make test` (the test suite).
# Both create .venv and install the CPU build of torch 2.13.0 first, then the project, with every
# package at the version in constraints.txt (the versions the published results were measured with).
VENV ?= .venv
PY := $(VENV)/bin/python
REFT := $(VENV)/bin/reft
DEMO ?= runs/demo

.PHONY: setup demo test lint clean-demo demo-sft-control

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# Offline demo on CPU: tiny base model on arithmetic chains, SFT on synthetic word problems, then ReFT
# (PPO) from the SFT run's warm-up export DEMO_WARMUP (as the paper starts ReFT from an early
# checkpoint of its SFT run), once per seed in DEMO_SEEDS, the seeds at once with one thread each.
# Printed at the end: greedy test accuracy of the warm-up, of each ReFT seed, of SFT continued from
# the warm-up at ReFT's lr for as many optimizer steps (the control: is the gain ReFT's, or just
# more training at a small lr?) and of the SFT run's own best checkpoint (all chosen on validation).
DEMO_SEEDS ?= 0 1 2
DEMO_WARMUP ?= epoch_10
# Threads of the SFT stages. The published numbers were measured with 2: the SFT outcome depends on
# float rounding, so on the thread count and the CPU (docs/results/reft_helps.md, section 7).
DEMO_THREADS ?= 2
WARMUP = $(DEMO)/sft/hf/$(DEMO_WARMUP)

demo: export OMP_NUM_THREADS = $(DEMO_THREADS)
demo: setup
	$(PY) -m reft_lightning.tiny --out $(DEMO)/init --size micro --data synthetic
	$(REFT) fit --config configs/demo/base_arithmetic.yaml --trainer.default_root_dir $(DEMO)/base \
		--model.init_args.model $(DEMO)/init
	$(REFT) fit --config configs/demo/sft_synthetic.yaml --trainer.default_root_dir $(DEMO)/sft \
		--model.init_args.model $(DEMO)/base/hf/final
	$(REFT) test --config configs/demo/sft_synthetic.yaml --trainer.default_root_dir $(DEMO)/sft_test \
		--model.init_args.model $(DEMO)/sft/hf/best
	$(REFT) test --config configs/demo/sft_synthetic.yaml --trainer.default_root_dir $(DEMO)/warmup_test \
		--model.init_args.model $(WARMUP)
	@echo "ReFT from $(WARMUP): seeds $(DEMO_SEEDS) and the SFT control at once; each one's output appears when it ends"
	$(MAKE) --no-print-directory -j --output-sync=target demo-sft-control \
		$(foreach seed,$(DEMO_SEEDS),demo-reft-seed$(seed))
	$(PY) bench/demo_summary.py --demo $(DEMO) --seeds $(DEMO_SEEDS) --warmup $(DEMO_WARMUP)

# The demo's control: SFT from the warm-up at ReFT's lr (2e-5, constant) for 2 epochs, the optimizer
# steps of one ReFT pass (94 iterations x 2 PPO epochs), and the test of its best-validation export.
demo-sft-control: export OMP_NUM_THREADS = 1
demo-sft-control:
	$(REFT) fit --config configs/demo/sft_synthetic.yaml --trainer.default_root_dir $(DEMO)/sft_control \
		--trainer.max_epochs 2 --model.init_args.optimizer '{lr: 2.0e-5, schedule: constant, warmup_ratio: 0.0}' \
		--trainer.enable_progress_bar false --model.init_args.model $(WARMUP)
	$(REFT) test --config configs/demo/sft_synthetic.yaml --trainer.default_root_dir $(DEMO)/sft_control_test \
		--trainer.enable_progress_bar false --model.init_args.model $(DEMO)/sft_control/hf/best

# One ReFT seed of the demo and the test of its best-validation checkpoint (`make demo` runs these).
demo-reft-seed%: export OMP_NUM_THREADS = 1
demo-reft-seed%:
	$(REFT) fit --config configs/demo/reft_synthetic.yaml --seed_everything $* --data.init_args.shuffle_seed $* \
		--trainer.default_root_dir $(DEMO)/reft_seed$* --trainer.enable_progress_bar false \
		--model.init_args.model $(WARMUP) --model.init_args.value_model $(WARMUP)
	$(REFT) test --config configs/demo/reft_synthetic.yaml --trainer.default_root_dir $(DEMO)/reft_seed$*_test \
		--trainer.enable_progress_bar false --model.init_args.model $(DEMO)/reft_seed$*/hf/best

# The fast tests first (a plain `pytest`), then the multi-process ones (marked slow: DDP and FSDP2 on
# 2 CPU processes).
test: setup
	$(VENV)/bin/pytest
	$(VENV)/bin/pytest -m slow

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean-demo:
	rm -rf $(DEMO)
