"""The environment TRL makes one of per generation: one agent in one episode at a time.

`environment_factory` binds `SafebrowseEnvironment` to a server and adds one method per
tool of the MCP door (`tools.tool_method`); `reset(**row)` opens the row's episode on
the control API and connects to its door with its agent token.
"""

from __future__ import annotations

import atexit
import base64
import io
import weakref
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx
from mcp.types import ImageContent, TextContent

from engine.agent_view.instructions import INSTRUCTIONS
from safebrowse.client import ControlAPIError, ControlClient
from safebrowse.trl.connection import AgentConnection
from safebrowse.trl.errors import ResetError, ToolCallError
from safebrowse.trl.tools import door_tools, tool_method

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
        self._connection = AgentConnection()  # one MCP client for every episode of this environment
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
        try:
            self._connection.open(created.mcp_url, created.agent_token)
        except Exception as error:  # noqa: BLE001 - said in one line: the door cannot be reached
            raise ResetError(f"the MCP door {created.mcp_url} of episode {created.episode_id} cannot be reached: "
                             f"{type(error).__name__}: {error}") from None
        page = self._call("observe", {})
        text = page if isinstance(page, str) else "\n".join(
            block["text"] for block in page if block.get("type") == "text")
        return opening(created.goal, text)

    def _call(self, tool: str, arguments: dict[str, Any]) -> str | list[dict[str, Any]]:
        """Call a tool through the door; the agent's view of the answer, or `ToolCallError`."""
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
        episode_id = self.episode_id
        self._connection.release()
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
    """Close the episode of every environment still holding one, and its MCP client (TRL has no
    end-of-training hook)."""
    for environment in list(_open_environments):
        try:
            environment._end_episode()
        except Exception:  # noqa: BLE001 - the server may be gone already
            pass
        try:
            environment._connection.close()
        except Exception:  # noqa: BLE001 - nor may the loop answer any more
            pass


atexit.register(close_environments)


__all__ = ["SafebrowseEnvironment", "close_environments", "environment_factory", "opening", "prompt"]
