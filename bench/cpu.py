"""CPU time of this process's threads and all its descendants, by kind (Linux only).

Where an action's CPU goes decides how far parallel episodes can scale on a
small machine: if one episode acting back to back already keeps most cores
busy, more episodes can only share them. Times come from /proc/<pid>/stat
(utime + stime) of every process below this one (Playwright's node drivers,
every Chromium process, told apart by its `--type=` flag: "chr: renderer",
"chr: gpu-process", ...) and from /proc/self/task/<tid>/stat for this
process's own threads, named after the Python threads that run them ("py:
workers" are the browser workers' threads, "py: server" the server's event
loop, "py: clients" the benchmark's MCP clients). /proc/stat gives the whole machine's busy time,
so work outside this process tree shows up as the difference.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.memory import descendants

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")

OUTSIDE = "outside: "
"""The prefix of kinds outside the server's tree when `sample` is given the server's pid."""

# Thread-name prefixes of the benchmark process, as safebrowse and the benchmarks name them.
THREAD_KINDS = (
    ("browser-worker", "py: workers"),
    ("bench-server", "py: server"),
    ("bench-client", "py: clients"),
    ("browsergym-env", "py: browsergym envs"),
)


@dataclass
class CpuSample:
    """Cumulative CPU seconds by kind, and the machine's busy and total jiffies."""

    seconds: dict[str, float] = field(default_factory=dict)
    machine_busy: int = 0
    machine_total: int = 0


def _stat_seconds(path: Path) -> float:
    try:
        fields = path.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def _process_kind(pid: int) -> str:
    try:
        # Chromium rewrites its command line into one space-separated string.
        words = (PROC / str(pid) / "cmdline").read_text().replace("\0", " ").split()
    except OSError:
        return "other"
    if not words:
        return "other"
    if "node" in Path(words[0]).name:
        return "node driver"
    if "chrom" in words[0]:
        kind = next((word.split("=", 1)[1] for word in words if word.startswith("--type=")), "browser")
        return f"chr: {kind}"
    if "python" in Path(words[0]).name:
        return "py: server process"  # `safebrowse serve` in a child process: all its threads
    return Path(words[0]).name


def _thread_kind(name: str) -> str:
    for prefix, kind in THREAD_KINDS:
        if name.startswith(prefix):
            return kind
    return "py: other"


def sample(server_pid: int | None = None) -> CpuSample:
    """Cumulative CPU by kind now. With `server_pid` (a server in a child process), the
    processes of this tree that are neither that server nor below it (another side's
    browsers, say) count under "outside: <kind>", apart from the server's own."""
    me = os.getpid()
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    seconds: dict[str, float] = defaultdict(float)
    try:
        tids = [int(tid) for tid in os.listdir(PROC / str(me) / "task")]
    except OSError:
        tids = []
    for tid in tids:
        seconds[_thread_kind(names.get(tid, ""))] += _stat_seconds(PROC / str(me) / "task" / str(tid) / "stat")
    server_tree = set(descendants(server_pid)) if server_pid is not None else set()
    for pid in descendants(me):
        if pid != me:
            kind = _process_kind(pid)
            if server_pid is not None and pid not in server_tree:
                kind = f"{OUTSIDE}{kind}"
            seconds[kind] += _stat_seconds(PROC / str(pid) / "stat")
    jiffies = [int(x) for x in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = jiffies[3] + jiffies[4]  # idle, iowait
    return CpuSample(dict(seconds), sum(jiffies) - idle, sum(jiffies))


def difference(before: CpuSample, after: CpuSample) -> CpuSample:
    """CPU spent between two samples (kinds that appeared in between count from zero)."""
    kinds = set(before.seconds) | set(after.seconds)
    return CpuSample(
        {kind: max(0.0, after.seconds.get(kind, 0.0) - before.seconds.get(kind, 0.0)) for kind in kinds},
        after.machine_busy - before.machine_busy,
        after.machine_total - before.machine_total,
    )


def add(a: CpuSample, b: CpuSample) -> CpuSample:
    kinds = set(a.seconds) | set(b.seconds)
    return CpuSample(
        {kind: a.seconds.get(kind, 0.0) + b.seconds.get(kind, 0.0) for kind in kinds},
        a.machine_busy + b.machine_busy,
        a.machine_total + b.machine_total,
    )


def machine_busy_cores(spent: CpuSample) -> float:
    """How many of the machine's cores were busy on average (anything running, not only ours)."""
    if spent.machine_total <= 0:
        return float("nan")
    return spent.machine_busy / spent.machine_total * (os.cpu_count() or 1)


QUIET_BUSY_CORES = 0.3
QUIET_WINDOW_S = 1.0
QUIET_TIMEOUT_S = 45.0


REFERENCE_LOOP = 2_000_000


def reference_ms(repeats: int = 3) -> float:
    """CPU time of a fixed pure-Python loop (the fastest of `repeats`), in ms.

    A virtual machine's cores do not run at one speed: on the 2-core machine this loop took
    from 0.51 to 0.60 s (15 % apart) within a minute, and every CPU figure of a benchmark
    moves with it. Printed next to those figures, it says how fast the machine ran then."""
    best = float("inf")
    for _ in range(repeats):
        started = time.thread_time()
        total = 0
        for value in range(REFERENCE_LOOP):
            total += value
        best = min(best, time.thread_time() - started)
    return best * 1000


@dataclass
class Quiet:
    """How long `wait_until_quiet` waited, how busy the machine was in its last window (NaN where
    /proc cannot tell), against which threshold, and how fast it ran then (`reference_ms`)."""

    waited_s: float
    busy_cores: float
    max_busy_cores: float = QUIET_BUSY_CORES
    reference_ms: float = field(default_factory=reference_ms)

    @property
    def reached(self) -> bool:
        return self.busy_cores <= self.max_busy_cores

    def describe(self) -> str:
        if math.isnan(self.busy_cores):
            state = "of unknown load"
        elif self.reached:
            state = f"quiet ({self.busy_cores:.2f} busy cores)"
        else:
            state = f"still busy after {self.waited_s:.0f} s ({self.busy_cores:.2f} busy cores)"
        return f"started {self.waited_s:.0f} s later, machine {state}, reference loop {self.reference_ms:.0f} ms"


def wait_until_quiet(max_busy_cores: float = QUIET_BUSY_CORES, timeout_s: float = QUIET_TIMEOUT_S) -> Quiet:
    """Wait until the machine's busy cores over one window are at most `max_busy_cores`, or
    `timeout_s` has passed. Closing BrowserEnv's Chromiums (16 of them after a group of 8), or a
    server's, goes on for seconds after the call returns; a measurement started meanwhile
    would be charged for it, on one side only."""
    started = time.monotonic()
    while True:
        before = sample()
        time.sleep(QUIET_WINDOW_S)
        busy = machine_busy_cores(difference(before, sample()))
        waited = time.monotonic() - started
        if math.isnan(busy) or busy <= max_busy_cores or waited >= timeout_s:
            return Quiet(waited, busy, max_busy_cores)
