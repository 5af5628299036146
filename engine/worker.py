"""Browser workers: one thread, one Playwright instance, one Chromium each.

Playwright's sync API is bound to the thread that started it, so each worker
owns a thread and runs jobs from a queue, in order. The async server hands a
job over with `submit` and awaits the returned future; it never blocks its
event loop on Playwright.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import playwright.sync_api as pw
from playwright.sync_api import ViewportSize, sync_playwright

from engine import playwright_calls
from engine.assets import mounts_at
from engine.config import EngineConfig, find_chromium
from engine.egress import BlockedCallback, EgressGuard, origin_set
from engine.egress_proxy import EgressProxy
from engine.launch import context_options, launch_options
from engine.warm_pool import LeasedContext, WarmPool, close_quietly

logger = logging.getLogger(__name__)
T = TypeVar("T")

# A queued job and the future its caller waits on; None in the queue stops the worker.
_Job = tuple[Callable[["BrowserWorker"], Any], concurrent.futures.Future[Any]]


class WorkerStoppedError(RuntimeError):
    pass


def _viewport_size(viewport: dict[str, int] | None) -> ViewportSize | None:
    return ViewportSize(width=viewport["width"], height=viewport["height"]) if viewport else None


def _refused_outside_contexts(url: str, kind: str, _page: pw.Page | None) -> None:
    """Every context has its own gate: what reaches this one is Chromium's own traffic."""
    logger.debug("egress proxy refused %s (%s) from outside any episode's context", url, kind)


class BrowserWorker:
    """Hosts several episodes, each in its own browser context of one Chromium.

    Who changes what: the worker's thread alone runs jobs, owns Chromium and the warm
    pool, and counts `launches`. `episode_count` (episodes placed here and not yet
    closed) belongs to the `WorkerPool`, on the event loop. Other threads learn which
    pages the warm contexts show from `has_spare` and `has_spare_at`, which read a
    tuple the worker thread replaces after every job and idle pass.
    """

    def __init__(self, index: int, config: EngineConfig, asset_origin: str) -> None:
        self.index = index
        self.config = config
        self.asset_origin = asset_origin
        self.episode_count = 0  # event loop only: see WorkerPool.pick and WorkerPool.release
        self.launches = 0
        self._executable = find_chromium(config.chromium_path)
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"browser-worker-{index}", daemon=True)
        self._ready = concurrent.futures.Future[None]()
        self._playwright: pw.Playwright | None = None
        self._browser: pw.Browser | None = None
        self._stopped = False
        self._leased = 0  # contexts handed to episodes and not given back (worker thread only)
        self._busy = False  # running a job or warming (written by the worker thread only)
        mounts = mounts_at(asset_origin)
        # Every connection of this worker's Chromium goes through this proxy (engine.launch).
        self.proxy = EgressProxy(f"egress-proxy-{index}", asset_origin, mounts.resolve if mounts else None)
        # Chromium's launch-level proxy: allows nothing; contexts override it with their own gate.
        self._deny_gate = self.proxy.open_gate(EgressGuard([], _refused_outside_contexts))
        self._browser_cdp: pw.CDPSession | None = None  # of the current Chromium (worker thread only)
        self.warm_pool = WarmPool(index, config, asset_origin, self._new_context, self.browser_session)

    # -- any thread -----------------------------------------------------------------

    def start(self) -> concurrent.futures.Future[None]:
        self._thread.start()
        return self._ready

    def submit(self, job: Callable[[BrowserWorker], T]) -> concurrent.futures.Future[T]:
        """Queue `job(worker)` to run on this worker's thread."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if self._stopped:
            future.set_exception(WorkerStoppedError("the browser worker has stopped"))
            return future
        self._jobs.put((job, future))
        return future

    async def run(self, job: Callable[[BrowserWorker], T]) -> T:
        return await asyncio.wrap_future(self.submit(job))

    @property
    def has_spare(self) -> bool:
        """Whether a warm context was ready at the end of the worker's last job or idle pass."""
        return bool(self.warm_pool.published)

    def has_spare_at(self, url: str | None) -> bool:
        """Whether a warm context already showed `url` at the end of the last job or idle pass."""
        return url is not None and url in self.warm_pool.spare_urls

    @property
    def idle(self) -> bool:
        """Whether the worker is neither running a job nor warming, with no job queued: a new
        episode placed here starts at once (a worker resetting a closed episode's context is not)."""
        return not self._busy and self._jobs.empty()

    def spare_ready_since(self, url: str | None) -> float:
        """Since when (time.monotonic()) a warm context has shown `url`; infinity if none does.
        The oldest one has loaded its page furthest."""
        since = self.warm_pool.spare_since(url) if url is not None else None
        return since if since is not None else math.inf

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped = True
        self._jobs.put(None)
        self._thread.join(timeout)

    # -- worker thread only --------------------------------------------------------

    @property
    def browser(self) -> pw.Browser:
        """The live Chromium, relaunched first if the previous one died."""
        if self._browser is None or not self._browser.is_connected():
            self._launch()
        assert self._browser is not None
        return self._browser

    def browser_session(self) -> pw.CDPSession:
        """A browser-level CDP session of the live Chromium, opened once per launch."""
        browser = self.browser
        if self._browser_cdp is None:
            self._browser_cdp = browser.new_browser_cdp_session()
        return self._browser_cdp

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
        self.warm_pool.note_taken(preload_url, viewport)
        self._leased += 1
        # Warm contexts are guarded for the asset server alone.
        asset_only = not locale and not timezone_id and origin_set(allowed_origins) == origin_set([self.asset_origin])
        if asset_only:
            leased = self.warm_pool.lease(on_blocked, preload_url, viewport)
            if leased is not None:
                return leased
        guard = EgressGuard(allowed_origins, on_blocked)
        try:
            context, page = self._new_context(guard, viewport=viewport, locale=locale, timezone_id=timezone_id)
        except BaseException:
            self._leased -= 1
            raise
        return LeasedContext(context, page, guard, preload_url, page.viewport_size,
                             reusable=asset_only and preload_url is not None)

    def give_back(self, lease: LeasedContext) -> None:
        """An episode is done with its context: the warm pool resets it for a later episode when
        it can (see `WarmPool.recycle`), and closes it otherwise.

        The reset runs as the next job, after the one that gave the context back has answered
        (a trainer's close does not wait for it), and before any job queued later: a create
        that follows the close finds the context warm.
        """
        self._leased -= 1
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._jobs.put((lambda worker: worker._recycle(lease), done))

    def _recycle(self, lease: LeasedContext) -> None:
        """The job `give_back` queues: a stopping worker (its episodes closed one by one on
        shutdown) closes the context rather than prepare it for nobody."""
        if self._stopped:
            close_quietly(lease.context)
        else:
            self.warm_pool.recycle(lease)

    def _new_context(
        self,
        guard: EgressGuard,
        viewport: dict[str, int] | None = None,
        locale: str | None = None,
        timezone_id: str | None = None,
    ) -> tuple[pw.BrowserContext, pw.Page]:
        """A new context with one page, behind its own gate on the egress proxy (judged by `guard`)
        from before its first request; the gate closes with the context."""
        gate = self.proxy.open_gate(guard)
        try:
            context = self.browser.new_context(
                **context_options(gate.proxy_server, _viewport_size(viewport), locale, timezone_id))
        except BaseException:
            self.proxy.close_gate(gate)
            raise
        context.on("close", lambda _context: self.proxy.close_gate(gate))
        try:
            guard.install(context)
            return context, context.new_page()
        except BaseException:
            close_quietly(context)  # never leave a renderer nobody will close
            raise

    def _launch(self) -> None:
        assert self._playwright is not None
        if self._browser is not None:
            try:
                self._browser.close()
            except pw.Error:
                pass
        self._browser_cdp = None
        self._browser = self._playwright.chromium.launch(
            **launch_options(self.config, self._executable, self._deny_gate.proxy_server))
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
                self.warm_pool.close_all()
                if self._browser is not None and self._browser.is_connected():
                    self._browser.close()
        except BaseException as error:  # noqa: BLE001
            if not self._ready.done():
                self._ready.set_exception(error)
            logger.exception("browser worker %d crashed", self.index)
        finally:
            self._stopped = True
            self._fail_pending()
            self.proxy.stop()

    def _loop(self) -> None:
        while True:
            # Verify reset contexts and warm new ones only with no episode on this worker: then
            # it holds up no agent (an episode that takes an unverified context verifies it).
            idle_work = not self._leased and self.warm_pool.has_idle_work
            try:
                item = self._jobs.get(timeout=0.0 if idle_work else None)
            except queue.Empty:
                self._busy = True
                self.warm_pool.on_idle(interrupted=self._job_waiting)
                self.warm_pool.publish()
                self._busy = False
                continue
            if item is None:
                return
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            self._busy = True
            try:
                result = job(self)
            except BaseException as error:  # noqa: BLE001 - the caller gets it
                self.warm_pool.publish()
                self._busy = False
                future.set_exception(error)
            else:
                self.warm_pool.publish()  # before the caller resumes: `pick` sees what this job left
                self._busy = False
                future.set_result(result)

    def _job_waiting(self) -> bool:
        return not self._jobs.empty()

    def _fail_pending(self) -> None:
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                return
            if item is None:
                continue
            _, future = item
            if future.set_running_or_notify_cancel():
                future.set_exception(WorkerStoppedError("the browser worker has stopped"))


