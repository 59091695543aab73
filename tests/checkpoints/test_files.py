"""Atomic checkpoint writes survive a kill mid-save; a corrupt ``last.ckpt`` falls back to an intact one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from reft_lightning.checkpoints import AtomicCheckpointIO, is_intact, resume_path
from reft_lightning.checkpoints.files import replace_checkpoint
from tests.conftest import REPO

# A child that saves ``{"version": 1}`` completely, then starts saving version 2 with torch.save
# patched to write half its bytes and stop: the parent SIGKILLs it there, mid-write.
HALF_WRITTEN_SAVE = textwrap.dedent(
    """
    import io, sys, time
    import torch
    from reft_lightning.checkpoints import AtomicCheckpointIO

    destination, naive = sys.argv[1], sys.argv[2] == "naive"
    writer = AtomicCheckpointIO()
    writer.save_checkpoint({"version": 1, "weights": torch.arange(100_000.0)}, destination)
    real_save = torch.save

    def half_save(obj, file):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        data = buffer.getvalue()
        file.write(data[: len(data) // 2])
        file.flush()
        print("half-written", flush=True)
        time.sleep(60)

    torch.save = half_save
    checkpoint = {"version": 2, "weights": torch.arange(100_000.0)}
    if naive:  # what a writer without the temp file and rename does
        with open(destination, "wb") as file:
            torch.save(checkpoint, file)
    else:
        writer.save_checkpoint(checkpoint, destination)
    """
)


def _kill_mid_save(destination: Path, naive: bool) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", HALF_WRITTEN_SAVE, str(destination), "naive" if naive else "atomic"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "half-written"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)


def test_a_kill_mid_save_leaves_the_previous_checkpoint_intact(tmp_path: Path) -> None:
    destination = tmp_path / "checkpoints" / "last.ckpt"
    _kill_mid_save(destination, naive=False)
    assert is_intact(destination)
    assert torch.load(destination, weights_only=True)["version"] == 1
    stale = list(destination.parent.glob(".last.ckpt.*.tmp"))
    assert len(stale) == 1, "the killed save's temp file is in the destination folder"

    AtomicCheckpointIO().save_checkpoint({"version": 3}, destination)
    assert torch.load(destination, weights_only=True)["version"] == 3
    assert list(destination.parent.iterdir()) == [destination], "the next save removes stale temp files"


def test_the_same_kill_truncates_a_checkpoint_written_in_place(tmp_path: Path) -> None:
    """The control: the test above would fail for a writer that writes the destination directly."""
    destination = tmp_path / "last.ckpt"
    _kill_mid_save(destination, naive=True)
    assert destination.is_file() and not is_intact(destination)


def test_a_failed_save_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    destination = tmp_path / "last.ckpt"
    writer = AtomicCheckpointIO()
    writer.save_checkpoint({"version": 1}, destination)
    with pytest.raises(Exception, match=r"pickle|lambda"):
        writer.save_checkpoint({"version": 2, "unpicklable": lambda: None}, destination)
    assert torch.load(destination, weights_only=True) == {"version": 1}
    assert list(tmp_path.iterdir()) == [destination]


def _write(path: Path, version: int, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"version": version}, path)
    os.utime(path, (mtime, mtime))
    return path


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_resume_path_prefers_the_newest_intact_last(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "last.ckpt", 1, 1_000)
    newer = _write(tmp_path / "b" / "last.ckpt", 2, 2_000)
    best = _write(tmp_path / "a" / "best-epoch=0.ckpt", 0, 3_000)
    assert resume_path([tmp_path / "a", tmp_path / "b"]) == newer, "an intact last wins over a newer best"
    _truncate(newer)
    with pytest.warns(UserWarning, match="b/last.ckpt is corrupt"):
        assert resume_path([tmp_path / "a", tmp_path / "b"]) == best, "then the newest intact file"


def test_a_corrupt_last_falls_back_to_the_newest_intact_checkpoint_with_a_warning(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    _truncate(_write(folder / "last.ckpt", 9, 5_000))
    _write(folder / "best-epoch=1.ckpt", 1, 2_000)
    intact = _write(folder / "best-epoch=3.ckpt", 3, 3_000)
    _truncate(_write(folder / "best-epoch=4.ckpt", 4, 4_000))
    with pytest.warns(UserWarning, match=r"last\.ckpt is corrupt .*best-epoch=3\.ckpt, the newest intact"):
        assert resume_path([folder]) == intact


def test_nothing_to_resume(tmp_path: Path) -> None:
    assert resume_path([tmp_path / "missing"]) is None
    _truncate(_write(tmp_path / "last.ckpt", 1, 1_000))
    with pytest.warns(UserWarning, match="none is intact"):
        assert resume_path([tmp_path]) is None


def _sharded(folder: Path, version: int) -> Path:
    """A stand-in for a sharded checkpoint directory: shard files, the index, Lightning's meta.pt."""
    folder.mkdir(parents=True)
    (folder / "__0_0.distcp").write_bytes(b"shard")
    (folder / ".metadata").write_bytes(b"index")
    torch.save({"version": version}, folder / "meta.pt")
    return folder


def test_a_sharded_directory_is_intact_only_with_its_index_and_meta(tmp_path: Path) -> None:
    folder = _sharded(tmp_path / "last.ckpt", 1)
    assert is_intact(folder)
    _truncate(folder / "meta.pt")
    assert not is_intact(folder)
    (folder / "meta.pt").unlink()
    assert not is_intact(folder)
    assert not is_intact(tmp_path / "missing")


def test_replacing_a_sharded_directory_keeps_one_intact_name_at_every_moment(tmp_path: Path) -> None:
    final = _sharded(tmp_path / "last.ckpt", 1)
    replace_checkpoint(_sharded(tmp_path / ".last.ckpt.partial", 2), final)
    assert torch.load(final / "meta.pt", weights_only=True) == {"version": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    # a kill between the two renames leaves the old one under .last.ckpt.old, which resume finds
    old = tmp_path / ".last.ckpt.old"
    final.rename(old)
    with pytest.warns(UserWarning, match="there is no last.ckpt"):
        assert resume_path([tmp_path]) == old


def test_replacing_a_file_is_one_rename(tmp_path: Path) -> None:
    final = _write(tmp_path / "last.ckpt", 1, 1_000)
    replace_checkpoint(_write(tmp_path / ".last.ckpt.partial", 2, 2_000), final)
    assert torch.load(final, weights_only=True) == {"version": 2}
    assert list(tmp_path.iterdir()) == [final]
