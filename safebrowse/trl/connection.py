"""One agent's MCP client per environment, all on one background event loop.

TRL calls tools from its own threads, synchronously; the `mcp` SDK's client is async and
must be entered and left in one task. So each environment's client is held by an
`AgentSeat`, whose task on a shared background loop keeps it open from one episode to the
next, and each call runs on that loop.
"""

from __future__ import annotations

import threading
from typing import Any

from mcp import Client
from mcp.types import CallToolResult

from safebrowse.client import AgentSeat
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
    """One environment's agent: an `AgentSeat` on the shared loop, taken for each episode the
    environment resets into, so one MCP client serves them all (see `safebrowse.client.AgentSeat`).

    The seat holds its client in a task of its own; each call is a task of the loop too.
    """

    def __init__(self) -> None:
        self._seat: AgentSeat | None = None
        self._client: Client | None = None

    def open(self, mcp_url: str, agent_token: str) -> None:
        """Act as the agent of the episode `agent_token` opens (connecting only if needed)."""
        self._client = None
        self._client = _loop().run(self._take(mcp_url, agent_token), CALL_TIMEOUT_S)

    def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call a tool as the current episode's agent. A call that outlives `CALL_TIMEOUT_S` is
        cancelled (`BackgroundLoop.run`), so none is still running when the seat moves on."""
        client = self._client
        if client is None:
            raise ToolCallError("no episode: reset() first")
        return _loop().run(client.call_tool(tool, arguments), CALL_TIMEOUT_S)

    def release(self) -> None:
        """The episode is over: no call goes out until the next `open`; the seat stays connected."""
        self._client = None

    def close(self) -> None:
        """Disconnect the seat (the environment is done with)."""
        self._client = None
        if self._seat is not None:
            _loop().run(self._seat.aclose(), CALL_TIMEOUT_S)

    async def _take(self, mcp_url: str, agent_token: str) -> Client:
        """On the shared loop, where the seat's task lives: the seat, created on first use."""
        if self._seat is None:
            self._seat = AgentSeat()
        return await self._seat.take(mcp_url, agent_token)


__all__ = ["CALL_TIMEOUT_S", "AgentConnection"]
