"""TRL's `environment_factory` over both doors: tools through the MCP door, rewards from the control API.

TRL trains agents in environments with `GRPOTrainer(environment_factory=...)`: it makes
one environment per generation with a no-argument constructor, calls `reset(**row)`
with each dataset row, exposes every public method as a tool (its schema from the
type hints and the docstring's `Args:`), feeds what a tool returns back to the model,
and hands the environments to the reward functions. That is this project's split:

- the model sees what an agent sees: `environment_factory(control_url, token)` returns a
  class whose tools are the MCP door's tools, same names and arguments, each one a real
  call through the episode's MCP door (`mcp_url`, agent token), answered with the text
  the agent would read;
- the reward is the server's: `env_reward` reads each episode's return from the control
  API. Nothing a tool returns carries a reward.

    from safebrowse.trl import env_reward, environment_factory

    trainer = GRPOTrainer(
        model=model,
        train_dataset=Dataset.from_list([{"prompt": prompt(), "task_id": "miniwob.click-test", "seed": 1}, ...]),
        environment_factory=environment_factory("http://127.0.0.1:8001", token, max_steps=10),
        reward_funcs=[env_reward],
        args=GRPOConfig(max_tool_calling_iterations=10, ...),
    )

A tool that the door answers with an error (the episode is over, an element that does
not exist) raises `ToolCallError`; TRL catches it and shows the model its message as
the tool's result, so the model is told the episode is over in the door's own words.

TRL has no hook for the end of training: `close_environments()` closes the episodes
of every environment still open (also run at interpreter exit).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import inspect
import io
import json
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import httpx
from mcp import Client
from mcp.types import CallToolResult, ImageContent, TextContent, Tool

from engine.agent_view.instructions import INSTRUCTIONS
from safebrowse.client import ControlAPIError, ControlClient, agent_client
from safebrowse.loop import BackgroundLoop

CALL_TIMEOUT_S = 120.0
CHANNELS = ("task_completion", "action_validity", "efficiency", "non_repetition", "help_independence",
            "trajectory_quality")
"""The rubric channels of a step's reward breakdown (each 0..1), for `channel_reward`."""


class ToolCallError(Exception):
    """The door answered a tool call with an error; its text is what the agent would read."""


class ResetError(RuntimeError):
    """`reset` could not start an episode: the row names no task the server has, or the server
    or the episode's door cannot be reached. The message says which."""


# -- one shared event loop for every environment's MCP connection ----------------------------------

_loop_lock = threading.Lock()
_shared_loop: BackgroundLoop | None = None


def _loop() -> BackgroundLoop:
    """The background loop every connection lives on (TRL calls tools from its own threads)."""
    global _shared_loop
    with _loop_lock:
        if _shared_loop is None:
            _shared_loop = BackgroundLoop("safebrowse-trl")
        return _shared_loop


