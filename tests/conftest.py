"""Shared fixtures: a real engine (real Chromium) on a background event loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from engine.config import EngineConfig
from engine.manager import EpisodeManager
from safebrowse.loop import BackgroundLoop
from tasks import default_registry


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll `condition` until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


class EngineHarness:
    """A started EpisodeManager, driven synchronously from tests."""

    def __init__(self, manager: EpisodeManager, loop: BackgroundLoop) -> None:
        self.manager = manager
        self.loop = loop

    def run(self, coroutine, timeout: float = 120.0):
        return self.loop.run(coroutine, timeout)


@pytest.fixture(scope="session")
def engine() -> Iterator[EngineHarness]:
    loop = BackgroundLoop("engine-tests")
    manager = EpisodeManager(EngineConfig(workers=2), default_registry())
    loop.run(manager.start())
    try:
        yield EngineHarness(manager, loop)
    finally:
        loop.run(manager.stop())
        loop.close()


class LiveServer:
    """The whole server (both doors) running on free loopback ports."""

    def __init__(self, server, loop: BackgroundLoop, task) -> None:
        self.server = server
        self.loop = loop
        self._task = task
        self.manager: EpisodeManager = server.manager
        self.mcp_url: str = server.mcp_url
        self.control_url: str = server.control_url
        self.control_token: str = server.control_token

    @property
    def control_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.control_token}"}

    def run(self, coroutine, timeout: float = 120.0):
        return self.loop.run(coroutine, timeout)


def start_live_server(**engine_overrides) -> LiveServer:
    """Start a SafebrowseServer on a background loop; used by the `live_server` fixture."""
    import asyncio
    import secrets

    from safebrowse.server import SafebrowseServer
    from safebrowse.settings import ServerSettings

    loop = BackgroundLoop("live-server")
    settings = ServerSettings(
        mcp_port=0,
        control_port=0,
        control_token="ctl_" + secrets.token_urlsafe(24),
        engine=EngineConfig(**{"workers": 2, **engine_overrides}),
    )

    async def create():
        return SafebrowseServer(settings)

    server = loop.run(create())
    task = asyncio.run_coroutine_threadsafe(server.serve(), loop.loop)

    async def wait_started():
        await asyncio.wait_for(server.started.wait(), 60)

    try:
        loop.run(wait_started())
    except Exception:
        if task.done() and task.exception():
            raise task.exception()
        raise
    return LiveServer(server, loop, task)


def stop_live_server(live: LiveServer) -> None:
    live.loop.loop.call_soon_threadsafe(live.server.request_stop)
    live._task.result(60)
    live.loop.close()


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    live = start_live_server()
    try:
        yield live
    finally:
        stop_live_server(live)
