"""Cluster mode against a single server: step latency, the front's CPU, and actions/s with 1 and 2 nodes.

    python -m bench.cluster                 # 4 latency rounds of 5 s, 15 s per throughput window (~2 min)
    python -m bench.cluster --quick         # 1 latency round of 3 s, 4 s windows (a smoke run, ~1 min)
    python -m bench.cluster --action noop --seconds 30 --json out.json

Everything runs on this machine: a Ray cluster from `ray.cluster_utils.Cluster` (a
head with no CPUs, so no browser node lands there, and one Ray node of 1 CPU), the
front as `safebrowse serve --ray ADDRESS` in a child process, and, next to it, a
single server (`safebrowse serve`) in another child process, both with one browser
worker per server or node. The MCP clients run in this process and reach the doors
over HTTP, as agents do. One run measures, in order:

1. Step latency, cluster against single server. One agent per side, each on an
   episode of the same task that never ends by itself, acting in a closed loop (send
   a call, wait for its answer, send the next); the two sides take turns, in rounds
   whose order alternates, so a machine whose load drifts biases neither. The median
   step of each side and their ratio are reported (the target: the cluster within
   10% of the single server). A cluster step does more: the node hands its records
   to the front (a Ray actor call), the front writes them to its book, and the node
   hears they are kept before the agent is answered.
2. The front's CPU while idle, from /proc/<pid>/stat (utime + stime of every
   thread of the front process): its drain calls, its look at the Ray cluster and
   Ray's own driver threads cost this much with nothing happening.
3. The front's CPU per episode: episodes created and closed one after another
   through the control API, no step taken; the front's CPU over that phase,
   less the idle rate over the same time, divided by the episodes.
4. Actions/s with one node: two agents per node acting in a closed loop for a
   fixed time; the front's CPU over that window, less its idle rate, divided by
   the steps is its CPU per step (it writes every step's records to its SQLite
   book, so it is not zero).
5. A second Ray node joins (`Cluster.add_node`); once the front shows it up in its
   /metrics (it looks every `watch_interval_s`), steps 2 and 4 run again with two
   agents on each node.

The CPU of every process of this machine's tree is also split by role (front,
browser nodes with their Chromium, Ray's own processes, the single server, this
benchmark's clients), so a node's CPU per action, the figure capacity planning
needs, is read directly. On a machine with fewer cores than nodes need, the
2-node figure shows the machine's limit, not the cluster's: the report prints how
many cores were busy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import stats
from bench.concurrency import ACTIONS, NEVER_ENDS, Agent
from bench.live import ServerProcess, start_server_process, stop_child
from safebrowse.client import AsyncControlClient, agent_client
from safebrowse.loop import BackgroundLoop
from safebrowse.progress import progress_bar

STEP_RATIO_TARGET = 1.10
"""The cluster's median step at most this many times the single server's."""
WORKERS = 1
"""Browser workers of the single server and of every browser node."""
FRONT_START_TIMEOUT_S = 180.0
NODE_JOIN_TIMEOUT_S = 180.0
ENDLESS: dict[str, Any] = dict(NEVER_ENDS)
"""The create fields of an episode that never ends by itself (typed for `create_episode(**...)`)."""
CONTROL_URL = re.compile(r"control API \(trainers\):\s+(\S+)")
NODE_UP = re.compile(r'^safebrowse_node_up\{node="([^"]+)"\}\s+([0-9.eE+-]+)$', re.MULTILINE)

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")

FRONT = "front"
NODES = "nodes (actor + Chromium)"
SINGLE = "single server (+ Chromium)"
RAY = "Ray (raylet, GCS, workers)"
CLIENTS = "bench clients"
ROLES = (FRONT, NODES, RAY, SINGLE, CLIENTS)


# -- CPU by role ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    command: str
    cpu_s: float


@dataclass
class CpuSample:
    """Cumulative CPU seconds of every process of ours, by pid, with its role; the machine's jiffies."""

    by_pid: dict[int, tuple[str, float]] = field(default_factory=dict)
    machine_busy: int = 0
    machine_total: int = 0


