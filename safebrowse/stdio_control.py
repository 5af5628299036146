"""The control API next to a stdio episode (`safebrowse stdio --control-port P`).

Kept out of `mcp_server` so the agent door never imports trainer code; the stdio
runner loads this module only when asked to serve the control API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

import uvicorn

from engine.manager import EpisodeManager
from safebrowse.server import _bound_socket, resolve_control_token
from safebrowse.settings import ServerSettings

logger = logging.getLogger(__name__)

CONTROL_HOST = "127.0.0.1"
NO_MCP_URL = "stdio"
"""What the control API reports as the agent door: this process has no MCP URL, its agent speaks over stdio."""


class _SignalNeutralServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM to the process: a stdio server
    must stop when its client stops it, not only its side listener."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving_control_api(manager: EpisodeManager, settings: ServerSettings) -> AsyncIterator[str]:
    """Serve the control API on loopback while the block runs; yields its base URL."""
    from control_api.app import build_app

    token, token_path = resolve_control_token(settings)
    sock = _bound_socket(CONTROL_HOST, settings.control_port)
    url = f"http://{CONTROL_HOST}:{sock.getsockname()[1]}"
    app = build_app(manager, control_token=token, mcp_url=NO_MCP_URL)
    server = _SignalNeutralServer(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if task.done():
        task.result()  # raises why it could not start
        raise RuntimeError("the control API stopped while starting")
    logger.info("control API (trainers): %s", url)
    if token_path is not None:
        logger.info("control token written to %s (owner-only)", token_path)
    try:
        yield url
    finally:
        server.should_exit = True
        await task
