"""Aggregate MCP actions per second with 1, 2, 4 and 8 episodes acting at once,
and the resident memory each extra open episode costs.

    python -m bench.concurrency                    # 1,2,4,8 parallel episodes, 3 rounds of 10 s each
    python -m bench.concurrency --quick            # 1,2 parallel episodes, 1 round of 4 s, memory up to 3
    python -m bench.concurrency --action noop --levels 1,4 --seconds 30

Throughput: the whole server runs as `safebrowse serve` in a child process, as
it is deployed (`--server thread` runs it on a thread of this process instead,
as `bench.compare` does, which splits its CPU time by thread but makes it share
one interpreter lock with the clients); for each level N, N episodes of a task
that never ends by itself are created on the control API, N MCP clients connect
over streamable HTTP with their agent tokens, and each acts in a closed loop
(send a call, wait for its observation, send the next) for a fixed time.
Actions completed after the warm-up and before the deadline are counted, with
the CPU time every process spent in that window. The levels run in several
rounds, alternately in ascending and descending order, and each level's median
round is reported, so a machine whose load drifts during the run (a shared
one) biases no level. The default action alternates `fill` on
miniwob.enter-text between two texts (an action that changes the page, the
task validation and a full observation every step); `--action noop` sends
`noop` with `wait_ms=0` on miniwob.click-test-2 instead.

Memory: episodes are opened one at a time (up to `--memory-episodes`), each
observed once, and the resident memory of this process and all its descendants
(Playwright drivers, every Chromium process) is read from /proc after each.
The cost of one more open episode is the least-squares slope of that curve.
VmRSS sums count shared pages once per process (an upper bound); PSS splits
them between processes (the real footprint); USS counts only private pages.
All three are printed; the target is judged on VmRSS and on PSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field

from mcp import Client

from bench import cpu, stats
from bench.live import LiveServer, ServerProcess, start_server, start_server_process
from bench.memory import TreeMemory, tree_memory
from safebrowse.client import AsyncControlClient, agent_client
from safebrowse.loop import BackgroundLoop
from safebrowse.progress import progress_bar

SCALING_TARGET = 1.6  # 4 parallel episodes vs 1
MEMORY_TARGET_MB = 80.0
NEVER_ENDS = {"max_steps": 10_000, "max_repeated_actions": 10_000, "max_invalid_actions": 10_000}
ACTIONS = {
    "fill": "miniwob.enter-text",
    "noop": "miniwob.click-test-2",
}


@dataclass
class Level:
    parallel: int
    seconds: float
    actions: int
    errors: int
    latencies_s: list[float] = field(default_factory=list)
    round: int = 0
    cpu: cpu.CpuSample | None = None  # spent inside the measured window

    @property
    def actions_per_second(self) -> float:
        return self.actions / self.seconds if self.seconds > 0 else math.nan


@dataclass
class MemoryPoint:
    open_episodes: int
    processes: int
    chromium_processes: int
    rss_mb: float
    pss_mb: float
    uss_mb: float


class Agent:
    """One episode's MCP client, acting in a closed loop."""

    def __init__(self, client: Client, action: str) -> None:
        self.client = client
        self.action = action
        self.textbox: str | None = None

    async def prepare(self) -> None:
        first = await self.client.call_tool("observe", {})
        page = first.structured_content or {}
        self.textbox = next((e["id"] for e in page.get("elements", []) if e["role"] == "textbox"), None)
        if self.action == "fill" and self.textbox is None:
            raise RuntimeError("no textbox to fill on the page")

    async def act(self, turn: int) -> bool:
        if self.action == "fill":
            result = await self.client.call_tool("fill", {"id": self.textbox, "text": ("left", "right")[turn % 2]})
        else:
            result = await self.client.call_tool("noop", {"wait_ms": 0})
        return not result.is_error and result.structured_content is not None


