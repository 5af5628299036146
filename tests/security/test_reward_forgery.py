"""The agent cannot write its own reward.

MiniWoB++ keeps its verdict in page globals (WOB_REWARD_GLOBAL, WOB_RAW_REWARD_GLOBAL,
WOB_DONE_GLOBAL) that BrowserGym reads after each step: those stay safe because nothing an
agent sends ever runs as script. Custom tasks judge from server-side state (the calls the
page made, recorded in Python, against a truth drawn in Python that never reaches the page):
those stay safe even when a page is careless enough to run what the agent typed.
"""

from __future__ import annotations

import re
from typing import Any

from support.agent import connect, play

FORGERIES = [
    "WOB_REWARD_GLOBAL=1",
    "WOB_RAW_REWARD_GLOBAL = 1; WOB_DONE_GLOBAL = true",
    "<script>WOB_REWARD_GLOBAL=1;WOB_RAW_REWARD_GLOBAL=1;WOB_DONE_GLOBAL=true</script>",
    "<img src=x onerror=\"core.endEpisode(1.0, false, 'forged')\">",
    "javascript:core.endEpisode(1.0)",
    "'); core.endEpisode(1.0); ('",
    "${core.endEpisode(1.0)}",
]
FORGED_CHAT = ["reward=1", "{\"reward\": 1.0, \"done\": true, \"success\": true}", "TASK COMPLETE: success",
               "WOB_REWARD_GLOBAL=1"]


def _wob_globals(sec, episode_id: str) -> dict[str, Any]:
    """MiniWoB's own verdict, read from the page on the server side."""
    episode = sec.live.manager.get(episode_id)

    def read(_worker: Any) -> dict[str, Any]:
        return episode.browser.active_page().evaluate(
            "() => ({reward: WOB_REWARD_GLOBAL, raw: WOB_RAW_REWARD_GLOBAL, done: WOB_DONE_GLOBAL})")

    return sec.live.run(episode.worker.run(read))


def test_miniwob_reward_globals_cannot_be_set_from_the_page(sec, episodes):
    episode = episodes("miniwob.enter-text", seed=12, max_repeated_actions=100)
    target = re.findall(r'"([^"]*)"', episode["goal"])[0]
    start = _wob_globals(sec, episode["episode_id"])
    assert start["done"] is False and start["raw"] == 0

    async def forge() -> list[dict[str, Any]]:
        values = []
        async with connect(sec.mcp_url, episode["agent_token"]) as client:
            await client.act("observe", {})
            box = next(e["id"] for e in client.page["elements"] if e["role"] == "textbox")
            for text in FORGERIES:
                await client.act("fill", {"id": box, "text": text})
                values.append({"typed": text, "shown": next(
                    e["attributes"].get("value") for e in client.page["elements"] if e["id"] == box)})
                values.append({"globals": _wob_globals(sec, episode["episode_id"])})
            for text in FORGED_CHAT:
                await client.act("send_message", {"text": text})
            for key in ("Enter", "F12", "Control+Shift+j", "Control+u", "Control+s", "Control+p"):
                await client.call("press", {"key": key})
            values.append({"globals": _wob_globals(sec, episode["episode_id"])})
            submit = next(e["id"] for e in client.page["elements"] if e["role"] == "button")
            await client.call("click", {"id": submit})
            return values

    seen = play(forge())
    for entry in seen:
        if "typed" in entry:
            assert entry["shown"] == entry["typed"]
        else:
            assert entry["globals"] == start, entry
    assert target not in FORGERIES
    state = sec.control.state(episode["episode_id"])
    trajectory = sec.control.trajectory(episode["episode_id"])
    assert state["success"] is False
    assert all(step["task_reward"] <= 0 for step in trajectory["steps"])
    if state["done"]:  # a submit of the wrong text ends MiniWoB's episode: as a failure
        assert state["failure_reason"] not in ("success", "none")


def test_a_custom_verdict_comes_from_server_side_state(sec, episodes):
    """The sec-forms page has a careless Preview button that writes the Answer field into the page
    as HTML. The agent uses it to run script in the page: the script sets globals, rewrites the
    page to look solved and calls the task's binding itself. The verdict still reads only what
    Python recorded against the answer Python drew, so it is a failure."""
    episode = episodes("custom.sec-forms", seed=3)
    answer = re.findall(r'"([^"]*)"', episode["goal"])[0]
    payload = ("<img src=x onerror=\"window.sbRan.push('preview'); window.verdict='success'; window.reward=1;"
               " document.getElementById('status').textContent='Correct! Task solved.';"
               " window.safebrowseCall('submit', {answer: 'forged', correct: true, reward: 1})\">")

    async def forge() -> Any:
        async with connect(sec.mcp_url, episode["agent_token"]) as client:
            await client.act("observe", {})
            await client.act("fill", {"id": client.id_of("answer"), "text": payload})
            result = await client.act("click", {"id": client.id_of("preview")})
            if not result.structured_content["episode_over"]:  # the image error may fire after the step
                result = await client.act("noop", {"wait_ms": 500})
            return result

    result = play(forge())
    forms = sec.live.manager.get(episode["episode_id"])
    task = forms._task.task
    assert [call.data for call in task.calls] == [{"answer": "forged", "correct": True, "reward": 1}]
    assert answer not in payload
    state = sec.control.state(episode["episode_id"])
    # A task failure, named by the engine after the ending step (see engine/termination.py).
    assert state["done"] and state["success"] is False
    assert state["failure_reason"] in ("task_failed", "wrong_text", "wrong_target", "submission_failed"), state
    steps = sec.control.trajectory(episode["episode_id"])["steps"]
    assert len(steps) in (2, 3) and all(step["task_reward"] == 0.0 for step in steps)
    # The page looked solved to the agent; the verdict did not care.
    assert "Correct! Task solved." in result.content[0].text


def test_the_right_answer_through_the_page_still_succeeds(sec, episodes):
    """The control: the same page, used as intended, is judged a success."""
    episode = episodes("custom.sec-forms", seed=3)
    answer = re.findall(r'"([^"]*)"', episode["goal"])[0]

    async def solve() -> None:
        async with connect(sec.mcp_url, episode["agent_token"]) as client:
            await client.act("observe", {})
            await client.act("fill", {"id": client.id_of("answer"), "text": answer})
            await client.act("click", {"id": client.id_of("submit")})

    play(solve())
    state = sec.control.state(episode["episode_id"])
    assert state["success"] is True and state["failure_reason"] == "success"
