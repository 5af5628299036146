"""Suite plans, named suites and the report's arithmetic, without a browser."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.suites import SuitePlanError, plan_suite, wilson_interval
from engine.suites.plan import expand
from engine.suites.report import SuiteEpisodeResult, per_task, rate_of
from safebrowse.scripted import POLICIES
from tasks import default_registry
from tasks.suites import NAMED_SUITES

SAFEBROWSE = str(Path(sys.executable).with_name("safebrowse"))


@pytest.fixture(scope="module")
def registry():
    return default_registry(None)


def test_wilson_interval_known_values():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and round(low, 4) == 0.7225  # never of zero width at 100%
    low, high = wilson_interval(0, 3)
    assert low == 0.0 and 0.5 < high < 0.6


def test_named_suites_name_registered_tasks_and_the_scripted_ones(registry):
    for suite in NAMED_SUITES.values():
        for task_id in suite.task_ids:
            assert task_id in registry, (suite.name, task_id)
    assert set(NAMED_SUITES["miniwob-scripted"].task_ids) == set(POLICIES)
    assert set(NAMED_SUITES["custom"].task_ids) == {spec.id for spec in registry if spec.family == "custom"}


def test_a_plan_runs_each_task_n_times_with_consecutive_seeds(registry):
    plan = plan_suite(registry, "miniwob.click-test, smoke", 2, seed=7)
    assert plan.task_ids == ("miniwob.click-test", "miniwob.click-button", "miniwob.enter-text")
    assert [(e.task_id, e.seed) for e in plan.episodes][:3] == [
        ("miniwob.click-test", 7), ("miniwob.click-test", 8), ("miniwob.click-button", 7)]
    assert len(plan.episodes) == 6
    assert expand("smoke,,smoke") == list(NAMED_SUITES["smoke"].task_ids)


@pytest.mark.parametrize(("suite", "episodes", "says"), [
    ("", 1, "names no task"),
    ("miniwob.click-tets", 1, "did you mean"),
    ("smoke", 0, "between 1 and 100"),
    ("smoke", 101, "between 1 and 100"),
])
def test_a_plan_refuses_what_cannot_run(registry, suite, episodes, says):
    with pytest.raises(SuitePlanError, match=says):
        plan_suite(registry, suite, episodes)


def test_rates_count_ended_episodes_only():
    rows = [SuiteEpisodeResult(index=i, episode_id=f"ep_{i}", task_id="t", seed=i, ended=i < 3, success=i == 0,
                               failure_reason="none" if i == 0 else "agent_failure", steps=2, return_=1.0,
                               wall_time_s=1.0) for i in range(4)]
    rate = rate_of(rows)
    assert (rate.episodes, rate.successes, rate.success_rate) == (3, 1, 1 / 3)
    assert [score.episodes for score in per_task(["t", "u"], rows)] == [3, 0]
    assert json.loads(rows[0].model_dump_json(by_alias=True))["return"] == 1.0


def test_tasks_lists_the_named_suites():
    done = subprocess.run([SAFEBROWSE, "tasks", "--suites", "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = {suite["name"]: suite["tasks"] for suite in json.loads(done.stdout)}
    assert listed == {name: list(suite.task_ids) for name, suite in NAMED_SUITES.items()}