class Runner:
    def __init__(self, server: LiveServer | ServerProcess, action: str) -> None:
        self.server = server
        self.action = action
        self.task_id = ACTIONS[action]
        self.control = AsyncControlClient(server.control_url, server.control_token)
        # A server in a child process: CPU outside its tree is told apart from its own.
        self.server_pid = server.pid if isinstance(server, ServerProcess) else None

    async def open_agents(self, stack: AsyncExitStack, count: int, seed: int) -> tuple[list[Agent], list[str]]:
        agents: list[Agent] = []
        episode_ids: list[str] = []
        for k in range(count):
            created = await self.control.create_episode(self.task_id, seed=seed + k, **NEVER_ENDS)
            episode_ids.append(created.episode_id)
            client = await stack.enter_async_context(agent_client(created.mcp_url, created.agent_token))
            agent = Agent(client, self.action)
            await agent.prepare()
            agents.append(agent)
        return agents, episode_ids

    async def close_all(self, episode_ids: Sequence[str]) -> None:
        for episode_id in episode_ids:
            try:
                await self.control.close_episode(episode_id)
            except Exception:  # noqa: BLE001 - best effort between levels
                pass

    async def level(self, parallel: int, seconds: float, warmup: float, seed: int) -> Level:
        episode_ids: list[str] = []
        try:
            async with AsyncExitStack() as stack:
                agents, episode_ids = await self.open_agents(stack, parallel, seed)
                loop = asyncio.get_running_loop()
                start = loop.time() + warmup
                deadline = start + seconds
                counted: list[float] = []
                errors = 0

                async def drive(agent: Agent) -> None:
                    nonlocal errors
                    turn = 0
                    while loop.time() < deadline:
                        sent = loop.time()
                        ok = await agent.act(turn)
                        done = loop.time()
                        turn += 1
                        if not ok:
                            errors += 1
                        elif start <= done <= deadline:
                            counted.append(done - sent)

                spent: list[cpu.CpuSample] = []

                async def measure_cpu() -> None:
                    await asyncio.sleep(max(0.0, start - loop.time()))
                    before = await asyncio.to_thread(cpu.sample, self.server_pid)
                    await asyncio.sleep(max(0.0, deadline - loop.time()))
                    spent.append(cpu.difference(before, await asyncio.to_thread(cpu.sample, self.server_pid)))

                await asyncio.gather(measure_cpu(), *(drive(agent) for agent in agents))
        finally:
            await self.close_all(episode_ids)
        return Level(parallel, seconds, len(counted), errors, counted, cpu=spent[0] if spent else None)

    async def memory_ramp(self, count: int, seed: int, settle_s: float) -> list[MemoryPoint]:
        points = [_point(0, await _settled_memory(settle_s))]
        episode_ids: list[str] = []
        try:
            async with AsyncExitStack() as stack:
                for k in range(count):
                    _agents, ids = await self.open_agents(stack, 1, seed + k)
                    episode_ids += ids
                    points.append(_point(k + 1, await _settled_memory(settle_s)))
        finally:
            await self.close_all(episode_ids)
        return points

    async def aclose(self) -> None:
        await self.control.aclose()


async def _settled_memory(settle_s: float) -> TreeMemory:
    # Closed contexts and Chromium's own processes settle down; let them before reading.
    await asyncio.sleep(settle_s)
    return await asyncio.to_thread(tree_memory)


def _point(open_episodes: int, memory: TreeMemory) -> MemoryPoint:
    return MemoryPoint(open_episodes, memory.processes, memory.chromium_processes, memory.rss_mb, memory.pss_mb,
                       memory.uss_mb)


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs."""
    if len(xs) < 2:
        return math.nan
    mean_x = sum(xs) / len(xs)
    mean_y = sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return math.nan
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var


# -- reporting -------------------------------------------------------------------------------


def median_rates(levels: Sequence[Level]) -> dict[int, float]:
    """Each parallel level's median actions/s over its rounds."""
    counts = sorted({lv.parallel for lv in levels})
    return {n: stats.median([lv.actions_per_second for lv in levels if lv.parallel == n]) for n in counts}