def read_proc(pid: int) -> Proc | None:
    """One process's parent, command line and CPU seconds (utime + stime of all its threads, live or ended)."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        command = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (OSError, IndexError):
        return None
    return Proc(pid, int(fields[1]), command, (int(fields[11]) + int(fields[12])) / TICKS)


def process_cpu_s(pid: int) -> float:
    """The CPU seconds one process has spent so far (NaN once it is gone)."""
    proc = read_proc(pid)
    return proc.cpu_s if proc is not None else math.nan


def all_processes() -> dict[int, Proc]:
    table: dict[int, Proc] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            proc = read_proc(int(entry.name))
            if proc is not None:
                table[proc.pid] = proc
    return table


def ancestry(pid: int, table: Mapping[int, Proc]) -> list[int]:
    """The process and its ancestors, nearest first."""
    chain: list[int] = []
    current = pid
    while current in table and current not in chain:
        chain.append(current)
        current = table[current].ppid
    return chain


def role_of(pid: int, table: Mapping[int, Proc], roots: Mapping[int, str]) -> str | None:
    """Whose a process of this benchmark's tree is: that of its nearest ancestor (itself included)
    that is a known root or a browser node actor, else Ray's. A process outside the tree is not
    ours (None), even a browser node of another Ray cluster on the same machine."""
    me = os.getpid()
    if pid == me:
        return CLIENTS
    chain = ancestry(pid, table)
    if me not in chain:
        return None
    for current in chain[:chain.index(me)]:
        if current in roots:
            return roots[current]
        if table[current].command.startswith("ray::BrowserNode"):
            return NODES
    return RAY


def sample_cpu(roots: Mapping[int, str]) -> CpuSample:
    table = all_processes()
    by_pid: dict[int, tuple[str, float]] = {}
    for pid, proc in table.items():
        role = role_of(pid, table, roots)
        if role is not None:
            by_pid[pid] = (role, proc.cpu_s)
    jiffies = [int(x) for x in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = jiffies[3] + jiffies[4]  # idle, iowait
    return CpuSample(by_pid, sum(jiffies) - idle, sum(jiffies))


def cpu_spent(before: CpuSample, after: CpuSample) -> dict[str, float]:
    """CPU seconds by role between two samples, process by process: one that started in between
    counts from zero; one that ended in between is lost (Chromium renderers of closed episodes)."""
    spent: dict[str, float] = dict.fromkeys(ROLES, 0.0)
    for pid, (role, seconds) in after.by_pid.items():
        earlier = before.by_pid.get(pid)
        spent[role] += seconds - (earlier[1] if earlier is not None and earlier[0] == role else 0.0)
    return spent


def busy_cores(before: CpuSample, after: CpuSample) -> float:
    """How many of the machine's cores were busy on average between two samples (anything running)."""
    total = after.machine_total - before.machine_total
    if total <= 0:
        return math.nan
    return (after.machine_busy - before.machine_busy) / total * (os.cpu_count() or 1)


# -- the processes under test -------------------------------------------------------------------


@dataclass
class FrontProcess:
    """`safebrowse serve --ray ADDRESS` in a child process; its log in a file of its temp dir."""

    process: subprocess.Popen[bytes]
    control_url: str
    control_token: str
    home: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.home / "front.log"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM: the front closes every episode and stops its nodes; SIGKILL if it takes too long."""
        stop_child(self.process)
        shutil.rmtree(self.home, ignore_errors=True)


def child_environment(home: Path, token: str) -> dict[str, str]:
    """This environment without SAFEBROWSE_* settings (a user's own must not reach the servers under
    test), with the benchmark's: one worker, one warm context, a fresh control token."""
    environment = {key: value for key, value in os.environ.items() if not key.upper().startswith("SAFEBROWSE_")}
    if "SAFEBROWSE_CHROMIUM" in os.environ:
        environment["SAFEBROWSE_CHROMIUM"] = os.environ["SAFEBROWSE_CHROMIUM"]
    environment.update({
        "SAFEBROWSE_WORKERS": str(WORKERS),
        "SAFEBROWSE_MAX_WARM_CONTEXTS": "1",
        "SAFEBROWSE_CONTROL_TOKEN": token,
        "XDG_STATE_HOME": str(home / "state"),
        "PYTHONUNBUFFERED": "1",
    })
    return environment


