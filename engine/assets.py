"""A loopback HTTP server for task pages.

Tasks load over `http://127.0.0.1:PORT/`, never `file://`: pages get a real
origin (so the egress guard can reason about origins), and nothing on the
host's file system outside the mounted folders is reachable.
"""

from __future__ import annotations

import logging
import mimetypes
import posixpath
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

logger = logging.getLogger(__name__)


def cache_control(has_query: bool) -> str:
    """The `Cache-Control` of an asset answer, from the asset server or the egress proxy's own:
    plain files are the same for every episode and stay in the HTTP cache, which a reused
    context keeps; a URL with a query can carry what an episode typed or chose, so its answer
    is never stored, and no later episode's page can find it there."""
    return "no-store" if has_query else "max-age=3600"


def miniwob_html_dir() -> Path:
    """The HTML folder shipped by the `miniwob` package."""
    import miniwob

    return Path(miniwob.__file__).resolve().parent / "html"


class _Mounts:
    """URL prefix -> folder, longest prefix first."""

    def __init__(self) -> None:
        self._mounts: dict[str, Path] = {}
        self._lock = threading.Lock()

    def add(self, prefix: str, folder: Path) -> None:
        if not prefix.startswith("/") or not prefix.endswith("/"):
            raise ValueError(f"mount prefix must start and end with '/': {prefix!r}")
        with self._lock:
            self._mounts[prefix] = folder.resolve()

    def resolve(self, url_path: str) -> Path | None:
        path = posixpath.normpath(unquote(url_path))
        if url_path.endswith("/") and not path.endswith("/"):
            path += "/"
        with self._lock:
            mounts = sorted(self._mounts.items(), key=lambda item: len(item[0]), reverse=True)
        for prefix, folder in mounts:
            if path.startswith(prefix) or path + "/" == prefix:
                relative = path[len(prefix):]
                target = (folder / relative).resolve()
                if target != folder and folder not in target.parents:
                    return None
                if target.is_dir():
                    target = target / "index.html"
                return target if target.is_file() else None
        return None


# The mounts of every asset server of this process, by origin: the egress proxy answers
# requests for an asset origin from its mounts itself (see `engine.egress_proxy`).
_SERVING: dict[str, _Mounts] = {}


def mounts_at(origin: str) -> _Mounts | None:
    """The mounts served at `origin` by an asset server of this process, if any."""
    return _SERVING.get(origin.rstrip("/"))


class AssetServer:
    """Serves mounted folders read-only on a loopback port, in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.mounts = _Mounts()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        _SERVING[self.origin] = self.mounts

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def mount(self, prefix: str, folder: Path) -> None:
        self.mounts.add(prefix, folder)

    def start(self) -> AssetServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="asset-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        _SERVING.pop(self.origin, None)
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        mounts = self.mounts

        class Handler(BaseHTTPRequestHandler):
            server_version = "safebrowse-assets"
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # small files, answered at once
            sys_version = ""

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                self._serve(send_body=True)

            def do_HEAD(self) -> None:  # noqa: N802
                self._serve(send_body=False)

            def _serve(self, send_body: bool) -> None:
                url = urlsplit(self.path)
                target = mounts.resolve(url.path)
                if target is None:
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                body = target.read_bytes()
                content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", cache_control(bool(url.query)))
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                logger.debug("asset %s", format % args)

        return Handler
