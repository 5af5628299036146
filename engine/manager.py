"""The async facade over workers and episodes, shared by both doors.

The agent door gets an `AgentSession` bound to one episode, whose methods
return only agent-visible types. The trainer door uses the manager itself.

Episodes change only on their worker's thread, in jobs this manager submits;
every job ends by publishing the episode's `EpisodeSnapshot` (in a `finally`, so
a failing job publishes too). Everything the manager reads on the event loop
(states, trajectories, idle times, the per-worker episode counts it keeps) comes
from those snapshots or from its own event-loop bookkeeping.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from engine.agent_session import AgentSession
from engine.agent_view.observation import Observation
from engine.agent_view.port import EpisodeOverError
from engine.assets import AssetServer, miniwob_html_dir
from engine.config import EngineConfig
from engine.episode import Episode, EpisodeClosedError, Oracle
from engine.recorder import Recording
from engine.records import ClosedBy, EpisodeLimits, EpisodeState, EpisodeStatus, FailureReason, StepRecord
from engine.snapshot import EpisodeSnapshot
from engine.worker import BrowserWorker, WorkerPool
from tasks.registry import TaskRegistry, TaskSpec

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_SEED = 2**31 - 1
CLOSED_EPISODES_KEPT = 1_000
# Closed episodes past this many (newest kept) lose their recorded screenshots and
# observation texts; their step records stay.
RECORDINGS_KEPT = 100


class EpisodeNotFoundError(KeyError):
    def __str__(self) -> str:
        return f"no episode {self.args[0]!r}"


class TooManyEpisodesError(RuntimeError):
    pass


class EpisodeSetupError(RuntimeError):
    """The task's setup failed or timed out; nothing was left open."""


@dataclass(frozen=True)
class CreatedEpisode:
    episode_id: str
    agent_token: str
    task_id: str
    goal: str
    observation: Observation | None


