"""Each episode's jobs, one at a time on its browser worker, each ending with a published snapshot.

Playwright's sync API is bound to the worker's thread, so every change to an episode
is a job queued on its worker. `EpisodeJobs` keeps them in order per episode (an
`asyncio.Lock` each), and wraps every job so that, on the worker thread, it ends by
publishing the episode's snapshot and, with a book, writing what changed before
anyone is answered. Event-loop bookkeeping only: the wrapped job is the one thing that
runs on the worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import TypeVar

from engine.book.cursor import BookCursor
from engine.book.writer import BookWriter
from engine.episode import Episode
from engine.records import EpisodeState, EpisodeStatus
from engine.worker import BrowserWorker

logger = logging.getLogger(__name__)
T = TypeVar("T")


class EpisodeJobs:
    def __init__(self, book: BookWriter | None) -> None:
        self.book = book
        self.cursors: dict[str, BookCursor] = {}
        """What the book holds of each live episode (only with a book)."""
        self._locks: dict[str, asyncio.Lock] = {}
        self.on_end: list[Callable[[EpisodeState], None]] = []
        """Called once per episode when it stops running, whatever ended it: a step, the
        trainer's end, a close while running, a browser fault, with the state that job left."""

    def admit(self, episode: Episode, cursor: BookCursor | None) -> None:
        """Start keeping order for an episode that is set up."""
        self._locks[episode.id] = asyncio.Lock()
        if cursor is not None:
            self.cursors[episode.id] = cursor

    def release(self, episode_id: str) -> None:
        """Forget an episode no longer held live."""
        self._locks.pop(episode_id, None)
        self.cursors.pop(episode_id, None)

    def busy(self, episode_id: str) -> bool:
        """Whether a job of the episode is running or waiting for its turn."""
        lock = self._locks.get(episode_id)
        return lock is not None and lock.locked()

    def recorded(self, episode_id: str) -> bool:
        """Whether the book holds all of the episode (no write of it is pending)."""
        cursor = self.cursors.get(episode_id)
        return cursor is not None and cursor.failure is None

    async def serialized(
        self, episode: Episode, job: Callable[[Episode], T], then: Callable[[], None] | None = None,
        record_first: bool = True,
    ) -> T:
        """Run `job` on the episode's worker after the episode's earlier jobs; `then` runs on the
        event loop once the job has returned, even if the caller stopped waiting for it.
        `record_first`: see `submit`."""
        ended = False
        try:
            async with self._locks[episode.id]:
                was_running = episode.snapshot.state.status is EpisodeStatus.RUNNING
                try:
                    result = await self.run(episode, job, then, record_first)
                finally:
                    ended = was_running and episode.snapshot.state.status is not EpisodeStatus.RUNNING
        finally:
            if ended:
                self._notify_end(episode)
        return result

    async def run(
        self, episode: Episode, job: Callable[[Episode], T], then: Callable[[], None] | None = None,
        record_first: bool = True,
    ) -> T:
        """Run `job` now, outside the episode's order (its setup, before anyone else knows it)."""
        return await asyncio.wrap_future(self.submit(episode, job, then, record_first))

    def submit(
        self, episode: Episode, job: Callable[[Episode], T], then: Callable[[], None] | None = None,
        record_first: bool = True,
    ) -> concurrent.futures.Future[T]:
        """Queue `job` on the episode's worker; the job ends by publishing the episode's snapshot
        and, with a book, writing what changed (a failed write fails the job with BookWriteError).

        While an earlier write of the episode has failed, the job first writes what is pending;
        if that fails too, the job does not run (`record_first`; a close runs regardless, so a
        full disk never keeps a browser context open)."""
        book, cursor = self.book, self.cursors.get(episode.id)

        def published(_worker: BrowserWorker) -> T:
            if book is not None and cursor is not None and record_first and cursor.failure is not None:
                cursor.save(book, episode.snapshot, episode.transcript.drain())
            try:
                return job(episode)
            finally:
                episode.publish()
                if book is not None and cursor is not None:
                    cursor.save(book, episode.snapshot, episode.transcript.drain())

        future = episode.worker.submit(published)
        if then is not None:
            loop = asyncio.get_running_loop()

            def on_loop(_done: concurrent.futures.Future[T]) -> None:
                try:
                    loop.call_soon_threadsafe(then)
                except RuntimeError:  # the loop is closed: nothing is left to keep count for
                    pass

            future.add_done_callback(on_loop)
        return future

    def _notify_end(self, episode: Episode) -> None:
        for callback in self.on_end:
            try:
                callback(episode.snapshot.state)
            except Exception:  # noqa: BLE001 - observers must not break an episode
                logger.exception("on_end callback failed")
