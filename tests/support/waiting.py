"""Waiting for what the engine does by itself: warm contexts, idle workers, reaped episodes."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_INTERVAL_S = 0.05


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll `condition` until it holds; fail with `what` after `timeout` seconds.

    Polling rather than sleeping a fixed time: the engine's workers reach these states on
    their own threads, sooner or later depending on the machine's load.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(POLL_INTERVAL_S)
