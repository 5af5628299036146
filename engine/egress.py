"""Keep an episode's browser context on the origins its task allows: the policy.

The boundary is the loopback egress proxy (`engine.egress_proxy`): Chromium sends every
connection of the context to the context's own gate on it, and the gate asks this guard
whether to let each request, `CONNECT` or WebSocket upgrade through. Refusals are reported
to the guard's owner (the episode), which charges them to the step under way.

One job stays in the browser, for the agent's sake: a navigation off the allowed origins is
answered with an empty 204, so the page stays where it was instead of landing on an error page
(the proxy sees an `https` navigation only as a `CONNECT` it can merely refuse, and Chromium
refuses some ports by itself), and it is recorded with its full URL. So each page's own CDP
session pauses its document requests, and only those (`Fetch.enable` with a pattern for the
`Document` type): the guard lets the allowed ones go on to the proxy and answers the others.
Playwright's `route()` is not used: it pauses every request of the context in the driver and
turns Chromium's cache off, which doubled the CPU of loading a task page.

Also here is what the proxy cannot see: downloads of `blob:` URLs never reach the network, so
they are cancelled from the page's events, and pages that end up somewhere else without a
request (a popup written by script, a `data:` document) are closed or sent back by the
episode after each action.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import playwright.sync_api as pw

logger = logging.getLogger(__name__)

# Called with (url, kind, page) for every request, navigation or download stopped. It may be
# called from the proxy's thread (page is then None).
BlockedCallback = Callable[[str, str, "pw.Page | None"], None]


# Chromium 156 still opens tunnels to these on its own when a context opens (sign-in and search
# services that no launch flag found so far turns off). They are refused like everything else,
# but not charged to an episode: no action caused them. A page's own request to such a host is
# refused all the same; it is only logged, not recorded.
BROWSER_SERVICE_TUNNELS = frozenset({("www.google.com", 443), ("accounts.google.com", 443)})


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname:
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        port = parts.port or (443 if scheme == "https" else 80)
        return f"{scheme}://{parts.hostname}:{port}"
    return f"{parts.scheme}:"


def origin_set(origins: list[str]) -> frozenset[str]:
    """Origins as the guard compares them (scheme, host and explicit port)."""
    return frozenset(origin_of(origin) for origin in origins)


# The requests a page's CDP session pauses: documents (of the page and of its frames).
_DOCUMENTS = [{"urlPattern": "*", "resourceType": "Document", "requestStage": "Request"}]


def _tunnel_endpoint(authority: str) -> tuple[str, int | None]:
    parts = urlsplit("//" + authority)
    try:
        return (parts.hostname or "", parts.port)
    except ValueError:
        return ("", None)


def _endpoint_of(origin: str) -> tuple[str, int]:
    parts = urlsplit(origin)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


class EgressGuard:
    """Allows requests to a fixed set of origins and reports the rest to its owner."""

    def __init__(self, allowed_origins: list[str], on_blocked: BlockedCallback) -> None:
        self.allowed = origin_set(allowed_origins)
        self._endpoints = frozenset(_endpoint_of(origin) for origin in self.allowed if "://" in origin)
        self._on_blocked = on_blocked
        self._lock = threading.Lock()  # the proxy's thread reports while the worker's may rebind
        self._sessions: dict[pw.Page, pw.CDPSession] = {}  # worker thread only

    def rebind(self, on_blocked: BlockedCallback) -> None:
        """Report to a new owner: a warm context's guard keeps guarding when an episode takes it."""
        with self._lock:
            self._on_blocked = on_blocked

    def allows(self, url: str) -> bool:
        return origin_of(url) in self.allowed

    def allows_endpoint(self, host: str, port: int) -> bool:
        """A tunnel (`CONNECT`, used for https and WebSockets) to host:port of an allowed origin."""
        return (host.lower(), port) in self._endpoints

    def allows_page(self, url: str) -> bool:
        """A page may show an allowed origin, or the blank page a new tab starts on."""
        return url == "about:blank" or self.allows(url)

    def refused(self, url: str, kind: str) -> None:
        """The proxy refused `url` (kind `navigation`, `request` or `connect`)."""
        if kind == "connect" and _tunnel_endpoint(url) in BROWSER_SERVICE_TUNNELS:
            logger.debug("refused Chromium's own tunnel to %s", url)
            return
        with self._lock:
            on_blocked = self._on_blocked
        on_blocked(url, kind, None)

    def install(self, context: pw.BrowserContext) -> None:
        """Watch every page of the context, now and to come: its navigations (see the module's
        docstring) and its downloads, which the proxy never sees when from `blob:`."""
        context.on("page", self._watch_page)
        for page in context.pages:  # a warm context already has its first page
            self._watch_page(page)

    def session(self, page: pw.Page) -> pw.CDPSession:
        """The CDP session the guard holds on `page`, one for the tab's whole life, for the
        worker's own calls to it too (page reads, a reused context's reset and its check): each
        would otherwise attach a session of its own and detach it, two more round trips through
        the driver and the browser, on every episode. Worker thread only."""
        session = self._sessions.get(page)
        if session is None:  # a page the guard has not watched (yet): its first call opens it
            session = self._sessions[page] = page.context.new_cdp_session(page)
        return session

    def _watch_page(self, page: pw.Page) -> None:
        page.on("download", lambda download: self._cancel_download(download))
        page.on("close", self._forget_page)
        try:
            session = self.session(page)
            session.on("Fetch.requestPaused", lambda event: self._judge_document(session, page, event))
            session.send("Fetch.enable", {"patterns": _DOCUMENTS})
        except pw.Error:
            pass  # the page closed already: it navigates nowhere

    def _forget_page(self, page: pw.Page) -> None:
        """A closed tab's session is gone with it: drop it, so a closed page is not kept alive."""
        self._sessions.pop(page, None)

    def _judge_document(self, session: pw.CDPSession, page: pw.Page, event: dict[str, Any]) -> None:
        """Let a document request go on to the proxy if its origin is allowed, else answer it
        with an empty 204, which leaves the page where it was, and report it."""
        url: str = event["request"]["url"]
        try:
            if self.allows(url):
                session.send("Fetch.continueRequest", {"requestId": event["requestId"]})
                return
            with self._lock:
                on_blocked = self._on_blocked
            on_blocked(url, "navigation", page)
            session.send("Fetch.fulfillRequest", {"requestId": event["requestId"], "responseCode": 204, "body": ""})
        except pw.Error:
            pass  # the page went away meanwhile

    def _cancel_download(self, download: pw.Download) -> None:
        with self._lock:
            on_blocked = self._on_blocked
        on_blocked(download.url, "download", None)
        try:
            download.cancel()
        except pw.Error:
            pass
