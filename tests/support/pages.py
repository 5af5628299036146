"""The static pages of `tests/pages/` as tasks.

A page task loads one page from the asset server and never ends on its own, so a test
can act on it as long as it likes and read what the engine did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import playwright.sync_api as pw
from browsergym.core.task import AbstractBrowserTask

from tasks.registry import TaskContext, TaskSpec

PAGES = Path(__file__).resolve().parent.parent / "pages"
PAGES_PREFIX = "/test-pages/"


# BrowserGym ships no type information, so its base class is Any to mypy.
class StaticPageTask(AbstractBrowserTask):  # type: ignore[misc]
    """Open one test page; the verdict is always "not done"."""

    def __init__(self, seed: int, url: str, goal: str) -> None:
        super().__init__(seed)
        self.url = url
        self.goal = goal

    def setup(self, page: pw.Page) -> tuple[str, dict[str, Any]]:
        page.goto(self.url)
        return self.goal, {}

    def validate(self, page: pw.Page, chat_messages: list[Any]) -> tuple[float, bool, str, dict[str, Any]]:
        return 0.0, False, "", {}


def page_task(task_id: str, page: str, goal: str, **spec_fields: Any) -> TaskSpec:
    """A task spec for `tests/pages/<page>`; `spec_fields` are further `TaskSpec` fields."""

    def build(context: TaskContext) -> StaticPageTask:
        return StaticPageTask(context.seed, context.asset_origin + PAGES_PREFIX + page, goal)

    return TaskSpec(
        id=task_id,
        family="test",
        description=goal,
        factory=build,
        asset_mounts=((PAGES_PREFIX, PAGES),),
        **spec_fields,
    )
