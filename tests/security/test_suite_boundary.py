"""A suite gives its agent nothing new to pull on: no tool ends, skips or restarts an episode, and
nothing the suite adds to what the agent reads carries a score or says how an episode went.

The suite's port is an `AgentPort` like an episode's, so the door's tool surface is unchanged
(`test_tool_surface`); here the walk itself is checked on the security server: the suite moves
on only after the engine has ended an episode, whatever the agent calls.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.agent_view import EvaluationOverError, Observation, Screen
from engine.suites.session import new_task_text
from mcp_server.tools import build_tools

from support.agent import connect, play, text_of

FORBIDDEN_WORDS = ("reward", "success", "score", "fail", "passed", "correct", "wrong", "verdict", "trainer")
NEW_TASK = "A new task has begun"


def test_what_a_suite_adds_to_the_agent_text_names_no_outcome():
    page = Observation(goal="Click the button.", url="http://127.0.0.1/x", step_index=0, steps_left=5)
    texts = [EvaluationOverError.MESSAGE, new_task_text(2, 9, Screen(observation=page, image_png=None, text="page"))]
    for text in texts:
        for word in FORBIDDEN_WORDS:
            assert word not in text.lower(), (word, text)


def test_no_tool_could_end_skip_or_restart_an_episode():
    for name in build_tools():
        words = set(name.split("_"))
        assert not words & {"reset", "skip", "end", "next", "restart", "finish", "done", "quit", "stop"}, name


@pytest.mark.slow
def test_every_tool_leaves_the_suite_where_it_is_until_the_engine_ends_the_episode(sec):
    http = sec.control.http
    created = http.post("/v1/suites", json={"suite": "miniwob.click-test", "episodes": 2, "max_steps": 30})
    assert created.status_code == 201, created.text
    suite = created.json()
    tools = sorted(build_tools())

    def current() -> dict[str, Any]:
        rows: list[dict[str, Any]] = http.get(suite["report_url"]).json()["episodes"]
        return rows[-1]

    moved_on: list[str] = []

    async def agent() -> list[dict[str, Any]]:
        wire: list[dict[str, Any]] = []
        async with connect(sec.mcp_url, suite["agent_token"]) as door:
            for _round in range(2):
                for name in tools:  # malformed calls: each is a recorded invalid step or refused
                    before = current()
                    result = await door.call(name, {})
                    wire.append(result.model_dump(mode="json"))
                    if text_of(result).startswith(NEW_TASK):
                        # Moved on: only because the engine had ended the episode before this call.
                        ended = http.get(f"/v1/episodes/{before['episode_id']}").json()
                        assert ended["done"] is True and ended["failure_reason"] != "none"
                        moved_on.append(ended["failure_reason"])
                    else:
                        assert current()["episode_id"] == before["episode_id"]
            return wire

    wire = play(agent())
    assert moved_on  # the walk did move on, each time after the engine had ended the episode itself
    text = json.dumps(wire).lower()
    for word in ("reward", "success", "score", "failure"):
        assert word not in text
    report = http.get(suite["report_url"]).json()
    for row in report["episodes"]:
        state = http.get(f"/v1/episodes/{row['episode_id']}").json()
        assert state["done"] is row["ended"]
