"""Prometheus metrics for the trainer door, through prometheus-client.

Step metrics come from the room's `on_step` callbacks; episode gauges are set
from the room's published episode states at scrape time (and, for a cluster's
front, per browser node from what the front counts of each); response counts come
from a small ASGI wrapper. Each `Metrics` has a registry of its own rather than
the library's global one, so several control apps (tests build many) can live in
one process.

One process or several. By default `/metrics` shows this process's registry.
When `PROMETHEUS_MULTIPROC_DIR` names a directory in the environment *before the
process starts* (prometheus-client picks its value storage when it is imported),
every process that records metrics writes them to files there, and `/metrics`
shows the aggregate of all of them through `MultiProcessCollector`: counters and
the step histogram are summed, and the two episode gauges use the `livesum` mode,
the sum over processes still alive. A supervisor calls
`prometheus_client.multiprocess.mark_process_dead(pid)` when a process exits, so
its open episodes stop counting, and empties the directory between runs. In that
mode each process holds one `Metrics` (two in one process would share its file
entries), and a process without a `/metrics` route of its own keeps its gauges
current with `count_episodes`.

Counters carry no `_created` series: the multi-process files do not keep one, so
leaving it out makes both modes expose the same series.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control_api.room import TrainerRoom
from engine.agent_view.actions import ACTION_NAMES
from engine.placement import NodeLoad
from engine.records import EpisodeStatus, StepRecord

# The classic text format (what generate_latest writes with its default escaping and
# the legacy metric names used here); scrapers negotiate nothing more from us.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STEP_SECONDS_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KNOWN_TOOLS = frozenset(ACTION_NAMES)
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    """The metrics of one control API instance, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir: str | None = os.environ.get(MULTIPROC_DIR_ENV) or None
        registry = self.registry
        self._created_total = Counter("safebrowse_episodes_created", "Episodes created through the control API.",
                                registry=registry)
        self._create_errors = Counter("safebrowse_episode_create_errors",
                                      "Refused or failed episode creations, by error.", ["error"], registry=registry)
        self._episodes_open = Gauge("safebrowse_episodes_open", "Episodes that still accept actions.",
                                    registry=registry, multiprocess_mode="livesum")
        self._contexts_open = Gauge("safebrowse_browser_contexts_open",
                                    "Episodes whose browser context is not yet closed.",
                                    registry=registry, multiprocess_mode="livesum")
        self._steps = Counter("safebrowse_steps", "Agent steps, by tool and outcome (ok or the error kind).",
                              ["tool", "outcome"], registry=registry)
        self._step_errors = Counter("safebrowse_step_errors", "Agent steps that failed, by error kind.",
                                    ["kind"], registry=registry)
        self._episodes_ended = Counter("safebrowse_episodes_ended", "Episodes that ended, by failure reason.",
                                       ["reason"], registry=registry)
        self._responses = Counter("safebrowse_control_responses", "Control API responses, by status code.",
                                  ["code"], registry=registry)
        self._node_open = Gauge("safebrowse_node_episodes_open",
                                "Episodes still accepting actions on each browser node of a cluster.",
                                ["node"], registry=registry, multiprocess_mode="livesum")
        self._node_alive = Gauge("safebrowse_node_up", "1 while the cluster's browser node serves, 0 once lost.",
                                 ["node"], registry=registry, multiprocess_mode="livesum")
        self._node_steps = Counter("safebrowse_node_steps", "Agent steps taken on each browser node of a cluster.",
                                   ["node"], registry=registry)
        self._node_steps_seen: dict[str, int] = {}
        self._step_seconds = Histogram("safebrowse_step_duration_seconds",
                                       "Time to act, validate and observe one step.",
                                       buckets=STEP_SECONDS_BUCKETS, registry=registry)

    # -- recording ----------------------------------------------------------------------

    def episode_created(self) -> None:
        self._created_total.inc()

    def create_failed(self, error: str) -> None:
        """A refused or failed creation; `error` is the API error code (`unknown_task`, ...)."""
        self._create_errors.labels(error).inc()

    def on_step(self, record: StepRecord) -> None:
        tool = record.tool if record.tool in KNOWN_TOOLS else "other"
        outcome = record.error_kind or "ok"
        self._steps.labels(tool, outcome).inc()
        if record.error_kind:
            self._step_errors.labels(record.error_kind).inc()
        self._step_seconds.observe((record.action_ms + record.observation_ms + record.validate_ms) / 1000)
        if record.terminated:
            self._episodes_ended.labels(record.failure_reason.value).inc()

    def episode_ended(self, reason: str) -> None:
        """An end no step reported (the trainer's `end`)."""
        self._episodes_ended.labels(reason).inc()

    def response_sent(self, status_code: int) -> None:
        self._responses.labels(str(status_code)).inc()

    def count_episodes(self, statuses: Iterable[EpisodeStatus]) -> None:
        """Set the episode gauges from the statuses of every episode this process holds."""
        counts = collections.Counter(statuses)
        self._episodes_open.set(counts[EpisodeStatus.RUNNING])
        self._contexts_open.set(counts[EpisodeStatus.RUNNING] + counts[EpisodeStatus.ENDED])

    def count_nodes(self, loads: Iterable[NodeLoad]) -> None:
        """Set the per-node series from what a cluster's front counts of its browser nodes."""
        for load in loads:
            self._node_open.labels(load.node).set(load.open_episodes)
            self._node_alive.labels(load.node).set(1 if load.alive else 0)
            counted = self._node_steps_seen.get(load.node, 0)
            if load.steps > counted:
                self._node_steps.labels(load.node).inc(load.steps - counted)
                self._node_steps_seen[load.node] = load.steps

    # -- exposition ---------------------------------------------------------------------

    def render(self, room: TrainerRoom) -> str:
        """The text exposition: this registry, or every process's files in multi-process mode."""
        self.count_episodes(state.status for state in room.states())
        self.count_nodes(room.node_loads())
        if self.multiprocess_dir is None:
            return generate_latest(WithoutCreated(self.registry)).decode("utf-8")
        aggregate = CollectorRegistry()
        MultiProcessCollector(aggregate, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(aggregate).decode("utf-8")


class WithoutCreated:
    """A registry's metrics without the `_created` samples prometheus-client adds to counters.

    `prometheus_client.disable_created_metrics()` would do it for every registry in the
    process; this leaves other users of the library alone.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self.registry.collect():  # fresh Metric objects on every collect
            created = metric.name + "_created"
            metric.samples = [sample for sample in metric.samples if sample.name != created]
            yield metric


class CountResponses:
    """Pure ASGI middleware counting responses by status code."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.response_sent(message["status"])
            await send(message)

        await self.app(scope, receive, counting_send)
