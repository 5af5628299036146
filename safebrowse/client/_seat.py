"""One agent's MCP client, kept from one episode to the next.

A trainer's agent slot (an environment TRL resets, a loop that creates, acts and closes)
plays one episode after another. Connecting a new `mcp.Client` for each costs the trainer's
process more than the connection: the SDK compiles each tool's output schema into a
validator at the tool's first call in a client, checking it against the JSON Schema 2020-12
metaschema, about 8 to 13 ms of CPU for the observation's schema, paid again by every new
client for `observe` and for each action tool.

The agent door is stateless (`mcp_server.http`): every request carries its own bearer
token and acts on that token's episode; no session outlives a request. So one client can
play every episode of a slot, and `AgentSeat.take` points it at the next one by changing
the token its requests carry. What stays is the server's probe answer, the tool listing and
the compiled validators, all the same for every episode of one server. What could belong
to one episode stays nowhere: the seat's client keeps no response cache (the SDK partitions
cached private answers by principal, fixed for a client's life), and calls made after the
token changed act only on the new episode (the old token is refused once its episode is
closed).

A seat learns the server once, as it connects: a server restarted on the same URL with other
tools or another version is not noticed by a seat connected before; `aclose()` it (the next
`take` connects again) or use a new one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from safebrowse.client._agent import agent_http_client, bearer

if TYPE_CHECKING:
    import httpx2
    from mcp import Client

SEAT_CONNECT_TIMEOUT_S = 30.0

logger = logging.getLogger(__name__)


@dataclass
class _HeldClient:
    """A connected client, held open by `task` until `stop` is set."""

    mcp_url: str
    client: Client
    http: httpx2.AsyncClient
    task: asyncio.Task[None]
    stop: asyncio.Event


class AgentSeat:
    """An `mcp.Client` connected to the agent door, reused by the episodes of one agent slot.

    `take(mcp_url, agent_token)` returns the client, acting as that episode's agent: the
    same client as for the last episode when the door is the same (only the token changes),
    else a new connection. The client is held open by a task of the seat's own, so any task
    of the event loop may take the seat and call the client; leave `async with`, or call
    `aclose()`, from any task to end it. A seat plays one episode at a time: take it for the
    next episode once the calls of the last have returned.
    """

    def __init__(self, *, timeout: httpx2.Timeout | None = None, **client_options: Any) -> None:
        """`client_options` go to `mcp.Client` unchanged (`mode=...`, callbacks, ...), but for
        `cache`, which a seat does not keep (see the module's docstring)."""
        if "cache" in client_options:
            raise ValueError("an AgentSeat keeps no response cache: its client changes principal with each episode")
        self._timeout = timeout
        self._client_options = client_options
        self._held: _HeldClient | None = None

    @property
    def connected(self) -> bool:
        """Whether the seat holds a live client (one that has not failed or been closed)."""
        return self._held is not None and not self._held.task.done()

    async def take(self, mcp_url: str, agent_token: str) -> Client:
        """The seat's client, acting as the agent of the episode `agent_token` opens on `mcp_url`."""
        held = self._held
        if held is not None and held.mcp_url == mcp_url and not held.task.done():
            held.http.headers["Authorization"] = bearer(agent_token)
            return held.client
        await self.aclose()
        self._held = await self._connect(mcp_url, agent_token)
        return self._held.client

    async def aclose(self) -> None:
        """Disconnect (idempotent); the next `take` connects again."""
        held, self._held = self._held, None
        if held is None:
            return
        held.stop.set()
        await asyncio.gather(held.task, return_exceptions=True)

    async def __aenter__(self) -> AgentSeat:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _connect(self, mcp_url: str, agent_token: str) -> _HeldClient:
        """Connect a client in a task of its own, which holds it open until `stop` is set: the
        SDK's client must be entered and left in one task, and the seat is taken from many."""
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        loop = asyncio.get_running_loop()
        ready: asyncio.Future[tuple[Client, httpx2.AsyncClient]] = loop.create_future()
        stop = asyncio.Event()
        options = {**self._client_options, "cache": None}

        async def hold() -> None:
            """Enter and leave the client in this one task, as its task group requires."""
            http = agent_http_client(agent_token, timeout=self._timeout)
            try:
                async with http, Client(streamable_http_client(mcp_url, http_client=http), **options) as client:
                    await client.list_tools()  # the output schemas, learnt once for every episode
                    ready.set_result((client, http))
                    await stop.wait()
            except BaseException as error:
                if not ready.done():
                    ready.set_exception(error if isinstance(error, Exception) else ConnectionError(repr(error)))
                elif isinstance(error, Exception):
                    # The seat sees it as no longer `connected`, and its next `take` connects again.
                    logger.warning("the agent seat's client on %s failed: %r", mcp_url, error)
                if not isinstance(error, Exception):
                    raise

        task = loop.create_task(hold(), name=f"agent-seat {mcp_url}")
        try:
            client, http = await asyncio.wait_for(asyncio.shield(ready), SEAT_CONNECT_TIMEOUT_S)
        except BaseException:
            ready.cancel()  # nobody reads it any more: the holder must not set an error on it
            stop.set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        return _HeldClient(mcp_url, client, http, task, stop)


__all__ = ["SEAT_CONNECT_TIMEOUT_S", "AgentSeat"]
