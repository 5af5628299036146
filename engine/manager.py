"""The async facade over workers and episodes, shared by both doors.

The agent door gets an `AgentSession` bound to one episode, whose methods
return only agent-visible types. The trainer door uses the manager itself.

Episodes change only on their worker's thread, in jobs this manager submits;
every job ends by publishing the episode's `EpisodeSnapshot` (in a `finally`, so
a failing job publishes too). Everything the manager reads on the event loop
(states, trajectories, idle times, the per-worker episode counts it keeps) comes
from those snapshots or from its own event-loop bookkeeping.

With an episode book (`engine.book`), every job also ends by writing what it
changed to the book, on the worker thread, right after the snapshot is published
and before anyone is answered: a step an agent has been answered for is on disk.
A job whose write fails answers with `BookWriteError` instead of its result (the
episode keeps its state in memory, and its next job writes it all first). The
manager then holds live episodes (and the last few closed ones) in memory and
reads every other episode from the book: those closed earlier, and those of
earlier server runs on the same book.

A browser node of a cluster (`cluster.node`) has no book of its own: its jobs write
to `records_to`, an outbox its front drains into the front's book, and the node lets
an episode go as soon as it is closed and all of it is written there.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from engine.agent_session import AgentSession
from engine.agent_view.observation import Observation
from engine.agent_view.port import EpisodeOverError, StepNotRecordedError
from engine.assets import AssetServer, miniwob_html_dir
from engine.book import BookSummary, BookWriteError, EpisodeBook
from engine.book.archive import BookArchive
from engine.book.cursor import BookCursor
from engine.book.writer import BookWriter
from engine.config import EngineConfig
from engine.episode import Episode, EpisodeClosedError, Oracle
from engine.episode_errors import CreatedEpisode, EpisodeNotFoundError, EpisodeSetupError, TooManyEpisodesError
from engine.jobs import EpisodeJobs
from engine.placement import HERE, NodeLoad, Placement
from engine.reaper import reap_idle
from engine.recorder import Recording
from engine.records import ClosedBy, EpisodeLimits, EpisodeState, EpisodeStatus, FailureReason, StepRecord
from engine.snapshot import EpisodeSnapshot
from engine.worker import BrowserWorker, WorkerPool
from tasks.registry import TaskRegistry, TaskSpec

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_SEED = 2**31 - 1
# Without a book: closed episodes kept in memory (newest), and how many of them keep their
# recorded screenshots and observation texts (their step records stay). With a book, these
# are the book's retention defaults (`EpisodeBook.open`).
CLOSED_EPISODES_KEPT = 1_000
RECORDINGS_KEPT = 100
# With a book: closed episodes kept whole in memory (newest); older ones are read from the book.
CLOSED_EPISODES_CACHED = 16


class EpisodeManager:
    def __init__(
        self,
        config: EngineConfig,
        registry: TaskRegistry,
        oracle_factory: Callable[[TaskSpec], Oracle | None] | None = None,
        book: EpisodeBook | None = None,
        records_to: BookWriter | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.assets = AssetServer(config.asset_host, config.asset_port)
        self.pool = WorkerPool(config, self.assets.origin)
        self.book = book
        """Where every episode is recorded (None: episodes live in memory only). The manager
        closes it when it stops."""
        self._writer: BookWriter | None = book if book is not None else records_to
        self._oracle_factory = oracle_factory
        self._episodes: OrderedDict[str, Episode] = OrderedDict()
        # Episodes read from the book rather than held live: closed earlier, or of an earlier run.
        self._archive = BookArchive()
        self._trainer_data: dict[str, Mapping[str, Any]] = {}
        self._tokens: dict[str, str] = {}
        # Episodes holding a slot on their worker (`WorkerPool.pick`) until their close job returns.
        self._slots: set[str] = set()
        self._reaper: asyncio.Task[None] | None = None
        self.on_step: list[Callable[[StepRecord], None]] = []
        # Called once per episode when it stops running, whatever ended it: a step, the
        # trainer's end, a close while running, a browser fault, with the state that job left.
        self._jobs = EpisodeJobs(self._writer)
        self.on_end = self._jobs.on_end

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self.book is not None:
            self._archive.load(self.book)
        self.assets.mount("/", miniwob_html_dir())
        for spec in self.registry:
            for prefix, folder in spec.asset_mounts:
                self.assets.mount(prefix, folder)
        self.assets.start()
        await self.pool.start()
        self._reaper = asyncio.create_task(reap_idle(self, self.config.idle_timeout_s))

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for episode_id in list(self._episodes):
            try:
                await self.close(episode_id, by="shutdown")
            except Exception:  # noqa: BLE001 - shutting down regardless
                logger.exception("closing episode %s failed", episode_id)
        await self.pool.stop()
        self.assets.stop()
        if self.book is not None:
            self.book.close()

    # -- trainer side --------------------------------------------------------------------

    async def create(
        self,
        task_id: str,
        seed: int | None = None,
        limits: EpisodeLimits | None = None,
        difficulty: str | None = None,
        recording: Recording | None = None,
        observe: bool = True,
    ) -> CreatedEpisode:
        """Set a new episode up (a reset). `observe=False` skips the first observation,
        for callers that do not show it (`CreatedEpisode.observation` is then None)."""
        spec = self.registry.get(task_id)
        running = sum(1 for episode in self._episodes.values() if episode.running)
        if running >= self.config.max_open_episodes:
            raise TooManyEpisodesError(
                f"{self.config.max_open_episodes} episodes are open; close one before creating another"
            )
        if difficulty is not None and spec.difficulties and difficulty not in spec.difficulties:
            raise ValueError(f"task {task_id!r} has difficulties {list(spec.difficulties)}, not {difficulty!r}")
        worker = self.pool.pick(self.assets.origin + spec.preload_path if spec.preload_path else None)
        try:
            episode = Episode(
                episode_id="ep_" + secrets.token_hex(8),
                spec=spec,
                seed=secrets.randbelow(MAX_SEED) if seed is None else seed,
                limits=limits or EpisodeLimits(max_steps=self.config.default_max_steps),
                config=self.config,
                asset_origin=self.assets.origin,
                worker=worker,
                oracle=self._oracle_factory(spec) if self._oracle_factory else None,
                difficulty=difficulty,
                recording=recording,
            )
        except BaseException:
            self.pool.release(worker)
            raise
        cursor = BookCursor() if self._writer is not None else None
        if cursor is not None:
            episode.transcript.keep()
        try:
            observation = await asyncio.wait_for(
                self._jobs.run(episode, self._setting_up(observe, cursor)), timeout=self.config.setup_timeout_s + 5
            )
        except BaseException as error:
            # The slot is given back when the close job returns, whenever that is.
            closing = self._jobs.submit(
                episode, lambda episode: episode.close(), then=lambda: self.pool.release(worker))
            if isinstance(error, TimeoutError):
                # The task's code may still be running on the worker: its close is queued behind
                # it, and the caller is answered now, not whenever that code returns.
                reason = f"it did not finish within {self.config.setup_timeout_s + 5:g} s"
            else:
                try:
                    await asyncio.shield(asyncio.wrap_future(closing))
                except Exception:  # noqa: BLE001 - the setup's own error is the one to report
                    logger.exception("closing episode %s after its failed setup failed", episode.id)
                reason = f"{type(error).__name__}: {error}"
            if isinstance(error, BookWriteError):
                raise error  # the book is full, not the task broken: nothing of the episode is kept
            raise EpisodeSetupError(f"setup of {task_id!r} failed: {reason}") from error
        token = secrets.token_urlsafe(32)
        self._jobs.admit(episode, cursor)
        self._episodes[episode.id] = episode
        self._slots.add(episode.id)
        self._tokens[token] = episode.id
        self._forget_old()
        return CreatedEpisode(episode.id, token, spec.id, episode.snapshot.state.goal, observation)

    def _setting_up(self, observe: bool, cursor: BookCursor | None) -> Callable[[Episode], Observation | None]:
        """The setup job: set the episode up and, with a book, record it before anyone hears of it.

        The cursor joins the episode only once setup has succeeded, so a failed setup leaves
        nothing in the book."""
        book = self._writer

        def job(episode: Episode) -> Observation | None:
            observation = episode.setup(observe)
            if cursor is not None and book is not None:
                episode.publish()
                cursor.save(book, episode.snapshot, episode.transcript.drain())
            return observation

        return job

    def get(self, episode_id: str) -> Episode:
        """The live episode (held in memory with its browser context, or closed a moment ago)."""
        try:
            return self._episodes[episode_id]
        except KeyError:
            raise EpisodeNotFoundError(episode_id) from None

    def snapshot(self, episode_id: str) -> EpisodeSnapshot:
        """The episode as its last job left it: state, records and media of one moment.

        Raises `BookWriteError` while that moment could not be recorded (the book is full):
        a reader is not shown what a restart would lose."""
        cursor = self._jobs.cursors.get(episode_id)
        failure = cursor.failure if cursor is not None else None
        if failure is not None:
            raise BookWriteError(failure.episode_id, failure.reason, full=failure.full)
        return self._snapshot(episode_id)

    def state(self, episode_id: str) -> EpisodeState:
        episode = self._episodes.get(episode_id)
        if episode is not None:
            return episode.snapshot.state
        return self._summary(episode_id).state

    def trajectory(self, episode_id: str) -> list[StepRecord]:
        return list(self._snapshot(episode_id).records)

    def states(self) -> list[EpisodeState]:
        """Every remembered episode's state (live, and in the book), oldest first (for listings
        and metrics)."""
        states = self._archive.states()
        states += [episode.snapshot.state for episode in self._episodes.values()]
        return sorted(states, key=lambda state: state.created_at)

    def episodes(self) -> list[Episode]:
        """The live episodes (those held in memory)."""
        return list(self._episodes.values())

    def episode_ids(self) -> set[str]:
        """Every remembered episode, live or in the book."""
        return {*self._episodes, *self._archive}

    def history(self) -> list[EpisodeState]:
        """The ended episodes the book held when the manager started, in the order they ended."""
        return self._archive.history()

    def trainer_data(self, episode_id: str) -> Mapping[str, Any]:
        """What the trainer's door keeps with the episode (`keep_trainer_data`); empty if nothing."""
        summary = self._archive.summary(episode_id)
        if summary is not None:
            return summary.trainer_data
        return self._trainer_data.get(episode_id, {})

    def trainer_data_items(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Every remembered episode's trainer data."""
        yield from self._archive.trainer_data_items()
        yield from self._trainer_data.items()

    def keep_trainer_data(self, episode_id: str, data: Mapping[str, Any]) -> None:
        """Keep a small JSON dict of the trainer's door with a live episode (its reward weights),
        written to the book now, so that it outlives the process as the episode does.

        Raises `BookWriteError` if the book refuses it; the episode is then closed, since no
        one will be told of it."""
        self.get(episode_id)
        self._trainer_data[episode_id] = dict(data)
        if self.book is None:
            return
        try:
            self.book.set_trainer_data(episode_id, data)
        except BookWriteError:
            asyncio.get_running_loop().create_task(self._close_quietly(episode_id, "trainer"))
            raise

    async def close(self, episode_id: str, by: ClosedBy = "trainer") -> EpisodeState:
        """Close the episode's browser context; a closed episode (or one in the book) stays as it is.

        The context is closed even while the book refuses writes (the caller then gets
        `BookWriteError`), so a full disk never keeps browsers open."""
        episode = self._episodes.get(episode_id)
        if episode is None:
            return self._summary(episode_id).state
        try:
            await self._serialized(episode_id, lambda episode: episode.close(by), then=lambda: self._free_slot(episode),
                                   record_first=False)
        finally:
            self._tokens = {t: e for t, e in self._tokens.items() if e != episode_id}
        return episode.snapshot.state

    async def end(self, episode_id: str, reason: FailureReason) -> EpisodeState:
        if episode_id not in self._episodes:
            return self._summary(episode_id).state  # in the book: closed already
        await self._serialized(episode_id, lambda episode: episode.end(reason))
        return self.get(episode_id).snapshot.state

    def placement(self, episode_id: str) -> Placement:
        """Every episode of a single server is served by its own door."""
        return HERE

    def node_loads(self) -> list[NodeLoad]:
        """A single server has no browser nodes."""
        return []

    async def screenshot(self, episode_id: str) -> bytes:
        """A PNG of the episode's page as it is now, while its context is open (running or
        ended). Raises EpisodeClosedError once it is closed. Not a step."""
        if episode_id not in self._episodes:
            self._summary(episode_id)
            raise EpisodeClosedError(episode_id)
        return await self._serialized(episode_id, lambda episode: episode.screenshot())

    def _snapshot(self, episode_id: str) -> EpisodeSnapshot:
        """The live episode's snapshot, or the book's (kept for the next read)."""
        episode = self._episodes.get(episode_id)
        if episode is not None:
            return episode.snapshot
        self._summary(episode_id)
        snapshot = self._archive.snapshot(self.book, episode_id) if self.book is not None else None
        if snapshot is None:  # pruned a moment ago
            self._forget(episode_id)
            raise EpisodeNotFoundError(episode_id)
        return snapshot

    def _summary(self, episode_id: str) -> BookSummary:
        summary = self._archive.summary(episode_id)
        if summary is None:
            raise EpisodeNotFoundError(episode_id)
        return summary

    # -- agent side ----------------------------------------------------------------------

    def agent_session(self, token: str) -> AgentSession | None:
        """The session an agent token opens, or None for an unknown or closed episode."""
        for known, episode_id in self._tokens.items():
            if hmac.compare_digest(known, token):
                episode = self._episodes.get(episode_id)
                if episode is None:
                    return None
                return AgentSession(self, episode_id)
        return None

    def bind_agent(self, episode_id: str) -> AgentSession:
        """An agent session for an episode the caller created itself (stdio)."""
        self.get(episode_id)
        return AgentSession(self, episode_id)

    async def _serialized(
        self, episode_id: str, job: Callable[[Episode], T], then: Callable[[], None] | None = None,
        record_first: bool = True,
    ) -> T:
        """Run `job` on the live episode's worker, in the episode's order (`EpisodeJobs.serialized`)."""
        return await self._jobs.serialized(self.get(episode_id), job, then, record_first)

    async def run_for_agent(self, episode_id: str, job: Callable[[Episode], T]) -> T:
        """Run an agent's job on the episode's worker, after the jobs before it.

        An episode that is unknown (forgotten) reads to the agent as one that is over:
        the agent learns nothing about what happened to it."""
        try:
            return await self._serialized(episode_id, job)
        except EpisodeNotFoundError:
            raise EpisodeOverError() from None
        except BookWriteError as error:
            logger.warning("%s", error)
            raise StepNotRecordedError() from None

    def after_step(self, episode_id: str, record: StepRecord) -> None:
        """Tell the step observers (metrics) about a step an agent took."""
        episode = self._episodes.get(episode_id)
        if episode is None:
            return
        for callback in self.on_step:
            try:
                callback(record)
            except Exception:  # noqa: BLE001 - observers must not break a step
                logger.exception("on_step callback failed")

    # -- housekeeping --------------------------------------------------------------------

    def _free_slot(self, episode: Episode) -> None:
        """Give the episode's worker slot back once its context is closed (event loop)."""
        if episode.id in self._slots and episode.snapshot.state.status is EpisodeStatus.CLOSED:
            self._slots.discard(episode.id)
            self.pool.release(episode.worker)
            self._archive_closed()
            if self._handed_over(episode):
                self._drop_live(episode.id)

    def _handed_over(self, episode: Episode) -> bool:
        """A cluster node's closed episode, all of it written to its front's book: let it go."""
        return (self.book is None and self._writer is not None and self._jobs.recorded(episode.id)
                and episode.snapshot.state.status is EpisodeStatus.CLOSED)

    def _archive_closed(self) -> None:
        """With a book: closed episodes past the newest few, all recorded, are read from the book
        from now on; their Episode objects (records, media, browser session) are let go."""
        if self.book is None:
            return
        closed = [episode for episode in self._episodes.values()
                  if episode.snapshot.state.status is EpisodeStatus.CLOSED and episode.id not in self._slots
                  and self._jobs.recorded(episode.id)]
        for episode in closed[: max(0, len(closed) - CLOSED_EPISODES_CACHED)]:
            snapshot = episode.snapshot
            self._archive.add(BookSummary(snapshot.state, snapshot.recording,
                                          self._trainer_data.get(episode.id, {}), ended_at=None))
            self._drop_live(episode.id)

    def _drop_live(self, episode_id: str) -> None:
        self._episodes.pop(episode_id, None)
        self._jobs.release(episode_id)
        self._trainer_data.pop(episode_id, None)

    def _forget(self, episode_id: str) -> None:
        """The book no longer holds the episode (pruned): nothing of it is kept."""
        self._archive.forget(episode_id)
        episode = self._episodes.get(episode_id)
        if episode is not None and episode.snapshot.state.status is EpisodeStatus.CLOSED:
            self._drop_live(episode_id)

    async def _close_quietly(self, episode_id: str, by: ClosedBy) -> None:
        try:
            await self.close(episode_id, by=by)
        except Exception as error:  # noqa: BLE001 - logged; the reaper retries what is left
            logger.warning("closing episode %s: %s", episode_id, error)

    async def keep_the_book(self) -> None:
        """Housekeeping of the book: write what failed before, then apply the retention limits."""
        if self._writer is None:
            return
        for episode_id in [eid for eid, cursor in self._jobs.cursors.items() if cursor.failure is not None]:
            if episode_id in self._episodes:
                try:
                    await self._serialized(episode_id, lambda episode: None)
                except BookWriteError:
                    pass  # still refused; tried again next time
        for episode in list(self._episodes.values()):
            if episode.id not in self._slots and self._handed_over(episode):
                self._drop_live(episode.id)
        book = self.book
        if book is None:
            return
        self._archive_closed()
        try:
            pruned = await asyncio.to_thread(book.prune)
        except Exception as error:  # noqa: BLE001 - a full disk may refuse even the deletes
            logger.warning("pruning the episode book failed: %s", error)
            return
        for episode_id in pruned.removed:
            self._forget(episode_id)
        for episode_id in pruned.media_dropped:
            self._archive.forget_snapshot(episode_id)

    def _forget_old(self) -> None:
        if self.book is not None:
            return  # the book keeps closed episodes, within its own limits
        closed = [eid for eid, e in self._episodes.items() if e.snapshot.state.status is EpisodeStatus.CLOSED]
        for episode_id in closed[: max(0, len(closed) - CLOSED_EPISODES_KEPT)]:
            self._drop_live(episode_id)
        for episode_id in closed[: max(0, len(closed) - RECORDINGS_KEPT)]:
            episode = self._episodes.get(episode_id)
            if episode is not None and episode.snapshot.media:
                # On the worker's thread, like every change to an episode; it publishes the result.
                episode.worker.submit(_dropping_media(episode))

def _dropping_media(episode: Episode) -> Callable[[BrowserWorker], None]:
    """A worker job that forgets the episode's recorded media."""

    def job(_worker: BrowserWorker) -> None:
        episode.drop_media()

    return job


__all__ = [
    "CreatedEpisode",
    "EpisodeClosedError",
    "EpisodeManager",
    "EpisodeNotFoundError",
    "EpisodeSetupError",
    "TooManyEpisodesError",
]
