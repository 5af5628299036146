"""Suites over streamable HTTP: `POST /v1/suites` hands out one agent token, a real MCP client walks
it through every episode, and `GET /v1/suites/{id}` reports what the room recorded.

The walking agent here (`walk_suite`) is shared with the stdio tests: it is any `mcp.Client`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.types import CallToolResult

from engine.agent_view import EvaluationOverError
from engine.suites import wilson_interval
from safebrowse.client import agent_client
from safebrowse.scripted import by_page, wrong_click

from support.agent import play, text_of
from support.control import PrivateControlServer

NEW_TASK = "A new task has begun"
FORBIDDEN_WORDS = ("reward", "success", "score", "failure", "validator", "task_done", "terminated", "trainer")
AGENT_TOOLS = {
    "observe", "click", "fill", "clear", "press", "select_option", "hover", "scroll", "drag_and_drop",
    "focus", "noop", "send_message", "tab_focus", "go_back", "ask_oracle",
}
# What an agent might try in order to end, skip or restart an episode: none of it exists.
ESCAPE_TOOLS = ("reset", "skip", "next", "next_task", "end", "end_episode", "restart", "finish", "give_up", "done")
MIXED_SUITE = "miniwob.click-test,miniwob.click-button,custom.login-form"
MIXED_ROWS = [("miniwob.click-test", 3, True), ("miniwob.click-test", 4, True), ("miniwob.click-button", 3, True),
              ("miniwob.click-button", 4, False), ("custom.login-form", 3, True), ("custom.login-form", 4, True)]
MIXED_SCORES = [("miniwob.click-test", 2, 2), ("miniwob.click-button", 1, 2), ("custom.login-form", 2, 2)]


@dataclass
class Walk:
    """What the agent did and received."""

    wire: list[dict[str, Any]] = field(default_factory=list)
    goals: list[str] = field(default_factory=list)
    over_texts: list[str] = field(default_factory=list)


def sign_in(page: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """custom.login-form at difficulty "easy": the login and password the goal quotes, then Sign in."""
    login, password = re.findall(r'"([^"]+)"', page["goal"])[:2]

    def field(html_id: str) -> str:
        return str(next(e["id"] for e in page["elements"] if e["attributes"].get("id") == html_id))

    if page["step_index"] == 0:
        return ("fill", {"id": field("login"), "text": login})
    if page["step_index"] == 1:
        return ("fill", {"id": field("password"), "text": password})
    button = next((e for e in page["elements"] if e["role"] == "button" and e["text"].strip() == "Sign in"), None)
    return ("click", {"id": button["id"]}) if button else None


def scripted(page: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The scripted MiniWoB++ policies (`safebrowse.scripted`), and the sign-in form."""
    return sign_in(page) if "login-form" in page["url"] else by_page(page)