class _Connection:
    """One agent's MCP session, held open on the shared loop by a task of its own (the SDK's
    client must be entered and left in one task); calls reach it through a queue."""

    def __init__(self, mcp_url: str, agent_token: str) -> None:
        self.mcp_url = mcp_url
        self.agent_token = agent_token
        self._queue: asyncio.Queue[tuple[str, dict[str, Any], asyncio.Future[CallToolResult]] | None] | None = None
        self._task: asyncio.Task[None] | None = None

    def open(self) -> None:
        _loop().run(self._open(), CALL_TIMEOUT_S)

    def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        return _loop().run(self._call(tool, arguments), CALL_TIMEOUT_S)

    def close(self) -> None:
        if self._task is not None:
            _loop().run(self._close(), CALL_TIMEOUT_S)

    async def _open(self) -> None:
        self._queue = asyncio.Queue()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._serve(ready))
        await ready

    async def _serve(self, ready: asyncio.Future[None]) -> None:
        assert self._queue is not None
        try:
            async with agent_client(self.mcp_url, self.agent_token) as client:
                ready.set_result(None)
                await self._answer(client, self._queue)
        except BaseException as error:
            if not ready.done():
                ready.set_exception(error if isinstance(error, Exception) else RuntimeError(str(error)))
            raise

    @staticmethod
    async def _answer(
        client: Client, queue: asyncio.Queue[tuple[str, dict[str, Any], asyncio.Future[CallToolResult]] | None]
    ) -> None:
        while (item := await queue.get()) is not None:
            tool, arguments, answer = item
            try:
                answer.set_result(await client.call_tool(tool, arguments))
            except Exception as error:  # noqa: BLE001 - handed to the caller
                answer.set_exception(error)

    async def _call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        if self._queue is None or self._task is None or self._task.done():
            raise ToolCallError("no episode: reset() first")
        answer: asyncio.Future[CallToolResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((tool, arguments, answer))
        return await answer

    async def _close(self) -> None:
        if self._queue is not None and self._task is not None and not self._task.done():
            await self._queue.put(None)
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None


# -- the environment -------------------------------------------------------------------------------

_open_environments: weakref.WeakSet[SafebrowseEnvironment] = weakref.WeakSet()


class SafebrowseEnvironment:
    """One agent in one episode at a time. Subclassed by `environment_factory`, which binds
    the server and adds one method per MCP tool; TRL makes instances with no arguments."""

    control_url: ClassVar[str]
    control_token: ClassVar[str]
    episode_options: ClassVar[dict[str, Any]] = {}
    images: ClassVar[bool] = False

    def __init__(self) -> None:
        self._control = ControlClient(self.control_url, self.control_token)
        self._connection: _Connection | None = None
        self.episode_id: str | None = None
        """The episode of the last `reset` (for reward functions and logging)."""
        self.task_id: str | None = None
        self.goal: str | None = None
        _open_environments.add(self)

    def reset(self, **row: Any) -> str:
        """Close the previous episode, create one from the row's `task_id` (required), `seed` and
        `difficulty`, connect to its MCP door and return the goal and the first page, as text
        appended to the row's prompt."""
        task_id = row.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise ValueError("each dataset row needs a task_id column naming a safebrowse task")
        self._end_episode()
        try:
            created = self._control.create_episode(task_id, seed=row.get("seed"), difficulty=row.get("difficulty"),
                                                   **self.episode_options)
        except ControlAPIError as error:
            raise ResetError(f"safebrowse refused the episode of row task_id={task_id!r}: {error}") from None
        except httpx.HTTPError as error:
            raise ResetError(f"the safebrowse control API at {self.control_url} cannot be reached: "
                             f"{type(error).__name__}: {error}") from None
        self.episode_id, self.task_id, self.goal = created.episode_id, created.task_id, created.goal
        self._connection = _Connection(created.mcp_url, created.agent_token)
        try:
            self._connection.open()
        except Exception as error:  # noqa: BLE001 - said in one line: the door cannot be reached
            self._connection = None
            raise ResetError(f"the MCP door {created.mcp_url} of episode {created.episode_id} cannot be reached: "
                             f"{type(error).__name__}: {error}") from None
        page = self._call("observe", {})
        text = page if isinstance(page, str) else "\n".join(
            block["text"] for block in page if block.get("type") == "text")
        return opening(created.goal, text)

    def _call(self, tool: str, arguments: dict[str, Any]) -> str | list[dict[str, Any]]:
        """Call a tool through the door; the agent's view of the answer, or `ToolCallError`."""
        if self._connection is None:
            raise ToolCallError("no episode: reset() first")
        try:
            result = self._connection.call(tool, {key: value for key, value in arguments.items() if value is not None})
        except ToolCallError:
            raise
        except Exception as error:  # noqa: BLE001 - the model gets TRL's usual tool error, with a reason
            raise ToolCallError(f"the {tool} call did not reach the episode ({type(error).__name__}); "
                                "the episode may be closed") from None
        text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
        if result.is_error:
            raise ToolCallError(text)
        images = [block for block in result.content if isinstance(block, ImageContent)]
        if not (self.images and images):
            return text
        return [*({"type": "image", "image": _pil_image(block)} for block in images), {"type": "text", "text": text}]

    def _end_episode(self) -> None:
        """Close this environment's episode, if any (its record stays on the server)."""
        connection, episode_id = self._connection, self.episode_id
        self._connection = None
        if connection is not None:
            connection.close()
        if episode_id is not None:
            try:
                self._control.close_episode(episode_id)
            except (ControlAPIError, httpx.HTTPError):
                pass  # gone already (closed, pruned) or the server is down: nothing left to close here


def opening(goal: str, page: str) -> str:
    """What `reset` appends to the prompt: the goal and the first page, as an export's first
    user message reads (`control_api.export.messages_of`), so a model warmed up on exported
    episodes sees the same text when it trains against live ones."""
    return f"Goal: {goal}\n\n{page}"


def prompt() -> list[dict[str, str]]:
    """The prompt of every dataset row: the agent's instructions and an empty user turn that
    `reset` completes (as exported episodes begin)."""
    return [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": ""}]


def _pil_image(block: ImageContent) -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ToolCallError("images=True needs Pillow (pip install pillow)") from None
    return Image.open(io.BytesIO(base64.b64decode(block.data)))


# -- tools from the door's own listing --------------------------------------------------------------

JSON_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}


def _annotation(schema: Mapping[str, Any]) -> Any:
    """The Python type TRL's schema builder (`transformers.utils.get_json_schema`) turns back
    into this JSON schema."""
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"]
        inner = _annotation(options[0]) if len(options) == 1 else Any
        return inner | None if any(option.get("type") == "null" for option in schema["anyOf"]) else inner
    if "enum" in schema:
        return Literal[tuple(schema["enum"])]
    if schema.get("type") == "array":
        return list[_annotation(schema.get("items", {}))]  # type: ignore[misc]
    return JSON_TYPES.get(schema.get("type", ""), Any)


def _describe(schema: Mapping[str, Any]) -> str:
    description = schema.get("description") or next(
        (option.get("description") for option in schema.get("anyOf", []) if option.get("description")), None)
    return " ".join(str(description or schema.get("title", "")).split())


def tool_method(tool: Tool) -> Callable[..., Any]:
    """A method that calls `tool` through the door, with the tool's arguments as its parameters
    and its description as a docstring TRL can read (`Args:` lists every argument)."""
    properties: dict[str, Any] = tool.input_schema.get("properties", {})
    required = set(tool.input_schema.get("required", []))
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    for name, schema in properties.items():
        annotations[name] = _annotation(schema)
        default = inspect.Parameter.empty if name in required else schema.get("default")
        parameters.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                                            annotation=annotations[name]))
    annotations["return"] = str

    def method(self: SafebrowseEnvironment, *args: Any, **arguments: Any) -> str | list[dict[str, Any]]:
        bound = signature.bind(self, *args, **arguments)  # a TypeError names a wrong argument, as Python would
        # Only what the model gave: the door fills in its own defaults, and records the call as made.
        return self._call(tool.name, {key: value for key, value in bound.arguments.items() if key != "self"})

    signature = inspect.Signature(parameters, return_annotation=str)
    description = " ".join((tool.description or tool.title or tool.name).split())
    lines = [description]
    if properties:
        lines += ["", "Args:"] + [f"    {name}: {_describe(schema)}" for name, schema in properties.items()]
    method.__name__ = method.__qualname__ = tool.name
    method.__doc__ = "\n".join(lines)
    method.__signature__ = signature  # type: ignore[attr-defined]
    method.__annotations__ = annotations
    return method


