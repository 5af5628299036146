"""A real engine for tests: a started EpisodeManager on a background loop, driven synchronously.

The manager is built by the composition root (`safebrowse.server.build_manager`) from
`ServerSettings`, as `safebrowse serve` builds it; a test changes only what it names:
the number of workers, engine settings, extra tasks (test pages, tasks that fail on
purpose), the whole registry, or the oracle. Every engine records its episodes in a
book of its own: in a fresh temporary data dir, removed when it stops, unless the test
names a data dir (and then keeps it).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar

from engine.agent_session import AgentSession
from engine.agent_view import Observation
from engine.config import EngineConfig
from engine.manager import CreatedEpisode, EpisodeManager
from engine.oracle import OracleFactory
from safebrowse.loop import BackgroundLoop
from safebrowse.server import build_manager
from safebrowse.settings import ServerSettings
from tasks import default_registry
from tasks.registry import TaskRegistry, TaskSpec

T = TypeVar("T")

RUN_TIMEOUT_S = 120.0


def temporary_data_dir(name: str) -> Path:
    """A fresh data dir for one test server: never the user's own."""
    return Path(tempfile.mkdtemp(prefix=f"safebrowse-{name}-"))


def build_test_manager(
    *,
    data_dir: Path,
    workers: int = 1,
    tasks: Iterable[TaskSpec] = (),
    registry: TaskRegistry | None = None,
    oracle_factory: OracleFactory | None = None,
    book_settings: dict[str, Any] | None = None,
    **engine_overrides: Any,
) -> EpisodeManager:
    """An EpisodeManager, not started: the server's own, with the test's choices, recording in
    `data_dir` (`book_settings`: the settings' `book_*` fields).

    `tasks` are added to `registry` (the default registry when None) in a new registry, so a
    registry the caller passes is never changed. `oracle_factory` None means the oracle the
    settings name, as for the server.
    """
    settings = ServerSettings(data_dir=data_dir, engine=EngineConfig(workers=workers, **engine_overrides),
                              **(book_settings or {}))
    extra = tuple(tasks)
    if extra:
        base = registry if registry is not None else default_registry(settings.engine.extra_tasks_dir)
        registry = TaskRegistry([*base, *extra])
    return build_manager(settings, registry=registry, oracle_factory=oracle_factory)


class EngineHarness:
    """A started EpisodeManager on its own background loop; tests drive it synchronously.

    One browser worker unless told otherwise: most engine tests watch one worker's warm
    contexts or browser, and the machine running them has few cores. Its book is in
    `data_dir`: the one given (kept), or a temporary one (removed by `stop`).
    """

    def __init__(
        self,
        name: str = "engine-tests",
        *,
        workers: int = 1,
        tasks: Iterable[TaskSpec] = (),
        registry: TaskRegistry | None = None,
        oracle_factory: OracleFactory | None = None,
        data_dir: Path | None = None,
        book_settings: dict[str, Any] | None = None,
        **engine_overrides: Any,
    ) -> None:
        self._own_data_dir = data_dir is None
        self.data_dir = temporary_data_dir(name) if data_dir is None else data_dir
        try:
            self.manager = build_test_manager(
                data_dir=self.data_dir, workers=workers, tasks=tasks, registry=registry,
                oracle_factory=oracle_factory, book_settings=book_settings, **engine_overrides)
        except BaseException:
            self._remove_data_dir()
            raise
        self.loop = BackgroundLoop(name)
        try:
            self.run(self.manager.start())
        except BaseException:
            self.loop.close()
            self._remove_data_dir()
            raise

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = RUN_TIMEOUT_S) -> T:
        """Run `coroutine` on the engine's loop and return its result."""
        return self.loop.run(coroutine, timeout)

    def session(self, agent_token: str) -> AgentSession:
        """The agent session an agent token opens, as the agent door gets it."""
        session = self.manager.agent_session(agent_token)
        assert session is not None, "the agent token opens no episode"
        return session

    def open(self, task_id: str, seed: int = 1) -> tuple[CreatedEpisode, AgentSession]:
        """Create an episode and return it with its agent session."""
        created = self.run(self.manager.create(task_id, seed=seed))
        return created, self.session(created.agent_token)

    def element(self, observation: Observation | None, html_id: str) -> str:
        """The element id (what an agent passes to a tool) of the element whose HTML `id` is `html_id`."""
        assert observation is not None, "the episode returned no observation"
        for element in observation.elements:
            if element.attributes.get("id") == html_id:
                return element.id
        raise AssertionError(f"no element with id attribute {html_id!r}")

    def stop(self) -> None:
        """Close every episode and browser, then the loop; remove a temporary data dir."""
        try:
            self.run(self.manager.stop())
        finally:
            self.loop.close()
            self._remove_data_dir()

    def _remove_data_dir(self) -> None:
        if self._own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
