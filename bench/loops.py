"""Every loop shape a trainer runs, on safebrowse and on BrowserGym's BrowserEnv, in one run.

    python -m bench.loops                                  # all three shapes, both sides
    python -m bench.loops --quick                          # tiny settings: a smoke run
    python -m bench.loops --shapes groups --no-browsergym  # one shape, safebrowse alone
    python -m bench.loops --browsergym-group 4 --json out.json

safebrowse runs as deployed: `safebrowse serve` in a child process (a fresh one
for each shape, so each shape starts from the same state and can be run alone),
driven only over its control API and by real MCP clients over streamable HTTP.
BrowserEnv runs in this process as its users run it, each env on one thread for
its whole life, with the MiniWoB pages from a loopback server. The shapes:

1. back to back (`bench.loops_back_to_back`): reset, act with the scripted
   policy until done, close, reset again with no pause; reset and step latency.
2. GRPO groups (`bench.loops_groups`): G episodes of one task reset at once,
   closed, a pause, several rounds; the time until the whole group is ready.
3. parallel agents (`bench.loops_parallel`): 1, 2, 4 agents acting back to back;
   actions per second, step latency and CPU per action by process.

Printed: the commit and the load average at the start and the end, each shape's
table and ratios (BrowserEnv / safebrowse), then the targets and whether this run
met them. Nothing is asserted: a busy machine gives slow numbers, not failures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import cpu, loops_back_to_back, loops_groups, loops_parallel
from bench.browsergym_side import prepare_browsergym, quiet_browsergym_warnings
from bench.episodes import MAX_STEPS
from bench.loops_targets import Target, targets_block
from engine.assets import AssetServer, miniwob_html_dir
from safebrowse.progress import progress_bar
from safebrowse.scripted import POLICIES

SHAPES = ("back-to-back", "groups", "parallel")
DEFAULT_TASKS = ("miniwob.click-test", "miniwob.click-button", "miniwob.enter-text", "miniwob.click-checkboxes",
                 "miniwob.login-user")
QUICK_TASKS = ("miniwob.click-test",)
ROOT = Path(__file__).resolve().parent.parent
MEASURED_CODE = ("engine", "mcp_server", "control_api", "safebrowse", "tasks")


def commit_line() -> str:
    """The commit measured, and whether the code it serves has uncommitted changes."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", *MEASURED_CODE)
    return f"commit {commit}" + (" (with uncommitted changes to the served code)" if changed else "")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, from {','.join(SHAPES)}")
    parser.add_argument("--browsergym", action=argparse.BooleanOptionalAction, default=True,
                        help="run BrowserEnv side by side (default: yes)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 task x 2 episodes and no lead-in, groups of 2 for 2 rounds, "
                             "levels 1,2 for 2 s")
    parser.add_argument("--workers", type=int, default=None, help="safebrowse browser workers (default: cores)")
    parser.add_argument("--seed", type=int, default=1, help="first seed of every shape")
    group = parser.add_argument_group("back to back")
    group.add_argument("--tasks", default=None, help=f"comma-separated (default {','.join(DEFAULT_TASKS)})")
    group.add_argument("--episodes", type=int, default=None, help="recorded episodes per task and side (default 4)")
    group.add_argument("--max-steps", type=int, default=MAX_STEPS, help="actions per episode at most")
    group.add_argument("--lead-in", type=int, default=None,
                       help="unrecorded episodes before each task's block, so no recorded reset follows a pause "
                            "(default 2; --quick: 0)")
    group = parser.add_argument_group("GRPO groups")
    group.add_argument("--group", type=int, default=None, help="episodes reset at once on safebrowse (default 8)")
    group.add_argument("--browsergym-group", type=int, default=None,
                       help="BrowserEnvs reset at once (default: --group); each runs two Chromiums")
    group.add_argument("--rounds", type=int, default=None, help="groups one after another (default 5)")
    group.add_argument("--pause", type=float, default=None, help="seconds after each group (default 2)")
    group.add_argument("--group-task", default="miniwob.click-test")
    group = parser.add_argument_group("parallel agents")
    group.add_argument("--levels", default=None, help="agents at once, comma-separated (default 1,2,4)")
    group.add_argument("--seconds", type=float, default=None, help="measured seconds per level (default 8)")
    group.add_argument("--warmup", type=float, default=None, help="unmeasured seconds per level (default 2)")
    parser.add_argument("--json", default=None, help="also write the raw numbers to this file")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="a progress line on stderr (default: only when stderr is a terminal)")
    args = parser.parse_args(argv)
    quick = args.quick

    def pick(value: Any, full: Any, small: Any) -> Any:
        return value if value is not None else (small if quick else full)

    args.shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    args.tasks = [t.strip() for t in pick(args.tasks, ",".join(DEFAULT_TASKS), ",".join(QUICK_TASKS)).split(",")
                  if t.strip()]
    args.episodes = pick(args.episodes, 4, 2)
    args.lead_in = pick(args.lead_in, 2, 0)
    args.group = pick(args.group, 8, 2)
    args.browsergym_group = pick(args.browsergym_group, args.group, args.group)
    args.rounds = pick(args.rounds, 5, 2)
    args.pause = pick(args.pause, 2.0, 0.5)
    args.levels = [int(x) for x in pick(args.levels, "1,2,4", "1,2").split(",") if x.strip()]
    args.seconds = pick(args.seconds, 8.0, 2.0)
    args.warmup = pick(args.warmup, 2.0, 0.5)
    if unknown := [s for s in args.shapes if s not in SHAPES]:
        parser.error(f"unknown shape(s) {unknown}; choose from {','.join(SHAPES)}")
    if unknown := [t for t in args.tasks if t not in POLICIES]:
        parser.error(f"no scripted policy for {unknown}; choose from {sorted(POLICIES)}")
    if min(args.episodes, args.group, args.browsergym_group, args.rounds, *args.levels) < 1:
        parser.error("--episodes, --group, --browsergym-group, --rounds and every level must be at least 1")
    if args.lead_in < 0 or args.pause < 0 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--lead-in, --pause and --warmup must be at least 0, --seconds more than 0")
    return args


