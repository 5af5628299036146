"""A real engine for tests: a started EpisodeManager on a background loop, driven synchronously.

The manager is built by the composition root (`safebrowse.server.build_manager`) from
`ServerSettings`, as `safebrowse serve` builds it; a test changes only what it names:
the number of workers, engine settings, extra tasks (test pages, tasks that fail on
purpose), the whole registry, or the oracle.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterable
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


def build_test_manager(
    *,
    workers: int = 1,
    tasks: Iterable[TaskSpec] = (),
    registry: TaskRegistry | None = None,
    oracle_factory: OracleFactory | None = None,
    **engine_overrides: Any,
) -> EpisodeManager:
    """An EpisodeManager, not started: the server's own, with the test's choices.

    `tasks` are added to `registry` (the default registry when None) in a new registry, so a
    registry the caller passes is never changed. `oracle_factory` None means the oracle the
    settings name, as for the server.
    """
    settings = ServerSettings(engine=EngineConfig(workers=workers, **engine_overrides))
    extra = tuple(tasks)
    if extra:
        base = registry if registry is not None else default_registry(settings.engine.extra_tasks_dir)
        registry = TaskRegistry([*base, *extra])
    return build_manager(settings, registry=registry, oracle_factory=oracle_factory)


class EngineHarness:
    """A started EpisodeManager on its own background loop; tests drive it synchronously.

    One browser worker unless told otherwise: most engine tests watch one worker's warm
    contexts or browser, and the machine running them has few cores.
    """

    def __init__(
        self,
        name: str = "engine-tests",
        *,
        workers: int = 1,
        tasks: Iterable[TaskSpec] = (),
        registry: TaskRegistry | None = None,
        oracle_factory: OracleFactory | None = None,
        **engine_overrides: Any,
    ) -> None:
        self.manager = build_test_manager(
            workers=workers, tasks=tasks, registry=registry, oracle_factory=oracle_factory, **engine_overrides)
        self.loop = BackgroundLoop(name)
        try:
            self.run(self.manager.start())
        except BaseException:
            self.loop.close()
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
        """Close every episode and browser, then the loop."""
        try:
            self.run(self.manager.stop())
        finally:
            self.loop.close()
