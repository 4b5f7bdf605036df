"""Filesystem-only behaviour: permissions, the path jail, temp files and directory pruning."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from storage import FsStore, InvalidKey, ObjectNotFound, StorageError
from tests.storage.util import feed, read


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_permissions(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "blobs"
    store = FsStore(root)
    await store.put("media/m1/obj", feed(b"ciphertext"))
    assert mode(root) == 0o700
    assert mode(root / ".tmp") == 0o700
    assert mode(root / "media.d") == mode(root / "media.d" / "m1.d") == 0o700
    assert mode(root / "media.d" / "m1.d" / "obj") == 0o600
    await store.close()


async def test_existing_root_is_tightened(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    root.mkdir(mode=0o755)
    FsStore(root)
    assert mode(root) == 0o700


async def test_symlink_escape_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not yours")
    store = FsStore(tmp_path / "blobs")
    (store.root / "evil.d").symlink_to(outside)
    (store.root / "link").symlink_to(outside / "secret")
    with pytest.raises(InvalidKey):
        await store.put("evil/new", feed(b"x"))
    with pytest.raises(InvalidKey):
        await read(store, "evil/secret")
    with pytest.raises(InvalidKey):
        await read(store, "link")
    for op in (store.size, store.exists, store.delete):
        with pytest.raises(InvalidKey):
            await op("link")
    assert sorted(os.listdir(outside)) == ["secret"]
    assert os.listdir(store.root / ".tmp") == []


async def test_stale_temp_files_removed_at_start(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    FsStore(root)
    old, fresh = root / ".tmp" / "old.part", root / ".tmp" / "fresh.part"
    old.write_bytes(b"abandoned")
    fresh.write_bytes(b"another process is writing this")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    FsStore(root)
    assert sorted(os.listdir(root / ".tmp")) == ["fresh.part"]


async def test_delete_prunes_empty_directories(tmp_path: Path) -> None:
    store = FsStore(tmp_path / "blobs")
    await store.put("media/m1/a", feed(b"a"))
    await store.put("media/m2/b", feed(b"b"))
    await store.delete("media/m1/a")
    assert sorted(os.listdir(store.root)) == [".tmp", "media.d"]
    assert os.listdir(store.root / "media.d") == ["m2.d"]
    await store.delete("media/m2/b")
    assert os.listdir(store.root) == [".tmp"]
    await store.put("media/m2/b", feed(b"again"))
    assert await read(store, "media/m2/b") == b"again"


async def test_small_chunks_are_coalesced(tmp_path: Path) -> None:
    store = FsStore(tmp_path / "blobs", chunk_size=1000)
    data = bytes(range(256)) * 40
    assert await store.put("k", feed(data, step=7)) == len(data)
    assert await read(store, "k") == data


async def test_unusable_root(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StorageError):
        FsStore(tmp_path / "file")
    store = FsStore(tmp_path / "blobs")
    os.rename(store.root, tmp_path / "gone")
    with pytest.raises(StorageError):
        await store.health()
    with pytest.raises(StorageError):
        await store.put("k", feed(b"x"))
    with pytest.raises(ObjectNotFound):
        await store.size("k")


def test_a_dead_writers_temp_files_are_removed_at_start(tmp_path: Path) -> None:
    """A process killed mid-put leaves its temp file; the next store on that root removes it,
    and leaves a live writer's alone."""
    root = tmp_path / "blobs"
    FsStore(root)
    gone_pid = 2**22 + 12345  # above pid_max on most systems: never alive
    (root / ".tmp" / f"{gone_pid}-abc.part").write_bytes(b"partial")
    (root / ".tmp" / f"{os.getpid()}-def.part").write_bytes(b"in flight")
    FsStore(root)
    left = sorted(p.name for p in (root / ".tmp").iterdir())
    assert left == [f"{os.getpid()}-def.part"]
