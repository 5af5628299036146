"""An asyncio loop on a background thread, for synchronous callers (tests, benchmarks,
the sync client) that need to drive the async engine or servers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    def __init__(self, name: str = "safebrowse-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = 120.0) -> T:
        """Run a coroutine on the loop and wait for its result. One still running after `timeout`
        is cancelled as the caller is told (TimeoutError): nobody would await what it did next."""
        answer = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return answer.result(timeout)
        except concurrent.futures.TimeoutError:
            answer.cancel()
            raise

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
