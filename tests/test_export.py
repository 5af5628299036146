"""Recorded episodes become training data: `safebrowse export` and `GET /v1/export`.

Episodes are played through the real doors (the control API over HTTP, the agent over
MCP), the export is written by the real command from the server's data dir while the
server keeps running, and the rows are loaded with Hugging Face `datasets`, as a
trainer would load them for SFT.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import pytest

from support.agent import connect, play
from support.control import Control
from support.live import LiveServer

SAFEBROWSE = str(Path(sys.executable).with_name("safebrowse"))
WEIGHTS = {"step_penalty": 0.25, "success_reward": 2.0}


@dataclass
class Played:
    """Two episodes of click-test: one solved after an observe, one that never got going."""

    since: float
    solved: str
    unsolved: str
    seen: list[tuple[str, dict[str, Any], str]]
    """What the solving agent sent and received: (tool, arguments, the text of the result)."""
    returns: dict[str, float]
    data_dir: Path


@pytest.fixture(scope="module")
def played(live_server: LiveServer) -> Iterator[Played]:
    control = Control(live_server)
    since = time.time()
    solved = control.create("miniwob.click-test", seed=11, reward_weights=WEIGHTS)
    unsolved = control.create("miniwob.click-test", seed=12)

    async def solve() -> list[tuple[str, dict[str, Any], str]]:
        seen = []
        async with connect(live_server.mcp_url, solved["agent_token"]) as agent:
            calls: list[tuple[str, dict[str, Any]]] = [("observe", {}), ("click", {"id": "99999"})]
            for tool, arguments in calls:
                result = await agent.call(tool, arguments)
                seen.append((tool, arguments, result.content[0].text))
            button = agent.find("button")
            result = await agent.call("click", {"id": button["id"]})
            seen.append(("click", {"id": button["id"]}, result.content[0].text))
        return seen

    async def idle() -> None:
        async with connect(live_server.mcp_url, unsolved["agent_token"]) as agent:
            await agent.call("noop", {"wait_ms": 0})

    seen = play(solve())
    play(idle())
    control.http.post(f"/v1/episodes/{unsolved['episode_id']}/end")
    returns = {}
    for episode in (solved, unsolved):
        returns[episode["episode_id"]] = control.trajectory(episode["episode_id"])["cumulative_reward"]
        control.close(episode["episode_id"])
    try:
        yield Played(since, solved["episode_id"], unsolved["episode_id"], seen, returns,
                     live_server.server.settings.data_dir)
    finally:
        control.http.close()


def export(played: Played, tmp_path: Path, *flags: str, name: str = "rows.jsonl") -> subprocess.CompletedProcess[str]:
    out = tmp_path / name
    return subprocess.run(
        [SAFEBROWSE, "export", "--data-dir", str(played.data_dir), "--since", str(played.since), "-o", str(out),
         *flags],
        capture_output=True, text=True, timeout=120,
    )


def present(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages without the keys a message does not have: a loaded table fills those with None."""
    return [{key: value for key, value in message.items() if value is not None} for message in messages]


def load(path: Path, kind: str = "json") -> dict[str, dict[str, Any]]:
    rows = datasets.load_dataset(kind, data_files=str(path), split="train")
    return {row["episode_id"]: row for row in rows}


def test_rows_load_with_datasets_and_carry_what_the_agent_saw(played: Played, tmp_path: Path) -> None:
    result = export(played, tmp_path)
    assert result.returncode == 0, result.stderr
    rows = load(tmp_path / "rows.jsonl")
    assert {played.solved, played.unsolved} <= set(rows)

    row = rows[played.solved]
    assert row["task_id"] == "miniwob.click-test" and row["seed"] == 11
    assert row["success"] is True and row["failure_reason"] == "success"
    # Scored with the weights the trainer chose for this episode, as the control API scores it.
    assert row["return"] == pytest.approx(played.returns[played.solved])
    assert len(row["rewards"]) == row["steps"] == 2
    assert row["rewards"][0]["step_penalty"] == pytest.approx(-WEIGHTS["step_penalty"])

    messages = row["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant", "tool"]
    # The first observe is the opening: the goal and exactly the page the agent read.
    (_, _, first_page) = played.seen[0]
    assert messages[1]["content"] == f"Goal: {row['goal']}\n\n{first_page}"
    for (tool, arguments, text), call, answer in zip(played.seen[1:], messages[2::2], messages[3::2]):
        (tool_call,) = call["tool_calls"]
        assert tool_call["function"]["name"] == tool
        assert json.loads(tool_call["function"]["arguments"]) == arguments
        assert answer["content"] == text and answer["tool_call_id"] == tool_call["id"]
    assert messages[3]["content"].startswith("Error: ")  # the refused click, as the agent read it

    other = rows[played.unsolved]
    assert other["success"] is False and other["failure_reason"] == "client_step_cap"
    assert other["return"] == pytest.approx(played.returns[played.unsolved])


