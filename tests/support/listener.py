"""An ASGI app served on a free loopback port, on a background loop (often one that runs an engine).

Built like the server's own listeners (`safebrowse.sockets.bound_socket` and
`SignalNeutralServer`), so a test's extra door or private control API is served the
way `safebrowse serve` serves them, and leaves signals to the test process.
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from starlette.types import ASGIApp

from safebrowse.loop import BackgroundLoop
from safebrowse.sockets import SignalNeutralServer, bound_socket, port_of

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


class Listener:
    """`app` served by uvicorn, with its lifespan, on a loopback port of its own."""

    def __init__(self, app: ASGIApp, loop: BackgroundLoop) -> None:
        self._loop = loop
        sock = bound_socket(LOOPBACK, 0)
        self.port = port_of(sock)
        self.origin = f"http://{LOOPBACK}:{self.port}"
        self._server = SignalNeutralServer(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
        self._serving: asyncio.Task[None] | None = None
        loop.run(self._start(sock), START_TIMEOUT_S)

    async def _start(self, sock: socket.socket) -> None:
        serving = asyncio.create_task(self._server.serve(sockets=[sock]))
        self._serving = serving
        while not self._server.started:
            if serving.done():
                await serving  # raises what stopped it
                raise RuntimeError(f"the listener on port {self.port} stopped before it started")
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        """Stop serving; requests in flight are finished first."""

        async def stop() -> None:
            self._server.should_exit = True
            if self._serving is not None:
                await self._serving

        self._loop.run(stop(), STOP_TIMEOUT_S)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go): connecting to it is refused."""
    sock = bound_socket(LOOPBACK, 0)
    port = port_of(sock)
    sock.close()
    return port
