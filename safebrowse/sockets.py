"""Listening sockets and the uvicorn server that runs on them, shared by every process that serves.

Sockets are bound before serving starts, so a port of 0 is known at once. A single
server, a cluster's front and each browser node serve with these.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import uvicorn


def bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every response waits ~40 ms on Nagle's algorithm and delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def port_of(sock: socket.socket) -> int:
    """The port a bound socket listens on (port 0 binds pick one)."""
    port: int = sock.getsockname()[1]
    return port


class SignalNeutralServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM to the process: whoever runs it decides
    how the process stops (both listeners, then the browsers), not one listener alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


__all__ = ["SignalNeutralServer", "bound_socket", "port_of"]
