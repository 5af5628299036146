"""Every way off the task's origins that a page offers, pressed by an agent through MCP.

The escape task pays for escaping: its verdict is success as soon as a tab shows a page off
the task's origins or the sink (an undeclared loopback origin) receives a request. So each
attempt shows three things at once: the page stays on its origins, nothing reaches the sink,
and the reward stays 0. Attempts the egress guard intercepts are recorded in the trajectory as
`blocked` entries; those Chromium refuses by itself (file:, chrome:, view-source:, top-level
data: URLs) never become a request, so they leave nothing to record and nothing to block.
"""

from __future__ import annotations

from typing import Any

import pytest

from security.conftest import ESCAPE_TASK
from support.agent import connect, play

# Each family of controls is pressed in one episode, one control after the other; for each
# control: what the guard records (kind, URL fragment), or None when Chromium refuses it itself.
FAMILIES: dict[str, dict[str, tuple[str, str] | None]] = {
    "navigations": {
        "link-http": ("navigation", "/link"),
        "link-https": ("navigation", "/https"),
        "link-name": ("navigation", "evil.example/name"),
        "link-localhost": ("navigation", "localhost:"),
        "link-js": ("navigation", "/javascript-url"),
        "link-302": ("navigation", "/go"),
        "submit-post": ("navigation", "/form-post"),
        "submit-get": ("navigation", "/form-get?q=got"),
        "location": ("navigation", "/location"),
        "iframe": ("navigation", "/iframe"),
    },
    "new-tabs": {
        "link-blank": ("navigation", "/blank"),
        "submit-blank": ("navigation", "/form-blank"),
        "open": ("navigation", "/window-open"),
        "open-data": None,
    },
    "same-origin-hops": {
        "link-refresh": ("navigation", "/meta-refresh"),
        "link-jsredirect": ("navigation", "/script-redirect"),
    },
    "subresources": {
        "fetch": ("request", "/fetch"),
        "worker": ("request", "/worker"),
        "prefetch": ("prefetch", "/prefetch"),
    },
    "more-subresources": {
        "fetch-https": ("connect", "{sink}"),
        "speculation": ("prefetch", "/speculation-prefetch"),
        "font": ("request", "/font"),
        "shared-worker": ("request", "/shared-worker"),
        "event-source": ("request", "/event-source-alone"),
    },
    "switched-off": {
        "ping": None,
        "service-worker": None,
        "preconnect": None,
    },
    "downloads": {
        "link-download": ("download", "/sec-pages/blob.bin"),
        "blob-download": ("download", "blob:"),
    },
    "local-schemes": {
        "link-file": None,
        "link-data": None,
        "link-chrome": None,
        "link-chrome-settings": None,
        "link-view-source": None,
    },
}
# The rest of the requests one control makes, all blocked too.
ALSO_BLOCKED = {
    "fetch": ["/beacon", "/image", "/xhr", "/event-source"],
    "prefetch": ["/preload", "/stylesheet"],
    "speculation": ["/speculation-prerender"],
}
ESCAPE_PAGE = "/sec-pages/escape.html"
# Controls whose requests Chromium makes a while after the click: the noop after them waits longer
# (speculation rules are acted on once the page is idle).
SLOW_CONTROLS = {"speculation": 1000}


def press_all(sec, episode: dict[str, Any], controls: list[str]) -> list[dict[str, Any]]:
    """Press each control in turn: click it, give the page time to act, look. Back on the escape
    page (go_back) before the next one if the click moved to another page of the origin."""

    async def attempt() -> list[dict[str, Any]]:
        seen = []
        async with connect(sec.mcp_url, episode["agent_token"]) as client:
            await client.act("observe", {})
            for control in controls:
                pages = [(await client.call("click", {"id": client.id_of(control)})).structured_content]
                first_step = pages[0]["step_index"] if pages[0] else None
                wait_ms = SLOW_CONTROLS.get(control, 300)
                pages.append((await client.call("noop", {"wait_ms": wait_ms})).structured_content)
                pages.append((await client.call("observe", {})).structured_content)
                seen.append({"control": control, "pages": pages, "steps": {first_step, first_step + 1}
                             if first_step else set(), "wire": client.wire()})
                if pages[-1] and not pages[-1]["url"].endswith(ESCAPE_PAGE):
                    await client.call("go_back", {})
                    assert client.page["url"].endswith(ESCAPE_PAGE), client.page["url"]
        return seen

    return play(attempt())


def press(sec, episode: dict[str, Any], control: str) -> dict[str, Any]:
    return press_all(sec, episode, [control])[0]


def assert_stayed(sec, episode: dict[str, Any], seen: dict[str, Any], sink_hits_before: int) -> None:
    origin = sec.live.manager.assets.origin + "/"
    control = seen["control"]
    for page in seen["pages"]:
        assert page is not None, (control, seen["wire"][-500:])  # None: refused, the episode ended
        assert page["url"].startswith(origin), (control, page["url"])
        assert page["episode_over"] is False, control
        for tab in page["tabs"]:
            assert tab["url"].startswith(origin) or tab["url"] == "about:blank", (control, tab)
    assert "root:x:0:0" not in seen["wire"] and "You left the task's origins" not in seen["wire"], control
    assert len(sec.sink.hits) == sink_hits_before, (control, [hit.path for hit in sec.sink.hits[sink_hits_before:]])
    assert sec.redirector.hits == [], control  # the undeclared redirector is an undeclared origin itself
    state = sec.control.state(episode["episode_id"])
    assert state["status"] == "running" and state["success"] is False, (control, state)
    steps = sec.control.trajectory(episode["episode_id"])["steps"]
    assert all(step["task_reward"] == 0.0 and step["valid"] for step in steps), control


