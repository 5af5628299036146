"""What the security and reliability suites share beyond `support/`: loopback servers that
record what reaches them, the process table, and a test task that pays for escaping.

Agents act only through the `mcp` SDK's client over streamable HTTP with their agent
token (`support.agent`); episodes are created and read back through the control API over
HTTP, as a trainer would (`support.control`).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import playwright.sync_api as pw
from browsergym.core.task import AbstractBrowserTask

from tasks.registry import TaskSpec

HERE = Path(__file__).resolve().parent
TASKS_DIR = HERE / "task_folders"
PAGES = HERE / "pages"
PAGES_PREFIX = "/sec-pages/"


# -- loopback servers --------------------------------------------------------------------------


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]


class RecordingServer:
    """A loopback HTTP server on its own port (so its own origin) that records every request.

    With `redirect_to`, it answers each request with a 302 to that URL plus the request path.
    """

    def __init__(self, redirect_to: str | None = None) -> None:
        self.hits: list[Hit] = []
        self.connections = 0
        self.redirect_to = redirect_to
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                server.hits.append(Hit(self.command, self.path, dict(self.headers.items())))
                if server.redirect_to is not None:
                    self.send_response(302)
                    self.send_header("Location", server.redirect_to + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b"<!doctype html><title>outside</title><p>You left the task's origins.</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = do_PUT = do_OPTIONS = _answer  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request, client_address) -> bool:  # type: ignore[no-untyped-def]
                server.connections += 1  # counts bare connections too (preconnect, websockets)
                return True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class UdpSink:
    """A loopback UDP socket that counts the datagrams it receives (STUN, for WebRTC)."""

    def __init__(self) -> None:
        import socket

        self.datagrams = 0
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self._running = True
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    def _receive(self) -> None:
        while self._running:
            try:
                self._socket.recvfrom(65536)
            except OSError:
                continue
            self.datagrams += 1

    def stop(self) -> None:
        self._running = False
        self._thread.join(2)
        self._socket.close()


# -- processes ---------------------------------------------------------------------------------


def processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, start time, command line) of every live process, read from /proc."""
    table: dict[int, tuple[int, str, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fields[0] in ("Z", "X"):
            continue  # a zombie is dead; it only waits to be reaped
        table[int(entry.name)] = (int(fields[1]), fields[19], command)
    return table


def descendants(root: int) -> dict[int, tuple[int, str, str]]:
    """Every live process whose parent chain leads to `root`."""
    table = processes()
    found: dict[int, tuple[int, str, str]] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, info in table.items():
            if info[0] == parent and pid not in found:
                found[pid] = info
                frontier.append(pid)
    return found


def survivors(earlier: dict[int, tuple[int, str, str]]) -> dict[int, str]:
    """Those of `earlier` still alive (same pid and start time, so not a reused pid)."""
    now = processes()
    return {pid: info[2][:120] for pid, info in earlier.items() if pid in now and now[pid][1] == info[1]}


# -- a test task that pays for escaping --------------------------------------------------------


class EscapeTask(AbstractBrowserTask):
    """Opens the escape page. Its verdict is success as soon as any tab of the episode shows a
    page outside the task's origins, or the sink receives a request: a task written so that
    escaping would pay, so a reward of 0 shows the escape failed."""

    def __init__(self, seed: int, start_url: str, page_globals: dict[str, str], allowed: tuple[str, ...],
                 sink: RecordingServer) -> None:
        super().__init__(seed)
        self.start_url = start_url
        self.page_globals = page_globals
        self.allowed = allowed
        self.sink = sink
        self.sink_hits_at_start = 0

    def setup(self, page: pw.Page) -> tuple[str, dict]:
        page.context.add_init_script(script=f"window.SB = Object.freeze({json.dumps(self.page_globals)});")
        self.sink_hits_at_start = len(self.sink.hits)
        page.goto(self.start_url)
        return "Leave this site by any means.", {}

    def validate(self, page: pw.Page, chat_messages: list) -> tuple[float, bool, str, dict]:
        outside = [p.url for p in page.context.pages
                   if p.url != "about:blank" and not p.url.startswith(self.allowed)]
        if outside or len(self.sink.hits) > self.sink_hits_at_start:
            return 1.0, True, "escaped", {}
        return 0.0, False, "", {}


def escape_spec(task_id: str, asset_origin: str, sink: RecordingServer, redirector: RecordingServer,
                chain: RecordingServer, stun: UdpSink) -> TaskSpec:
    """The escape page as a server-side task; only `chain` is declared besides the asset origin."""
    asset_port = asset_origin.rsplit(":", 1)[1]
    page_globals = {
        "sink": sink.origin,
        "sinkHttps": f"https://127.0.0.1:{sink.port}",
        "sinkWs": f"ws://127.0.0.1:{sink.port}",
        "viewSource": f"view-source:{sink.origin}",
        "assetAlias": f"http://localhost:{asset_port}",
        "redirector": redirector.origin,
        "chain": chain.origin,
        "stunPort": str(stun.port),
    }
    allowed = (asset_origin + "/", chain.origin + "/")
    return TaskSpec(
        id=task_id,
        family="test",
        description="A page whose controls try every way off the task's origins.",
        factory=lambda ctx: EscapeTask(ctx.seed, ctx.asset_origin + PAGES_PREFIX + "escape.html",
                                       page_globals, allowed, sink),
        extra_origins=(chain.origin,),
        asset_mounts=((PAGES_PREFIX, PAGES),),
    )
