"""Faults: a browser killed mid-episode, task setups that raise or hang, agents that hang up
mid-call, agents that go quiet. Each ends in a clear state, nothing is left stuck, and the
server keeps serving. Each server here is its own instance, so the shared ones are untouched."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import playwright.sync_api as pw
import pytest
from browsergym.core.task import AbstractBrowserTask

from tasks.registry import TaskSpec

from security.harness import PAGES, PAGES_PREFIX, TASKS_DIR, descendants, survivors
from support.agent import JSON_HEADERS, connect, play, rpc
from support.control import Control
from support.live import LiveServer, start_live_server, stop_live_server

SETUP_TIMEOUT_S = 3.0


class FaultyTask(AbstractBrowserTask):
    """A task whose setup fails in a chosen way."""

    def __init__(self, seed: int, origin: str, fault: str) -> None:
        super().__init__(seed)
        self.origin = origin
        self.fault = fault

    def setup(self, page: pw.Page) -> tuple[str, dict]:
        page.goto(self.origin + PAGES_PREFIX + "escape.html")
        if self.fault == "raises":
            raise RuntimeError("the task's setup exploded")
        if self.fault == "waits-for-the-page":
            page.wait_for_selector("#never-there")  # bounded by the setup timeout
        if self.fault == "blocks-in-python":
            time.sleep(SETUP_TIMEOUT_S + 20)  # task code that ignores every timeout
        return "Unreachable.", {}

    def validate(self, page: pw.Page, chat_messages: list) -> tuple[float, bool, str, dict]:
        return 0.0, False, "", {}


def faulty_spec(fault: str) -> TaskSpec:
    return TaskSpec(
        id=f"test.setup-{fault}", family="test", description=f"A task whose setup {fault}.",
        factory=lambda ctx: FaultyTask(ctx.seed, ctx.asset_origin, fault),
        asset_mounts=((PAGES_PREFIX, PAGES),),
    )


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    live = start_live_server(extra_tasks_dir=str(TASKS_DIR), workers=1, setup_timeout_s=SETUP_TIMEOUT_S)
    for fault in ("raises", "waits-for-the-page", "blocks-in-python"):
        live.add_task(faulty_spec(fault))
    try:
        yield live
    finally:
        stop_live_server(live)


@pytest.fixture(scope="module")
def control(server) -> Iterator[Control]:
    client = Control(server)
    yield client
    client.http.close()


def _worker(server):
    return server.manager.pool.workers[0]


def _serving(server, control: Control) -> None:
    """The server still serves: the control API answers and a new episode plays."""
    assert httpx.get(server.control_url + "/v1/health", timeout=30).status_code == 200
    episode = control.create("custom.sec-forms")

    async def use() -> dict[str, Any]:
        async with connect(server.mcp_url, episode["agent_token"]) as client:
            await client.act("observe", {})
            return (await client.act("fill", {"id": client.id_of("notes"), "text": "still here"})).structured_content

    assert play(use())["episode_over"] is False
    control.close(episode["episode_id"])


@pytest.mark.parametrize("fault, bound_s", [
    ("raises", 15.0),
    ("waits-for-the-page", SETUP_TIMEOUT_S + 15.0),
    ("blocks-in-python", SETUP_TIMEOUT_S + 5 + 6.0),
])
def test_a_failing_setup_is_a_clear_error_in_bounded_time(server, control, fault, bound_s):
    open_before = _worker(server).episode_count
    started = time.monotonic()
    response = control.http.post("/v1/episodes", json={"task_id": f"test.setup-{fault}"}, timeout=120)
    elapsed = time.monotonic() - started
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["error"] == "episode_setup_failed" and f"test.setup-{fault}" in body["detail"], body
    assert elapsed < bound_s, f"POST /v1/episodes took {elapsed:.1f} s"
    # Nothing half-made is left: no episode listed for the task, no slot held on the worker.
    listed = control.http.get("/v1/episodes").json()["episodes"]
    assert not any(e["task_id"] == f"test.setup-{fault}" for e in listed)
    deadline = time.monotonic() + 30  # task code stuck in Python frees its worker when it returns
    while _worker(server).episode_count != open_before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _worker(server).episode_count == open_before
    _serving(server, control)


def test_an_agent_hanging_up_mid_call_leaves_nothing_stuck(server, control):
    episode = control.create("custom.sec-forms", max_repeated_actions=100)
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {episode['agent_token']}"}
    slow = rpc("tools/call", {"name": "noop", "arguments": {"wait_ms": 2_500}})

    async def hang_up() -> int:
        """Two slow calls, the second queued behind the first; both callers hang up early."""
        async with httpx.AsyncClient(timeout=0.8) as client:
            results = await asyncio.gather(client.post(server.mcp_url, json=slow, headers=headers),
                                           client.post(server.mcp_url, json=slow, headers=headers),
                                           return_exceptions=True)
        return sum(isinstance(result, httpx.TimeoutException) for result in results)

    assert asyncio.run(hang_up()) == 2

    async def carry_on() -> dict[str, Any]:
        async with connect(server.mcp_url, episode["agent_token"]) as client:
            await client.act("observe", {})
            filled = await client.act("fill", {"id": client.id_of("notes"), "text": "after the hang-up"})
            return filled.structured_content

    started = time.monotonic()
    page = play(carry_on(), timeout=60)
    assert time.monotonic() - started < 30
    assert page["episode_over"] is False
    steps = control.trajectory(episode["episode_id"])["steps"]
    state = control.state(episode["episode_id"])
    assert state["status"] == "running" and state["step_index"] == len(steps) == page["step_index"]
    assert steps[-1]["tool"] == "fill" and all(step["tool"] == "noop" for step in steps[:-1])
    assert len(steps) <= 3  # each abandoned call ran at most once
    assert not server.manager._jobs.busy(episode["episode_id"])
    control.close(episode["episode_id"])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_a_killed_browser_ends_its_episodes_and_the_worker_recovers(server, control):
    """Runs last in this module: it kills this server's only Chromium."""
    worker = _worker(server)
    first = control.create("custom.sec-forms")
    second = control.create("custom.sec-forms")

    async def before() -> None:
        async with connect(server.mcp_url, first["agent_token"]) as client:
            await client.act("observe", {})
            await client.act("fill", {"id": client.id_of("notes"), "text": "before the crash"})

    play(before())
    pid = server.run(worker.run(lambda w: w.browser_pid()))
    browser_tree = descendants(pid)  # renderers, GPU and utility processes of that Chromium
    assert browser_tree
    launches = worker.launches
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)

    async def after(token: str) -> list[Any]:
        async with connect(server.mcp_url, token) as client:
            first_call = await client.call("fill", {"id": "1", "text": "after the crash"})
            second_call = await client.call("observe", {})
            return [first_call, second_call]

    for episode in (first, second):
        answers = play(after(episode["agent_token"]))
        assert all(answer.is_error for answer in answers)
        assert "browser_error" not in str(answers)  # the agent learns the episode is over, not why
        state = control.state(episode["episode_id"])
        assert state["status"] == "ended" and state["failure_reason"] == "browser_error", state
    # The record stays readable.
    steps = control.trajectory(first["episode_id"])["steps"]
    assert [step["tool"] for step in steps] == ["fill", "fill"]
    assert steps[0]["valid"] and steps[-1]["error_kind"] == "browser" and steps[-1]["terminated"]
    # A new episode gets a new Chromium, and plays.
    _serving(server, control)
    assert worker.launches == launches + 1
    new_pid = server.run(worker.run(lambda w: w.browser_pid()))
    assert new_pid != pid and _alive(new_pid)
    assert survivors(browser_tree) == {}  # the killed browser's own processes went with it
    for episode in (first, second):
        assert control.close(episode["episode_id"])["status"] == "closed"


