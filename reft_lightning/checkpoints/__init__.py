"""Checkpoints that survive crashes: atomic writes, an always-newest ``last.ckpt``, saves on signals."""

from reft_lightning.checkpoints.files import AtomicCheckpointIO, is_intact, resume_path
from reft_lightning.checkpoints.last import LastCheckpoint

__all__ = ["AtomicCheckpointIO", "LastCheckpoint", "is_intact", "resume_path"]
