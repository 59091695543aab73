"""The ``reft`` command: LightningCLI with fit / validate / test / predict.

The stage is chosen in YAML (``model: class_path: reft_lightning.SFTModule``), and so is the
dataset (``data: class_path: reft_lightning.data.datasets.GSM8KDataModule``); new stages, datasets
and rewards plug in without changes here.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.cli import LightningCLI


def main(args: list[str] | None = None) -> LightningCLI:
    """Entry point of the ``reft`` console script."""
    return LightningCLI(
        model_class=L.LightningModule,
        datamodule_class=L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=args,
    )


if __name__ == "__main__":
    main()
