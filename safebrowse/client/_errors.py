"""The error a control API client raises when the server answers with an error status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx


class ControlAPIError(Exception):
    """An error answer of the control API: its status and the server's `{error, detail}`.

    `body` is the whole JSON error, so fields some errors add (`suggestions` for an
    unknown task, `errors` for a validation failure) stay reachable.
    """

    def __init__(self, status: int, error: str, detail: str, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.body = dict(body or {})

    @classmethod
    def from_response(cls, response: httpx.Response) -> ControlAPIError:
        """The error an error response stands for; a body that is not a JSON object (a proxy's
        HTML page, say) is kept as the detail, cut to 500 characters."""
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        return cls(
            response.status_code,
            str(body.get("error", "http_error")),
            str(body.get("detail", response.text[:500])),
            body,
        )


__all__ = ["ControlAPIError"]
