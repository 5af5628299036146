"""One agent's MCP session per environment, all on one background event loop.

TRL calls tools from its own threads, synchronously; the `mcp` SDK's client is async and
must be entered and left in one task. So every connection is a task of its own on a
shared background loop, and calls reach it through a queue.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from mcp import Client
from mcp.types import CallToolResult

from safebrowse.client import agent_client
from safebrowse.loop import BackgroundLoop
from safebrowse.trl.errors import ToolCallError

CALL_TIMEOUT_S = 120.0

_loop_lock = threading.Lock()
_shared_loop: BackgroundLoop | None = None


def _loop() -> BackgroundLoop:
    """The background loop every connection lives on (TRL calls tools from its own threads)."""
    global _shared_loop
    with _loop_lock:
        if _shared_loop is None:
            _shared_loop = BackgroundLoop("safebrowse-trl")
        return _shared_loop


class AgentConnection:
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


__all__ = ["CALL_TIMEOUT_S", "AgentConnection"]
