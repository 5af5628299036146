"""What the agent can reach at all: the tools, their arguments, and nothing else.

Listed and called over streamable HTTP with the SDK's client and an agent token.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import MCPError

from support.agent import connect, play

# Words a tool name must not be made of: control of the episode, code, navigation, files.
FORBIDDEN_TOOL_WORDS = {"reset", "step", "state", "close", "end", "finish", "reward", "score", "evaluate", "eval",
                        "exec", "execute", "run", "script", "js", "javascript", "code", "shell", "goto", "navigate",
                        "url", "open", "new", "upload", "download", "file", "cookie", "cookies", "storage",
                        "header", "headers", "request", "fetch", "set", "inject", "debug"}
# Argument names that would take a URL, a path, a script or a selector.
FORBIDDEN_ARGUMENT_WORDS = ("url", "href", "uri", "link", "path", "file", "dir", "script", "code", "js",
                            "expression", "eval", "selector", "css", "xpath", "query", "command", "cmd",
                            "html", "origin", "host")
ELEMENT_ID_PATTERN = "^[0-9]{1,7}$"
# Every string argument that is not an element id is text the page receives as input (typed,
# chosen or pressed), never code or an address; each has a length bound.
FREE_TEXT_ARGUMENTS = {("fill", "text"), ("send_message", "text"), ("ask_oracle", "question"),
                       ("press", "key"), ("select_option", "options")}


def _strings(schema: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    """Every string schema inside `schema` (through arrays, unions and $refs)."""
    if "$ref" in schema:
        return _strings(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    found = [schema] if schema.get("type") == "string" else []
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            found += _strings(option, defs)
    if "items" in schema:
        found += _strings(schema["items"], defs)
    for inner in schema.get("properties", {}).values():
        found += _strings(inner, defs)
    return found


@pytest.fixture(scope="module")
def surface(sec) -> dict[str, Any]:
    episode = sec.control.create("custom.sec-forms")

    async def look() -> dict[str, Any]:
        async with connect(sec.mcp_url, episode["agent_token"]) as client:
            listing = await client.client.list_tools()
            refused: dict[str, str] = {}
            calls = {
                "resources": client.client.list_resources,
                "templates": client.client.list_resource_templates,
                "prompts": client.client.list_prompts,
                "read": lambda: client.client.read_resource("file:///etc/passwd"),
            }
            for surface_name, call in calls.items():
                try:
                    answer = await call()
                    refused[surface_name] = f"answered: {answer!r}"
                except MCPError as error:
                    refused[surface_name] = str(error)
            return {"tools": {tool.name: tool for tool in listing.tools}, "refused": refused,
                    "capabilities": client.client.server_capabilities}

    try:
        yield play(look())
    finally:
        sec.control.close(episode["episode_id"])


def test_no_tool_controls_the_episode_runs_code_or_navigates(surface):
    names = set(surface["tools"])
    assert len(names) == 15
    for name in names:
        assert not set(name.split("_")) & FORBIDDEN_TOOL_WORDS, name


def test_no_resources_templates_or_prompts_and_no_file_reads(surface):
    """The door serves tools and nothing else: the other surfaces are not methods at all."""
    for surface_name, outcome in surface["refused"].items():
        assert outcome == "Method not found", (surface_name, outcome)
    capabilities = surface["capabilities"]
    assert capabilities is not None and capabilities.tools is not None
    assert capabilities.resources is None and capabilities.prompts is None


def test_no_argument_takes_a_url_a_path_a_script_or_a_selector(surface):
    for name, tool in surface["tools"].items():
        schema = tool.input_schema
        defs = schema.get("$defs", {})
        assert schema["additionalProperties"] is False, name
        for argument, property_schema in schema["properties"].items():
            assert not any(word in argument.lower() for word in FORBIDDEN_ARGUMENT_WORDS), (name, argument)
            for string in _strings(property_schema, defs):
                if (name, argument) in FREE_TEXT_ARGUMENTS:
                    assert 0 < string["maxLength"] <= 10_000, (name, argument, string)
                    assert "format" not in string, (name, argument)  # no uri/path formats
                elif "enum" in string:
                    assert all(len(value) < 20 for value in string["enum"]), (name, argument)  # e.g. mouse buttons
                else:
                    # Every other string is an element id: digits only, so never a selector or URL.
                    assert string.get("pattern") == ELEMENT_ID_PATTERN, (name, argument, string)


EVERY_TOOL_WITH_AN_EXTRA_ARGUMENT = {
    "observe": {"url": "http://127.0.0.1:1/"},
    "click": {"id": "1", "selector": "#submit"},
    "fill": {"id": "1", "text": "x", "script": "alert(1)"},
    "clear": {"id": "1", "xpath": "//input"},
    "press": {"key": "Enter", "path": "/etc/passwd"},
    "select_option": {"id": "1", "options": ["one"], "css": "select"},
    "hover": {"id": "1", "expression": "1"},
    "scroll": {"delta_y": 10, "code": "window.scrollTo(0, 0)"},
    "drag_and_drop": {"from_id": "1", "to_id": "2", "file": "/tmp/x"},
    "focus": {"id": "1", "eval": "1"},
    "noop": {"wait_ms": 0, "episode_id": "ep_0000"},
    "send_message": {"text": "hi", "reward": 1},
    "tab_focus": {"index": 0, "href": "chrome://settings"},
    "go_back": {"goto": "http://127.0.0.1:1/"},
    "ask_oracle": {"question": "hint?", "answer": "yes"},
}


def test_unknown_arguments_are_refused_by_every_tool_and_counted(sec, episodes):
    episode = episodes("custom.sec-forms", max_invalid_actions=100)

    async def attempt() -> list[Any]:
        async with connect(sec.mcp_url, episode["agent_token"]) as client:
            return [await client.call(tool, arguments)
                    for tool, arguments in EVERY_TOOL_WITH_AN_EXTRA_ARGUMENT.items()]

    results = play(attempt())
    for (tool, arguments), result in zip(EVERY_TOOL_WITH_AN_EXTRA_ARGUMENT.items(), results):
        assert result.is_error, tool
        extra = next(key for key in arguments if key not in ("id", "text", "key", "options", "delta_y",
                                                              "from_id", "to_id", "wait_ms", "index", "question"))
        assert "Extra inputs are not permitted" in result.content[0].text and extra in result.content[0].text, tool
    trajectory = sec.control.trajectory(episode["episode_id"])
    # observe is not a step: the other fourteen are recorded as invalid steps, in order, with no effect.
    assert [step["tool"] for step in trajectory["steps"]] == list(EVERY_TOOL_WITH_AN_EXTRA_ARGUMENT)[1:]
    assert all(not step["valid"] and step["error_kind"] == "invalid" for step in trajectory["steps"])
    assert all(step["task_reward"] == 0 and not step["blocked"] for step in trajectory["steps"])
    state = sec.control.state(episode["episode_id"])
    assert state["status"] == "running" and state["success"] is False
    assert state["constraints"]["invalid_actions"] == 14
