"""One episode's browser context: its tabs, the wait after an action, page reads, screenshots.

The session holds what Playwright gives an episode (a context leased from the
worker, its pages, a CDP session per page) and what the egress guard reports
(requests it refused, pages sent away). Everything here runs on the owning
worker's thread; the episode decides what the results mean.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import playwright.sync_api as pw

from engine.actions import BID_ATTRIBUTE, ActionError
from engine.agent_view.actions import Action
from engine.agent_view.observation import Tab
from engine.config import EngineConfig
from engine.egress import EgressGuard
from engine.egress_proxy import EgressProxy
from engine.observation import BidIndex, PageSnapshot, snapshot_page
from engine.records import BlockedRequest
from engine.warm_pool import LeasedContext
from engine.worker import BrowserWorker

# A page read that finds the document replaced mid-read is tried again this many times.
READ_ATTEMPTS = 6


class BrowserSession:
    """The context and tabs of one episode, and the requests its guard refused."""

    def __init__(self, config: EngineConfig, secret_selector: str | None, blocked_step: Callable[[], int]) -> None:
        """`blocked_step` says which step a refused request is charged to when it happens."""
        self._config = config
        self._secret_selector = secret_selector
        self._blocked_step = blocked_step
        self._worker: BrowserWorker | None = None
        self._lease: LeasedContext | None = None
        self._context: pw.BrowserContext | None = None
        self._page: pw.Page | None = None
        self._guard: EgressGuard | None = None  # installed with the context, in `open`
        self._bid_indexes: dict[pw.Page, BidIndex] = {}
        self._blocked: list[BlockedRequest] = []
        self._blocked_lock = threading.Lock()  # the egress proxy reports from its own thread
        self._proxy: EgressProxy | None = None
        self._navigation_refused = False
        self._new_pages: list[pw.Page] = []
        self._pages_sent_away: set[pw.Page] = set()
        self._next_bid = 0

    # -- lifecycle -------------------------------------------------------------------------

    def open(
        self,
        worker: BrowserWorker,
        allowed_origins: list[str],
        *,
        preload_url: str | None,
        viewport: dict[str, int] | None,
        locale: str | None,
        timezone_id: str | None,
    ) -> pw.Page:
        """Lease a context from the worker (warm when possible); its page, with the setup timeout."""
        lease = worker.take_context(
            allowed_origins, self._on_blocked, preload_url=preload_url, viewport=viewport, locale=locale,
            timezone_id=timezone_id,
        )
        self._worker, self._lease = worker, lease
        self._context, self._guard, self._page = lease.context, lease.guard, lease.page
        self._proxy = worker.proxy
        lease.context.set_default_timeout(self._config.setup_timeout_s * 1000)
        lease.context.on("page", self._on_new_page)
        return lease.page

    def use_action_timeout(self) -> None:
        """From now on Playwright calls wait as long as an action may (setup is over)."""
        self.context.set_default_timeout(self._config.action_timeout_ms)

    def close(self) -> None:
        """Give the context back to the worker, which resets it for a later episode or closes it;
        the session is empty afterwards. The tabs' CDP sessions stay with the context's guard."""
        if self._worker is not None and self._lease is not None:
            try:
                self._lease.context.remove_listener("page", self._on_new_page)
            except (pw.Error, ValueError):
                pass
            self._worker.give_back(self._lease)
        self._worker, self._lease = None, None
        self._context = None
        self._page = None
        self._bid_indexes.clear()

    @property
    def is_open(self) -> bool:
        return self._context is not None

    @property
    def context(self) -> pw.BrowserContext:
        assert self._context is not None, "the browser session is not open"
        return self._context

    # -- tabs ------------------------------------------------------------------------------

    def active_page(self) -> pw.Page:
        """The focused tab; if it was closed, the newest remaining one (or a new one)."""
        assert self._page is not None and self._context is not None
        if self._page.is_closed():
            pages = self._context.pages
            self._page = pages[-1] if pages else self._context.new_page()
        return self._page

    def focus_tab(self, index: int) -> None:
        pages = self.context.pages
        if index >= len(pages):
            raise ActionError(f"There is no tab {index}; open tabs are 0 to {len(pages) - 1}.")
        self._page = pages[index]
        self._page.bring_to_front()

    def tabs(self, active_title: str) -> list[Tab]:
        """The open tabs as the agent sees them; the active one's title is `active_title`."""
        pages = self._context.pages if self._context is not None else []
        return [
            Tab(index=i, url=p.url, title=active_title if p is self._page else _safe_title(p), active=p is self._page)
            for i, p in enumerate(pages)
        ]

    def safe_url(self) -> str:
        try:
            return self.active_page().url
        except (pw.Error, AssertionError):
            return ""

    def browser_gone(self) -> bool:
        try:
            return self._context is None or not self._context.browser.is_connected() or self.active_page().is_closed()  # type: ignore[union-attr]
        except pw.Error:
            return True

    def targets_exist(self, action: Action) -> bool:
        """Whether the action names elements and all are on the page: then the page refused it
        (disabled, hidden, covered, not editable...), rather than the agent naming a wrong id."""
        named = [getattr(action, name, None) for name in ("id", "from_id", "to_id")]
        ids = [element_id for element_id in named if element_id is not None]
        if not ids:
            return False
        try:
            page = self.active_page()
            return all(page.locator(f'[{BID_ATTRIBUTE}="{element_id}"]').count() > 0 for element_id in ids)
        except pw.Error:
            return False

    # -- after an action -------------------------------------------------------------------

    def settle(self) -> None:
        """Wait for navigations the action started, then keep every tab on allowed origins."""
        assert self._context is not None and self._guard is not None
        try:
            # One round trip through the renderer: by the time it returns, a navigation
            # or popup the action started has reached the egress guard.
            self.active_page().evaluate("0")
        except pw.Error:
            pass  # the document was replaced mid-call: a navigation, waited for below
        # Then one through the browser process, where a popup the page opened becomes a
        # target: its "page" event is delivered before this returns.
        self._context.cookies()
        self._sync_proxy()
        for page in list(self._new_pages):
            self._new_pages.remove(page)
            if page.is_closed():
                continue
            try:
                self._wait_for_dom(page)
                page.evaluate("0")  # lets the popup's first navigation reach the guard
            except pw.Error:
                pass
            self._sync_proxy()
            sent_away = page in self._pages_sent_away or self._navigation_refused
            if sent_away and page.url == "about:blank" and len(self._context.pages) > 1:
                page.close()  # a popup whose only purpose was to leave
                continue
            self._page = page  # a new tab takes the focus, as in a browser
        self._pages_sent_away.clear()
        self._navigation_refused = False
        try:
            self._wait_for_dom(self.active_page())
        except pw.TimeoutError:
            pass
        for candidate in list(self._context.pages):
            if self._guard.allows_page(candidate.url):
                continue
            self._on_blocked(candidate.url, "page")
            if len(self._context.pages) > 1:
                candidate.close()
            else:
                candidate.go_back(wait_until="domcontentloaded")
                if not self._guard.allows_page(candidate.url):
                    candidate.goto("about:blank")
        self.active_page()

    def settle_and_read(self, probe: str | None = None) -> PageSnapshot:
        """`settle()` then `read(probe)`, in one page call fewer when the action changed no tabs.

        `settle` starts with a call through the renderer, so that what the action started
        reaches the browser before the barrier through the browser and network processes. The
        page read is itself a call through the renderer: made first, it serves as that barrier,
        and it stands if by the end of the barrier nothing happened that `settle` would act on
        (no new tab, no navigation of the page, nothing sent away, every tab on an allowed
        origin). Otherwise the page is settled and read again, exactly as before.
        """
        assert self._context is not None
        page = self.active_page()
        navigated: list[bool] = []

        def on_navigated(_frame: pw.Frame) -> None:
            navigated.append(True)

        page.on("framenavigated", on_navigated)
        try:
            try:
                snapshot: PageSnapshot | None = self.read(probe)
            except pw.Error:
                snapshot = None  # the document went away mid-read: settled and read below
            self._context.cookies()
            self._sync_proxy()
        finally:
            page.remove_listener("framenavigated", on_navigated)
        if snapshot is not None and not navigated and self._unchanged(page):
            return snapshot
        self.settle()
        return self.read(probe)

    def _unchanged(self, page: pw.Page) -> bool:
        """Whether `settle` would leave everything as it is: `page` still the parsed, focused tab,
        no new tab, no navigation refused, every tab on an allowed origin."""
        assert self._context is not None and self._guard is not None
        with self._blocked_lock:
            refused = self._navigation_refused or bool(self._pages_sent_away)
        return (
            not refused and not self._new_pages and page is self._page and not page.is_closed()
            and "domcontentloaded" in _reported_load_states(page)
            and all(self._guard.allows_page(candidate.url) for candidate in self._context.pages)
        )

    def _wait_for_dom(self, page: pw.Page) -> None:
        """Wait until the page's document has been parsed (a navigation the action started).

        Playwright answers `wait_for_load_state` from the load states the driver has already
        reported, when the state is there; but the call itself first sends the driver three
        messages for its call log. Most steps navigate nowhere, so the same check is made
        here first, and only a document still loading costs a call.
        """
        if "domcontentloaded" not in _reported_load_states(page):
            page.wait_for_load_state("domcontentloaded", timeout=self._config.action_timeout_ms)

    def page_session(self, page: pw.Page) -> pw.CDPSession:
        """The CDP session on one of the episode's tabs: the one its context's egress guard holds
        for the tab's whole life, so no episode attaches (and detaches) sessions of its own."""
        assert self._guard is not None, "the browser session is not open"
        return self._guard.session(page)

    def read(self, probe: str | None = None) -> PageSnapshot:
        """Read the active page: its elements (ids given as needed) and accessibility tree; with
        `probe`, also what that page function returns, in the same call (`PageSnapshot.probed`)."""
        page = self.active_page()
        cdp = self.page_session(page)
        snapshot: PageSnapshot | None = None
        for attempt in range(READ_ATTEMPTS):
            # A mouse click on a link returns before the navigation it starts: the
            # old document can vanish mid-read, or the new one still be parsing.
            try:
                snapshot = snapshot_page(
                    page, cdp, self._config.max_elements, self._secret_selector, self._next_bid,
                    self._bid_indexes.get(page), probe=probe,
                )
            except pw.Error as read_error:
                if "context was destroyed" not in str(read_error):
                    raise
            if snapshot is not None:
                break
            page.wait_for_timeout(25 * (attempt + 1))
        if snapshot is None:
            snapshot = snapshot_page(
                page, cdp, self._config.max_elements, self._secret_selector, self._next_bid,
                read_while_loading=True, probe=probe,
            )
        assert snapshot is not None
        self._next_bid = max(self._next_bid, snapshot.next_bid)
        if snapshot.bid_index is not None:
            self._bid_indexes[page] = snapshot.bid_index
        return snapshot

    def screenshot(self) -> bytes:
        """The viewport as PNG, with the task's secret fields painted over: observations mask
        their values, and pixels must not show them either."""
        page = self.active_page()
        secret = self._secret_selector
        return page.screenshot(type="png", mask=[page.locator(secret)] if secret else [])

    # -- what the guard refused ------------------------------------------------------------

    def take_blocked(self) -> list[BlockedRequest]:
        """The refused requests not yet charged to a step; the list starts over."""
        with self._blocked_lock:
            taken, self._blocked = self._blocked, []
        return taken

    def _sync_proxy(self) -> None:
        """Wait until the proxy has judged what Chromium has sent so far, so that a refusal is
        charged to the step that caused it."""
        if self._proxy is not None:
            self._proxy.sync()

    def _on_blocked(self, url: str, kind: str, page: pw.Page | None = None) -> None:
        """Any thread: the worker's (downloads, pages) or the egress proxy's (requests)."""
        record = BlockedRequest(url=url[:500], kind=kind, step_index=self._blocked_step())
        with self._blocked_lock:
            self._blocked.append(record)
            if kind == "navigation":
                self._navigation_refused = True
                if page is not None:
                    self._pages_sent_away.add(page)

    def _on_new_page(self, page: pw.Page) -> None:
        self._new_pages.append(page)


def _reported_load_states(page: pw.Page) -> frozenset[str]:
    """The load states the driver has reported for the page's main frame so far (Playwright's own
    record, which its `wait_for_load_state` checks first); none if this Playwright keeps no such
    record, so the caller then waits the ordinary way."""
    states = getattr(page.main_frame._impl_obj, "_load_states", None)
    return frozenset(states) if isinstance(states, set) else frozenset()


def _safe_title(page: pw.Page) -> str:
    try:
        return page.title()
    except pw.Error:
        return ""


__all__ = ["BrowserSession"]