def door_tools() -> list[Tool]:
    """The MCP door's tools, as it lists them."""
    from mcp_server.tools import build_tools

    return [agent_tool.tool for agent_tool in build_tools().values()]


def environment_factory(
    control_url: str, control_token: str, *, images: bool = False, tools: Sequence[str] | None = None,
    **episode_options: Any,
) -> type[SafebrowseEnvironment]:
    """A class for `GRPOTrainer(environment_factory=...)`, bound to one server.

    `episode_options` go to every episode's creation (`max_steps`, `reward_weights`,
    `oracle_budget`, ...; see `ControlClient.create_episode`). `images=True` returns the
    page's screenshot with the text when the model asks `observe(screenshot=True)`, for
    vision models. `tools` keeps only the named tools (every tool of the door by
    default): a shorter prompt for a small model, on tasks that need only a few.
    """
    listed = door_tools()
    if tools is not None:
        unknown = set(tools) - {tool.name for tool in listed}
        if unknown:
            raise ValueError(f"the door has no tools {sorted(unknown)}; it has {[tool.name for tool in listed]}")
        listed = [tool for tool in listed if tool.name in tools]
    methods: dict[str, Any] = {tool.name: tool_method(tool) for tool in listed}
    namespace: dict[str, Any] = {
        "control_url": control_url.rstrip("/"), "control_token": control_token,
        "episode_options": dict(episode_options), "images": images,
        "__doc__": SafebrowseEnvironment.__doc__, "__module__": __name__, **methods,
    }
    return type("SafebrowseTools", (SafebrowseEnvironment,), namespace)


