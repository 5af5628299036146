"""safebrowse on a real multi-node Ray cluster: the front places episodes on browser nodes,
agents solve them through their node's own MCP door, and the front's book keeps every
answered step through node losses, joins and its own stop.

One cluster (a head plus two worker nodes, each its own raylet with its own node id) and
one front (`safebrowse serve --ray`, a child process) serve the whole module; the tests run
in order and each leaves the cluster as the next one expects it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.book import EpisodeBook

from support.agent import INITIALIZE, JSON_HEADERS, Agent, connect, play, text_of
from support.cluster import RayCluster, alive, chromium_processes, node_doors, start_front
from support.process import ServeProcess
from support.waiting import wait_for

pytestmark = pytest.mark.slow

CAPACITY = 2  # episodes each browser node runs at once (SAFEBROWSE_MAX_OPEN_EPISODES)
FRONT_ENV = {"SAFEBROWSE_MAX_OPEN_EPISODES": str(CAPACITY)}


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="safebrowse-cluster-"))
    try:
        yield root / "data"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    cluster = RayCluster(nodes=2)
    try:
        yield cluster
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def chromium_before() -> set[int]:
    """Chromium processes of the rest of the session, already running before the front starts."""
    return chromium_processes()


@pytest.fixture(scope="module")
def front(ray_cluster: RayCluster, data_dir: Path, chromium_before: set[int]) -> Iterator[ServeProcess]:
    process = start_front(ray_cluster, data_dir, FRONT_ENV)
    try:
        yield process
    finally:
        process.stop()


class Trainer:
    """The control API of the front, as a trainer uses it."""

    def __init__(self, front: ServeProcess) -> None:
        self.http = httpx.Client(base_url=front.control_url, headers=front.control_headers, timeout=60)

    def create(self, task_id: str, **fields: Any) -> httpx.Response:
        return self.http.post("/v1/episodes", json={"task_id": task_id, **fields})

    def created(self, task_id: str, **fields: Any) -> dict[str, Any]:
        response = self.create(task_id, **fields)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def state(self, episode_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/episodes/{episode_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def steps(self, episode_id: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/v1/episodes/{episode_id}/trajectory")
        assert response.status_code == 200, response.text
        steps: list[dict[str, Any]] = response.json()["steps"]
        return steps

    def close(self, episode_id: str) -> dict[str, Any]:
        response = self.http.delete(f"/v1/episodes/{episode_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def metrics(self) -> str:
        return self.http.get("/metrics").text


@pytest.fixture(scope="module")
def trainer(front: ServeProcess) -> Trainer:
    return Trainer(front)


async def solve_enter_text(agent: Agent) -> int:
    """Solve miniwob.enter-text; returns the steps taken."""
    await agent.act("observe", {})
    (text,) = re.findall(r'"([^"]*)"', agent.goal)
    await agent.act("fill", {"id": agent.find("textbox")["id"], "text": text})
    await agent.act("click", {"id": agent.find("button", "Submit")["id"]})
    return 2


async def fill_steps(url: str, token: str, count: int) -> list[str]:
    """Take `count` fill steps on enter-text without submitting; returns each result's text."""
    async with connect(url, token) as agent:
        await agent.act("observe", {})
        box = agent.find("textbox")["id"]
        return [text_of(await agent.act("fill", {"id": box, "text": f"step {index}"})) for index in range(count)]


def test_episodes_spread_over_nodes_and_each_is_solved_through_its_own_door(
        ray_cluster: RayCluster, front: ServeProcess, trainer: Trainer) -> None:
    doors = node_doors(front)
    assert sorted(doors) == sorted(node.node_id for node in ray_cluster.workers)  # the head has no CPUs
    assert len(set(doors.values())) == 2

    episodes = [trainer.created("miniwob.enter-text", seed=seed) for seed in (11, 12)]
    assert {episode["node"] for episode in episodes} == set(doors)  # least loaded first: one each
    for episode in episodes:
        assert episode["mcp_url"] == doors[episode["node"]]

    async def solve_both() -> list[int]:
        async def solve(episode: dict[str, Any]) -> int:
            async with connect(episode["mcp_url"], episode["agent_token"]) as agent:
                return await solve_enter_text(agent)
        return list(await asyncio.gather(*(solve(episode) for episode in episodes)))

    taken = play(solve_both())
    for episode, steps in zip(episodes, taken):
        state = trainer.state(episode["episode_id"])
        assert (state["success"], state["failure_reason"], state["step_index"]) == (True, "success", steps)
        assert (state["node"], state["mcp_url"]) == (episode["node"], episode["mcp_url"])
        trajectory = trainer.steps(episode["episode_id"])
        assert [step["tool"] for step in trajectory] == ["fill", "click"]
        assert trajectory[-1]["reward"]["total"] > 0  # scored at the front, from the node's records
        closed = trainer.close(episode["episode_id"])
        assert closed["status"] == "closed" and closed["closed_by"] == "trainer"

    exported = trainer.http.get("/v1/export", params={"task_id": "miniwob.enter-text"})
    rows = {row["episode_id"]: row for row in map(json.loads, exported.text.splitlines())}
    for episode in episodes:
        assert rows[episode["episode_id"]]["success"] is True
    metrics = trainer.metrics()
    for node in doors:
        assert f'safebrowse_node_steps_total{{node="{node}"}} 2.0' in metrics
        assert f'safebrowse_node_up{{node="{node}"}} 1.0' in metrics


