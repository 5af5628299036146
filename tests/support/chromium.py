"""Chromium launched as the engine launches it, for tests that drive Playwright directly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

from engine.assets import AssetServer, miniwob_html_dir
from engine.config import CHROMIUM_FLAGS, find_chromium
from tasks.miniwob import MINIWOB_PREFIX


@contextmanager
def plain_browser() -> Iterator[Browser]:
    """A Chromium with the engine's flags and no worker around it (closed on exit)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=list(CHROMIUM_FLAGS))
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def miniwob_browser() -> Iterator[tuple[Browser, str]]:
    """`plain_browser` and the base URL of MiniWoB's tasks on a loopback asset server."""
    assets = AssetServer().start()
    assets.mount("/", miniwob_html_dir())
    try:
        with plain_browser() as browser:
            yield browser, assets.origin + MINIWOB_PREFIX
    finally:
        assets.stop()
