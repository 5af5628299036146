"""A browser node: one Ray actor that owns Chromium workers, an asset server and an MCP door.

The front creates one `BrowserNode` per share of a Ray node (`cluster.fleet`), with
`ray.remote(BrowserNode)`. Inside, it is a single server's room without a book: an
`EpisodeManager` whose jobs write to a `RecordOutbox` the front drains
(`take_records`), and the agent door of `mcp_server.http` on the node's own address.
Agents talk to that door directly; the front calls the other methods: create, close,
end, screenshot, take_records, and a suite's start and report (a suite runs whole on
one node, so its one agent token opens it on this node's door).

Methods are coroutines, so Ray runs the actor as an async actor: every call, the door
and the manager share the actor's one event loop, and the browser workers keep their
own threads, as on a single server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass

import ray
import uvicorn

from cluster.outbox import RecordBatch, RecordOutbox
from engine.agent_view.port import AgentPort
from engine.config import EngineConfig
from engine.episode_errors import CreatedEpisode
from engine.manager import EpisodeManager
from engine.oracle import OracleSettings, build_oracle_factory
from engine.recorder import Recording
from engine.records import ClosedBy, EpisodeLimits, EpisodeState, FailureReason
from engine.suites import SuiteDesk, SuitePlan, SuiteReport
from mcp_server.limits import DoorLimits
from safebrowse.sockets import SignalNeutralServer, bound_socket, port_of
from tasks import default_registry

logger = logging.getLogger(__name__)

WILDCARDS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class NodeSpec:
    """What a browser node is built from; sent to the actor when it is created."""

    engine: EngineConfig
    oracle: OracleSettings
    mcp_limits: DoorLimits
    door_host: str | None
    door_port: int
    record_timeout_s: float
    version: str


@dataclass(frozen=True)
class NodeInfo:
    """What the front learns of a node that has started."""

    node_id: str
    mcp_url: str
    capacity: int
    pid: int


class BrowserNode:
    def __init__(self, spec: NodeSpec) -> None:
        self.spec = spec
        self.outbox = RecordOutbox(spec.record_timeout_s)
        self.manager = EpisodeManager(
            spec.engine, default_registry(spec.engine.extra_tasks_dir),
            oracle_factory=build_oracle_factory(spec.oracle), records_to=self.outbox)
        self.suites = SuiteDesk(self.manager)
        """Suites run here whole: one agent token walks its episodes on this node's door."""
        self._door: uvicorn.Server | None = None  # signals stay with Ray's worker process
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> NodeInfo:
        """Start the browsers and the door; returns where agents reach this node."""
        # Imported here, in the actor's process: the front imports this module for the class
        # alone, and loads nothing of the agent door (tests/security/test_import_boundary.py).
        from mcp_server.http import build_app

        self.outbox.bind(asyncio.get_running_loop())
        await self.manager.start()
        node_ip: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        host = self.spec.door_host or node_ip
        sock = bound_socket(host, self.spec.door_port)
        # A wildcard bind has no address to hand out: agents are given the node's own.
        shown = node_ip if host in WILDCARDS else host
        app = build_app(self._open_port, host=host, version=self.spec.version, limits=self.spec.mcp_limits)
        self._door = SignalNeutralServer(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
        self._serving = asyncio.create_task(self._door.serve(sockets=[sock]))
        while not self._door.started:
            if self._serving.done():
                self._serving.result()  # raises what stopped the door
            await asyncio.sleep(0.01)
        shown = f"[{shown}]" if ":" in shown else shown
        return NodeInfo(node_id=ray.get_runtime_context().get_node_id(),
                        mcp_url=f"http://{shown}:{port_of(sock)}/mcp",
                        capacity=self.spec.engine.max_open_episodes, pid=os.getpid())

    def _open_port(self, token: str) -> AgentPort | None:
        """A suite's token opens its suite, any other its episode (as on a single server)."""
        suite = self.suites.agent_port(token)
        return suite if suite is not None else self.manager.agent_session(token)

    async def open_suite(self, plan: SuitePlan, suite: str) -> tuple[str, str]:
        """Start a suite on this node: its id and its agent token (for this node's door)."""
        opened = await self.suites.start(plan, suite)
        return opened.suite_id, opened.agent_token

    async def suite_report(self, suite_id: str) -> SuiteReport:
        return await self.suites.report_of(suite_id)

    async def create(
        self, task_id: str, seed: int | None, limits: EpisodeLimits, difficulty: str | None, recording: Recording
    ) -> CreatedEpisode:
        """A new episode; its setup's records are at the front before this returns."""
        return await self.manager.create(task_id, seed=seed, limits=limits, difficulty=difficulty,
                                         recording=recording, observe=False)

    async def close(self, episode_id: str, by: ClosedBy) -> EpisodeState:
        return await self.manager.close(episode_id, by=by)

    async def end(self, episode_id: str, reason: FailureReason) -> EpisodeState:
        return await self.manager.end(episode_id, reason)

    async def screenshot(self, episode_id: str) -> bytes:
        return await self.manager.screenshot(episode_id)

    async def take_records(self, confirmed: int, wait_s: float) -> list[RecordBatch]:
        """The front's long poll: confirm what it keeps, receive what is new (`RecordOutbox.take`)."""
        return await self.outbox.take(confirmed, wait_s)

    async def stop(self) -> None:
        """Close every episode (`shutdown`), the door and the browsers. The front keeps draining
        records meanwhile, so the closes reach its book."""
        if self._door is not None:
            self._door.should_exit = True
        try:
            await self.suites.stop()
            await self.manager.stop()
        finally:
            self.outbox.close()
            if self._serving is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._serving, 5)


__all__ = ["BrowserNode", "NodeInfo", "NodeSpec"]
