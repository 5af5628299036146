"""Every tool the agent door offers, in one place.

One tool per agent-safe action of the engine, plus `observe`. The argument
schemas come from the pydantic action models in `engine.agent_view.actions`, which
stay the single source of truth for names, types and bounds.

The tools are served through the SDK's low-level `Server` with a list handler and
a call handler. The call handler does not validate arguments against the
advertised schema: a malformed call reaches the episode unchanged, the engine
parses it, records an invalid step and answers with a message the model can act
on. Had the door rejected the call first, a bad call would cost the agent
nothing and the trainer would never see it.

Each call acts through an `AgentPort` (`engine.agent_view.port`), and results
carry only agent-visible types. This module has no way to reach a reward, a
verdict or a trainer record: it never imports them.
"""

from __future__ import annotations

import base64
import copy
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, get_args

from mcp.server import Server, ServerRequestContext
from mcp.server.caching import CacheHint
from mcp.types import (
    CallToolRequestParams,
    CallToolResult,
    ContentBlock,
    ImageContent,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    Tool,
    ToolAnnotations,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.agent_view.actions import ACTION_NAMES, Action, describe_validation_error
from engine.agent_view.instructions import INSTRUCTIONS
from engine.agent_view.observation import Observation
from engine.agent_view.port import AgentPort, AgentStepResult, EpisodeOverError, StepNotRecordedError

logger = logging.getLogger(__name__)

SERVER_NAME = "safebrowse"


PortResolver = Callable[[ServerRequestContext[Any, Any]], AgentPort]
"""Finds the episode a tool call acts on: from the HTTP request's token, or the one stdio episode."""


class ObserveArguments(BaseModel):
    """Arguments of `observe`, the one tool that is not an engine action."""

    model_config = ConfigDict(extra="forbid")

    screenshot: bool = Field(default=False, description="Also return a PNG screenshot of the visible viewport.")


@dataclass(frozen=True)
class ToolText:
    title: str
    description: str


# What each tool is for, written for the model that calls it.
TOOL_TEXTS: dict[str, ToolText] = {
    "observe": ToolText(
        "Observe the page",
        "Read the current page without acting: the goal, URL, open tabs, focused element and every "
        "element with its id in [brackets]. Does not count as a step. Set screenshot=true to also get "
        "a PNG image of the viewport.",
    ),
    "click": ToolText(
        "Click an element",
        "Click the element with this id (from the latest observation). Use button='right' for a "
        "context menu and double=true for a double-click. Returns the new page.",
    ),
    "fill": ToolText(
        "Fill a text field",
        "Replace the whole content of a text input, textarea or contenteditable element with `text`. "
        "It does not press Enter or submit; click the submit button or press Enter afterwards. "
        "Returns the new page.",
    ),
    "clear": ToolText(
        "Clear a text field",
        "Empty a text input, textarea or contenteditable element. Returns the new page.",
    ),
    "press": ToolText(
        "Press a key",
        "Press one key or combo, such as 'Enter', 'Tab', 'ArrowDown', 'a' or 'Control+a', on the "
        "element with this id, or on the focused element when no id is given. Returns the new page.",
    ),
    "select_option": ToolText(
        "Choose in a dropdown",
        "Select one or more options of a <select> element by their visible labels or values. For "
        "custom dropdowns that are not <select>, click the option elements instead. Returns the new page.",
    ),
    "hover": ToolText(
        "Hover over an element",
        "Move the mouse over the element with this id, e.g. to open a menu or show a tooltip. "
        "Returns the new page.",
    ),
    "scroll": ToolText(
        "Scroll",
        "Scroll by delta_y pixels vertically (positive scrolls down) and delta_x horizontally "
        "(positive scrolls right), inside the element with this id or the page when no id is given. "
        "Use it to reach elements marked (offscreen). Returns the new page.",
    ),
    "drag_and_drop": ToolText(
        "Drag and drop",
        "Press the mouse on the element from_id, move it onto the element to_id and release. "
        "Returns the new page.",
    ),
    "focus": ToolText(
        "Focus an element",
        "Give keyboard focus to the element with this id without clicking it. Returns the new page.",
    ),
    "noop": ToolText(
        "Wait",
        "Do nothing for wait_ms milliseconds, letting the page finish an animation or update. "
        "Counts as a step. Returns the new page.",
    ),
    "send_message": ToolText(
        "Send a chat message",
        "Send a text message to the user in the task's chat, e.g. to give an answer the goal asks "
        "for. Returns the page.",
    ),
    "tab_focus": ToolText(
        "Switch tab",
        "Make the tab with this index (from the observation's tab list, starting at 0) the active "
        "one. Returns the new page.",
    ),
    "go_back": ToolText(
        "Go back",
        "Go back one page in the active tab's history, like the browser's back button. "
        "Returns the new page.",
    ),
    "ask_oracle": ToolText(
        "Ask for a hint",
        "Ask a question about the task and get a short hint back as text. Hints are limited per "
        "episode and each question counts as a step, so ask only when stuck.",
    ),
}

# Actions that only add to the page's state or move the view; the rest may overwrite or submit.
NON_DESTRUCTIVE = frozenset({"hover", "scroll", "focus", "noop", "send_message", "tab_focus", "ask_oracle"})


def action_models() -> dict[str, type[BaseModel]]:
    """Each engine action's pydantic model, by tool name, read off the `Action` union."""
    union = get_args(Action)[0]
    models = {model.model_fields["name"].default: model for model in get_args(union)}
    if set(models) != set(ACTION_NAMES):
        raise RuntimeError(f"engine actions {sorted(models)} disagree with ACTION_NAMES {sorted(ACTION_NAMES)}")
    return models


def input_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema a tool advertises: the model's own, minus the engine-internal `name` tag.

    Unknown arguments are refused (`additionalProperties: false`), as the engine models are
    declared with `extra="forbid"`.
    """
    schema = copy.deepcopy(model.model_json_schema())
    schema.pop("title", None)
    schema.pop("description", None)
    properties = schema.get("properties", {})
    properties.pop("name", None)
    required = [field for field in schema.get("required", []) if field != "name"]
    result: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        result["required"] = required
    result["additionalProperties"] = False
    if "$defs" in schema:
        result["$defs"] = schema["$defs"]
    return result


def annotations_for(name: str) -> ToolAnnotations:
    if name == "observe":
        return ToolAnnotations(
            title=TOOL_TEXTS[name].title, read_only_hint=True, destructive_hint=False,
            idempotent_hint=True, open_world_hint=False,
        )
    # Every action is a step: it spends the episode's budget, so none is idempotent.
    return ToolAnnotations(
        title=TOOL_TEXTS[name].title, read_only_hint=False, destructive_hint=name not in NON_DESTRUCTIVE,
        idempotent_hint=False, open_world_hint=False,
    )


# -- results ---------------------------------------------------------------------------


def observation_result(
    observation: Observation, text: str, is_error: bool = False, image: bytes | None = None
) -> CallToolResult:
    """The page as text (rendered by the engine with `page_text`) plus the same observation as
    structured content."""
    content: list[ContentBlock] = [TextContent(type="text", text=text)]
    if image is not None:
        content.append(ImageContent(type="image", data=base64.b64encode(image).decode("ascii"), mime_type="image/png"))
    return CallToolResult(
        content=content,
        structured_content=observation.model_dump(mode="json"),
        is_error=is_error,
    )


def error_result(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def episode_over_result(over: EpisodeOverError | None = None) -> CallToolResult:
    """Says the episode (or the whole evaluation, for a suite's port) is over, and nothing about why."""
    return error_result(str(over if over is not None else EpisodeOverError()))


def step_result(result: AgentStepResult) -> CallToolResult:
    return observation_result(result.observation, result.text, is_error=result.error is not None)


# -- handlers --------------------------------------------------------------------------

Handler = Callable[[AgentPort, dict[str, Any]], Awaitable[CallToolResult]]
"""One tool's behaviour: the episode's port and the arguments exactly as the agent sent them."""


async def observe(port: AgentPort, arguments: dict[str, Any]) -> CallToolResult:
    try:
        parsed = ObserveArguments.model_validate(arguments)
    except ValidationError as error:
        # observe is not a step, so there is no step to record; the call is refused.
        return error_result(describe_validation_error(error) + ". Call observe with {} or {\"screenshot\": true}.")
    screen = await port.observe(screenshot=parsed.screenshot)
    return observation_result(screen.observation, screen.text, image=screen.image_png)


def action_handler(name: str) -> Handler:
    async def act(port: AgentPort, arguments: dict[str, Any]) -> CallToolResult:
        return step_result(await port.act(name, arguments))

    return act


async def ask_oracle(port: AgentPort, arguments: dict[str, Any]) -> CallToolResult:
    # The engine parses the arguments: a malformed question is a recorded invalid step.
    reply = await port.consult_oracle(arguments)
    if reply.refused:
        return error_result(reply.answer)
    return CallToolResult(content=[TextContent(type="text", text=reply.answer)])


@dataclass(frozen=True)
class AgentTool:
    """A tool as listed (`tool`) and what a call of it does (`handler`)."""

    tool: Tool
    handler: Handler


def observation_schema() -> dict[str, Any]:
    """The structured content every page-returning tool answers with: an `Observation`.

    Written out flat for the clients that check every result against it (the SDK's client
    does, on each call): its two `$defs` are each used once, so they are put in place rather
    than resolved by reference for every element; "X or null" is a list of types rather than
    an `anyOf` of two schemas; pydantic's titles, which only repeat the field names, are left
    out. The instances it accepts are the same.
    """
    schema = Observation.model_json_schema(mode="serialization")
    return _flat(schema, schema.get("$defs", {}))


# Keywords whose value is one schema, a list of schemas, or a map of names to schemas.
_ONE_SCHEMA = ("items", "additionalProperties", "not")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")


def _flat(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$ref`s into `defs` replaced by the definitions, nullable unions as type
    lists, and no titles (see `observation_schema`)."""
    if "$ref" in schema:
        return _flat(defs[str(schema["$ref"]).rsplit("/", 1)[-1]], defs)
    flat: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("$defs", "title"):
            continue
        if key == "properties":
            flat[key] = {name: _flat(field, defs) for name, field in value.items()}
        elif key in _ONE_SCHEMA and isinstance(value, dict):
            flat[key] = _flat(value, defs)
        elif key in _SCHEMA_LISTS:
            flat[key] = [_flat(option, defs) for option in value]
        else:
            flat[key] = value
    return _nullable_as_type_list(flat)


def _nullable_as_type_list(schema: dict[str, Any]) -> dict[str, Any]:
    """`{"anyOf": [{"type": X}, {"type": "null"}], ...}` as `{"type": [X, "null"], ...}`."""
    options = schema.get("anyOf")
    if not isinstance(options, list) or len(options) != 2 or not all(set(o) == {"type"} for o in options):
        return schema
    types = [option["type"] for option in options]
    if "null" not in types or not all(isinstance(t, str) for t in types):
        return schema
    merged = {key: value for key, value in schema.items() if key != "anyOf"}
    merged["type"] = types
    return merged


def build_tools() -> dict[str, AgentTool]:
    """Every tool of the door, by name, in the order they are listed."""
    models = action_models()
    handlers: dict[str, tuple[Handler, dict[str, Any]]] = {"observe": (observe, input_schema(ObserveArguments))}
    for name in ACTION_NAMES:
        handlers[name] = (ask_oracle if name == "ask_oracle" else action_handler(name), input_schema(models[name]))
    missing = set(handlers) ^ set(TOOL_TEXTS)
    if missing:
        raise RuntimeError(f"tools without a description, or descriptions without a tool: {sorted(missing)}")
    output = observation_schema()
    return {
        name: AgentTool(
            tool=Tool(
                name=name,
                title=TOOL_TEXTS[name].title,
                description=TOOL_TEXTS[name].description,
                input_schema=schema,
                # A hint is plain text; every other tool answers with the page.
                output_schema=None if name == "ask_oracle" else output,
                annotations=annotations_for(name),
            ),
            handler=handler,
        )
        for name, (handler, schema) in handlers.items()
    }


LISTING_CACHE_HINT = CacheHint(ttl_ms=10 * 60 * 1000, scope="public")
"""How long a client may keep the tool listing (SEP-2549's `ttlMs`/`cacheScope` on `tools/list`),
and that every agent may share it: the listing is fixed for the server's life and the same for
every token. A trainer's process connects one agent per episode; with a shared response cache,
every agent after the first is served the listing (its output schemas included) without asking."""


def build_server(resolve: PortResolver, version: str, instructions: str = INSTRUCTIONS) -> Server[Any]:
    """An MCP server whose tools act on the episode `resolve` returns for each call; `instructions`
    are what the agent is told at initialize (the composition root picks them)."""
    tools = build_tools()
    listing = ListToolsResult(tools=[agent_tool.tool for agent_tool in tools.values()])

    def tool_input_schema(name: str) -> dict[str, Any] | None:
        """The SDK checks a call's `Mcp-Param-*` headers against the called tool's input schema;
        without this lookup it runs the whole `tools/list` handler (and dumps the listing) on every
        call with arguments to find it, about 2 ms of the event loop per step."""
        agent_tool = tools.get(name)
        return None if agent_tool is None else agent_tool.tool.input_schema

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None) -> ListToolsResult:
        return listing

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams) -> CallToolResult:
        agent_tool = tools.get(params.name)
        if agent_tool is None:
            return error_result(f"Unknown tool: {params.name[:100]}")
        port = resolve(ctx)
        try:
            return await agent_tool.handler(port, dict(params.arguments or {}))
        except EpisodeOverError as over:
            return episode_over_result(over)
        except StepNotRecordedError as not_recorded:  # the server's disk is full: try later, nothing else
            return error_result(str(not_recorded))
        except Exception:  # noqa: BLE001 - the agent gets a generic answer; the operator gets the trace
            logger.exception("tool %s failed", params.name)
            return error_result(f"The {params.name} tool failed inside the server; try again or observe the page.")

    return Server(
        SERVER_NAME,
        version=version,
        title="safebrowse",
        instructions=instructions,
        get_tool_input_schema=tool_input_schema,
        cache_hints={"tools/list": LISTING_CACHE_HINT},
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
