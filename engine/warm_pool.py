"""Warm browser contexts: handed to the next episodes, so a reset does not wait for Chromium.

Opening a context and its first page costs a renderer start (~170 ms on two
cores), and a MiniWoB page's first load another ~100 ms. A worker keeps as many
warm contexts as its largest recent burst of resets (a trainer that resets a
group of episodes at once, as GRPO does, will likely do so again), up to
`max_warm_contexts`, with the page its last episode started on already loading.
They come from two places:

- a closed episode's context, reset in place (`recycle`, `engine.context_reset`):
  a few browser round trips, so a trainer that creates its next episode right
  after closing the last one finds it warm; a spare that preloaded another page
  than the last episode started on (the trainer moved to another task) is reset
  the same way and aimed at that page (`on_idle`);
- a new context, opened only when no episode runs on the worker and no job waits
  (`on_idle`), so that opening one (a renderer start) never holds up an agent's
  step, nor competes with a group of resets still under way.

The pool lives on its worker's thread and only that thread touches it. Other
threads read `spare_urls` and `spare_since`, which the worker replaces at the end
of every job and idle pass (see `publish`).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import playwright.sync_api as pw
from playwright.sync_api import ViewportSize

from engine.config import EngineConfig
from engine.context_reset import (
    MAX_EPISODES_PER_CONTEXT,
    ResetRefusedError,
    reset_context,
    verify_clean,
    wait_for_committed_entry,
)
from engine.egress import BlockedCallback, EgressGuard

logger = logging.getLogger(__name__)

# Warm contexts a worker keeps even for resets one at a time: one handed out, one loading.
MIN_SPARES = 2
# How many bursts of resets (contexts taken between two moments with no episode on the worker)
# size the warm pool.
RECENT_BURSTS = 8

# Opens a context guarded by `guard`, with its first page (the worker's `new_context`).
ContextOpener = Callable[..., tuple[pw.BrowserContext, pw.Page]]


@dataclass
class LeasedContext:
    """A browser context handed to one episode, its egress guard already routing it.

    `reusable`: the episode's task declared a preload page (`preload_url`) and the
    context allows only the asset server with no locale or time zone, so it may be
    reset for a later episode (see `engine.context_reset`). `viewport` is the page's
    size when leased; `episodes` counts the episodes the context has served.
    """

    context: pw.BrowserContext
    page: pw.Page
    guard: EgressGuard
    preload_url: str | None = None
    viewport: ViewportSize | None = None
    reusable: bool = False
    episodes: int = 1


@dataclass
class Spare:
    """A context warmed while the worker was idle, guarded from its first request.

    `url` is the task page its tab has already loaded, if any: the page the
    worker's last episode started on, which the next one most likely wants too
    (a trainer resets the same task over many seeds).
    """

    context: pw.BrowserContext
    page: pw.Page
    guard: EgressGuard
    url: str | None
    episodes: int = 0  # episodes the context has already served (0: opened as a spare)
    since: float = 0.0  # time.monotonic() when it became a spare: the oldest has loaded furthest
    verified: bool = True  # False for a reset context until `verify_clean` has passed

    @property
    def usable(self) -> bool:
        return self.context.browser is not None and self.context.browser.is_connected() and not self.page.is_closed()


def close_quietly(context: pw.BrowserContext) -> None:
    try:
        context.close()
    except pw.Error:
        pass


def _forget_preloaded_page(page: pw.Page, session: pw.CDPSession) -> None:
    """Back to a blank page with no history, as a fresh context starts: a task that wanted
    another page must not find the preloaded one behind `go_back`. `session` is on `page`."""
    page.goto("about:blank")
    wait_for_committed_entry(page, session)  # else the reset could land before the blank page's entry
    session.send("Page.resetNavigationHistory")


def _blocked_while_warming(url: str, kind: str, page: pw.Page | None) -> None:
    logger.warning("a warm spare context tried to reach %s (%s); blocked", url, kind)


class WarmPool:
    """One worker's warm contexts, sized by its recent bursts of resets."""

    def __init__(
        self, worker_index: int, config: EngineConfig, asset_origin: str, open_context: ContextOpener,
        browser_session: Callable[[], pw.CDPSession],
    ) -> None:
        """`browser_session` gives the worker's browser-level CDP session (see `context_reset`)."""
        self._browser_session = browser_session
        self._worker_index = worker_index
        self._config = config
        self._asset_origin = asset_origin
        self._open_context = open_context
        self._spares: list[Spare] = []
        # Contexts taken since the worker was last idle, and the sizes of recent such bursts.
        self._taken_since_idle = 0
        self._recent_bursts: collections.deque[int] = collections.deque(maxlen=RECENT_BURSTS)
        # What the last episode on this worker started on: the next spare preloads it.
        self._last_url: str | None = None
        self._last_viewport: dict[str, int] | None = None
        # The page each warm context shows (None: blank), and since when, as of the end of the
        # last job; replaced together, in one assignment.
        self.published: tuple[tuple[str | None, float], ...] = ()

    @property
    def target(self) -> int:
        """How many warm contexts to keep: the largest recent burst of resets (the one under way
        included), within the limit, and
        at least MIN_SPARES, so that a trainer creating episodes back to back takes one whose page
        has loaded while the one it just closed is reset and loads its page in turn."""
        return min(self._config.max_warm_contexts, max(MIN_SPARES, self._taken_since_idle, *self._recent_bursts))

    @property
    def has_idle_work(self) -> bool:
        """Whether an idle moment would change anything: a burst to note, reset contexts to verify,
        or spares to add or free."""
        return (self._taken_since_idle > 0 or self.has_unverified or len(self._spares) != self.target
                or any(self._aimed_elsewhere(spare) for spare in self._spares))

    def _aimed_elsewhere(self, spare: Spare) -> bool:
        """Whether a spare preloaded another page than the one the last episode started on."""
        return spare.url is not None and spare.url != self._last_url

    def publish(self) -> None:
        """Tell other threads which pages the warm contexts show, and since when (one assignment)."""
        self.published = tuple((spare.url, spare.since) for spare in self._spares)

    @property
    def spare_urls(self) -> tuple[str | None, ...]:
        """Any thread: the pages the warm contexts showed at the end of the last job or idle pass."""
        return tuple(url for url, _ in self.published)

    def spare_since(self, url: str | None) -> float | None:
        """Any thread: since when the oldest warm context showing `url` has been ready, or None."""
        times = [since for spare_url, since in self.published if spare_url == url]
        return min(times) if times else None

    def lease(
        self, on_blocked: BlockedCallback, preload_url: str | None, viewport: dict[str, int] | None
    ) -> LeasedContext | None:
        """A warm context for an episode that allows only the asset server's origin, or None.

        The spare's guard is rebound to the episode, with no gap in routing; one that
        had preloaded another page is sent back to a blank page with no history.
        """
        spare = self._take(preload_url, viewport)
        if spare is None:
            return None
        if not spare.verified and not self._verified(spare):
            return None
        try:
            if spare.url is not None and spare.url != preload_url:
                _forget_preloaded_page(spare.page, spare.guard.session(spare.page))
        except (pw.Error, ResetRefusedError):
            close_quietly(spare.context)
            return None
        spare.guard.rebind(on_blocked)
        return LeasedContext(spare.context, spare.page, spare.guard, preload_url, spare.page.viewport_size,
                             reusable=preload_url is not None, episodes=spare.episodes + 1)

    def recycle(self, lease: LeasedContext) -> None:
        """A closed episode's context: reset it into a warm spare if the pool wants one, else close it.

        The next spare preloads the page the worker's last episode started on. A context
        that cannot be shown clean (see `engine.context_reset`) is closed.
        """
        next_url = self._last_url or lease.preload_url
        wanted = (
            lease.reusable and next_url is not None and lease.episodes < MAX_EPISODES_PER_CONTEXT
            and len(self._spares) < self.target and lease.context.browser is not None
            and lease.context.browser.is_connected() and not lease.page.is_closed()
            and lease.page.viewport_size == lease.viewport
        )
        if not wanted or next_url is None:
            close_quietly(lease.context)
            return
        lease.guard.rebind(_blocked_while_warming)
        self._reset_into_spare(lease.context, lease.page, lease.guard, next_url, lease.episodes)

    def _reset_into_spare(
        self, context: pw.BrowserContext, page: pw.Page, guard: EgressGuard, url: str, episodes: int
    ) -> None:
        """Reset `context` (see `engine.context_reset`) with `url` loading in its first tab, and keep
        it as a spare to verify; one that cannot be reset is closed, never left open (nobody awaits
        the job that resets it)."""
        try:
            tab = reset_context(context, page, guard.session(page), self._asset_origin, url,
                                self._config.setup_timeout_s * 1000)
        except (pw.Error, ResetRefusedError) as refused:
            logger.info("worker %d closed a context instead of reusing it: %s", self._worker_index, refused)
            close_quietly(context)
            return
        except Exception:  # noqa: BLE001 - never leave the context open
            logger.exception("worker %d could not reset a context; closed it", self._worker_index)
            close_quietly(context)
            return
        self._spares.append(Spare(context, tab, guard, url, episodes, time.monotonic(), verified=False))

    def verify_pending(self, interrupted: Callable[[], bool]) -> None:
        """Verify the reset contexts not yet verified, one at a time, until `interrupted()`; a
        context that fails is closed. Cheap once their page has loaded (the worker is idle)."""
        for spare in [spare for spare in self._spares if not spare.verified]:
            if interrupted():
                return
            if not self._verified(spare):
                self._spares.remove(spare)

    @property
    def has_unverified(self) -> bool:
        return any(not spare.verified for spare in self._spares)

    def _verified(self, spare: Spare) -> bool:
        """Whether a reset context passed `verify_clean`; one that did not is closed."""
        try:
            verify_clean(spare.context, spare.page, spare.guard.session(spare.page), self._browser_session())
        except (pw.Error, ResetRefusedError) as refused:
            logger.info("worker %d closed a used context instead of reusing it: %s", self._worker_index, refused)
            close_quietly(spare.context)
            return False
        except Exception:  # noqa: BLE001 - a context that cannot be shown clean is not reused
            logger.exception("worker %d could not verify a reset context; closed it", self._worker_index)
            close_quietly(spare.context)
            return False
        spare.verified = True
        return True

    def note_taken(self, preload_url: str | None, viewport: dict[str, int] | None) -> None:
        """An episode took a context (warm or not) to start on `preload_url`."""
        self._last_url, self._last_viewport = preload_url, viewport
        self._taken_since_idle += 1

    def _take(self, preload_url: str | None, viewport: dict[str, int] | None) -> Spare | None:
        """The best warm spare for this episode, if one fits; the rest stay, unfit ones are closed.

        A spare fits when its context has the episode's viewport (new tabs opened in the
        episode get the context's viewport, so resizing the first page is not enough);
        one that already shows the episode's page is preferred.
        """
        spares, self._spares = self._spares, []
        chosen: Spare | None = None
        # A spare already showing the episode's page first, the one that has loaded longest first.
        for spare in sorted(spares, key=lambda spare: (spare.url != preload_url, spare.since)):
            fits = spare.usable and (viewport is None or spare.page.viewport_size == viewport)
            if fits and chosen is None:
                chosen = spare
            elif fits:
                self._spares.append(spare)
            else:
                close_quietly(spare.context)
        return chosen

    def on_idle(self, interrupted: Callable[[], bool]) -> None:
        """The worker has no episode and no job: note the burst that just ended, verify the contexts
        reset since, then warm contexts up to the target, one at a time, stopping as soon as
        `interrupted()` (a job arrived)."""
        if self._taken_since_idle:
            self._recent_bursts.append(self._taken_since_idle)
            self._taken_since_idle = 0
        self.verify_pending(interrupted)
        target = self.target
        while len(self._spares) > target:
            close_quietly(self._spares.pop(0).context)  # demand went down: free the oldest
        # Contexts preloaded for a page the last episode did not start on were a wrong guess:
        # aim them at that page instead, so the pool follows a trainer that moves to another task.
        for spare in [spare for spare in self._spares if self._aimed_elsewhere(spare)]:
            if interrupted():
                return
            self._spares.remove(spare)
            self._reaim(spare)
        while len(self._spares) < target and not interrupted():
            if not self._replenish():
                return

    def _reaim(self, spare: Spare) -> None:
        """Reset a spare that preloaded another page than the last episode's, and load that page
        in it: a page load, where a new context would also start a renderer. Its reset is verified
        like a closed episode's; one that cannot be reset is closed."""
        if self._last_url is None or (self._last_viewport is not None
                                      and spare.page.viewport_size != self._last_viewport):
            # Nothing to aim at (the last episode wanted no page preloaded), or a viewport the
            # trainer's task no longer has: a new context, opened at the right size, replaces it.
            close_quietly(spare.context)
            return
        self._reset_into_spare(spare.context, spare.page, spare.guard, self._last_url, spare.episodes)

    def close_all(self) -> None:
        for spare in self._spares:
            close_quietly(spare.context)
        self._spares = []

    def _replenish(self) -> bool:
        """Warm one spare context; False if Chromium would not open one."""
        guard = EgressGuard([self._asset_origin], _blocked_while_warming)
        try:
            context, page = self._open_context(guard, viewport=self._last_viewport)
        except pw.Error:
            logger.warning("worker %d could not warm a spare context", self._worker_index)
            return False
        url: str | None = None
        if self._last_url is not None:
            try:
                # Only until the document commits: its scripts and styles load in Chromium
                # while this thread serves other jobs; the task's setup waits for "load".
                page.goto(self._last_url, wait_until="commit", timeout=self._config.setup_timeout_s * 1000)
                url = self._last_url
            except pw.Error:
                # Still a usable blank context; the episode navigates itself.
                logger.warning("worker %d could not preload %s", self._worker_index, self._last_url)
        self._spares.append(Spare(context, page, guard, url, since=time.monotonic()))
        return True


__all__ = ["MIN_SPARES", "RECENT_BURSTS", "LeasedContext", "Spare", "WarmPool", "close_quietly"]
