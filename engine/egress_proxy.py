"""The loopback egress proxy: every connection a browser context opens passes one of its gates.

Chromium is told to send everything through a proxy (`engine.launch`): page loads,
subresources, redirects (each hop is a new request here), WebSocket upgrades and `https`
(both as `CONNECT`), workers' fetches, pings, fonts and speculative prefetches. Route
interception in Playwright only saw what Playwright intercepts; the proxy sees what
Chromium actually sends, so it is the boundary.

Each browser context gets its own *gate*: a listening port whose traffic is judged against
that context's `EgressGuard`. The port identifies the context, so no credentials or headers
are needed and one Chromium can host many episodes with different origins. Chromium's own
background traffic, and anything not using a context's proxy, meets the launch-level gate,
which allows nothing.

Cost: requests to the asset server's origin are answered here, from its mounted folders,
on a kept-alive connection (no second hop, no bytes copied twice). Requests to other
allowed origins are forwarded on a fresh upstream connection, one request per connection,
so that every request head is judged. Refused requests never open an upstream connection.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import mimetypes
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from engine.assets import cache_control

logger = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024
CHUNK = 64 * 1024
# A client that opens a connection and sends nothing is dropped after this long.
IDLE_TIMEOUT_S = 60.0
# Hop-by-hop headers the proxy consumes or replaces (RFC 9110 section 7.6.1).
_HOP_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"})


# The answer to a refused subresource request. A plain 403 would reach the page as a response
# (a `no-cors` fetch resolves with it); two different Content-Length headers are a response
# Chromium must refuse (ERR_RESPONSE_HEADERS_MULTIPLE_CONTENT_LENGTH) before the page sees it,
# so `fetch` rejects and `onerror` fires, as when the host cannot be reached. Unlike a closed
# connection, it is a response: Chromium does not send the request again.
NETWORK_ERROR = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nContent-Length: 1\r\nConnection: close\r\n\r\n"


class Judge(Protocol):
    """What a gate asks about its context: `engine.egress.EgressGuard` implements it."""

    def allows(self, url: str) -> bool: ...

    def allows_endpoint(self, host: str, port: int) -> bool: ...

    def refused(self, url: str, kind: str) -> None: ...


# Resolves a URL path of the asset origin to a file, or None (the asset server's mounts).
AssetResolver = Callable[[str], "Path | None"]


@dataclass(eq=False)  # a gate is itself, not its fields: the proxy keeps a set of them
class Gate:
    """One context's listening port on the proxy."""

    judge: Judge
    port: int = 0
    server: asyncio.Server | None = None
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def proxy_server(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class _Head:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)

    @property
    def has_body(self) -> bool:
        length = self.header("content-length")
        return bool(self.header("transfer-encoding")) or (length is not None and length.strip() not in ("", "0"))


class BadRequest(Exception):
    pass


