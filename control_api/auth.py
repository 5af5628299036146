"""Bearer-token check in front of every control route except the health probe and
the viewer's static shell (which holds no data; see `control_api.viewer`).

The check runs before routing, so an unauthenticated caller learns nothing about
which routes or episodes exist: every other path answers 401 alike.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from control_api.errors import error_response
from control_api.viewer import OPEN_ROUTES as VIEWER_ROUTES

OPEN_ROUTES: frozenset[tuple[str, str]] = frozenset({("GET", "/v1/health"), ("HEAD", "/v1/health")}) | VIEWER_ROUTES


def bearer_token(scope: Scope) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` header, if there is one."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
            return None
    return None


class BearerAuth:
    """Pure ASGI middleware: lifespan and open routes pass, the rest need the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("the control API needs a non-empty token")
        self.app = app
        self._token = token.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in OPEN_ROUTES:
            await self.app(scope, receive, send)
            return
        given = bearer_token(scope)
        if given is None or not hmac.compare_digest(given, self._token):
            detail = "missing bearer token" if given is None else "invalid bearer token"
            response = error_response(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
