"""No non-finite value reaches the weights: bad steps are skipped and counted, runs that keep
producing them stop with a message, and nothing non-finite is ever saved or exported."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from reft_lightning import HFExport, LastCheckpoint
from reft_lightning.checkpoints.finite import NonFiniteStateError
from reft_lightning.data.datasets import SyntheticDataModule
from reft_lightning.generation import SamplingArgs
from reft_lightning.stages.numeric_guard import NonFiniteTrainingError
from reft_lightning.stages.optim import OptimizerArgs
from reft_lightning.stages.ppo_args import PPOArgs
from reft_lightning.stages.reft import ReFTModule
from reft_lightning.stages.sft import SFTModule

POISONED_BATCH = 1


def _data(model_dir: Path, num_train: int = 16) -> SyntheticDataModule:
    return SyntheticDataModule(
        tokenizer=str(model_dir), num_train=num_train, num_val=4, num_test=4, batch_size=4, eval_batch_size=4
    )


def _trainer(root: Path, callbacks: list[L.Callback], **overrides: Any) -> L.Trainer:
    settings: dict[str, Any] = dict(
        accelerator="cpu",
        max_epochs=1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=CSVLogger(root, name="csv"),
        default_root_dir=root,
        log_every_n_steps=1,
        callbacks=callbacks,
    )
    return L.Trainer(**{**settings, **overrides})


class WeightChanges(L.Callback):
    """Records, per training batch, whether the policy's weights changed during it."""

    def __init__(self) -> None:
        self.changed: list[bool] = []

    def _weights(self, module: L.LightningModule) -> torch.Tensor:
        return torch.cat([p.detach().flatten().clone() for p in module.model.parameters()])

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        self._before = self._weights(module)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        self.changed.append(not torch.equal(self._before, self._weights(module)))


class PoisonedSFT(SFTModule):
    """SFT whose loss is nan on one batch (as a bad batch or an overflow would make it)."""

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        return loss * math.nan if batch_idx == POISONED_BATCH else loss


class PoisonedReFT(ReFTModule):
    """ReFT whose PPO loss is nan in one iteration (every optimizer step of it)."""

    def manual_backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        super().manual_backward(
            loss * math.nan if self.iterations == POISONED_BATCH else loss, *args, **kwargs
        )


def _logged(root: Path, name: str) -> list[float]:
    rows = (root / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    column = rows[0].split(",").index(name)
    return [float(row.split(",")[column]) for row in rows[1:] if row.split(",")[column]]


def test_sft_skips_the_step_with_a_nan_loss_and_counts_it(tiny_model_dir: Path, tmp_path: Path) -> None:
    L.seed_everything(0)
    module = PoisonedSFT(model=str(tiny_model_dir), optimizer=OptimizerArgs(lr=1e-3))
    changes = WeightChanges()
    last = LastCheckpoint(every_n_train_batches=0)
    _trainer(tmp_path, [changes, last]).fit(module, _data(tiny_model_dir))

    assert changes.changed == [True, False, True, True]
    assert module.nonfinite_guard.skipped == 1 and module.nonfinite_guard.consecutive == 0
    assert _logged(tmp_path, "train/skipped_updates") == [0.0, 1.0, 1.0, 1.0]
    saved = torch.load(last.path(module.trainer), map_location="cpu", weights_only=False)
    assert saved["nonfinite_guard"] == {"skipped": 1, "consecutive": 0}
    assert all(torch.isfinite(t).all() for t in saved["state_dict"].values())


def test_reft_skips_the_iteration_with_a_nan_loss(tiny_model_dir: Path, tmp_path: Path) -> None:
    L.seed_everything(0)
    module = PoisonedReFT(
        model=str(tiny_model_dir),
        ppo=PPOArgs(kl_coef=0.05, ppo_epochs=2),
        rollout=SamplingArgs(max_new_tokens=12),
        optimizer=OptimizerArgs(lr=1e-3, schedule="constant", warmup_ratio=0.0),
    )
    changes = WeightChanges()
    _trainer(tmp_path, [changes], max_steps=3 * 2, enable_checkpointing=False).fit(
        module, _data(tiny_model_dir)
    )

    assert changes.changed == [True, False, True]
    assert module.nonfinite_guard.skipped == 2, "both PPO epochs' steps of the poisoned iteration"
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_sft_at_a_diverging_lr_stops_naming_the_lr_and_saves_nothing_nonfinite(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """lr 1e6: the first step is finite but throws the weights to ~1e6, every later loss is nan."""
    L.seed_everything(0)
    module = SFTModule(
        model=str(tiny_model_dir),
        optimizer=OptimizerArgs(lr=1e6, schedule="constant", warmup_ratio=0.0),
        max_nonfinite_steps=3,
    )
    last = LastCheckpoint(every_n_train_batches=1)
    with pytest.raises(NonFiniteTrainingError, match=r"4 consecutive .*model\.init_args\.optimizer\.lr"):
        _trainer(tmp_path, [last, HFExport()]).fit(module, _data(tiny_model_dir, num_train=64))
    saved = torch.load(last.path(module.trainer), map_location="cpu", weights_only=False)
    assert saved["global_step"] == 4 and saved["nonfinite_guard"] == {"skipped": 3, "consecutive": 3}
    assert all(torch.isfinite(t).all() for t in saved["state_dict"].values())
    assert not (tmp_path / "hf" / "final").exists()


def test_a_nonfinite_weight_is_neither_checkpointed_nor_exported(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    L.seed_everything(0)
    module = SFTModule(model=str(tiny_model_dir))
    trainer = _trainer(tmp_path, [], max_steps=1, enable_checkpointing=False)
    trainer.fit(module, _data(tiny_model_dir))
    with torch.no_grad():
        module.model.transformer.wte.weight[3, 0] = math.inf
    with pytest.raises(
        NonFiniteStateError, match=r"not writing a checkpoint: tensor 'state_dict\.model\.transformer\.wte"
    ):
        trainer.save_checkpoint(tmp_path / "bad.ckpt")
    assert not (tmp_path / "bad.ckpt").exists()
    with pytest.raises(
        NonFiniteStateError, match=r"not writing the export .*final: tensor 'transformer\.wte"
    ):
        HFExport(dirpath=str(tmp_path / "hf")).on_fit_end(trainer, module)
    assert not (tmp_path / "hf" / "final").exists()
