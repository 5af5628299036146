"""Nothing the trainer sees, nothing the page hides, and nothing of other episodes reaches an agent.

Whole episodes are played through MCP (solved and failed, on MiniWoB++ and on a custom task)
while another episode runs next to them. Every byte the agent received (tool listings, every
result, refusals after the end, errors) is then searched for rewards and verdicts, the
validator's own messages (read back from the trainer's trajectory), both kinds of token, file
system paths, the other episode's data, and the page's hidden and masked values.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from engine.records import FailureReason

from support.agent import Agent, connect, play

TRAINER_WORDS = ("reward", "success", "failure", "validator", "verdict", "task_done", "task_message",
                 "task_info", "terminated", "failure_reason", "score", "cumulative")
FAILURE_REASONS = tuple(reason.value for reason in FailureReason if reason is not FailureReason.NONE)
PATHS = ("/work", "/home", "/root", "site-packages", "/tmp", "/usr/", "/etc/", "/proc", "file://", ".py")
# Values on the sec-forms page the agent must never read (see task_folders/sec-forms).
PAGE_SECRETS = ("sb-masked-value-5b1e7c", "sb-hidden-input-93d1aa", "sb-hidden-text-71af0e", "sb-script-text-0c2e44")
TYPED_PASSWORD = "sb-typed-password-c3f9d1"
# After the end every tool answers the same refusal; these calls make sure of it.
AFTER_THE_END = {"observe": {}, "click": {"id": "1"}, "fill": {"id": "1", "text": "a"}, "noop": {},
                 "send_message": {"text": "hello?"}, "ask_oracle": {"question": "what happened?"}}


def _quoted(goal: str) -> list[str]:
    return re.findall(r'"([^"]*)"', goal)


async def _forms(client: Agent, goal: str, right: bool) -> None:
    await client.act("fill", {"id": client.id_of("password"), "text": TYPED_PASSWORD})
    await client.call("fill", {"id": "9999999", "text": "x"})  # an id that is not on the page
    await client.call("click", {"id": "#submit"})  # an invalid one
    await client.act("fill", {"id": client.id_of("answer"), "text": _quoted(goal)[0] if right else "not it"})
    await client.act("click", {"id": client.id_of("submit")})
    if not client.page["episode_over"]:
        await client.act("noop", {"wait_ms": 200})


async def _enter_text(client: Agent, goal: str, right: bool) -> None:
    box = next(e["id"] for e in client.page["elements"] if e["role"] == "textbox")
    await client.call("press", {"key": "Hyper+x"})  # an invalid key
    await client.act("fill", {"id": box, "text": _quoted(goal)[0] if right else "certainly not the text"})
    submit = next(e["id"] for e in client.page["elements"] if e["role"] == "button")
    await client.act("click", {"id": submit})


PLAYS: dict[str, tuple[str, int, bool, Callable[[Agent, str, bool], Coroutine[Any, Any, None]]]] = {
    "forms-solved": ("custom.sec-forms", 21, True, _forms),
    "forms-failed": ("custom.sec-forms", 22, False, _forms),
    "miniwob-solved": ("miniwob.enter-text", 23, True, _enter_text),
    "miniwob-failed": ("miniwob.enter-text", 24, False, _enter_text),
}


@pytest.fixture(scope="module")
def played(sec) -> dict[str, Any]:
    """Plays every episode of PLAYS to its end next to a bystander episode; returns what each agent got."""
    bystander = sec.control.create("custom.sec-forms", seed=99)
    created = {name: sec.control.create(task_id, seed=seed, max_invalid_actions=50)
               for name, (task_id, seed, _, _) in PLAYS.items()}

    async def run(name: str) -> str:
        _task_id, _seed, right, policy = PLAYS[name]
        episode = created[name]
        async with connect(sec.mcp_url, episode["agent_token"]) as client:
            listing = await client.client.list_tools()
            client.transcript.append(listing.model_dump(mode="json", by_alias=True, exclude_none=True))
            await client.act("observe", {})
            await policy(client, episode["goal"], right)
            assert client.page["episode_over"] is True, name
            for tool, arguments in AFTER_THE_END.items():
                result = await client.call(tool, arguments)
                assert result.is_error, (name, tool)
            return client.wire()

    async def run_all() -> dict[str, str]:
        return {name: await run(name) for name in PLAYS}

    try:
        wires = play(run_all(), timeout=300)
        states = {name: sec.control.state(episode["episode_id"]) for name, episode in created.items()}
        trajectories = {name: sec.control.trajectory(episode["episode_id"]) for name, episode in created.items()}
        yield {"wires": wires, "created": created, "states": states, "trajectories": trajectories,
               "bystander": bystander}
    finally:
        for episode in [bystander, *created.values()]:
            sec.control.close(episode["episode_id"])


def test_the_episodes_ended_as_played(played):
    for name, (_task, _seed, right, _policy) in PLAYS.items():
        state = played["states"][name]
        assert state["done"] is True and state["success"] is right, (name, state)
        assert state["failure_reason"] != "none"


@pytest.mark.parametrize("name", list(PLAYS))
def test_no_trainer_data_reaches_the_agent(played, name):
    wire = played["wires"][name]
    lower = wire.lower()
    for word in TRAINER_WORDS + FAILURE_REASONS:
        assert word not in lower, (name, word)
    # The validator's own words, as the trainer reads them, never reached the agent.
    trajectory = played["trajectories"][name]
    messages = {step["task_message"] for step in trajectory["steps"] if step["task_message"]}
    messages |= {value for step in trajectory["steps"] for value in step["task_info"].values()
                 if isinstance(value, str) and len(value) >= 6}
    if name.startswith("forms"):
        assert messages, "the custom task's validator always explains its verdict"
    for message in messages:
        assert message not in wire, (name, message)
    assert "sb-validator-" not in wire


@pytest.mark.parametrize("name", list(PLAYS))
def test_no_token_path_or_other_episode_reaches_the_agent(sec, played, name):
    wire = played["wires"][name]
    secrets = [sec.live.control_token, played["bystander"]["agent_token"], played["bystander"]["episode_id"],
               played["bystander"]["goal"], *_quoted(played["bystander"]["goal"])]
    for other, episode in played["created"].items():
        secrets += [episode["agent_token"], episode["episode_id"]]  # its own token and id included
        if other != name:
            secrets += [episode["goal"], *_quoted(episode["goal"])]
    for secret in secrets:
        assert secret not in wire, (name, secret)
    for path in PATHS:
        assert path not in wire, (name, path)


@pytest.mark.parametrize("name", ["forms-solved", "forms-failed"])
def test_hidden_and_masked_values_never_leave_the_page(played, name):
    wire = played["wires"][name]
    for secret in (*PAGE_SECRETS, TYPED_PASSWORD):
        assert secret not in wire, (name, secret)
    assert "********" in wire  # the fields are there, masked


def _set_values(sec, episode_id: str, values: dict[str, str]) -> None:
    """Change field values from the server side, as the page itself could."""
    episode = sec.live.manager.get(episode_id)

    def write(_worker: Any) -> None:
        episode.browser.active_page().evaluate(
            "values => { for (const [id, v] of Object.entries(values)) document.getElementById(id).value = v; }",
            values)

    sec.live.run(episode.worker.run(write))


def test_screenshots_do_not_show_masked_values(sec, episodes):
    """Pixels are compared, not read: if a masked field's value changes and the screenshot does not,
    the value is not in it. A change to an ordinary field shows, so the comparison can see."""
    episode = episodes("custom.sec-forms")

    async def screenshot() -> bytes:
        async with connect(sec.mcp_url, episode["agent_token"]) as client:
            result = await client.act("observe", {"screenshot": True})
            assert [block.type for block in result.content] == ["text", "image"]
            assert "base64" not in json.dumps(result.structured_content)
            return base64.b64decode(result.content[1].data)

    first = play(screenshot())
    _set_values(sec, episode["episode_id"], {"api-key": "sb-other-value-000000"})
    after_secrets = play(screenshot())
    _set_values(sec, episode["episode_id"], {"notes": "visible change"})
    after_notes = play(screenshot())
    assert after_notes != after_secrets, "an ordinary field's change must show in the screenshot"
    assert after_secrets == first, "a masked field's value shows in the screenshot"
