"""The ``reft`` command: LightningCLI with fit / validate / test / predict.

The stage is chosen in YAML (``model: class_path: reft_lightning.SFTModule``), and so is the
dataset (``data: class_path: reft_lightning.data.datasets.GSM8KDataModule``); new stages, datasets
and rewards plug in without changes here. Everything a run writes goes under
``trainer.default_root_dir``: TensorBoard and CSV logs (unless ``trainer.logger`` is set), the
saved config, checkpoints (``{root}/checkpoints`` unless a ``dirpath`` is given) and ``HFExport``
exports (``{root}/hf``). ``fit`` keeps ``last.ckpt`` the newest state with a ``LastCheckpoint``
(added unless the config lists one or disables checkpointing), which also saves on SIGTERM and
SIGINT, and every checkpoint is written atomically (``AtomicCheckpointIO``, unless
``trainer.plugins`` names another checkpoint IO); ``--ckpt_path last`` resumes from the newest
intact ``last.ckpt``, or with a warning from the newest intact checkpoint. Progress is
shown with Rich unless ``trainer.enable_progress_bar`` is false; ``RunReport`` adds plain lines that
a piped log keeps (one per validation, the test result, a summary with checkpoints and exports).
``reft export CKPT OUT`` is not a LightningCLI subcommand: it writes a checkpoint's model as a
Hugging Face directory (``checkpoints/export.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from reft_lightning.checkpoints import resume_path
from reft_lightning.checkpoints.export import main as export_main

DESCRIPTION = (
    "reft: ReFT (Luong et al., 2024) and SFT of language models for math reasoning, on Lightning. "
    "`reft fit --config configs/reft_gsm8k.yaml` trains; validate / test / predict evaluate; "
    "`--print_config` shows every value; `--ckpt_path last` resumes; `reft export CKPT OUT` writes a "
    "checkpoint's model as a Hugging Face directory (`reft export --help`); `reft report RUN_DIR ...` "
    "writes a Markdown page of runs' curves and figures (`reft report --help`). Docs: docs/quickstart.md."
)
"""What ``reft --help`` says the command is."""
PRINT_CONFIG = "--print_config"
"""Prints the config a run would use (the project's defaults applied) and exits."""
DEFAULT_REWARD = "reft_lightning.rewards.AnswerReward"
"""The reward of a stage whose config names none."""
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


def _resolve_last(trainer: Namespace, callbacks: list[Namespace]) -> str:
    """The file ``--ckpt_path last`` means (:func:`resume_path` over ``{root}/checkpoints`` and every
    checkpoint callback's folder); fail before anything loads when there is none (Lightning only
    warns, and only looks in ``ModelCheckpoint`` folders)."""
    folders = [Path(trainer.default_root_dir) / "checkpoints"]
    for callback in callbacks:
        if _is(callback, "ModelCheckpoint") or _is(callback, "LastCheckpoint"):
            folders.append(Path(callback.init_args.dirpath))
    folders = list(dict.fromkeys(folders))
    path = resume_path(folders)
    if path is None:
        searched = ", ".join(str(f) for f in folders)
        raise SystemExit(f"--ckpt_path last: no intact checkpoint to resume from (searched: {searched})")
    return str(path)


def _add_last_checkpoint(trainer: Namespace, callbacks: list[Namespace]) -> None:
    """Refuse ``ModelCheckpoint(save_last=...)`` (its ``last.ckpt`` is rewritten only with a new best),
    add a ``LastCheckpoint`` unless one is listed or checkpointing is off, and give each its folder."""
    for index, callback in enumerate(callbacks):
        if _is(callback, "ModelCheckpoint") and callback.init_args.get("save_last"):
            raise SystemExit(
                f"trainer.callbacks[{index}].init_args.save_last: remove it. ModelCheckpoint rewrites "
                "last.ckpt only when it also saves a new best, so it would not be the last state; "
                "reft_lightning.checkpoints.LastCheckpoint (added by default) keeps last.ckpt current "
                "(every_n_train_batches) and saves on SIGTERM / SIGINT"
            )
    folder = str(Path(trainer.default_root_dir) / "checkpoints")
    if trainer.enable_checkpointing is not False and not any(_is(c, "LastCheckpoint") for c in callbacks):
        last = "reft_lightning.checkpoints.LastCheckpoint"
        callbacks.append(Namespace(class_path=last, init_args=Namespace(dirpath=folder)))
    for callback in callbacks:
        if _is(callback, "LastCheckpoint") and callback.init_args.get("dirpath") is None:
            callback.init_args.dirpath = folder


def _add_atomic_checkpoint_io(trainer: Namespace) -> None:
    """Write checkpoints with ``AtomicCheckpointIO`` unless ``trainer.plugins`` names a checkpoint IO."""
    plugins = trainer.plugins if isinstance(trainer.plugins, list) else [trainer.plugins]
    plugins = [plugin for plugin in plugins if plugin is not None]
    if not any(str(getattr(plugin, "class_path", "")).endswith("CheckpointIO") for plugin in plugins):
        plugins.append(Namespace(class_path="reft_lightning.checkpoints.AtomicCheckpointIO"))
    trainer.plugins = plugins


def _root_cause(error: BaseException) -> BaseException:
    """The exception at the bottom of ``error``'s ``raise ... from`` chain."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def _share_tokenizer(model: Namespace, data: Namespace) -> None:
    """The data module tokenises with the model's tokenizer unless its config names one."""
    model_args, data_args = model.get("init_args"), data.get("init_args")
    if model_args is None or data_args is None or "tokenizer" not in data_args:
        return
    if data_args.tokenizer is not None:
        return
    data_args.tokenizer = model_args.get("tokenizer") or model_args.get("model")


def _fill_reward(model: Namespace) -> None:
    """A stage's ``reward: null`` (its signature's default) becomes the ``AnswerReward`` it stands
    for, so the printed config names it. (The default is not an instance in the signature because
    jsonargparse would carry that instance's arguments over to another reward class given later,
    e.g. AnswerReward's ``partial: 0.1`` to a ``ChoiceReward``, whose own default is 0.0.)"""
    args = model.get("init_args")
    if args is not None and "reward" in args and args.reward is None:
        args.reward = Namespace(class_path=DEFAULT_REWARD)


def _stream_predictions(config: Namespace, callbacks: list[Namespace]) -> None:
    """``reft predict``: write records to JSONL as they come (``PredictionWriter``), keep none in memory."""
    if not any(_is(c, "PredictionWriter") for c in callbacks):
        callbacks.append(Namespace(class_path="reft_lightning.evaluation.PredictionWriter"))
    if config.get("return_predictions") is None:
        config.return_predictions = False


class ReftCLI(LightningCLI):
    """LightningCLI with the project's defaults: TensorBoard + CSV logs under the run directory,
    a Rich progress bar, an always-current ``last.ckpt`` written atomically, and ``reft predict``
    streaming to ``{root}/predictions.jsonl``."""

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse as LightningCLI does, except that ``--print_config`` prints the config with the
        project's defaults applied (:meth:`apply_project_defaults`): the config the run would use."""
        argv = list(sys.argv[1:] if args is None else args) if not isinstance(args, (dict, Namespace)) else []
        if PRINT_CONFIG not in argv:
            super().parse_arguments(parser, args)
            return
        super().parse_arguments(parser, [arg for arg in argv if arg != PRINT_CONFIG])
        subcommand = self.config["subcommand"]
        self.apply_project_defaults(self.config[subcommand], subcommand, resolve_last=False)
        subparser = self._subcommand_parsers[subcommand]
        filled = subparser.parse_object(self.config[subcommand])  # the added classes' defaults too
        sys.stdout.write(subparser.dump(filled, skip_unset=False, skip_validation=True))
        raise SystemExit(0)

    def instantiate_classes(self) -> None:
        """Instantiate as LightningCLI does; a bad value that a class refuses (``ValueError``,
        ``OSError``: messages that name the key) ends the command with that message alone, instead
        of jsonargparse's traceback and dump of every value."""
        try:
            super().instantiate_classes()
        except (ValueError, OSError) as error:
            cause = _root_cause(error)
            if not isinstance(cause, (ValueError, OSError)):
                raise
            raise SystemExit(f"reft {self.subcommand}: {type(cause).__name__}: {cause}") from error

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        self.apply_project_defaults(config, self.subcommand)

    @staticmethod
    def apply_project_defaults(config: Namespace, subcommand: str | None, resolve_last: bool = True) -> None:
        """Fill in what the class docstring lists, in place; ``resolve_last``: turn ``--ckpt_path last``
        into the file it means (or fail when there is none)."""
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
        if subcommand == "fit":
            _add_last_checkpoint(trainer, callbacks)
        _add_atomic_checkpoint_io(trainer)
        _share_tokenizer(config.model, config.data)
        _fill_reward(config.model)
        if subcommand == "predict":
            _stream_predictions(config, callbacks)
        trainer.callbacks = callbacks
        if resolve_last and config.get("ckpt_path") == "last":
            config.ckpt_path = _resolve_last(trainer, callbacks)


EXPORT = "export"
"""The subcommand handled by ``checkpoints/export.py`` instead of LightningCLI."""
REPORT = "report"
"""The subcommand handled by ``report/command.py`` instead of LightningCLI."""


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``reft`` console script: ``reft export ...`` goes to
    :func:`reft_lightning.checkpoints.export.main`, ``reft report ...`` to
    :func:`reft_lightning.report.command.main`, everything else to LightningCLI."""
    argv = sys.argv[1:] if args is None else args
    if argv and argv[0] == EXPORT:
        export_main(list(argv[1:]))
        return
    if argv and argv[0] == REPORT:
        from reft_lightning.report.command import main as report_main  # matplotlib only when reporting

        report_main(list(argv[1:]))
        return
    ReftCLI(
        model_class=L.LightningModule,
        datamodule_class=L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"description": DESCRIPTION, "allow_abbrev": False},
        args=args,
    )


if __name__ == "__main__":
    main()