def start_front(ray_address: str) -> FrontProcess:
    """Start the front on a free control port and wait until it logs its control URL, which it does
    once its first browser nodes are up."""
    home = Path(tempfile.mkdtemp(prefix="safebrowse-bench-front-"))
    token = "ctl_" + secrets.token_urlsafe(24)
    command = [sys.executable, "-m", "safebrowse.cli", "--log-level", "INFO", "serve", "--ray", ray_address,
               "--control-port", "0", "--data-dir", str(home / "data")]
    with open(home / "front.log", "wb") as log:
        process = subprocess.Popen(command, env=child_environment(home, token), stdout=subprocess.DEVNULL,
                                   stderr=log)
    front = FrontProcess(process, "", token, home)
    deadline = time.monotonic() + FRONT_START_TIMEOUT_S
    while True:
        match = CONTROL_URL.search(front.log_path.read_text(errors="replace"))
        if match:
            front.control_url = match.group(1)
            return front
        if process.poll() is not None or time.monotonic() > deadline:
            tail = front.log_tail()
            front.stop()
            raise RuntimeError(f"the front did not start (exit status {process.returncode}):\n{tail}")
        time.sleep(0.2)


def start_ray_cluster(nodes: int) -> Any:
    """A local Ray cluster: a head with no CPUs (Ray's services only) and `nodes` nodes of 1 CPU each,
    so the front starts exactly one browser node per Ray node."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(nodes):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    return cluster


# -- agents -------------------------------------------------------------------------------------


@dataclass
class Opened:
    """An agent acting on an episode, and where that episode runs."""

    agent: Agent
    episode_id: str
    node: str | None
    turn: int = 0

    async def step(self) -> bool:
        ok = await self.agent.act(self.turn)
        self.turn += 1
        return ok


async def open_agent(stack: AsyncExitStack, control: AsyncControlClient, action: str, seed: int) -> Opened:
    """Create an episode that never ends by itself, connect its agent over MCP, observe once."""
    created = await control.create_episode(ACTIONS[action], seed=seed, **ENDLESS)
    stack.push_async_callback(close_quietly, control, created.episode_id)
    client = await stack.enter_async_context(agent_client(created.mcp_url, created.agent_token))
    agent = Agent(client, action)
    await agent.prepare()
    return Opened(agent, created.episode_id, created.node)


async def close_quietly(control: AsyncControlClient, episode_id: str) -> None:
    try:
        await control.close_episode(episode_id)
    except Exception:  # noqa: BLE001 - best effort between phases
        pass


@dataclass
class Window:
    """Steps completed inside one measured window, and the CPU spent in it."""

    label: str
    agents: int
    seconds: float
    actions: int = 0
    errors: int = 0
    latencies_s: list[float] = field(default_factory=list)
    front_cpu_s: float = math.nan
    cpu_s: dict[str, float] = field(default_factory=dict)
    busy_cores: float = math.nan
    round: int = 0
    placement: dict[str, int] = field(default_factory=dict)

    @property
    def actions_per_second(self) -> float:
        return self.actions / self.seconds if self.seconds > 0 else math.nan


async def closed_loop(agents: Sequence[Opened], window: Window, warmup_s: float, roots: Mapping[int, str],
                      front_pid: int) -> Window:
    """Every agent acts back to back for `warmup_s` then `window.seconds`; steps that end inside
    the window count, and the CPU is sampled at its edges."""
    loop = asyncio.get_running_loop()
    start = loop.time() + warmup_s
    deadline = start + window.seconds

    async def drive(opened: Opened) -> None:
        while loop.time() < deadline:
            sent = loop.time()
            ok = await opened.step()
            done = loop.time()
            if not ok:
                window.errors += 1
            elif start <= done <= deadline:
                window.latencies_s.append(done - sent)

    async def measure() -> None:
        await asyncio.sleep(max(0.0, start - loop.time()))
        before = await asyncio.to_thread(sample_cpu, roots)
        await asyncio.sleep(max(0.0, deadline - loop.time()))
        after = await asyncio.to_thread(sample_cpu, roots)
        window.cpu_s = cpu_spent(before, after)
        window.busy_cores = busy_cores(before, after)
        front_pid_before, front_pid_after = before.by_pid.get(front_pid), after.by_pid.get(front_pid)
        if front_pid_before is not None and front_pid_after is not None:
            window.front_cpu_s = front_pid_after[1] - front_pid_before[1]

    await asyncio.gather(measure(), *(drive(opened) for opened in agents))
    window.actions = len(window.latencies_s)
    return window


# -- the phases ---------------------------------------------------------------------------------


@dataclass
class Idle:
    nodes: int
    seconds: float
    front_cpu_s: float
    cpu_s: dict[str, float] = field(default_factory=dict)
    """By role: what the nodes and Ray cost with nothing to do, too."""

    @property
    def rate(self) -> float:
        """Front CPU seconds per second with nothing happening."""
        return self.front_cpu_s / self.seconds if self.seconds > 0 else math.nan


@dataclass
class Churn:
    """Episodes created and closed one after another, no step taken."""

    episodes: int
    seconds: float
    front_cpu_s: float
    create_s: list[float] = field(default_factory=list)
    close_s: list[float] = field(default_factory=list)


class Phases:
    """The async phases, run on the clients' event loop; the processes are started and stopped outside."""

    def __init__(self, front: FrontProcess, single: ServerProcess, action: str) -> None:
        self.front = front
        self.single = single
        self.action = action
        self.roots = {front.pid: FRONT, single.pid: SINGLE}
        self.clusterside = AsyncControlClient(front.control_url, front.control_token)
        self.singleside = AsyncControlClient(single.control_url, single.control_token)

    async def latency_rounds(self, rounds: int, seconds: float, warmup_s: float, seed: int) -> list[Window]:
        """One agent on each side, warmed up once, then measured in turns, the order alternating."""
        windows: list[Window] = []
        async with AsyncExitStack() as stack:
            sides = {"single": await open_agent(stack, self.singleside, self.action, seed),
                     "cluster": await open_agent(stack, self.clusterside, self.action, seed)}
            for label, opened in sides.items():
                await closed_loop([opened], Window(label, 1, warmup_s), 0.0, self.roots, self.front.pid)
            for index in range(rounds):
                order = ("single", "cluster") if index % 2 == 0 else ("cluster", "single")
                for label in order:
                    window = Window(label, 1, seconds, round=index + 1)
                    windows.append(await closed_loop([sides[label]], window, 0.0, self.roots, self.front.pid))
        return windows

    async def idle(self, nodes: int, seconds: float) -> Idle:
        before = await asyncio.to_thread(sample_cpu, self.roots)
        started = time.perf_counter()
        await asyncio.sleep(seconds)
        after = await asyncio.to_thread(sample_cpu, self.roots)
        spent = cpu_spent(before, after)
        return Idle(nodes, time.perf_counter() - started, spent[FRONT], spent)

    async def churn(self, episodes: int, seed: int) -> Churn:
        """Create and close episodes through the control API, one at a time."""
        before = await asyncio.to_thread(process_cpu_s, self.front.pid)
        started = time.perf_counter()
        creates: list[float] = []
        closes: list[float] = []
        for k in range(episodes):
            sent = time.perf_counter()
            created = await self.clusterside.create_episode(ACTIONS[self.action], seed=seed + k, **ENDLESS)
            creates.append(time.perf_counter() - sent)
            sent = time.perf_counter()
            await self.clusterside.close_episode(created.episode_id)
            closes.append(time.perf_counter() - sent)
        seconds = time.perf_counter() - started
        spent = await asyncio.to_thread(process_cpu_s, self.front.pid) - before
        return Churn(episodes, seconds, spent, creates, closes)

    async def throughput(self, label: str, agents: int, seconds: float, warmup_s: float, seed: int) -> Window:
        """`agents` agents on the cluster in a closed loop; where the front placed them is kept."""
        async with AsyncExitStack() as stack:
            opened = [await open_agent(stack, self.clusterside, self.action, seed + k) for k in range(agents)]
            window = Window(label, agents, seconds)
            for one in opened:
                name = one.node or "?"
                window.placement[name] = window.placement.get(name, 0) + 1
            return await closed_loop(opened, window, warmup_s, self.roots, self.front.pid)

    async def nodes_up(self) -> int:
        text = await self.clusterside.metrics()
        return sum(1 for _node, value in NODE_UP.findall(text) if float(value) == 1.0)

    async def wait_for_nodes(self, count: int, timeout_s: float) -> float:
        """Poll the front's /metrics until `count` browser nodes are up; returns how long it took."""
        started = time.perf_counter()
        while await self.nodes_up() < count:
            if time.perf_counter() - started > timeout_s:
                raise RuntimeError(f"the front did not show {count} browser nodes up within {timeout_s:g} s")
            await asyncio.sleep(0.25)
        return time.perf_counter() - started

    async def aclose(self) -> None:
        await self.clusterside.aclose()
        await self.singleside.aclose()


