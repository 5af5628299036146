"""Keep an episode's browser context on the origins its task allows.

Every request of the context passes through one route handler: requests to an
allowed origin continue, everything else is aborted and recorded. Pages that
still end up somewhere else (a popup to `about:blank` written by script, a
`data:` document) are closed or sent back by the episode after each action.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import playwright.sync_api as pw

# Called with (url, kind, page) for every request, navigation or download stopped.
BlockedCallback = Callable[[str, str, "pw.Page | None"], None]


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.hostname:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{parts.scheme}://{parts.hostname}:{port}"
    return f"{parts.scheme}:"


def origin_set(origins: list[str]) -> frozenset[str]:
    """Origins as the guard compares them (scheme, host and explicit port)."""
    return frozenset(origin_of(origin) for origin in origins)


def _page_of(request: pw.Request) -> pw.Page | None:
    try:
        return request.frame.page
    except pw.Error:
        return None


def _url_prefix(origin: str) -> str:
    """How URLs of an origin begin once Chromium has serialised them."""
    scheme, rest = origin.split("://", 1)
    host, port = rest.rsplit(":", 1)
    default = {"http": "80", "https": "443"}.get(scheme)
    return f"{scheme}://{host}/" if port == default else f"{scheme}://{host}:{port}/"


class EgressGuard:
    """Allows requests to a fixed set of origins and records the rest."""

    def __init__(self, allowed_origins: list[str], on_blocked: BlockedCallback) -> None:
        self.allowed = origin_set(allowed_origins)
        self._on_blocked = on_blocked

    def rebind(self, on_blocked: BlockedCallback) -> None:
        """Report to a new owner: a warm context's guard keeps routing when an episode takes it."""
        self._on_blocked = on_blocked

    def allows(self, url: str) -> bool:
        return origin_of(url) in self.allowed

    def allows_page(self, url: str) -> bool:
        """A page may show an allowed origin, or the blank page a new tab starts on."""
        return url == "about:blank" or self.allows(url)

    def install(self, context: pw.BrowserContext) -> None:
        # Only URLs outside the allowed origins are intercepted: the pattern runs
        # in the Playwright driver, so allowed requests never wait on Python.
        context.route(self.outside_pattern(), self._route)
        context.on("page", self._watch_page)
        for page in context.pages:  # a warm context already has its first page
            self._watch_page(page)

    def outside_pattern(self) -> re.Pattern[str]:
        """A regex (valid in Python and JavaScript) matching URLs off the allowed origins."""
        prefixes = "|".join(re.escape(_url_prefix(origin)) for origin in sorted(self.allowed))
        return re.compile(f"^(?!(?:{prefixes}))" if prefixes else "^")

    def _route(self, route: pw.Route) -> None:
        request = route.request
        if self.allows(request.url):
            route.continue_()
            return
        if request.is_navigation_request():
            # A 204 answer to a navigation leaves the page where it was, instead of
            # committing an error page the agent would then be stuck on.
            page = _page_of(request)
            self._on_blocked(request.url, "navigation", page)
            route.fulfill(status=204, body="")
            return
        self._on_blocked(request.url, "request", None)
        route.abort("blockedbyclient")

    def _watch_page(self, page: pw.Page) -> None:
        page.on("download", lambda download: self._cancel_download(download))

    def _cancel_download(self, download: pw.Download) -> None:
        self._on_blocked(download.url, "download", None)
        try:
            download.cancel()
        except pw.Error:
            pass
