"""Resident memory of a process and its descendants, read from /proc (Linux only).

VmRSS counts shared pages (Chromium's binary, shared memory between its
processes) once per process, so a sum over processes over-counts what the
machine really spends; it is the conservative number. The proportional set
size (Pss, from /proc/<pid>/smaps_rollup) splits shared pages between their
users and sums to the real footprint. The unique set size (Uss: private clean
plus private dirty pages) is what the machine gets back when the process exits.
All three are reported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class TreeMemory:
    processes: int
    chromium_processes: int
    rss_bytes: int
    pss_bytes: int
    uss_bytes: int

    @property
    def rss_mb(self) -> float:
        return self.rss_bytes / 1024 / 1024

    @property
    def pss_mb(self) -> float:
        return self.pss_bytes / 1024 / 1024

    @property
    def uss_mb(self) -> float:
        return self.uss_bytes / 1024 / 1024


def _children(pid: int) -> list[int]:
    """Direct children, from every thread's children list."""
    found: list[int] = []
    try:
        threads = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return found
    for thread in threads:
        try:
            text = (thread / "children").read_text()
        except OSError:
            continue
        found.extend(int(child) for child in text.split())
    return found


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    seen: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.append(current)
        stack.extend(_children(current))
    return seen


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _rollup_kb(pid: int, *keys: str) -> int:
    """The sum of these fields of /proc/<pid>/smaps_rollup, in kB."""
    total = 0
    try:
        for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in keys:
                total += int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return total


def _is_chromium(pid: int) -> bool:
    try:
        return "chrom" in (PROC / str(pid) / "comm").read_text().lower()
    except OSError:
        return False


def tree_memory(pid: int | None = None) -> TreeMemory:
    """Memory of this process (or `pid`) and all its descendants: Playwright drivers and Chromium."""
    pids = descendants(pid if pid is not None else os.getpid())
    return TreeMemory(
        processes=len(pids),
        chromium_processes=sum(1 for p in pids if _is_chromium(p)),
        rss_bytes=sum(_status_kb(p, "VmRSS") for p in pids) * 1024,
        pss_bytes=sum(_rollup_kb(p, "Pss") for p in pids) * 1024,
        uss_bytes=sum(_rollup_kb(p, "Private_Clean", "Private_Dirty") for p in pids) * 1024,
    )
