"""The trainer's door: an HTTP client for the control API, and a control API of a test's own.

`Control` is how a trainer uses the control API (the control token on every request),
over any running server. `PrivateControlServer` serves the control API alone over an
engine built for one test module (an oracle, test-only tasks, a low episode cap, a
curriculum window of its own), so the shared `live_server` is never disturbed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import httpx

from control_api.schemas import CurriculumPolicy
from engine.oracle import OracleFactory
from safebrowse.server import build_control_app
from tasks.registry import TaskRegistry, TaskSpec

from support.engine import EngineHarness
from support.listener import Listener

HTTP_TIMEOUT_S = 120.0
# The MCP URL a private control API hands out with each episode: nothing listens there, since
# tests on a private control API drive episodes through the engine's agent sessions.
NO_MCP_DOOR = "http://127.0.0.1:9/mcp"


class ControlEndpoint(Protocol):
    """Anything that serves the control API: where, and with which token."""

    @property
    def control_url(self) -> str: ...

    @property
    def control_token(self) -> str: ...


class Control:
    """The control API over HTTP with the control token; each call asserts the documented status."""

    def __init__(self, endpoint: ControlEndpoint, timeout: float = HTTP_TIMEOUT_S) -> None:
        self.http = httpx.Client(base_url=endpoint.control_url, timeout=timeout,
                                 headers={"Authorization": f"Bearer {endpoint.control_token}"})

    def create(self, task_id: str, **fields: Any) -> dict[str, Any]:
        response = self.http.post("/v1/episodes", json={"task_id": task_id, **fields})
        assert response.status_code == 201, response.text
        return _body(response)

    def state(self, episode_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/episodes/{episode_id}")
        assert response.status_code == 200, response.text
        return _body(response)

    def trajectory(self, episode_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/episodes/{episode_id}/trajectory")
        assert response.status_code == 200, response.text
        return _body(response)

    def close(self, episode_id: str) -> dict[str, Any]:
        response = self.http.delete(f"/v1/episodes/{episode_id}")
        assert response.status_code == 200, response.text
        return _body(response)

    def blocked(self, episode_id: str) -> list[dict[str, Any]]:
        """Every request the engine blocked during the episode, step by step."""
        return [entry for step in self.trajectory(episode_id)["steps"] for entry in step["blocked"]]


def _body(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert isinstance(body, dict), body
    return body


class PrivateControlServer(EngineHarness):
    """An engine of a test's own, with the control API alone on a free loopback port.

    It is an `EngineHarness` too: tests drive episodes through the engine's agent sessions
    (as the MCP door would) and read them back through `control`, as a trainer does.
    """

    def __init__(
        self,
        name: str,
        *,
        curriculum: CurriculumPolicy | None = None,
        workers: int = 1,
        tasks: Iterable[TaskSpec] = (),
        registry: TaskRegistry | None = None,
        oracle_factory: OracleFactory | None = None,
        data_dir: Path | None = None,
        book_settings: dict[str, Any] | None = None,
        **engine_overrides: Any,
    ) -> None:
        super().__init__(name, workers=workers, tasks=tasks, registry=registry, oracle_factory=oracle_factory,
                         data_dir=data_dir, book_settings=book_settings, **engine_overrides)
        self.control_token = "ctl_" + secrets.token_urlsafe(16)
        try:
            app = build_control_app(self.manager, self.control_token, NO_MCP_DOOR, curriculum=curriculum)
            self._listener = Listener(app, self.loop)
        except BaseException:
            super().stop()
            raise
        self.control_url = self._listener.origin
        self.control = Control(self)

    def stop(self) -> None:
        """Stop the control API, then the engine."""
        self.control.http.close()
        try:
            self._listener.stop()
        finally:
            super().stop()