def test_an_agent_token_opens_its_episode_only_on_its_own_node(front: ServeProcess, trainer: Trainer) -> None:
    first, second = (trainer.created("miniwob.click-test", seed=seed) for seed in (1, 2))
    assert first["node"] != second["node"]
    try:
        for episode, other in ((first, second), (second, first)):
            wrong = httpx.post(other["mcp_url"], json=INITIALIZE, timeout=30,
                               headers={**JSON_HEADERS, "Authorization": f"Bearer {episode['agent_token']}"})
            assert wrong.status_code == 401, wrong.text
            assert wrong.json()["error"] == "unauthorized"
            right = httpx.post(episode["mcp_url"], json=INITIALIZE, timeout=30,
                               headers={**JSON_HEADERS, "Authorization": f"Bearer {episode['agent_token']}"})
            assert right.status_code == 200, right.text
        # The front itself has no MCP door: nothing of an agent's is served there.
        assert trainer.http.post("/mcp", json=INITIALIZE, headers=JSON_HEADERS).status_code == 404
    finally:
        for episode in (first, second):
            trainer.close(episode["episode_id"])


def test_no_capacity_is_a_503_with_retry_after(trainer: Trainer) -> None:
    held = [trainer.created("miniwob.click-test", seed=seed) for seed in range(2 * CAPACITY)]
    try:
        refused = trainer.create("miniwob.click-test", seed=99)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "no_capacity"
        assert int(refused.headers["Retry-After"]) > 0
    finally:
        for episode in held:
            trainer.close(episode["episode_id"])
    assert trainer.create("miniwob.click-test", seed=100).status_code == 201  # room again


def test_a_suite_runs_whole_on_one_node_behind_that_nodes_door(front: ServeProcess, trainer: Trainer) -> None:
    response = trainer.http.post("/v1/suites", json={"suite": "miniwob.click-test", "episodes": 2, "seed": 60})
    assert response.status_code == 201, response.text
    suite = response.json()
    assert suite["mcp_url"] in node_doors(front).values()

    async def walk() -> str:
        async with connect(suite["mcp_url"], suite["agent_token"]) as agent:
            await agent.act("observe", {})
            await agent.act("click", {"id": agent.find("button")["id"]})
            meets = await agent.act("observe", {})  # the first episode has ended: the next task begins
            assert "A new task has begun (task 2 of 2)" in text_of(meets)
            await agent.act("click", {"id": agent.find("button")["id"]})
            return text_of(await agent.call("observe", {}))

    assert "The evaluation is over" in play(walk())
    report = trainer.http.get(f"/v1/suites/{suite['suite_id']}").json()
    assert report["complete"] is True
    assert [(e["seed"], e["success"], e["steps"]) for e in report["episodes"]] == [(60, True, 1), (61, True, 1)]
    nodes = set()
    for episode in report["episodes"]:
        state = trainer.state(episode["episode_id"])  # recorded at the front, as any episode
        assert (state["success"], state["status"], state["mcp_url"]) == (True, "closed", suite["mcp_url"])
        nodes.add(state["node"])
    assert len(nodes) == 1


def test_a_lost_node_ends_its_episodes_browser_error_with_every_answered_step_kept(
        ray_cluster: RayCluster, trainer: Trainer) -> None:
    for state in trainer.http.get("/v1/episodes", params={"status": "running"}).json()["episodes"]:
        trainer.close(state["episode_id"])
    doomed_node, surviving_node = ray_cluster.workers
    episodes = [trainer.created("miniwob.enter-text", seed=seed) for seed in (21, 22)]
    doomed = next(episode for episode in episodes if episode["node"] == doomed_node.node_id)
    answered = play(fill_steps(doomed["mcp_url"], doomed["agent_token"], 3))
    assert len(answered) == 3
    browsers = ray_cluster.browsers_on(doomed_node)
    assert browsers

    ray_cluster.remove_node(doomed_node)
    wait_for(lambda: not alive(browsers), "the lost node's Chromium outlived its raylet", timeout=60)

    wait_for(lambda: trainer.state(doomed["episode_id"])["status"] == "closed",
             "the lost node's episode was not settled", timeout=60)
    state = trainer.state(doomed["episode_id"])
    assert (state["failure_reason"], state["success"], state["closed_by"]) == ("browser_error", False, "node_lost")
    steps = trainer.steps(doomed["episode_id"])
    assert [step["tool"] for step in steps] == ["fill"] * 3
    assert steps[-1]["terminated"] and steps[-1]["failure_reason"] == "browser_error"
    assert f'safebrowse_node_up{{node="{doomed_node.node_id}"}} 0.0' in trainer.metrics()

    other = next(episode for episode in episodes if episode is not doomed)
    assert trainer.state(other["episode_id"])["status"] == "running"  # the other node's episode goes on
    after = trainer.created("miniwob.click-test", seed=31)
    assert after["node"] == surviving_node.node_id
    for episode in (other, after):
        trainer.close(episode["episode_id"])


