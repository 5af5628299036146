"""The parallel-agents loop of `bench.loops`: N agents acting back to back at once, for N in
a few levels, on each side: actions per second, step latency and CPU per action.

safebrowse: `bench.concurrency.Runner` (N episodes of miniwob.enter-text that never
end by themselves, N MCP clients each sending `fill` in a closed loop), with the
CPU of every process of this tree read from /proc over the measured window
(`bench.cpu`: Chromium's renderers, browser and GPU processes, the Playwright
driver, the server's process, and this process's client threads). BrowserEnv: N
envs of the same task on threads of their own, each stepping `fill` in a closed
loop (`bench.browsergym_threads.drive_fills`). The sides take turns level by
level, on one fresh server that idles while BrowserEnv acts; the CPU of that
server's tree is kept apart from BrowserEnv's (`bench.cpu.sample(server_pid)`).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
from dataclasses import dataclass, field
from typing import NoReturn

from tqdm import tqdm

from bench import browsergym_threads, concurrency, cpu, stats
from bench.concurrency import Level, Runner
from bench.live import server_process
from bench.loops_targets import Target
from safebrowse.loop import BackgroundLoop

TASK = concurrency.ACTIONS["fill"]
CPU_TARGET_S = 0.020
# This process's threads and anything outside the server's tree: the benchmark's own side.
CLIENT_KINDS = frozenset({"py: clients", "py: other", "py: browsergym envs"})
LEVEL_TIMEOUT_S = 600.0
OTHER_WORK_CORES = 0.5  # busy cores outside this process tree above which the report warns


@dataclass
class Parallel:
    seconds: float
    warmup: float
    safebrowse: list[Level] = field(default_factory=list)
    browsergym: list[browsergym_threads.FillWindow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    quiet: list[str] = field(default_factory=list)
    """Each level's start, side by side: how long it waited for a quiet machine (`cpu.wait_until_quiet`)."""


def is_client_kind(kind: str) -> bool:
    return kind in CLIENT_KINDS or kind.startswith(cpu.OUTSIDE)


def cpu_per_action_s(spent: cpu.CpuSample | None, actions: int, *, clients: bool) -> float:
    """safebrowse's CPU seconds per action over the window, with or without the benchmark's own clients."""
    if spent is None or actions <= 0:
        return math.nan
    return sum(seconds for kind, seconds in spent.seconds.items() if clients or not is_client_kind(kind)) / actions


def browsergym_cpu_per_action_s(spent: cpu.CpuSample | None, actions: int) -> float:
    """BrowserEnv's CPU seconds per action: this process's threads and every process outside
    the (idle) safebrowse server's tree: its Playwright drivers and Chromiums."""
    if spent is None or actions <= 0:
        return math.nan
    return sum(seconds for kind, seconds in spent.seconds.items() if is_client_kind(kind)) / actions


def _safebrowse_level(client_loop: BackgroundLoop, runner: Runner, parallel: int, seed: int,
                      args: argparse.Namespace, outcome: Parallel) -> None:
    try:
        outcome.safebrowse.append(
            client_loop.run(runner.level(parallel, args.seconds, args.warmup, seed), LEVEL_TIMEOUT_S))
    except Exception as error:  # noqa: BLE001 - reported, the run goes on
        outcome.errors.append(f"safebrowse at {parallel}: {type(error).__name__}: {error}")


def _browsergym_level(parallel: int, seed: int, server_pid: int, args: argparse.Namespace,
                      outcome: Parallel) -> None:
    envs = browsergym_threads.open_envs(TASK, parallel)
    try:
        outcome.browsergym.append(
            browsergym_threads.drive_fills(envs, seed, args.seconds, args.warmup, server_pid=server_pid))
    except Exception as error:  # noqa: BLE001 - reported, the run goes on
        outcome.errors.append(f"browsergym at {parallel}: {type(error).__name__}: {error}")
    finally:
        browsergym_threads.close_envs(envs)