def wrong_agent(page: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A deliberately wrong agent: a button the goal did not ask for or, with none, waiting out the budget."""
    return wrong_click(page) or ("noop", {"wait_ms": 0})


def is_click_button(page: dict[str, Any]) -> bool:
    return "/miniwob/click-button.html" in page["url"]


async def walk_suite(client: Client, is_wrong: Callable[[int, dict[str, Any]], bool],
                     leave_at_episode: int | None = None, try_escapes: bool = False) -> Walk:
    """Play the suite: the scripted policy, or a deliberately wrong agent where `is_wrong(index, page)`.

    Stops when every tool says the evaluation is over, or on reaching episode `leave_at_episode`
    (after observing it once), as a client that hangs up mid-suite."""
    walk = Walk()

    async def call(tool: str, arguments: dict[str, Any]) -> CallToolResult:
        result = await client.call_tool(tool, arguments)
        walk.wire.append(result.model_dump(mode="json", by_alias=True, exclude_none=True))
        return result

    listed = {tool.name for tool in (await client.list_tools()).tools}
    assert listed == AGENT_TOOLS
    first = await call("observe", {})
    page: dict[str, Any] = first.structured_content or {}
    index = 0
    walk.goals.append(page["goal"])
    while True:
        if page["episode_over"]:
            after = await call("observe", {})
            if after.is_error:
                assert text_of(after) == EvaluationOverError.MESSAGE
                break
            assert text_of(after).startswith(NEW_TASK), text_of(after)
            page = after.structured_content or {}
            assert page["step_index"] == 0 and not page["episode_over"]
            index += 1
            walk.goals.append(page["goal"])
            assert f"New goal: {page['goal']}" in text_of(after)
            if leave_at_episode == index:
                return walk
            continue
        if try_escapes and page["step_index"] == 0:
            for name in ESCAPE_TOOLS:
                refused = await call(name, {})
                assert refused.is_error and text_of(refused).startswith("Unknown tool")
            still = await call("observe", {})
            assert still.structured_content is not None
            assert still.structured_content["goal"] == page["goal"]
            assert still.structured_content["step_index"] == 0 and not still.structured_content["episode_over"]
        action = wrong_agent(page) if is_wrong(index, page) else scripted(page)
        assert action is not None, page["url"]
        result = await call(*action)
        assert not text_of(result).startswith(NEW_TASK)
        page = result.structured_content or {}
    for name in sorted(AGENT_TOOLS):  # every tool now says the evaluation is over
        over = await call(name, {"id": "1"} if name == "click" else {})
        assert over.is_error
        walk.over_texts.append(text_of(over))
    return walk


def assert_nothing_scored_reached_the_agent(walk: Walk) -> None:
    wire = json.dumps(walk.wire).lower()
    for word in FORBIDDEN_WORDS:
        assert word not in wire, f"{word!r} reached the agent"


def assert_report_matches_the_room(report: dict[str, Any], control: httpx.Client) -> None:
    """Every episode of the report is as the control API shows it, and the figures add up."""
    listed = control.get("/v1/episodes").json()["episodes"]
    in_suite = {summary["episode_id"] for summary in listed if summary.get("suite_id") == report["suite_id"]}
    assert in_suite == {row["episode_id"] for row in report["episodes"] if row["episode_id"]}
    for row in report["episodes"]:
        state = control.get(f"/v1/episodes/{row['episode_id']}").json()
        assert (state["task_id"], state["seed"]) == (row["task_id"], row["seed"])
        assert state["success"] == row["success"]
        assert state["failure_reason"] == row["failure_reason"]
        assert state["step_index"] == row["steps"]
        assert math.isclose(state["cumulative_reward"], row["return"], abs_tol=1e-6)
    for score in report["per_task"]:
        rows = [row for row in report["episodes"] if row["task_id"] == score["task_id"] and row["ended"]]
        assert score["episodes"] == len(rows)
        assert score["successes"] == sum(row["success"] for row in rows)
        low, high = wilson_interval(score["successes"], score["episodes"])
        assert (score["ci95_low"], score["ci95_high"]) == (round(low, 4), round(high, 4))
    assert report["overall"]["successes"] == sum(row["success"] for row in report["episodes"] if row["ended"])


@pytest.mark.slow
def test_http_suite_walks_a_scripted_and_a_wrong_agent_and_reports_what_the_room_recorded(live_server):
    with httpx.Client(base_url=live_server.control_url, headers=live_server.control_headers, timeout=120) as control:
        response = control.post("/v1/suites", json={"suite": MIXED_SUITE, "episodes": 2, "seed": 3,
                                                        "max_steps": 4, "difficulty": "easy"})
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["planned_episodes"] == 6 and created["tasks"] == MIXED_SUITE.split(",")

        async def agent() -> Walk:
            async with agent_client(created["mcp_url"], created["agent_token"]) as client:
                # Wrong on the second click-button episode only: it earns exactly that failure.
                return await walk_suite(client, is_wrong=lambda index, page: index == 3 and is_click_button(page),
                                        try_escapes=True)

        walk = play(agent())
        report = control.get(created["report_url"]).json()
    assert len(walk.goals) == 6
    assert set(walk.over_texts) == {EvaluationOverError.MESSAGE}
    assert_nothing_scored_reached_the_agent(walk)
    assert report["complete"] is True and report["incomplete_reason"] is None
    assert [(row["task_id"], row["seed"], row["success"]) for row in report["episodes"]] == MIXED_ROWS
    assert report["episodes"][3]["failure_reason"] != "none"
    assert [(s["task_id"], s["successes"], s["episodes"]) for s in report["per_task"]] == MIXED_SCORES
    assert report["overall"]["successes"] == 5 and report["overall"]["episodes"] == 6
    with httpx.Client(base_url=live_server.control_url, headers=live_server.control_headers, timeout=120) as control:
        assert_report_matches_the_room(report, control)


@pytest.mark.slow
def test_http_suite_left_mid_way_reports_what_was_done_as_incomplete(live_server):
    with httpx.Client(base_url=live_server.control_url, headers=live_server.control_headers, timeout=120) as control:
        created = control.post("/v1/suites", json={"suite": "miniwob.click-test", "episodes": 3}).json()

        async def agent() -> Walk:
            async with agent_client(created["mcp_url"], created["agent_token"]) as client:
                return await walk_suite(client, is_wrong=lambda index, page: False, leave_at_episode=1)

        walk = play(agent())
        report = control.get(created["report_url"]).json()
        assert_report_matches_the_room(report, control)
    assert_nothing_scored_reached_the_agent(walk)
    assert report["complete"] is False and report["planned_episodes"] == 3
    assert [(row["success"], row["ended"]) for row in report["episodes"]] == [(True, True), (False, False)]
    assert report["overall"]["episodes"] == 1 and report["overall"]["successes"] == 1


def test_suite_requests_are_checked_before_anything_starts(live_server):
    with httpx.Client(base_url=live_server.control_url, headers=live_server.control_headers, timeout=60) as control:
        unknown = control.post("/v1/suites", json={"suite": "miniwob.click-test,miniwob.click-tets"})
        assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_task"
        assert "miniwob.click-test" in unknown.json()["suggestions"]
        too_many = control.post("/v1/suites", json={"suite": "smoke", "episodes": 101})
        assert too_many.status_code == 422
        assert control.get("/v1/suites/su_nothing").status_code == 404
        assert control.post("/v1/suites", json={"suite": "smoke"}, headers={"Authorization": "Bearer x"}
                            ).status_code == 401


def test_a_room_without_suites_answers_501():
    """A control API given no suite desk (a cluster's front) refuses suites plainly."""
    server = PrivateControlServer("suites-501")
    try:
        response = server.control.http.post("/v1/suites", json={"suite": "smoke"})
        assert response.status_code == 501 and response.json()["error"] == "suites_not_supported"
        assert server.control.http.get("/v1/suites/su_x").status_code == 501
    finally:
        server.stop()
