"""Every operation of the control API, as a request to send and a reader of its answer.

One function per operation, named by the operation's id in `control_api.routes`.
Each returns a `ControlCall`: the method, path, query and JSON body of the request,
and how to turn the response into the model `control_api.schemas` declares for it.
`ControlClient` and `AsyncControlClient` only send the call and hand the response
back to `ControlCall.parse`, so a path, a body or a parser is written here once.

Arguments are validated with the server's own request and query models before
anything is sent, so a bad limit or status fails as a pydantic `ValidationError`
without a round trip.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from control_api.schemas import (
    CreatedEpisodeResponse,
    CreatedSuiteResponse,
    CreateEpisodeRequest,
    CreateSuiteRequest,
    CurriculumResponse,
    EndEpisodeRequest,
    EpisodeList,
    EpisodeListQuery,
    EpisodeStateResponse,
    ExportQuery,
    HealthResponse,
    TaskList,
    TrajectoryQuery,
    TrajectoryResponse,
)
from engine.records import EpisodeStatus
from engine.reward import RewardWeights
from engine.suites.report import SuiteReport
from safebrowse.client._errors import ControlAPIError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ControlCall(Generic[T]):
    """One operation ready to go out, and how to read the answer to it."""

    operation_id: str
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None

    def parse(self, response: httpx.Response) -> T:
        """The operation's result, or `ControlAPIError` for an error status."""
        if response.is_error:
            raise ControlAPIError.from_response(response)
        return self.read(response)


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    def read(response: httpx.Response) -> M:
        return model.model_validate_json(response.content)

    return read


def _json_object(response: httpx.Response) -> dict[str, Any]:
    document: dict[str, Any] = response.json()
    return document


def _content(response: httpx.Response) -> bytes:
    return response.content


def _text(response: httpx.Response) -> str:
    return response.text


def _episode_path(episode_id: str, tail: str = "") -> str:
    """An episode's path; the id is escaped so that no id can reach another route."""
    return f"/v1/episodes/{quote(episode_id, safe='')}{tail}"


def _query(query: BaseModel) -> dict[str, Any] | None:
    """The query string of a validated query model: only what differs from the defaults."""
    params = query.model_dump(mode="json", exclude_defaults=True)
    return params or None


# -- the operations, in the order of the route table -----------------------------------------


def health() -> ControlCall[HealthResponse]:
    return ControlCall("health", "GET", "/v1/health", _model(HealthResponse))


def openapi() -> ControlCall[dict[str, Any]]:
    return ControlCall("openapi", "GET", "/v1/openapi.json", _json_object)


def list_tasks() -> ControlCall[TaskList]:
    return ControlCall("list_tasks", "GET", "/v1/tasks", _model(TaskList))


def create_episode(
    task_id: str,
    *,
    seed: int | None = None,
    difficulty: str | None = None,
    reward_weights: RewardWeights | Mapping[str, float] | None = None,
    **fields: Any,
) -> ControlCall[CreatedEpisodeResponse]:
    weights = RewardWeights.model_validate(reward_weights) if reward_weights is not None else None
    request = CreateEpisodeRequest(task_id=task_id, seed=seed, difficulty=difficulty,
                                   reward_weights=weights, **fields)
    body = request.model_dump(mode="json", exclude_none=True)
    return ControlCall("create_episode", "POST", "/v1/episodes", _model(CreatedEpisodeResponse), json=body)


def list_episodes(status: EpisodeStatus | str | None = None) -> ControlCall[EpisodeList]:
    params = _query(EpisodeListQuery.model_validate({"status": status}))
    return ControlCall("list_episodes", "GET", "/v1/episodes", _model(EpisodeList), params=params)


def get_episode(episode_id: str) -> ControlCall[EpisodeStateResponse]:
    return ControlCall("get_episode", "GET", _episode_path(episode_id), _model(EpisodeStateResponse))


def get_trajectory(
    episode_id: str, *, screenshots: bool = False, observations: bool = False
) -> ControlCall[TrajectoryResponse]:
    params = _query(TrajectoryQuery(screenshots=screenshots, observations=observations))
    return ControlCall("get_trajectory", "GET", _episode_path(episode_id, "/trajectory"),
                       _model(TrajectoryResponse), params=params)


def get_step_screenshot(episode_id: str, index: int) -> ControlCall[bytes]:
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"a step index is an int from 0 (after setup), not {index!r}")
    return ControlCall("get_step_screenshot", "GET", _episode_path(episode_id, f"/steps/{index}/screenshot.png"),
                       _content)


def end_episode(episode_id: str) -> ControlCall[EpisodeStateResponse]:
    body = EndEpisodeRequest().model_dump(mode="json")
    return ControlCall("end_episode", "POST", _episode_path(episode_id, "/end"), _model(EpisodeStateResponse),
                       json=body)


def close_episode(episode_id: str) -> ControlCall[EpisodeStateResponse]:
    return ControlCall("close_episode", "DELETE", _episode_path(episode_id), _model(EpisodeStateResponse))


def _json_lines(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def export_episodes(
    task_id: str | None = None, success: bool | None = None, since: float | None = None, until: float | None = None
) -> ControlCall[list[dict[str, Any]]]:
    params = _query(ExportQuery(task_id=task_id, success=success, since=since, until=until))
    return ControlCall("export_episodes", "GET", "/v1/export", _json_lines, params=params)


def create_suite(suite: str, episodes: int = 1, **fields: Any) -> ControlCall[CreatedSuiteResponse]:
    body = CreateSuiteRequest(suite=suite, episodes=episodes, **fields).model_dump(mode="json", exclude_none=True)
    return ControlCall("create_suite", "POST", "/v1/suites", _model(CreatedSuiteResponse), json=body)


def get_suite(suite_id: str) -> ControlCall[SuiteReport]:
    return ControlCall("get_suite", "GET", f"/v1/suites/{quote(suite_id, safe='')}", _model(SuiteReport))


def get_curriculum() -> ControlCall[CurriculumResponse]:
    return ControlCall("get_curriculum", "GET", "/v1/curriculum", _model(CurriculumResponse))


def metrics() -> ControlCall[str]:
    return ControlCall("metrics", "GET", "/metrics", _text)


__all__ = [
    "ControlCall",
    "close_episode",
    "create_episode",
    "create_suite",
    "end_episode",
    "get_curriculum",
    "get_episode",
    "get_step_screenshot",
    "get_suite",
    "get_trajectory",
    "health",
    "list_episodes",
    "list_tasks",
    "metrics",
    "openapi",
]
