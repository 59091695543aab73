"""Callbacks: Hugging Face export under the run directory, for later stages and plain transformers."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from reft_lightning.checkpoints.finite import require_finite
from reft_lightning.models.loading import weights_from_lightning_checkpoint
from reft_lightning.models.lora import export_view, has_adapters
from reft_lightning.models.sharding import full_state_dict


class HFExport(Callback):
    """Write the model and tokenizer with ``save_pretrained`` (loadable by ``from_pretrained``).

    Writes ``{dirpath}/final`` when fitting ends; ``{dirpath}/best`` from the best checkpoint of
    the run's ``ModelCheckpoint`` (chosen on validation) when ``export_best``; and
    ``{dirpath}/epoch_{k}`` after every ``every_n_epochs`` epochs (e.g. the paper's epoch-2 warm-up).
    Weights holding ``nan`` or ``inf`` are never written (``NonFiniteStateError`` names the tensor).
    A run stopped by a signal (``LastCheckpoint``) writes no ``final``.

    Args:
        dirpath: export directory; ``None`` means ``{trainer.default_root_dir}/hf``.
        export_best: also export the best checkpoint, if a ``ModelCheckpoint`` monitors a metric.
        every_n_epochs: export every N training epochs; 0 disables per-epoch exports.
    """

    def __init__(self, dirpath: str | None = None, export_best: bool = True, every_n_epochs: int = 0) -> None:
        self.dirpath = dirpath
        self.export_best = export_best
        self.every_n_epochs = every_n_epochs
        self.exported: list[Path] = []
        """Directories written so far (global rank 0; ``RunReport`` lists them)."""

    def _root(self, trainer: L.Trainer) -> Path:
        if self.dirpath is not None:
            return Path(self.dirpath)
        return Path(trainer.default_root_dir) / "hf"

    def _save(
        self, trainer: L.Trainer, pl_module: L.LightningModule, name: str, state: dict | None = None
    ) -> None:
        """Export ``state`` (default: the model's weights, gathered from every process when they are
        sharded, which is why every process calls this) from global rank 0."""
        if state is None:
            state = full_state_dict(pl_module.model)
        if not trainer.is_global_zero:
            return
        out = self._root(trainer) / name
        require_finite(state, f"the export {out}")
        model = pl_module.model
        if has_adapters(model):  # LoRA: the merged model, or only the adapter (lora.export)
            model, state = export_view(model, state, pl_module.lora.export)
        model.save_pretrained(out, state_dict=state)
        pl_module.tokenizer.save_pretrained(out)
        self.exported.append(out)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if self.every_n_epochs and epoch % self.every_n_epochs == 0:
            self._save(trainer, pl_module, f"epoch_{epoch}")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer, pl_module, "final")
        best = next(
            (
                callback.best_model_path
                for callback in trainer.checkpoint_callbacks
                if isinstance(callback, ModelCheckpoint) and callback.monitor and callback.best_model_path
            ),
            None,
        )
        if self.export_best and best and trainer.is_global_zero:
            self._save(trainer, pl_module, "best", weights_from_lightning_checkpoint(best))
