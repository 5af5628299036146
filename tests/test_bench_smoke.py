"""The benchmarks run end to end and report sane numbers.

These run the real commands in a subprocess (the whole server, real Chromium,
BrowserGym's BrowserEnv) on the shortest settings. They check that both sides
played the same episodes to the end and that the report is complete; they
never check a speed, since that depends on the machine (speed targets are
printed by the benchmarks themselves, see docs/performance.md).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_S = 280


def run_module(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S + 20)
def test_compare_quick_run_plays_the_same_episodes_on_both_sides(tmp_path):
    raw = tmp_path / "compare.json"
    done = run_module("bench.compare", "--quick", "--json", str(raw))
    assert done.returncode == 0, done.stdout + done.stderr

    episodes = json.loads(raw.read_text())["episodes"]
    sides = {e["side"] for e in episodes}
    assert sides == {"safebrowse", "browsergym"}
    pairs: dict[tuple[str, int], dict[str, dict]] = {}
    for episode in episodes:
        assert episode["error"] is None, episode["error"]
        assert episode["success"] is True, episode
        assert 0 < episode["reset_s"] < RUN_TIMEOUT_S
        assert episode["step_s"] and all(0 < s < RUN_TIMEOUT_S for s in episode["step_s"])
        assert len(episode["step_s"]) == len(episode["actions"])
        pairs.setdefault((episode["task_id"], episode["seed"]), {})[episode["side"]] = episode
    assert {task for task, _seed in pairs} == {"miniwob.click-test", "miniwob.enter-text"}
    for (task, seed), by_side in pairs.items():
        ours, theirs = by_side["safebrowse"], by_side["browsergym"]
        # Same seed, same task: the same goal; same policy on the same page: as many actions.
        assert ours["goal"] == theirs["goal"] != ""
        assert len(ours["actions"]) == len(theirs["actions"]), (task, seed, ours["actions"], theirs["actions"])
        assert set(ours["step_parts"]) >= {"engine_action", "engine_observe", "transport_and_queue"}

    out = done.stdout
    assert "ratios (how many times faster safebrowse is)" in out
    overall = re.search(r"^overall\s+browsergym((?:\s+\S+){5})\s*$", out, re.MULTILINE)
    assert overall, out
    ratios = [float(cell.rstrip("x")) for cell in overall.group(1).split()]
    assert all(math.isfinite(r) and r > 0 for r in ratios), ratios
    assert re.search(r"step median at least 10x faster:\s+\S+x\s+(MET|NOT MET)", out), out
    assert re.search(r"reset median at least 8x faster:\s+\S+x\s+(MET|NOT MET)", out), out
    assert "same goal text on every side for 2 of 2" in out


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S + 20)
def test_concurrency_quick_run_reports_throughput_and_memory(tmp_path):
    raw = tmp_path / "concurrency.json"
    done = run_module("bench.concurrency", "--levels", "1,2", "--rounds", "1", "--seconds", "2", "--warmup", "0.5",
                      "--memory-episodes", "2", "--settle", "0.5", "--json", str(raw))
    assert done.returncode == 0, done.stdout + done.stderr

    report = json.loads(raw.read_text())
    levels = {level["parallel"]: level for level in report["levels"]}
    assert set(levels) == {1, 2}
    for level in levels.values():
        assert level["actions"] > 0 and level["errors"] == 0
        assert len(level["latencies_s"]) == level["actions"]
        # The CPU split saw the work: the server's process, a Playwright driver and Chromium's renderers.
        spent = level["cpu"]["seconds"]
        assert spent["py: server process"] > 0 and spent["node driver"] > 0 and spent["chr: renderer"] > 0
        assert 0 < level["cpu"]["machine_busy"] <= level["cpu"]["machine_total"]
    assert "CPU per action" in done.stdout
    memory = report["memory"]
    assert [point["open_episodes"] for point in memory] == [0, 1, 2]
    # Every open episode has its own renderer: the Chromium process count grows with them.
    assert memory[2]["chromium_processes"] > memory[0]["chromium_processes"]
    assert all(point["pss_mb"] > 0 and point["rss_mb"] >= point["pss_mb"] >= point["uss_mb"] for point in memory)
    assert re.search(r"4 parallel episodes at least 1.6x the actions/s of 1:\s+-\s+NOT MEASURED", done.stdout)
    assert re.search(r"under 80 MB per extra open episode \(PSS sum\):\s+\S+ MB\s+(MET|NOT MET)", done.stdout)


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S + 20)
def test_groups_quick_run_resets_every_round():
    done = run_module("bench.groups", "--group", "2", "--rounds", "2", "--pause", "0.5")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if re.match(r"^[12]\s+\d+\s+\d+\s+\d+$", line)]
    assert [row[0] for row in rows] == ["1", "2"], done.stdout
    assert all(int(reset) > 0 for row in rows for reset in row[1:])
    assert "first round (cold)" in done.stdout


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S + 20)
def test_cluster_quick_run_measures_both_modes_the_front_and_two_nodes(tmp_path):
    raw = tmp_path / "cluster.json"
    done = run_module("bench.cluster", "--quick", "--json", str(raw))
    assert done.returncode == 0, done.stdout + done.stderr

    results = json.loads(raw.read_text())["results"]
    sides = {window["label"].split()[0] for window in results["latency"]}
    assert sides == {"single", "cluster"}
    assert all(window["actions"] > 0 and window["errors"] == 0 for window in results["latency"])
    churn = results["churn"]
    assert churn["episodes"] > 0 and len(churn["create_s"]) == churn["episodes"] and churn["front_cpu_s"] > 0
    nodes_used = [len(window["placement"]) for window in results["throughput"]]
    assert nodes_used == [1, 2]  # the second window ran on the node that joined
    assert all(window["actions"] > 0 and window["errors"] == 0 for window in results["throughput"])
    assert re.search(r"cluster step median within 10% of the single server's:\s+\S+\s+(MET|NOT MET)", done.stdout)


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S + 20)
def test_loops_quick_run_measures_every_shape_on_both_sides(tmp_path):
    raw = tmp_path / "loops.json"
    done = run_module("bench.loops", "--quick", "--json", str(raw))
    assert done.returncode == 0, done.stdout + done.stderr
    shapes = json.loads(raw.read_text())["shapes"]

    # Back to back: both sides completed the same episodes, with the same goals and as many actions.
    episodes = shapes["back_to_back"]["episodes"]
    by_pair: dict[tuple[str, int], dict[str, dict]] = {}
    for episode in episodes:
        assert episode["error"] is None, episode["error"]
        assert episode["success"] is True, episode
        assert 0 < episode["reset_s"] < RUN_TIMEOUT_S
        assert episode["step_s"] and len(episode["step_s"]) == len(episode["actions"])
        by_pair.setdefault((episode["task_id"], episode["seed"]), {})[episode["side"]] = episode
    assert len(by_pair) == 2
    for by_side in by_pair.values():
        ours, theirs = by_side["safebrowse"], by_side["browsergym"]
        assert ours["goal"] == theirs["goal"] != ""
        assert len(ours["actions"]) == len(theirs["actions"])
        assert set(ours["reset_parts"]) >= {"create", "connect", "observe", "engine_setup"}

    # Groups: every round of both sides got the whole group ready.
    sides = {side["side"]: side for side in shapes["groups"]["sides"]}
    assert set(sides) == {"safebrowse", "browsergym"}
    for side in sides.values():
        assert side["error"] is None, side["error"]
        assert len(side["rounds"]) == 2
        for one in side["rounds"]:
            assert len(one["resets_s"]) == side["group"] == 2
            assert 0 < max(one["resets_s"]) <= one["group_s"] < RUN_TIMEOUT_S

    # Parallel agents: both sides acted at every level; the CPU split saw the server's work.
    parallel = shapes["parallel"]
    assert parallel["errors"] == []
    assert [level["parallel"] for level in parallel["safebrowse"]] == [1, 2]
    assert [window["parallel"] for window in parallel["browsergym"]] == [1, 2]
    for level in parallel["safebrowse"]:
        assert level["actions"] > 0 and level["errors"] == 0
        spent = level["cpu"]["seconds"]
        assert spent["py: server process"] > 0 and spent["node driver"] > 0 and spent["chr: renderer"] > 0
        assert not any(kind.startswith("outside: ") and seconds > 0.5 for kind, seconds in spent.items()), spent
    for window in parallel["browsergym"]:
        assert window["actions"] > 0 and window["cpu"]["seconds"]

    out = done.stdout
    assert "load average" in out and "at the end" in out and re.search(r"commit [0-9a-f]{7,}", out)
    for target in ("reset median at least 10x faster", "step median at least 25x faster",
                   "later-round median at most 319 ms", "1 parallel: CPU per action without the benchmark's clients"):
        assert re.search(rf"^\s+(met|NOT MET)\s+.*{re.escape(target)}", out, re.MULTILINE), (target, out)
