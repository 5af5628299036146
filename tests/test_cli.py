"""The `safebrowse` command as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SAFEBROWSE = [sys.executable, "-m", "safebrowse.cli"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SAFEBROWSE, *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_tasks_lists_every_miniwob_task_as_json() -> None:
    result = run_cli("tasks", "--json", "--family", "miniwob")
    assert result.returncode == 0, result.stderr
    tasks = json.loads(result.stdout)
    ids = {task["id"] for task in tasks}
    assert len(ids) == 125
    assert {"miniwob.click-test", "miniwob.enter-text", "miniwob.login-user"} <= ids
    assert all(task["family"] == "miniwob" and task["description"] for task in tasks)


def test_help_names_every_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("serve", "stdio", "tasks", "episode"):
        assert command in result.stdout


def test_episode_commands_drive_the_control_api(live_server) -> None:
    env = {"SAFEBROWSE_CONTROL_TOKEN": live_server.control_token}
    base = ["episode", "--control-url", live_server.control_url]
    created = run_cli(*base, "create", "miniwob.click-test", "--seed", "3", "--max-steps", "5", env=env)
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert body["task_id"] == "miniwob.click-test" and body["agent_token"]

    state = run_cli(*base, "state", body["episode_id"], env=env)
    assert state.returncode == 0, state.stderr
    assert json.loads(state.stdout)["status"] == "running"

    closed = run_cli(*base, "close", body["episode_id"], env=env)
    assert closed.returncode == 0, closed.stderr
    assert json.loads(closed.stdout)["status"] == "closed"

    missing = run_cli(*base, "state", "ep_does_not_exist", env=env)
    assert missing.returncode == 1
    assert "episode" in missing.stderr


def test_wrong_control_token_is_refused(live_server) -> None:
    result = run_cli("episode", "--control-url", live_server.control_url, "list",
                     env={"SAFEBROWSE_CONTROL_TOKEN": "wrong"})
    assert result.returncode == 1
    assert "401" in result.stderr or "unauthorized" in result.stderr.lower()


def test_settings_read_a_toml_file_under_env_and_flags(tmp_path: Path, monkeypatch) -> None:
    from safebrowse.settings import ServerSettings

    config = tmp_path / "safebrowse.toml"
    config.write_text('mcp_port = 9100\ncontrol_port = 9101\n[engine]\nworkers = 3\nidle_timeout_s = 60\n')
    monkeypatch.setenv("SAFEBROWSE_CONTROL_PORT", "9201")
    settings = ServerSettings.from_env(config_file=config, mcp_port=9300)
    assert settings.mcp_port == 9300          # flag beats file
    assert settings.control_port == 9201      # environment beats file
    assert settings.engine.workers == 3       # file beats default
    assert settings.engine.idle_timeout_s == 60


def test_rollout_plays_scripted_episodes_and_reports_them(live_server, tmp_path: Path) -> None:
    import re

    env = {"SAFEBROWSE_CONTROL_TOKEN": live_server.control_token}
    raw = tmp_path / "rollout.json"
    tasks = ["miniwob.click-test", "miniwob.enter-text"]
    result = run_cli("rollout", "--control-url", live_server.control_url, "--tasks", ",".join(tasks),
                     "--episodes", "2", "--seed", "7", "--concurrency", "2", "--json", str(raw), "--progress",
                     env=env)
    assert result.returncode == 0, result.stdout + result.stderr

    report = json.loads(raw.read_text())
    episodes = report["episodes"]
    assert [(e["task_id"], e["seed"]) for e in episodes] == [
        ("miniwob.click-test", 7), ("miniwob.enter-text", 7), ("miniwob.click-test", 8), ("miniwob.enter-text", 8)]
    assert all(e["error"] is None and e["episode_id"] and e["actions"] >= 1 for e in episodes)
    assert len({e["episode_id"] for e in episodes}) == 4
    for task in tasks:
        mine = [e for e in episodes if e["task_id"] == task]
        summary = report["summary"][task]
        assert summary["episodes"] == summary["completed"] == 2 and summary["errors"] == 0
        assert summary["successes"] == sum(e["success"] for e in mine)
        assert summary["reset_ms_median"] > 0 and summary["step_ms_median"] > 0
        # The printed table says what the file says.
        row = re.search(rf"^{re.escape(task)}\s+2\s+0\s+{summary['successes']}/2 ", result.stdout, re.MULTILINE)
        assert row, result.stdout
    assert report["summary"]["overall"]["successes"] == sum(e["success"] for e in episodes)
    # The scripted policies solve these two tasks.
    assert report["summary"]["overall"]["successes"] == 4
    assert re.search(r"^overall\s+4\s+0\s+4/4 \(100%\)", result.stdout, re.MULTILINE), result.stdout

    # Forced on a pipe: tqdm frames on stderr, the last one the finished run; none on stdout.
    frames = re.findall(r"rollout: +(\d+)%\|[^|]*\| ([0-4])/4 ", result.stderr)
    assert frames and frames[-1] == ("100", "4"), result.stderr
    assert "%|" not in result.stdout

    # Left to itself on a pipe, it stays quiet.
    quiet = run_cli("rollout", "--control-url", live_server.control_url, "--tasks", "miniwob.click-test", env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert "%|" not in quiet.stderr and re.search(r"^overall\s+1\s+0\s+1/1", quiet.stdout, re.MULTILINE)


def test_rollout_refuses_tasks_without_a_scripted_policy() -> None:
    result = run_cli("rollout", "--control-url", "http://127.0.0.1:9",
                     "--tasks", "miniwob.click-test,miniwob.book-flight", env={"SAFEBROWSE_CONTROL_TOKEN": "unused"})
    assert result.returncode == 2
    assert "no scripted policy for miniwob.book-flight" in result.stderr
    assert "miniwob.enter-text" in result.stderr  # the ones that have one are listed


def test_serve_that_cannot_start_its_browsers_says_so_in_one_line(tmp_path: Path) -> None:
    from support.process import refused_serve

    result = refused_serve(tmp_path / "data", env={"SAFEBROWSE_CHROMIUM": "/nonexistent/chromium"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == "safebrowse: Chromium not found at '/nonexistent/chromium'"

