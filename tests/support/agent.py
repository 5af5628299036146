"""The agent's side of the tests: a scripted agent that is a real `mcp` SDK client over
streamable HTTP, bound to one agent token, and the raw JSON-RPC pieces for tests that
send what no SDK would.

The agent keeps every result exactly as it came off the wire, so a test can check
everything an agent ever received.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from mcp import Client
from mcp.types import CallToolResult, TextContent

from safebrowse.client import agent_client

T = TypeVar("T")

PLAY_TIMEOUT_S = 180.0
# What a streamable-HTTP client sends with each JSON-RPC POST.
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


class Agent:
    """One episode's agent: calls tools and remembers the last page it was shown."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transcript: list[dict[str, Any]] = []
        self.page: dict[str, Any] = {}

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call `tool`; the result, error or not, is kept in the transcript."""
        result = await self.client.call_tool(tool, arguments)
        self.transcript.append(result.model_dump(mode="json", by_alias=True, exclude_none=True))
        if result.structured_content is not None:
            self.page = result.structured_content
        return result

    async def act(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call `tool` and assert it was not a tool error."""
        result = await self.call(tool, arguments)
        assert not result.is_error, text_of(result)
        return result

    @property
    def goal(self) -> str:
        goal: str = self.page["goal"]
        return goal

    @property
    def elements(self) -> list[dict[str, Any]]:
        elements: list[dict[str, Any]] = self.page["elements"]
        return elements

    def find(self, role: str, text: str | None = None, **attributes: str) -> dict[str, Any]:
        """The first element of this role (and text, and allow-listed attributes)."""
        for element in self.elements:
            if element["role"] != role or (text is not None and element["text"].strip() != text):
                continue
            if all(element["attributes"].get(key) == value for key, value in attributes.items()):
                return element
        raise AssertionError(f"no {role} {text!r} {attributes} in {self.elements}")

    def element(self, **attributes: str) -> dict[str, Any]:
        """The element whose allow-listed attributes include all of these."""
        for element in self.elements:
            if all(element["attributes"].get(key) == value for key, value in attributes.items()):
                return element
        raise AssertionError(f"no element with {attributes}")

    def id_of(self, html_id: str) -> str:
        """The element id of the element whose HTML `id` is `html_id`."""
        element_id: str = self.element(id=html_id)["id"]
        return element_id

    def wire(self) -> str:
        """Everything the agent received, serialised."""
        return json.dumps(self.transcript, ensure_ascii=False)


def text_of(result: CallToolResult) -> str:
    """The text blocks of a tool result, joined."""
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


@asynccontextmanager
async def connect(url: str, token: str, mode: str = "auto") -> AsyncIterator[Agent]:
    """An `Agent` connected to the MCP door at `url` with its agent token."""
    async with agent_client(url, token, mode=mode) as client:
        yield Agent(client)


def play(coroutine: Coroutine[Any, Any, T], timeout: float = PLAY_TIMEOUT_S) -> T:
    """Run an agent's coroutine to the end, on its own event loop (as an agent process would)."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def rpc(method: str, params: dict[str, Any] | None = None, request_id: int = 1) -> dict[str, Any]:
    """A JSON-RPC 2.0 request, for tests that post to the door without an SDK."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


INITIALIZE = rpc("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                "clientInfo": {"name": "raw", "version": "0"}})
