"""Plain progress lines for logs: one line per validation, the test result, and a summary of the run.

Rich's live progress bar shows metrics on a terminal but leaves nothing readable in a piped log
(``make demo | tee log``). :class:`RunReport` prints, on global rank 0 only:

- after each validation (not the sanity check), when stdout is not a terminal or the progress bar
  is off: ``validation  epoch 3  step 282  iteration 47:  accuracy 73.0%  extracted 99.0%  loss 0.0785``;
- after ``reft test``: the test metrics in the same format;
- when fitting ends: the best checkpoint and its monitored value, the last checkpoint, the Hugging
  Face exports and the run directory.

Metrics that are fractions (``accuracy``, ``extracted``, ``pass@k``, ``voting@k``, ``rerank@k``, ...)
print as percentages with one decimal; other metrics with four significant digits.
"""

from __future__ import annotations

import sys

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from reft_lightning.callbacks import HFExport
from reft_lightning.checkpoints import LastCheckpoint

FRACTION_METRICS = ("accuracy", "extracted", "pass@", "voting@", "rerank", "oracle", "sample_accuracy")
"""Metric names (after the ``split/`` prefix) starting with these are fractions, printed as %."""


def format_metric(name: str, value: float) -> str:
    """``accuracy 73.0%`` for fractions, ``loss 0.0785`` otherwise (``name`` without its split)."""
    if name.startswith(FRACTION_METRICS):
        return f"{name} {100 * value:.1f}%"
    return f"{name} {value:.4g}"


def metric_line(title: str, metrics: dict[str, float], split: str, where: str = "") -> str:
    """``{title}  {where}:  name value  ...`` for the metrics of ``split`` (``split/name`` keys), sorted."""
    prefix = f"{split}/"
    parts = [format_metric(k[len(prefix) :], v) for k, v in sorted(metrics.items()) if k.startswith(prefix)]
    head = f"{title}  {where}" if where else title
    return f"{head}:  " + "  ".join(parts)


class RunReport(Callback):
    """Prints plain lines a log keeps (see the module docstring); the CLI adds it to every run.

    Args:
        validation_lines: ``auto``: print a line per validation when stdout is not a terminal or
            the progress bar is off; ``always``; ``never``.
    """

    def __init__(self, validation_lines: str = "auto") -> None:
        if validation_lines not in ("auto", "always", "never"):
            raise ValueError(f"validation_lines must be auto, always or never, got {validation_lines!r}")
        self.validation_lines = validation_lines

    def _print_validation(self, trainer: L.Trainer) -> bool:
        if self.validation_lines != "auto":
            return self.validation_lines == "always"
        return not sys.stdout.isatty() or trainer.progress_bar_callback is None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not self._print_validation(trainer):
            return
        where = f"epoch {trainer.current_epoch}  step {trainer.global_step}"
        if hasattr(pl_module, "iterations"):
            where += f"  iteration {pl_module.iterations}"
        print(metric_line("validation", _floats(trainer.callback_metrics), "val", where), flush=True)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            print(metric_line("test", _floats(trainer.callback_metrics), "test"), flush=True)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        lines = [f"run finished: {trainer.default_root_dir}"]
        for callback in trainer.checkpoint_callbacks:
            best = isinstance(callback, ModelCheckpoint) and callback.best_model_score is not None
            if best and callback.monitor:
                name = callback.monitor.split("/", 1)[-1]
                value = format_metric(name, float(callback.best_model_score))
                lines.append(f"  best checkpoint ({value}): {callback.best_model_path}")
            if isinstance(callback, LastCheckpoint) and callback.saved is not None:
                lines.append(f"  last checkpoint: {callback.saved}")
        for callback in trainer.callbacks:
            if isinstance(callback, HFExport):
                lines += [f"  Hugging Face export: {path}" for path in callback.exported]
        print("\n".join(lines), flush=True)


def _floats(metrics: dict[str, object]) -> dict[str, float]:
    return {name: float(value) for name, value in metrics.items()}  # tensors and numbers