def report(levels: Sequence[Level], memory: Sequence[MemoryPoint], args: argparse.Namespace,
           elapsed_s: float) -> str:
    out = [
        f"safebrowse concurrency: {args.action} on {ACTIONS[args.action]}, {args.rounds} round(s) of "
        f"{args.seconds:.0f} s per level after {args.warmup:g} s warm-up, "
        f"{args.workers or os.cpu_count()} browser workers, server in a {args.server}",
        f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
        f"at the end; run took {elapsed_s:.0f} s",
        "",
    ]
    rates = median_rates(levels)
    base = rates.get(1, math.nan)
    rows = []
    for n, rate in rates.items():
        mine = [lv for lv in levels if lv.parallel == n]
        latencies = [s for lv in mine for s in lv.latencies_s]
        rounds = " ".join(stats.fmt_num(lv.actions_per_second, 1) for lv in sorted(mine, key=lambda lv: lv.round))
        rows.append([str(n), str(sum(lv.actions for lv in mine)), str(sum(lv.errors for lv in mine)),
                     stats.fmt_num(rate, 2), rounds, stats.fmt_x(stats.ratio(rate, base)),
                     stats.fmt_ms(stats.median(latencies)), stats.fmt_ms(stats.p95(latencies))])
    out.append(stats.table(["parallel", "actions", "errors", "actions/s (median)", "each round", "vs 1",
                            "latency p50", "latency p95"], rows))
    out.append("")
    out.extend(cpu_report(levels))
    if memory:
        out.append(stats.table(
            ["open episodes", "processes", "chromium", "RSS MB", "PSS MB", "USS MB"],
            [[str(p.open_episodes), str(p.processes), str(p.chromium_processes), f"{p.rss_mb:.0f}",
              f"{p.pss_mb:.0f}", f"{p.uss_mb:.0f}"] for p in memory]))
        rss_slope, pss_slope, uss_slope = memory_slopes(memory)
        out.append(f"per extra open episode (least-squares slope from 1 open episode up): "
                   f"RSS {stats.fmt_num(rss_slope)} MB, PSS {stats.fmt_num(pss_slope)} MB, "
                   f"USS {stats.fmt_num(uss_slope)} MB")
        out.append("")
    out.append("targets:")
    scaling = stats.ratio(rates.get(4, math.nan), base)
    out.append(f"  4 parallel episodes at least {SCALING_TARGET}x the actions/s of 1:  {stats.fmt_x(scaling):>6}  "
               f"{_verdict(scaling, SCALING_TARGET, higher=True)}")
    if memory:
        rss_slope, pss_slope, _uss = memory_slopes(memory)
        out.append(f"  under {MEMORY_TARGET_MB:.0f} MB per extra open episode (VmRSS sum):  "
                   f"{stats.fmt_num(rss_slope):>6} MB  {_verdict(rss_slope, MEMORY_TARGET_MB, higher=False)}")
        out.append(f"  under {MEMORY_TARGET_MB:.0f} MB per extra open episode (PSS sum):    "
                   f"{stats.fmt_num(pss_slope):>6} MB  {_verdict(pss_slope, MEMORY_TARGET_MB, higher=False)}")
    return "\n".join(out)


def cpu_report(levels: Sequence[Level]) -> list[str]:
    """CPU per action by process kind, over all rounds of each level, and how busy the cores were."""
    totals: dict[int, tuple[int, float, cpu.CpuSample]] = {}
    for level in levels:
        if level.cpu is None:
            continue
        actions, seconds, spent = totals.get(level.parallel, (0, 0.0, cpu.CpuSample()))
        totals[level.parallel] = (actions + level.actions, seconds + level.seconds, cpu.add(spent, level.cpu))
    if not totals:
        return []
    kinds = sorted({kind for _a, _s, spent in totals.values() for kind in spent.seconds},
                   key=lambda kind: -sum(spent.seconds.get(kind, 0.0) for _a, _s, spent in totals.values()))
    kinds = [kind for kind in kinds
             if any(spent.seconds.get(kind, 0.0) / max(actions, 1) >= 0.0001 for actions, _s, spent in totals.values())]
    rows = []
    for parallel, (actions, seconds, spent) in sorted(totals.items()):
        ours = sum(spent.seconds.values())
        rows.append([str(parallel), stats.fmt_num(ours / max(actions, 1) * 1000, 1),
                     stats.fmt_num(ours / seconds, 2), stats.fmt_num(cpu.machine_busy_cores(spent), 2)]
                    + [stats.fmt_num(spent.seconds.get(kind, 0.0) / max(actions, 1) * 1000, 1) for kind in kinds])
    return [
        "CPU per action (ms of CPU time, this process tree) and busy cores, over the measured windows:",
        stats.table(["parallel", "CPU/action", "our cores", "machine cores", *kinds], rows),
        "",
    ]


def memory_slopes(memory: Sequence[MemoryPoint]) -> tuple[float, float, float]:
    """MB per extra open episode: RSS, PSS and USS slopes from one open episode up
    (the first episode also pays for the worker's first real page)."""
    points = [p for p in memory if p.open_episodes >= 1]
    xs = [float(p.open_episodes) for p in points]
    return (slope(xs, [p.rss_mb for p in points]), slope(xs, [p.pss_mb for p in points]),
            slope(xs, [p.uss_mb for p in points]))