class EpisodeManager:
    def __init__(
        self,
        config: EngineConfig,
        registry: TaskRegistry,
        oracle_factory: Callable[[TaskSpec], Oracle | None] | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.assets = AssetServer(config.asset_host, config.asset_port)
        self.pool = WorkerPool(config, self.assets.origin)
        self._oracle_factory = oracle_factory
        self._episodes: OrderedDict[str, Episode] = OrderedDict()
        self._tokens: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Episodes holding a slot on their worker (`WorkerPool.pick`) until their close job returns.
        self._slots: set[str] = set()
        self._reaper: asyncio.Task[None] | None = None
        self.on_step: list[Callable[[Episode, StepRecord], None]] = []
        # Called once per episode when it stops running, whatever ended it: a step, the
        # trainer's end, a close while running, a browser fault. `episode.snapshot` is then
        # the episode as that job left it.
        self.on_end: list[Callable[[Episode], None]] = []

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self.assets.mount("/", miniwob_html_dir())
        for spec in self.registry:
            for prefix, folder in spec.asset_mounts:
                self.assets.mount(prefix, folder)
        self.assets.start()
        await self.pool.start()
        self._reaper = asyncio.create_task(self._reap_idle())

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
        running = sum(1 for state in self.states() if state.status is EpisodeStatus.RUNNING)
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
        try:
            observation = await asyncio.wait_for(
                self._run_job(episode, lambda episode: episode.setup(observe)), timeout=self.config.setup_timeout_s + 5
            )
        except BaseException as error:
            # The slot is given back when the close job returns, whenever that is.
            closing = self._submit_job(episode, lambda episode: episode.close(), then=lambda: self.pool.release(worker))
            if isinstance(error, TimeoutError):
                # The task's code may still be running on the worker: its close is queued behind
                # it, and the caller is answered now, not whenever that code returns.
                reason = f"it did not finish within {self.config.setup_timeout_s + 5:g} s"
            else:
                await asyncio.shield(asyncio.wrap_future(closing))
                reason = f"{type(error).__name__}: {error}"
            raise EpisodeSetupError(f"setup of {task_id!r} failed: {reason}") from error
        token = secrets.token_urlsafe(32)
        self._episodes[episode.id] = episode
        self._slots.add(episode.id)
        self._tokens[token] = episode.id
        self._locks[episode.id] = asyncio.Lock()
        self._forget_old()
        return CreatedEpisode(episode.id, token, spec.id, episode.snapshot.state.goal, observation)

    def get(self, episode_id: str) -> Episode:
        try:
            return self._episodes[episode_id]
        except KeyError:
            raise EpisodeNotFoundError(episode_id) from None

    def snapshot(self, episode_id: str) -> EpisodeSnapshot:
        """The episode as its last job left it: state, records and media of one moment."""
        return self.get(episode_id).snapshot

    def state(self, episode_id: str) -> EpisodeState:
        return self.get(episode_id).snapshot.state

    def trajectory(self, episode_id: str) -> list[StepRecord]:
        return list(self.get(episode_id).snapshot.records)

    def states(self) -> list[EpisodeState]:
        """Every remembered episode's state, oldest first (for listings and metrics)."""
        return [episode.snapshot.state for episode in self._episodes.values()]

    def episodes(self) -> list[Episode]:
        return list(self._episodes.values())

    async def close(self, episode_id: str, by: ClosedBy = "trainer") -> EpisodeState:
        episode = self.get(episode_id)
        await self._serialized(episode_id, lambda episode: episode.close(by), then=lambda: self._free_slot(episode))
        self._tokens = {t: e for t, e in self._tokens.items() if e != episode_id}
        return episode.snapshot.state

    async def end(self, episode_id: str, reason: FailureReason) -> EpisodeState:
        await self._serialized(episode_id, lambda episode: episode.end(reason))
        return self.get(episode_id).snapshot.state

    async def screenshot(self, episode_id: str) -> bytes:
        """A PNG of the episode's page as it is now, while its context is open (running or
        ended). Raises EpisodeClosedError once it is closed. Not a step."""
        return await self._serialized(episode_id, lambda episode: episode.screenshot())

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
        self, episode_id: str, job: Callable[[Episode], T], then: Callable[[], None] | None = None
    ) -> T:
        """Run `job` on the episode's worker after the episode's earlier jobs; `then` runs on the
        event loop once the job has returned, even if the caller stopped waiting for it."""
        episode = self.get(episode_id)
        ended = False
        try:
            async with self._locks[episode_id]:
                was_running = episode.snapshot.state.status is EpisodeStatus.RUNNING
                try:
                    result = await self._run_job(episode, job, then)
                finally:
                    ended = was_running and episode.snapshot.state.status is not EpisodeStatus.RUNNING
        finally:
            if ended:
                self._notify_end(episode)
        return result

    async def _run_job(
        self, episode: Episode, job: Callable[[Episode], T], then: Callable[[], None] | None = None
    ) -> T:
        return await asyncio.wrap_future(self._submit_job(episode, job, then))

    def _submit_job(
        self, episode: Episode, job: Callable[[Episode], T], then: Callable[[], None] | None = None
    ) -> concurrent.futures.Future[T]:
        """Queue `job` on the episode's worker; the job ends by publishing the episode's snapshot."""

        def published(_worker: BrowserWorker) -> T:
            try:
                return job(episode)
            finally:
                episode.publish()

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
                callback(episode)
            except Exception:  # noqa: BLE001 - observers must not break an episode
                logger.exception("on_end callback failed")

    async def run_for_agent(self, episode_id: str, job: Callable[[Episode], T]) -> T:
        """Run an agent's job on the episode's worker, after the jobs before it.

        An episode that is unknown (forgotten) reads to the agent as one that is over:
        the agent learns nothing about what happened to it."""
        try:
            return await self._serialized(episode_id, job)
        except EpisodeNotFoundError:
            raise EpisodeOverError() from None

    def after_step(self, episode_id: str, record: StepRecord) -> None:
        """Tell the step observers (metrics) about a step an agent took."""
        episode = self._episodes.get(episode_id)
        if episode is None:
            return
        for callback in self.on_step:
            try:
                callback(episode, record)
            except Exception:  # noqa: BLE001 - observers must not break a step
                logger.exception("on_step callback failed")

    # -- housekeeping --------------------------------------------------------------------

    def _free_slot(self, episode: Episode) -> None:
        """Give the episode's worker slot back once its context is closed (event loop)."""
        if episode.id in self._slots and episode.snapshot.state.status is EpisodeStatus.CLOSED:
            self._slots.discard(episode.id)
            self.pool.release(episode.worker)

    def _forget_old(self) -> None:
        closed = [eid for eid, e in self._episodes.items() if e.snapshot.state.status is EpisodeStatus.CLOSED]
        for episode_id in closed[: max(0, len(closed) - CLOSED_EPISODES_KEPT)]:
            self._episodes.pop(episode_id, None)
            self._locks.pop(episode_id, None)
        for episode_id in closed[: max(0, len(closed) - RECORDINGS_KEPT)]:
            episode = self._episodes.get(episode_id)
            if episode is not None and episode.snapshot.media:
                # On the worker's thread, like every change to an episode; it publishes the result.
                episode.worker.submit(_dropping_media(episode))

    async def _reap_idle(self) -> None:
        interval = min(30.0, self.config.idle_timeout_s / 2)
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            for episode in list(self._episodes.values()):
                state = episode.snapshot.state
                idle_s = now - state.last_activity_at
                if state.status is not EpisodeStatus.CLOSED and idle_s > self.config.idle_timeout_s:
                    logger.info("closing idle episode %s", episode.id)
                    try:
                        await self.close(episode.id, by="idle_timeout")
                    except Exception:  # noqa: BLE001
                        logger.exception("reaping episode %s failed", episode.id)


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
