"""The synchronous control API client: sends each operation's call with `httpx.Client`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

import httpx

from control_api.schemas import (
    CreatedEpisodeResponse,
    CreatedSuiteResponse,
    CurriculumResponse,
    EpisodeList,
    EpisodeStateResponse,
    HealthResponse,
    TaskList,
    TrajectoryResponse,
)
from engine.records import EpisodeStatus
from engine.reward import RewardWeights
from engine.suites.report import SuiteReport
from safebrowse.client import _operations as operations
from safebrowse.client._base import DEFAULT_TIMEOUT, BaseControlClient
from safebrowse.client._operations import ControlCall

T = TypeVar("T")


class ControlClient(BaseControlClient):
    """Synchronous client of the control API: one method per operation, named by its operation id.

    Each method returns the model `control_api.schemas` declares for the operation's
    answer, and raises `ControlAPIError` with the server's `{error, detail}` on an error
    status. Use it as a context manager, or call `close()` when done; closing the client
    leaves the episodes as they are.
    """

    def __init__(self, base_url: str, token: str, *, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, token, timeout=timeout)
        self._http = httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout,
                                  transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the HTTP connections (episodes stay as they are)."""
        self._http.close()

    def _send(self, call: ControlCall[T]) -> T:
        response = self._http.request(call.method, call.path, params=call.params, json=call.json)
        return call.parse(response)

    def health(self) -> HealthResponse:
        """Liveness probe; answers without a valid token."""
        return self._send(operations.health())

    def openapi(self) -> dict[str, Any]:
        """The server's OpenAPI 3.1 document."""
        return self._send(operations.openapi())

    def list_tasks(self) -> TaskList:
        """The tasks episodes can be created from, and custom task folders that failed to load."""
        return self._send(operations.list_tasks())

    def create_episode(
        self,
        task_id: str,
        *,
        seed: int | None = None,
        difficulty: str | None = None,
        reward_weights: RewardWeights | Mapping[str, float] | None = None,
        **fields: Any,
    ) -> CreatedEpisodeResponse:
        """Reset: a new episode. `fields` are the other create request fields (max_steps,
        oracle_budget, record_screenshots, ...), validated before anything is sent."""
        return self._send(operations.create_episode(task_id, seed=seed, difficulty=difficulty,
                                                    reward_weights=reward_weights, **fields))

    def list_episodes(self, status: EpisodeStatus | str | None = None) -> EpisodeList:
        """Episodes the server remembers, oldest first; only those with `status` when given."""
        return self._send(operations.list_episodes(status))

    def get_episode(self, episode_id: str) -> EpisodeStateResponse:
        """An episode's state, budgets and rewards."""
        return self._send(operations.get_episode(episode_id))

    def get_trajectory(self, episode_id: str, *, screenshots: bool = False,
                       observations: bool = False) -> TrajectoryResponse:
        """Every step with its reward breakdown; optionally a screenshot of the page now and
        each step's recorded observation text."""
        return self._send(operations.get_trajectory(episode_id, screenshots=screenshots,
                                                    observations=observations))

    def get_step_screenshot(self, episode_id: str, index: int) -> bytes:
        """The PNG recorded after step `index` (0: after setup), for episodes created with
        record_screenshots."""
        return self._send(operations.get_step_screenshot(episode_id, index))

    def end_episode(self, episode_id: str) -> EpisodeStateResponse:
        """End a running episode now, with failure reason client_step_cap."""
        return self._send(operations.end_episode(episode_id))

    def close_episode(self, episode_id: str) -> EpisodeStateResponse:
        """Close an episode and free its browser context; its record stays readable."""
        return self._send(operations.close_episode(episode_id))

    def export_episodes(
        self, task_id: str | None = None, success: bool | None = None, since: float | None = None,
        until: float | None = None,
    ) -> list[dict[str, Any]]:
        """Recorded episodes that have ended, as training-data rows (see `safebrowse export`)."""
        return self._send(operations.export_episodes(task_id, success, since, until))

    def create_suite(self, suite: str, episodes: int = 1, **fields: Any) -> CreatedSuiteResponse:
        """Start an evaluation: one agent token walks every episode of the suite (`seed`,
        `difficulty`, `max_steps` as for episodes). The agent gets `agent_token` and `mcp_url`."""
        return self._send(operations.create_suite(suite, episodes, **fields))

    def get_suite(self, suite_id: str) -> SuiteReport:
        """The suite's report so far (operator only)."""
        return self._send(operations.get_suite(suite_id))

    def get_curriculum(self) -> CurriculumResponse:
        """Where difficulty "auto" stands, per task."""
        return self._send(operations.get_curriculum())

    def metrics(self) -> str:
        """Prometheus metrics, in the text format."""
        return self._send(operations.metrics())


__all__ = ["ControlClient"]
