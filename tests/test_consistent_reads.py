"""Trainer reads stay consistent while agents step: every read shows one moment of an episode.

Eight agents play MiniWoB++ episodes through the real agent door (MCP over streamable
HTTP) while two readers poll each episode's state and trajectory over the control API
as fast as they can. Every response must describe one moment of its episode: the
last reward is the latest step's, an ended episode's last step is its terminal one,
steps are numbered 1..n and sum to the reported return, and a step once shown never
changes afterwards (only the terminal mark of the last step may be added, when the
episode ends after it). Reads taken one after the other never go back in time, and a
state and a trajectory read of the same moment report the same return.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from support.agent import Agent, connect
from support.live import LiveServer, start_live_server, stop_live_server

READERS = 2
TEST_BUDGET_S = 50.0
# Set when the episode ends after a step (a trainer's end): everything else about a shown step is final.
LATE_FIELDS = frozenset({"terminated", "failure_reason", "reward"})
# Endings that are not the agent's failure (docs/rewards.md): every other one carries a delayed penalty.
NOT_AGENT_FAILURES = frozenset({"none", "success", "client_step_cap", "browser_error", "task_validation_failed"})


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    server = start_live_server(workers=2)
    try:
        yield server
    finally:
        stop_live_server(server)


# -- the agents -------------------------------------------------------------------------------


def quoted(goal: str) -> str:
    (text,) = re.findall(r'"([^"]*)"', goal)
    return text


async def noops(agent: Agent, count: int) -> None:
    for k in range(count):
        await agent.act("noop", {"wait_ms": k})


async def click_test_after_noops(agent: Agent) -> None:
    await noops(agent, 3)
    await agent.call("click", {"id": "no-such-element"})  # a mistake, recorded as an invalid step
    await agent.act("click", {"id": agent.find("button")["id"]})


async def enter_text_right(agent: Agent) -> None:
    await noops(agent, 1)
    await agent.act("fill", {"id": agent.find("textbox")["id"], "text": quoted(agent.goal)})
    await agent.act("click", {"id": agent.find("button", "Submit")["id"]})


async def enter_text_wrong(agent: Agent) -> None:
    await agent.act("fill", {"id": agent.find("textbox")["id"], "text": "not the text asked for"})
    await agent.act("click", {"id": agent.find("button", "Submit")["id"]})


async def until_out_of_steps(agent: Agent) -> None:
    await noops(agent, 5)  # the episode's max_steps is 5


async def fill_and_wait(agent: Agent) -> None:
    for k in range(4):
        await agent.act("fill", {"id": agent.find("textbox")["id"], "text": f"draft {k}"})


@dataclass(frozen=True)
class Plan:
    task_id: str
    play: Callable[[Agent], Awaitable[None]]
    max_steps: int = 20
    trainer_ends: bool = False  # the trainer ends it (client_step_cap) after the agent's last step


PLANS = (
    Plan("miniwob.click-test", click_test_after_noops),
    Plan("miniwob.click-test", click_test_after_noops),
    Plan("miniwob.enter-text", enter_text_right),
    Plan("miniwob.enter-text", enter_text_right),
    Plan("miniwob.enter-text", enter_text_wrong),
    Plan("miniwob.click-test", until_out_of_steps, max_steps=5),
    Plan("miniwob.enter-text", fill_and_wait, trainer_ends=True),
    Plan("miniwob.enter-text", fill_and_wait),  # still running when the agents are done
)


# -- the readers ------------------------------------------------------------------------------


@dataclass
class EpisodeView:
    """What one reader has seen of one episode so far."""

    steps: dict[int, dict[str, Any]] = field(default_factory=dict)
    terminated: set[int] = field(default_factory=set)
    step_index: int = 0
    done: bool = False


@dataclass
class Reader:
    control_url: str
    headers: dict[str, str]
    episode_ids: list[str]
    stop: threading.Event
    problems: list[str] = field(default_factory=list)
    reads: int = 0

    def run(self) -> None:
        views = {episode_id: EpisodeView() for episode_id in self.episode_ids}
        try:
            with httpx.Client(base_url=self.control_url, headers=self.headers, timeout=30) as http:
                while not self.stop.is_set() and len(self.problems) < 20:
                    for episode_id in self.episode_ids:
                        state = self._get(http, f"/v1/episodes/{episode_id}")
                        trajectory = self._get(http, f"/v1/episodes/{episode_id}/trajectory")
                        self.problems.extend(f"{episode_id}: {problem}"
                                             for problem in check(views[episode_id], state, trajectory))
                        self.reads += 2
        except Exception as error:  # noqa: BLE001 - reported by the test, not lost in the thread
            self.problems.append(f"the reader failed: {error!r}")

    @staticmethod
    def _get(http: httpx.Client, path: str) -> dict[str, Any]:
        response = http.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")
        return response.json()


def check_state(view: EpisodeView, state: dict[str, Any]) -> list[str]:
    """One state response is one moment; it does not go back before what this reader saw."""
    problems = []
    last = state["last_reward"]
    if state["step_index"] == 0:
        if last is not None:
            problems.append(f"state at step 0 has a last reward {last}")
    elif last is None or last["step_index"] != state["step_index"]:
        problems.append(f"state at step {state['step_index']} has the last reward of step "
                        f"{last and last['step_index']}")
    elif state["done"] and state["failure_reason"] == "success" and last["success_reward"] <= 0:
        problems.append("a successful state's last reward has no success term")
    elif state["done"] and state["failure_reason"] not in NOT_AGENT_FAILURES and last["delayed_penalty"] >= 0:
        problems.append(f"a failed ({state['failure_reason']}) state's last reward has no delayed penalty")
    if state["step_index"] < view.step_index or (view.done and not state["done"]):
        problems.append(f"state went back to step {state['step_index']} (done={state['done']}) after "
                        f"step {view.step_index} (done={view.done})")
    return problems


def check_trajectory(view: EpisodeView, trajectory: dict[str, Any]) -> list[str]:
    """One trajectory response is one moment, and no step it shows differs from an earlier read."""
    problems = []
    steps = trajectory["steps"]
    if [step["index"] for step in steps] != list(range(1, len(steps) + 1)):
        problems.append(f"step indexes {[step['index'] for step in steps]} are not 1..n")
    if any(step["reward"]["step_index"] != step["index"] for step in steps):
        problems.append("a step carries another step's reward")
    total = math.fsum(step["reward"]["total"] for step in steps)
    if not math.isclose(total, trajectory["cumulative_reward"], abs_tol=1e-9):
        problems.append(f"steps sum to {total}, the trajectory reports {trajectory['cumulative_reward']}")
    ended_by_step = trajectory["done"] and trajectory["failure_reason"] != "none"
    if ended_by_step and steps and not (steps[-1]["terminated"]
                                        and steps[-1]["failure_reason"] == trajectory["failure_reason"]):
        problems.append(f"ended ({trajectory['failure_reason']}) but the last step is "
                        f"terminated={steps[-1]['terminated']} ({steps[-1]['failure_reason']})")
    if not trajectory["done"] and any(step["terminated"] for step in steps):
        problems.append("a running episode has a terminated step")
    if len(steps) < view.step_index or (view.done and not trajectory["done"]):
        problems.append(f"trajectory of {len(steps)} steps (done={trajectory['done']}) after a read at "
                        f"step {view.step_index} (done={view.done})")
    for step in steps:
        final = {key: value for key, value in step.items() if key not in LATE_FIELDS}
        seen = view.steps.setdefault(step["index"], final)
        if seen != final:
            changed = sorted(key for key in final if final[key] != seen.get(key))
            problems.append(f"step {step['index']} changed after it was shown: {changed}")
            view.steps[step["index"]] = final
        if step["index"] in view.terminated and not step["terminated"]:
            problems.append(f"step {step['index']} lost its terminal mark")
        if step["terminated"]:
            view.terminated.add(step["index"])
    return problems


def check(view: EpisodeView, state: dict[str, Any], trajectory: dict[str, Any]) -> list[str]:
    """A state read, then a trajectory read of the same episode."""
    problems = check_state(view, state)
    view.step_index, view.done = max(view.step_index, state["step_index"]), view.done or state["done"]
    problems += check_trajectory(view, trajectory)
    same_moment = (len(trajectory["steps"]) == state["step_index"] and trajectory["status"] == state["status"]
                   and trajectory["failure_reason"] == state["failure_reason"])
    if same_moment and not math.isclose(state["cumulative_reward"], trajectory["cumulative_reward"], abs_tol=1e-9):
        problems.append(f"at step {state['step_index']} the state reports a return of {state['cumulative_reward']}, "
                        f"the trajectory {trajectory['cumulative_reward']}")
    view.step_index, view.done = max(view.step_index, len(trajectory["steps"])), view.done or trajectory["done"]
    return problems


# -- the test ---------------------------------------------------------------------------------


def test_reads_during_concurrent_steps_show_one_moment_each(live: LiveServer) -> None:
    started = time.monotonic()
    http = httpx.Client(base_url=live.control_url, headers=live.control_headers, timeout=60)
    created = []
    for k, plan in enumerate(PLANS):
        response = http.post("/v1/episodes", json={"task_id": plan.task_id, "seed": 100 + k,
                                                   "max_steps": plan.max_steps})
        assert response.status_code == 201, response.text
        created.append(response.json())
    episode_ids = [episode["episode_id"] for episode in created]

    stop = threading.Event()
    readers = [Reader(live.control_url, live.control_headers, episode_ids, stop) for _ in range(READERS)]
    threads = [threading.Thread(target=reader.run, name=f"reader-{k}") for k, reader in enumerate(readers)]
    for thread in threads:
        thread.start()

    async def play(plan: Plan, episode: dict[str, Any]) -> None:
        async with connect(episode["mcp_url"], episode["agent_token"]) as agent:
            await agent.act("observe", {})
            await plan.play(agent)
        if plan.trainer_ends:
            ended = await asyncio.to_thread(http.post, f"/v1/episodes/{episode['episode_id']}/end", json={})
            assert ended.status_code == 200, ended.text

    async def play_all() -> None:
        await asyncio.wait_for(asyncio.gather(*(play(plan, episode) for plan, episode in zip(PLANS, created))),
                               TEST_BUDGET_S - (time.monotonic() - started))

    try:
        asyncio.run(play_all())
        time.sleep(0.5)  # the readers see the final moments too
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)

    try:
        problems = [problem for reader in readers for problem in reader.problems]
        assert not problems, "\n".join(problems[:20])
        assert all(reader.reads >= 8 * len(PLANS) for reader in readers), [reader.reads for reader in readers]

        # And at rest, the state and the trajectory tell the same story.
        expected = ["success", "success", "success", "success", "wrong_text", "max_steps_exceeded",
                    "client_step_cap", "none"]
        for episode_id, reason in zip(episode_ids, expected):
            state = http.get(f"/v1/episodes/{episode_id}").json()
            trajectory = http.get(f"/v1/episodes/{episode_id}/trajectory").json()
            assert state["failure_reason"] == trajectory["failure_reason"] == reason, (episode_id, state)
            assert state["step_index"] == len(trajectory["steps"]) > 0
            assert math.isclose(state["cumulative_reward"], trajectory["cumulative_reward"], abs_tol=1e-9)
            assert trajectory["steps"][-1]["terminated"] is (reason != "none")
    finally:
        for episode_id in episode_ids:
            http.delete(f"/v1/episodes/{episode_id}")
        http.close()
    assert time.monotonic() - started < 60
