"""The Python clients and the rollout helper against the whole server: control API over
HTTP, agent actions over MCP (streamable HTTP, the SDK's own client).

Both control clients are checked against the route table: every operation of
`control_api.routes.OPERATIONS` has a method of its name on each, and the live tests
below must reach every operation through each client, so a new route fails here until
both clients have it.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import re
import time
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from control_api.openapi import Operation
from control_api.routes import OPERATIONS
from engine.reward import RewardWeights
from safebrowse.client import (
    AgentSeat,
    AsyncControlClient,
    ControlAPIError,
    ControlClient,
    EpisodeSpec,
    agent_client,
    arollout,
    rollout,
)
from safebrowse.client import _operations as operations

TRAINER_WORDS = ("reward", "success", "failure_reason", "task_done", "task_message", "validator")
PNG = b"\x89PNG"


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


# -- every operation, on both clients -------------------------------------------------------

EXAMPLE_ARGUMENTS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "health": ((), {}),
    "openapi": ((), {}),
    "list_tasks": ((), {}),
    "create_episode": (("miniwob.click-test",), {"seed": 1, "max_steps": 3}),
    "list_episodes": ((), {"status": "running"}),
    "get_episode": (("ep_1",), {}),
    "get_trajectory": (("ep_1",), {"screenshots": True}),
    "get_step_screenshot": (("ep_1", 2), {}),
    "end_episode": (("ep_1",), {}),
    "close_episode": (("ep_1",), {}),
    "export_episodes": ((), {"task_id": "miniwob.click-test", "success": False, "since": 1.5}),
    "get_curriculum": ((), {}),
    "create_suite": (("smoke",), {"episodes": 2, "seed": 5}),
    "get_suite": (("su_1",), {}),
    "metrics": ((), {}),
}
"""Arguments to build each operation's call with; a new operation needs an entry here."""


def _route(operation: Operation) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\{[a-z_]+\\}", "[^/]+", re.escape(operation.path)) + "$")


def _operation_of(method: str, path: str) -> str:
    (operation_id,) = [op.operation_id for op in OPERATIONS if op.method == method and _route(op).match(path)]
    return operation_id


class RecordingTransport(httpx.HTTPTransport):
    """Sends for real, and remembers which operation each request was."""

    def __init__(self) -> None:
        super().__init__()
        self.operations: set[str] = set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.operations.add(_operation_of(request.method, request.url.path))
        return super().handle_request(request)


class AsyncRecordingTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.operations: set[str] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.operations.add(_operation_of(request.method, request.url.path))
        return await super().handle_async_request(request)


ALL_OPERATIONS = {operation.operation_id for operation in OPERATIONS}


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.operation_id)
def test_every_operation_has_a_method_of_its_name_on_both_clients(operation: Operation) -> None:
    name = operation.operation_id
    sync_method = getattr(ControlClient, name, None)
    async_method = getattr(AsyncControlClient, name, None)
    assert callable(sync_method) and not inspect.iscoroutinefunction(sync_method), f"ControlClient.{name}"
    assert inspect.iscoroutinefunction(async_method), f"AsyncControlClient.{name}"
    assert inspect.signature(sync_method) == inspect.signature(async_method), name


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.operation_id)
def test_each_call_is_built_for_its_route(operation: Operation) -> None:
    name = operation.operation_id
    assert name in EXAMPLE_ARGUMENTS, f"add example arguments for the new operation {name}"
    args, kwargs = EXAMPLE_ARGUMENTS[name]
    call = getattr(operations, name)(*args, **kwargs)
    assert (call.operation_id, call.method) == (name, operation.method)
    assert _operation_of(call.method, call.path) == name, call.path


