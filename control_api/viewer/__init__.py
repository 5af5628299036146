"""The episode viewer: a static page that reads the JSON API with the control token.

The shell (HTML, JS, CSS in this folder) holds no episode data and no secret, so it
is served without the token: a browser cannot add an Authorization header to a
navigation, and a token in a URL would end up in history, logs and Referer headers.
The user pastes the token into the page, which keeps it in sessionStorage and sends
it as `Authorization: Bearer` on each fetch of the JSON API; every other route still
answers 401 without it. The page loads nothing from elsewhere, and the headers below
forbid inline scripts, foreign origins and framing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

HERE = Path(__file__).resolve().parent

# Served path -> (file in this folder, content type). Exactly these paths are public.
FILES: dict[str, tuple[str, str]] = {
    "/viewer": ("index.html", "text/html; charset=utf-8"),
    "/viewer/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/viewer/app.css": ("app.css", "text/css; charset=utf-8"),
}
OPEN_ROUTES: frozenset[tuple[str, str]] = frozenset(
    (method, path) for path in FILES for method in ("GET", "HEAD")
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _serve(content: bytes, media_type: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return Response(content, media_type=media_type, headers=SECURITY_HEADERS)

    return endpoint


def viewer_routes() -> list[Route]:
    """The viewer's three files, read once when the app is built."""
    return [
        Route(path, _serve((HERE / name).read_bytes(), media_type), methods=["GET"])
        for path, (name, media_type) in FILES.items()
    ]


__all__ = ["FILES", "OPEN_ROUTES", "SECURITY_HEADERS", "viewer_routes"]