def run(args: argparse.Namespace, browsergym: bool, bar: tqdm[NoReturn]) -> Parallel:
    """Level by level, both sides in turn (taking turns to go first) on one fresh server, so
    both see the same machine load; BrowserEnv's envs of a level are closed before the next."""
    outcome = Parallel(args.seconds, args.warmup)
    client_loop = BackgroundLoop("bench-client")
    try:
        with server_process(args.workers) as server:
            async def make_runner() -> Runner:
                return Runner(server, "fill")

            runner = client_loop.run(make_runner())
            try:
                for index, parallel in enumerate(args.levels):
                    seed = 1_000 * (index + 1)
                    players = [("safebrowse", functools.partial(_safebrowse_level, client_loop, runner, parallel,
                                                                seed, args, outcome))]
                    if browsergym:
                        players.append(("BrowserEnv", functools.partial(_browsergym_level, parallel, seed,
                                                                        server.pid, args, outcome)))
                    if index % 2 == 1:
                        players.reverse()
                    for name, play in players:
                        start = cpu.wait_until_quiet().describe()
                        play()
                        outcome.quiet.append(f"{name} at {parallel}: {start}; {cpu.reference_ms():.0f} ms after it")
                        bar.set_postfix_str(f"parallel {name} {parallel}", refresh=False)
                        bar.update()
            finally:
                client_loop.run(runner.aclose())
    finally:
        client_loop.close()
    return outcome


def report(outcome: Parallel) -> tuple[list[str], list[Target]]:
    out = [f"3. parallel agents: `fill` on {TASK} back to back, {outcome.seconds:g} s measured per level after "
           f"{outcome.warmup:g} s warm-up; latency in ms", ""]
    theirs = {window.parallel: window for window in outcome.browsergym}
    rows = []
    for level in outcome.safebrowse:
        other = theirs.get(level.parallel)
        row = [str(level.parallel), str(level.actions), str(level.errors), stats.fmt_num(level.actions_per_second, 2),
               stats.fmt_ms(stats.median(level.latencies_s)), stats.fmt_ms(stats.p95(level.latencies_s)),
               _fmt_cpu(cpu_per_action_s(level.cpu, level.actions, clients=True)),
               _fmt_cpu(cpu_per_action_s(level.cpu, level.actions, clients=False))]
        if outcome.browsergym:
            row += ["-"] * 4 if other is None else [
                stats.fmt_num(other.actions_per_second, 2), stats.fmt_ms(stats.median(other.latencies_s)),
                _fmt_cpu(browsergym_cpu_per_action_s(other.cpu, other.actions)),
                stats.fmt_x(stats.ratio(level.actions_per_second, other.actions_per_second))]
        rows.append(row)
    header = ["parallel", "actions", "errors", "actions/s", "step p50", "step p95", "CPU/action",
              "w/o clients"]
    if outcome.browsergym:
        header += ["BrowserEnv actions/s", "its step p50", "its CPU/action", "safebrowse/BrowserEnv actions/s"]
    out.append(stats.table(header, rows))
    out.append("   CPU/action: ms of CPU of this whole process tree per action; w/o clients: without the "
               "benchmark's own threads (MCP clients)")
    out.append("")
    out += ["   " + line if line else "" for line in "\n".join(concurrency.cpu_report(outcome.safebrowse)).split("\n")]
    others = [cpu.machine_busy_cores(level.cpu) - sum(level.cpu.seconds.values()) / level.seconds
              for level in outcome.safebrowse if level.cpu is not None and level.seconds > 0]
    if others and max(others) > OTHER_WORK_CORES:
        out.append(f"   note: work outside this benchmark kept up to {max(others):.1f} of the machine's "
                   f"{os.cpu_count()} cores busy during safebrowse's windows; CPU per action grows under such "
                   "contention (shared caches, switching), so these CPU figures are upper bounds")
    out += [f"   {line}" for line in outcome.quiet]
    for error in outcome.errors:
        out.append(f"   error: {error}")
    targets = []
    for level in outcome.safebrowse:
        value = cpu_per_action_s(level.cpu, level.actions, clients=False)
        targets.append(Target(f"{level.parallel} parallel: CPU per action without the benchmark's clients at "
                              f"most {CPU_TARGET_S * 1000:.0f} ms",
                              f"{_fmt_cpu(value)} ms (with them "
                              f"{_fmt_cpu(cpu_per_action_s(level.cpu, level.actions, clients=True))} ms)",
                              None if math.isnan(value) else value <= CPU_TARGET_S))
    return out, targets


def completed(outcome: Parallel) -> bool:
    return not outcome.errors and all(level.actions > 0 for level in outcome.safebrowse)


def _fmt_cpu(seconds: float) -> str:
    return stats.fmt_num(seconds * 1000, 1)
