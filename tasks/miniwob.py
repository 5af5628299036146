"""MiniWoB++ tasks, as BrowserGym registers them, served from the `miniwob` package."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import playwright.sync_api as pw
from browsergym.miniwob import ALL_MINIWOB_TASKS
from browsergym.miniwob.base import AbstractMiniwobTask

from tasks.registry import TaskContext, TaskSpec

MINIWOB_PREFIX = "/miniwob/"
SETUP_SCRIPT = Path(__file__).with_name("miniwob_setup.js")
# BrowserGym's zoom for visual agents, kept so the task object looks as BrowserGym leaves it.
SCALE_FACTOR = 1.5


# The globals BrowserGym's `_get_info` reads after every action, as one page function.
INFO_PROBE = (
    "() => [WOB_REWARD_GLOBAL, WOB_RAW_REWARD_GLOBAL, WOB_REWARD_REASON, WOB_DONE_GLOBAL, WOB_EPISODE_ID, "
    "WOB_TASK_READY]"
)


@cache
def _setup_script() -> str:
    return SETUP_SCRIPT.read_text(encoding="utf-8")


class OneCallSetup:
    """BrowserGym's MiniWoB setup in one page call, on a page that may already be loaded.

    BrowserGym's own `setup` navigates, then makes five separate page calls (hide the
    display, seed and start, wait for readiness with a per-frame poll, read the goal,
    read the globals). This does the same work in the same order with the same seed
    draw, so goals match BrowserGym's for every seed, but in one call; and it skips the
    navigation when the worker has already loaded the task's page into a warm context
    (a fresh load that nothing has touched: MiniWoB only shows its start cover on load).
    """

    url: str
    remove_human_display: bool
    episode_max_time: int
    page: pw.Page

    # What the engine evaluates, with its read of the page, for `validate_probed` (a page call
    # fewer per step than BrowserGym's `validate`, which reads these globals on its own).
    validation_probe = INFO_PROBE
    _probed: list[Any] | None = None

    def validate_probed(
        self, page: pw.Page, chat_messages: list[Any], probed: list[Any]
    ) -> tuple[float, bool, str, dict[str, Any]]:
        """BrowserGym's `validate`, with the globals it reads already read (`probed`, the result of
        `validation_probe` on the same page, just before). Its own checks of the page stay."""
        self._probed = probed
        try:
            return self.validate(page, chat_messages)  # type: ignore[attr-defined, no-any-return]
        finally:
            self._probed = None

    def _get_info(self) -> dict[str, Any]:
        if self._probed is None:
            return super()._get_info()  # type: ignore[misc, no-any-return]
        return _info(self._probed)

    def setup(self, page: pw.Page) -> tuple[str, dict[str, Any]]:
        self.page = page
        if page.url == self.url:
            page.wait_for_load_state("load")  # a preloaded page may still be loading
        else:
            page.goto(self.url)
        started = page.evaluate(
            _setup_script(),
            {
                "removeHumanDisplay": self.remove_human_display,
                "seed": self.random.randint(0, 1000000),  # type: ignore[attr-defined]
                "episodeMaxTime": self.episode_max_time,
            },
        )
        page._bgym_scale_factor = SCALE_FACTOR  # type: ignore[attr-defined]
        if not started["ready"]:
            page.wait_for_function("() => WOB_TASK_READY", polling=10)
            return self._get_goal(), self._get_info()  # type: ignore[attr-defined]
        return started["goal"], _info(started["info"])


def _info(globals_read: list[Any]) -> dict[str, Any]:
    """The task's globals, in the order `INFO_PROBE` reads them, as BrowserGym's `_get_info` names them."""
    reward, raw_reward, reason, done, episode_id, ready = globals_read
    return {
        "REWARD_GLOBAL": reward,
        "RAW_REWARD_GLOBAL": raw_reward,
        "REWARD_REASON": reason,
        "DONE_GLOBAL": done,
        "EPISODE_ID": episode_id,
        "TASK_READY": ready,
    }


@cache
def task_class_for(task_class: type[AbstractMiniwobTask]) -> type[AbstractMiniwobTask]:
    """The class an episode runs: BrowserGym's, with the one-call setup when it fits.

    Tasks whose class overrides `setup` (to rewrite how the goal is read) keep
    BrowserGym's own setup, which their override calls. One class per task, made once.
    """
    if task_class.setup is not AbstractMiniwobTask.setup:
        return task_class
    return type(task_class.__name__, (OneCallSetup, task_class), {"__module__": __name__})


def _factory(runnable: type[AbstractMiniwobTask]) -> Callable[[TaskContext], AbstractMiniwobTask]:
    def build(context: TaskContext) -> AbstractMiniwobTask:
        # MiniWoB pages load ../core/*.js, so the package's whole html/ folder is
        # mounted at the asset server's root and the tasks live under /miniwob/.
        return runnable(seed=context.seed, base_url=context.asset_origin + MINIWOB_PREFIX)

    return build


def specs() -> list[TaskSpec]:
    return [_spec(task_class_for(task_class)) for task_class in ALL_MINIWOB_TASKS]


def _spec(runnable: type[AbstractMiniwobTask]) -> TaskSpec:
    page_path: str = MINIWOB_PREFIX + runnable.subdomain + ".html"
    return TaskSpec(
        id=runnable.get_task_id(),
        family="miniwob",
        description=runnable.desc,
        factory=_factory(runnable),
        # BrowserGym's own setup (kept by the two tasks that override it) navigates
        # again, so a preloaded page would only be thrown away.
        preload_path=page_path if issubclass(runnable, OneCallSetup) else None,
    )