def test_calls_carry_validated_bodies_and_queries() -> None:
    created = operations.create_episode("miniwob.click-test", seed=1, reward_weights={"step_penalty": 0.5},
                                        record_screenshots=True)
    assert created.json == {"task_id": "miniwob.click-test", "seed": 1, "reward_weights": {
        **RewardWeights().model_dump(mode="json"), "step_penalty": 0.5}, "record_screenshots": True,
        "record_observations": False}
    assert operations.get_trajectory("ep_1").params is None
    assert operations.get_trajectory("ep_1", observations=True).params == {"observations": True}
    assert operations.list_episodes().params is None and operations.list_episodes("ended").params == {
        "status": "ended"}
    assert operations.end_episode("ep_1").json == {"reason": "client_step_cap"}
    with pytest.raises(ValidationError):
        operations.list_episodes("sleeping")
    with pytest.raises(ValueError, match="step index"):
        operations.get_step_screenshot("ep_1", -1)
    # An id is one path segment: it cannot climb to another route.
    assert operations.get_episode("../tasks").path == "/v1/episodes/..%2Ftasks"


def test_clients_keep_the_token_out_of_their_repr() -> None:
    with ControlClient("http://127.0.0.1:9", "ctl_secret") as client:
        assert "ctl_secret" not in repr(client) and client.headers == {"Authorization": "Bearer ctl_secret"}


def test_sync_client_reaches_every_operation(live_server) -> None:
    transport = RecordingTransport()
    with ControlClient(live_server.control_url, live_server.control_token, transport=transport) as control:
        assert control.health().status == "ok"
        document = control.openapi()
        assert document["openapi"].startswith("3.1")
        operation_ids = {op["operationId"] for path in document["paths"].values() for op in path.values()}
        assert operation_ids == ALL_OPERATIONS
        assert "miniwob.click-test" in {task.id for task in control.list_tasks().tasks}
        created = control.create_episode("miniwob.click-test", seed=3, max_steps=4,
                                         reward_weights={"step_penalty": 0.5}, record_screenshots=True)
        try:
            assert created.mcp_url == live_server.mcp_url and created.limits.max_steps == 4
            assert created.reward_weights == RewardWeights(step_penalty=0.5)
            live_server.run(live_server.manager.agent_session(created.agent_token).act("noop", {"wait_ms": 0}))
            state = control.get_episode(created.episode_id)
            assert state.step_index == 1 and state.last_reward.step_penalty == -0.5
            running = control.list_episodes(status="running").episodes
            assert created.episode_id in {summary.episode_id for summary in running}
            trajectory = control.get_trajectory(created.episode_id, observations=True)
            assert trajectory.steps[0].tool == "noop" and trajectory.start_observation_text
            assert control.get_step_screenshot(created.episode_id, 0).startswith(PNG)
            with pytest.raises(ControlAPIError) as missing_step:
                control.get_step_screenshot(created.episode_id, 9)
            assert (missing_step.value.status, missing_step.value.error) == (404, "step_not_found")
            ended = control.end_episode(created.episode_id)
            assert ended.failure_reason.value == "client_step_cap" and ended.done
        finally:
            assert control.close_episode(created.episode_id).status.value == "closed"
        exported = control.export_episodes(task_id="miniwob.click-test", success=False)
        row = next(row for row in exported if row["episode_id"] == created.episode_id)
        assert row["failure_reason"] == "client_step_cap" and row["rewards"][0]["step_penalty"] == -0.5
        assert control.get_curriculum().policy.window >= 1
        assert "safebrowse_steps_total" in control.metrics()
        suite = control.create_suite("miniwob.click-test", episodes=1, seed=7)
        assert suite.mcp_url == live_server.mcp_url and suite.planned_episodes == 1
        report = control.get_suite(suite.suite_id)
        assert (report.suite_id, report.complete, len(report.episodes)) == (suite.suite_id, False, 1)
        live_server.run(live_server.server.suites.get(suite.suite_id).stop("shutdown"))  # its episode closed
    assert transport.operations == ALL_OPERATIONS