def test_idle_episodes_are_reaped_after_the_configured_time():
    live = start_live_server(extra_tasks_dir=str(TASKS_DIR), workers=1, idle_timeout_s=2.0)
    control = Control(live)
    try:
        idle = control.create("custom.sec-forms")
        busy = control.create("custom.sec-forms", max_repeated_actions=1_000)
        worker = live.manager.pool.workers[0]

        async def keep_busy() -> None:
            async with connect(live.mcp_url, busy["agent_token"]) as client:
                until = time.monotonic() + 5
                while time.monotonic() < until:
                    await client.act("noop", {"wait_ms": 0})
                    await asyncio.sleep(0.3)

        play(keep_busy())
        state = control.state(idle["episode_id"])
        assert state["status"] == "closed", state
        assert state["closed_by"] == "idle_timeout" and state["failure_reason"] == "none"
        assert control.state(busy["episode_id"])["status"] == "running"
        assert control.state(busy["episode_id"])["closed_by"] is None
        # The idle episode's token opens nothing any more, and its browser context is gone.
        response = httpx.post(live.mcp_url, json=rpc("tools/list"),
                              headers={**JSON_HEADERS, "Authorization": f"Bearer {idle['agent_token']}"}, timeout=30)
        assert response.status_code == 401
        assert worker.episode_count == 1
        assert control.trajectory(idle["episode_id"])["status"] == "closed"  # its record stays
    finally:
        control.http.close()
        stop_live_server(live)
