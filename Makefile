# Two entry points for a fresh clone: `make demo` (offline CPU demo) and `make test` (the test suite).
# Both create .venv and install the CPU build of torch 2.13.0 first, then the project, with every
# package at the version in constraints.txt (the versions the published results were measured with).
VENV ?= .venv
PY := $(VENV)/bin/python
REFT := $(VENV)/bin/reft
DEMO ?= runs/demo

.PHONY: setup demo test lint clean-demo

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# Offline demo on CPU: tiny base model on arithmetic chains, SFT on synthetic word problems, then
# ReFT (PPO) from the SFT checkpoint chosen on validation, once per seed in DEMO_SEEDS; test
# accuracy of each stage's best-validation checkpoint, printed side by side at the end.
DEMO_SEEDS ?= 0 1 2

demo: setup
	$(PY) -m reft_lightning.tiny --out $(DEMO)/init --size micro --data synthetic
	$(REFT) fit --config configs/demo/base_arithmetic.yaml --trainer.default_root_dir $(DEMO)/base \
		--model.init_args.model $(DEMO)/init
	$(REFT) fit --config configs/demo/sft_synthetic.yaml --trainer.default_root_dir $(DEMO)/sft \
		--model.init_args.model $(DEMO)/base/hf/final
	$(REFT) test --config configs/demo/sft_synthetic.yaml --trainer.default_root_dir $(DEMO)/sft_test \
		--model.init_args.model $(DEMO)/sft/hf/best
	for seed in $(DEMO_SEEDS); do \
		$(REFT) fit --config configs/demo/reft_synthetic.yaml --seed_everything $$seed \
			--data.init_args.shuffle_seed $$seed --trainer.default_root_dir $(DEMO)/reft_seed$$seed \
			--model.init_args.model $(DEMO)/sft/hf/best --model.init_args.value_model $(DEMO)/sft/hf/best \
		&& $(REFT) test --config configs/demo/reft_synthetic.yaml \
			--trainer.default_root_dir $(DEMO)/reft_seed$${seed}_test \
			--model.init_args.model $(DEMO)/reft_seed$$seed/hf/best || exit 1; \
	done
	$(PY) bench/demo_summary.py --demo $(DEMO) --seeds $(DEMO_SEEDS)

test: setup
	$(VENV)/bin/pytest

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean-demo:
	rm -rf $(DEMO)
