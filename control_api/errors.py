"""Every failure leaves the control API as JSON `{error, detail}` with a fitting status.

Handlers raise `ApiError`; Starlette's own HTTP errors (unknown route, wrong method)
and anything unexpected are turned into the same shape here, so a client never has
to parse HTML or plain text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from control_api.schemas import ErrorResponse, FieldError
from engine.book import BookWriteError

logger = logging.getLogger(__name__)

# Codes for the statuses Starlette raises on its own.
HTTP_ERROR_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """An error response a handler decided on."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        suggestions: list[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.body = ErrorResponse(error=error, detail=detail, errors=errors, suggestions=suggestions)
        self.headers = dict(headers or {})


def error_response(
    status: int, error: str, detail: str, headers: Mapping[str, str] | None = None, **extra: object
) -> Response:
    body = ErrorResponse(error=error, detail=detail, **extra)
    return Response(
        body.model_dump_json(exclude_none=True), status_code=status,
        media_type="application/json", headers=dict(headers or {}),
    )


def validation_failed(error: ValidationError, where: str) -> ApiError:
    """A 422 listing each problem with its location (`body`/`query` first)."""
    problems = [
        FieldError(loc=[where, *item["loc"]], msg=item["msg"], type=item["type"])
        for item in error.errors(include_url=False, include_input=False, include_context=False)
    ]
    summary = "; ".join(f"{'.'.join(str(p) for p in problem.loc)}: {problem.msg}" for problem in problems[:5])
    return ApiError(422, "validation_error", summary or "invalid request", errors=problems)


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return Response(
        exc.body.model_dump_json(exclude_none=True), status_code=exc.status,
        media_type="application/json", headers=exc.headers,
    )


async def handle_book_write_error(request: Request, exc: Exception) -> Response:
    """The episode book refused a write: 507 `book_full` when the disk (or the book's size cap)
    is full, else 503 `book_unavailable`. The episode stays in memory; nothing recorded is lost."""
    assert isinstance(exc, BookWriteError)
    logger.warning("control API %s %s: %s", request.method, request.url.path, exc)
    if exc.full:
        return error_response(507, "book_full", f"{exc} Free space in the server's data dir.")
    return error_response(503, "book_unavailable", str(exc), headers={"Retry-After": "5"})


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_ERROR_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else code
    if exc.status_code == 404:
        detail = f"no route {request.url.path!r}; see /v1/openapi.json"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path!r}"
    return error_response(exc.status_code, code, detail, headers=exc.headers)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    logger.error("control API error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", f"the server failed: {type(exc).__name__}")