def parse_head(raw: bytes) -> _Head:
    """A request head (request line and headers, ending in a blank line)."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError as error:  # pragma: no cover - latin-1 decodes any byte
        raise BadRequest(str(error)) from error
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise BadRequest(f"bad request line {lines[0][:100]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(f"bad header line {line[:100]!r}")
        headers.append((name, value.strip()))
    return _Head(parts[0].upper(), parts[1], parts[2], headers)


def _is_navigation(head: _Head) -> bool:
    """Chromium marks navigations with `Sec-Fetch-Mode: navigate` on trustworthy origins and
    with `Upgrade-Insecure-Requests` on every navigation; subresources carry neither."""
    mode = (head.header("sec-fetch-mode") or "").lower()
    return mode == "navigate" or (not mode and head.header("upgrade-insecure-requests") is not None)


def _kind(head: _Head, navigation: bool) -> str:
    """How a refusal is recorded: speculative loads (`Sec-Purpose: prefetch`, which prerenders
    send too) are `prefetch`, whatever they would have loaded."""
    if "prefetch" in (head.header("sec-purpose") or head.header("purpose") or "").lower():
        return "prefetch"
    return "navigation" if navigation else "request"


def _endpoint(authority: str) -> tuple[str, int]:
    """host and port of a CONNECT target (`host:port`, `[v6]:port`)."""
    parts = urlsplit("//" + authority)
    if not parts.hostname or parts.port is None:
        raise BadRequest(f"bad CONNECT target {authority[:100]!r}")
    return parts.hostname, parts.port


def _response(status: str, *, close: bool, extra: str = "") -> bytes:
    connection = "close" if close else "keep-alive"
    return f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: {connection}\r\n{extra}\r\n".encode()


class EgressProxy:
    """An asyncio proxy on its own thread; `open_gate` gives each browser context a port.

    Every public method may be called from any thread. The gates' judges are called on the
    proxy's thread, so `Judge.refused` must be safe to call from there.
    """

    def __init__(self, name: str, asset_origin: str | None = None, assets: AssetResolver | None = None) -> None:
        self._asset_origin = asset_origin.rstrip("/") if asset_origin else None
        self._assets = assets
        self._gates: set[Gate] = set()  # proxy thread only
        self.open_ports: tuple[int, ...] = ()  # the gates listening, for other threads to read
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    # -- any thread ----------------------------------------------------------------------------

    def open_gate(self, judge: Judge) -> Gate:
        """A new listening port judged by `judge`; returns once it accepts connections."""
        return self._call(self._open(judge))

    def close_gate(self, gate: Gate) -> None:
        """Stop listening and drop the gate's connections (does not wait)."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._close, gate)

    def sync(self) -> None:
        """Returns once the proxy has handled everything already queued on its loop: requests
        Chromium had sent by now have been judged, and their refusals reported."""
        self._call(asyncio.sleep(0))

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _call(self, coroutine: object) -> Gate:
        future: concurrent.futures.Future[Gate] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]
        return future.result(10)

    # -- proxy thread --------------------------------------------------------------------------

    async def _open(self, judge: Judge) -> Gate:
        gate = Gate(judge)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            gate.writers.add(writer)
            sock = writer.get_extra_info("socket")
            if sock is not None:  # small answers go out at once, not after the client's delayed ACK
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                await self._serve(gate, reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                pass
            except Exception:  # noqa: BLE001 - one bad connection must not stop the gate
                logger.exception("egress proxy: connection failed")
            finally:
                gate.writers.discard(writer)
                writer.close()

        gate.server = await asyncio.start_server(serve, "127.0.0.1", 0, limit=MAX_HEAD)
        gate.port = gate.server.sockets[0].getsockname()[1]
        self._gates.add(gate)
        self._publish()
        return gate

    def _publish(self) -> None:
        self.open_ports = tuple(sorted(gate.port for gate in self._gates))

    def _close(self, gate: Gate) -> None:
        self._gates.discard(gate)
        self._publish()
        if gate.server is not None:
            gate.server.close()
        for writer in list(gate.writers):
            writer.close()

    async def _serve(self, gate: Gate, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client connection: requests in turn while each one keeps it open."""
        while True:
            try:
                raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT_S)
            except asyncio.IncompleteReadError:
                return  # the client closed between requests
            try:
                head = parse_head(raw)
            except BadRequest:
                writer.write(_response("400 Bad Request", close=True))
                return
            if head.method == "CONNECT":
                await self._tunnel(gate, head, reader, writer)
                return
            if not await self._request(gate, head, reader, writer):
                return

    async def _tunnel(self, gate: Gate, head: _Head, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        """CONNECT: https and WebSocket. Only the endpoint is visible, so it is what is judged."""
        try:
            host, port = _endpoint(head.target)
        except BadRequest:
            writer.write(_response("400 Bad Request", close=True))
            return
        if not gate.judge.allows_endpoint(host, port):
            gate.judge.refused(head.target, "connect")
            writer.write(_response("403 Forbidden", close=True))
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.write(_response("502 Bad Gateway", close=True))
            return
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await _splice(reader, writer, up_reader, up_writer)

    async def _request(self, gate: Gate, head: _Head, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> bool:
        """A plain request in absolute form; True if the connection stays open for the next."""
        parts = urlsplit(head.target)
        if parts.scheme != "http" or not parts.hostname:
            writer.write(_response("400 Bad Request", close=True))
            return False
        if head.header("service-worker") == "script":
            # A service worker outlives its page and the episode: Playwright's block of
            # `navigator.serviceWorker.register` can be bypassed by a page, so its script is
            # never served, whatever the origin.
            gate.judge.refused(head.target, "request")
            writer.write(NETWORK_ERROR)
            return False
        if not gate.judge.allows(head.target):
            navigation = _is_navigation(head)
            gate.judge.refused(head.target, _kind(head, navigation))
            # A 204 answer to a navigation leaves the page where it was (no error page to be
            # stuck on); anything else fails as a network error, as for an unreachable host.
            writer.write(_response("204 No Content", close=True) if navigation else NETWORK_ERROR)
            return False
        origin = f"http://{parts.netloc}"
        if self._assets is not None and origin == self._asset_origin and not head.has_body:
            return await self._serve_asset(head, parts.path, bool(parts.query), writer)
        await self._forward(head, parts.hostname, parts.port or 80, reader, writer)
        return False

    async def _serve_asset(self, head: _Head, path: str, has_query: bool, writer: asyncio.StreamWriter) -> bool:
        """The asset server's answer, given here: no second hop, the connection kept alive, and
        the asset server's caching (`engine.assets.cache_control`)."""
        assert self._assets is not None
        if head.method not in ("GET", "HEAD"):
            writer.write(_response("405 Method Not Allowed", close=False, extra="Allow: GET, HEAD\r\n"))
            await writer.drain()
            return True
        target = self._assets(path)
        if target is None:
            writer.write(_response("404 Not Found", close=False))
            await writer.drain()
            return True
        body = await asyncio.to_thread(target.read_bytes) if target.stat().st_size > 1 << 20 else target.read_bytes()
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        answer = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Cache-Control: {cache_control(has_query)}\r\nConnection: keep-alive\r\n\r\n".encode()
        )
        writer.write(answer + body if head.method == "GET" else answer)  # one write: one segment for small files
        await writer.drain()
        return True

    async def _forward(self, head: _Head, host: str, port: int, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        """One request to an allowed origin, on its own upstream connection, closed after it:
        the next request on the client's connection could be for another origin."""
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.write(_response("502 Bad Gateway", close=True))
            return
        parts = urlsplit(head.target)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        lines = [f"{head.method} {path} {head.version}"]
        lines += [f"{name}: {value}" for name, value in head.headers if name.lower() not in _HOP_HEADERS]
        lines.append("Connection: close")
        up_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await _splice(reader, writer, up_reader, up_writer, response_head=True)


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while data := await source.read(CHUNK):
        sink.write(data)
        await sink.drain()


async def _relay_response(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """The upstream answer, its head told the client that the connection closes after it."""
    raw = await source.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    kept = [lines[0]] + [line for line in lines[1:] if line and line.split(":", 1)[0].strip().lower()
                         not in _HOP_HEADERS]
    sink.write(("\r\n".join([*kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1"))
    await _pump(source, sink)


async def _splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up_reader: asyncio.StreamReader,
                  up_writer: asyncio.StreamWriter, *, response_head: bool = False) -> None:
    """Copy both ways until either side is done (a WebSocket the page closed, an answer sent
    in full), then close both: a tunnel outlives neither of its ends."""
    upward = asyncio.ensure_future(_pump(reader, up_writer))
    downward = asyncio.ensure_future(_relay_response(up_reader, writer) if response_head else _pump(up_reader, writer))
    try:
        await asyncio.wait((upward, downward), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (upward, downward):
            task.cancel()
        await asyncio.gather(upward, downward, return_exceptions=True)
        up_writer.close()
        try:
            await writer.drain()
        except ConnectionError:
            pass


__all__ = ["AssetResolver", "EgressProxy", "Gate", "Judge", "parse_head"]