@dataclass
class Results:
    latency: list[Window] = field(default_factory=list)
    idle: list[Idle] = field(default_factory=list)
    churn: Churn | None = None
    throughput: list[Window] = field(default_factory=list)
    join_s: float = math.nan
    startup_s: float = math.nan


# -- reporting ----------------------------------------------------------------------------------


def idle_rate(results: Results, nodes: int) -> float:
    return next((idle.rate for idle in results.idle if idle.nodes == nodes), math.nan)


def net_front_ms(front_cpu_s: float, seconds: float, rate: float, count: int) -> float:
    """Front CPU ms per unit of work, its idle rate over the same time taken off."""
    if count <= 0:
        return math.nan
    return (front_cpu_s - rate * seconds) / count * 1000


def window_nodes(window: Window) -> int:
    return len(window.placement) or 1


def _nodes(count: int) -> str:
    return f"{count} node" if count == 1 else f"{count} nodes"


def latency_report(windows: Sequence[Window]) -> tuple[list[str], float]:
    rows = []
    medians: dict[str, float] = {}
    for label in ("single", "cluster"):
        mine = [w for w in windows if w.label == label]
        latencies = [s for w in mine for s in w.latencies_s]
        medians[label] = stats.median(latencies)
        rounds = " ".join(stats.fmt_ms(stats.median(w.latencies_s)) for w in sorted(mine, key=lambda w: w.round))
        rate = stats.ratio(float(sum(w.actions for w in mine)), sum(w.seconds for w in mine))
        rows.append([label, str(sum(w.actions for w in mine)), str(sum(w.errors for w in mine)),
                     stats.fmt_ms(medians[label]), stats.fmt_ms(stats.p95(latencies)), rounds,
                     stats.fmt_num(rate, 1)])
    ratio = stats.ratio(medians["cluster"], medians["single"])
    lines = ["step latency, one agent, closed loop (ms):",
             stats.table(["side", "steps", "errors", "p50", "p95", "p50 each round", "actions/s"], rows),
             f"cluster / single step median: {stats.fmt_num(ratio, 3)}", ""]
    return lines, ratio


