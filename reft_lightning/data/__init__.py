"""Data: records, readers, CoT formats and Lightning data modules."""

from reft_lightning.data.example import MathExample

__all__ = ["MathExample"]
