"""Prometheus metrics for the trainer door, in the text exposition format (0.0.4).

Step metrics come from the manager's `on_step` callbacks; episode gauges are read
from the manager at scrape time; response counts come from a small ASGI wrapper.
The format is simple enough to write out directly, so no client library is needed.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.actions import ACTION_NAMES
from engine.episode import Episode
from engine.manager import EpisodeManager
from engine.records import EpisodeStatus, StepRecord

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STEP_SECONDS_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KNOWN_TOOLS = frozenset(ACTION_NAMES)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in sorted(labels.items())) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Histogram:
    def __init__(self, buckets: Iterable[float]) -> None:
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def lines(self, name: str) -> list[str]:
        lines, cumulative = [], 0
        for bound, count in zip((*self.bounds, math.inf), self.counts):
            cumulative += count
            lines.append(f"{name}_bucket{_labels({'le': _number(bound)})} {cumulative}")
        lines.append(f"{name}_sum {_number(self.total)}")
        lines.append(f"{name}_count {cumulative}")
        return lines


class Metrics:
    """Counters for one control API instance."""

    def __init__(self) -> None:
        self.episodes_created = 0
        self.create_errors: Counter[str] = Counter()
        self.steps: Counter[tuple[str, str]] = Counter()
        self.episodes_ended: Counter[str] = Counter()
        self.responses: Counter[str] = Counter()
        self.step_seconds = Histogram(STEP_SECONDS_BUCKETS)

    # -- recording ----------------------------------------------------------------------

    def on_step(self, episode: Episode, record: StepRecord) -> None:
        tool = record.tool if record.tool in KNOWN_TOOLS else "other"
        self.steps[(tool, record.error_kind or "ok")] += 1
        self.step_seconds.observe((record.action_ms + record.observation_ms + record.validate_ms) / 1000)
        if record.terminated:
            self.episodes_ended[record.failure_reason.value] += 1

    def episode_ended(self, reason: str) -> None:
        self.episodes_ended[reason] += 1

    # -- exposition ---------------------------------------------------------------------

    def render(self, manager: EpisodeManager) -> str:
        statuses = Counter(episode.status for episode in manager.episodes())
        out: list[str] = []

        def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                out.append(f"{name}{_labels(labels)} {_number(value)}")

        family("safebrowse_episodes_created_total", "counter", "Episodes created through the control API.",
               [({}, self.episodes_created)])
        family("safebrowse_episode_create_errors_total", "counter", "Refused or failed episode creations, by error.",
               [({"error": error}, count) for error, count in sorted(self.create_errors.items())])
        family("safebrowse_episodes_open", "gauge", "Episodes that still accept actions.",
               [({}, statuses[EpisodeStatus.RUNNING])])
        family("safebrowse_browser_contexts_open", "gauge", "Episodes whose browser context is not yet closed.",
               [({}, statuses[EpisodeStatus.RUNNING] + statuses[EpisodeStatus.ENDED])])
        family("safebrowse_steps_total", "counter", "Agent steps, by tool and outcome (ok or the error kind).",
               [({"tool": tool, "outcome": outcome}, count) for (tool, outcome), count in sorted(self.steps.items())])
        family("safebrowse_step_errors_total", "counter", "Agent steps that failed, by error kind.",
               [({"kind": kind}, count) for kind, count in sorted(self._errors_by_kind().items())])
        family("safebrowse_episodes_ended_total", "counter", "Episodes that ended, by failure reason.",
               [({"reason": reason}, count) for reason, count in sorted(self.episodes_ended.items())])
        family("safebrowse_control_responses_total", "counter", "Control API responses, by status code.",
               [({"code": code}, count) for code, count in sorted(self.responses.items())])
        out.append("# HELP safebrowse_step_duration_seconds Time to act, validate and observe one step.")
        out.append("# TYPE safebrowse_step_duration_seconds histogram")
        out.extend(self.step_seconds.lines("safebrowse_step_duration_seconds"))
        return "\n".join(out) + "\n"

    def _errors_by_kind(self) -> Counter[str]:
        kinds: Counter[str] = Counter()
        for (_tool, outcome), count in self.steps.items():
            if outcome != "ok":
                kinds[outcome] += count
        return kinds


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
                self.metrics.responses[str(message["status"])] += 1
            await send(message)

        await self.app(scope, receive, counting_send)
