"""The agent door over stdio: one process, one episode (`safebrowse stdio`).

For desktop clients such as Claude Desktop, which start the server as a child
process and speak MCP over its stdin/stdout. The process starts its own engine,
creates the episode, and binds the tools to it; there is no token, since whoever
holds the pipe is the agent.

stdout belongs to the protocol: nothing here prints, and logs go to stderr.
The server stops when the client closes stdin. SIGTERM keeps its default action:
the process ends at once and Playwright's driver takes Chromium down with it.

With `--control-port`, the trainer's control API is served next to it on
loopback, sharing the engine. A trainer that creates or replaces episodes there
does not move this stdio session: it keeps acting on the episode it started
with, and reports that episode as over once it ends.
"""

from __future__ import annotations

import contextlib
import logging
import sys

from engine.manager import EpisodeManager, EpisodeSetupError
from engine.oracle import oracle_factory_from_env
from mcp_server.tools import build_server
from safebrowse.settings import ServerSettings
from tasks import default_registry
from tasks.registry import UnknownTaskError

logger = logging.getLogger(__name__)


async def run_stdio(settings: ServerSettings, task_id: str, seed: int | None, serve_control: bool) -> None:
    """Serve one episode of `task_id` over stdio until the client closes stdin."""
    registry = default_registry(settings.engine.extra_tasks_dir)
    try:
        registry.get(task_id)
    except UnknownTaskError as error:
        raise SystemExit(f"safebrowse stdio: {error}") from None

    manager = EpisodeManager(settings.engine, registry, oracle_factory=oracle_factory_from_env())
    await manager.start()
    try:
        try:
            created = await manager.create(task_id, seed=seed)
        except EpisodeSetupError as error:
            raise SystemExit(f"safebrowse stdio: {error}") from None
        session = manager.bind_agent(created.episode_id)
        server = build_server(lambda _ctx: session)
        async with contextlib.AsyncExitStack() as stack:
            if serve_control:
                # Imported here only: the agent door itself never loads trainer code.
                from safebrowse.stdio_control import serving_control_api

                await stack.enter_async_context(serving_control_api(manager, settings))
            logger.info("serving episode %s of %s over stdio", created.episode_id, task_id)
            await server.run_stdio_async()
    finally:
        await manager.stop()
        sys.stderr.flush()
