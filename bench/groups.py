"""Group resets: a trainer resets G episodes of one task at once, as GRPO does for
each prompt's group of rollouts, then pauses while its model generates.

    python -m bench.groups                          # groups of 8, 4 rounds, 2 s pauses
    python -m bench.groups --group 16 --rounds 6 --task miniwob.enter-text

Each round creates G episodes of the task in parallel on the control API,
points one MCP client per slot of the group at its episode (an `AgentSeat`, kept
from round to round, as a trainer keeps its environments) and calls `observe`
once: the group's reset is the time until every agent holds its first
observation. The episodes are then closed and the benchmark pauses, as a
trainer does while its model generates. The server (`safebrowse serve` in a
child process, as deployed) sizes each browser worker's pool of warm contexts
by its recent bursts of resets, so the first round shows a cold group and the
later ones a warm one; both are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence

from bench import stats
from bench.live import ServerProcess, start_server_process
from engine.config import EngineConfig
from safebrowse.client import AgentSeat, AsyncControlClient


async def one_agent(control: AsyncControlClient, seat: AgentSeat, task_id: str, seed: int,
                    ready: asyncio.Future[tuple[str, float]], release: asyncio.Event) -> None:
    """Reset one episode and hold its agent's first observation until the group is released.

    The agent is `seat`'s MCP client, which plays this slot of the group round after round,
    as one of a trainer's environments does.
    """
    started = time.perf_counter()
    try:
        created = await control.create_episode(task_id, seed=seed)
        agent = await seat.take(created.mcp_url, created.agent_token)
        first = await agent.call_tool("observe", {})
        if first.structured_content is None:
            raise RuntimeError(f"the first observe returned no observation: {first.content}")
        ready.set_result((created.episode_id, time.perf_counter() - started))
        await release.wait()
    except BaseException as error:
        if not ready.done():
            ready.set_exception(error)  # the round fails instead of waiting for this agent forever
        raise


async def reset_group(control: AsyncControlClient, seats: Sequence[AgentSeat], task_id: str,
                      first_seed: int) -> tuple[float, list[float]]:
    """Reset one episode of `task_id` per seat at once (seeds `first_seed`, `first_seed + 1`, ...),
    then close them all: the time until every agent held its first observation, and each
    agent's own reset time, in seconds."""
    loop = asyncio.get_running_loop()
    release = asyncio.Event()
    readies: list[asyncio.Future[tuple[str, float]]] = [loop.create_future() for _ in seats]
    started = time.perf_counter()
    agents = [asyncio.create_task(one_agent(control, seat, task_id, first_seed + k, ready, release))
              for k, (seat, ready) in enumerate(zip(seats, readies))]
    try:
        done = await asyncio.gather(*readies)
        group_s = time.perf_counter() - started
    finally:
        release.set()
        outcomes = await asyncio.gather(*agents, return_exceptions=True)
        for ready in readies:
            if ready.done() and not ready.cancelled() and ready.exception() is None:
                await control.close_episode(ready.result()[0])
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if errors:
        raise errors[0]
    return group_s, [reset_s for _, reset_s in done]


async def run(server: ServerProcess, args: argparse.Namespace) -> list[tuple[float, list[float]]]:
    """Each round's group time and its episodes' reset times, in seconds."""
    control = AsyncControlClient(server.control_url, server.control_token)
    seats = [AgentSeat() for _ in range(args.group)]
    rounds: list[tuple[float, list[float]]] = []
    try:
        for round_index in range(args.rounds):
            seed = args.seed + round_index * args.group
            group_s, resets = await reset_group(control, seats, args.task, seed)
            rounds.append((group_s, resets))
            print(f"  round {round_index + 1}: group of {args.group} ready in {group_s * 1000:.0f} ms",
                  file=sys.stderr, flush=True)
            await asyncio.sleep(args.pause)
    finally:
        for seat in seats:
            await seat.aclose()
        await control.aclose()
    return rounds


def report(rounds: Sequence[tuple[float, list[float]]], args: argparse.Namespace, elapsed_s: float) -> str:
    workers = args.workers or os.cpu_count()
    warm_limit = args.max_warm_contexts
    if warm_limit is None:
        warm_limit = EngineConfig.model_fields["max_warm_contexts"].default
    out = [
        f"safebrowse group resets: {args.group} x {args.task} at once, {args.rounds} rounds, "
        f"{args.pause:g} s pause between rounds, {workers} browser workers, "
        f"warm contexts per worker at most {warm_limit}",
        f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
        f"at the end; run took {elapsed_s:.0f} s",
        "",
    ]
    rows = []
    for index, (group_s, resets) in enumerate(rounds, start=1):
        rows.append([str(index), stats.fmt_ms(group_s), stats.fmt_ms(stats.median(resets)),
                     stats.fmt_ms(max(resets))])
    out.append(stats.table(["round", "group ready", "reset p50", "reset max"], rows))
    if len(rounds) > 1:
        later = [group_s for group_s, _ in rounds[1:]]
        out.append("")
        out.append(f"first round (cold): {stats.fmt_ms(rounds[0][0])} ms; "
                   f"later rounds (median): {stats.fmt_ms(stats.median(later))} ms")
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.groups", description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", type=int, default=8, help="episodes reset at once (default 8)")
    parser.add_argument("--rounds", type=int, default=4, help="groups, one after another (default 4)")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between groups (default 2)")
    parser.add_argument("--task", default="miniwob.click-test")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None, help="safebrowse browser workers (default: cores)")
    parser.add_argument("--max-warm-contexts", type=int, default=None,
                        help="the server's warm-pool limit per worker (default: the server's, 4; 1 keeps one)")
    args = parser.parse_args(argv)
    if args.group < 1 or args.rounds < 1 or args.pause < 0:
        parser.error("--group and --rounds must be at least 1, --pause at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    server = start_server_process(args.workers, max_warm_contexts=args.max_warm_contexts)
    try:
        rounds = asyncio.run(run(server, args))
    finally:
        server.stop()
    print(report(rounds, args, time.perf_counter() - started), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