def test_filters_select_by_outcome_task_and_time(played: Played, tmp_path: Path) -> None:
    assert export(played, tmp_path, "--success", name="ok.jsonl").returncode == 0
    assert export(played, tmp_path, "--failed", name="failed.jsonl").returncode == 0
    assert export(played, tmp_path, "--task", "miniwob.enter-text", name="other.jsonl").returncode == 0
    assert export(played, tmp_path, "--until", str(played.since), name="before.jsonl").returncode == 0
    succeeded = load(tmp_path / "ok.jsonl")
    assert played.solved in succeeded and played.unsolved not in succeeded
    assert all(row["success"] for row in succeeded.values())
    failed = load(tmp_path / "failed.jsonl")
    assert played.unsolved in failed and played.solved not in failed
    assert (tmp_path / "other.jsonl").read_text() == ""
    assert (tmp_path / "before.jsonl").read_text() == ""


def test_parquet_holds_the_same_rows(played: Played, tmp_path: Path) -> None:
    assert export(played, tmp_path).returncode == 0
    result = export(played, tmp_path, "--format", "parquet", name="rows.parquet")
    assert result.returncode == 0, result.stderr
    from_json = load(tmp_path / "rows.jsonl")
    from_parquet = load(tmp_path / "rows.parquet", "parquet")
    for episode_id in (played.solved, played.unsolved):
        assert present(from_parquet[episode_id]["messages"]) == present(from_json[episode_id]["messages"])
        assert from_parquet[episode_id]["return"] == pytest.approx(from_json[episode_id]["return"])


def test_the_running_server_streams_the_same_rows(played: Played, live_server: LiveServer, tmp_path: Path) -> None:
    assert export(played, tmp_path).returncode == 0
    from_file = load(tmp_path / "rows.jsonl")
    control = Control(live_server)
    try:
        response = control.http.get("/v1/export", params={"since": played.since})
    finally:
        control.http.close()
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    streamed = {row["episode_id"]: row for row in map(json.loads, response.text.splitlines())}
    for episode_id in (played.solved, played.unsolved):
        assert present(streamed[episode_id]["messages"]) == present(from_file[episode_id]["messages"])
        assert streamed[episode_id]["return"] == pytest.approx(from_file[episode_id]["return"])


def test_bad_requests_get_clear_errors(played: Played, live_server: LiveServer, tmp_path: Path) -> None:
    parquet_to_stdout = subprocess.run(
        [SAFEBROWSE, "export", "--data-dir", str(played.data_dir), "--format", "parquet"],
        capture_output=True, text=True, timeout=60,
    )
    assert parquet_to_stdout.returncode != 0 and "-o FILE" in parquet_to_stdout.stderr
    assert "Traceback" not in parquet_to_stdout.stderr
    missing = subprocess.run(
        [SAFEBROWSE, "export", "--data-dir", str(tmp_path / "nothing-here")],
        capture_output=True, text=True, timeout=60,
    )
    assert missing.returncode != 0 and "Traceback" not in missing.stderr and missing.stderr.strip()
    bad_time = subprocess.run([SAFEBROWSE, "export", "--since", "yesterday-ish"], capture_output=True, text=True,
                              timeout=60)
    assert bad_time.returncode == 2 and "ISO date" in bad_time.stderr
    control = Control(live_server)
    try:
        response = control.http.get("/v1/export", params={"success": "maybe"})
    finally:
        control.http.close()
    assert response.status_code == 422 and response.json()["error"]
