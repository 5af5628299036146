"""safebrowse against BrowserGym's BrowserEnv on the same MiniWoB++ episodes.

    python -m bench.compare                       # 5 tasks x 5 episodes, BrowserEnv as shipped
    python -m bench.compare --quick               # 2 tasks x 1 episode, no warm-up (a smoke run)
    python -m bench.compare --browsergym default,tuned --episodes 8 --json out.json

For every task and seed, the same scripted policy (`safebrowse.scripted.POLICIES`)
plays one episode on each side, the sides taking turns to go first, so both see
the same machine load. safebrowse runs as the whole server in this process
(control API and MCP door on loopback ports, real Chromium workers) and is driven
only over HTTP from a separate client event loop; BrowserEnv runs in the main
thread. See `bench.safebrowse_side` and `bench.browsergym_side` for exactly what
each timer covers.

Printed per task and overall: reset and step latency (median, p95), episodes per
minute, success rate, and the BrowserGym/safebrowse ratios, then where each
side spends a step, then the targets and whether this run met them.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NoReturn

from tqdm import tqdm

from bench import stats
from bench.browsergym_side import VARIANTS, BrowserGymSide, quiet_browsergym_warnings
from bench.episodes import MAX_STEPS, EpisodeResult
from bench.live import LiveServer, start_server
from bench.safebrowse_side import SIDE as SAFEBROWSE
from bench.safebrowse_side import SafebrowseSide
from engine.assets import AssetServer, miniwob_html_dir
from safebrowse.loop import BackgroundLoop
from safebrowse.progress import progress_bar
from safebrowse.scripted import POLICIES

DEFAULT_TASKS = (
    "miniwob.click-test",
    "miniwob.click-button",
    "miniwob.enter-text",
    "miniwob.click-checkboxes",
    "miniwob.login-user",
)
QUICK_TASKS = ("miniwob.click-test", "miniwob.enter-text")
STEP_TARGET = 10.0
RESET_TARGET = 8.0
EPISODE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class SideSummary:
    side: str
    episodes: int
    completed: int
    successes: int
    reset_median: float
    reset_p95: float
    step_median: float
    step_p95: float
    episodes_per_minute: float
    policy_median: float

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else math.nan


def summarize(side: str, results: Sequence[EpisodeResult]) -> SideSummary:
    done = [r for r in results if r.completed]
    resets = [r.reset_s for r in done]
    steps = [s for r in done for s in r.step_s]
    wall = sum(r.wall_s for r in done)
    return SideSummary(
        side=side,
        episodes=len(results),
        completed=len(done),
        successes=sum(1 for r in done if r.success),
        reset_median=stats.median(resets),
        reset_p95=stats.p95(resets),
        step_median=stats.median(steps),
        step_p95=stats.p95(steps),
        episodes_per_minute=60 * len(done) / wall if wall > 0 else math.nan,
        policy_median=stats.median([p for r in done for p in r.policy_s]),
    )


def part_medians(results: Sequence[EpisodeResult]) -> dict[str, float]:
    names: list[str] = []
    for result in results:
        names += [name for name in result.step_parts if name not in names]
    return {name: stats.median([v for r in results if r.completed for v in r.step_parts.get(name, [])])
            for name in names}


def reset_part_medians(results: Sequence[EpisodeResult]) -> dict[str, float]:
    names: list[str] = []
    for result in results:
        names += [name for name in result.reset_parts if name not in names]
    return {name: stats.median([r.reset_parts[name] for r in results if r.completed and name in r.reset_parts])
            for name in names}


# -- running -------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: list[EpisodeResult] = []
        self.server: LiveServer | None = None
        self.client_loop: BackgroundLoop | None = None
        self.safebrowse: SafebrowseSide | None = None
        self.assets: AssetServer | None = None
        self.browsergym: list[BrowserGymSide] = []

    def start(self) -> None:
        engine = {"workers": self.args.workers} if self.args.workers else {}
        self.server = start_server(**engine)
        self.client_loop = BackgroundLoop("bench-client")
        server = self.server

        async def make_side() -> SafebrowseSide:
            return SafebrowseSide(server.control_url, server.control_token, self.args.max_steps)

        self.safebrowse = self.client_loop.run(make_side())
        self.assets = AssetServer()
        self.assets.mount("/", miniwob_html_dir())
        self.assets.start()
        for variant in self.args.browsergym:
            self.browsergym.append(BrowserGymSide(self.assets.origin + "/miniwob/", variant, self.args.max_steps))

    def stop(self) -> None:
        for side in self.browsergym:
            side.close()
        if self.safebrowse is not None and self.client_loop is not None:
            self.client_loop.run(self.safebrowse.aclose())
        if self.client_loop is not None:
            self.client_loop.close()
        if self.server is not None:
            self.server.stop()
        if self.assets is not None:
            self.assets.stop()

    def play_safebrowse(self, task_id: str, seed: int) -> EpisodeResult:
        assert self.safebrowse is not None and self.client_loop is not None
        return self.client_loop.run(self.safebrowse.episode(task_id, seed, POLICIES[task_id]), EPISODE_TIMEOUT_S)

    def warm_up(self) -> None:
        """One unrecorded episode per side: imports, first launches, first page loads."""
        task_id = self.args.tasks[0]
        for _ in range(self.args.warmup):
            self.play_safebrowse(task_id, 10_000)
            for side in self.browsergym:
                side.episode(task_id, 10_000, POLICIES[task_id])

    def run(self) -> None:
        total = len(self.args.tasks) * self.args.episodes * (1 + len(self.browsergym))
        with progress_bar(total, "compare", enabled=self.args.progress, unit="episode") as bar:
            self._run(bar)

    def _run(self, bar: tqdm[NoReturn]) -> None:
        for task_id in self.args.tasks:
            for k in range(self.args.episodes):
                seed = self.args.seed + k
                # Each player runs at once below, within this iteration: the loop variables are current.
                players = [functools.partial(self.play_safebrowse, task_id, seed)]
                policy = POLICIES[task_id]
                players += [functools.partial(side.episode, task_id, seed, policy) for side in self.browsergym]
                if k % 2 == 1:
                    players.reverse()  # take turns going first
                for play in players:
                    result = play()
                    self.results.append(result)
                    if self.args.verbose:
                        bar.write(_episode_line(result), file=sys.stderr)
                    successes = sum(1 for r in self.results if r.success)
                    status = "error" if result.error else ("ok" if result.success else "fail")
                    bar.set_postfix_str(f"{result.side} {task_id} {status}, {successes}/{len(self.results)} ok",
                                        refresh=False)
                    bar.update()
            for side in self.browsergym:
                # BrowserEnv frees an episode's browsers at the next reset; the last ones go here.
                closing = side.close_task(task_id)
                mine = [r for r in self.results if r.side == side.side and r.task_id == task_id and r.completed]
                if mine:
                    mine[-1].wall_s += closing


def _episode_line(result: EpisodeResult) -> str:
    steps = " ".join(f"{s * 1000:.0f}" for s in result.step_s)
    status = "ok" if result.success else ("ERROR " + (result.error or "").splitlines()[0] if result.error else "fail")
    return (f"  {result.side:<18} {result.task_id:<26} seed={result.seed:<5} reset={result.reset_s * 1000:7.0f} ms"
            f"  steps(ms)=[{steps}]  {status}")


# -- reporting -------------------------------------------------------------------------------


def side_names(args: argparse.Namespace) -> list[str]:
    return [SAFEBROWSE] + [("browsergym" if v == "default" else f"browsergym-{v}") for v in args.browsergym]


def report(results: Sequence[EpisodeResult], args: argparse.Namespace, elapsed_s: float) -> str:
    sides = side_names(args)
    out: list[str] = []
    out.append(f"safebrowse vs BrowserGym BrowserEnv: {len(args.tasks)} tasks x {args.episodes} episodes, "
               f"seeds {args.seed}..{args.seed + args.episodes - 1}, max {args.max_steps} actions per episode")
    out.append(f"machine: {os.cpu_count()} cores, {platform.machine()}, load average "
               f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end; run took {elapsed_s:.0f} s")
    out.append("times in ms; ratio = BrowserGym / safebrowse for times, safebrowse / BrowserGym for episodes/min")
    out.append("")

    header = ["task", "side", "eps", "ok", "success", "reset p50", "reset p95", "step p50", "step p95", "eps/min"]
    rows: list[list[str]] = []
    ratio_rows: list[list[str]] = []
    groups = [(task, [r for r in results if r.task_id == task]) for task in args.tasks] + [("overall", list(results))]
    for task, group in groups:
        summaries = {side: summarize(side, [r for r in group if r.side == side]) for side in sides}
        for side in sides:
            s = summaries[side]
            rows.append([task if side == sides[0] else "", side, str(s.episodes), str(s.completed),
                         f"{s.success_rate:.0%}" if s.episodes else "-", stats.fmt_ms(s.reset_median),
                         stats.fmt_ms(s.reset_p95), stats.fmt_ms(s.step_median), stats.fmt_ms(s.step_p95),
                         stats.fmt_num(s.episodes_per_minute)])
        base = summaries[SAFEBROWSE]
        for side in sides[1:]:
            other = summaries[side]
            ratio_rows.append([task, side,
                               stats.fmt_x(stats.ratio(other.reset_median, base.reset_median)),
                               stats.fmt_x(stats.ratio(other.reset_p95, base.reset_p95)),
                               stats.fmt_x(stats.ratio(other.step_median, base.step_median)),
                               stats.fmt_x(stats.ratio(other.step_p95, base.step_p95)),
                               stats.fmt_x(stats.ratio(base.episodes_per_minute, other.episodes_per_minute))])
    out.append(stats.table(header, rows))
    out.append("")
    out.append("ratios (how many times faster safebrowse is)")
    out.append(stats.table(["task", "against", "reset p50", "reset p95", "step p50", "step p95", "eps/min"],
                           ratio_rows))
    out.append("")

    out.append("where a step's time goes (median ms per part; parts are medians, so they need not add up)")
    for side in sides:
        parts = part_medians([r for r in results if r.side == side])
        resets = reset_part_medians([r for r in results if r.side == side])
        step_text = ", ".join(f"{name}={stats.fmt_ms(value)}" for name, value in parts.items())
        out.append(f"  {side}: step: {step_text or '-'}")
        if resets:
            out.append(f"  {side}: reset: " + ", ".join(f"{n}={stats.fmt_ms(v)}" for n, v in resets.items()))
    out.append("")

    paired = {}
    for r in results:
        paired.setdefault((r.task_id, r.seed), {})[r.side] = r.goal
    same = sum(1 for goals in paired.values() if len(set(goals.values())) == 1 and len(goals) == len(sides))
    out.append(f"same goal text on every side for {same} of {len(paired)} (task, seed) pairs")
    errors = [r for r in results if not r.completed]
    for r in errors[:5]:
        out.append(f"  error: {r.side} {r.task_id} seed {r.seed}: {(r.error or '').splitlines()[0]}")
    out.append("")

    overall = {side: summarize(side, [r for r in results if r.side == side]) for side in sides}
    if "browsergym" in overall:
        base, other = overall[SAFEBROWSE], overall["browsergym"]
        step_x = stats.ratio(other.step_median, base.step_median)
        reset_x = stats.ratio(other.reset_median, base.reset_median)
        out.append("targets (against BrowserEnv as shipped):")
        out.append(f"  step median at least {STEP_TARGET:.0f}x faster:  {stats.fmt_x(step_x):>7}  "
                   f"{_verdict(step_x, STEP_TARGET)}")
        out.append(f"  reset median at least {RESET_TARGET:.0f}x faster:  {stats.fmt_x(reset_x):>7}  "
                   f"{_verdict(reset_x, RESET_TARGET)}")
    return "\n".join(out)


def _verdict(value: float, target: float) -> str:
    if math.isnan(value):
        return "NOT MEASURED"
    return "MET" if value >= target else "NOT MET"


# -- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=None, help="episodes per task and side (default 5)")
    parser.add_argument("--tasks", default=None,
                        help=f"comma-separated task ids (default: {','.join(DEFAULT_TASKS)})")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run: {', '.join(QUICK_TASKS)}, 1 episode each, no warm-up")
    parser.add_argument("--browsergym", default="default",
                        help=f"BrowserEnv variants to run, comma-separated, from {sorted(VARIANTS)} "
                             "(default: default; 'tuned' sets slow_mo=0 and pre_observation_delay=0)")
    parser.add_argument("--seed", type=int, default=1, help="first seed; episode k of a task uses seed+k")
    parser.add_argument("--warmup", type=int, default=None, help="unrecorded warm-up episodes per side (default 1)")
    parser.add_argument("--max-steps", type=int, default=MAX_STEPS, help="actions per episode at most")
    parser.add_argument("--workers", type=int, default=None, help="safebrowse browser workers (default: cores)")
    parser.add_argument("--json", default=None, help="also write every episode's raw numbers to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each episode as it finishes")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="a progress line on stderr (default: only when stderr is a terminal)")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks = args.tasks or ",".join(QUICK_TASKS)
        args.episodes = args.episodes or 1
        args.warmup = 0 if args.warmup is None else args.warmup
    args.tasks = [t.strip() for t in (args.tasks or ",".join(DEFAULT_TASKS)).split(",") if t.strip()]
    args.episodes = args.episodes or 5
    args.warmup = 1 if args.warmup is None else args.warmup
    args.browsergym = [v.strip() for v in args.browsergym.split(",") if v.strip()]
    unknown = [t for t in args.tasks if t not in POLICIES]
    if unknown:
        parser.error(f"no scripted policy for {unknown}; choose from {sorted(POLICIES)}")
    bad = [v for v in args.browsergym if v not in VARIANTS]
    if bad:
        parser.error(f"unknown BrowserGym variant(s) {bad}; choose from {sorted(VARIANTS)}")
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_browsergym_warnings()
    started = time.perf_counter()
    bench = Bench(args)
    try:
        bench.start()
        bench.warm_up()
        bench.run()
    finally:
        bench.stop()
    elapsed = time.perf_counter() - started
    print(report(bench.results, args, elapsed), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "elapsed_s": elapsed,
                       "episodes": [asdict(r) for r in bench.results]}, handle, indent=1)
    return 0 if all(r.completed for r in bench.results) else 1


if __name__ == "__main__":
    sys.exit(main())
