"""Resolve a data source given in a config: a local path, or an http(s) URL downloaded once."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

CACHE_ENV = "REFT_DATA_CACHE"
"""Environment variable naming the download cache (default ``~/.cache/reft_lightning``)."""
DOWNLOAD_TIMEOUT_S = 60.0
"""Seconds without an answer from the server before a download fails."""


def cache_root() -> Path:
    """Directory where downloaded data files are kept."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "reft_lightning"))


def is_url(source: str) -> bool:
    """Whether ``source`` is an http(s) URL (else a local path)."""
    return source.startswith(("http://", "https://"))


def cached_path(url: str) -> Path:
    """Where ``url`` is kept in the cache: a hash of the URL, then its file name."""
    return cache_root() / (hashlib.sha256(url.encode()).hexdigest()[:12] + "-" + url.rsplit("/", 1)[-1])


def resolve_source(source: str, key: str = "data source") -> Path:
    """Return a local path for ``source``; URLs are downloaded into the cache on first use.

    ``key`` names the config field the value came from, for error messages. Raises
    ``FileNotFoundError`` naming the path when a local file is missing, and ``RuntimeError``
    naming the URL and the field when a download fails.
    """
    if is_url(source):
        target = cached_path(source)
        if not target.exists():
            _download(source, target, key)
        return target
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{key}: data file not found: {path} (from config value {source!r})")
    return path


def _download(url: str, target: Path, key: str) -> None:
    """Download into a temporary file beside ``target``, then rename it into place.

    Processes that download the same URL at once each write their own temporary file, and the
    rename is atomic, so no reader ever sees a partial file and none is left behind.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with (
            os.fdopen(handle, "wb") as out,
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
        ):
            shutil.copyfileobj(response, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    except (urllib.error.URLError, OSError) as error:
        raise RuntimeError(
            f"{key}: could not download {url} ({error}). Check the address and the network, or "
            f"download the file and give its local path instead (cache: {target.parent}, "
            f"set by ${CACHE_ENV})"
        ) from error
    finally:
        Path(partial).unlink(missing_ok=True)
