"""reft_lightning: ReFT (Luong et al., ACL 2024) on PyTorch Lightning.

Names are imported lazily, so ``reft_lightning.rewards`` and ``reft_lightning.rl`` stay light
(the sandbox workers import them without Lightning).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SFTModule": "reft_lightning.stages.sft",
    "ReFTModule": "reft_lightning.stages.reft",
    "OnlineSelfTrainingModule": "reft_lightning.stages.self_training",
    "RewardModelModule": "reft_lightning.stages.reward_model",
    "HFExport": "reft_lightning.callbacks",
    "LastCheckpoint": "reft_lightning.checkpoints",
    "MathExample": "reft_lightning.data.example",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'reft_lightning' has no attribute {name!r}")
