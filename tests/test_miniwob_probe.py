"""MiniWoB's verdict made from the probe run with the page read equals BrowserGym's own `validate`.

The engine runs `validation_probe` in the same page call as its read of the page and judges
from the result (`validate_probed`); BrowserGym's `validate` reads the same globals itself. On
real MiniWoB pages, before and after the task is done (and after a wrong answer), the two agree,
the probe's result comes back through `snapshot_page`, and a probe that throws leaves the read
whole and says nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browsergym.miniwob import ALL_MINIWOB_TASKS
from playwright.sync_api import Browser, Page

from engine import playwright_calls
from engine.observation import snapshot_page
from tasks.miniwob import INFO_PROBE, OneCallSetup, task_class_for

from support.chromium import miniwob_browser

TASKS = {cls.get_task_id(): cls for cls in ALL_MINIWOB_TASKS}


@pytest.fixture(scope="module")
def browser_and_base() -> Iterator[tuple[Browser, str]]:
    playwright_calls.install()
    with miniwob_browser() as browser_and_base:
        yield browser_and_base


@pytest.fixture
def opened(browser_and_base: tuple[Browser, str]) -> Iterator[tuple[Page, str]]:
    """A fresh page (in a context of its own) and the base URL of MiniWoB's pages."""
    browser, base_url = browser_and_base
    context = browser.new_context()
    try:
        yield context.new_page(), base_url
    finally:
        context.close()


def _task(task_id: str, base_url: str, seed: int) -> OneCallSetup:
    task = task_class_for(TASKS[task_id])(seed=seed, base_url=base_url)
    assert isinstance(task, OneCallSetup)
    return task


def _both_verdicts(task: OneCallSetup, page: Page) -> tuple[object, object]:
    cdp = page.context.new_cdp_session(page)
    read = snapshot_page(page, cdp, 500, None, probe=INFO_PROBE)
    assert read is not None and read.probed is not None
    return task.validate_probed(page, [], read.probed), task.validate(page, [])  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", [1, 2])
def test_probed_verdict_equals_browsergyms_before_and_after_success(opened: tuple[Page, str], seed: int) -> None:
    page, base_url = opened
    task = _task("miniwob.click-test", base_url, seed)
    task.setup(page)
    probed, own = _both_verdicts(task, page)
    assert probed == own and own[0] == 0.0 and not own[1]  # type: ignore[index]
    page.click("#subbtn")
    probed, own = _both_verdicts(task, page)
    assert probed == own and own[0] == 1.0 and own[1]  # type: ignore[index]


def test_probed_verdict_equals_browsergyms_after_a_wrong_answer(opened: tuple[Page, str]) -> None:
    page, base_url = opened
    task = _task("miniwob.enter-text", base_url, 3)
    task.setup(page)
    page.fill("#tt", "certainly not the answer")
    page.click("#subbtn")
    probed, own = _both_verdicts(task, page)
    assert probed == own and own[1]  # type: ignore[index]


def test_a_probe_that_throws_leaves_the_read_whole(opened: tuple[Page, str]) -> None:
    page, _base_url = opened
    page.set_content("<button>no MiniWoB here</button>")
    cdp = page.context.new_cdp_session(page)
    read = snapshot_page(page, cdp, 500, None, probe=INFO_PROBE)
    plain = snapshot_page(page, cdp, 500, None)
    assert read is not None and plain is not None
    assert read.probed is None
    assert [e.text for e in read.elements] == [e.text for e in plain.elements] == ["no MiniWoB here"]
    assert read.axtree == plain.axtree
