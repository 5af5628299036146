"""Every failure reason, produced by a real episode and read back over the control API.

These run on a server of their own: it has an oracle (for oracle_budget_exceeded),
test-only tasks whose validate or setup raises (task_validation_failed, the 502 on
setup), a low cap on open episodes (the 429), and its Chromium gets killed
(browser_error) without disturbing the shared `live_server`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsergym.miniwob.all import ClickTestTask

from engine.agent_view import AgentStepResult, Observation
from engine.records import FailureReason
from engine.reward import RewardWeights
from tasks.miniwob import MINIWOB_PREFIX
from tasks.registry import TaskContext, TaskSpec

from support.control import PrivateControlServer

MAX_OPEN = 4


class ValidateRaisesTask(ClickTestTask):
    """MiniWoB's click-test page, with a validator that has a bug."""

    def validate(self, page, chat_messages):  # type: ignore[no-untyped-def]
        raise RuntimeError("validator bug")


class SetupRaisesTask(ClickTestTask):
    def setup(self, page):  # type: ignore[no-untyped-def]
        raise RuntimeError("setup bug")


def _spec(task_id: str, task_class: type[ClickTestTask], difficulties: tuple[str, ...] = ()) -> TaskSpec:
    def build(context: TaskContext) -> ClickTestTask:
        return task_class(seed=context.seed, base_url=context.asset_origin + MINIWOB_PREFIX)

    return TaskSpec(id=task_id, family="test", description="test-only task", factory=build,
                    difficulties=difficulties)


def hint_oracle(question: str, goal: str, observation_text: str, hints: tuple[str, ...]) -> str:
    return f"Re-read the goal: {goal}"


class PrivateServer(PrivateControlServer):
    """An engine with an oracle, test-only tasks and a low episode cap, behind the control API alone."""

    def __init__(self) -> None:
        super().__init__(
            "control-failures",
            tasks=[_spec("test.validate-raises", ValidateRaisesTask), _spec("test.setup-raises", SetupRaisesTask),
                   _spec("test.graded", ClickTestTask, difficulties=("easy", "hard"))],
            oracle_factory=lambda spec: hint_oracle,
            max_open_episodes=MAX_OPEN,
        )

    # -- driving -------------------------------------------------------------------------

    def create(self, task_id: str, **options: Any) -> dict[str, Any]:
        return self.control.create(task_id, **{"seed": 7, **options})

    def act(self, token: str, tool: str, arguments: dict[str, Any]) -> AgentStepResult:
        return self.run(self.session(token).act(tool, arguments))

    def observe(self, token: str) -> Observation:
        return self.run(self.session(token).observe()).observation

    def ask(self, token: str, question: str) -> str:
        return self.run(self.session(token).consult_oracle({"question": question})).answer


@pytest.fixture(scope="module")
def server() -> Iterator[PrivateServer]:
    private = PrivateServer()
    try:
        yield private
    finally:
        private.stop()


@pytest.fixture()
def episodes(server: PrivateServer) -> Iterator[list[str]]:
    """Episode ids a test opened; all are closed afterwards."""
    opened: list[str] = []
    yield opened
    for episode_id in opened:
        server.control.http.delete(f"/v1/episodes/{episode_id}")


def open_episode(server: PrivateServer, episodes: list[str], task_id: str, **options: Any) -> dict[str, Any]:
    created = server.create(task_id, **options)
    episodes.append(created["episode_id"])
    return created


def element(observation, role: str, text: str | None = None, **attributes: str):
    for candidate in observation.elements:
        if candidate.role != role or (text is not None and candidate.text.strip() != text):
            continue
        if all(candidate.attributes.get(key) == value for key, value in attributes.items()):
            return candidate
    raise AssertionError(f"no {role} {text!r} {attributes} in {[(e.role, e.text) for e in observation.elements]}")


def assert_ended(server: PrivateControlServer, episode_id: str, reason: FailureReason) -> dict[str, Any]:
    """The state and the trajectory agree on the reason, on the terminal step and on the rewards."""
    state = server.control.state(episode_id)
    assert state["failure_reason"] == reason.value, state
    assert state["done"] is True
    assert state["success"] is (reason is FailureReason.SUCCESS)
    trajectory = server.control.trajectory(episode_id)
    assert trajectory["failure_reason"] == reason.value
    steps = trajectory["steps"]
    if steps:
        assert steps[-1]["terminated"] is True
        assert steps[-1]["failure_reason"] == reason.value
        assert all(not step["terminated"] for step in steps[:-1])
        assert state["last_reward"] == steps[-1]["reward"]
        assert state["cumulative_reward"] == pytest.approx(sum(step["reward"]["total"] for step in steps))
    return trajectory


# -- the reasons -----------------------------------------------------------------------------


