"""`ClusterRoom`: the room the control API drives when episodes live on a Ray cluster.

It answers the control API exactly as a single server's `EpisodeManager` does
(`control_api.room.TrainerRoom`), from two sources:

- live episodes: `EpisodeMirror`s fed by their nodes' record batches, which the front
  drains from each node (one long-polling actor call at a time), writes to its
  book, applies, and confirms, so a step its agent was answered for is already here;
- every other episode: the book (`BookArchive`), as on a single server.

Creating, ending, closing and screenshots are actor calls to the episode's node;
the agent's steps never come here. A node that is lost takes no step with it: its
episodes are settled from what the front holds, `browser_error` if they were running,
closed by `node_lost`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

from ray.exceptions import RayActorError, RayTaskError

from cluster.fleet import Fleet, Node, end_actors
from cluster.mirror import EpisodeMirror
from cluster.node import NodeSpec
from cluster.outbox import RecordBatch
from cluster.settings import ClusterSettings
from engine.book import BookSummary, BookWriteError, EpisodeBook
from engine.book.archive import BookArchive
from engine.config import EngineConfig
from engine.episode import EpisodeClosedError
from engine.episode_errors import (
    CreatedEpisode,
    EpisodeNotFoundError,
    EpisodeSetupError,
    NoCapacityError,
    TooManyEpisodesError,
)
from engine.placement import HERE, NodeLoad, Placement
from engine.recorder import Recording
from engine.records import ClosedBy, EpisodeLimits, EpisodeState, EpisodeStatus, FailureReason, StepRecord
from engine.snapshot import EpisodeSnapshot
from tasks.registry import TaskRegistry

logger = logging.getLogger(__name__)
T = TypeVar("T")

TAKE_WAIT_S = 1.0
"""How long one drain call waits on a node with nothing new."""
PLACEMENT = "placement"
"""The key of the trainer data under which the front keeps where an episode ran."""
BOOK_UPKEEP_EVERY = 15
"""Book retention is applied once per this many looks at the cluster."""


class NodeLostError(RuntimeError):
    """The node that held the episode was lost during the call."""


class ClusterRoom:
    def __init__(self, settings: ClusterSettings, spec: NodeSpec, registry: TaskRegistry,
                 book: EpisodeBook) -> None:
        self.settings = settings
        self.registry = registry
        self.config: EngineConfig = spec.engine
        self.book: EpisodeBook | None = book
        self._book = book
        self.on_step: list[Callable[[StepRecord], None]] = []
        self.on_end: list[Callable[[EpisodeState], None]] = []
        self.fleet = Fleet(settings, spec, on_started=self._node_started, on_lost=self._node_lost)
        self._live: dict[str, EpisodeMirror] = {}
        self._archive = BookArchive()
        self._drains: dict[str, asyncio.Task[None]] = {}
        self._watch: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Know the book, start browser nodes on every Ray node with room, then keep watching."""
        self._archive.load(self._book)
        await self.fleet.look()
        if not self.fleet.alive():
            logger.warning("no browser node is up yet: episodes are refused (503) until one is")
        self._watch = asyncio.create_task(self._watching())

    async def stop(self) -> None:
        """Close every episode and stop every node (their records drained to the book), then end
        the node actors."""
        if self._watch is not None:
            self._watch.cancel()
        await self.fleet.stop()
        for task in self._drains.values():
            task.cancel()
        await asyncio.gather(*self._drains.values(), return_exceptions=True)
        end_actors(self.fleet.alive())
        self._book.close()

    async def _watching(self) -> None:
        looks = 0
        while True:
            await asyncio.sleep(self.settings.watch_interval_s)
            looks += 1
            try:
                await self.fleet.look()
            except Exception:  # noqa: BLE001 - the next look tries again
                logger.exception("looking at the Ray cluster failed")
            if looks % BOOK_UPKEEP_EVERY == 0:
                await self._keep_the_book()

    async def _keep_the_book(self) -> None:
        try:
            pruned = await asyncio.to_thread(self._book.prune)
        except Exception as error:  # noqa: BLE001 - a full disk may refuse even the deletes
            logger.warning("pruning the episode book failed: %s", error)
            return
        for episode_id in pruned.removed:
            self._archive.forget(episode_id)
        for episode_id in pruned.media_dropped:
            self._archive.forget_snapshot(episode_id)

    # -- records from the nodes --------------------------------------------------------------

    def _node_started(self, node: Node) -> None:
        self._drains[node.name] = asyncio.create_task(self._drain(node))

    async def _drain(self, node: Node) -> None:
        """Until the node is lost: take its batches, write them to the book, apply, confirm."""
        while node.alive:
            try:
                batches: list[RecordBatch] = await node.actor.take_records.remote(node.confirmed, TAKE_WAIT_S)
            except RayActorError as error:
                await self.fleet.lose(node, f"its actor died ({type(error).__name__})")
                return
            except Exception:  # noqa: BLE001 - a failed call is retried; only a dead actor ends the loop
                logger.exception("taking records from node %s failed", node.name)
                await asyncio.sleep(1.0)
                continue
            if not batches:
                continue
            try:
                await asyncio.to_thread(self._write, batches)
            except BookWriteError as error:
                logger.warning("records of node %s not kept yet: %s", node.name, error)
                await asyncio.sleep(0.5)
                continue
            for batch in batches:
                self._apply(node, batch)
            node.confirmed = batches[-1].seq

    def _write(self, batches: list[RecordBatch]) -> None:
        for batch in batches:
            self._book.save(batch.state, batch.recording, batch.records, batch.exchanges, batch.media)

    def _apply(self, node: Node, batch: RecordBatch) -> None:
        episode_id = batch.state.episode_id
        mirror = self._live.get(episode_id)
        if mirror is None:
            if episode_id in self._archive:
                return  # sent again after the front had it closed
            mirror = self._live[episode_id] = EpisodeMirror(node.name)
            node.episodes.add(episode_id)
            node.running += 1
        was_running = mirror.running
        added = mirror.apply(batch)
        node.steps += len(added)
        for record in added:
            for on_step in self.on_step:
                _call_quietly(on_step, record)
        if was_running and not mirror.running:
            node.running -= 1
            for on_end in self.on_end:
                _call_quietly(on_end, batch.state)
        if batch.state.status is EpisodeStatus.CLOSED:
            self._let_go(episode_id, node)

    def _let_go(self, episode_id: str, node: Node) -> None:
        """A closed episode is read from the book from now on."""
        mirror = self._live.pop(episode_id)
        node.episodes.discard(episode_id)
        assert mirror.snapshot is not None
        self._archive.add(BookSummary(mirror.snapshot.state, mirror.snapshot.recording,
                                      self._with_placement(mirror, mirror.trainer_data), ended_at=None))

    async def _node_lost(self, node: Node, why: str) -> None:
        """Settle the node's episodes from what the front holds, and stop draining it."""
        drain = self._drains.pop(node.name, None)
        if drain is not None and drain is not asyncio.current_task():
            drain.cancel()
        settled = []
        for episode_id in sorted(node.episodes):
            mirror = self._live.get(episode_id)
            if mirror is None or mirror.snapshot is None:
                continue
            batch = mirror.lost()
            try:
                await asyncio.to_thread(self._write, [batch])
            except BookWriteError as error:
                logger.warning("%s", error)  # the next server on this book settles it (server_restart)
            self._apply(node, batch)
            settled.append(episode_id)
        node.running = 0
        if settled:
            logger.warning("%d episodes of lost node %s ended browser_error, their steps kept: %s",
                           len(settled), node.name, ", ".join(settled))

    # -- trainer side ------------------------------------------------------------------------

    async def create(
        self,
        task_id: str,
        seed: int | None = None,
        limits: EpisodeLimits | None = None,
        difficulty: str | None = None,
        recording: Recording | None = None,
        observe: bool = True,
    ) -> CreatedEpisode:
        """A new episode on the least loaded node with room (`observe` is ignored: the first
        observation is the agent's, on its node). Raises `NoCapacityError` when no node has room."""
        spec = self.registry.get(task_id)
        if difficulty is not None and spec.difficulties and difficulty not in spec.difficulties:
            raise ValueError(f"task {task_id!r} has difficulties {list(spec.difficulties)}, not {difficulty!r}")
        limits = limits or EpisodeLimits(max_steps=self.config.default_max_steps)
        recording = recording or Recording()
        tried: set[str] = set()
        while True:
            node = self._pick(tried)
            node.reserved += 1
            try:
                created: CreatedEpisode = await node.actor.create.remote(
                    spec.id, seed, limits, difficulty, recording)
            except RayActorError as error:
                await self.fleet.lose(node, f"its actor died ({type(error).__name__})")
                tried.add(node.name)
                continue
            except RayTaskError as error:
                cause = error.cause
                if isinstance(cause, TooManyEpisodesError):
                    tried.add(node.name)
                    continue
                if isinstance(cause, (EpisodeSetupError, BookWriteError, ValueError)):
                    raise cause from None
                raise EpisodeSetupError(f"setup of {task_id!r} failed on node {node.name}: {cause}") from None
            finally:
                node.reserved -= 1
            if created.episode_id not in self._live and created.episode_id not in self._archive:
                raise EpisodeSetupError(f"node {node.name} created {created.episode_id} but its records "
                                        "did not reach the front")
            return CreatedEpisode(created.episode_id, created.agent_token, created.task_id, created.goal,
                                  None, node=node.ray_node_id, mcp_url=node.info.mcp_url)

    def _pick(self, tried: set[str]) -> Node:
        node = self.fleet.pick()
        if node.name in tried:
            others = [n for n in self.fleet.alive() if n.has_room and n.name not in tried]
            if not others:
                raise NoCapacityError("no browser node could take the episode; retry")
            node = min(others, key=lambda n: n.load)
        return node

    def snapshot(self, episode_id: str) -> EpisodeSnapshot:
        mirror = self._live.get(episode_id)
        if mirror is not None and mirror.snapshot is not None:
            return mirror.snapshot
        if self._archive.summary(episode_id) is None:
            raise EpisodeNotFoundError(episode_id)
        snapshot = self._archive.snapshot(self._book, episode_id)
        if snapshot is None:  # pruned a moment ago
            self._archive.forget(episode_id)
            raise EpisodeNotFoundError(episode_id)
        return snapshot

    def state(self, episode_id: str) -> EpisodeState:
        mirror = self._live.get(episode_id)
        if mirror is not None and mirror.snapshot is not None:
            return mirror.snapshot.state
        summary = self._archive.summary(episode_id)
        if summary is None:
            raise EpisodeNotFoundError(episode_id)
        return summary.state

    def states(self) -> list[EpisodeState]:
        states = self._archive.states()
        states += [mirror.snapshot.state for mirror in self._live.values() if mirror.snapshot is not None]
        return sorted(states, key=lambda state: state.created_at)

    def episode_ids(self) -> set[str]:
        return {*self._live, *self._archive}

    def history(self) -> list[EpisodeState]:
        return self._archive.history()

    def trainer_data_items(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        yield from self._archive.trainer_data_items()
        for episode_id, mirror in self._live.items():
            yield episode_id, mirror.trainer_data

    def keep_trainer_data(self, episode_id: str, data: Mapping[str, Any]) -> None:
        """Keep the trainer's data with a live episode, and where it runs, in the book."""
        mirror = self._live.get(episode_id)
        if mirror is None:
            raise EpisodeNotFoundError(episode_id)
        mirror.trainer_data = dict(data)
        self._book.set_trainer_data(episode_id, self._with_placement(mirror, data))

    def _with_placement(self, mirror: EpisodeMirror, data: Mapping[str, Any]) -> dict[str, Any]:
        node = self.fleet.nodes.get(mirror.node_name)
        placement = {"node": node.ray_node_id, "mcp_url": node.info.mcp_url} if node is not None else {}
        return {**data, PLACEMENT: placement}

    def placement(self, episode_id: str) -> Placement:
        mirror = self._live.get(episode_id)
        if mirror is not None:
            node = self.fleet.nodes.get(mirror.node_name)
            if node is not None:
                return Placement(node=node.ray_node_id, mcp_url=node.info.mcp_url)
        summary = self._archive.summary(episode_id)
        where = summary.trainer_data.get(PLACEMENT) if summary is not None else None
        if isinstance(where, Mapping) and isinstance(where.get("node"), str):
            url = where.get("mcp_url")
            return Placement(node=where["node"], mcp_url=url if isinstance(url, str) else None)
        return HERE

    def node_loads(self) -> list[NodeLoad]:
        return [NodeLoad(node=node.name, mcp_url=node.info.mcp_url, alive=node.alive,
                         open_episodes=node.running if node.alive else 0, steps=node.steps)
                for node in self.fleet.nodes.values()]

    async def close(self, episode_id: str, by: ClosedBy = "trainer") -> EpisodeState:
        """Close on the node; an episode whose node was lost is closed already (`node_lost`)."""
        if episode_id in self._live:
            try:
                await self._on_node(episode_id, lambda node: node.actor.close.remote(episode_id, by))
            except NodeLostError:
                pass
        return self.state(episode_id)

    async def end(self, episode_id: str, reason: FailureReason) -> EpisodeState:
        if episode_id in self._live:
            try:
                await self._on_node(episode_id, lambda node: node.actor.end.remote(episode_id, reason))
            except NodeLostError:
                pass
        return self.state(episode_id)

    async def screenshot(self, episode_id: str) -> bytes:
        if episode_id not in self._live:
            self.state(episode_id)
            raise EpisodeClosedError(episode_id)
        try:
            image: bytes = await self._on_node(episode_id, lambda node: node.actor.screenshot.remote(episode_id))
        except NodeLostError:
            raise EpisodeClosedError(episode_id) from None
        return image

    async def _on_node(self, episode_id: str, call: Callable[[Node], Awaitable[T]]) -> T:
        """An actor call to the episode's node; the node's own errors come back as they were raised.

        A node that dies meanwhile is lost, its episodes settled: `NodeLostError`."""
        mirror = self._live[episode_id]
        node = self.fleet.nodes[mirror.node_name]
        try:
            return await call(node)
        except RayActorError as error:
            await self.fleet.lose(node, f"its actor died ({type(error).__name__})")
            raise NodeLostError(f"the browser node of episode {episode_id} was lost") from None
        except RayTaskError as error:
            if isinstance(error.cause, EpisodeNotFoundError | EpisodeClosedError | BookWriteError):
                raise error.cause from None
            raise


def _call_quietly(callback: Callable[[Any], None], value: Any) -> None:
    try:
        callback(value)
    except Exception:  # noqa: BLE001 - observers must not stop the records
        logger.exception("callback failed")


__all__ = ["ClusterRoom", "NodeLostError"]