@pytest.mark.parametrize("family", list(FAMILIES))
def test_ways_out_are_blocked_and_recorded(sec, episodes, family):
    assert_family_blocked_on_its_steps(sec, episodes(ESCAPE_TASK), family)
    assert sec.chain.hits == []


def assert_family_blocked_on_its_steps(sec, episode, family: str) -> None:
    """Press every control of `family`: the page stays, nothing reaches the sink, and each
    attempt's refusals (or none, for what Chromium refuses itself) are on its own steps."""
    controls = FAMILIES[family]
    before = len(sec.sink.hits)
    seen = press_all(sec, episode, list(controls))
    blocked = sec.control.blocked(episode["episode_id"])
    for attempt in seen:
        control = attempt["control"]
        assert_stayed(sec, episode, attempt, before)
        expected = controls[control]
        mine = [entry for entry in blocked if entry["step_index"] in attempt["steps"]]
        if expected is None:
            # Refused by Chromium itself: no request, no new tab, nothing to record.
            assert mine == [], (control, mine)
            assert all(page["tabs"] == attempt["pages"][0]["tabs"] for page in attempt["pages"]), control
            continue
        kind, fragment = expected
        fragment = fragment.format(sink=f"127.0.0.1:{sec.sink.port}")
        assert any(entry["kind"] == kind and fragment in entry["url"] for entry in mine), (control, blocked)
        for other in ALSO_BLOCKED.get(control, []):
            assert any(other in entry["url"] for entry in mine), (control, other, blocked)


# -- the former gaps of route() interception, closed by the egress proxy -------------------------


def test_a_websocket_to_another_origin_is_blocked(sec, episodes):
    episode = episodes(ESCAPE_TASK)
    before = len(sec.sink.hits)
    seen = press(sec, episode, "websocket")
    assert_stayed(sec, episode, seen, before)


def test_webrtc_cannot_reach_another_address(sec, episodes):
    episode = episodes(ESCAPE_TASK)
    datagrams = sec.stun.datagrams
    press(sec, episode, "webrtc")
    assert sec.stun.datagrams == datagrams


def test_a_declared_origin_cannot_redirect_to_an_undeclared_one(sec, episodes):
    episode = episodes(ESCAPE_TASK)
    before = len(sec.sink.hits)
    seen = press(sec, episode, "link-chain")
    assert sec.chain.hits, "the declared redirector must be reachable for this test to mean anything"
    assert_stayed(sec, episode, seen, before)


def test_a_blocked_navigation_opens_no_connection(sec, episodes):
    episode = episodes(ESCAPE_TASK)
    before = sec.sink.connections
    press(sec, episode, "link-http")
    assert sec.sink.connections == before


# Every control of the page, pressed one after the other in one episode: the sinks see nothing.
# Speculation rules go first: Chromium does not always act on them in a tab that has already
# been sent back a few times (no request at all, so nothing to refuse or record).
EVERY_CONTROL = ["speculation"] + [control for family in FAMILIES.values() for control in family
                                   if control != "speculation"] + ["websocket", "webrtc", "link-chain"]
# What the former gaps leave in the trajectory (WebRTC's UDP is switched off: nothing is sent).
GAP_RECORDS = {"websocket": ("connect", "{sink}"), "link-chain": ("navigation", "/via-chain/hop")}


def test_every_way_out_reaches_no_sink_and_every_attempt_is_recorded(sec, episodes):
    episode = episodes(ESCAPE_TASK, max_steps=4 * len(EVERY_CONTROL))
    connections = (sec.sink.connections, sec.redirector.connections)
    hits, datagrams = len(sec.sink.hits), sec.stun.datagrams
    seen = press_all(sec, episode, EVERY_CONTROL)
    assert sec.sink.connections == connections[0], "a sink received a connection"
    assert sec.redirector.connections == connections[1], "the undeclared redirector received a connection"
    assert len(sec.sink.hits) == hits and sec.redirector.hits == []
    assert sec.stun.datagrams == datagrams, "the STUN sink received a datagram"
    blocked = sec.control.blocked(episode["episode_id"])
    expected = {control: record for family in FAMILIES.values() for control, record in family.items()}
    expected.update(GAP_RECORDS)
    for attempt in seen:
        record = expected.get(attempt["control"])
        if record is None:
            continue
        kind, fragment = record[0], record[1].format(sink=f"127.0.0.1:{sec.sink.port}")
        mine = [entry for entry in blocked if entry["step_index"] in attempt["steps"]]
        assert any(entry["kind"] == kind and fragment in entry["url"] for entry in mine), (attempt["control"], mine)
    state = sec.control.state(episode["episode_id"])
    assert state["status"] == "running" and state["success"] is False, state