def test_async_client_reaches_every_operation(live_server) -> None:
    transport = AsyncRecordingTransport()

    async def scenario() -> None:
        async with AsyncControlClient(live_server.control_url, live_server.control_token,
                                      transport=transport) as client:
            assert (await client.health()).status == "ok"
            assert set((await client.openapi())["paths"]) == {op.path for op in OPERATIONS}
            assert len((await client.list_tasks()).tasks) >= 100
            created_after = time.time()
            created = await client.create_episode("miniwob.click-test", record_screenshots=True)
            try:
                trajectory = await client.get_trajectory(created.episode_id, screenshots=True)
                assert base64.b64decode(trajectory.screenshot_png_base64).startswith(PNG)
                assert (await client.get_step_screenshot(created.episode_id, 0)).startswith(PNG)
                assert (await client.get_episode(created.episode_id)).status.value == "running"
                assert created.episode_id in {e.episode_id for e in (await client.list_episodes()).episodes}
                ended = await client.end_episode(created.episode_id)
                assert ended.failure_reason.value == "client_step_cap"
            finally:
                assert (await client.close_episode(created.episode_id)).status.value == "closed"
            exported = await client.export_episodes(since=created_after)
            assert created.episode_id in {row["episode_id"] for row in exported}
            with pytest.raises(ControlAPIError) as missing:
                await client.close_episode("ep_missing")
            assert (missing.value.status, missing.value.error) == (404, "episode_not_found")
            assert isinstance((await client.get_curriculum()).tasks, list)
            assert "safebrowse_episodes_created_total" in await client.metrics()
            with pytest.raises(ControlAPIError) as unknown_suite:
                await client.create_suite("miniwob.no-such-task")
            assert (unknown_suite.value.status, unknown_suite.value.error) == (404, "unknown_task")
            with pytest.raises(ControlAPIError) as missing_suite:
                await client.get_suite("su_missing")
            assert (missing_suite.value.status, missing_suite.value.error) == (404, "suite_not_found")

    asyncio.run(scenario())
    assert transport.operations == ALL_OPERATIONS


def test_client_errors(live_server, control):
    with pytest.raises(ControlAPIError) as unknown:
        control.create_episode("miniwob.click-tst")
    assert (unknown.value.status, unknown.value.error) == (404, "unknown_task")
    assert "miniwob.click-test" in unknown.value.body["suggestions"]
    with pytest.raises(ControlAPIError) as missing:
        control.get_episode("ep_missing")
    assert missing.value.status == 404
    with pytest.raises(ControlAPIError) as climbing:
        control.get_episode("../tasks")
    assert climbing.value.status == 404
    with pytest.raises(ValidationError):  # refused before it reaches the network
        control.create_episode("miniwob.click-test", max_steps=0)
    with pytest.raises(ValidationError):
        control.create_episode("miniwob.click-test", turbo=True)
    with ControlClient(live_server.control_url, "wrong-token") as stranger:
        assert stranger.health().status == "ok"
        with pytest.raises(ControlAPIError) as refused:
            stranger.list_tasks()
        assert refused.value.status == 401


# -- whole episodes through the agent door --------------------------------------------------


def test_full_episode_through_mcp(live_server, control):
    created = control.create_episode("miniwob.enter-text", seed=21)
    seen: list[dict[str, Any]] = []

    async def agent() -> None:
        async with agent_client(created.mcp_url, created.agent_token) as client:
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
        state = control.get_episode(created.episode_id)
        assert (state.success, state.failure_reason.value, state.step_index) == (True, "success", 2)
        trajectory = control.get_trajectory(created.episode_id)
        assert [step.tool for step in trajectory.steps] == ["fill", "click"]
        assert trajectory.steps[0].arguments["text"] in created.goal
        assert trajectory.cumulative_reward == pytest.approx(sum(s.reward.total for s in trajectory.steps))
        assert trajectory.cumulative_reward > 2.0
        for observation in seen:  # the agent saw no trainer data
            text = json.dumps(observation).lower()
            assert not any(word in text for word in TRAINER_WORDS)
    finally:
        control.close_episode(created.episode_id)


def test_rollout_over_five_miniwob_tasks(live_server, control):
    specs = [EpisodeSpec(task_id, seed=100 + i) for i, task_id in enumerate(FIVE_TASKS)]
    batch = rollout(control, specs, scripted, concurrency=2, max_steps=10)
    assert [episode.task_id for episode in batch] == FIVE_TASKS
    for episode in batch:
        assert (episode.success, episode.failure_reason) == (True, "success"), episode.actions
        assert len(episode.step_rewards) == len(episode.actions) == len(episode.steps)
        assert episode.total_reward == pytest.approx(sum(episode.step_rewards)) and episode.total_reward > 2.0
        assert control.get_episode(episode.episode_id).status.value == "closed"
    assert batch.rewards == [episode.total_reward for episode in batch]


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
    assert control.get_episode(quitting[0].episode_id).status.value == "ended"
    control.close_episode(quitting[0].episode_id)


