"""The back-to-back loop of `bench.loops`: a trainer's tight loop, reset, act until done,
close, reset again with no pause, on safebrowse and on BrowserEnv.

Each side plays its episodes of a task as one block with nothing in between: on
safebrowse `SafebrowseSide.episode` (create, connect, observe, act, read the
verdict, close); on BrowserEnv `BrowserGymSide.episode` (reset, step), one env per
task reused as a trainer would. A block starts with an unrecorded episode of the
same task (`--lead-in`), so every recorded reset follows the previous episode's close at once,
never the other side's block (a pause in which the server could prepare). The
sides take turns going first, task by task, so both see the same machine load.
The server's own step records are read only after a block, so that reading them
never pauses the loop.
"""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from tqdm import tqdm

from bench import stats
from bench.browsergym_side import SIDE as BROWSERGYM
from bench.browsergym_side import BrowserGymSide, thread_playwright
from bench.compare import part_medians, reset_part_medians, summarize
from bench.episodes import EpisodeResult
from bench.live import server_process
from bench.loops_targets import Target
from bench.safebrowse_side import SIDE as SAFEBROWSE
from bench.safebrowse_side import SafebrowseSide
from safebrowse.loop import BackgroundLoop
from safebrowse.scripted import POLICIES

RESET_TARGET = 10.0
STEP_TARGET = 25.0
LEAD_IN_SEED = 90_000
BLOCK_TIMEOUT_S = 900.0


class BackToBackSide(SafebrowseSide):
    """`SafebrowseSide` whose server-side breakdown is read after the block, not between episodes."""

    def __init__(self, control_url: str, control_token: str, max_steps: int) -> None:
        super().__init__(control_url, control_token, max_steps)
        self._pending: list[tuple[str, EpisodeResult]] = []

    async def _read_breakdown(self, episode_id: str, result: EpisodeResult) -> None:
        self._pending.append((episode_id, result))

    async def read_breakdowns(self) -> None:
        pending, self._pending = self._pending, []
        for episode_id, result in pending:
            await SafebrowseSide._read_breakdown(self, episode_id, result)

    async def block(self, task_id: str, seeds: Sequence[int], lead_in: int) -> list[EpisodeResult]:
        """`lead_in` unrecorded episodes, then one episode per seed, back to back."""
        policy = POLICIES[task_id]
        for k in range(lead_in):
            await self.episode(task_id, LEAD_IN_SEED + k, policy)
        results = [await self.episode(task_id, seed, policy) for seed in seeds]
        await self.read_breakdowns()
        return results


def _safebrowse_block(client_loop: BackgroundLoop, side: BackToBackSide, task_id: str,
                      seeds: Sequence[int], lead_in: int) -> list[EpisodeResult]:
    return client_loop.run(side.block(task_id, seeds, lead_in), BLOCK_TIMEOUT_S)


def browsergym_block(side: BrowserGymSide, task_id: str, seeds: Sequence[int], lead_in: int) -> list[EpisodeResult]:
    policy = POLICIES[task_id]
    for k in range(lead_in):
        side.episode(task_id, LEAD_IN_SEED + k, policy)
    return [side.episode(task_id, seed, policy) for seed in seeds]


@dataclass
class BackToBack:
    tasks: list[str]
    seeds: list[int]
    lead_in: int
    episodes: list[EpisodeResult] = field(default_factory=list)


def run(args: argparse.Namespace, miniwob_url: str | None, bar: tqdm[NoReturn]) -> BackToBack:
    """Both sides' blocks, task by task, on a fresh server (its warm pool starts empty)."""
    seeds = [args.seed + k for k in range(args.episodes)]
    outcome = BackToBack(list(args.tasks), seeds, args.lead_in)
    client_loop = BackgroundLoop("bench-client")
    try:
        with server_process(args.workers) as server, thread_playwright():
            async def make_side() -> BackToBackSide:
                return BackToBackSide(server.control_url, server.control_token, args.max_steps)

            ours = client_loop.run(make_side())
            theirs = BrowserGymSide(miniwob_url, "default", args.max_steps) if miniwob_url else None
            try:
                for index, task_id in enumerate(args.tasks):
                    blocks: list[Callable[[], list[EpisodeResult]]] = [
                        functools.partial(_safebrowse_block, client_loop, ours, task_id, seeds, args.lead_in)]
                    if theirs is not None:
                        blocks.append(functools.partial(browsergym_block, theirs, task_id, seeds, args.lead_in))
                    if index % 2 == 1:
                        blocks.reverse()
                    for play in blocks:
                        outcome.episodes += play()
                        bar.set_postfix_str(f"back-to-back {task_id}", refresh=False)
                        bar.update()
                    if theirs is not None:
                        theirs.close_task(task_id)
            finally:
                if theirs is not None:
                    theirs.close()
                client_loop.run(ours.aclose())
    finally:
        client_loop.close()
    return outcome


