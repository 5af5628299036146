"""An `mcp` SDK client connected to the agent door as one episode's agent.

The SDK's streamable HTTP transport takes the HTTP client it sends with (an
`httpx2.AsyncClient`, the HTTP library of `mcp` 2.x); this builds that client with the
episode's agent token and timeouts of its own, through the transport's public
`http_client` argument.

A trainer connects one agent per episode, often eight at once for a GRPO group, and
each agent would probe the server (`server/discover`) and, at its first tool call, list
the tools to learn their output schemas: two requests, and about 40 KB for the server
to write and the client to read, per episode. So the agents of one process share both:
- the listing, which the door marks as shareable for ten minutes (SEP-2549 cache hints),
  through one response cache (`mcp.client.CacheConfig` with a process-wide store, public
  entries shared across tokens); each agent lists the tools as it connects, and the
  first agent of a server asks, the others are served;
- the server's answer to the probe, for a minute (`DISCOVERY_REUSE_S`): an agent connecting
  within it adopts that answer (`mcp.Client`'s `prior_discover`) instead of asking again.
  A server replaced on the same URL is seen within that minute; a connection that fails
  on an adopted answer drops it, so the next agent probes.
"""

from __future__ import annotations

import collections
import hashlib
import ssl
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx2
    from mcp import Client
    from mcp.client import CacheConfig
    from mcp.client.caching import CacheEntry, CacheKey
    from mcp.types import DiscoverResult

CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 30.0
STREAM_READ_TIMEOUT_S = 300.0
"""A tool call's answer can come over a server-sent event stream the server holds open
while the browser acts, so reads wait longer than connects and writes."""


@cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every agent of the process.

    Each HTTP client would otherwise build its own and load the system's certificate
    store into it: about 35 ms of CPU per agent, more than the agent's first observation
    costs the server, and paid again by every episode of a trainer's loop.
    """
    import httpx2

    return httpx2.create_ssl_context()  # what each client would build for itself


def bearer(agent_token: str) -> str:
    """The `Authorization` header's value for an agent token."""
    return f"Bearer {agent_token}"


def agent_http_client(agent_token: str, *, timeout: httpx2.Timeout | None = None) -> httpx2.AsyncClient:
    """The HTTP client of one agent: its token in every request's `Authorization` header.

    The caller owns it (`async with`); redirects are left to the MCP transport, which
    follows only those that stay on the endpoint's origin.
    """
    import httpx2

    if timeout is None:
        timeout = httpx2.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S, read=STREAM_READ_TIMEOUT_S)
    return httpx2.AsyncClient(headers={"Authorization": bearer(agent_token)}, timeout=timeout,
                              verify=_tls_context())


class SharedResponseStore:
    """An in-process `mcp.client.ResponseCacheStore` that agents on any thread or event loop may
    share: the SDK's own in-memory store expects one event loop. A lock around each operation,
    and the oldest entry dropped past `max_entries`."""

    def __init__(self, max_entries: int = 64) -> None:
        self._max_entries = max_entries
        self._entries: collections.OrderedDict[CacheKey, CacheEntry] = collections.OrderedDict()
        self._lock = threading.Lock()

    async def get(self, key: CacheKey) -> CacheEntry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    async def set(self, key: CacheKey, entry: CacheEntry) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    async def delete(self, key: CacheKey) -> None:
        with self._lock:
            self._entries.pop(key, None)

    async def clear(self) -> None:
        with self._lock:
            self._entries.clear()


SHARED_RESPONSES = SharedResponseStore()
"""The response cache every agent client of this process shares (see the module's docstring)."""

DISCOVERY_REUSE_S = 60.0
"""How long agents of this process adopt the answer an earlier agent got from `server/discover`."""

_discovered: dict[str, tuple[float, str, DiscoverResult]] = {}
"""For each MCP URL: when its server answered the probe, the protocol version agreed, and the answer."""

_servers_seen: dict[str, tuple[str, str]] = {}
"""The name and version of the server each MCP URL answered with last, in this process: a listing
cached from another server on the same URL (restarted with other tools) is not served."""


def _shared_cache_config(mcp_url: str, agent_token: str) -> CacheConfig:
    """`mcp.client.CacheConfig` for one agent: the process-wide store, entries kept per server
    (`mcp_url`, which names the server and carries no credential), its own partition for what
    the server marks private (derived from its token, as the SDK asks), and the public entries
    (the tool listing) shared with every other agent of the same server."""
    from mcp.client import CacheConfig

    return CacheConfig(store=SHARED_RESPONSES, partition=hashlib.sha256(agent_token.encode()).hexdigest(),
                       target_id=mcp_url, share_public=True)


def _adopt_discovery(mcp_url: str, client_options: dict[str, Any]) -> bool:
    """Pin the protocol version and the server's probe answer an earlier agent got, if it is
    recent enough; whether it did."""
    known = _discovered.get(mcp_url)
    if known is None or time.monotonic() - known[0] > DISCOVERY_REUSE_S:
        return False
    _at, version, result = known
    client_options.update(mode=version, prior_discover=result)
    return True


def _keep_discovery(mcp_url: str, client: Client) -> None:
    """Remember the server's answer to this agent's probe, for the next agents (modern servers
    only: a server that answered the legacy handshake has none to adopt)."""
    result = client.session.discover_result
    if result is not None:
        _discovered[mcp_url] = (time.monotonic(), client.protocol_version, result)


async def _list_tools(client: Client, mcp_url: str) -> None:
    """List the tools through the shared cache, unless the server on `mcp_url` is not the one
    that filled it (another name or version): then ask it, which replaces the cached listing."""
    info = client.server_info
    server = (info.name, info.version) if info is not None else None
    stale = server is not None and _servers_seen.get(mcp_url, server) != server
    await client.list_tools(cache_mode="refresh" if stale else "use")
    if server is not None:
        _servers_seen[mcp_url] = server


@asynccontextmanager
async def agent_client(
    mcp_url: str, agent_token: str, *, timeout: httpx2.Timeout | None = None, **client_options: Any
) -> AsyncIterator[Client]:
    """An `mcp.Client` connected to `mcp_url` over streamable HTTP with the agent token.

    `client_options` go to `mcp.Client` unchanged (`mode=...`, callbacks, ...). Unless they
    name a `cache`, the client uses the process-wide response cache, and has listed the tools
    (from that cache when another agent of the server already did) before it is yielded; and
    unless they also name a `mode` or a `prior_discover`, it adopts the probe answer an agent of
    the same server got within `DISCOVERY_REUSE_S` (see the module's docstring).
    """
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    shared = "cache" not in client_options
    if shared:
        client_options["cache"] = _shared_cache_config(mcp_url, agent_token)
    probe = shared and "mode" not in client_options and "prior_discover" not in client_options
    adopted = probe and _adopt_discovery(mcp_url, client_options)
    http = agent_http_client(agent_token, timeout=timeout)
    connected = False
    try:
        async with http, Client(streamable_http_client(mcp_url, http_client=http), **client_options) as client:
            if shared:
                await _list_tools(client, mcp_url)
            if probe and not adopted:
                _keep_discovery(mcp_url, client)
            connected = True
            yield client
    except BaseException:
        if adopted and not connected:
            _discovered.pop(mcp_url, None)  # the adopted answer may be another server's: probe next time
        raise


__all__ = ["agent_client", "agent_http_client"]
