"""The agent door over streamable HTTP: `/mcp` on the public port, and nothing else.

Layers, outermost first: any path but `/mcp` is a 404, and a GET is a 405; a
request beyond the door's capacity is a 503; a request without the agent token of
an open episode is a 401; one over its episode's rate or share is a 429 (see
`mcp_server.limits`); the SDK's transport then checks the
Host and Origin headers (DNS-rebinding protection on loopback) and dispatches
the MCP message to the tools, which act on the episode the token opened.

The transport is stateless: every request is authenticated and bound to its
episode on its own, so there is no server-side MCP session to hijack or to
expire, and a closed episode's token stops working on the next request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mcp.server import ServerRequestContext
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.agent_view.port import AgentPort
from mcp_server.auth import BearerAuthMiddleware, port_of, send_json
from mcp_server.limits import DoorCapacity, DoorLimits, EpisodeRateLimit
from mcp_server.tools import build_server

MCP_PATH = "/mcp"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def transport_security(host: str) -> TransportSecuritySettings:
    """Host/Origin checks for the address the door listens on.

    On loopback, only loopback Host headers are accepted (with or without a port,
    so `localhost` behind a port-80 proxy works too). A wildcard bind (`0.0.0.0`,
    `::`) or a specific outside address has no fixed name to check against, so the
    check is off there and the bearer token is the guard.
    """
    if host not in ("127.0.0.1", "localhost", "::1"):
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = [name for loopback in LOOPBACK_HOSTS for name in (loopback, f"{loopback}:*")]
    origins = [
        origin
        for loopback in LOOPBACK_HOSTS
        for scheme in ("http", "https")
        for origin in (f"{scheme}://{loopback}", f"{scheme}://{loopback}:*")
    ]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def port_from_request(ctx: ServerRequestContext[Any, Any]) -> AgentPort:
    """The episode `BearerAuthMiddleware` bound to the HTTP request of this tool call."""
    request = ctx.request
    return port_of(request if isinstance(request, Request) else None)


class OnlyPath:
    """Serves one exact path and answers 404 for everything else.

    A GET would open the SDK's server-to-client event stream, which a stateless door never
    writes to: it would only hold a connection open, so it is refused (405).
    """

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != self.path:
            await send_json(send, 404, {"error": "not_found", "detail": f"the MCP endpoint is {self.path}"})
            return
        if scope["type"] == "http" and scope["method"] == "GET":
            await send_json(send, 405, {"error": "method_not_allowed",
                                        "detail": "this door has no event stream; POST JSON-RPC messages"},
                            headers=((b"allow", b"POST, DELETE"),))
            return
        await self.app(scope, receive, send)


def build_app(
    open_episode: Callable[[str], AgentPort | None], host: str, version: str, limits: DoorLimits | None = None
) -> ASGIApp:
    """The public ASGI app. Run it with its lifespan on: that starts the SDK's session manager.

    `open_episode` turns an agent token into the port of its episode, or None for a token
    that opens nothing (unknown, or its episode closed).
    """
    limits = limits or DoorLimits()
    # The SDK logs the end of every stateless request at INFO; keep its warnings only.
    logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
    server = build_server(port_from_request, version)
    mcp_app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        transport_security=transport_security(host),
        host=host,
    )
    admitted = EpisodeRateLimit(mcp_app, limits)
    return OnlyPath(DoorCapacity(BearerAuthMiddleware(admitted, open_episode), limits), MCP_PATH)
