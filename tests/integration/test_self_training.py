"""The paper's self-training baselines on a tiny offline model.

Online: the loss of one step equals 0.5 * CE(correct samples) + 0.5 * CE(gold chains), recomputed
here from unpadded sequences through the model's own ``labels`` loss. Offline: ``reft predict`` on
the training questions writes the samples, and SFT with ``train_predictions`` trains on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from reft_lightning.cli import main
from reft_lightning.data.collate import collate_eval
from reft_lightning.data.datasets import SyntheticDataModule
from reft_lightning.data.example import MathExample
from reft_lightning.data.formats import CotFormat, prompt_text, target_text
from reft_lightning.data.predictions import read_predictions, self_training_examples
from reft_lightning.generation import SamplingArgs
from reft_lightning.rewards.base import Reward, RewardOutput
from reft_lightning.stages.self_training import OnlineSelfTrainingModule
from tests.conftest import REPO
from tests.integration.test_cli import CPU_OVERRIDES, _metrics

NEW_TOKENS = 8


class EvenIdReward(Reward):
    """Correct for questions whose id ends in an even number (``never``: for none), whatever the text."""

    def __init__(self, never: bool = False) -> None:
        self.never = never

    def __call__(self, completions: Sequence[str], examples: Sequence[MathExample]) -> RewardOutput:
        correct = [not self.never and int(e.id.rpartition("_")[2]) % 2 == 0 for e in examples]
        return RewardOutput(
            scores=[float(c) for c in correct], answers=[None] * len(correct), correct=correct
        )


def _reference_loss(model_dir: Path, examples: list[MathExample], reward: Reward) -> tuple[float, int]:
    """0.5 * CE(correct greedy samples) + 0.5 * CE(gold targets), each a mean over its target tokens,
    from one unpadded sequence at a time; and the number of correct samples."""
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encode = lambda text: tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]  # noqa: E731

    def token_loss_sum(prompt: torch.Tensor, target: torch.Tensor) -> tuple[float, int]:
        ids = torch.cat([prompt, target], dim=1)
        labels = ids.clone()
        labels[:, : prompt.shape[1]] = -100
        with torch.no_grad():
            loss = model(input_ids=ids, labels=labels).loss
        return float(loss) * target.shape[1], target.shape[1]

    sample_sum = sample_tokens = gold_sum = gold_tokens = correct_count = 0
    for example in examples:
        prompt = encode(prompt_text(example, CotFormat.NCOT, for_generation=True))
        with torch.no_grad():
            out = model.generate(prompt, max_new_tokens=NEW_TOKENS, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)[:, prompt.shape[1]:]  # fmt: skip
        ends = (out[0] == tokenizer.eos_token_id).nonzero()
        response = out[:, : int(ends[0]) + 1] if len(ends) else out
        text = tokenizer.decode(response[0], skip_special_tokens=True)
        if reward([text], [example]).correct[0]:
            total, count = token_loss_sum(prompt, response)
            sample_sum, sample_tokens, correct_count = (
                sample_sum + total,
                sample_tokens + count,
                correct_count + 1,
            )
        target = torch.cat(
            [encode(target_text(example, CotFormat.NCOT)), torch.tensor([[tokenizer.eos_token_id]])], 1
        )
        total, count = token_loss_sum(
            encode(prompt_text(example, CotFormat.NCOT, for_generation=False)), target
        )
        gold_sum, gold_tokens = gold_sum + total, gold_tokens + count
    sample_loss = sample_sum / sample_tokens if sample_tokens else 0.0
    return 0.5 * sample_loss + 0.5 * gold_sum / gold_tokens, correct_count


@pytest.mark.parametrize("never", [False, True])
def test_online_self_training_loss_is_half_sample_and_half_gold_cross_entropy(
    tiny_model_dir: Path, never: bool
) -> None:
    data = SyntheticDataModule(tokenizer=str(tiny_model_dir), num_train=6, num_val=2, num_test=2)
    data.setup("fit")
    examples = data.examples["train"]
    features = [data._tokenized["train"][i] for i in range(len(examples))]
    batch = collate_eval(features, data.tokenizer.pad_token_id, examples)
    assert batch["prompt_mask"].eq(0).any(), "the check needs left padding"
    reward = EvenIdReward(never)
    module = OnlineSelfTrainingModule(
        model=str(tiny_model_dir),
        reward=reward,
        rollout=SamplingArgs(max_new_tokens=NEW_TOKENS, do_sample=False),
    )
    module.configure_model()
    expected, correct = _reference_loss(tiny_model_dir, examples, reward)
    assert never or 0 < correct < len(examples), "the check needs correct and wrong samples"
    loss = module.training_step(batch, 0)
    assert abs(loss.item() - expected) < 1e-5


def _cli(subcommand: str, config: str, model: Path, root: Path, *extra: str) -> None:
    main(
        [
            subcommand,
            f"--config={REPO / 'configs' / 'demo' / config}",
            *CPU_OVERRIDES,
            f"--trainer.default_root_dir={root}",
            f"--model.init_args.model={model}",
            "--model.init_args.eval_generation.max_new_tokens=6",
            "--data.init_args.num_train=12",
            "--data.init_args.num_val=4",
            "--data.init_args.num_test=4",
            "--data.init_args.batch_size=4",
            "--data.init_args.eval_batch_size=4",
            *extra,
        ]
    )


def test_online_self_training_config_trains_and_logs_its_two_losses(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "online"
    _cli(
        "fit", "online_self_training_synthetic.yaml", tiny_model_dir, root,
        "--trainer.max_steps=2", "--trainer.val_check_interval=2",
        "--model.init_args.rollout.max_new_tokens=6", "--model.init_args.num_samples=2",
        f"--model.init_args.reward.class_path={__name__}.EvenIdReward",
    )  # fmt: skip
    steps = [row for row in _metrics(root) if row.get("train/sample_loss")]
    assert len(steps) == 2
    for row in steps:  # half the questions count as correct, so both terms are non-zero
        assert float(row["train/accuracy"]) > 0
        loss = 0.5 * float(row["train/sample_loss"]) + 0.5 * float(row["train/gold_loss"])
        assert abs(float(row["train/loss"]) - loss) < 1e-4
    assert (root / "hf" / "best" / "config.json").is_file()


def test_offline_self_training_trains_on_the_correct_samples_of_a_prediction_file(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    sampling = "--model.init_args.sampling_eval={num_samples: 3, temperature: 1.0}"
    reward = f"--model.init_args.reward.class_path={__name__}.EvenIdReward"
    _cli("predict", "sft_synthetic.yaml", tiny_model_dir, tmp_path / "predict", sampling, reward,
         "--data.init_args.predict_split=train")  # fmt: skip
    predictions = tmp_path / "predict" / "predictions.jsonl"
    records = read_predictions(predictions, split="train")
    assert len(records) == 12 and all(len(r.samples) == 3 and r.question for r in records)
    data = SyntheticDataModule(tokenizer=str(tiny_model_dir), num_train=12, num_val=4, num_test=4,
                               train_predictions=str(predictions), samples_per_question=2)  # fmt: skip
    data.setup("fit")
    chains = self_training_examples(data.examples["train"], records, CotFormat.NCOT, 2)
    assert len(chains) > len(data.examples["train"]), "the check needs some correct samples"
    rows = data.train_dataloader().dataset
    assert len(rows) == len(chains)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = {tokenizer.decode(row["input_ids"], skip_special_tokens=True) for row in rows}
    assert texts == {prompt_text(e, CotFormat.NCOT, False) + target_text(e, CotFormat.NCOT) for e in chains}
    root = tmp_path / "sft"
    _cli("fit", "sft_synthetic.yaml", tiny_model_dir, root, "--trainer.max_steps=2",
         f"--data.init_args.train_predictions={predictions}")  # fmt: skip
    assert (root / "hf" / "final" / "config.json").is_file()


def test_prompt_stages_refuse_offline_self_training_data(tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text("")
    data = SyntheticDataModule(
        tokenizer=str(tiny_model_dir), num_train=8, num_val=2, num_test=2,
        train_predictions=str(tmp_path / "p.jsonl"), train_batches="prompts_and_sft",
    )  # fmt: skip
    data.setup("fit")
    with pytest.raises(ValueError, match=r"data\.init_args\.train_predictions .* remove the key"):
        data.train_dataloader()
