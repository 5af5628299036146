"""One episode over stdio (`safebrowse stdio`), with the control API beside it on request.

The process builds its own engine, creates the episode and hands its agent port
to the stdio door (`mcp_server.stdio`). With `--control-port`, the trainer's
control API is served next to it on loopback, sharing the engine. A trainer that
creates or replaces episodes there does not move this stdio session: it keeps
acting on the episode it started with, and reports that episode as over once it
ends.

SIGTERM keeps its default action: the process ends at once and Playwright's
driver takes Chromium down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator

import uvicorn

from engine.book import BookError
from engine.manager import EpisodeManager, EpisodeSetupError
from mcp_server.stdio import serve_stdio
from safebrowse import __version__
from safebrowse.server import build_control_app, build_manager, resolve_control_token
from safebrowse.settings import ServerSettings
from safebrowse.sockets import SignalNeutralServer, bound_socket, port_of
from tasks.registry import UnknownTaskError

logger = logging.getLogger(__name__)

CONTROL_HOST = "127.0.0.1"
NO_MCP_URL = "stdio"
"""What the control API reports as the agent door: this process has no MCP URL, its agent speaks over stdio."""


@contextlib.asynccontextmanager
async def serving_control_api(manager: EpisodeManager, settings: ServerSettings) -> AsyncIterator[str]:
    """Serve the control API on loopback while the block runs; yields its base URL."""
    token, token_path = resolve_control_token(settings)
    sock = bound_socket(CONTROL_HOST, settings.control_port)
    url = f"http://{CONTROL_HOST}:{port_of(sock)}"
    app = build_control_app(manager, control_token=token, mcp_url=NO_MCP_URL)
    server = SignalNeutralServer(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
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


async def run_stdio(settings: ServerSettings, task_id: str, seed: int | None, serve_control: bool) -> None:
    """Serve one episode of `task_id` over stdio until the client closes stdin."""
    try:
        manager = build_manager(settings)
    except BookError as error:
        raise SystemExit(f"safebrowse stdio: {error}") from None
    try:
        manager.registry.get(task_id)
    except UnknownTaskError as error:
        raise SystemExit(f"safebrowse stdio: {error}") from None
    await manager.start()
    try:
        try:
            created = await manager.create(task_id, seed=seed)
        except EpisodeSetupError as error:
            raise SystemExit(f"safebrowse stdio: {error}") from None
        port = manager.bind_agent(created.episode_id)
        async with contextlib.AsyncExitStack() as stack:
            if serve_control:
                await stack.enter_async_context(serving_control_api(manager, settings))
            logger.info("serving episode %s of %s over stdio", created.episode_id, task_id)
            await serve_stdio(port, __version__)
    finally:
        await manager.stop()
        sys.stderr.flush()
