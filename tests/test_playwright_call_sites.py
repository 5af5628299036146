"""Called from inside Playwright, the cheap call-site capture walks only what Playwright reads."""

from __future__ import annotations

import gc
import traceback
import weakref
from collections.abc import Callable
from typing import Any

import playwright.sync_api as pw
from playwright._impl._connection import _extract_stack_trace_information_from_stack

from engine import playwright_calls

from support.chromium import plain_browser


def _as_playwright(source: str, name: str) -> Callable[..., Any]:
    """A function whose frames Playwright takes for its own (its file is under Playwright's folder)."""
    namespace: dict[str, Any] = {}
    exec(compile(source, playwright_calls._PLAYWRIGHT_DIR + "/_fake_api.py", "exec"), namespace)
    return namespace[name]  # type: ignore[no-any-return]


_api = _as_playwright("def api(capture):\n    return capture()\n", "api")


def _caller() -> Any:
    return _api(playwright_calls.stack)


def _deep(depth: int, capture: Callable[[], Any]) -> Any:
    return capture() if depth == 0 else _deep(depth - 1, capture)


def test_stack_stops_at_the_call_site() -> None:
    frames = _deep(20, _caller)
    assert [f.function for f in frames] == ["api", "_caller"]
    parsed = _extract_stack_trace_information_from_stack(frames, is_internal=False)
    assert parsed["apiName"] == "api"
    assert parsed["frames"][0]["function"] == "_caller" and parsed["frames"][0]["file"] == __file__


def test_extract_stack_keeps_the_frames_an_error_shows() -> None:
    summary = _deep(30, lambda: _api(playwright_calls.extract_stack))
    assert len(summary) == playwright_calls.PLAYWRIGHT_STACK_FRAMES
    assert summary[-1].name == "api" and summary[-2].name == "<lambda>"


def test_extract_stack_reads_as_traceback_does() -> None:
    """Built when first read, the stack holds what `traceback.extract_stack` would have."""

    def both() -> tuple[traceback.StackSummary, traceback.StackSummary]:
        return playwright_calls.extract_stack(), traceback.extract_stack()

    ours, theirs = _deep(5, both)
    assert isinstance(ours, traceback.StackSummary)
    assert [(f.filename, f.lineno, f.name) for f in ours] == [(f.filename, f.lineno, f.name) for f in theirs]
    assert traceback.format_list(ours) == traceback.format_list(theirs)
    assert len(ours) == len(theirs) and ours[-1].name == "both" and bool(ours)


def test_extract_stack_is_a_list_like_any_other() -> None:
    """Every list method sees the entries, first use or not."""

    def both() -> tuple[traceback.StackSummary, traceback.StackSummary]:
        return playwright_calls.extract_stack(), traceback.extract_stack()

    ours, theirs = _deep(3, both)
    assert ours == theirs and repr(ours) == repr(theirs) and ours.count(theirs[-1]) == 1
    grown, _ = _deep(3, both)
    grown.append(theirs[0])  # appended after the captured frames, not before them
    assert grown[-1] is theirs[0] and len(grown) == len(theirs) + 1
    turned, _ = _deep(3, both)
    turned.reverse()
    assert [f.name for f in turned] == [f.name for f in reversed(theirs)]


def test_extract_stack_keeps_no_frame_alive() -> None:
    """The capture holds codes and lines only: the locals of the frames it saw are freed."""

    class Local:
        pass

    def capture() -> tuple[traceback.StackSummary, weakref.ref[Local]]:
        local = Local()
        return playwright_calls.extract_stack(), weakref.ref(local)

    gc.disable()  # freed by reference counting, not by a collection of cycles
    try:
        summary, local = capture()
        assert local() is None
    finally:
        gc.enable()
    assert summary[-1].name == "capture"


def test_calls_and_their_errors_still_name_the_api() -> None:
    playwright_calls.install()
    with plain_browser() as browser:
        page = browser.new_page()
        page.set_content("<button>here</button>")
        assert _deep(40, lambda: page.evaluate("1 + 1")) == 2
        try:
            _deep(40, lambda: page.locator("#missing").click(timeout=50))
        except pw.TimeoutError as error:
            assert str(error).startswith("Locator.click: Timeout 50ms exceeded")
            assert error.stack and "test_playwright_call_sites.py" in error.stack
        else:
            raise AssertionError("the click should have timed out")
