"""A second agent door over a running engine, with limits of its own.

The door is the server's own (`mcp_server.http.build_app`, as `build_agent_app` builds
it) on its own loopback port, so a test can try tight admission limits, or a wildcard
host, without changing the shared server's door.
"""

from __future__ import annotations

from typing import Protocol

from engine.manager import EpisodeManager
from mcp_server.http import build_app
from mcp_server.limits import DoorLimits
from safebrowse import __version__
from safebrowse.loop import BackgroundLoop

from support.listener import Listener


class RunningEngine(Protocol):
    """A started engine and the loop it runs on (a `LiveServer` or an `EngineHarness`)."""

    @property
    def manager(self) -> EpisodeManager: ...

    @property
    def loop(self) -> BackgroundLoop: ...


class Door:
    """The agent door over `engine`'s episodes; `host` is the host the door is built for.

    It always listens on loopback: a `host` of "0.0.0.0" builds the door as a container's
    `--host 0.0.0.0` would (any Host header), without exposing the test machine.
    """

    def __init__(self, engine: RunningEngine, limits: DoorLimits | None = None, host: str = "127.0.0.1") -> None:
        app = build_app(engine.manager.agent_session, host=host, version=__version__, limits=limits)
        self._listener = Listener(app, engine.loop)
        self.url = self._listener.origin + "/mcp"

    def stop(self) -> None:
        self._listener.stop()
