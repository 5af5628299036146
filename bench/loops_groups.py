"""The GRPO-group loop of `bench.loops`: G episodes of one task reset at once, closed, then a
pause while the trainer's model would generate, for several rounds, on each side.

safebrowse: `bench.groups.reset_group` (G creates, G MCP clients connecting and
observing in parallel, on a fresh server so the first round is cold). BrowserEnv:
G envs, each on its own thread for its whole life (`bench.browsergym_threads`),
`env.reset` on all at once; BrowserEnv frees an episode's browsers at its next
reset, so nothing is closed between rounds. The group's time is until every agent
holds its first observation. The sides run one after the other (safebrowse first)
with the same task, seeds, group count and pause.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from tqdm import tqdm

from bench import browsergym_threads, cpu, groups, stats
from bench.browsergym_side import SIDE as BROWSERGYM
from bench.live import server_process
from bench.loops_targets import Target
from bench.safebrowse_side import SIDE as SAFEBROWSE
from safebrowse.client import AgentSeat, AsyncControlClient
from safebrowse.loop import BackgroundLoop

LATER_ROUNDS_TARGET_S = 0.319  # 2x faster than the 638 ms measured by bench.groups at commit 0f47350
ROUND_TIMEOUT_S = 600.0


@dataclass
class GroupRound:
    group_s: float
    resets_s: list[float]


@dataclass
class GroupSide:
    side: str
    group: int
    rounds: list[GroupRound] = field(default_factory=list)
    error: str | None = None

    @property
    def cold_s(self) -> float:
        return self.rounds[0].group_s if self.rounds else math.nan

    @property
    def later_median_s(self) -> float:
        return stats.median([r.group_s for r in self.rounds[1:]])


@dataclass
class Groups:
    task_id: str
    pause_s: float
    sides: list[GroupSide] = field(default_factory=list)
    quiet: list[str] = field(default_factory=list)
    """How BrowserEnv's rounds started, after safebrowse's server stopped (`cpu.wait_until_quiet`)."""


def run_safebrowse(args: argparse.Namespace, bar: tqdm[NoReturn]) -> GroupSide:
    outcome = GroupSide(SAFEBROWSE, args.group)
    client_loop = BackgroundLoop("bench-client")
    try:
        with server_process(args.workers) as server:
            async def make_control() -> AsyncControlClient:
                return AsyncControlClient(server.control_url, server.control_token)

            control = client_loop.run(make_control())
            seats = [AgentSeat() for _ in range(args.group)]  # one per slot of the group, for every round
            try:
                _play_rounds(outcome, args, bar, "safebrowse", lambda seed: client_loop.run(
                    groups.reset_group(control, seats, args.group_task, seed), ROUND_TIMEOUT_S))
            finally:
                for seat in seats:
                    client_loop.run(seat.aclose())
                client_loop.run(control.aclose())
    finally:
        client_loop.close()
    return outcome


def run_browsergym(args: argparse.Namespace, bar: tqdm[NoReturn]) -> GroupSide:
    outcome = GroupSide(BROWSERGYM, args.browsergym_group)
    envs = browsergym_threads.open_envs(args.group_task, args.browsergym_group)
    try:
        # The same seeds as safebrowse's rounds; a smaller group takes the first ones.
        _play_rounds(outcome, args, bar, "BrowserEnv",
                     lambda seed: browsergym_threads.reset_group(envs, seed)[:2])
    finally:
        browsergym_threads.close_envs(envs)
    return outcome


def _play_rounds(outcome: GroupSide, args: argparse.Namespace, bar: tqdm[NoReturn], label: str,
                 reset_round: Callable[[int], tuple[float, list[float]]]) -> None:
    """Every round of one side: reset a group from its first seed, note it, pause. An error ends
    the side's rounds and is reported; the run goes on with the next shape."""
    try:
        for index in range(args.rounds):
            group_s, resets = reset_round(args.seed + index * args.group)
            outcome.rounds.append(GroupRound(group_s, resets))
            bar.set_postfix_str(f"groups {label} round {index + 1}", refresh=False)
            bar.update()
            if index + 1 < args.rounds:
                time.sleep(args.pause)
    except Exception as error:  # noqa: BLE001 - reported, the run goes on with the next shape
        outcome.error = f"{type(error).__name__}: {error}"


def run(args: argparse.Namespace, browsergym: bool, bar: tqdm[NoReturn]) -> Groups:
    outcome = Groups(args.group_task, args.pause)
    outcome.sides.append(run_safebrowse(args, bar))  # `bench.loops` waits for quiet before the shape
    if browsergym:
        outcome.quiet.append(f"BrowserEnv: {cpu.wait_until_quiet().describe()}")  # the server's shutdown is done
        outcome.sides.append(run_browsergym(args, bar))
    return outcome


def report(outcome: Groups) -> tuple[list[str], list[Target]]:
    by_side = {side.side: side for side in outcome.sides}
    sizes = ", ".join(f"{side.group} on {side.side}" for side in outcome.sides)
    out = [f"2. GRPO groups: {outcome.task_id}, groups of {sizes}, {outcome.pause_s:g} s pause after each round; "
           "group ready = until every agent holds its first observation (ms)", ""]
    rounds = max((len(side.rounds) for side in outcome.sides), default=0)
    header = ["round"] + [f"{side.side} {name}" for side in outcome.sides for name in ("group", "reset p50")]
    rows = []
    for index in range(rounds):
        row = [str(index + 1)]
        for side in outcome.sides:
            if index < len(side.rounds):
                one = side.rounds[index]
                row += [stats.fmt_ms(one.group_s), stats.fmt_ms(stats.median(one.resets_s))]
            else:
                row += ["-", "-"]
        rows.append(row)
    out.append(stats.table(header, rows))
    for side in outcome.sides:
        out.append(f"   {side.side}: first round (cold) {stats.fmt_ms(side.cold_s)} ms, later rounds (median) "
                   f"{stats.fmt_ms(side.later_median_s)} ms" + (f"; ERROR {side.error}" if side.error else ""))
    ours, theirs = by_side.get(SAFEBROWSE), by_side.get(BROWSERGYM)
    if ours and theirs:
        note = "" if theirs.group == ours.group else (
            f" (BrowserEnv's groups are {theirs.group}, not {ours.group}: --browsergym-group; "
            "a smaller group favours BrowserEnv)")
        out.append(f"   ratio (BrowserEnv / safebrowse): cold "
                   f"{stats.fmt_x(stats.ratio(theirs.cold_s, ours.cold_s))}, later rounds "
                   f"{stats.fmt_x(stats.ratio(theirs.later_median_s, ours.later_median_s))}{note}")
    out += [f"   {line}" for line in outcome.quiet]
    targets = []
    if ours:
        later = ours.later_median_s
        targets.append(Target(f"groups of {ours.group}: later-round median at most "
                              f"{LATER_ROUNDS_TARGET_S * 1000:.0f} ms",
                              f"{stats.fmt_ms(later)} ms (cold round {stats.fmt_ms(ours.cold_s)} ms)",
                              None if math.isnan(later) else later <= LATER_ROUNDS_TARGET_S))
    return out, targets


def completed(outcome: Groups) -> bool:
    return all(side.error is None for side in outcome.sides)
