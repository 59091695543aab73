"""The ``reft`` command: LightningCLI with fit / validate / test / predict.

The stage is chosen in YAML (``model: class_path: reft_lightning.SFTModule``), and so is the
dataset (``data: class_path: reft_lightning.data.datasets.GSM8KDataModule``); new stages, datasets
and rewards plug in without changes here. Everything a run writes goes under
``trainer.default_root_dir``: TensorBoard and CSV logs (unless ``trainer.logger`` is set), the
saved config, ``ModelCheckpoint`` files (``{root}/checkpoints`` unless a ``dirpath`` is given, so
that ``--ckpt_path last`` finds them) and ``HFExport`` exports (``{root}/hf``). Progress is
shown with Rich unless ``trainer.enable_progress_bar`` is false; ``RunReport`` adds plain lines that
a piped log keeps (one per validation, the test result, a summary with checkpoints and exports).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.cli import LightningCLI

DESCRIPTION = (
    "reft: ReFT (Luong et al., 2024) and SFT of language models for math reasoning, on Lightning. "
    "`reft fit --config configs/reft_gsm8k.yaml` trains; validate / test / predict evaluate; "
    "`--print_config` shows every value; `--ckpt_path last` resumes. Docs: docs/quickstart.md."
)
"""What ``reft --help`` says the command is."""
DEFAULT_ROOT_DIR = "runs/default"
"""Run directory when the config gives no ``trainer.default_root_dir``."""


def _logger(class_name: str, save_dir: str, name: str) -> Namespace:
    return Namespace(
        class_path=f"lightning.pytorch.loggers.{class_name}",
        init_args=Namespace(save_dir=save_dir, name=name),
    )


def _is(callback: Namespace, class_name: str) -> bool:
    return str(getattr(callback, "class_path", "")).endswith(class_name)


def _has_progress_bar(callbacks: list[Namespace]) -> bool:
    return any("ProgressBar" in str(getattr(callback, "class_path", "")) for callback in callbacks)


def _require_last_checkpoint(callbacks: list[Namespace]) -> None:
    """Fail before training when ``--ckpt_path last`` has nothing to resume (Lightning only warns)."""
    folders = [Path(c.init_args.dirpath) for c in callbacks if _is(c, "ModelCheckpoint")]
    if not any((folder / "last.ckpt").is_file() for folder in folders):
        searched = ", ".join(str(f) for f in folders) or "no ModelCheckpoint configured"
        raise SystemExit(f"--ckpt_path last: no last.ckpt to resume from (searched: {searched})")


def _share_tokenizer(model: Namespace, data: Namespace) -> None:
    """The data module tokenises with the model's tokenizer unless its config names one."""
    model_args, data_args = model.get("init_args"), data.get("init_args")
    if model_args is None or data_args is None or "tokenizer" not in data_args:
        return
    if data_args.tokenizer is not None:
        return
    data_args.tokenizer = model_args.get("tokenizer") or model_args.get("model")


def _stream_predictions(config: Namespace, callbacks: list[Namespace]) -> None:
    """``reft predict``: write records to JSONL as they come (``PredictionWriter``), keep none in memory."""
    if not any(_is(c, "PredictionWriter") for c in callbacks):
        callbacks.append(Namespace(class_path="reft_lightning.evaluation.PredictionWriter"))
    if config.get("return_predictions") is None:
        config.return_predictions = False


class ReftCLI(LightningCLI):
    """LightningCLI with the project's defaults: TensorBoard + CSV logs under the run directory,
    a Rich progress bar, and ``reft predict`` streaming to ``{root}/predictions.jsonl``."""

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config.trainer
        if trainer.default_root_dir is None:
            trainer.default_root_dir = DEFAULT_ROOT_DIR
        if trainer.logger in (None, True):
            root = str(trainer.default_root_dir)
            trainer.logger = [
                _logger("TensorBoardLogger", root, "tensorboard"),
                _logger("CSVLogger", root, "csv"),
            ]
        callbacks = list(trainer.callbacks or [])
        if trainer.enable_progress_bar is not False and not _has_progress_bar(callbacks):
            callbacks.append(Namespace(class_path="lightning.pytorch.callbacks.RichProgressBar"))
        if not any(_is(c, "RunReport") for c in callbacks):
            callbacks.append(Namespace(class_path="reft_lightning.run_report.RunReport"))
        for callback in callbacks:
            if _is(callback, "ModelCheckpoint") and callback.init_args.dirpath is None:
                callback.init_args.dirpath = str(Path(trainer.default_root_dir) / "checkpoints")
        _share_tokenizer(config.model, config.data)
        if self.subcommand == "predict":
            _stream_predictions(config, callbacks)
        trainer.callbacks = callbacks
        if config.get("ckpt_path") == "last":
            _require_last_checkpoint(callbacks)


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``reft`` console script."""
    ReftCLI(
        model_class=L.LightningModule,
        datamodule_class=L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"description": DESCRIPTION},
        args=args,
    )


if __name__ == "__main__":
    main()
