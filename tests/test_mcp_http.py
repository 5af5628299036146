"""The agent door over streamable HTTP, driven by the SDK's own client against the whole server.

A scripted agent solves MiniWoB++ tasks from what the tools return (the goal text
and the structured elements), and the engine's trainer-side state confirms it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from mcp import MCPError
from mcp.types import CallToolResult

from engine.agent_view import EpisodeOverError
from engine.manager import CreatedEpisode
from engine.records import EpisodeLimits

from support.agent import INITIALIZE, JSON_HEADERS, Agent, connect
from support.door import Door

TRAINER_WORDS = ("reward", "success", "failure", "validator", "task_done", "task_message", "terminated", "trainer")
EPISODE_OVER = str(EpisodeOverError())


# -- scripted solutions ------------------------------------------------------------------


def quoted(goal: str) -> list[str]:
    return re.findall(r'"([^"]*)"', goal)


async def solve_click_test(agent: Agent) -> None:
    assert agent.goal == "Click the button."
    await agent.act("click", {"id": agent.find("button")["id"]})


async def solve_click_button(agent: Agent) -> None:
    (label,) = quoted(agent.goal)
    await agent.act("click", {"id": agent.find("button", label)["id"]})


async def solve_enter_text(agent: Agent) -> None:
    (text,) = quoted(agent.goal)
    await agent.act("fill", {"id": agent.find("textbox")["id"], "text": text})
    await agent.act("click", {"id": agent.find("button", "Submit")["id"]})


async def solve_login_user(agent: Agent) -> None:
    username, password = quoted(agent.goal)
    await agent.act("fill", {"id": agent.find("textbox", id="username")["id"], "text": username})
    await agent.act("fill", {"id": agent.find("textbox", id="password")["id"], "text": password})
    await agent.act("click", {"id": agent.find("button", "Login")["id"]})


async def solve_click_checkboxes(agent: Agent) -> None:
    match = re.fullmatch(r"Select (.*) and click Submit\.", agent.goal)
    assert match, agent.goal
    wanted = [] if match.group(1) == "nothing" else [name.strip() for name in match.group(1).split(",")]
    for name in wanted:
        elements = agent.elements
        index = next(i for i, e in enumerate(elements) if e["role"] == "label" and e["text"].strip() == name)
        checkbox = next(e for e in elements[index:] if e["role"] == "checkbox")
        await agent.act("click", {"id": checkbox["id"]})
        assert agent.find("checkbox", id=checkbox["attributes"]["id"])["attributes"]["checked"] == "true"
    await agent.act("click", {"id": agent.find("button", "Submit")["id"]})


SOLVERS: dict[str, Callable[[Agent], Awaitable[None]]] = {
    "miniwob.click-test": solve_click_test,
    "miniwob.click-button": solve_click_button,
    "miniwob.enter-text": solve_enter_text,
    "miniwob.login-user": solve_login_user,
    "miniwob.click-checkboxes": solve_click_checkboxes,
}


def assert_no_trainer_data(transcript: list[dict[str, Any]]) -> None:
    wire = json.dumps(transcript).lower()
    for word in TRAINER_WORDS:
        assert word not in wire, f"{word!r} reached the agent"


@pytest.fixture
def episodes(live_server) -> Iterator[Callable[..., CreatedEpisode]]:
    """Creates episodes on the shared server and closes them after the test."""
    created: list[CreatedEpisode] = []

    def create(task_id: str, seed: int, limits: EpisodeLimits | None = None) -> CreatedEpisode:
        episode = live_server.run(live_server.manager.create(task_id, seed=seed, limits=limits))
        created.append(episode)
        return episode

    yield create
    for episode in created:
        live_server.run(live_server.manager.close(episode.episode_id))


# -- solving tasks --------------------------------------------------------------------------


@pytest.mark.parametrize("task_id", list(SOLVERS))
def test_scripted_agent_solves_task_from_observations(live_server, episodes, task_id):
    episode = episodes(task_id, seed=7)

    async def play() -> Agent:
        async with connect(live_server.mcp_url, episode.agent_token) as agent:
            first = await agent.act("observe", {})
            assert first.content[0].text.startswith(f"Goal: {agent.goal}")
            assert agent.page["step_index"] == 0 and not agent.page["episode_over"]
            await SOLVERS[task_id](agent)
            assert agent.page["episode_over"] is True
            after = await agent.call("observe", {})
            assert after.is_error and after.content[0].text == EPISODE_OVER
            return agent

    agent = asyncio.run(play())
    state = live_server.manager.state(episode.episode_id)
    assert state.success is True
    assert state.invalid_actions == 0
    assert state.step_index == len(agent.transcript) - 2  # every call but the two observes was a step
    assert_no_trainer_data(agent.transcript)


def test_observe_returns_a_png_screenshot_on_request(live_server, episodes):
    episode = episodes("miniwob.click-test", seed=3)

    async def look() -> CallToolResult:
        async with connect(live_server.mcp_url, episode.agent_token) as agent:
            return await agent.act("observe", {"screenshot": True})

    result = asyncio.run(look())
    kinds = [block.type for block in result.content]
    assert kinds == ["text", "image"]
    assert result.content[1].mime_type == "image/png"
    assert base64.b64decode(result.content[1].data).startswith(b"\x89PNG\r\n\x1a\n")
    assert live_server.manager.state(episode.episode_id).step_index == 0  # observing is not a step


def test_each_call_returns_the_new_observation_as_text_and_structure(live_server, episodes):
    episode = episodes("miniwob.enter-text", seed=4)

    async def type_text() -> CallToolResult:
        async with connect(live_server.mcp_url, episode.agent_token, mode="legacy") as agent:
            await agent.act("observe", {})
            return await agent.act("fill", {"id": agent.find("textbox")["id"], "text": "hello there"})

    result = asyncio.run(type_text())
    page = result.structured_content
    assert page["step_index"] == 1 and page["steps_left"] == 49
    assert any(e["role"] == "textbox" and e["attributes"].get("value") == "hello there" for e in page["elements"])
    assert "value='hello there'" in result.content[0].text
    assert result.content[0].text.startswith("Goal: ")


# -- invalid input --------------------------------------------------------------------------


def test_invalid_calls_are_tool_errors_and_count_as_invalid_steps(live_server, episodes):
    episode = episodes("miniwob.search-engine", seed=3, limits=EpisodeLimits(max_invalid_actions=100))
    invalid_calls = [
        ("click", {"id": "9999"}, "Call observe for fresh element ids"),
        ("click", {"id": "7", "force": True}, "Extra inputs are not permitted"),
        ("click", {"id": True}, "valid string"),  # integer ids are taken as their digits; booleans are not
        ("click", {"id": "#search"}, "pattern"),
        ("fill", {"id": "6", "text": "x" * 10_001}, "10000"),
        ("press", {"key": "Hyper+a"}, "not allowed"),
        ("press", {"key": "F13"}, "not allowed"),
        ("scroll", {"delta_y": 99_999}, "less than or equal to 5000"),
        ("select_option", {"id": "6"}, "options"),
        ("ask_oracle", {"question": "what now?", "urgent": True}, "Extra inputs are not permitted"),
    ]

    async def misbehave() -> tuple[Agent, list[CallToolResult], CallToolResult, CallToolResult]:
        async with connect(live_server.mcp_url, episode.agent_token) as agent:
            await agent.act("observe", {})
            results = [await agent.call(tool, arguments) for tool, arguments, _ in invalid_calls]
            # A stale id: a result link of the first page, clicked after moving to page two.
            (query,) = quoted(agent.goal)[:1]
            await agent.act("fill", {"id": agent.find("textbox")["id"], "text": query})
            await agent.act("click", {"id": agent.find("button", "Search")["id"]})
            stale_id = next(e["id"] for e in agent.elements if e["role"] == "link")
            await agent.act("click", {"id": agent.find("link", "2")["id"]})
            stale = await agent.call("click", {"id": stale_id})
            refused_observe = await agent.call("observe", {"screenshot": True, "full_page": True})
            return agent, results, stale, refused_observe

    agent, results, stale, refused_observe = asyncio.run(misbehave())
    for (tool, arguments, hint), result in zip(invalid_calls, results):
        text = result.content[0].text
        assert result.is_error, (tool, arguments)
        assert hint in text, (tool, text)
        if tool != "ask_oracle":
            assert "\nGoal: " in text and result.structured_content["last_action_error"]  # the page comes along
    assert stale.is_error and "is not on the current page" in stale.content[0].text
    assert refused_observe.is_error and "full_page" in refused_observe.content[0].text

    records = live_server.manager.trajectory(episode.episode_id)
    invalid = [record for record in records if not record.valid]
    assert [r.tool for r in invalid] == [tool for tool, _, _ in invalid_calls] + ["click"]
    assert [r.arguments for r in invalid][:4] == [arguments for _, arguments, _ in invalid_calls[:4]]
    assert all(r.error for r in invalid)
    state = live_server.manager.state(episode.episode_id)
    assert state.invalid_actions == len(invalid_calls) + 1
    assert state.step_index == len(records) == len(invalid_calls) + 4  # observe is never a step
    assert_no_trainer_data(agent.transcript)


def test_once_the_episode_is_over_every_tool_says_so_without_why(live_server, episodes):
    episode = episodes("miniwob.click-test-2", seed=5)
    calls = {
        "observe": {}, "click": {"id": "5"}, "fill": {"id": "5", "text": "a"}, "clear": {"id": "5"},
        "press": {"key": "Enter"}, "select_option": {"id": "5", "options": ["a"]}, "hover": {"id": "5"},
        "scroll": {"delta_y": 100}, "drag_and_drop": {"from_id": "5", "to_id": "6"}, "focus": {"id": "5"},
        "noop": {}, "send_message": {"text": "done"}, "tab_focus": {"index": 0}, "go_back": {},
        "ask_oracle": {"question": "why?"},
    }

    async def play_on() -> Agent:
        async with connect(live_server.mcp_url, episode.agent_token) as agent:
            await agent.act("observe", {})
            wrong = next(e for e in agent.elements if e["role"] == "button" and e["text"] not in agent.goal)
            last = await agent.act("click", {"id": wrong["id"]})  # the wrong button ends this task
            assert last.structured_content["episode_over"] is True
            for tool, arguments in calls.items():
                result = await agent.call(tool, arguments)
                assert result.is_error, tool
                assert [block.text for block in result.content] == [EPISODE_OVER], tool
                assert result.structured_content is None, tool
            return agent

    agent = asyncio.run(play_on())
    state = live_server.manager.state(episode.episode_id)
    assert state.done and not state.success
    assert state.step_index == 1  # calls after the end are refused, not recorded
    assert_no_trainer_data(agent.transcript)


# -- who may open which episode ----------------------------------------------------------


def _post(live_server, token: str | None, path: str = "/mcp", **headers: str) -> httpx.Response:
    base = live_server.mcp_url.removesuffix("/mcp")
    auth = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(base + path, json=INITIALIZE, headers={**JSON_HEADERS, **auth, **headers}, timeout=30)


def test_requests_without_a_valid_token_are_refused(live_server, episodes):
    episode = episodes("miniwob.click-test", seed=1)
    for response in (
        _post(live_server, None),
        _post(live_server, "not-a-token"),
        _post(live_server, episode.agent_token[:-1]),
        _post(live_server, None, Authorization=f"Basic {episode.agent_token}"),
        _post(live_server, None, Authorization="Bearer"),
    ):
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert "Bearer" in response.json()["detail"]
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert _post(live_server, episode.agent_token).status_code == 200

    async def sdk_client_with_a_wrong_token():
        async with connect(live_server.mcp_url, "wrong-token") as agent:
            await agent.call("observe", {})

    # The SDK reports the door's refusal as an MCPError, inside its task groups.
    with pytest.RaisesGroup(MCPError, allow_unwrapped=True, flatten_subgroups=True):
        asyncio.run(sdk_client_with_a_wrong_token())


def test_a_token_opens_its_own_episode_only(live_server, episodes):
    first = episodes("miniwob.click-test", seed=1)
    second = episodes("miniwob.enter-text", seed=1)

    async def both() -> tuple[str, str]:
        async with connect(live_server.mcp_url, first.agent_token) as one, \
                connect(live_server.mcp_url, second.agent_token) as two:
            await one.act("observe", {})
            await two.act("observe", {})
            await two.act("fill", {"id": two.find("textbox")["id"], "text": "only mine"})
            return one.goal, two.goal

    goal_one, goal_two = asyncio.run(both())
    assert goal_one == first.goal and goal_two == second.goal
    assert live_server.manager.state(first.episode_id).step_index == 0
    assert live_server.manager.state(second.episode_id).step_index == 1


def test_a_closed_episode_token_is_refused(live_server, episodes):
    episode = episodes("miniwob.click-test", seed=2)
    assert _post(live_server, episode.agent_token).status_code == 200
    live_server.run(live_server.manager.close(episode.episode_id))
    assert _post(live_server, episode.agent_token).status_code == 401


def test_the_public_port_serves_nothing_but_mcp(live_server, episodes):
    token = episodes("miniwob.click-test", seed=2).agent_token
    base = live_server.mcp_url.removesuffix("/mcp")
    headers = {"Authorization": f"Bearer {token}"}
    for path in ("/", "/mcp/", "/mcp/x", "/v1/episodes", "/docs", "/openapi.json", "/health"):
        assert httpx.get(base + path, headers=headers, timeout=30).status_code == 404, path
        assert httpx.get(base + path, timeout=30).status_code == 404, path


def test_loopback_host_headers_only(live_server, episodes):
    token = episodes("miniwob.click-test", seed=2).agent_token
    port = live_server.mcp_url.rsplit(":", 1)[1].split("/")[0]
    assert _post(live_server, token, Host=f"localhost:{port}").status_code == 200
    assert _post(live_server, token, Host="localhost").status_code == 200
    assert _post(live_server, token, Host=f"evil.example:{port}").status_code == 421
    assert _post(live_server, token, Origin="http://evil.example").status_code == 403
    assert _post(live_server, token, Origin=f"http://localhost:{port}").status_code == 200


def test_a_wildcard_bind_accepts_any_host_but_still_wants_the_token(live_server, episodes):
    """Built for `--host 0.0.0.0` (a container), the door checks tokens, not Host names."""
    token = episodes("miniwob.click-test", seed=2).agent_token
    door = Door(live_server, host="0.0.0.0")
    try:

        def post(**headers: str) -> int:
            return httpx.post(door.url, json=INITIALIZE, headers={**JSON_HEADERS, **headers}, timeout=30).status_code

        assert post(Authorization=f"Bearer {token}", Host="safebrowse.internal:8000") == 200
        assert post(Authorization=f"Bearer {token}", Host="10.1.2.3") == 200
        assert post(Host="safebrowse.internal:8000") == 401
    finally:
        door.stop()


def test_trainer_creates_agent_solves_trainer_reads_the_outcome(live_server):
    """The whole loop through both doors: POST /v1/episodes, MCP tools, GET and DELETE the episode."""
    control = httpx.Client(base_url=live_server.control_url, headers=live_server.control_headers, timeout=60)
    with control:
        created = control.post("/v1/episodes", json={"task_id": "miniwob.enter-text", "seed": 21})
        assert created.status_code == 201, created.text
        episode = created.json()
        assert episode["mcp_url"] == live_server.mcp_url

        async def play() -> Agent:
            async with connect(episode["mcp_url"], episode["agent_token"]) as agent:
                await agent.act("observe", {})
                await solve_enter_text(agent)
                return agent

        agent = asyncio.run(play())
        assert_no_trainer_data(agent.transcript)
        state = control.get(f"/v1/episodes/{episode['episode_id']}").json()
        assert state["success"] is True and state["done"] is True
        assert control.delete(f"/v1/episodes/{episode['episode_id']}").status_code == 200
    assert _post(live_server, episode["agent_token"]).status_code == 401
