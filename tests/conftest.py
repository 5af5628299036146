"""Shared fixtures: a real engine (real Chromium) and the whole server, once per session.

What they are built from lives in `support/`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.engine import EngineHarness
from support.live import LiveServer, start_live_server, stop_live_server


@pytest.fixture(scope="session")
def engine() -> Iterator[EngineHarness]:
    """Two workers with every registered task, for tests that only create and play episodes."""
    harness = EngineHarness("engine-tests", workers=2)
    try:
        yield harness
    finally:
        harness.stop()


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    live = start_live_server()
    try:
        yield live
    finally:
        stop_live_server(live)
