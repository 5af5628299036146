"""The front's browser nodes: where they run, which one takes the next episode, which are gone.

Ray decides what runs where; the fleet only asks. Every `watch_interval_s` it reads
Ray's node table (`ray.nodes()`), and for each live Ray node with room, by its CPUs
and the optional marking resource, it starts browser nodes pinned there with
`NodeAffinitySchedulingStrategy`, each reserving `node_cpus`. A Ray node that joins
later gets its browser nodes at the next look, without a restart; one Ray reports
dead is lost at once, as is a browser node whose actor dies (`lose`).

Browser node actors are owned by the front's Ray job: when the front's process ends,
Ray ends them, and with them their browsers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.node import BrowserNode, NodeInfo, NodeSpec
from cluster.settings import ClusterSettings
from engine.episode_errors import NoCapacityError

logger = logging.getLogger(__name__)

ACTOR_PREFIX = "safebrowse-node-"
"""Browser node actors are named `safebrowse-node-<front's job id>-<node name>` in the front's
namespace, so `ray list actors` and `ray.util.list_named_actors` show whose they are."""
RETRY_FAILED_START_S = 30.0
"""A Ray node whose browser node failed to start is tried again after this long."""


@dataclass(eq=False)
class Node:
    """One browser node as the front knows it."""

    name: str
    """`<ray node id>` or, with several per Ray node, `<ray node id>/<slot>`."""
    ray_node_id: str
    actor: Any  # ray.actor.ActorHandle of a BrowserNode
    info: NodeInfo
    alive: bool = True
    episodes: set[str] = field(default_factory=set)
    """Live episodes placed here (running or ended, not yet closed)."""
    running: int = 0
    reserved: int = 0
    """Creations under way."""
    steps: int = 0
    confirmed: int = 0
    """The last record batch the front has kept (`RecordOutbox.take`)."""

    @property
    def load(self) -> int:
        return self.running + self.reserved

    @property
    def has_room(self) -> bool:
        return self.alive and self.load < self.info.capacity


def slots_of(resources: dict[str, float], settings: ClusterSettings) -> int:
    """How many browser nodes a Ray node with these (total) resources hosts."""
    slots = min(settings.nodes_per_machine, math.floor(resources.get("CPU", 0.0) / settings.node_cpus + 1e-9))
    if settings.node_resource is not None:
        slots = min(slots, math.floor(resources.get(settings.node_resource, 0.0) + 1e-9))
    return max(0, slots)


class Fleet:
    def __init__(
        self, settings: ClusterSettings, spec: NodeSpec,
        on_started: Callable[[Node], None], on_lost: Callable[[Node, str], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.spec = spec
        self.nodes: dict[str, Node] = {}
        """Every browser node started, by name, lost ones included (they stay for metrics)."""
        self._on_started = on_started
        self._on_lost = on_lost
        self._failed_at: dict[str, float] = {}
        self._starting: set[str] = set()

    def pick(self) -> Node:
        """The least loaded live node with room; raises `NoCapacityError` when there is none."""
        candidates = [node for node in self.nodes.values() if node.has_room]
        if not candidates:
            alive = sum(1 for node in self.nodes.values() if node.alive)
            if not alive:
                raise NoCapacityError("no browser node is up in the Ray cluster; start or add a node and retry")
            raise NoCapacityError(f"all {alive} browser nodes are full; close an episode or add a node, and retry")
        return min(candidates, key=lambda node: (node.load / node.info.capacity, node.load))

    def alive(self) -> list[Node]:
        return [node for node in self.nodes.values() if node.alive]

    async def look(self) -> None:
        """Start browser nodes on Ray nodes with room for them; lose those on dead Ray nodes."""
        table = await asyncio.to_thread(ray.nodes)
        dead = {entry["NodeID"] for entry in table if not entry["Alive"]}
        for node in self.alive():
            if node.ray_node_id in dead:
                await self.lose(node, "Ray reports its node dead")
        wanted = []
        now = time.monotonic()
        for entry in table:
            if not entry["Alive"]:
                continue
            ray_node_id = entry["NodeID"]
            slots = slots_of(entry.get("Resources", {}), self.settings)
            for slot in range(slots):
                name = ray_node_id if slots == 1 and self.settings.nodes_per_machine == 1 else f"{ray_node_id}/{slot}"
                known = self.nodes.get(name)
                if (known is not None and known.alive) or name in self._starting:
                    continue
                if now - self._failed_at.get(name, -math.inf) < RETRY_FAILED_START_S:
                    continue
                wanted.append((name, ray_node_id))
        if wanted:
            await asyncio.gather(*(self._start(name, ray_node_id) for name, ray_node_id in wanted))

    async def _start(self, name: str, ray_node_id: str) -> None:
        self._starting.add(name)
        resources = {self.settings.node_resource: 1.0} if self.settings.node_resource else {}
        node_class: Any = ray.remote(BrowserNode)
        actor: Any = node_class.options(
            name=f"{ACTOR_PREFIX}{ray.get_runtime_context().get_job_id()}-{name.replace('/', '-')}",
            num_cpus=self.settings.node_cpus, resources=resources, max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(ray_node_id, soft=False),
        ).remote(self.spec)
        try:
            info: NodeInfo = await asyncio.wait_for(actor.start.remote(), self.settings.node_start_timeout_s)
        except Exception as error:  # noqa: BLE001 - a node that cannot start is reported and retried later
            logger.warning("browser node on Ray node %s did not start: %s", ray_node_id, _short(error))
            self._failed_at[name] = time.monotonic()
            ray.kill(actor)
            return
        finally:
            self._starting.discard(name)
        node = Node(name=name, ray_node_id=ray_node_id, actor=actor, info=info)
        self.nodes[name] = node
        logger.info("browser node %s up: MCP door %s, %d episodes at most", name, info.mcp_url, info.capacity)
        self._on_started(node)

    async def lose(self, node: Node, why: str) -> None:
        """The node is gone (or unusable): its episodes are settled, its actor ended."""
        if not node.alive:
            return
        node.alive = False
        logger.warning("browser node %s lost: %s", node.name, why)
        try:
            ray.kill(node.actor)
        except Exception:  # noqa: BLE001 - it may be gone already
            pass
        await self._on_lost(node, why)

    async def stop(self) -> None:
        """Stop every live node: its episodes close (`shutdown`), its browsers stop, its actor ends."""
        async def stopping(node: Node) -> None:
            try:
                await asyncio.wait_for(node.actor.stop.remote(), 60)
            except (RayActorError, TimeoutError, Exception) as error:  # noqa: BLE001 - ended below regardless
                logger.warning("browser node %s did not stop cleanly: %s", node.name, _short(error))

        await asyncio.gather(*(stopping(node) for node in self.alive()))


def end_actors(nodes: list[Node]) -> None:
    for node in nodes:
        node.alive = False
        try:
            ray.kill(node.actor)
        except Exception:  # noqa: BLE001 - it may be gone already
            pass


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


__all__ = ["ACTOR_PREFIX", "Fleet", "Node", "end_actors", "slots_of"]
