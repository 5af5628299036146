"""Request bodies: capped in size before any handler sees them, then parsed as JSON.

The cap is enforced by reading the body up front (whether or not the client sent a
Content-Length), so a handler never holds more than `MAX_BODY_BYTES` of input.
"""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control_api.errors import ApiError, error_response, validation_failed

MAX_BODY_BYTES = 64 * 1024
# An oversized body up to this size is read and dropped before the 413 goes out, so
# an ordinary client (which sends its whole body before reading) sees the answer
# instead of a reset connection. Anything larger is cut off.
DRAIN_BYTES = 1024 * 1024
M = TypeVar("M", bound=BaseModel)


class BodySizeLimit:
    """Pure ASGI middleware answering 413 to bodies larger than `limit` bytes."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await error_response(400, "bad_request", "Content-Length is not a number")(scope, receive, send)
                return
            if int(declared) > self.limit:
                if int(declared) <= DRAIN_BYTES:
                    await self._drain(receive, 0)
                await self._too_large(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                if message.get("more_body", False):
                    await self._drain(receive, size)
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _drain(receive: Receive, size: int) -> None:
        while size <= DRAIN_BYTES:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is larger than {self.limit} bytes"
        await error_response(413, "body_too_large", detail, headers={"Connection": "close"})(scope, receive, send)


async def parse_body(request: Request, model: type[M], *, optional: bool = False) -> M:
    """The body validated as `model`; an empty body counts as `{}` when `optional`."""
    raw = await request.body()
    if not raw.strip():
        if optional:
            return model()
        raise ApiError(422, "validation_error", "a JSON object body is required")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ApiError(422, "validation_error", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_failed(error, "body") from None


def parse_query(request: Request, model: type[M]) -> M:
    """The query string validated as `model` (each parameter given at most once)."""
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key in params:
            raise ApiError(422, "validation_error", f"query parameter {key!r} is given more than once")
        params[key] = value
    known = {key: value for key, value in params.items() if key in model.model_fields}
    try:
        return model.model_validate(known)
    except ValidationError as error:
        raise validation_failed(error, "query") from None
