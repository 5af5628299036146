"""What the sync and async control API clients share besides the operations: where the
server is, the token, the timeouts, and the headers every request carries."""

from __future__ import annotations

import httpx

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
"""Creating an episode waits for a browser context and the task's setup, so reads get a minute."""


class BaseControlClient:
    """Settings of a control API client; `ControlClient` and `AsyncControlClient` add the sending.

    The operations themselves (paths, bodies, parsing) live in `safebrowse.client._operations`,
    one function each, shared by both clients.
    """

    def __init__(self, base_url: str, token: str, *, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    @property
    def headers(self) -> dict[str, str]:
        """The control token, sent with every request (the health probe ignores it)."""
        return {"Authorization": f"Bearer {self.token}"}

    def __repr__(self) -> str:
        # The token stays out of reprs, tracebacks and logs.
        return f"{type(self).__name__}({self.base_url!r})"


__all__ = ["DEFAULT_TIMEOUT", "BaseControlClient"]