# -- the tool listing, shared by the agents of one process ---------------------------------------


def test_the_tool_listing_may_be_shared_for_ten_minutes(live_server, control):
    from mcp_server.tools import LISTING_CACHE_HINT

    created = control.create_episode("miniwob.click-test", seed=5)

    async def listing() -> Any:
        async with agent_client(created.mcp_url, created.agent_token, cache=None) as client:
            return await client.list_tools()

    try:
        result = asyncio.run(listing())
    finally:
        control.close_episode(created.episode_id)
    assert (result.ttl_ms, result.cache_scope) == (LISTING_CACHE_HINT.ttl_ms, "public") == (600_000, "public")
    assert {"observe", "fill", "click"} <= {tool.name for tool in result.tools}


def test_agents_of_one_process_list_the_tools_once_per_server(live_server, control, monkeypatch):
    """Each agent's first call is checked against the observation's output schema; the schema
    comes from the listing the first agent fetched, and the later agents adopt its probe answer,
    so the server is probed once and asked for the listing once, for three agents."""
    from mcp.client.session import ClientSession

    from safebrowse.client import _agent

    asked: list[str] = []
    original = ClientSession.list_tools
    original_probe = ClientSession.send_discover

    async def counted(self: ClientSession, *args: Any, **kwargs: Any) -> Any:
        asked.append("tools/list")
        return await original(self, *args, **kwargs)

    async def counted_probe(self: ClientSession, *args: Any, **kwargs: Any) -> Any:
        asked.append("server/discover")
        return await original_probe(self, *args, **kwargs)

    monkeypatch.setattr(ClientSession, "list_tools", counted)
    monkeypatch.setattr(ClientSession, "send_discover", counted_probe)
    episodes = [control.create_episode("miniwob.click-test", seed=30 + k) for k in range(3)]

    async def agents() -> list[dict[str, Any]]:
        await _agent.SHARED_RESPONSES.clear()  # earlier tests of this process may have filled them
        _agent._discovered.clear()
        seen = []
        for created in episodes:
            async with agent_client(created.mcp_url, created.agent_token) as client:
                result = await client.call_tool("observe", {})
                assert not result.is_error, result.content
                seen.append(result.structured_content)
        return seen

    async def agent_of_another_server(created: Any) -> None:
        # The cache was filled by this server; were the URL answered by another (restarted with
        # another version, say), the listing would be asked for again.
        _agent._servers_seen[created.mcp_url] = ("safebrowse", "another version")
        async with agent_client(created.mcp_url, created.agent_token) as client:
            assert not (await client.call_tool("observe", {})).is_error

    async def agent_after_a_while(created: Any) -> None:
        # The probe answer is adopted for DISCOVERY_REUSE_S only; after that the server is asked.
        at, version, result = _agent._discovered[created.mcp_url]
        _agent._discovered[created.mcp_url] = (at - _agent.DISCOVERY_REUSE_S - 1, version, result)
        async with agent_client(created.mcp_url, created.agent_token) as client:
            assert not (await client.call_tool("observe", {})).is_error

    try:
        seen = asyncio.run(agents())
        assert asked == ["server/discover", "tools/list"]
        asyncio.run(agent_after_a_while(episodes[1]))
        assert asked == ["server/discover", "tools/list", "server/discover"]
        asked.clear()
        asyncio.run(agent_of_another_server(episodes[0]))
        assert asked == ["tools/list"]
    finally:
        for created in episodes:
            control.close_episode(created.episode_id)
    assert [observation["goal"] for observation in seen] == [created.goal for created in episodes]


# -- one client for the episodes of one agent slot -------------------------------------------


