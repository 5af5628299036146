"""A real small disk for the tests of a full disk: a tmpfs of a given size, and a filler file.

Mounting needs the right to mount (root with CAP_SYS_ADMIN, as in the project's test
container); where it is missing, `small_disk` skips the test rather than pretend.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_disk(mount_point: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of `size_bytes` mounted at `mount_point` for the block; unmounted after."""
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0700", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def fill(path: Path, leave_bytes: int, name: str = "filler") -> Path:
    """Write a filler file `name` in `path` so that only about `leave_bytes` stay free; returns it."""
    filler = path / name
    size = max(0, free_bytes(path) - leave_bytes)
    with open(filler, "wb") as handle:
        chunk = b"\0" * (1 << 20)
        while size > 0:
            written = handle.write(chunk[: min(size, len(chunk))])
            size -= written
    return filler
