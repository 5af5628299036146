"""Hostile argument values: text lands in the page as text, ids are ids, and oversized or
malformed values are refused. Nothing typed ever runs as script.

Every call goes through the SDK's client with the agent token, except the few values the SDK
itself cannot encode (lone surrogates), which are sent as raw JSON-RPC.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from support.agent import JSON_HEADERS, connect, play, rpc

# Text that would do something if it were ever interpreted instead of typed.
HOSTILE_TEXT = [
    "quote ' double \" backtick `",
    "back\\slash \\\\ \\n \\u0000 \\x41",
    "'); window.sbRan.push('quote-breakout'); ('",
    "\"); window.sbRan.push(\"double-breakout\"); (\"",
    "${window.sbRan.push('template')} {{window.sbRan.push('mustache')}} <%= 7*7 %> #{7*7}",
    "<script>window.sbRan.push('script-tag')</script>",
    "<img src=x onerror=\"window.sbRan.push('onerror')\">",
    "\" autofocus onfocus=\"window.sbRan.push('attribute-breakout')\" x=\"",
    "javascript:window.sbRan.push('javascript-url')",
    "WOB_REWARD_GLOBAL = 1; WOB_DONE_GLOBAL = true; core.endEpisode(1)",
    "' OR '1'='1' -- ; DROP TABLE episodes;",
    "nul\x00byte and \x00\x00 more",
    "controls \x01\x02\x07\x08\x1b[31mred\x1b[0m \x7f \x9b",
    "tab\tinside",
    "\u202eright-to-left override\u202c and \u2067isolate\u2069 \u200f",
    "combining e\u0301\u0302\u0303 z\u0336\u0337a\u0338lgo \u0489",
    "zero width \u200b\u200c\u200d\ufeff joiners",
    "astral \U0001d54f \U0001f600 \U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\uffff\ufffe noncharacters \U0010ffff",
    "%00 %0d%0a %2e%2e%2f ../../etc/passwd file:///etc/passwd",
]
# Line breaks: a textarea keeps them (CR LF becomes LF, as HTML says); a one-line input cannot hold them.
LINE_BREAKS = "line one\nline two\r\nline three\rend"
SELECTOR_LIKE_IDS = [
    "#answer", ".masked", "input", "*", "//input[@id='answer']", "/html/body", "xpath=//button",
    "css=button", "text=Submit", "[bid='1']", "1\"], *[bid=\"2", "1' or '1'='1", "1 ", " 1", "1\n", "+1", "-1",
    "1.0", "1e3", "0x1", "\u0661", "\uff11", "12345678", "", "1; alert(1)", "javascript:1", "http://127.0.0.1/",
]
MEGABYTE = "x" * 1_000_000
# One oversized value for every string argument of every tool.
OVERSIZED_CALLS = [
    ("fill", {"id": "1", "text": MEGABYTE}),
    ("send_message", {"text": MEGABYTE}),
    ("ask_oracle", {"question": MEGABYTE}),
    ("press", {"key": MEGABYTE}),
    ("select_option", {"id": "1", "options": [MEGABYTE]}),
    ("select_option", {"id": "1", "options": ["a"] * 100_000}),
    ("click", {"id": MEGABYTE}),
    ("noop", {MEGABYTE: 0}),
    ("noop", {f"extra{i}": i for i in range(50_000)}),
]


def _page_script_state(sec, episode_id: str) -> dict[str, Any]:
    """Read the page from the server side: did anything the agent typed run?"""
    episode = sec.live.manager.get(episode_id)

    def read(_worker: Any) -> dict[str, Any]:
        return episode.browser.active_page().evaluate(
            "() => ({ran: window.sbRan, scripts: document.scripts.length, images: document.images.length,"
            " wob: typeof WOB_REWARD_GLOBAL})")

    return sec.live.run(episode.worker.run(read))


@pytest.fixture
def forms(sec, episodes) -> dict[str, Any]:
    return episodes("custom.sec-forms", max_invalid_actions=1_000, max_steps=1_000, max_repeated_actions=1_000)


def test_hostile_text_lands_literally_and_nothing_runs(sec, forms):
    async def type_all() -> list[tuple[str, str, str | None, str | None]]:
        seen = []
        async with connect(sec.mcp_url, forms["agent_token"]) as client:
            await client.act("observe", {})
            before = _page_script_state(sec, forms["episode_id"])
            for text in HOSTILE_TEXT:
                for field in ("answer", "notes"):
                    await client.act("fill", {"id": client.id_of(field), "text": text})
                    seen.append((field, text, client.element(id=field)["attributes"].get("value"), None))
            await client.act("fill", {"id": client.id_of("notes"), "text": LINE_BREAKS})
            seen.append(("notes", LINE_BREAKS, client.element(id="notes")["attributes"].get("value"), None))
            looked = await client.act("observe", {})
            assert looked.structured_content == client.page
            return seen + [("page", "", None, json.dumps(before))]

    seen = play(type_all())
    before = json.loads(seen.pop()[3])
    for field, text, value, _ in seen:
        expected = text.replace("\r\n", "\n").replace("\r", "\n") if text is LINE_BREAKS else text
        assert value == expected, (field, text, value)
    after = _page_script_state(sec, forms["episode_id"])
    assert after["ran"] == [] and after == before  # no script, no image, no handler was added or ran
    state = sec.control.state(forms["episode_id"])
    assert state["status"] == "running" and state["success"] is False
    assert state["step_index"] == 2 * len(HOSTILE_TEXT) + 1 and state["constraints"]["invalid_actions"] == 0
    steps = sec.control.trajectory(forms["episode_id"])["steps"]
    assert all(step["task_reward"] == 0 and step["valid"] for step in steps)
    # The trajectory records what was sent, as sent.
    assert [step["arguments"]["text"] for step in steps[:-1:2]] == HOSTILE_TEXT


def test_ids_that_look_like_selectors_or_paths_are_refused(sec, forms):
    async def click_all() -> list[Any]:
        async with connect(sec.mcp_url, forms["agent_token"]) as client:
            await client.act("observe", {})
            results = [await client.call("click", {"id": element_id}) for element_id in SELECTOR_LIKE_IDS]
            results.append(await client.call("fill", {"id": "#answer", "text": "x"}))
            results.append(await client.call("drag_and_drop", {"from_id": "//input", "to_id": "*"}))
            results.append(await client.call("press", {"key": "Enter", "id": "body"}))
            return results

    results = play(click_all())
    for argument, result in zip([*SELECTOR_LIKE_IDS, "#answer", "//input", "body"], results):
        text = result.content[0].text
        assert result.is_error, argument
        # Refused by the schema, or (for 8-digit and other well-formed ids) not on the page.
        assert "Invalid arguments" in text or "is not on the current page" in text, (argument, text)
    steps = sec.control.trajectory(forms["episode_id"])["steps"]
    assert len(steps) == len(results) and not any(step["valid"] for step in steps)
    assert all(step["error_kind"] == "invalid" for step in steps)
    assert _page_script_state(sec, forms["episode_id"])["ran"] == []
    assert sec.control.state(forms["episode_id"])["status"] == "running"


def test_oversized_values_are_refused_with_a_short_answer(sec, forms):
    async def send_all() -> list[Any]:
        async with connect(sec.mcp_url, forms["agent_token"]) as client:
            results = [await client.call(tool, arguments) for tool, arguments in OVERSIZED_CALLS]
            await client.act("observe", {})  # the episode still answers
            return results

    results = play(send_all())
    for (tool, _arguments), result in zip(OVERSIZED_CALLS, results):
        text = result.content[0].text
        assert result.is_error and "Invalid arguments" in text, (tool, text[:200])
        # The answer names the problem without echoing a megabyte back.
        assert len(text) < 20_000, (tool, len(text))
    steps = sec.control.trajectory(forms["episode_id"])["steps"]
    assert [step["tool"] for step in steps] == [tool for tool, _ in OVERSIZED_CALLS]
    for step in steps:
        assert not step["valid"] and step["task_reward"] == 0
        assert len(json.dumps(step)) < 40_000  # records keep a bounded excerpt of what was sent
    assert sec.control.state(forms["episode_id"])["status"] == "running"


def test_values_json_cannot_carry_are_refused_as_parse_errors(sec, forms):
    """Lone surrogates are not text: the SDK's client cannot even send them, so raw JSON-RPC does."""
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {forms['agent_token']}"}
    bodies = [
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fill","arguments":{"id":"1","text":"a\\ud800b"}}}',
        '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"send_message","arguments":{"text":"\\udfff"}}}',
        '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"click","arguments":{"id":"\\ud83d"}}}',
    ]
    for body in bodies:
        response = httpx.post(sec.mcp_url, content=body.encode(), headers=headers, timeout=60)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == -32700  # parse error, before any tool ran
    # Invalid UTF-8 on the wire is refused the same way.
    response = httpx.post(sec.mcp_url, content=b'{"jsonrpc":"2.0","id":4,"method":"tools/list","x":"\xff\xfe"}',
                          headers=headers, timeout=60)
    assert response.status_code == 400 and response.json()["error"]["code"] == -32700
    assert sec.control.state(forms["episode_id"])["step_index"] == 0
    ok = httpx.post(sec.mcp_url, json=rpc("tools/call", {"name": "observe", "arguments": {}}), headers=headers,
                    timeout=60)
    assert ok.status_code == 200 and ok.json()["result"]["isError"] is False