def test_none_while_running(server, episodes):
    created = open_episode(server, episodes, "miniwob.click-test")
    server.act(created["agent_token"], "noop", {"wait_ms": 0})
    state = server.control.state(created["episode_id"])
    assert (state["status"], state["done"], state["failure_reason"]) == ("running", False, "none")
    assert state["last_reward"]["step_penalty"] < 0


def test_success(server, episodes):
    created = open_episode(server, episodes, "miniwob.click-test")
    observation = server.observe(created["agent_token"])
    server.act(created["agent_token"], "click", {"id": element(observation, "button").id})
    trajectory = assert_ended(server, created["episode_id"], FailureReason.SUCCESS)
    final = trajectory["steps"][-1]["reward"]
    assert final["success_reward"] == pytest.approx(RewardWeights().success_reward)
    assert final["task_completion"] == 1.0 and final["delayed_penalty"] == 0.0


def test_max_steps_exceeded(server, episodes):
    created = open_episode(server, episodes, "miniwob.click-test", max_steps=2)
    server.act(created["agent_token"], "noop", {"wait_ms": 0})
    server.act(created["agent_token"], "noop", {"wait_ms": 1})
    trajectory = assert_ended(server, created["episode_id"], FailureReason.MAX_STEPS_EXCEEDED)
    assert trajectory["steps"][-1]["reward"]["delayed_penalty"] == pytest.approx(-RewardWeights().delayed_penalty)


def test_invalid_action_ends_when_asked(server, episodes):
    created = open_episode(server, episodes, "miniwob.click-test", end_on_invalid_action=True)
    server.act(created["agent_token"], "click", {"id": "9999999"})  # no such element
    trajectory = assert_ended(server, created["episode_id"], FailureReason.INVALID_ACTION)
    assert trajectory["steps"][-1]["error_kind"] == "invalid"
    assert trajectory["steps"][-1]["reward"]["mistake_penalty"] < 0


def test_malformed_arguments_are_invalid_actions(server, episodes):
    created = open_episode(server, episodes, "miniwob.click-test", end_on_invalid_action=True)
    server.act(created["agent_token"], "click", {"id": "not-an-id", "extra": 1})
    trajectory = assert_ended(server, created["episode_id"], FailureReason.INVALID_ACTION)
    assert trajectory["steps"][-1]["valid"] is False


def test_browsergym_action_error_on_a_disabled_element(server, episodes):
    created = open_episode(server, episodes, "miniwob.sign-agreement", end_on_action_error=True)
    observation = server.observe(created["agent_token"])
    agree = element(observation, "button", "Agree")
    assert agree.enabled is False
    result = server.act(created["agent_token"], "click", {"id": agree.id})
    assert "disabled" in (result.error or "")
    trajectory = assert_ended(server, created["episode_id"], FailureReason.BROWSERGYM_ACTION_ERROR)
    assert trajectory["steps"][-1]["error_kind"] == "page"


def test_page_errors_do_not_end_by_default(server, episodes):
    created = open_episode(server, episodes, "miniwob.sign-agreement", end_on_invalid_action=True)
    agree = element(server.observe(created["agent_token"]), "button", "Agree")
    server.act(created["agent_token"], "click", {"id": agree.id})
    state = server.control.state(created["episode_id"])
    assert state["status"] == "running" and state["constraints"]["invalid_actions"] == 1


def test_wrong_target(server, episodes):
    created = open_episode(server, episodes, "miniwob.click-button")
    observation = server.observe(created["agent_token"])
    wanted = re.findall(r'"([^"]*)"', created["goal"])[0]
    wrong = next(e for e in observation.elements if e.role == "button" and e.text.strip() != wanted)
    server.act(created["agent_token"], "click", {"id": wrong.id})
    assert_ended(server, created["episode_id"], FailureReason.WRONG_TARGET)


def test_wrong_text(server, episodes):
    created = open_episode(server, episodes, "miniwob.enter-text")
    observation = server.observe(created["agent_token"])
    server.act(created["agent_token"], "fill", {"id": element(observation, "textbox").id, "text": "Nobody"})
    server.act(created["agent_token"], "click", {"id": element(observation, "button", "Submit").id})
    assert_ended(server, created["episode_id"], FailureReason.WRONG_TEXT)


def test_submission_failed(server, episodes):
    created = open_episode(server, episodes, "miniwob.login-user")
    username, password = re.findall(r'"([^"]*)"', created["goal"])[:2]
    observation = server.observe(created["agent_token"])
    token = created["agent_token"]
    # Both texts come from the goal, but in each other's field.
    server.act(token, "fill", {"id": element(observation, "textbox", id="username").id, "text": password})
    server.act(token, "fill", {"id": next(e for e in observation.elements if e.attributes.get("id") == "password").id,
                               "text": username})
    server.act(token, "click", {"id": element(observation, "button", "Login").id})
    assert_ended(server, created["episode_id"], FailureReason.SUBMISSION_FAILED)


