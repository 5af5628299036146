"""Browser workers: one thread, one Playwright instance, one Chromium each.

Playwright's sync API is bound to the thread that started it, so each worker
owns a thread and runs jobs from a queue, in order. The async server hands a
job over with `submit` and awaits the returned future; it never blocks its
event loop on Playwright.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import playwright.sync_api as pw
from playwright.sync_api import sync_playwright

from engine import playwright_calls
from engine.config import CHROMIUM_FLAGS, EngineConfig, find_chromium
from engine.egress import BlockedCallback, EgressGuard, origin_set

logger = logging.getLogger(__name__)
T = TypeVar("T")

_STOP = object()

# A spare context is warmed only after the worker has been idle this long: warming
# takes a renderer start (~250 ms), and an agent acting back to back should not wait on it.
SPARE_IDLE_S = 0.3
# How many bursts of resets (contexts taken between two idle moments) size the warm pool.
RECENT_BURSTS = 8


class WorkerStoppedError(RuntimeError):
    pass


@dataclass
class LeasedContext:
    """A browser context handed to one episode, its egress guard already routing it."""

    context: pw.BrowserContext
    page: pw.Page
    guard: EgressGuard


@dataclass
class _Spare:
    """A context warmed while the worker was idle, guarded from its first request.

    `url` is the task page its tab has already loaded, if any: the page the
    worker's last episode started on, which the next one most likely wants too
    (a trainer resets the same task over many seeds).
    """

    context: pw.BrowserContext
    page: pw.Page
    guard: EgressGuard
    url: str | None

    @property
    def usable(self) -> bool:
        return self.context.browser is not None and self.context.browser.is_connected() and not self.page.is_closed()


def _close_quietly(context: pw.BrowserContext) -> None:
    try:
        context.close()
    except pw.Error:
        pass


def _forget_preloaded_page(context: pw.BrowserContext, page: pw.Page) -> None:
    """Back to a blank page with no history, as a fresh context starts: a task that wanted
    another page must not find the preloaded one behind `go_back`."""
    page.goto("about:blank")
    session = context.new_cdp_session(page)
    try:
        session.send("Page.resetNavigationHistory")
    finally:
        session.detach()


def _blocked_while_warming(url: str, kind: str, page: pw.Page | None) -> None:
    logger.warning("a warm spare context tried to reach %s (%s); blocked", url, kind)


class BrowserWorker:
    """Hosts several episodes, each in its own browser context of one Chromium."""

    def __init__(self, index: int, config: EngineConfig, asset_origin: str) -> None:
        self.index = index
        self.config = config
        self.asset_origin = asset_origin
        self.episode_count = 0
        self.launches = 0
        self._executable = find_chromium(config.chromium_path)
        self._jobs: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"browser-worker-{index}", daemon=True)
        self._ready = concurrent.futures.Future[None]()
        self._playwright: pw.Playwright | None = None
        self._browser: pw.Browser | None = None
        self._stopped = False
        self._spares: list[_Spare] = []
        # Contexts taken since the worker was last idle, and the sizes of recent such bursts:
        # a trainer that resets a group of episodes at once (GRPO) will likely do so again.
        self._taken_since_idle = 0
        self._recent_bursts: collections.deque[int] = collections.deque(maxlen=RECENT_BURSTS)
        # What the last episode on this worker started on: the next spare preloads it.
        self._last_url: str | None = None
        self._last_viewport: dict[str, int] | None = None

    # -- any thread -----------------------------------------------------------------

    def start(self) -> concurrent.futures.Future[None]:
        self._thread.start()
        return self._ready

    def submit(self, job: Callable[["BrowserWorker"], T]) -> concurrent.futures.Future[T]:
        """Queue `job(worker)` to run on this worker's thread."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if self._stopped:
            future.set_exception(WorkerStoppedError("the browser worker has stopped"))
            return future
        self._jobs.put((job, future))
        return future

    async def run(self, job: Callable[["BrowserWorker"], T]) -> T:
        return await asyncio.wrap_future(self.submit(job))

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped = True
        self._jobs.put(_STOP)
        self._thread.join(timeout)

    # -- worker thread only --------------------------------------------------------

    @property
    def browser(self) -> pw.Browser:
        """The live Chromium, relaunched first if the previous one died."""
        if self._browser is None or not self._browser.is_connected():
            self._launch()
        assert self._browser is not None
        return self._browser

    def browser_pid(self) -> int | None:
        """Chromium's browser process id (for fault injection and accounting)."""
        session = self.browser.new_browser_cdp_session()
        try:
            info = session.send("SystemInfo.getProcessInfo")
        finally:
            session.detach()
        for process in info.get("processInfo", []):
            if process.get("type") == "browser":
                return int(process["id"])
        return None

    @property
    def spare_target(self) -> int:
        """How many warm contexts to keep: the largest recent burst of resets, within the limit."""
        return min(self.config.max_warm_contexts, max(1, *self._recent_bursts, 0))

    @property
    def has_spare(self) -> bool:
        return bool(self._spares)

    def has_spare_at(self, url: str | None) -> bool:
        return url is not None and any(spare.url == url for spare in self._spares)

    def take_context(
        self,
        allowed_origins: list[str],
        on_blocked: BlockedCallback,
        *,
        preload_url: str | None = None,
        viewport: dict[str, int] | None = None,
        locale: str | None = None,
        timezone_id: str | None = None,
    ) -> LeasedContext:
        """A fresh context with one page and the episode's egress guard, warm when possible.

        Opening a context and its first page costs a renderer start (~200 ms on
        two cores), and a MiniWoB page's first load another ~80 ms; doing both
        while the worker is idle takes them off reset's path. A spare is only
        handed out when its guard allows exactly the episode's origins (then the
        guard is rebound to the episode, with no gap in routing) and its context
        has the episode's viewport; tasks with other origins, a locale or a time
        zone get a context made to measure.
        """
        self._last_url, self._last_viewport = preload_url, viewport
        self._taken_since_idle += 1
        # Warm contexts are guarded for the asset server alone (see `_replenish`).
        if not locale and not timezone_id and origin_set(allowed_origins) == origin_set([self.asset_origin]):
            spare = self._take_spare(preload_url, viewport)
            if spare is not None:
                try:
                    if spare.url is not None and spare.url != preload_url:
                        _forget_preloaded_page(spare.context, spare.page)
                except pw.Error:
                    _close_quietly(spare.context)
                else:
                    spare.guard.rebind(on_blocked)
                    return LeasedContext(spare.context, spare.page, spare.guard)
        guard = EgressGuard(allowed_origins, on_blocked)
        context, page = self._new_context(guard, viewport=viewport, locale=locale, timezone_id=timezone_id)
        return LeasedContext(context, page, guard)

    def _take_spare(self, preload_url: str | None, viewport: dict[str, int] | None) -> _Spare | None:
        """The best warm spare for this episode, if one fits; the rest stay, unfit ones are closed.

        A spare fits when its context has the episode's viewport (new tabs opened in the
        episode get the context's viewport, so resizing the first page is not enough);
        one that already shows the episode's page is preferred.
        """
        # Readers on other threads (`has_spare`, `WorkerPool.pick`) see the old list or the new one.
        spares, self._spares = self._spares, []
        chosen: _Spare | None = None
        for spare in sorted(spares, key=lambda spare: spare.url != preload_url):  # a matching page first
            fits = spare.usable and (viewport is None or spare.page.viewport_size == viewport)
            if fits and chosen is None:
                chosen = spare
            elif fits:
                self._spares.append(spare)
            else:
                _close_quietly(spare.context)
        return chosen

    def _new_context(self, guard: EgressGuard, **options: object) -> tuple[pw.BrowserContext, pw.Page]:
        context = self.browser.new_context(
            accept_downloads=False,
            service_workers="block",
            **{key: value for key, value in options.items() if value},
        )
        try:
            guard.install(context)
            return context, context.new_page()
        except BaseException:
            _close_quietly(context)  # never leave a renderer nobody will close
            raise

    def _on_idle(self) -> None:
        """Idle for SPARE_IDLE_S: note the burst that just ended, then warm contexts up to the
        target, one at a time, stopping as soon as a job arrives."""
        if self._taken_since_idle:
            self._recent_bursts.append(self._taken_since_idle)
            self._taken_since_idle = 0
        target = self.spare_target
        while len(self._spares) > target:
            _close_quietly(self._spares.pop(0).context)  # demand went down: free the oldest
        # Contexts preloaded for a page the last episode did not start on were a wrong guess:
        # replace them, so the pool follows a trainer that moves to another task.
        stale = [spare for spare in self._spares if spare.url is not None and spare.url != self._last_url]
        self._spares = [spare for spare in self._spares if spare not in stale]
        for spare in stale:
            _close_quietly(spare.context)
        while len(self._spares) < target and self._jobs.empty():
            if not self._replenish():
                return

    def _replenish(self) -> bool:
        """Warm one spare context; False if Chromium would not open one."""
        guard = EgressGuard([self.asset_origin], _blocked_while_warming)
        try:
            context, page = self._new_context(guard, viewport=self._last_viewport)
        except pw.Error:
            logger.warning("worker %d could not warm a spare context", self.index)
            return False
        url: str | None = None
        if self._last_url is not None:
            try:
                # Only until the document commits: its scripts and styles load in Chromium
                # while this thread serves other jobs; the task's setup waits for "load".
                page.goto(self._last_url, wait_until="commit", timeout=self.config.setup_timeout_s * 1000)
                url = self._last_url
            except pw.Error:
                # Still a usable blank context; the episode navigates itself.
                logger.warning("worker %d could not preload %s", self.index, self._last_url)
        self._spares.append(_Spare(context, page, guard, url))
        return True

    def _launch(self) -> None:
        assert self._playwright is not None
        if self._browser is not None:
            try:
                self._browser.close()
            except pw.Error:
                pass
        self._browser = self._playwright.chromium.launch(
            executable_path=self._executable,
            headless=self.config.headless,
            args=[
                *CHROMIUM_FLAGS,
                # Defence in depth behind the per-context route guard: no host name resolves.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
            ],
        )
        self.launches += 1
        logger.info("worker %d launched Chromium (launch #%d)", self.index, self.launches)

    def _run(self) -> None:
        playwright_calls.install()
        try:
            with sync_playwright() as playwright:
                self._playwright = playwright
                try:
                    self._launch()
                except BaseException as error:  # noqa: BLE001 - reported through the future
                    self._ready.set_exception(error)
                    return
                self._ready.set_result(None)
                self._loop()
                for spare in self._spares:
                    try:
                        spare.context.close()
                    except pw.Error:
                        pass
                if self._browser is not None and self._browser.is_connected():
                    self._browser.close()
        except BaseException as error:  # noqa: BLE001
            if not self._ready.done():
                self._ready.set_exception(error)
            logger.exception("browser worker %d crashed", self.index)
        finally:
            self._stopped = True
            self._fail_pending()

    def _loop(self) -> None:
        while True:
            idle_work = self._taken_since_idle > 0 or len(self._spares) != self.spare_target
            try:
                item = self._jobs.get(timeout=SPARE_IDLE_S if idle_work else None)
            except queue.Empty:
                self._on_idle()
                continue
            if item is _STOP:
                return
            job, future = item  # type: ignore[misc]
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job(self))
            except BaseException as error:  # noqa: BLE001 - the caller gets it
                future.set_exception(error)

    def _fail_pending(self) -> None:
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                return
            if item is _STOP:
                continue
            _, future = item  # type: ignore[misc]
            if future.set_running_or_notify_cancel():
                future.set_exception(WorkerStoppedError("the browser worker has stopped"))


class WorkerPool:
    """A fixed set of workers; each new episode goes to the least loaded one."""

    def __init__(self, config: EngineConfig, asset_origin: str) -> None:
        self.workers = [BrowserWorker(i, config, asset_origin) for i in range(config.workers)]
        self._turn = 0

    async def start(self) -> None:
        await asyncio.gather(*(asyncio.wrap_future(w.start()) for w in self.workers))

    def pick(self, preload_url: str | None = None) -> BrowserWorker:
        """Fewest episodes first; among equals, one whose warm spare already shows the
        task's page, then one with any warm spare, then in turn."""
        self._turn = (self._turn + 1) % len(self.workers)
        order = self.workers[self._turn:] + self.workers[: self._turn]
        return min(
            order,
            key=lambda worker: (worker.episode_count, not worker.has_spare_at(preload_url), not worker.has_spare),
        )

    async def stop(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in self.workers))
