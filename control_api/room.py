"""What the control API needs of the room it controls, and nothing more.

A single server hands the control API its `engine.manager.EpisodeManager`; the front
of a Ray cluster hands it a `cluster.front.ClusterRoom`, whose episodes live on browser
nodes. Both satisfy `TrainerRoom`, so every endpoint serves either without knowing which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from engine.book import EpisodeBook
from engine.config import EngineConfig
from engine.episode_errors import CreatedEpisode
from engine.placement import NodeLoad, Placement
from engine.recorder import Recording
from engine.records import ClosedBy, EpisodeLimits, EpisodeState, FailureReason, StepRecord
from engine.snapshot import EpisodeSnapshot
from engine.suites.desk import OpenedSuite
from engine.suites.plan import SuitePlan
from engine.suites.report import SuiteReport
from tasks.registry import TaskRegistry


class SuiteService(Protocol):
    """Where `POST /v1/suites` starts suites and `GET /v1/suites/{id}` reads their reports: a single
    server's `engine.suites.SuiteDesk`, or a cluster's `cluster.suites.ClusterSuites`."""

    takes_new_suites: bool

    async def start(self, plan: SuitePlan, suite: str) -> OpenedSuite: ...

    async def report_of(self, suite_id: str) -> SuiteReport: ...


class TrainerRoom(Protocol):
    registry: TaskRegistry
    config: EngineConfig
    book: EpisodeBook | None
    on_step: list[Callable[[StepRecord], None]]
    on_end: list[Callable[[EpisodeState], None]]

    async def create(
        self,
        task_id: str,
        seed: int | None = None,
        limits: EpisodeLimits | None = None,
        difficulty: str | None = None,
        recording: Recording | None = None,
        observe: bool = True,
    ) -> CreatedEpisode: ...

    def snapshot(self, episode_id: str) -> EpisodeSnapshot: ...

    def state(self, episode_id: str) -> EpisodeState: ...

    def states(self) -> list[EpisodeState]: ...

    def episode_ids(self) -> set[str]: ...

    def history(self) -> list[EpisodeState]: ...

    def trainer_data_items(self) -> Iterator[tuple[str, Mapping[str, Any]]]: ...

    def keep_trainer_data(self, episode_id: str, data: Mapping[str, Any]) -> None: ...

    async def close(self, episode_id: str, by: ClosedBy = "trainer") -> EpisodeState: ...

    async def end(self, episode_id: str, reason: FailureReason) -> EpisodeState: ...

    async def screenshot(self, episode_id: str) -> bytes: ...

    def placement(self, episode_id: str) -> Placement: ...

    def node_loads(self) -> list[NodeLoad]: ...


__all__ = ["SuiteService", "TrainerRoom"]