def front_report(results: Results) -> list[str]:
    rows = []
    for idle in results.idle:
        rows.append([f"idle, {_nodes(idle.nodes)}", f"{idle.seconds:.1f} s", "-",
                     stats.fmt_num(idle.front_cpu_s * 1000, 0), stats.fmt_num(idle.rate * 1000, 1), "-", "-"])
    churn = results.churn
    if churn is not None:
        rate = idle_rate(results, 1)
        rows.append(["create + close, 1 node", f"{churn.seconds:.1f} s", f"{churn.episodes} episodes",
                     stats.fmt_num(churn.front_cpu_s * 1000, 0),
                     stats.fmt_num(churn.front_cpu_s / churn.seconds * 1000, 1),
                     stats.fmt_num(churn.front_cpu_s / churn.episodes * 1000, 1),
                     stats.fmt_num(net_front_ms(churn.front_cpu_s, churn.seconds, rate, churn.episodes), 1)])
    for window in results.throughput:
        rate = idle_rate(results, window_nodes(window))
        rows.append([f"steps, {window.label}", f"{window.seconds:.1f} s", f"{window.actions} steps",
                     stats.fmt_num(window.front_cpu_s * 1000, 0),
                     stats.fmt_num(window.front_cpu_s / window.seconds * 1000, 1),
                     stats.fmt_num(window.front_cpu_s / max(window.actions, 1) * 1000, 2),
                     stats.fmt_num(net_front_ms(window.front_cpu_s, window.seconds, rate, window.actions), 2)])
    lines = ["the front's CPU (its process, all threads; /proc/<pid>/stat, 10 ms ticks):",
             stats.table(["phase", "time", "work", "CPU ms", "ms/s", "ms per unit", "ms per unit, net of idle"],
                         rows)]
    if churn is not None:
        lines.append(f"create p50 {stats.fmt_ms(stats.median(churn.create_s))} ms, "
                     f"close p50 {stats.fmt_ms(stats.median(churn.close_s))} ms (control API, as a trainer sees them)")
    lines.append("")
    return lines


