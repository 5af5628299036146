"""`safebrowse serve` killed and started again on the same data dir, as real processes.

The server is a child process in a session of its own; the test plays episodes over
real HTTP (control API) and MCP (the agent door), kills the whole process group with
SIGKILL right after the last answer, starts a new server on the same data dir and
compares what the trainer reads before and after. Bad input (a second server, a dir
that cannot be written, a newer or damaged book) is given to `safebrowse serve`
itself, which must refuse in one line and leave the book as it was.
"""

from __future__ import annotations

import base64
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.book.schema import SCHEMA_VERSION
from engine.book.store import BOOK_FILE

from security.harness import descendants, survivors
from support.agent import connect, play, text_of
from support.process import ServeProcess, refused_serve
from support.waiting import wait_for

HTTP_TIMEOUT_S = 120.0
STEP_PENALTY = 0.07  # not the default: rewards after the restart must use the trainer's weights


class Trainer:
    """The trainer's side of one server process, over HTTP with its control token."""

    def __init__(self, server: ServeProcess) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.control_url, headers=server.control_headers, timeout=HTTP_TIMEOUT_S)

    def get(self, path: str) -> dict[str, Any]:
        response = self.http.get(path)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def create(self, **body: Any) -> dict[str, Any]:
        response = self.http.post("/v1/episodes", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def recorded(self, episode_id: str) -> dict[str, Any]:
        """Everything the trainer can read of an episode."""
        return {
            "state": self.get(f"/v1/episodes/{episode_id}"),
            "trajectory": self.get(f"/v1/episodes/{episode_id}/trajectory?observations=true"),
        }


def agent_plays(server: ServeProcess, token: str, moves: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Connect as the episode's agent, observe, and make these calls; an argument `"@button"` names
    the first element of that role on the page last seen. Returns the text of each answer."""

    async def session() -> list[str]:
        texts = []
        async with connect(server.mcp_url, token) as agent:
            texts.append(text_of(await agent.act("observe", {})))
            for tool, arguments in moves:
                resolved = {key: agent.find(value[1:])["id"] if isinstance(value, str) and value.startswith("@")
                            else value for key, value in arguments.items()}
                texts.append(text_of(await agent.call(tool, resolved)))
        return texts

    return play(session())


def without(document: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key not in keys}


@pytest.mark.slow
def test_a_killed_server_comes_back_with_every_answered_step_and_the_same_rewards(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = ServeProcess(data_dir, workers=2).wait_ready()
    try:
        trainer = Trainer(first)
        weights = {"reward_weights": {"step_penalty": STEP_PENALTY}}
        # Closed: a few steps, recorded screenshots, then the trainer's close.
        closed = trainer.create(task_id="miniwob.enter-text", seed=3, record_screenshots=True, **weights)
        agent_plays(first, closed["agent_token"],
                    [("fill", {"id": "@textbox", "text": "Kasey"}), ("noop", {"wait_ms": 0})])
        assert trainer.http.delete(f"/v1/episodes/{closed['episode_id']}").status_code == 200
        # Ended, not closed: the agent solves it.
        ended = trainer.create(task_id="miniwob.click-test", seed=1, **weights)
        agent_plays(first, ended["agent_token"], [("click", {"id": "@button"})])
        # A curriculum result: difficulty picked by the curriculum, ended by the trainer's cap, closed.
        auto = trainer.create(task_id="custom.login-form", difficulty="auto", seed=5)
        agent_plays(first, auto["agent_token"], [("noop", {"wait_ms": 0})])
        assert trainer.http.post(f"/v1/episodes/{auto['episode_id']}/end").status_code == 200
        assert trainer.http.delete(f"/v1/episodes/{auto['episode_id']}").status_code == 200
        # Running: answered steps, then the server dies.
        running = trainer.create(task_id="miniwob.enter-text", seed=8, **weights)
        texts = agent_plays(first, running["agent_token"],
                            [("scroll", {"delta_y": 50}), ("fill", {"id": "@textbox", "text": "x"})])

        ids = [closed["episode_id"], ended["episode_id"], auto["episode_id"], running["episode_id"]]
        before = {episode_id: trainer.recorded(episode_id) for episode_id in ids}
        curriculum_before = trainer.get("/v1/curriculum")
        screenshot_before = trainer.http.get(f"/v1/episodes/{closed['episode_id']}/steps/1/screenshot.png").content
        assert before[running["episode_id"]]["state"]["step_index"] == len(texts) - 1 == 2
        assert before[ended["episode_id"]]["state"]["status"] == "ended"
        assert curriculum_before["tasks"] and curriculum_before["tasks"][0]["task_id"] == "custom.login-form"
        children = descendants(first.process.pid)
        assert any("chrom" in info[2].lower() for info in children.values()), children
    finally:
        first.kill()  # SIGKILL to the whole group, right after the last answer
    # The browsers died with it, as they do when a server is killed (a killed child lingers in
    # the process table only until it is reaped).
    wait_for(lambda: survivors(children) == {}, f"browser processes outlived the killed server: {children}", 10)

    second = ServeProcess(data_dir, workers=1).wait_ready()
    try:
        trainer = Trainer(second)
        after = {episode_id: trainer.recorded(episode_id) for episode_id in ids}

        # Closed before the kill: exactly as it was, rewards included.
        assert after[closed["episode_id"]] == before[closed["episode_id"]]
        screenshot = trainer.http.get(f"/v1/episodes/{closed['episode_id']}/steps/1/screenshot.png")
        assert screenshot.status_code == 200 and screenshot.content == screenshot_before
        assert after[auto["episode_id"]] == before[auto["episode_id"]]

        # Ended but not closed: the same trajectory and rewards, now closed by the restart.
        was, now = before[ended["episode_id"]], after[ended["episode_id"]]
        assert now["trajectory"]["steps"] == was["trajectory"]["steps"]
        assert now["trajectory"]["cumulative_reward"] == was["trajectory"]["cumulative_reward"]
        assert now["state"]["failure_reason"] == "success" and now["state"]["status"] == "closed"
        assert now["state"]["closed_by"] == "server_restart"
        assert without(now["state"], "status", "closed_by") == without(was["state"], "status", "closed_by")

        # Running: every answered step is there with its reward; it ended with server_restart on its last step.
        was, now = before[running["episode_id"]], after[running["episode_id"]]
        assert now["state"]["status"] == "closed" and now["state"]["done"] is True
        assert now["state"]["failure_reason"] == "server_restart" and now["state"]["closed_by"] == "server_restart"
        old_steps, new_steps = was["trajectory"]["steps"], now["trajectory"]["steps"]
        assert len(new_steps) == len(old_steps) == 2
        assert new_steps[0] == old_steps[0]
        last_then, last_now = old_steps[-1], new_steps[-1]
        assert last_now["terminated"] is True and last_now["failure_reason"] == "server_restart"
        assert without(last_now, "terminated", "failure_reason", "reward") == without(
            last_then, "terminated", "failure_reason", "reward")
        assert last_now["reward"]["delayed_penalty"] == 0.0  # the server's death is not the agent's failure
        assert last_now["reward"]["step_penalty"] == -STEP_PENALTY  # the trainer's weights, kept
        assert without(last_now["reward"], "judge_quality_reward", "total") == without(
            last_then["reward"], "judge_quality_reward", "total")

        # The old agent token opens nothing; the listing and the curriculum are whole.
        refused = httpx.post(second.mcp_url, headers={"Authorization": f"Bearer {running['agent_token']}"},
                             json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30)
        assert refused.status_code == 401
        listed = {summary["episode_id"] for summary in trainer.get("/v1/episodes")["episodes"]}
        assert listed == set(ids)
        assert trainer.get("/v1/curriculum") == curriculum_before
        # A restored episode has no browser: screenshots of the live page are refused as for a closed one.
        live = trainer.get(f"/v1/episodes/{running['episode_id']}/trajectory?screenshots=true")
        assert live["screenshot_png_base64"] is None and "closed" in live["screenshot_error"]
        assert trainer.http.delete(f"/v1/episodes/{running['episode_id']}").json()["closed_by"] == "server_restart"

        # The restarted server records new episodes in the same book.
        fresh = trainer.create(task_id="miniwob.click-test", seed=2)
        agent_plays(second, fresh["agent_token"], [("click", {"id": "@button"})])
        assert trainer.get(f"/v1/episodes/{fresh['episode_id']}")["success"] is True
    finally:
        second.stop()
    assert second.process.returncode == 0, second.output[-3000:]
    with contextlib.closing(sqlite3.connect(data_dir / BOOK_FILE)) as book:
        assert book.execute("SELECT COUNT(*) FROM episodes").fetchone()[0] == 5


NOT_RECORDED = "The server cannot record this step now; try again later."


@pytest.mark.slow
def test_a_full_book_refuses_over_both_doors_and_a_restart_keeps_every_answered_step(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    capped = ServeProcess(data_dir, env={"SAFEBROWSE_BOOK_MAX_MB": "0.15"}).wait_ready()
    try:
        trainer = Trainer(capped)
        created = trainer.create(task_id="miniwob.enter-text", seed=2, max_steps=1000, max_repeated_actions=10_000)

        async def until_refused() -> tuple[int, str, str]:
            async with connect(capped.mcp_url, created["agent_token"]) as agent:
                for answered in range(400):
                    result = await agent.call("noop", {"wait_ms": 0})
                    if result.is_error:
                        again = await agent.call("observe", {})
                        return answered, text_of(result), text_of(again)
            raise AssertionError("400 steps were all recorded: the cap never filled")

        answered, refusal, again = play(until_refused())
        assert answered >= 1
        assert refusal == again == NOT_RECORDED  # what the agent reads: nothing of rewards or the book
        state = trainer.http.get(f"/v1/episodes/{created['episode_id']}")
        assert state.status_code == 507 and state.json()["error"] == "book_full", state.text
        for _ in range(20):  # each new episode takes room until a page is missing
            response = trainer.http.post("/v1/episodes", json={"task_id": "miniwob.click-test"})
            if response.status_code != 201:
                break
            trainer.http.delete(f"/v1/episodes/{response.json()['episode_id']}")
        assert response.status_code == 507 and response.json()["error"] == "book_full", response.text
        assert "Traceback" not in capped.output
    finally:
        capped.kill()

    restarted = ServeProcess(data_dir).wait_ready()
    try:
        trajectory = Trainer(restarted).get(f"/v1/episodes/{created['episode_id']}/trajectory")
        # Every answered step; the refused one too if a later, smaller write got it in (its transcript
        # then says the agent was told it could not be recorded).
        steps = [step["index"] for step in trajectory["steps"]]
        assert steps in (list(range(1, answered + 1)), list(range(1, answered + 2))), steps
        assert trajectory["failure_reason"] == "server_restart"
    finally:
        restarted.stop()


def assert_refused(result: Any, *fragments: str) -> None:
    """`safebrowse serve` exited non-zero with one line that says why, and no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.slow
def test_a_second_server_on_the_same_data_dir_refuses_to_start(tmp_path: Path) -> None:
    first = ServeProcess(tmp_path / "data").wait_ready()
    try:
        result = refused_serve(tmp_path / "data")
        assert_refused(result, f"pid {first.process.pid}", "is using the data dir", str(tmp_path / "data"))
        assert first.process.poll() is None
        health = httpx.get(first.control_url + "/v1/health", timeout=30)
        assert health.status_code == 200
    finally:
        first.stop()


def test_serve_refuses_a_data_dir_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert_refused(refused_serve(blocker / "data"), "the data dir", str(blocker / "data"), "is not writable")


def test_serve_refuses_a_book_from_a_newer_safebrowse_and_leaves_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with contextlib.closing(sqlite3.connect(data_dir / BOOK_FILE)) as book:
        book.execute("CREATE TABLE episodes (episode_id TEXT)")
        book.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    written = (data_dir / BOOK_FILE).read_bytes()
    assert_refused(refused_serve(data_dir),
                   f"book schema version {SCHEMA_VERSION + 1} is newer than this safebrowse ({SCHEMA_VERSION})")
    assert (data_dir / BOOK_FILE).read_bytes() == written


def test_serve_refuses_a_damaged_book_and_does_not_start_an_empty_one(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    damaged = base64.b64encode(b"\x00" * 3000) * 4
    (data_dir / BOOK_FILE).write_bytes(damaged)
    assert_refused(refused_serve(data_dir), "is damaged", str(data_dir / BOOK_FILE))
    assert (data_dir / BOOK_FILE).read_bytes() == damaged
