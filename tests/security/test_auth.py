"""Who may do what: agent tokens open one episode's tools and nothing else; the control token
opens the trainer's door and never shows up where an agent or a log could read it."""

from __future__ import annotations

import base64
import logging
import os
from typing import Any

import httpx
import pytest

from control_api.routes import OPERATIONS

from support.agent import INITIALIZE, JSON_HEADERS, connect, play, rpc


def _mcp_post(sec, token: str | None, body: dict[str, Any] | None = None, path: str = "/mcp") -> httpx.Response:
    headers = dict(JSON_HEADERS)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    base = sec.mcp_url.removesuffix("/mcp")
    return httpx.post(base + path, json=body or INITIALIZE, headers=headers, timeout=60)


def _control_routes(episode_id: str) -> list[tuple[str, str]]:
    return [(operation.method, operation.path.replace("{episode_id}", episode_id)) for operation in OPERATIONS]


def test_agent_tokens_are_unguessable_and_distinct(sec, episodes):
    created = [episodes("custom.sec-forms", seed=1) for _ in range(6)]
    tokens = [episode["agent_token"] for episode in created]
    assert len(set(tokens)) == len(tokens)
    for episode in created:
        token = episode["agent_token"]
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert len(raw) * 8 >= 128, token  # at least 128 bits from the OS's random source
        assert episode["episode_id"] not in token and episode["episode_id"].removeprefix("ep_") not in token
        assert token != sec.live.control_token and token not in sec.live.control_token
    # Independent draws: no two tokens share a prefix or suffix longer than chance allows.
    for i, first in enumerate(tokens):
        for second in tokens[i + 1:]:
            assert os.path.commonprefix([first, second]).__len__() < 6
            assert os.path.commonprefix([first[::-1], second[::-1]]).__len__() < 6


def test_a_token_acts_on_its_own_episode_only(sec, episodes):
    mine = episodes("custom.sec-forms", seed=5)
    other = episodes("custom.sec-forms", seed=5)

    async def act() -> None:
        async with connect(sec.mcp_url, mine["agent_token"]) as client:
            await client.act("observe", {})
            await client.act("fill", {"id": client.id_of("answer"), "text": "mine only"})
            refused = await client.call("noop", {"wait_ms": 0, "episode_id": other["episode_id"]})
            assert refused.is_error and "Extra inputs are not permitted" in refused.content[0].text

    play(act())
    assert sec.control.state(mine["episode_id"])["step_index"] == 2
    assert sec.control.state(other["episode_id"])["step_index"] == 0
    assert sec.control.trajectory(other["episode_id"])["steps"] == []


def test_an_agent_token_opens_nothing_on_the_control_port(sec, episodes):
    episode = episodes("custom.sec-forms")
    headers = {"Authorization": f"Bearer {episode['agent_token']}"}
    with httpx.Client(base_url=sec.live.control_url, headers=headers, timeout=60) as client:
        for method, path in _control_routes(episode["episode_id"]):
            response = client.request(method, path, json={"task_id": "custom.sec-forms"} if method == "POST" else None)
            if path == "/v1/health":
                assert response.status_code == 200  # the one open route; it says nothing about episodes
                assert set(response.json()) == {"status", "version"}
                continue
            assert response.status_code == 401, (method, path, response.text)
            assert episode["agent_token"] not in response.text
    assert sec.control.state(episode["episode_id"])["status"] == "running"


def test_a_closed_episode_token_is_refused_and_an_ended_one_learns_nothing(sec, episodes):
    ended = episodes("custom.sec-forms")
    closed = episodes("custom.sec-forms")
    assert _mcp_post(sec, closed["agent_token"]).status_code == 200
    sec.control.close(closed["episode_id"])
    response = _mcp_post(sec, closed["agent_token"])
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    assert closed["agent_token"] not in response.text

    assert sec.control.http.post(f"/v1/episodes/{ended['episode_id']}/end").status_code == 200

    async def after_end() -> list[str]:
        async with connect(sec.mcp_url, ended["agent_token"]) as client:
            return [(await client.call(tool, arguments)).content[0].text
                    for tool, arguments in (("observe", {}), ("noop", {}), ("click", {"id": "1"}))]

    answers = play(after_end())
    assert len(set(answers)) == 1 and "over" in answers[0]
    assert "client_step_cap" not in answers[0] and "trainer" not in answers[0].lower()