def throughput_report(results: Results) -> list[str]:
    rows = []
    base = results.throughput[0].actions_per_second if results.throughput else math.nan
    for window in results.throughput:
        placement = " + ".join(str(count) for count in window.placement.values())
        rows.append([window.label, str(window.agents), placement, str(window.actions), str(window.errors),
                     stats.fmt_num(window.actions_per_second, 2),
                     stats.fmt_x(stats.ratio(window.actions_per_second, base)),
                     stats.fmt_ms(stats.median(window.latencies_s)), stats.fmt_ms(stats.p95(window.latencies_s)),
                     stats.fmt_num(window.busy_cores, 2)])
    lines = ["actions/s, closed-loop agents on the cluster:",
             stats.table(["nodes", "agents", "per node", "actions", "errors", "actions/s", "vs 1 node",
                          "p50 ms", "p95 ms", "busy cores"], rows), ""]
    cpu_rows = []
    for window in [*results.throughput, *_latency_totals(results.latency)]:
        per = max(window.actions, 1)
        serving = SINGLE if window.label == "latency, single" else NODES
        cpu_rows.append([window.label, *(stats.fmt_num(window.cpu_s.get(role, 0.0) / per * 1000, 2) for role in ROLES),
                         stats.fmt_num(per_core(window, serving), 1)])
    idle_rows = [[_nodes(idle.nodes), *(stats.fmt_num(idle.cpu_s.get(role, 0.0) / idle.seconds * 1000, 0)
                                       for role in ROLES)] for idle in results.idle]
    lines += ["CPU per action by role (ms), and actions/s one core of the serving side (the nodes, or the "
              "single server) sustains:",
              stats.table(["window", *ROLES, "actions/s per serving core"], cpu_rows), ""]
    if idle_rows:
        lines += ["CPU with nothing to do, by role (ms per s):", stats.table(["idle", *ROLES], idle_rows), ""]
    return lines


def per_core(window: Window, role: str) -> float:
    """Actions one core of `role`'s CPU completes per second, at this window's CPU per action."""
    spent = window.cpu_s.get(role, 0.0)
    return window.actions / spent if spent > 0 else math.nan


def _latency_totals(windows: Sequence[Window]) -> list[Window]:
    """The latency rounds of each side summed into one window, for the CPU table."""
    totals: list[Window] = []
    for label in ("single", "cluster"):
        mine = [w for w in windows if w.label == label]
        if not mine:
            continue
        total = Window(f"latency, {label}", 1, sum(w.seconds for w in mine), sum(w.actions for w in mine))
        total.cpu_s = {role: sum(w.cpu_s.get(role, 0.0) for w in mine) for role in ROLES}
        totals.append(total)
    return totals


