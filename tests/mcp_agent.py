"""A small scripted agent for tests: a real `mcp` SDK client over streamable HTTP,
bound to one agent token, that keeps every result exactly as it came off the wire."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp import Client
from mcp.types import CallToolResult

from safebrowse.client import agent_client


class Agent:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.transcript: list[dict[str, Any]] = []
        self.page: dict[str, Any] = {}

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        result = await self.client.call_tool(tool, arguments)
        self.transcript.append(result.model_dump(mode="json", by_alias=True, exclude_none=True))
        if result.structured_content is not None:
            self.page = result.structured_content
        return result

    async def act(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        result = await self.call(tool, arguments)
        assert not result.is_error, result.content[0].text
        return result

    @property
    def goal(self) -> str:
        return self.page["goal"]

    @property
    def elements(self) -> list[dict[str, Any]]:
        return self.page["elements"]

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
        return self.element(id=html_id)["id"]

    def wire(self) -> str:
        """Everything the agent received, serialised."""
        return json.dumps(self.transcript, ensure_ascii=False)


@asynccontextmanager
async def connect(url: str, token: str, mode: str = "auto") -> AsyncIterator[Agent]:
    async with agent_client(url, token, mode=mode) as client:
        yield Agent(client)