def test_a_seat_plays_episode_after_episode_with_one_client(live_server, control, monkeypatch):
    """Three episodes through one seat, each taken from a task of its own: one client, the
    tools listed once, and each episode's calls acting on that episode alone (the first one
    stays open, and nothing the seat does after moving on reaches it)."""
    from mcp.client.session import ClientSession

    listed: list[str] = []
    original = ClientSession.list_tools

    async def counted(self: ClientSession, *args: Any, **kwargs: Any) -> Any:
        listed.append("tools/list")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(ClientSession, "list_tools", counted)
    episodes = [control.create_episode("miniwob.enter-text", seed=60 + k) for k in range(3)]

    async def play(seat: AgentSeat, created: Any) -> tuple[Any, dict[str, Any]]:
        client = await seat.take(created.mcp_url, created.agent_token)
        observation = (await client.call_tool("observe", {})).structured_content
        first = observation
        while not observation["episode_over"]:
            tool, arguments = scripted(observation)
            result = await client.call_tool(tool, arguments)
            assert not result.is_error, result.content
            observation = result.structured_content
        return client, first

    async def slot() -> list[tuple[Any, dict[str, Any]]]:
        async with AgentSeat() as seat:
            played = [await asyncio.create_task(play(seat, created)) for created in episodes]
            assert seat.connected
        assert not seat.connected
        return played

    try:
        played = asyncio.run(slot())
        assert len({id(client) for client, _ in played}) == 1
        assert listed == ["tools/list"]
        assert [first["goal"] for _, first in played] == [created.goal for created in episodes]
        for created in episodes:
            state = control.get_episode(created.episode_id)
            assert (state.success, state.step_index) == (True, 2)
            assert [step.tool for step in control.get_trajectory(created.episode_id).steps] == ["fill", "click"]
    finally:
        for created in episodes:
            control.close_episode(created.episode_id)


def test_a_seat_cannot_act_in_an_episode_closed_under_it(live_server, control):
    """The seat acts with the token of the episode it was last taken for; an episode closed
    under it is refused, and the same client then plays the next episode as usual. A closed
    seat connects a new client at its next take."""
    from mcp.shared.exceptions import MCPError

    first, second = (control.create_episode("miniwob.click-test", seed=70 + k) for k in range(2))

    async def slot() -> None:
        async with AgentSeat() as seat:
            client = await seat.take(first.mcp_url, first.agent_token)
            assert not (await client.call_tool("observe", {})).is_error
            control.close_episode(first.episode_id)
            with pytest.raises(MCPError):  # the door refuses a closed episode's token
                await client.call_tool("observe", {})
            assert seat.connected
            assert await seat.take(second.mcp_url, second.agent_token) is client
            observation = (await client.call_tool("observe", {})).structured_content
            assert observation is not None and observation["goal"] == second.goal
            await seat.aclose()
            assert not seat.connected
            again = await seat.take(second.mcp_url, second.agent_token)
            assert again is not client and seat.connected
            assert not (await again.call_tool("observe", {})).is_error

    try:
        asyncio.run(slot())
    finally:
        control.close_episode(second.episode_id)


def test_a_seat_keeps_no_response_cache() -> None:
    from mcp.client import CacheConfig

    with pytest.raises(ValueError, match="no response cache"):
        AgentSeat(cache=CacheConfig())


def test_a_rollout_plays_every_episode_to_its_end_before_raising_the_first_failure(live_server, control):
    """One spec names no task: the rollout raises the server's refusal once the other episodes,
    each on a seat of its own, have been played to the end and closed."""
    specs = [EpisodeSpec("miniwob.click-test", seed=80), EpisodeSpec("miniwob.no-such-task"),
             EpisodeSpec("miniwob.enter-text", seed=81)]
    before = {summary.episode_id for summary in control.list_episodes().episodes}
    with pytest.raises(ControlAPIError, match="unknown_task"):
        rollout(control, specs, scripted, concurrency=3, max_steps=10)
    played = [summary for summary in control.list_episodes().episodes if summary.episode_id not in before]
    assert sorted((summary.task_id, summary.status.value, summary.success) for summary in played) == [
        ("miniwob.click-test", "closed", True), ("miniwob.enter-text", "closed", True)]