class WorkerPool:
    """A fixed set of workers; each new episode goes to the least loaded one.

    Event loop only: `pick` reserves a slot on the worker it returns (its
    `episode_count`), and `release` gives it back once the episode's context is closed.
    """

    def __init__(self, config: EngineConfig, asset_origin: str) -> None:
        self.workers = [BrowserWorker(i, config, asset_origin) for i in range(config.workers)]
        self._turn = 0

    async def start(self) -> None:
        await asyncio.gather(*(asyncio.wrap_future(w.start()) for w in self.workers))

    def pick(self, preload_url: str | None = None) -> BrowserWorker:
        """The worker for a new episode, with a slot reserved on it: fewest episodes first;
        among equals, one whose warm spare shows the task's page, an idle one first (not still
        resetting a context a closed episode gave back), the one whose spare has shown it the
        longest first; then one with any warm spare; then in turn."""
        self._turn = (self._turn + 1) % len(self.workers)
        order = self.workers[self._turn:] + self.workers[: self._turn]
        worker = min(
            order,
            key=lambda worker: (worker.episode_count, not worker.has_spare_at(preload_url), not worker.idle,
                                worker.spare_ready_since(preload_url), not worker.has_spare),
        )
        worker.episode_count += 1
        return worker

    def release(self, worker: BrowserWorker) -> None:
        """Give back the slot `pick` reserved: the episode's context is closed (or never opened)."""
        worker.episode_count -= 1

    async def stop(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in self.workers))


__all__ = ["BrowserWorker", "LeasedContext", "WorkerPool", "WorkerStoppedError"]
