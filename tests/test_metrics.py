"""`GET /metrics` read the way Prometheus reads it: exact counts after real episodes over
HTTP, and the sum over several processes that share a PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.parser import text_string_to_metric_families

from support.control import PrivateControlServer

ROOT = Path(__file__).resolve().parent.parent
TASK = "miniwob.click-test"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """Each family's type, and every sample keyed by (sample name, labels)."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


# -- one control app, over HTTP -------------------------------------------------------------------


class MetricsServer(PrivateControlServer):
    """A fresh control API, so every count starts at zero."""

    def __init__(self) -> None:
        super().__init__("metrics-tests")

    def create(self) -> dict[str, Any]:
        return self.control.create(TASK, seed=3)

    def act(self, token: str, tool: str, arguments: dict[str, Any]) -> None:
        self.run(self.session(token).act(tool, arguments))


@pytest.fixture(scope="module")
def server() -> Iterator[MetricsServer]:
    running = MetricsServer()
    try:
        yield running
    finally:
        running.stop()


def test_a_scrape_counts_exactly_what_the_episodes_did(server: MetricsServer) -> None:
    first, second, third = server.create(), server.create(), server.create()
    assert server.control.http.post("/v1/episodes", json={"task_id": "miniwob.no-such-task"}).status_code == 404
    server.act(first["agent_token"], "noop", {"wait_ms": 0})
    server.act(first["agent_token"], "click", {"id": "not-an-id"})
    ended = server.control.http.post(f"/v1/episodes/{second['episode_id']}/end", json={"reason": "client_step_cap"})
    assert ended.status_code == 200, ended.text
    assert server.control.http.delete(f"/v1/episodes/{third['episode_id']}").status_code == 200

    response = server.control.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    types, samples = parse(response.text)

    assert types["safebrowse_episodes_created"] == "counter"
    assert types["safebrowse_episodes_open"] == "gauge"
    assert types["safebrowse_step_duration_seconds"] == "histogram"
    assert value(samples, "safebrowse_episodes_created_total") == 3
    assert value(samples, "safebrowse_episode_create_errors_total", error="unknown_task") == 1
    # Running: the first; ended but not closed: the second; closed: the third.
    assert value(samples, "safebrowse_episodes_open") == 1
    assert value(samples, "safebrowse_browser_contexts_open") == 2
    assert value(samples, "safebrowse_steps_total", tool="noop", outcome="ok") == 1
    assert value(samples, "safebrowse_steps_total", tool="click", outcome="invalid") == 1
    assert value(samples, "safebrowse_step_errors_total", kind="invalid") == 1
    assert value(samples, "safebrowse_episodes_ended_total", reason="client_step_cap") == 1
    assert value(samples, "safebrowse_control_responses_total", code="201") == 3
    assert value(samples, "safebrowse_control_responses_total", code="404") == 1
    assert value(samples, "safebrowse_step_duration_seconds_count") == 2
    assert value(samples, "safebrowse_step_duration_seconds_bucket", le="+Inf") == 2
    assert value(samples, "safebrowse_step_duration_seconds_sum") > 0
    assert not [name for name, _ in samples if name.endswith("_created")]

    # Gauges are read at scrape time: closing the last running episode shows at once.
    assert server.control.http.delete(f"/v1/episodes/{first['episode_id']}").status_code == 200
    _, later = parse(server.control.http.get("/metrics").text)
    assert value(later, "safebrowse_episodes_open") == 0
    assert value(later, "safebrowse_browser_contexts_open") == 1
    assert value(later, "safebrowse_control_responses_total", code="200") >= 3  # end, delete, the first scrape


# -- several processes, one directory -------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys
    from control_api.metrics import Metrics
    from engine.records import EpisodeStatus, FailureReason, StepRecord

    episodes, running = int(sys.argv[1]), int(sys.argv[2])
    metrics = Metrics()
    for index in range(episodes):
        metrics.episode_created()
        metrics.on_step(StepRecord(index=0, tool="noop", arguments={}, valid=True, url="about:blank",
                                         started_at=0.0, action_ms=20.0, observation_ms=10.0, validate_ms=0.0))
    metrics.on_step(StepRecord(index=1, tool="click", arguments={}, valid=False, error_kind="invalid",
                                     url="about:blank", started_at=0.0, action_ms=1.0, observation_ms=1.0,
                                     validate_ms=0.0, terminated=True,
                                     failure_reason=FailureReason.TOO_MANY_INVALID_ACTIONS))
    metrics.create_failed("too_many_episodes")
    metrics.count_episodes([EpisodeStatus.RUNNING] * running + [EpisodeStatus.CLOSED])
    print(__import__("os").getpid())
""")

READER = textwrap.dedent("""
    from types import SimpleNamespace
    from control_api.metrics import Metrics

    no_episodes = SimpleNamespace(episodes=lambda: [], states=lambda: [], node_loads=lambda: [])
    print(Metrics().render(no_episodes), end="")
""")


def run_python(code: str, multiproc_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=True)


def test_processes_sharing_a_multiproc_dir_are_summed(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(episodes), str(running)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, text=True)
               for episodes, running in ((2, 1), (3, 2))]
    pids = []
    for writer in writers:
        out, _ = writer.communicate(timeout=120)
        assert writer.returncode == 0
        pids.append(int(out))

    types, samples = parse(run_python(READER, tmp_path).stdout)
    assert types["safebrowse_episodes_open"] == "gauge"
    assert value(samples, "safebrowse_episodes_created_total") == 5
    assert value(samples, "safebrowse_episode_create_errors_total", error="too_many_episodes") == 2
    assert value(samples, "safebrowse_steps_total", tool="noop", outcome="ok") == 5
    assert value(samples, "safebrowse_steps_total", tool="click", outcome="invalid") == 2
    assert value(samples, "safebrowse_step_errors_total", kind="invalid") == 2
    assert value(samples, "safebrowse_episodes_ended_total", reason="too_many_invalid_actions") == 2
    assert value(samples, "safebrowse_step_duration_seconds_count") == 7
    assert value(samples, "safebrowse_step_duration_seconds_bucket", le="0.025") == 2  # the 2 ms clicks
    assert value(samples, "safebrowse_step_duration_seconds_bucket", le="0.05") == 7  # and the 30 ms noops
    # livesum: 1 + 2 running, the closed ones in neither gauge, and the reader holds none.
    assert value(samples, "safebrowse_episodes_open") == 3
    assert value(samples, "safebrowse_browser_contexts_open") == 3

    # A dead process's episodes stop counting; what it counted stays.
    mark_process_dead(pids[1], str(tmp_path))
    _, after = parse(run_python(READER, tmp_path).stdout)
    assert value(after, "safebrowse_episodes_open") == 1
    assert value(after, "safebrowse_episodes_created_total") == 5
