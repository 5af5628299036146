"""The Python client and the rollout helper against the whole server: control API over
HTTP, agent actions over MCP (streamable HTTP, the SDK's own client)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from typing import Any

import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from pydantic import ValidationError

from engine.reward import RewardWeights
from safebrowse.client import (
    AsyncControlClient,
    ControlAPIError,
    ControlClient,
    EpisodeSpec,
    arollout,
    env_reward,
    rollout,
)

TRAINER_WORDS = ("reward", "success", "failure_reason", "task_done", "task_message", "validator")


@pytest.fixture(scope="module")
def control(live_server):
    with ControlClient(live_server.control_url, live_server.control_token) as client:
        yield client


# -- a scripted policy over what the agent sees ----------------------------------------------


def _find(observation: dict[str, Any], role: str, text: str | None = None, **attributes: str) -> dict | None:
    for element in observation["elements"]:
        if element["role"] != role or (text is not None and element["text"].strip().lower() != text.lower()):
            continue
        if all(element["attributes"].get(key) == value for key, value in attributes.items()):
            return element
    return None


def _fill_then_click(observation, fields: list[tuple[dict | None, str]], button: str):
    for field, text in fields:
        if field is not None and field["attributes"].get("value") not in (text, "********"):
            return "fill", {"id": field["id"], "text": text}
    target = _find(observation, "button", button)
    return ("click", {"id": target["id"]}) if target else None


def scripted(observation: dict[str, Any]):
    """Solves click-test, click-button, enter-text, login-user and focus-text from the observation."""
    goal = observation["goal"]
    quoted = re.findall(r'"([^"]*)"', goal)
    if goal == "Click the button.":
        button = _find(observation, "button")
        return ("click", {"id": button["id"]}) if button else None
    if goal.startswith("Click on the") and quoted:
        button = _find(observation, "button", quoted[0])
        return ("click", {"id": button["id"]}) if button else None
    if goal.startswith("Enter the username"):
        username, password = quoted[:2]
        return _fill_then_click(observation, [(_find(observation, "textbox", id="username"), username),
                                              (_find(observation, "textbox", id="password"), password)], "login")
    if goal.startswith("Enter") and quoted:
        return _fill_then_click(observation, [(_find(observation, "textbox"), quoted[0])], "submit")
    if goal.startswith("Focus into"):
        box = _find(observation, "textbox")
        return ("focus", {"id": box["id"]}) if box else None
    return None


FIVE_TASKS = ["miniwob.click-test", "miniwob.click-button", "miniwob.enter-text", "miniwob.login-user",
              "miniwob.focus-text"]


# -- the control client -------------------------------------------------------------------------


def test_sync_client_round_trip(live_server, control):
    assert control.health().status == "ok"
    assert "miniwob.click-test" in {task.id for task in control.tasks()}
    created = control.create_episode("miniwob.click-test", seed=3, max_steps=4,
                                     reward_weights={"step_penalty": 0.5})
    try:
        assert created.mcp_url == live_server.mcp_url and created.limits.max_steps == 4
        assert created.reward_weights == RewardWeights(step_penalty=0.5)
        live_server.run(live_server.manager.agent_session(created.agent_token).act("noop", {"wait_ms": 0}))
        state = control.state(created.episode_id)
        assert state.step_index == 1 and state.last_reward.step_penalty == -0.5
        assert created.episode_id in {e.episode_id for e in control.episodes(status="running")}
        assert control.trajectory(created.episode_id).steps[0].tool == "noop"
        ended = control.end(created.episode_id)
        assert ended.failure_reason.value == "client_step_cap" and ended.done
    finally:
        assert control.close(created.episode_id).status.value == "closed"
    assert "safebrowse_steps_total" in control.metrics()


def test_client_errors(live_server, control):
    with pytest.raises(ControlAPIError) as unknown:
        control.create_episode("miniwob.click-tst")
    assert (unknown.value.status, unknown.value.error) == (404, "unknown_task")
    assert "miniwob.click-test" in unknown.value.body["suggestions"]
    with pytest.raises(ControlAPIError) as missing:
        control.state("ep_missing")
    assert missing.value.status == 404
    with pytest.raises(ValidationError):  # refused before it reaches the network
        control.create_episode("miniwob.click-test", max_steps=0)
    with pytest.raises(ValidationError):
        control.create_episode("miniwob.click-test", turbo=True)
    with ControlClient(live_server.control_url, "wrong-token") as stranger:
        assert stranger.health().status == "ok"
        with pytest.raises(ControlAPIError) as refused:
            stranger.tasks()
        assert refused.value.status == 401


def test_async_client(live_server):
    async def scenario() -> None:
        async with AsyncControlClient(live_server.control_url, live_server.control_token) as client:
            assert len(await client.tasks()) >= 100
            created = await client.create_episode("miniwob.click-test")
            try:
                trajectory = await client.trajectory(created.episode_id, screenshots=True)
                assert base64.b64decode(trajectory.screenshot_png_base64).startswith(b"\x89PNG")
                assert (await client.state(created.episode_id)).status.value == "running"
                assert created.episode_id in {e.episode_id for e in await client.episodes()}
                assert (await client.end(created.episode_id)).failure_reason.value == "client_step_cap"
            finally:
                assert (await client.close(created.episode_id)).status.value == "closed"
            with pytest.raises(ControlAPIError):
                await client.close("ep_missing")
            assert "safebrowse_episodes_created_total" in await client.metrics()

    asyncio.run(scenario())


# -- whole episodes through the agent door --------------------------------------------------


def test_full_episode_through_mcp(live_server, control):
    created = control.create_episode("miniwob.enter-text", seed=21)
    seen: list[dict[str, Any]] = []

    async def agent() -> None:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {created.agent_token}"})
        async with http, Client(streamable_http_client(created.mcp_url, http_client=http)) as client:
            observation = (await client.call_tool("observe", {})).structured_content
            seen.append(observation)
            while not observation["episode_over"]:
                tool, arguments = scripted(observation)
                result = await client.call_tool(tool, arguments)
                assert not result.is_error, result.content
                observation = result.structured_content
                seen.append(observation)
            over = await client.call_tool("noop", {})
            assert over.is_error and over.structured_content is None

    try:
        asyncio.run(agent())
        state = control.state(created.episode_id)
        assert (state.success, state.failure_reason.value, state.step_index) == (True, "success", 2)
        trajectory = control.trajectory(created.episode_id)
        assert [step.tool for step in trajectory.steps] == ["fill", "click"]
        assert trajectory.steps[0].arguments["text"] in created.goal
        assert trajectory.cumulative_reward == pytest.approx(sum(s.reward.total for s in trajectory.steps))
        assert trajectory.cumulative_reward > 2.0
        for observation in seen:  # the agent saw no trainer data
            text = json.dumps(observation).lower()
            assert not any(word in text for word in TRAINER_WORDS)
    finally:
        control.close(created.episode_id)


def test_rollout_over_five_miniwob_tasks(live_server, control):
    specs = [EpisodeSpec(task_id, seed=100 + i) for i, task_id in enumerate(FIVE_TASKS)]
    batch = rollout(control, specs, scripted, concurrency=2, max_steps=10)
    assert [episode.task_id for episode in batch] == FIVE_TASKS
    for episode in batch:
        assert (episode.success, episode.failure_reason) == (True, "success"), episode.actions
        assert len(episode.step_rewards) == len(episode.actions) == len(episode.steps)
        assert episode.total_reward == pytest.approx(sum(episode.step_rewards)) and episode.total_reward > 2.0
        assert control.state(episode.episode_id).status.value == "closed"
    fields = batch.trl_fields()
    assert set(fields) == {"env_reward", "env_step_rewards", "env_success", "env_failure_reason",
                           "env_episode_id", "env_task_id"}
    assert all(len(values) == len(FIVE_TASKS) for values in fields.values())
    assert env_reward(completions=[None] * 5, **fields) == batch.rewards


def test_rollout_ends_episodes_the_policy_leaves(live_server, control):
    async def waiting(observation: dict[str, Any]):
        await asyncio.sleep(0)
        return "noop", {"wait_ms": observation["step_index"]}

    async def scenario():
        async with AsyncControlClient(live_server.control_url, live_server.control_token) as client:
            capped = await arollout(client, ["miniwob.click-test"], waiting, max_steps=3)
            quitting = await arollout(client, ["miniwob.click-test"], lambda observation: None, close=False)
            return capped, quitting

    capped, quitting = asyncio.run(scenario())
    assert (capped[0].failure_reason, len(capped[0].steps)) == ("client_step_cap", 3)
    assert capped[0].step_rewards == pytest.approx([-RewardWeights().step_penalty] * 3)
    assert (quitting[0].failure_reason, quitting[0].steps, quitting[0].total_reward) == ("client_step_cap", [], 0.0)
    assert control.state(quitting[0].episode_id).status.value == "ended"
    control.close(quitting[0].episode_id)