def test_a_node_that_joins_takes_new_episodes_without_a_restart(
        ray_cluster: RayCluster, front: ServeProcess, trainer: Trainer) -> None:
    (old_node,) = ray_cluster.workers
    busy = trainer.created("miniwob.click-test", seed=41)
    assert busy["node"] == old_node.node_id
    joined = ray_cluster.add_node()
    wait_for(lambda: joined.node_id in node_doors(front), "the front did not start a browser node on the new node",
             timeout=90)
    fresh = trainer.created("miniwob.click-test", seed=42)
    assert fresh["node"] == joined.node_id  # the least loaded
    assert fresh["mcp_url"] == node_doors(front)[joined.node_id]

    async def solve() -> None:
        async with connect(fresh["mcp_url"], fresh["agent_token"]) as agent:
            await agent.act("observe", {})
            await agent.act("click", {"id": agent.find("button")["id"]})

    play(solve())
    assert trainer.state(fresh["episode_id"])["success"] is True
    # `busy` stays open: the next test stops the front with it running.


def test_sigterm_to_the_front_closes_every_episode_and_leaves_no_actor_or_chromium(
        ray_cluster: RayCluster, front: ServeProcess, trainer: Trainer, chromium_before: set[int]) -> None:
    running = trainer.http.get("/v1/episodes", params={"status": "running"}).json()["episodes"]
    assert running, "the previous test left an episode running"
    assert len(ray_cluster.browser_actors()) == 2
    browsers = chromium_processes() - chromium_before
    assert browsers

    front.stop()

    assert front.process.returncode == 0, front.output
    wait_for(lambda: not ray_cluster.browser_actors(), "browser node actors outlived the front", timeout=30)
    wait_for(lambda: not alive(browsers), "Chromium outlived the front", timeout=30)
    book = EpisodeBook.open(front.data_dir, read_only=True)
    try:
        for episode in running:
            state = next(s.state for s in book.summaries() if s.state.episode_id == episode["episode_id"])
            assert (state.status.value, state.closed_by) == ("closed", "shutdown")
    finally:
        book.close()


def test_a_front_that_dies_takes_its_node_actors_and_browsers_along_and_the_next_one_says_so(
        ray_cluster: RayCluster, data_dir: Path, chromium_before: set[int]) -> None:
    first = start_front(ray_cluster, data_dir, FRONT_ENV)
    try:
        episode = Trainer(first).created("miniwob.enter-text", seed=51)
        play(fill_steps(episode["mcp_url"], episode["agent_token"], 2))
        browsers = chromium_processes() - chromium_before
        assert browsers
        os.kill(first.process.pid, signal.SIGKILL)  # the front alone, as a crash; its nodes are Ray's processes
        first.wait_exit()
        wait_for(lambda: not ray_cluster.browser_actors(), "the dead front's node actors live on", timeout=60)
        wait_for(lambda: not alive(browsers), "the dead front's Chromium lives on", timeout=60)
    finally:
        first.stop()

    second = start_front(ray_cluster, data_dir, FRONT_ENV)
    browsers = set()
    try:
        assert "1 episodes were open when the last server" in second.output
        trainer = Trainer(second)
        state = trainer.state(episode["episode_id"])
        assert (state["status"], state["failure_reason"], state["closed_by"]) == (
            "closed", "server_restart", "server_restart")
        assert [step["tool"] for step in trainer.steps(episode["episode_id"])] == ["fill", "fill"]
        assert trainer.created("miniwob.click-test", seed=52)["node"] in node_doors(second)
        browsers = chromium_processes() - chromium_before
    finally:
        second.stop()
    assert second.process.returncode == 0, second.output
    wait_for(lambda: not ray_cluster.browser_actors(), "node actors outlived the second front", timeout=30)
    assert browsers
    wait_for(lambda: not alive(browsers), "Chromium outlived the second front", timeout=30)
