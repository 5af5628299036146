"""The cheap call-site capture gives Playwright what the real one did."""

from __future__ import annotations

import inspect
import traceback

import playwright.sync_api as pw
import pytest
from playwright._impl import _connection, _sync_base

from engine import playwright_calls

from support.chromium import plain_browser


def _outer(capture):
    return _inner(capture)


def _inner(capture):
    return capture()


def test_stack_has_the_fields_of_inspect_stack() -> None:
    fast, real = _outer(lambda: (playwright_calls.stack(), inspect.stack()))  # one line: same positions
    assert [(f.filename, f.lineno, f.function) for f in fast] == [(f.filename, f.lineno, f.function) for f in real]
    assert [f.frame for f in fast] == [f.frame for f in real]
    assert all(f.code_context is None for f in fast)


def test_extract_stack_matches_and_reads_lines_only_when_asked() -> None:
    fast, real = _outer(lambda: (playwright_calls.extract_stack(), traceback.extract_stack()))
    assert [(f.filename, f.lineno, f.name) for f in fast] == [(f.filename, f.lineno, f.name) for f in real]
    assert fast[-2].line == real[-2].line == "return capture()"


def test_installed_in_playwrights_modules_only() -> None:
    playwright_calls.install()
    playwright_calls.install()  # idempotent
    assert playwright_calls.installed()
    assert _sync_base.inspect.stack is playwright_calls.stack
    assert _connection.traceback.extract_stack is playwright_calls.extract_stack
    assert _connection.inspect.getmembers is inspect.getmembers  # everything else is the real module
    assert inspect.stack is not playwright_calls.stack and traceback.extract_stack is not playwright_calls.extract_stack


def test_errors_still_name_the_playwright_call() -> None:
    """Engine error messages are built from Playwright's "Locator.click: ..." form."""
    playwright_calls.install()
    with plain_browser() as browser:
        page = browser.new_page()
        page.set_content("<button>here</button>")
        with pytest.raises(pw.TimeoutError) as caught:
            page.locator("#missing").click(timeout=50)
        assert str(caught.value).startswith("Locator.click: Timeout 50ms exceeded")
        assert page.evaluate("1 + 1") == 2
