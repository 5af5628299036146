"""Eight agents at once, two hundred actions each, through eight MCP clients.

Every answer must be the answering episode's own page, and afterwards every trajectory, read
over the control API, must hold exactly the calls its agent sent, in the order it sent them.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest

from security.harness import TASKS_DIR
from support.agent import connect
from support.control import Control
from support.live import LiveServer, start_live_server, stop_live_server

CLIENTS = 8
ACTIONS = 200


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    live = start_live_server(extra_tasks_dir=str(TASKS_DIR), workers=2)
    try:
        yield live
    finally:
        stop_live_server(live)


def _plan(client: int) -> list[tuple[str, dict[str, Any]]]:
    """Cheap actions that never end the task: a fill with text unique to this client and step,
    then a wait, alternating (so no two consecutive calls are the same)."""
    nonce = secrets.token_hex(3)
    calls: list[tuple[str, dict[str, Any]]] = []
    for index in range(ACTIONS):
        if index % 2 == 0:
            calls.append(("fill", {"id": "{notes}", "text": f"client {client} step {index} {nonce}"}))
        else:
            calls.append(("noop", {"wait_ms": 0}))
    return calls


@pytest.mark.slow
@pytest.mark.timeout(900)  # about a minute on two idle cores; room for a machine shared with other work
def test_eight_agents_in_parallel_lose_and_mix_up_nothing(server):
    control = Control(server)
    episodes = [control.create("custom.sec-forms", seed=client, max_steps=ACTIONS + 10,
                               max_repeated_actions=ACTIONS, max_invalid_actions=10)
                for client in range(CLIENTS)]
    plans = [_plan(client) for client in range(CLIENTS)]
    latencies: list[float] = []

    async def drive(client: int) -> list[tuple[str, dict[str, Any]]]:
        sent: list[tuple[str, dict[str, Any]]] = []
        async with connect(server.mcp_url, episodes[client]["agent_token"]) as session:
            await session.act("observe", {})
            notes = session.id_of("notes")
            for step, (tool, arguments) in enumerate(plans[client], start=1):
                arguments = {k: (notes if v == "{notes}" else v) for k, v in arguments.items()}
                started = time.perf_counter()
                result = await session.call(tool, arguments)
                latencies.append(time.perf_counter() - started)
                sent.append((tool, arguments))
                page = result.structured_content
                assert not result.is_error, (client, step, result.content[0].text)
                assert page["goal"] == episodes[client]["goal"], (client, step)
                assert page["step_index"] == step, (client, step, page["step_index"])
                if tool == "fill":  # the answer shows this client's own text, nobody else's
                    assert session.element(id="notes")["attributes"]["value"] == arguments["text"], (client, step)
                session.transcript.clear()  # keep memory flat over the run
        return sent

    async def everyone() -> list[list[tuple[str, dict[str, Any]]]]:
        return await asyncio.gather(*(drive(client) for client in range(CLIENTS)))

    started = time.perf_counter()
    sent = asyncio.run(asyncio.wait_for(everyone(), 600))
    elapsed = time.perf_counter() - started

    for client, episode in enumerate(episodes):
        trajectory = control.trajectory(episode["episode_id"])
        recorded = [(step["tool"], step["arguments"]) for step in trajectory["steps"]]
        assert recorded == sent[client], f"client {client}: the trajectory differs from what was sent"
        assert [step["index"] for step in trajectory["steps"]] == list(range(1, ACTIONS + 1))
        assert all(step["valid"] for step in trajectory["steps"])
        state = control.state(episode["episode_id"])
        assert state["status"] == "running" and state["step_index"] == ACTIONS
        control.close(episode["episode_id"])

    total = CLIENTS * ACTIONS
    ordered = sorted(latencies)
    print(f"\nload: {CLIENTS} clients x {ACTIONS} actions = {total} steps in {elapsed:.1f} s "
          f"({total / elapsed:.1f} steps/s); latency p50 {statistics.median(ordered) * 1000:.0f} ms, "
          f"p95 {ordered[int(len(ordered) * 0.95)] * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms; "
          "0 lost, 0 mixed up")
    control.http.close()
