"""Checkpoint files: written atomically, checked before a resume reads them.

A save writes ``.{name}.{random}.tmp`` in the destination directory, flushes it to disk
(``fsync``) and renames it over ``{name}`` (``os.replace``, atomic within one filesystem), then
syncs the directory. A kill at any moment leaves either the old file or the new one, never a
truncated one; the temp file a kill leaves behind is removed by the next save into that directory.
(Lightning's own writer stages the bytes in the system temp directory and moves them, which across
filesystems is a copy that a kill truncates.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

TEMP_SUFFIX = ".tmp"
"""Suffix of a checkpoint being written (its name starts with ``.`` and the final name)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves replace the destination atomically (see the module docstring).

    The ``reft`` command installs it unless ``trainer.plugins`` names another checkpoint IO.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        destination = Path(path)
        destination.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(destination.parent)
        handle, temp = tempfile.mkstemp(
            prefix=f".{destination.name}.", suffix=TEMP_SUFFIX, dir=destination.parent
        )
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, destination)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        _sync_directory(destination.parent)


def remove_stale_temp_files(folder: Path) -> None:
    """Delete checkpoint temp files that an earlier, killed save left in ``folder``."""
    for stale in folder.glob(f".*.ckpt.*{TEMP_SUFFIX}"):
        stale.unlink(missing_ok=True)


def _sync_directory(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


SHARDED_METADATA = (".metadata", "meta.pt")
"""Files a complete sharded checkpoint directory holds: torch.distributed.checkpoint's index of the
shards, and Lightning's ``meta.pt`` (loop and callback states), each written after the shards."""


def is_intact(path: str | Path) -> bool:
    """Whether ``path`` is a complete checkpoint: a ``torch.save`` zip archive whose directory and
    members read, or a sharded checkpoint directory with both :data:`SHARDED_METADATA` files.

    A truncated file has no central directory at its end, so opening it fails; this reads the
    archive's directory and each member's header, not the tensors (cheap for any size).
    """
    path = Path(path)
    if path.is_dir():
        index, meta = (path / name for name in SHARDED_METADATA)
        return index.is_file() and index.stat().st_size > 0 and is_intact(meta)
    try:
        with zipfile.ZipFile(path) as archive:
            return len(archive.infolist()) > 0
    except (OSError, zipfile.BadZipFile):
        return False


def replace_checkpoint(new: Path, final: Path) -> None:
    """Put the checkpoint ``new`` (a file, or a sharded directory) at ``final``, in one process.

    A file replaces a file atomically. A directory cannot: the old ``final`` is first renamed to
    ``.{name}.old`` (which :func:`resume_path` also considers), then ``new`` to ``final``, then the
    old one is deleted, so a kill at any moment leaves an intact checkpoint under one of the names.
    """
    if new.is_file() and not final.is_dir():
        os.replace(new, final)
        _sync_directory(final.parent)
        return
    old = final.with_name(f".{final.name}.old")
    remove_checkpoint(old)
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    _sync_directory(final.parent)
    remove_checkpoint(old)


def remove_checkpoint(path: Path) -> None:
    """Delete a checkpoint file or sharded directory, if there is one."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def resume_path(folders: list[Path]) -> Path | None:
    """The checkpoint ``--ckpt_path last`` resumes from: the newest ``last.ckpt`` of ``folders``.

    When that file is not intact (see :func:`is_intact`), or there is no ``last.ckpt``, it is the
    newest intact ``*.ckpt`` of ``folders``, with a warning that names both. ``None`` when there is
    nothing intact to resume from.
    """
    lasts = _newest_first(folder / "last.ckpt" for folder in folders if (folder / "last.ckpt").is_file())
    if lasts and is_intact(lasts[0]):
        return lasts[0]
    others = _newest_first(
        path
        for folder in folders
        if folder.is_dir()
        for path in [*folder.glob("*.ckpt"), *folder.glob(".*.ckpt.old")]
        if path not in lasts[:1]
    )
    fallback = next((path for path in others if is_intact(path)), None)
    if lasts or fallback is not None:
        reason = f"{lasts[0]} is corrupt (truncated or unreadable)" if lasts else "there is no last.ckpt"
        instead = f"resuming from {fallback}, the newest intact checkpoint" if fallback else "none is intact"
        warnings.warn(f"--ckpt_path last: {reason}; {instead}", stacklevel=2)
    return fallback


def _newest_first(paths: Iterable[Path]) -> list[Path]:
    return sorted(paths, key=lambda path: path.stat().st_mtime, reverse=True)