def test_task_failed_when_leaving_the_task_page(server, episodes):
    created = open_episode(server, episodes, "miniwob.click-test")
    result = server.act(created["agent_token"], "go_back", {})
    assert result.error is None
    assert_ended(server, created["episode_id"], FailureReason.TASK_FAILED)


def test_oracle_budget_exceeded(server, episodes):
    created = open_episode(server, episodes, "miniwob.click-test", oracle_budget=1)
    assert "Re-read the goal" in server.ask(created["agent_token"], "what now?")
    assert server.control.state(created["episode_id"])["status"] == "running"
    server.ask(created["agent_token"], "and now?")
    trajectory = assert_ended(server, created["episode_id"], FailureReason.ORACLE_BUDGET_EXCEEDED)
    assert [step["reward"]["llm_penalty"] < 0 for step in trajectory["steps"]] == [True, True]
    assert trajectory["steps"][-1]["error_kind"] == "oracle_budget"
    assert server.control.state(created["episode_id"])["constraints"]["oracle_calls"] == 2


def test_task_validation_failed(server, episodes):
    created = open_episode(server, episodes, "test.validate-raises")
    server.act(created["agent_token"], "noop", {"wait_ms": 0})
    trajectory = assert_ended(server, created["episode_id"], FailureReason.TASK_VALIDATION_FAILED)
    assert "validator bug" in trajectory["steps"][-1]["task_message"]
    assert trajectory["steps"][-1]["reward"]["delayed_penalty"] == 0.0  # not the agent's fault


def test_repeated_action_loop(server, episodes):
    created = open_episode(server, episodes, "miniwob.click-test", max_repeated_actions=2)
    server.act(created["agent_token"], "noop", {"wait_ms": 0})
    server.act(created["agent_token"], "noop", {"wait_ms": 0})
    trajectory = assert_ended(server, created["episode_id"], FailureReason.REPEATED_ACTION_LOOP)
    assert trajectory["steps"][-1]["reward"]["repetition_penalty"] < 0
    assert trajectory["steps"][0]["reward"]["repetition_penalty"] == 0.0


def test_too_many_invalid_actions(server, episodes):
    created = open_episode(server, episodes, "miniwob.click-test", max_invalid_actions=2)
    server.act(created["agent_token"], "click", {"id": "9999998"})
    assert server.control.state(created["episode_id"])["status"] == "running"
    server.act(created["agent_token"], "click", {"id": "9999999"})
    assert_ended(server, created["episode_id"], FailureReason.TOO_MANY_INVALID_ACTIONS)


def test_client_step_cap(server, episodes):
    created = open_episode(server, episodes, "miniwob.click-test")
    server.act(created["agent_token"], "noop", {"wait_ms": 0})
    response = server.control.http.post(f"/v1/episodes/{created['episode_id']}/end")
    assert response.status_code == 200 and response.json()["failure_reason"] == "client_step_cap"
    trajectory = assert_ended(server, created["episode_id"], FailureReason.CLIENT_STEP_CAP)
    assert trajectory["steps"][-1]["reward"]["delayed_penalty"] == 0.0  # the trainer's cut, not a failure
    # Ending again changes nothing.
    again = server.control.http.post(f"/v1/episodes/{created['episode_id']}/end", json={"reason": "client_step_cap"})
    assert again.status_code == 200 and again.json()["failure_reason"] == "client_step_cap"


def test_low_progress_abort(server, episodes):
    created = open_episode(server, episodes, "miniwob.click-test", low_progress_window=2)
    server.act(created["agent_token"], "noop", {"wait_ms": 0})
    server.act(created["agent_token"], "scroll", {"delta_y": 10})
    assert_ended(server, created["episode_id"], FailureReason.LOW_PROGRESS_ABORT)


# -- create errors that need this server -----------------------------------------------------


def test_setup_failure_is_a_502_and_leaves_nothing_open(server):
    before = len([e for e in server.manager.episodes() if e.running])
    response = server.control.http.post("/v1/episodes", json={"task_id": "test.setup-raises"})
    assert response.status_code == 502
    assert response.json()["error"] == "episode_setup_failed" and "setup bug" in response.json()["detail"]
    assert len([e for e in server.manager.episodes() if e.running]) == before