def report(outcome: BackToBack) -> tuple[list[str], list[Target]]:
    sides = [side for side in (SAFEBROWSE, BROWSERGYM) if any(r.side == side for r in outcome.episodes)]
    out = [f"1. back to back: {len(outcome.tasks)} task(s) x {len(outcome.seeds)} episode(s) per side, seeds "
           f"{outcome.seeds[0]}..{outcome.seeds[-1]}, each block after {outcome.lead_in} unrecorded lead-in "
           "episode(s), no pause",
           "   reset = until the agent holds its first observation: create + MCP connect + first observe "
           "(safebrowse), env.reset (BrowserEnv: closes the last episode's two Chromiums, launches two new ones); "
           "step = one tool call / env.step (BrowserEnv as shipped: slow_mo 100 ms, 0.5 s pre-observation delay); "
           "times in ms", ""]
    rows = []
    groups = [(task, [r for r in outcome.episodes if r.task_id == task]) for task in outcome.tasks]
    groups.append(("overall", list(outcome.episodes)))
    summaries = {}
    for task, episodes in groups:
        for side in sides:
            s = summarize(side, [r for r in episodes if r.side == side])
            summaries[(task, side)] = s
            rows.append([task if side == sides[0] else "", side, f"{s.completed}/{s.episodes}",
                         f"{s.success_rate:.0%}" if s.episodes else "-", stats.fmt_ms(s.reset_median),
                         stats.fmt_ms(s.reset_p95), stats.fmt_ms(s.step_median), stats.fmt_ms(s.step_p95),
                         stats.fmt_num(s.episodes_per_minute)])
    out.append(stats.table(["task", "side", "ok", "success", "reset p50", "reset p95", "step p50", "step p95",
                            "eps/min"], rows))
    ours_all = [r for r in outcome.episodes if r.side == SAFEBROWSE]
    for label, parts in (("reset", reset_part_medians(ours_all)), ("step", part_medians(ours_all))):
        if parts:
            out.append(f"   safebrowse {label} parts (medians, ms; need not add up): "
                       + ", ".join(f"{name}={stats.fmt_ms(value)}" for name, value in parts.items()))
    targets: list[Target] = []
    if BROWSERGYM in sides:
        base, other = summaries[("overall", SAFEBROWSE)], summaries[("overall", BROWSERGYM)]
        reset_x = stats.ratio(other.reset_median, base.reset_median)
        step_x = stats.ratio(other.step_median, base.step_median)
        out.append("")
        out.append(f"   ratios (BrowserEnv / safebrowse): reset p50 {stats.fmt_x(reset_x)}, reset p95 "
                   f"{stats.fmt_x(stats.ratio(other.reset_p95, base.reset_p95))}, step p50 {stats.fmt_x(step_x)}, "
                   f"step p95 {stats.fmt_x(stats.ratio(other.step_p95, base.step_p95))}")
        out.append("   " + same_episodes_line(outcome.episodes))
        targets.append(Target(f"back to back: reset median at least {RESET_TARGET:.0f}x faster than BrowserEnv's",
                              f"{stats.fmt_x(reset_x)} ({stats.fmt_ms(base.reset_median)} against "
                              f"{stats.fmt_ms(other.reset_median)} ms)", _at_least(reset_x, RESET_TARGET)))
        targets.append(Target(f"back to back: step median at least {STEP_TARGET:.0f}x faster than BrowserEnv's",
                              f"{stats.fmt_x(step_x)} ({stats.fmt_ms(base.step_median)} against "
                              f"{stats.fmt_ms(other.step_median)} ms)", _at_least(step_x, STEP_TARGET)))
    for r in [r for r in outcome.episodes if not r.completed][:5]:
        out.append(f"   error: {r.side} {r.task_id} seed {r.seed}: {(r.error or '').splitlines()[0]}")
    return out, targets


def same_episodes_line(episodes: Sequence[EpisodeResult]) -> str:
    """How many (task, seed) pairs both sides completed with the same goal and as many actions."""
    pairs: dict[tuple[str, int], dict[str, EpisodeResult]] = {}
    for r in episodes:
        pairs.setdefault((r.task_id, r.seed), {})[r.side] = r
    same = sum(1 for by_side in pairs.values() if len(by_side) == 2 and all(r.completed for r in by_side.values())
               and len({r.goal for r in by_side.values()}) == 1
               and len({len(r.actions) for r in by_side.values()}) == 1)
    return f"same goal and as many actions on both sides for {same} of {len(pairs)} (task, seed) pairs"


def _at_least(value: float, target: float) -> bool | None:
    return None if math.isnan(value) else value >= target