def close_environments() -> None:
    """Close the episode of every environment still holding one (TRL has no end-of-training hook)."""
    for environment in list(_open_environments):
        try:
            environment._end_episode()
        except Exception:  # noqa: BLE001 - the server may be gone already
            pass


atexit.register(close_environments)


# -- rewards, read from the control API -------------------------------------------------------------


def _finished(environment: SafebrowseEnvironment) -> Any:
    """The episode's trajectory after the rollout: a running episode is ended first
    (`client_step_cap`: the model stopped calling tools), so its reward is final."""
    episode_id = environment.episode_id
    if episode_id is None:
        raise ValueError("the environment has no episode: was reset() called?")
    control = environment._control
    if control.get_episode(episode_id).status.value == "running":
        control.end_episode(episode_id)
    return control.get_trajectory(episode_id)


def env_reward(environments: Sequence[SafebrowseEnvironment], **kwargs: Any) -> list[float]:
    """TRL reward function: each episode's return as the server scored it (its `reward_weights`)."""
    rewards = []
    for environment in environments:
        rewards.append(float(_finished(environment).cumulative_reward))
    log_metric = kwargs.get("log_metric")
    if callable(log_metric) and environments:
        states = [environment._control.get_episode(environment.episode_id or "") for environment in environments]
        log_metric("safebrowse/success", sum(state.success for state in states) / len(states))
        log_metric("safebrowse/steps", sum(state.step_index for state in states) / len(states))
    return rewards


def channel_reward(weights: Mapping[str, float]) -> Callable[..., list[float]]:
    """A TRL reward function over the rubric's channels (`CHANNELS`, each 0..1) at the episode's
    last step, weighted: `channel_reward({"task_completion": 1.0, "efficiency": 0.2})`."""
    unknown = set(weights) - set(CHANNELS)
    if unknown:
        raise ValueError(f"unknown channels {sorted(unknown)}; the channels are {list(CHANNELS)}")

    def reward(environments: Sequence[SafebrowseEnvironment], **kwargs: Any) -> list[float]:
        rewards = []
        for environment in environments:
            steps = _finished(environment).steps
            last = steps[-1].reward.model_dump() if steps else dict.fromkeys(CHANNELS, 0.0)
            rewards.append(sum(weight * float(last[channel]) for channel, weight in weights.items()))
        return rewards

    reward.__name__ = "channel_reward_" + "_".join(sorted(weights))
    return reward


def reward_breakdown(environment: SafebrowseEnvironment) -> list[dict[str, Any]]:
    """Each step's reward breakdown of the environment's episode, for logging."""
    if environment.episode_id is None:
        return []
    trajectory = environment._control.get_trajectory(environment.episode_id)
    return [step.reward.model_dump(mode="json") for step in trajectory.steps]


def tool_schemas(environment_class: type[SafebrowseEnvironment]) -> list[dict[str, Any]]:
    """The tool schemas TRL renders into the prompt for this class (through transformers'
    `get_json_schema`, as TRL does), for supervised rows that must read the same."""
    from transformers.utils.chat_template_utils import get_json_schema

    instance = object.__new__(environment_class)  # no connection: only the bound methods are read
    return [get_json_schema(getattr(instance, name)) for name in sorted(tool_names(environment_class))]


def tool_names(environment_class: type[SafebrowseEnvironment]) -> list[str]:
    """The tools TRL finds on the class: its public functions but `reset`."""
    return [name for name, member in inspect.getmembers(environment_class, inspect.isfunction)
            if not name.startswith("_") and name not in ("reset", "get_reward")]


def sft_rows(rows: Sequence[Mapping[str, Any]], environment_class: type[SafebrowseEnvironment]) -> list[dict[str, Any]]:
    """Exported episodes (`GET /v1/export`, `safebrowse export`) as SFTTrainer rows: their
    `messages`, and the `tools` TRL will show the model when it trains with this class."""
    tools = json.dumps(tool_schemas(environment_class))
    return [{"messages": row["messages"], "tools": tools} for row in rows]


__all__ = [
    "CHANNELS",
    "ResetError",
    "SafebrowseEnvironment",
    "ToolCallError",
    "channel_reward",
    "close_environments",
    "env_reward",
    "environment_factory",
    "opening",
    "prompt",
    "reward_breakdown",
    "sft_rows",
    "tool_method",
    "tool_names",
    "tool_schemas",
]
