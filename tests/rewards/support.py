"""Constants shared by the reward tests."""

from __future__ import annotations

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
"""``../shared/data`` beside the repository (CI clones the repository with ``shared/`` next to it)."""

CANARY = "REFT_TEST_CANARY_SECRET"
"""An environment variable of the trainer that no program may see."""
