"""One episode, or a suite of them, over stdio (`safebrowse stdio`), with the control API beside it
on request.

With `--suite`, the agent is walked through the suite's episodes (`engine.suites`) and the
operator's report is written to `--report` and summed up on stderr.

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
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import NoReturn

import uvicorn

from engine.agent_view.instructions import SUITE_INSTRUCTIONS
from engine.book import BookError
from engine.manager import EpisodeManager, EpisodeSetupError
from engine.suites import SuiteDesk, SuitePlanError, SuiteReport, plan_suite
from engine.suites.report import table
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
async def serving_control_api(manager: EpisodeManager, settings: ServerSettings,
                              suites: SuiteDesk | None = None) -> AsyncIterator[str]:
    """Serve the control API on loopback while the block runs; yields its base URL."""
    token, token_path = resolve_control_token(settings)
    sock = bound_socket(CONTROL_HOST, settings.control_port)
    url = f"http://{CONTROL_HOST}:{port_of(sock)}"
    app = build_control_app(manager, control_token=token, mcp_url=NO_MCP_URL, suites=suites)
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


def check_report_path(path: Path) -> None:
    """Refuse, before anything starts, a report path that cannot be written (SuitePlanError)."""
    if path.is_dir():
        raise SuitePlanError(f"the report path {path} is a directory; name a file")
    existed = path.exists()
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as error:
        raise SuitePlanError(f"the report file {path} cannot be written: {error.strerror or error}") from None
    if not existed:
        path.unlink(missing_ok=True)


def report_writer(path: Path | None) -> Callable[[SuiteReport], None]:
    """Writes the report whole each time (to a temporary file moved over it): never half a file."""

    def write(report: SuiteReport) -> None:
        if path is None:
            return
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(report.to_json() + "\n", encoding="utf-8")
        os.replace(temporary, path)

    return write


def refuse(message: str) -> NoReturn:
    sys.stderr.write(f"safebrowse stdio: {message}\n")
    raise SystemExit(2)


async def run_suite_stdio(settings: ServerSettings, suite: str, episodes: int, seed: int, difficulty: str | None,
                          report_path: Path | None, serve_control: bool, max_steps: int | None = None) -> SuiteReport:
    """Walk the agent on stdin/stdout through a suite; the report is written as episodes end, and at
    the end (marked incomplete if the client hung up first), with a short table on stderr."""
    if report_path is not None:
        try:
            check_report_path(report_path)
        except SuitePlanError as error:
            refuse(str(error))
    try:
        manager = build_manager(settings)
    except BookError as error:
        refuse(str(error))
    try:
        plan = plan_suite(manager.registry, suite, episodes, seed=seed, difficulty=difficulty, max_steps=max_steps)
    except SuitePlanError as error:
        if manager.book is not None:
            manager.book.close()
        refuse(str(error))
    write = report_writer(report_path)
    await manager.start()
    try:
        desk = SuiteDesk(manager)
        session, _token = await desk.open(plan, suite, on_report=write)
        desk.takes_new_suites = False  # the control API beside it reports this suite; its agent is on stdio
        async with contextlib.AsyncExitStack() as stack:
            if serve_control:
                await stack.enter_async_context(serving_control_api(manager, settings, suites=desk))
            logger.info("suite %s: %d episodes of %s over stdio", session.suite_id, len(plan.episodes),
                        ", ".join(plan.task_ids))
            try:
                await serve_stdio(session, __version__, SUITE_INSTRUCTIONS)
            finally:
                report = await session.stop("disconnected")
        sys.stderr.write(table(report) + "\n")
        if report_path is not None:
            sys.stderr.write(f"report written to {report_path}\n")
        return report
    finally:
        await manager.stop()
        sys.stderr.flush()