def _verdict(value: float, target: float, higher: bool) -> str:
    if math.isnan(value):
        return "NOT MEASURED"
    return "MET" if (value >= target if higher else value < target) else "NOT MET"


# -- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.concurrency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default=None, help="parallel episode counts, comma-separated (default 1,2,4,8)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="measured seconds per level and round (default 10)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds over all levels (default 3)")
    parser.add_argument("--warmup", type=float, default=None, help="unmeasured seconds per level (default 3)")
    parser.add_argument("--action", choices=sorted(ACTIONS), default="fill")
    parser.add_argument("--memory-episodes", type=int, default=None,
                        help="open episodes one by one up to this many for the memory curve (default 8; 0 skips)")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds to wait before each memory reading")
    parser.add_argument("--workers", type=int, default=None, help="safebrowse browser workers (default: cores)")
    parser.add_argument("--server", choices=["process", "thread"], default="process",
                        help="process: `safebrowse serve` as a child process, as deployed (default); thread: the "
                             "server on a thread of this process, which splits its CPU into worker and event-loop "
                             "threads but shares one interpreter lock with the clients")
    parser.add_argument("--quick", action="store_true",
                        help="levels 1,2, one round of 4 s each, memory up to 3 episodes")
    parser.add_argument("--json", default=None, help="also write the raw numbers to this file")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="a progress line on stderr (default: only when stderr is a terminal)")
    args = parser.parse_args(argv)
    if args.quick:
        args.levels = args.levels or "1,2"
        args.seconds = args.seconds or 4.0
        args.rounds = args.rounds or 1
        args.warmup = 1.0 if args.warmup is None else args.warmup
        args.memory_episodes = 3 if args.memory_episodes is None else args.memory_episodes
    args.levels = [int(x) for x in (args.levels or "1,2,4,8").split(",") if x.strip()]
    args.seconds = args.seconds or 10.0
    args.rounds = args.rounds or 3
    args.warmup = 3.0 if args.warmup is None else args.warmup
    args.memory_episodes = 8 if args.memory_episodes is None else args.memory_episodes
    if any(level < 1 for level in args.levels):
        parser.error("levels must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    # No warm contexts: an episode takes a warm context's renderer rather than adding one, and a
    # worker warms only while it runs no episode, so with a pool the memory curve would show the
    # first open episodes costing nothing. Without one, it counts open episodes only.
    server: LiveServer | ServerProcess
    if args.server == "process":
        server = start_server_process(args.workers, max_warm_contexts=0)
    else:
        server = start_server(**({"workers": args.workers} if args.workers else {}), max_warm_contexts=0)
    client_loop = BackgroundLoop("bench-client")
    levels: list[Level] = []
    memory: list[MemoryPoint] = []
    try:
        async def make_runner() -> Runner:
            return Runner(server, args.action)

        runner = client_loop.run(make_runner())
        timeout = args.seconds + args.warmup + 300
        seed = 100
        # One unit per level run, and one for the memory curve.
        total = args.rounds * len(args.levels) + (1 if args.memory_episodes else 0)
        with progress_bar(total, "concurrency", enabled=args.progress, unit="run") as bar:
            for round_index in range(args.rounds):
                order = args.levels if round_index % 2 == 0 else list(reversed(args.levels))
                for parallel in order:
                    seed += 100
                    level = client_loop.run(runner.level(parallel, args.seconds, args.warmup, seed), timeout)
                    level.round = round_index + 1
                    levels.append(level)
                    bar.write(f"  round {level.round}, {parallel} parallel: {level.actions_per_second:.2f} actions/s",
                              file=sys.stderr)
                    bar.set_postfix_str(f"round {level.round}/{args.rounds}, {parallel} parallel done", refresh=False)
                    bar.update()
            if args.memory_episodes:
                memory = client_loop.run(runner.memory_ramp(args.memory_episodes, 5_000, args.settle), 600)
                bar.set_postfix_str(f"memory curve up to {args.memory_episodes} open episodes done", refresh=False)
                bar.update()
        client_loop.run(runner.aclose())
    finally:
        client_loop.close()
        server.stop()
    elapsed = time.perf_counter() - started
    print(report(levels, memory, args, elapsed), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "levels": [asdict(lv) for lv in levels],
                       "memory": [asdict(p) for p in memory]}, handle, indent=1)
    return 0 if levels and all(lv.actions > 0 for lv in levels) else 1


if __name__ == "__main__":
    sys.exit(main())

