"""Resolve a data source given in a config: a local path, or an http(s) URL downloaded once."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

CACHE_ENV = "REFT_DATA_CACHE"
"""Environment variable naming the download cache (default ``~/.cache/reft_lightning``)."""


def cache_root() -> Path:
    """Directory where downloaded data files are kept."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "reft_lightning"))


def resolve_source(source: str) -> Path:
    """Return a local path for ``source``; URLs are downloaded into the cache on first use.

    Raises ``FileNotFoundError`` naming the path when a local file is missing.
    """
    if source.startswith(("http://", "https://")):
        name = hashlib.sha256(source.encode()).hexdigest()[:12] + "-" + source.rsplit("/", 1)[-1]
        target = cache_root() / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(target.suffix + ".part")
            urllib.request.urlretrieve(source, partial)
            partial.rename(target)
        return target
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path} (from config value {source!r})")
    return path
