"""MiniWoB setup: the one-call setup and warm, preloaded contexts start the same episode
as BrowserGym's own setup on a fresh page, for every seed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browsergym.miniwob import ALL_MINIWOB_TASKS
from browsergym.miniwob.base import AbstractMiniwobTask
from playwright.sync_api import Browser

from tasks.miniwob import OneCallSetup, task_class_for

from support.chromium import miniwob_browser
from support.waiting import wait_for

ONE_CALL_TASKS = [cls for cls in ALL_MINIWOB_TASKS if issubclass(task_class_for(cls), OneCallSetup)]
# What the page shows once the episode has started (the human display is removed).
PROBLEM_HTML = "document.getElementById('wrap').innerHTML"
# How long a page is watched after setup to see whether it changes without any action.
SELF_CHANGE_MS = 150


@pytest.fixture(scope="module")
def browser_and_base() -> Iterator[tuple[Browser, str]]:
    with miniwob_browser() as browser_and_base:
        yield browser_and_base


def start(browser: Browser, task: AbstractMiniwobTask, preload: bool) -> tuple[str, dict, str, bool]:
    """Goal, info and the problem's HTML right after setup, and whether the page then changed
    by itself (its own timers: drag-cube's animation writes the cube's transform after load)."""
    context = browser.new_context(viewport=task.viewport)
    try:
        page = context.new_page()
        if preload:
            # As a warm spare is left: committed, possibly still loading its scripts.
            page.goto(task.url, wait_until="commit")
        goal, info = task.setup(page)
        problem = page.evaluate(PROBLEM_HTML)
        page.wait_for_timeout(SELF_CHANGE_MS)
        return goal, info, problem, page.evaluate(PROBLEM_HTML) != problem
    finally:
        context.close()


def test_most_tasks_use_the_one_call_setup() -> None:
    overriding = {cls.get_task_id() for cls in ALL_MINIWOB_TASKS} - {cls.get_task_id() for cls in ONE_CALL_TASKS}
    # The two whose classes rewrite how the goal is read keep BrowserGym's setup.
    assert overriding == {"miniwob.click-menu-2", "miniwob.use-colorwheel-2"}


@pytest.mark.slow
def test_one_call_setup_on_a_preloaded_page_starts_browsergyms_episode(browser_and_base) -> None:
    """Goal and info match for every task; the generated problem too, for every task BrowserGym
    does not mark nondeterministic and whose page does not change by itself after setup (when
    it is read then depends on timing, not on the setup)."""
    browser, base = browser_and_base
    goal_mismatches, page_mismatches, compared = [], [], 0
    for index, task_class in enumerate(ONE_CALL_TASKS):
        seed = 100 + index
        expected = start(browser, task_class(seed=seed, base_url=base), preload=False)
        got = start(browser, task_class_for(task_class)(seed=seed, base_url=base), preload=True)
        if (got[0], got[1]) != (expected[0], expected[1]):
            goal_mismatches.append((task_class.get_task_id(), expected[:2], got[:2]))
        self_changing = expected[3] or got[3]
        if not task_class.nondeterministic and not self_changing:
            compared += 1
            if got[2] != expected[2]:
                page_mismatches.append(task_class.get_task_id())
    assert not goal_mismatches, goal_mismatches
    assert not page_mismatches, page_mismatches
    assert compared >= 0.9 * len(ONE_CALL_TASKS), f"only {compared} pages were stable enough to compare"


@pytest.mark.parametrize("task_id", ["miniwob.click-test", "miniwob.login-user"])
def test_a_warm_preloaded_context_gives_the_same_episode_as_a_cold_one(engine, task_id: str) -> None:
    manager = engine.manager
    spec = manager.registry.get(task_id)
    url = manager.assets.origin + spec.preload_path
    first = engine.run(manager.create(task_id, seed=5))  # teaches the workers which page comes next
    engine.run(manager.close(first.episode_id))
    wait_for(lambda: any(worker.has_spare_at(url) for worker in manager.pool.workers),
             "no worker preloaded the task's page while idle")
    preloaded = [worker for worker in manager.pool.workers if worker.has_spare_at(url)]
    warm = engine.run(manager.create(task_id, seed=5))
    try:
        assert manager.get(warm.episode_id).worker in preloaded  # the pool chose a worker with the page ready
        assert warm.goal == first.goal
        assert warm.observation.url == first.observation.url == url
        warm_elements = [(e.role, e.text) for e in warm.observation.elements]
        assert warm_elements == [(e.role, e.text) for e in first.observation.elements]
    finally:
        engine.run(manager.close(warm.episode_id))