def test_the_control_token_opens_nothing_on_the_mcp_port(sec, episodes):
    episode = episodes("custom.sec-forms")
    control_token = sec.live.control_token
    response = _mcp_post(sec, control_token)
    assert response.status_code == 401 and control_token not in response.text
    for token in (control_token, episode["agent_token"], None):
        for method, path in _control_routes(episode["episode_id"]):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = httpx.request(method, sec.mcp_url.removesuffix("/mcp") + path, headers=headers, timeout=60)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"] == "not_found"
    assert sec.control.state(episode["episode_id"])["step_index"] == 0


def test_tokens_never_reach_logs_errors_or_agents(sec, caplog):
    caplog.set_level(logging.DEBUG)
    control_token = sec.live.control_token
    episode = sec.control.create("custom.sec-forms", max_invalid_actions=100)
    token = episode["agent_token"]
    seen: list[str] = []

    async def use() -> str:
        async with connect(sec.mcp_url, token) as client:
            await client.act("observe", {})
            await client.call("click", {"id": "9999999"})
            await client.call("fill", {"id": "x", "text": "y"})
            await client.call("press", {"key": "NotAKey"})
            await client.call("send_message", {"text": "x" * 5_000})
            return client.wire()

    wire = play(use())
    http = sec.control.http
    wrong = control_token[:-1] + ("A" if control_token[-1] != "A" else "B")
    seen.append(httpx.get(sec.live.control_url + "/v1/episodes", headers={"Authorization": f"Bearer {wrong}"},
                          timeout=60).text)
    seen.append(http.get("/v1/episodes/ep_nope").text)
    seen.append(http.post("/v1/episodes", content=b"{not json").text)
    seen.append(http.post("/v1/episodes", json={"task_id": "custom.sec-forms", "agent_token": token}).text)
    seen.append(_mcp_post(sec, wrong).text)
    seen.append(_mcp_post(sec, token, rpc("tools/call", {"name": "eval", "arguments": {}})).text)
    seen.append(http.get(f"/v1/episodes/{episode['episode_id']}/trajectory").text)
    sec.control.close(episode["episode_id"])
    seen.append(_mcp_post(sec, token).text)

    # No answer, to the trainer or to the agent, carries a token it was not asked for.
    for text in [*seen, wire]:
        assert control_token not in text and wrong not in text and token not in text, text
    # Logged at DEBUG, by the server and by both clients in this process.
    logged = "\n".join(
        f"{record.name} {record.getMessage()} {record.exc_text or ''}" for record in caplog.records)
    assert caplog.records, "the run must have logged something for this test to mean anything"
    assert control_token not in logged
    assert token not in logged
    assert wrong not in logged


@pytest.mark.parametrize("scheme", ["Basic", "bearer", "Token", ""])
def test_only_a_bearer_header_carries_a_token(sec, episodes, scheme):
    episode = episodes("custom.sec-forms")
    header = f"{scheme} {episode['agent_token']}".strip()
    response = httpx.post(sec.mcp_url, json=INITIALIZE, headers={**JSON_HEADERS, "Authorization": header}, timeout=60)
    assert response.status_code == (200 if scheme == "bearer" else 401), (scheme, response.text)
    # A token in the URL or a cookie opens nothing.
    for extra in ({"params": {"token": episode["agent_token"]}},
                  {"cookies": {"token": episode["agent_token"], "Authorization": episode["agent_token"]}}):
        with httpx.Client(timeout=60, **extra) as client:  # type: ignore[arg-type]
            assert client.post(sec.mcp_url, json=INITIALIZE, headers=JSON_HEADERS).status_code == 401
