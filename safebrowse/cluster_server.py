"""The front of a Ray cluster: `safebrowse serve --ray ADDRESS` (or `SAFEBROWSE_RAY_ADDRESS`).

It joins an existing Ray cluster as a driver, opens the episode book, starts browser
nodes on Ray's nodes (`cluster.fleet`) and serves the control API, the viewer and
metrics on its private listener. It serves no MCP door: each node has its own, and an
episode's `mcp_url` points at it.

Its node actors belong to its Ray job. When it stops (SIGTERM, SIGINT) it closes every
episode and stops every node before it disconnects; if it dies instead, Ray ends the
actors with it, and the next front on the same data dir settles the episodes the book
holds as open (`server_restart`) and says so. It never reattaches to another
front's nodes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from pathlib import Path

import uvicorn

from engine.config import EngineConfig
from safebrowse import __version__
from safebrowse.server import build_control_app, open_book, resolve_control_token
from safebrowse.settings import ServerSettings, SettingsInputError
from safebrowse.sockets import SignalNeutralServer, bound_socket, port_of
from tasks import default_registry

logger = logging.getLogger(__name__)

HEAD_CONNECT_TIMEOUT_S = 5.0


def connect_to_ray(settings: ServerSettings) -> None:
    """Join the cluster at `settings.cluster.address` as a driver; a clear error if that cannot be."""
    try:
        import ray
    except ImportError:
        raise SettingsInputError("serving on a Ray cluster needs the ray extra: "
                                 "pip install 'safebrowse[ray]'") from None
    address = settings.cluster.address
    assert address is not None
    head = head_endpoint(address)
    if head is not None:
        try:
            socket.create_connection(head, timeout=HEAD_CONNECT_TIMEOUT_S).close()
        except OSError as error:
            # Ray itself would retry for minutes; the operator is told at once instead.
            raise SettingsInputError(f"cannot reach the Ray cluster's head at {address!r}: {error}; start it with "
                                     "`ray start --head` or give its address") from None
    try:
        ray.init(address=address, namespace=settings.cluster.namespace, logging_level=logging.WARNING,
                 log_to_driver=True, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise SettingsInputError(f"cannot join the Ray cluster at {address!r}: {error}") from None


def head_endpoint(address: str) -> tuple[str, int] | None:
    """The host and port of a `HOST:PORT` address (None for `auto`, `ray://` and the like)."""
    host, _, port = address.rpartition(":")
    if not host or "://" in address or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def node_engine(settings: ServerSettings) -> EngineConfig:
    """The engine settings every browser node runs with. Browser workers not set explicitly are
    one per CPU the node reserves (`cluster.node_cpus`), not the front machine's CPU count."""
    engine = settings.engine
    if "workers" in engine.model_fields_set:
        return engine
    return engine.model_copy(update={"workers": max(1, math.floor(settings.cluster.node_cpus))})


class ClusterFront:
    """The control API over a `ClusterRoom`. Binds its listener in `__init__` (port 0 is known at once)."""

    def __init__(self, settings: ServerSettings) -> None:
        from cluster.front import ClusterRoom
        from cluster.node import NodeSpec

        self.settings = settings
        book = open_book(settings)  # first: a data dir it cannot use stops everything here
        try:
            connect_to_ray(settings)
            spec = NodeSpec(engine=node_engine(settings), oracle=settings.oracle, mcp_limits=settings.mcp_limits,
                            door_host=settings.cluster.door_host, door_port=settings.cluster.door_port,
                            record_timeout_s=settings.cluster.record_timeout_s, version=__version__)
            self.room = ClusterRoom(settings.cluster, spec, default_registry(settings.engine.extra_tasks_dir), book)
            self.control_token, self.token_path = resolve_control_token(settings)
            self.control_socket = bound_socket(settings.control_host, settings.control_port)
        except BaseException:
            book.close()
            self._disconnect()
            raise
        self._server: uvicorn.Server | None = None
        self.started = asyncio.Event()

    @property
    def control_port(self) -> int:
        return port_of(self.control_socket)

    @property
    def control_url(self) -> str:
        return f"http://{self.settings.control_host}:{self.control_port}"

    @property
    def token_file(self) -> Path | None:
        return self.token_path

    async def serve(self) -> None:
        try:
            await self.room.start()
            from cluster.suites import ClusterSuites

            app = build_control_app(self.room, control_token=self.control_token,
                                    mcp_url="(the MCP door of the episode's browser node)",
                                    suites=ClusterSuites(self.room))
            self._server = SignalNeutralServer(uvicorn.Config(app, log_level="warning", access_log=False,
                                                              lifespan="on"))
            serving = asyncio.create_task(self._server.serve(sockets=[self.control_socket]))
            while not self._server.started and not serving.done():
                await asyncio.sleep(0.02)
            self.started.set()
            await serving
        finally:
            try:
                await self.room.stop()
            finally:
                self._disconnect()

    def request_stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True

    @staticmethod
    def _disconnect() -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()


__all__ = ["ClusterFront", "connect_to_ray"]
