"""Bearer-token authentication for the agent door, as plain ASGI middleware.

Each HTTP request must carry `Authorization: Bearer <agent token>`. The token
is resolved on every request (never cached per connection), so a token opens
exactly its own episode, and closing the episode locks the token out at once.
The episode's `AgentPort` is put in the ASGI scope's `state`, where the tool
handlers read it back through the Starlette request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.agent_view.port import AgentPort

AGENT_PORT_STATE = "agent_port"

UNAUTHORIZED_DETAIL = (
    "Send the header 'Authorization: Bearer <agent_token>' with the agent token of an open episode."
)


def bearer_token(scope: Scope) -> str | None:
    """The token of a well-formed `Authorization: Bearer ...` header, if any."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and token:
                return token
            return None
    return None


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    payload = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            *headers,
        ],
    })
    await send({"type": "http.response.body", "body": payload})


class BearerAuthMiddleware:
    """Refuses HTTP requests without a token that opens an episode (401)."""

    def __init__(self, app: ASGIApp, resolve: Callable[[str], AgentPort | None]) -> None:
        self.app = app
        self.resolve = resolve

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # The lifespan must reach the MCP app: it starts the SDK's session manager.
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})  # the door speaks HTTP only
            return
        token = bearer_token(scope)
        port = self.resolve(token) if token is not None else None
        if port is None:
            await send_json(
                send, 401, {"error": "unauthorized", "detail": UNAUTHORIZED_DETAIL},
                headers=((b"www-authenticate", b'Bearer realm="safebrowse"'),),
            )
            return
        scope.setdefault("state", {})[AGENT_PORT_STATE] = port
        await self.app(scope, receive, send)


def port_of(request: Request | None) -> AgentPort:
    """The episode port the middleware bound to this request."""
    port: AgentPort | None = getattr(request.state, AGENT_PORT_STATE, None) if request is not None else None
    if port is None:
        raise RuntimeError("this request carries no agent port; BearerAuthMiddleware must wrap the MCP app")
    return port
