"""The whole server, both doors, on free loopback ports: `SafebrowseServer` as `safebrowse serve` runs it.

It runs on a background loop in the test process, so a test can reach into its engine
(`live.manager`) while agents and trainers use its doors over real HTTP. It records its
episodes in a data dir of its own: a temporary one (removed when it stops) unless the
test names one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import shutil
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from engine.config import EngineConfig
from engine.manager import EpisodeManager
from safebrowse.loop import BackgroundLoop
from safebrowse.server import SafebrowseServer
from safebrowse.settings import ServerSettings
from tasks.registry import TaskSpec

from support.engine import temporary_data_dir

T = TypeVar("T")

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 120.0
DEFAULT_WORKERS = 2


class LiveServer:
    """A running SafebrowseServer and the loop it runs on."""

    def __init__(self, server: SafebrowseServer, loop: BackgroundLoop,
                 serving: concurrent.futures.Future[None], temporary_data_dir: bool = True) -> None:
        self.server = server
        self.data_dir: Path = server.settings.data_dir
        self.temporary_data_dir = temporary_data_dir
        self.loop = loop
        self.serving = serving
        self.manager: EpisodeManager = server.manager
        self.mcp_url: str = server.mcp_url
        self.control_url: str = server.control_url
        self.control_token: str = server.control_token

    @property
    def control_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.control_token}"}

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = RUN_TIMEOUT_S) -> T:
        """Run `coroutine` on the server's loop and return its result."""
        return self.loop.run(coroutine, timeout)

    def add_task(self, spec: TaskSpec) -> None:
        """Register a test task on the running server, with its pages mounted on the asset server.

        For tasks built from what exists only once the server runs (its ports, a test's own
        loopback servers); a second call with the same id keeps the first spec.
        """
        if spec.id not in self.manager.registry:
            self.manager.registry.add(spec)
        for prefix, folder in spec.asset_mounts:
            self.manager.assets.mount(prefix, folder)


def start_live_server(data_dir: Path | None = None, **engine_overrides: Any) -> LiveServer:
    """Start a SafebrowseServer with a fresh control token; `engine_overrides` are EngineConfig fields.

    Two workers unless told otherwise. Its book is in `data_dir` when given (and kept), else in
    a temporary data dir removed by `stop_live_server`. Returns once both listeners accept
    connections.
    """
    temporary = data_dir is None
    settings = ServerSettings(
        mcp_port=0,
        control_port=0,
        control_token="ctl_" + secrets.token_urlsafe(24),
        data_dir=temporary_data_dir("live-server") if data_dir is None else data_dir,
        engine=EngineConfig(**{"workers": DEFAULT_WORKERS, **engine_overrides}),
    )

    def remove_data_dir() -> None:
        if temporary:
            shutil.rmtree(settings.data_dir, ignore_errors=True)

    loop = BackgroundLoop("live-server")

    async def create() -> SafebrowseServer:
        return SafebrowseServer(settings)  # on the loop, which its listeners and events belong to

    try:
        server = loop.run(create())
    except BaseException:
        loop.close()
        remove_data_dir()
        raise
    serving = asyncio.run_coroutine_threadsafe(server.serve(), loop.loop)

    async def wait_started() -> None:
        await asyncio.wait_for(server.started.wait(), START_TIMEOUT_S)

    try:
        loop.run(wait_started())
    except BaseException as error:
        if not serving.done():  # still starting: its own error, if any, is not known yet
            raise
        loop.close()
        remove_data_dir()
        failure = serving.exception()
        if failure is None:
            raise
        raise failure from error
    return LiveServer(server, loop, serving, temporary_data_dir=temporary)


def stop_live_server(live: LiveServer) -> None:
    """Stop both listeners, then the browsers, as SIGTERM does; then the loop."""
    live.loop.loop.call_soon_threadsafe(live.server.request_stop)
    try:
        live.serving.result(STOP_TIMEOUT_S)
    finally:
        live.loop.close()
        if live.temporary_data_dir:
            shutil.rmtree(live.data_dir, ignore_errors=True)