def progress_total(args: argparse.Namespace) -> int:
    sides = 2 if args.browsergym else 1
    units = {"back-to-back": len(args.tasks) * sides, "groups": args.rounds * sides,
             "parallel": len(args.levels) * sides}
    return sum(units[shape] for shape in args.shapes)


def _took(started: float, quiet: cpu.Quiet) -> str:
    return (f"   (this shape {quiet.describe()}, took {time.perf_counter() - started:.0f} s; load average "
            f"{load_average()} after it)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_browsergym_warnings()
    started = time.perf_counter()
    against = "against BrowserGym's BrowserEnv (as shipped)" if args.browsergym else "alone (--no-browsergym)"
    header = [f"safebrowse loops {against}: shapes {', '.join(args.shapes)}",
              f"{commit_line()}; machine: {os.cpu_count()} cores, {platform.machine()}; "
              f"load average {load_average()} at the start",
              "safebrowse: `safebrowse serve` in a child process, a fresh one per shape"
              + ("; BrowserEnv in this process, each env on a thread of its own, stock Playwright call sites"
                 if args.browsergym else "")]
    print("\n".join(header), file=sys.stderr, flush=True)
    assets: AssetServer | None = None
    miniwob_url: str | None = None
    if args.browsergym:
        assets = AssetServer()
        assets.mount("/", miniwob_html_dir())
        assets.start()
        miniwob_url = assets.origin + "/miniwob/"
        prepare_browsergym(miniwob_url)
    sections: list[str] = []
    targets: list[Target] = []
    raw: dict[str, Any] = {}
    ok = True
    try:
        with progress_bar(progress_total(args), "loops", enabled=args.progress, unit="part") as bar:
            if "back-to-back" in args.shapes:
                quiet = cpu.wait_until_quiet()
                shape_started = time.perf_counter()
                back = loops_back_to_back.run(args, miniwob_url, bar)
                lines, found = loops_back_to_back.report(back)
                sections.append("\n".join([*lines, _took(shape_started, quiet)]))
                targets += found
                raw["back_to_back"] = asdict(back)
                ok = ok and all(r.completed for r in back.episodes)
            if "groups" in args.shapes:
                quiet = cpu.wait_until_quiet()
                shape_started = time.perf_counter()
                groups = loops_groups.run(args, args.browsergym, bar)
                lines, found = loops_groups.report(groups)
                sections.append("\n".join([*lines, _took(shape_started, quiet)]))
                targets += found
                raw["groups"] = asdict(groups)
                ok = ok and loops_groups.completed(groups)
            if "parallel" in args.shapes:
                quiet = cpu.wait_until_quiet()
                shape_started = time.perf_counter()
                parallel = loops_parallel.run(args, args.browsergym, bar)
                lines, found = loops_parallel.report(parallel)
                sections.append("\n".join([*lines, _took(shape_started, quiet)]))
                targets += found
                raw["parallel"] = asdict(parallel)
                ok = ok and loops_parallel.completed(parallel)
    finally:
        if assets is not None:
            assets.stop()
    elapsed = time.perf_counter() - started
    header[1] += f", {load_average()} at the end; run took {elapsed:.0f} s"
    print("\n\n".join(["\n".join(header), *sections, "\n".join(targets_block(targets))]), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "commit": commit_line(), "elapsed_s": elapsed, "shapes": raw,
                       "targets": [asdict(t) | {"verdict": t.verdict} for t in targets]}, handle, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