def test_difficulty_must_be_one_the_task_has(server, episodes):
    response = server.control.http.post("/v1/episodes", json={"task_id": "test.graded", "difficulty": "medium"})
    assert response.status_code == 422 and response.json()["error"] == "invalid_difficulty"
    assert "easy" in response.json()["detail"]
    tasks = {task["id"]: task for task in server.control.http.get("/v1/tasks").json()["tasks"]}
    assert tasks["test.graded"]["difficulties"] == ["easy", "hard"]
    created = open_episode(server, episodes, "test.graded", difficulty="hard")
    assert server.control.state(created["episode_id"])["constraints"]["difficulty"] == "hard"


def test_too_many_open_episodes_is_a_429(server, episodes):
    running = len([e for e in server.manager.episodes() if e.running])
    for _ in range(MAX_OPEN - running):
        open_episode(server, episodes, "miniwob.click-test")
    response = server.control.http.post("/v1/episodes", json={"task_id": "miniwob.click-test"})
    assert response.status_code == 429
    assert response.json()["error"] == "too_many_episodes" and response.headers["retry-after"]
    server.control.http.delete(f"/v1/episodes/{episodes.pop()}")
    open_episode(server, episodes, "miniwob.click-test")


def test_server_restart_when_the_server_died(server, episodes, tmp_path: Path):
    """A server that dies while an episode runs leaves it running in its book; the next server on
    that book shows it ended with server_restart, its last step terminal, closed by server_restart."""
    created = open_episode(server, episodes, "miniwob.click-test")
    server.act(created["agent_token"], "noop", {"wait_ms": 0})
    # What a killed server leaves on disk: its book as of the last commit, which is exactly what
    # SQLite's online backup copies.
    died = tmp_path / "died"
    died.mkdir()
    with contextlib.closing(sqlite3.connect(server.data_dir / "book.sqlite3")) as book, \
            contextlib.closing(sqlite3.connect(died / "book.sqlite3")) as copy:
        book.backup(copy)
    after = PrivateControlServer("after-restart", data_dir=died)
    try:
        trajectory = assert_ended(after, created["episode_id"], FailureReason.SERVER_RESTART)
        assert [step["tool"] for step in trajectory["steps"]] == ["noop"]
        assert after.control.state(created["episode_id"])["closed_by"] == "server_restart"
    finally:
        after.stop()


def test_every_reason_is_covered():
    tested = {
        name.removeprefix("test_") for name in globals() if name.startswith("test_")
    }
    covered = {
        FailureReason.NONE: "none_while_running",
        FailureReason.SUCCESS: "success",
        FailureReason.MAX_STEPS_EXCEEDED: "max_steps_exceeded",
        FailureReason.INVALID_ACTION: "invalid_action_ends_when_asked",
        FailureReason.BROWSERGYM_ACTION_ERROR: "browsergym_action_error_on_a_disabled_element",
        FailureReason.WRONG_TARGET: "wrong_target",
        FailureReason.WRONG_TEXT: "wrong_text",
        FailureReason.SUBMISSION_FAILED: "submission_failed",
        FailureReason.TASK_FAILED: "task_failed_when_leaving_the_task_page",
        FailureReason.ORACLE_BUDGET_EXCEEDED: "oracle_budget_exceeded",
        FailureReason.BROWSER_ERROR: "browser_error_when_chromium_dies",
        FailureReason.TASK_VALIDATION_FAILED: "task_validation_failed",
        FailureReason.REPEATED_ACTION_LOOP: "repeated_action_loop",
        FailureReason.TOO_MANY_INVALID_ACTIONS: "too_many_invalid_actions",
        FailureReason.CLIENT_STEP_CAP: "client_step_cap",
        FailureReason.LOW_PROGRESS_ABORT: "low_progress_abort",
        FailureReason.SERVER_RESTART: "server_restart_when_the_server_died",
    }
    assert set(covered) == set(FailureReason)
    assert set(covered.values()) <= tested


# Last in the module: it kills this server's only Chromium.
def test_browser_error_when_chromium_dies(server, episodes):
    created = open_episode(server, episodes, "miniwob.click-test")
    episode = server.manager.get(created["episode_id"])
    pid = server.loop.run(episode.worker.run(lambda worker: worker.browser_pid()))
    assert pid
    os.kill(pid, signal.SIGKILL)
    result = server.act(created["agent_token"], "noop", {"wait_ms": 0})
    assert result.observation.episode_over is True
    trajectory = assert_ended(server, created["episode_id"], FailureReason.BROWSER_ERROR)
    assert trajectory["steps"][-1]["error_kind"] == "browser"
    assert trajectory["steps"][-1]["reward"]["mistake_penalty"] == 0.0
    # The worker relaunches Chromium: the next episode works.
    fresh = open_episode(server, episodes, "miniwob.click-test")
    button = element(server.observe(fresh["agent_token"]), "button")
    server.act(fresh["agent_token"], "click", {"id": button.id})
    assert server.control.state(fresh["episode_id"])["failure_reason"] == "success"