def capacity_lines(results: Results) -> list[str]:
    """What one front core keeps up with, from the throughput windows together (net of idle)."""
    windows = results.throughput
    if not windows:
        return []
    actions = sum(w.actions for w in windows)
    front_s = sum(w.front_cpu_s - idle_rate(results, window_nodes(w)) * w.seconds for w in windows)
    node_s = sum(w.cpu_s.get(NODES, 0.0) for w in windows)
    per_step_ms = front_s / actions * 1000 if actions else math.nan
    steps_per_front_core = 1000 / per_step_ms if per_step_ms > 0 else math.nan
    actions_per_node_core = actions / node_s if node_s > 0 else math.nan
    lines = [
        "capacity, from the throughput windows together:",
        f"  a node core (its actor and Chromium) completes about {stats.fmt_num(actions_per_node_core, 1)} "
        f"actions/s",
        f"  a front core records about {stats.fmt_num(steps_per_front_core, 0)} steps/s "
        f"({stats.fmt_num(per_step_ms, 2)} ms of front CPU per step, net of idle)",
        f"  so one front core keeps up with about "
        f"{stats.fmt_num(stats.ratio(steps_per_front_core, actions_per_node_core), 0)} fully busy node cores",
    ]
    churn = results.churn
    if churn is not None:
        per_episode_ms = net_front_ms(churn.front_cpu_s, churn.seconds, idle_rate(results, 1), churn.episodes)
        lines.append(f"  and creates and closes about {stats.fmt_num(stats.ratio(1000, per_episode_ms), 0)} "
                     f"episodes/s ({stats.fmt_num(per_episode_ms, 1)} ms of front CPU per episode, net of idle)")
    return [*lines, ""]


def report(results: Results, args: argparse.Namespace, elapsed_s: float) -> str:
    out = [
        f"safebrowse cluster: {args.action} on {ACTIONS[args.action]}, {WORKERS} browser worker per server and "
        f"per node; latency {args.rounds} round(s) of {args.latency_seconds:g} s per side, throughput windows of "
        f"{args.seconds:g} s after {args.warmup:g} s warm-up, {args.agents_per_node} agents per node",
        f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
        f"at the end; start-up {results.startup_s:.0f} s, second node up at the front "
        f"{results.join_s:.1f} s after it joined Ray; run took {elapsed_s:.0f} s",
        "",
    ]
    latency_lines, ratio = latency_report(results.latency)
    out += latency_lines
    out += front_report(results)
    out += throughput_report(results)
    out += capacity_lines(results)
    verdict = "NOT MEASURED" if math.isnan(ratio) else ("MET" if ratio <= STEP_RATIO_TARGET else "NOT MET")
    out += ["targets:",
            f"  cluster step median within {(STEP_RATIO_TARGET - 1) * 100:.0f}% of the single server's:  "
            f"{stats.fmt_num(ratio, 3)}  {verdict}"]
    return "\n".join(out)


