"""The whole safebrowse server (both doors, real Chromium) on free loopback ports.

The server runs on a background event loop of this process, exactly as
`safebrowse serve` composes it (`SafebrowseServer`); benchmark clients reach
it only over HTTP, from their own event loop, like a trainer and an agent on
the same host would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
from dataclasses import dataclass

from engine.config import EngineConfig
from safebrowse.loop import BackgroundLoop
from safebrowse.server import SafebrowseServer
from safebrowse.settings import ServerSettings

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0


@dataclass
class LiveServer:
    server: SafebrowseServer
    loop: BackgroundLoop
    task: concurrent.futures.Future[None]

    @property
    def mcp_url(self) -> str:
        return self.server.mcp_url

    @property
    def control_url(self) -> str:
        return self.server.control_url

    @property
    def control_token(self) -> str:
        return self.server.control_token

    def stop(self) -> None:
        self.loop.loop.call_soon_threadsafe(self.server.request_stop)
        try:
            self.task.result(STOP_TIMEOUT_S)
        finally:
            self.loop.close()


def start_server(**engine_overrides: object) -> LiveServer:
    """Start a `SafebrowseServer` with a fresh control token and wait until both doors listen."""
    loop = BackgroundLoop("bench-server")
    settings = ServerSettings(
        mcp_port=0,
        control_port=0,
        control_token="ctl_" + secrets.token_urlsafe(24),
        engine=EngineConfig(**engine_overrides),  # type: ignore[arg-type]
    )

    async def create() -> SafebrowseServer:
        return SafebrowseServer(settings)

    server = loop.run(create())
    task = asyncio.run_coroutine_threadsafe(server.serve(), loop.loop)

    async def wait_started() -> None:
        await asyncio.wait_for(server.started.wait(), START_TIMEOUT_S)

    try:
        loop.run(wait_started(), START_TIMEOUT_S + 5)
    except BaseException:
        if task.done() and task.exception() is not None:
            loop.close()
            raise task.exception() from None  # type: ignore[misc]
        raise
    if task.done():
        loop.close()
        raise RuntimeError(f"the server stopped while starting: {task.exception()!r}")
    return LiveServer(server, loop, task)
