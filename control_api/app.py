"""Assemble the control API: the route table, its error handlers and middleware.

Order of the middleware, outermost first: response counting (metrics), the bearer
token check, then the body size cap, so nothing reads a body from a caller without
the token, and every answer, including a 401, is counted.

Besides the documented operations, the app serves the episode viewer's static
shell (`control_api.viewer`), which is not part of the OpenAPI document.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from control_api.auth import BearerAuth
from control_api.body import MAX_BODY_BYTES, BodySizeLimit
from control_api.curriculum import Curriculum
from control_api.errors import (
    ApiError,
    handle_api_error,
    handle_book_write_error,
    handle_http_exception,
    handle_unexpected,
)
from control_api.metrics import CountResponses
from control_api.openapi import Operation, build_openapi
from control_api.room import SuiteService, TrainerRoom
from control_api.routes import OPERATIONS
from control_api.schemas import CurriculumPolicy
from control_api.state import ControlState
from control_api.viewer import viewer_routes
from engine.book import BookWriteError
from safebrowse import __version__


def _dispatch(by_method: dict[str, Operation]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await by_method[method].endpoint(request)

    return endpoint


def routes_for(operations: Sequence[Operation]) -> list[Route]:
    """One route per path, so a wrong method gets a 405 whose Allow lists every method of the path."""
    by_path: dict[str, dict[str, Operation]] = {}
    for operation in operations:
        by_path.setdefault(operation.path, {})[operation.method] = operation
    return [Route(path, _dispatch(by_method), methods=list(by_method)) for path, by_method in by_path.items()]


def build_app(
    manager: TrainerRoom, control_token: str, mcp_url: str, curriculum: CurriculumPolicy | None = None,
    suites: SuiteService | None = None,
) -> Starlette:
    """The trainer door for `manager` (a single server's EpisodeManager, or a cluster's front).
    Serve it on a private listener only.

    `curriculum` sets the thresholds of `difficulty: "auto"` (the defaults otherwise). `suites`
    serves `/v1/suites`; without it (a cluster's front) those routes answer 501.
    """
    state = ControlState(manager=manager, mcp_url=mcp_url, curriculum=Curriculum(curriculum), suites=suites)
    state.restore()
    manager.on_step.append(state.metrics.on_step)
    manager.on_end.append(state.count_ended)
    app = Starlette(
        routes=[*routes_for(OPERATIONS), *viewer_routes()],
        middleware=[
            Middleware(CountResponses, metrics=state.metrics),
            Middleware(BearerAuth, token=control_token),
            Middleware(BodySizeLimit, limit=MAX_BODY_BYTES),
        ],
        exception_handlers={
            ApiError: handle_api_error,
            BookWriteError: handle_book_write_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
    )
    app.router.redirect_slashes = False  # a trailing slash is an unknown route, not a redirect
    app.state.control = state
    app.state.openapi_json = json.dumps(build_openapi(OPERATIONS, __version__)).encode("utf-8")
    return app


__all__ = ["build_app"]