# -- command line -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--action", choices=sorted(ACTIONS), default="fill")
    parser.add_argument("--rounds", type=int, default=None, help="latency rounds, each side once per round (default 4)")
    parser.add_argument("--latency-seconds", type=float, default=None,
                        help="measured seconds per side and latency round (default 5)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="measured seconds per throughput window (default 15)")
    parser.add_argument("--warmup", type=float, default=None, help="unmeasured seconds before each window (default 2)")
    parser.add_argument("--episodes", type=int, default=None,
                        help="episodes created and closed for the front's CPU per episode (default 20)")
    parser.add_argument("--idle", type=float, default=None, help="seconds of the front's idle reading (default 4)")
    parser.add_argument("--agents-per-node", type=int, default=2, help="closed-loop agents per node (default 2)")
    parser.add_argument("--quick", action="store_true", help="1 latency round of 3 s, 4 s windows, 6 episodes")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the raw numbers to this file")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="a progress line on stderr (default: only when stderr is a terminal)")
    args = parser.parse_args(argv)
    quick = {"rounds": 1, "latency_seconds": 3.0, "seconds": 4.0, "warmup": 1.0, "episodes": 6, "idle": 2.0}
    full = {"rounds": 4, "latency_seconds": 5.0, "seconds": 15.0, "warmup": 2.0, "episodes": 20, "idle": 4.0}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.rounds < 1 or args.episodes < 1 or args.agents_per_node < 1:
        parser.error("--rounds, --episodes and --agents-per-node must be at least 1")
    return args


def run(args: argparse.Namespace, results: Results) -> None:
    """Start everything, run the phases in order, stop everything (whatever happened)."""
    started = time.perf_counter()
    os.environ.pop("SAFEBROWSE_RAY_ADDRESS", None)  # the single server must not become a front
    pool = ThreadPoolExecutor(1)
    single_starting: Future[ServerProcess] = pool.submit(start_server_process, WORKERS, 1)
    cluster: Any = None
    front: FrontProcess | None = None
    single: ServerProcess | None = None
    client_loop = BackgroundLoop("bench-client")
    seed = 1000
    try:
        cluster = start_ray_cluster(1)
        front = start_front(cluster.address)
        single = single_starting.result()
        results.startup_s = time.perf_counter() - started
        phases = client_loop.run(_make_phases(front, single, args.action))
        window_timeout = args.seconds + args.warmup + 300
        total = args.rounds + 6
        with progress_bar(total, "cluster", enabled=args.progress, unit="phase") as bar:
            def done(what: str) -> None:
                bar.set_postfix_str(what, refresh=False)
                bar.update()

            latency_timeout = (args.latency_seconds * 2 + args.warmup) * args.rounds + 300
            results.latency = client_loop.run(
                phases.latency_rounds(args.rounds, args.latency_seconds, args.warmup, seed), latency_timeout)
            bar.update(args.rounds - 1)
            done("latency rounds")
            single.stop()  # its idle Chromium has no business in the cluster's figures
            results.idle.append(client_loop.run(phases.idle(1, args.idle)))
            done("front idle, 1 node")
            results.churn = client_loop.run(phases.churn(args.episodes, seed + 100), 60 + 30 * args.episodes)
            done("episodes created and closed")
            results.throughput.append(client_loop.run(
                phases.throughput("1 node", args.agents_per_node, args.seconds, args.warmup, seed + 200),
                window_timeout))
            done("1 node")
            joined = time.perf_counter()
            cluster.add_node(num_cpus=1)
            client_loop.run(phases.wait_for_nodes(2, NODE_JOIN_TIMEOUT_S), NODE_JOIN_TIMEOUT_S + 10)
            results.join_s = time.perf_counter() - joined
            done("second node joined")
            results.idle.append(client_loop.run(phases.idle(2, args.idle)))
            done("front idle, 2 nodes")
            results.throughput.append(client_loop.run(
                phases.throughput("2 nodes", 2 * args.agents_per_node, args.seconds, args.warmup, seed + 300),
                window_timeout))
            done("2 nodes")
        client_loop.run(phases.aclose())
    except BaseException:
        if front is not None:
            sys.stderr.write(f"the front's log, last lines:\n{front.log_tail()}\n")
        raise
    finally:
        client_loop.close()
        if front is not None:
            front.stop()
        if single is None and not single_starting.cancel():
            try:
                single = single_starting.result(120)
            except Exception:  # noqa: BLE001 - it never started: nothing to stop
                single = None
        if single is not None:
            single.stop()
        pool.shutdown()
        if cluster is not None:
            cluster.shutdown()


async def _make_phases(front: FrontProcess, single: ServerProcess, action: str) -> Phases:
    return Phases(front, single, action)  # its HTTP clients belong to the clients' loop


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    results = Results()
    run(args, results)
    print(report(results, args, time.perf_counter() - started), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "results": asdict(results)}, handle, indent=1, default=str)
    windows = [*results.latency, *results.throughput]
    return 0 if windows and all(w.actions > 0 for w in windows) else 1


if __name__ == "__main__":
    sys.exit(main())
