"""Test pages from `tests/pages/` as tasks, and a one-worker engine to open them in.

A page task loads one static page from the asset server and never ends on its
own, so a test can act on it as long as it likes and read what the engine did.
"""

from __future__ import annotations

from pathlib import Path

import playwright.sync_api as pw
from browsergym.core.task import AbstractBrowserTask

from engine.config import EngineConfig
from engine.manager import EpisodeManager
from safebrowse.loop import BackgroundLoop
from tasks import miniwob
from tasks.registry import TaskRegistry, TaskSpec

PAGES = Path(__file__).parent / "pages"
PAGES_PREFIX = "/test-pages/"


class StaticPageTask(AbstractBrowserTask):
    """Open one test page; the verdict is always "not done"."""

    def __init__(self, seed: int, url: str, goal: str) -> None:
        super().__init__(seed)
        self.url = url
        self.goal = goal

    def setup(self, page: pw.Page) -> tuple[str, dict]:
        page.goto(self.url)
        return self.goal, {}

    def validate(self, page: pw.Page, chat_messages: list) -> tuple[float, bool, str, dict]:
        return 0.0, False, "", {}


def page_task(task_id: str, page: str, goal: str, **spec_fields: object) -> TaskSpec:
    """A task spec for `tests/pages/<page>`."""
    return TaskSpec(
        id=task_id,
        family="test",
        description=goal,
        factory=lambda ctx: StaticPageTask(ctx.seed, ctx.asset_origin + PAGES_PREFIX + page, goal),
        asset_mounts=((PAGES_PREFIX, PAGES),),
        **spec_fields,  # type: ignore[arg-type]
    )


class EngineHarness:
    """An EpisodeManager with one browser worker, MiniWoB and the given page tasks."""

    def __init__(self, name: str, *page_tasks: TaskSpec, **engine_overrides: object) -> None:
        self.loop = BackgroundLoop(name)
        config = EngineConfig(**{"workers": 1, **engine_overrides})  # type: ignore[arg-type]
        self.manager = EpisodeManager(config, TaskRegistry([*miniwob.specs(), *page_tasks]))
        self.loop.run(self.manager.start())

    def run(self, coroutine):
        return self.loop.run(coroutine)

    def open(self, task_id: str, seed: int = 1):
        created = self.run(self.manager.create(task_id, seed=seed))
        return created, self.manager.agent_session(created.agent_token)

    def element(self, observation, id_attribute: str) -> str:
        """The element id of the element whose HTML `id` attribute is `id_attribute`."""
        for element in observation.elements:
            if element.attributes.get("id") == id_attribute:
                return element.id
        raise AssertionError(f"no element with id attribute {id_attribute!r}")

    def stop(self) -> None:
        self.run(self.manager.stop())
        self.loop.close()
