"""`safebrowse stdio --suite`, spawned as a desktop client spawns it and walked by the SDK's stdio client.

The report the process writes is checked against the server's own records through the
control API served beside it (`--control-port`), and against a client that hangs up
mid-suite.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from test_suites_http import (
    MIXED_ROWS,
    MIXED_SCORES,
    MIXED_SUITE,
    Walk,
    assert_nothing_scored_reached_the_agent,
    assert_report_matches_the_room,
    is_click_button,
    walk_suite,
)

from engine.agent_view import EvaluationOverError
from engine.agent_view.instructions import SUITE_INSTRUCTIONS

REPO = Path(__file__).resolve().parent.parent
SAFEBROWSE = str(Path(sys.executable).with_name("safebrowse"))


def _params(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    passthrough = {key: os.environ[key] for key in ("SAFEBROWSE_CHROMIUM",) if key in os.environ}
    return StdioServerParameters(command=SAFEBROWSE, args=["stdio", "--data-dir", str(data_dir), *args],
                                 env={**passthrough, **(env or {})}, cwd=str(REPO))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_stdio_suite_report_matches_the_server_records_and_the_agent_hears_nothing_of_it(tmp_path: Path):
    report_path = tmp_path / "report.json"
    port, token = _free_port(), "ctl_" + secrets.token_urlsafe(16)
    params = _params(tmp_path / "data", "--suite", MIXED_SUITE, "--episodes", "2", "--seed", "3",
                     "--max-steps", "4", "--difficulty", "easy", "--report", str(report_path),
                     "--control-port", str(port),
                     env={"SAFEBROWSE_CONTROL_TOKEN": token})

    async def session() -> tuple[Walk, dict[str, Any]]:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            assert client.instructions == SUITE_INSTRUCTIONS  # an episode's end is not the end of the work
            walk = await walk_suite(client, is_wrong=lambda index, page: index == 3 and is_click_button(page),
                                    try_escapes=True)
            report = json.loads(report_path.read_text())
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                              headers={"Authorization": f"Bearer {token}"}) as control:
                assert control.get(f"/v1/suites/{report['suite_id']}").json()["complete"] is True
                refused = control.post("/v1/suites", json={"suite": "smoke"})  # no HTTP agent could reach it
                assert refused.status_code == 501 and refused.json()["error"] == "suites_not_supported"
                assert_report_matches_the_room(report, control)
            return walk, report

    with tempfile.TemporaryFile("w+") as errlog:
        walk, report = asyncio.run(asyncio.wait_for(session(), 240))
        errlog.seek(0)
        stderr = errlog.read()
    assert_nothing_scored_reached_the_agent(walk)
    assert set(walk.over_texts) == {EvaluationOverError.MESSAGE}
    assert report["complete"] is True
    assert [(row["task_id"], row["seed"], row["success"]) for row in report["episodes"]] == MIXED_ROWS
    assert [(s["task_id"], s["successes"], s["episodes"]) for s in report["per_task"]] == MIXED_SCORES
    final = json.loads(report_path.read_text())
    assert final["episodes"] == report["episodes"] and final["complete"] is True
    assert "overall" in stderr and "miniwob.click-button" in stderr and "1/2" in stderr


@pytest.mark.slow
def test_stdio_client_that_hangs_up_mid_suite_leaves_a_correct_partial_report(tmp_path: Path):
    report_path = tmp_path / "partial.json"
    params = _params(tmp_path / "data", "--suite", "miniwob.click-test", "--episodes", "3",
                     "--report", str(report_path))

    async def session() -> Walk:
        async with Client(stdio_client(params, errlog=sys.stderr)) as client:
            return await walk_suite(client, is_wrong=lambda index, page: False, leave_at_episode=1)

    walk = asyncio.run(asyncio.wait_for(session(), 180))
    assert_nothing_scored_reached_the_agent(walk)
    report = json.loads(report_path.read_text())
    assert report["complete"] is False and report["incomplete_reason"] == "disconnected"
    assert report["planned_episodes"] == 3
    assert [(row["seed"], row["ended"], row["success"], row["steps"]) for row in report["episodes"]] == [
        (0, True, True, 1), (1, False, False, 0)]
    assert report["overall"]["episodes"] == 1 and report["overall"]["successes"] == 1


@pytest.mark.parametrize(("args", "says"), [
    (["--suite", "smoke,miniwob.click-tets"], "unknown task 'miniwob.click-tets'"),
    (["--suite", "smoke", "--episodes", "0"], "episodes per task must be between 1 and 100"),
    (["--suite", "smoke", "--episodes", "101"], "episodes per task must be between 1 and 100"),
    (["--suite", "smoke", "--report", "/nonexistent-dir/report.json"], "cannot be written"),
    (["--suite", "smoke", "--task", "miniwob.click-test"], "either --task"),
    (["--task", "miniwob.click-test", "--episodes", "2"], "go with --suite"),
])
def test_stdio_suite_refuses_bad_input_before_anything_starts(tmp_path: Path, args: list[str], says: str):
    done = subprocess.run([SAFEBROWSE, "stdio", "--data-dir", str(tmp_path / "data"), *args],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=REPO)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
