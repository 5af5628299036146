"""`engine.playwright_together.together`: calls of the sync API in flight at once, answered in order."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import playwright.sync_api as pw
import pytest

from engine.playwright_together import together

from support.chromium import plain_browser

# Each waits (up to 2 s) for the other to have started: made one after the other, the first
# gives up and answers "alone".
WAIT_FOR = """([me, other]) => new Promise((resolve) => {
    window[me] = true;
    const started = performance.now();
    const poll = setInterval(() => {
        if (window[other]) { clearInterval(poll); resolve(me + " met " + other); }
        else if (performance.now() - started > 2000) { clearInterval(poll); resolve(me + " alone"); }
    }, 5);
})"""


@pytest.fixture(scope="module")
def page() -> Iterator[pw.Page]:
    with plain_browser() as browser:
        context = browser.new_context()
        yield context.new_page()
        context.close()


def test_calls_are_in_flight_together_and_answered_in_order(page: pw.Page) -> None:
    page.evaluate("() => { delete window.a; delete window.b; }")
    session = page.context.new_cdp_session(page)
    try:
        first, second, evaluated = together(
            page,
            page._impl_obj.evaluate(WAIT_FOR, ["a", "b"]),
            page._impl_obj.evaluate(WAIT_FOR, ["b", "a"]),
            session._impl_obj.send(method="Runtime.evaluate", params={"expression": "1 + 1", "returnByValue": True}),
        )
    finally:
        session.detach()
    assert (first, second, evaluated["result"]["value"]) == ("a met b", "b met a", 2)
    # The same two calls made one by one: the first waits alone.
    page.evaluate("() => { delete window.a; delete window.b; }")
    assert page.evaluate(WAIT_FOR, ["a", "b"]) == "a alone"


def test_the_first_failed_call_is_raised_after_every_call_has_finished(page: pw.Page) -> None:
    page.evaluate("() => { window.done = []; }")
    slow = "() => new Promise((resolve) => setTimeout(() => { window.done.push('slow'); resolve(1); }, 200))"
    with pytest.raises(pw.Error, match="first failure"):
        together(
            page,
            page._impl_obj.evaluate(slow),
            page._impl_obj.evaluate("() => { throw new Error('first failure'); }"),
            page._impl_obj.evaluate("() => { throw new Error('second failure'); }"),
        )
    assert page.evaluate("() => window.done") == ["slow"]
    # The page and the sync API go on as usual.
    assert page.evaluate("() => 40 + 2") == 42


def test_calls_on_a_stopped_playwright_are_refused_and_closed() -> None:
    """On a thread of its own: a thread runs one sync Playwright at a time (the fixture's is open)."""

    def on_a_stopped_playwright() -> tuple[str, list[str]]:
        with plain_browser() as browser:
            page = browser.new_context().new_page()
        calls = (page._impl_obj.evaluate("() => 1"), page._impl_obj.title())
        try:
            together(page, *calls)
        except pw.Error as error:
            return str(error), [inspect.getcoroutinestate(call) for call in calls]
        return "no error", []

    with ThreadPoolExecutor(1) as thread:
        error, states = thread.submit(on_a_stopped_playwright).result(60)
    assert "Event loop is closed" in error
    assert states == [inspect.CORO_CLOSED, inspect.CORO_CLOSED]
