"""The composition root: the one place that builds the room and its two doors from settings.

`safebrowse serve`, `safebrowse stdio`, the tests and the benchmarks all build the
engine with `build_manager`, the agent door with `build_agent_app` (or
`mcp_server.stdio.serve_stdio`) and the trainer door with `build_control_app`.
`SafebrowseServer` runs the MCP door on the public port and the control API on its
own loopback listener, sharing one EpisodeManager.

Only this package knows both doors: `mcp_server` receives an agent port per
call and never sees the manager, and `control_api` receives the manager.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from control_api.room import SuiteService, TrainerRoom
from control_api.schemas import CurriculumPolicy
from engine.agent_view.port import AgentPort
from engine.book import BookError, BookWriteError, EpisodeBook
from engine.book.restart import settle_interrupted
from engine.manager import EpisodeManager
from engine.oracle import OracleFactory, build_oracle_factory
from engine.suites import SuiteDesk
from safebrowse import __version__
from safebrowse.settings import ServerSettings
from safebrowse.sockets import SignalNeutralServer, bound_socket, port_of
from tasks import default_registry
from tasks.registry import TaskRegistry

logger = logging.getLogger(__name__)


def resolve_control_token(settings: ServerSettings) -> tuple[str, Path | None]:
    """The configured token, or a fresh one written to an owner-only file."""
    if settings.control_token:
        return settings.control_token, None
    token = secrets.token_urlsafe(32)
    path = settings.token_file
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    return token, path


def open_book(settings: ServerSettings) -> EpisodeBook:
    """The episode book of `settings.data_dir`, ready to serve: episodes a killed server left
    open are settled (`engine.book.restart`) and the retention limits applied.

    Raises `BookError`, with a message for the operator, when the dir or the book cannot be used.
    """
    book = EpisodeBook.open(
        settings.data_dir,
        max_episodes=settings.book_max_episodes,
        max_age_days=settings.book_max_age_days,
        max_media_episodes=settings.book_max_media_episodes,
        max_bytes=int(settings.book_max_mb * 1_000_000) if settings.book_max_mb is not None else None,
    )
    try:
        settled = settle_interrupted(book)
        book.prune(sweep=True)
    except BookWriteError as error:
        book.close()
        raise BookError(f"the book in {settings.data_dir} cannot be written: {error.reason}") from None
    except BaseException:
        book.close()
        raise
    if settled:
        logger.warning("%d episodes were open when the last server on %s stopped; they are closed "
                       "(server_restart)", len(settled), settings.data_dir)
    return book


def build_manager(
    settings: ServerSettings, registry: TaskRegistry | None = None, oracle_factory: OracleFactory | None = None
) -> EpisodeManager:
    """The room: browser workers, the task registry, the operator's oracle and the episode book
    (opened here, closed by the manager when it stops). Not started.

    The registry and the oracle come from the settings unless given: tests and
    benchmarks pass their own (test pages as tasks, a scripted oracle) and build the
    rest exactly as `safebrowse serve` does. Raises `BookError` if the book cannot be used.
    """
    book = open_book(settings)
    try:
        return EpisodeManager(
            settings.engine,
            registry if registry is not None else default_registry(settings.engine.extra_tasks_dir),
            oracle_factory=oracle_factory if oracle_factory is not None else build_oracle_factory(settings.oracle),
            book=book,
        )
    except BaseException:
        book.close()
        raise


def build_agent_app(manager: EpisodeManager, settings: ServerSettings, suites: SuiteDesk | None = None) -> ASGIApp:
    """The agent door over streamable HTTP: each request's token opens its episode's port, or its
    suite's (a suite's port is an `AgentPort` like any other: the door cannot tell them apart)."""
    from mcp_server.http import build_app

    def open_port(token: str) -> AgentPort | None:
        suite = suites.agent_port(token) if suites is not None else None
        return suite if suite is not None else manager.agent_session(token)

    return build_app(open_port, host=settings.host, version=__version__, limits=settings.mcp_limits)


def build_control_app(
    manager: TrainerRoom, control_token: str, mcp_url: str, curriculum: CurriculumPolicy | None = None,
    suites: SuiteService | None = None,
) -> ASGIApp:
    """The trainer door for `manager` (an EpisodeManager, or a cluster's front); serve it on a
    private listener only. Without `suites`, `/v1/suites` answers 501."""
    from control_api.app import build_app

    return build_app(manager, control_token=control_token, mcp_url=mcp_url, curriculum=curriculum, suites=suites)


class SafebrowseServer:
    """Owns the manager and both listeners. Sockets are bound in `__init__`, so
    ports (including port 0) are known before serving starts."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.manager = build_manager(settings)  # first: a data dir it cannot use stops everything here
        self.suites = SuiteDesk(self.manager)
        try:
            self.control_token, self.token_path = resolve_control_token(settings)
            self.mcp_socket = bound_socket(settings.host, settings.mcp_port)
            self.control_socket = bound_socket(settings.control_host, settings.control_port)
        except BaseException:
            if self.manager.book is not None:
                self.manager.book.close()
            raise
        self._servers: list[uvicorn.Server] = []
        self.started = asyncio.Event()

    @property
    def mcp_port(self) -> int:
        return port_of(self.mcp_socket)

    @property
    def control_port(self) -> int:
        return port_of(self.control_socket)

    @property
    def mcp_url(self) -> str:
        if self.settings.public_mcp_url:
            return self.settings.public_mcp_url
        host = self.settings.host if self.settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.mcp_port}/mcp"

    @property
    def control_url(self) -> str:
        return f"http://{self.settings.control_host}:{self.control_port}"

    async def serve(self) -> None:
        await self.manager.start()
        try:
            mcp_app = build_agent_app(self.manager, self.settings, self.suites)
            control_app = build_control_app(self.manager, control_token=self.control_token, mcp_url=self.mcp_url,
                                            suites=self.suites)
            for app in (mcp_app, control_app):
                # Signals belong to the caller (`safebrowse serve` stops both listeners, then the
                # browsers); uvicorn would otherwise stop one listener and re-raise the signal.
                server = SignalNeutralServer(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
                self._servers.append(server)
            tasks = [asyncio.create_task(s.serve(sockets=[sock]))
                     for s, sock in zip(self._servers, (self.mcp_socket, self.control_socket))]
            while not all(s.started for s in self._servers):
                if any(t.done() for t in tasks):
                    break
                await asyncio.sleep(0.02)
            self.started.set()
            await asyncio.gather(*tasks)
        finally:
            await self.suites.stop()
            await self.manager.stop()

    def request_stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
