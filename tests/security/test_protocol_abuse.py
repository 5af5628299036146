"""Abuse of the protocol itself: malformed JSON-RPC, unknown methods, wrong HTTP, oversized
bodies, floods on one episode and crowds on the door. Each is refused with a clear status and
body, none is a 5xx or a hang, nothing refused becomes a step, and the door keeps serving."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from mcp_server.limits import DoorLimits

from support.agent import JSON_HEADERS, connect, play, rpc
from support.door import Door


def _headers(token: str, **extra: str) -> dict[str, str]:
    return {**JSON_HEADERS, "Authorization": f"Bearer {token}", **extra}


def _call(name: str, arguments: Any, request_id: int = 1) -> dict[str, Any]:
    return rpc("tools/call", {"name": name, "arguments": arguments}, request_id)


MALFORMED: dict[str, bytes] = {
    "not json": b"{not json",
    "empty body": b"",
    "a bare array": b"[]",
    "a number": b"42",
    "a string": b'"tools/list"',
    "null": b"null",
    "no jsonrpc field": b'{"id": 1, "method": "tools/list"}',
    "jsonrpc 1.0": b'{"jsonrpc": "1.0", "id": 1, "method": "tools/list"}',
    "method not a string": b'{"jsonrpc": "2.0", "id": 1, "method": 5}',
    "id an object": b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "tools/list"}',
    "a batch": json.dumps([rpc("tools/list"), rpc("tools/list", request_id=2)]).encode(),
    "deep nesting": b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":' + b"[" * 200_000 + b"]" * 200_000 + b"}",
    "duplicate keys": b'{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"nope/nope"}',
}
# Well-formed JSON-RPC that asks for something that is not there: answered in-protocol.
UNKNOWN: dict[str, dict[str, Any]] = {
    "unknown method": rpc("nope/nothing"),
    "sampling from the server": rpc("sampling/createMessage", {"messages": [], "maxTokens": 1}),
    "logging level": rpc("logging/setLevel", {"level": "debug"}),
    "arguments not an object": _call("observe", "x"),
    "arguments a list": _call("click", ["1"]),
    "no tool name": rpc("tools/call", {"arguments": {}}),
    "unknown tool": _call("evaluate", {"script": "document.cookie"}),
    "read a file resource": rpc("resources/read", {"uri": "file:///etc/passwd"}),
    "read a page resource": rpc("resources/read", {"uri": "http://127.0.0.1:1/"}),
    "prompt": rpc("prompts/get", {"name": "system"}),
    "complete": rpc("completion/complete", {"ref": {"type": "ref/prompt", "name": "x"},
                                            "argument": {"name": "a", "value": "b"}}),
}


@pytest.fixture
def forms(sec, episodes) -> dict[str, Any]:
    return episodes("custom.sec-forms", max_invalid_actions=1_000, max_steps=1_000, max_repeated_actions=1_000)


def assert_still_serving(sec, token: str) -> None:
    async def look() -> dict[str, Any]:
        async with connect(sec.mcp_url, token) as client:
            return (await client.act("observe", {})).structured_content

    assert play(look())["episode_over"] is False
    assert httpx.get(sec.live.control_url + "/v1/health", timeout=30).status_code == 200


def test_malformed_messages_are_refused_as_parse_or_request_errors(sec, forms):
    headers = _headers(forms["agent_token"])
    for name, body in MALFORMED.items():
        response = httpx.post(sec.mcp_url, content=body, headers=headers, timeout=60)
        if response.status_code == 202:
            # An id that is not a string or number makes the message a notification: accepted, ignored.
            assert name == "id an object" and response.content == b"", (name, response.text)
            continue
        assert 400 <= response.status_code < 500 or (name == "duplicate keys" and response.status_code == 200), \
            (name, response.status_code, response.text[:300])
        error = response.json()["error"]
        assert error["code"] in (-32700, -32600, -32602, -32601), (name, error)
    assert sec.control.state(forms["episode_id"])["step_index"] == 0
    assert_still_serving(sec, forms["agent_token"])


def test_unknown_methods_and_bad_calls_are_answered_in_protocol(sec, forms):
    headers = _headers(forms["agent_token"])
    for name, message in UNKNOWN.items():
        response = httpx.post(sec.mcp_url, json=message, headers=headers, timeout=60)
        assert response.status_code < 500, (name, response.status_code, response.text[:300])
        body = response.json()
        if "error" in body:
            assert body["error"]["code"] <= 0 and body["error"]["message"], (name, body)
        else:
            assert body["result"]["isError"] is True, (name, body)  # a tool error, e.g. unknown tool
        assert "root:" not in response.text
    assert sec.control.state(forms["episode_id"])["step_index"] == 0
    assert_still_serving(sec, forms["agent_token"])


def test_wrong_http_is_refused(sec, forms):
    token = forms["agent_token"]
    list_tools = json.dumps(rpc("tools/list"))
    answers = {
        "GET opens no stream": httpx.get(sec.mcp_url, headers=_headers(token), timeout=10),
        "GET for events": httpx.get(sec.mcp_url, headers=_headers(token, Accept="text/event-stream"), timeout=10),
        "PUT": httpx.put(sec.mcp_url, content=list_tools, headers=_headers(token), timeout=10),
        "PATCH": httpx.patch(sec.mcp_url, content=list_tools, headers=_headers(token), timeout=10),
        "text/plain": httpx.post(sec.mcp_url, content=list_tools,
                                 headers=_headers(token, **{"Content-Type": "text/plain"}), timeout=10),
        "form": httpx.post(sec.mcp_url, data={"jsonrpc": "2.0"}, headers={"Authorization": f"Bearer {token}"},
                           timeout=10),
        "5 MB body": httpx.post(sec.mcp_url, content=b'{"jsonrpc":"2.0","id":1,"method":"tools/list","x":"'
                                + b"x" * 5_000_000 + b'"}', headers=_headers(token), timeout=60),
    }
    for name, response in answers.items():
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:200])
    assert answers["GET opens no stream"].status_code == 405
    assert answers["GET opens no stream"].json()["error"] == "method_not_allowed"
    assert answers["5 MB body"].status_code == 413
    # DELETE ends a session on a stateful server; here there is none, and the token stays valid.
    deleted = httpx.delete(sec.mcp_url, headers=_headers(token), timeout=10)
    assert deleted.status_code < 500
    assert sec.control.state(forms["episode_id"])["step_index"] == 0
    assert_still_serving(sec, token)


async def _flood(url: str, token: str, messages: list[dict[str, Any]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(messages), max_keepalive_connections=len(messages))
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(*(client.post(url, json=m, headers=_headers(token)) for m in messages))


def test_a_flood_on_one_episode_is_rate_limited_and_others_are_not(sec, episodes):
    door = Door(sec.live, DoorLimits(requests_per_second=4, burst=10, max_in_flight_per_episode=1_000,
                                     max_in_flight=1_000))
    try:
        flooder = episodes("custom.sec-forms")
        bystander = episodes("custom.sec-forms")
        responses = play(_flood(door.url, flooder["agent_token"], [rpc("tools/list", request_id=i)
                                                                     for i in range(80)]))
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 429}, statuses
        refused = [r for r in responses if r.status_code == 429]
        # The burst, plus what the bucket refilled while the flood arrived (well under 8 s of it).
        assert 10 <= statuses.count(200) <= 40 and len(refused) >= 40, statuses
        for response in refused:
            assert response.json()["error"] == "rate_limited"
            assert int(response.headers["retry-after"]) >= 1
        # The bystander's own bucket is untouched.
        assert httpx.post(door.url, json=rpc("tools/list"), headers=_headers(bystander["agent_token"]),
                          timeout=30).status_code == 200

        async def later() -> bool:
            await asyncio.sleep(1.5)
            async with connect(door.url, flooder["agent_token"]) as client:
                return (await client.act("observe", {})).structured_content["episode_over"]

        assert play(later()) is False  # the rate refills; the flooder's agent works again
    finally:
        door.stop()
    assert sec.control.state(flooder["episode_id"])["step_index"] == 0


def test_calls_in_flight_per_episode_are_bounded_and_refused_calls_are_not_steps(sec, episodes):
    door = Door(sec.live, DoorLimits(requests_per_second=1_000, burst=1_000, max_in_flight_per_episode=2,
                                     max_in_flight=1_000))
    try:
        episode = episodes("custom.sec-forms", max_repeated_actions=100)
        responses = play(_flood(door.url, episode["agent_token"],
                                [_call("noop", {"wait_ms": 700}, request_id=i) for i in range(12)]))
    finally:
        door.stop()
    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(admitted) + len(refused) == len(responses), [r.status_code for r in responses]
    assert 2 <= len(admitted) < len(responses) and refused
    assert all(r.json()["error"] == "too_many_requests" for r in refused)
    steps = sec.control.trajectory(episode["episode_id"])["steps"]
    assert len(steps) == len(admitted)  # a refused request never reached the tools
    assert all(step["tool"] == "noop" and step["valid"] for step in steps)


def test_the_door_refuses_a_crowd_beyond_its_capacity(sec, episodes):
    door = Door(sec.live, DoorLimits(max_in_flight=3))
    holders = [episodes("custom.sec-forms") for _ in range(3)]
    late = episodes("custom.sec-forms")

    async def crowd() -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with httpx.AsyncClient(timeout=60) as client:
            held = [asyncio.create_task(client.post(door.url, json=_call("noop", {"wait_ms": 3_000}),
                                                    headers=_headers(h["agent_token"]))) for h in holders]
            await asyncio.sleep(1.0)
            probes = [await client.post(door.url, json=rpc("tools/list"), headers=_headers(late["agent_token"])),
                      await client.post(door.url, json=rpc("tools/list"), headers=JSON_HEADERS)]  # no token at all
            return list(await asyncio.gather(*held)), probes

    try:
        held, probes = play(crowd())
        assert [r.status_code for r in held] == [200, 200, 200]
        for probe in probes:
            assert probe.status_code == 503, probe.text
            assert probe.json()["error"] == "server_busy" and int(probe.headers["retry-after"]) >= 1
        # Once the crowd has gone, the same caller gets in.
        assert httpx.post(door.url, json=rpc("tools/list"), headers=_headers(late["agent_token"]),
                          timeout=30).status_code == 200
    finally:
        door.stop()
    assert sec.control.state(late["episode_id"])["step_index"] == 0


def test_the_default_door_serves_many_agents_at_once(sec, episodes):
    """The default bounds leave room for ordinary use: eight agents, two calls each, all at once."""
    created = [episodes("custom.sec-forms", seed=i) for i in range(8)]

    async def everyone() -> list[list[httpx.Response]]:
        return await asyncio.gather(*(_flood(sec.mcp_url, e["agent_token"],
                                             [_call("noop", {"wait_ms": 0}, 1), rpc("tools/list", request_id=2)])
                                      for e in created))

    for responses in play(everyone()):
        assert [r.status_code for r in responses] == [200, 200]
    assert all(sec.control.state(e["episode_id"])["step_index"] == 1 for e in created)
