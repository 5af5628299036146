"""The agent door's surface: which tools exist and what they advertise.

Listed over a real streamable HTTP connection with the SDK's own client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from engine.agent_view import Observation
from engine.agent_view.actions import ACTION_NAMES
from mcp_server.tools import action_models
from safebrowse.client import agent_client

EXPECTED_TOOLS = {
    "observe", "click", "fill", "clear", "press", "select_option", "hover", "scroll", "drag_and_drop",
    "focus", "noop", "send_message", "tab_focus", "go_back", "ask_oracle",
}
FORBIDDEN_TOOL_WORDS = ("reset", "step", "state", "close", "reward", "evaluat", "goto", "navigat", "upload")
TRAINER_WORDS = ("reward", "success", "failure", "validator", "task_done", "task_message", "trainer")


@asynccontextmanager
async def agent(url: str, token: str, mode: str = "auto"):
    async with agent_client(url, token, mode=mode) as client:
        yield client


@pytest.fixture(scope="module")
def episode_token(live_server) -> Iterator[str]:
    episode = live_server.run(live_server.manager.create("miniwob.click-test", seed=11))
    yield episode.agent_token
    live_server.run(live_server.manager.close(episode.episode_id))


@pytest.fixture(scope="module")
def listed(live_server, episode_token) -> dict[str, Any]:
    async def list_tools():
        async with agent(live_server.mcp_url, episode_token) as client:
            return client.server_info, (await client.list_tools()).tools

    server_info, tools = asyncio.run(list_tools())
    return {"server_info": server_info, "tools": {tool.name: tool for tool in tools}}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_initialize_in_both_protocol_modes(live_server, episode_token, mode):
    async def connect():
        async with agent(live_server.mcp_url, episode_token, mode=mode) as client:
            return client.protocol_version, client.server_info.name, len((await client.list_tools()).tools)

    protocol_version, name, count = asyncio.run(connect())
    assert name == "safebrowse"
    assert protocol_version
    assert count == len(EXPECTED_TOOLS)


def test_tool_set_is_exactly_the_safe_actions(listed):
    names = set(listed["tools"])
    assert names == EXPECTED_TOOLS
    assert names == {"observe", *ACTION_NAMES}
    for name in names:
        assert not any(word in name for word in FORBIDDEN_TOOL_WORDS), name


def test_every_tool_refuses_unknown_arguments_and_has_a_description(listed):
    for name, tool in listed["tools"].items():
        schema = tool.input_schema
        assert schema["type"] == "object", name
        assert schema["additionalProperties"] is False, name
        assert "name" not in schema["properties"], name  # the engine's internal tag stays internal
        assert len(tool.description or "") > 40, name
        assert tool.title, name


def test_argument_schemas_are_the_engine_models(listed):
    """Bounds are not retyped: each tool's properties are its engine model's, minus the tag."""
    for name, model in action_models().items():
        engine_schema = model.model_json_schema()
        expected = {key: value for key, value in engine_schema["properties"].items() if key != "name"}
        advertised = listed["tools"][name].input_schema
        assert advertised["properties"] == expected, name
        assert set(advertised.get("required", [])) == set(engine_schema.get("required", [])), name
    fill = listed["tools"]["fill"].input_schema["properties"]
    assert fill["text"]["maxLength"] == 10_000
    assert fill["id"]["pattern"] == "^[0-9]{1,7}$"
    assert listed["tools"]["scroll"].input_schema["properties"]["delta_y"]["maximum"] == 5_000


def test_annotations(listed):
    for name, tool in listed["tools"].items():
        hints = tool.annotations
        assert hints is not None, name
        assert hints.open_world_hint is False, name
        assert hints.read_only_hint is (name == "observe"), name
    assert listed["tools"]["observe"].annotations.idempotent_hint is True


def test_output_schema_is_the_agent_observation(listed):
    observation_fields = set(Observation.model_fields)
    for name, tool in listed["tools"].items():
        if name == "ask_oracle":
            assert tool.output_schema is None  # a hint is plain text
            continue
        schema = tool.output_schema
        assert schema is not None, name
        assert set(schema["properties"]) == observation_fields, name
        assert schema["additionalProperties"] is False, name


def test_nothing_listed_speaks_of_rewards(listed):
    wire = json.dumps([
        tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in listed["tools"].values()
    ]).lower()
    for word in TRAINER_WORDS:
        assert word not in wire, word


def test_trainer_operations_cannot_be_called(live_server):
    episode = live_server.run(live_server.manager.create("miniwob.click-test", seed=12))

    async def try_them() -> list[tuple[bool, str]]:
        async with agent(live_server.mcp_url, episode.agent_token) as client:
            names = ("reset", "step", "state", "close", "reward", "evaluate", "goto", "navigate", "upload")
            return [(r.is_error, r.content[0].text) for r in [await client.call_tool(n, {}) for n in names]]

    try:
        outcomes = asyncio.run(try_them())
        assert all(is_error and text.startswith("Unknown tool") for is_error, text in outcomes), outcomes
        assert live_server.manager.state(episode.episode_id).step_index == 0
    finally:
        live_server.run(live_server.manager.close(episode.episode_id))
