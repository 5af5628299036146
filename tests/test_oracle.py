"""ask_oracle back-ends: the hints oracle, an OpenAI-compatible endpoint, budgets and failures.

The LLM oracle talks to a small OpenAI-compatible server started here (Starlette
on a free loopback port) whose behaviour is chosen by the model name: it
answers, errors, stalls past the timeout, or returns garbage. Episodes run on a
manager of this module's own, built with an oracle factory, as the server builds
it from SAFEBROWSE_ORACLE*.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from engine.agent_view import AgentStepResult, EpisodeOverError
from engine.manager import CreatedEpisode
from engine.oracle import (
    REFUSAL,
    HintsOracle,
    LLMOracle,
    OracleFactory,
    OracleSettings,
    build_oracle_factory,
    chat_endpoint,
    filter_answer,
)
from engine.records import EpisodeLimits, FailureReason
from safebrowse.loop import BackgroundLoop
from safebrowse.settings import ServerSettings, SettingsInputError
from tasks import default_registry
from tasks.custom.miniwob_hints import MINIWOB_HINTS

from support.engine import EngineHarness
from support.listener import Listener

TRAINER_WORDS = ("reward", "success", "failure", "validator", "verdict", "score", "task_done", "terminated")
LEAKY_ANSWER = ("Press the Sign in button once both fields are filled. "
                "The validator will count this as a success and give a reward of 1.0! "
                "Check the username for typos first.")
UNAVAILABLE = "The oracle is unavailable right now; this call was not charged."


# -- a local OpenAI-compatible endpoint ------------------------------------------------------------


class FakeChatServer:
    """Answers POST /v1/chat/completions according to the requested model name."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.loop = BackgroundLoop("fake-chat")
        app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])
        self.listener = Listener(app, self.loop)

    @property
    def url(self) -> str:
        return self.listener.origin

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"body": body, "authorization": request.headers.get("authorization")})
        mode = body.get("model")
        if mode == "error":
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        if mode == "slow":
            await asyncio.sleep(5)
        if mode == "garbage":
            return PlainTextResponse("<html>not json</html>")
        if mode == "empty":
            return JSONResponse({"choices": [{"message": {"role": "assistant", "content": ""}}]})
        if mode == "all-judging":
            content = "You will get the reward. The task is done."
        else:
            question = body["messages"][-1]["content"].rsplit("Question:\n", 1)[-1]
            content = LEAKY_ANSWER + f" You asked: {question}"
        return JSONResponse({"id": "x", "object": "chat.completion",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})

    def close(self) -> None:
        try:
            self.listener.stop()
        finally:
            self.loop.close()


@pytest.fixture(scope="module")
def chat_server() -> Iterator[FakeChatServer]:
    server = FakeChatServer()
    try:
        yield server
    finally:
        server.close()


# -- a manager with an oracle factory ----------------------------------------------------------------


class OracleHarness(EngineHarness):
    """One engine whose oracle back-end each test picks before creating its episode.

    Its oracle factory is built, as the server builds it, from the settings the last
    `create` was given: a new episode gets the oracle its test asked for.
    """

    def __init__(self) -> None:
        self.settings = OracleSettings()
        self.opened: list[str] = []
        super().__init__("oracle-tests", oracle_factory=lambda spec: build_oracle_factory(self.settings)(spec))

    def create(self, task_id: str, settings: OracleSettings, **limits: Any) -> CreatedEpisode:
        self.settings = settings
        episode_limits = EpisodeLimits(**limits) if limits else None
        created = self.run(self.manager.create(task_id, seed=3, limits=episode_limits))
        self.opened.append(created.episode_id)
        return created

    def ask(self, created: CreatedEpisode, question: str) -> str:
        return self.run(self.session(created.agent_token).consult_oracle({"question": question})).answer

    def act(self, created: CreatedEpisode, tool: str, **arguments: Any) -> AgentStepResult:
        return self.run(self.session(created.agent_token).act(tool, arguments))

    def close_all(self) -> None:
        for episode_id in self.opened:
            self.run(self.manager.close(episode_id))
        self.opened.clear()


@pytest.fixture(scope="module")
def oracles() -> Iterator[OracleHarness]:
    harness = OracleHarness()
    try:
        yield harness
    finally:
        try:
            harness.close_all()
        finally:
            harness.stop()


@pytest.fixture
def harness(oracles) -> Iterator[OracleHarness]:
    yield oracles
    oracles.close_all()


def assert_no_trainer_words(text: str) -> None:
    lowered = text.lower()
    for word in TRAINER_WORDS:
        assert word not in lowered, f"{word!r} in oracle answer {text!r}"


# -- pieces ----------------------------------------------------------------------------------------


def test_filter_drops_sentences_about_judging_and_keeps_the_rest():
    assert filter_answer(LEAKY_ANSWER) == (
        "Press the Sign in button once both fields are filled. Check the username for typos first."
    )
    assert filter_answer("Your score is 3.\nThe task is complete.") == REFUSAL
    assert filter_answer("") == REFUSAL
    assert len(filter_answer("Click it. " * 500)) <= 1_200
    for text in ("You succeeded.", "That failed", "Validation passed.", "The episode is over."):
        assert filter_answer(text) == REFUSAL, text


def test_every_shipped_hint_survives_the_filter():
    hints = [hint for spec in default_registry() for hint in spec.hints]
    hints += [hint for task_hints in MINIWOB_HINTS.values() for hint in task_hints]
    assert len(hints) > 40
    for hint in hints:
        assert filter_answer(hint) == hint


def test_miniwob_hints_name_real_tasks():
    registry = default_registry()
    assert len(MINIWOB_HINTS) >= 10
    for task_id in MINIWOB_HINTS:
        assert registry.get(task_id).family == "miniwob"


def test_hints_oracle_matches_the_question_then_moves_on():
    hints = ("Type the first letters into the field to see suggestions.",
             "Results are split over several pages; use the page numbers.",
             "Press Submit when you are done.")
    page = "Goal: Find Alice\nElements:\n  [4] link 'Alice Smith'\n  [5] button 'Submit'\n  [6] link 'Bob' (offscreen)"
    oracle = HintsOracle()
    first = oracle("where are the other pages of results?", 'Search for "Alice"', page, hints)
    assert first.startswith(hints[1])
    assert "[4] link 'Alice Smith'" in first and "Bob" not in first
    second = oracle("where are the other pages of results?", 'Search for "Alice"', page, hints)
    assert second.startswith(hints[0])  # asked again: the next hint not yet given
    bare = HintsOracle()("what now?", "Click the blue square.", "Elements:\n  [1] button 'OK'", ())
    assert bare.startswith("Re-read the goal")


def test_settings_validate_the_operator_choice():
    assert OracleSettings().mode == "hints"
    llm = OracleSettings(mode="LLM", url="http://127.0.0.1:9/v1", model="qwen", timeout_s="2.5")
    assert (llm.mode, llm.model, llm.timeout_s) == ("llm", "qwen", 2.5)
    with pytest.raises(ValidationError, match="needs SAFEBROWSE_ORACLE_URL"):
        OracleSettings(mode="llm")
    with pytest.raises(ValidationError):
        OracleSettings(mode="magic")
    with pytest.raises(ValidationError, match="http"):
        OracleSettings(mode="llm", url="file:///etc/passwd")
    with pytest.raises(ValidationError):
        OracleSettings(timeout_s=0)
    with pytest.raises(ValidationError, match="Extra inputs"):
        OracleSettings(modle="llm")  # a misspelt key in [oracle] is refused, not ignored
    for base in ("http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/"):
        assert chat_endpoint(base) == "http://h:1/v1/chat/completions"


def test_factory_builds_the_chosen_back_end_per_episode():
    registry = default_registry()
    spec = registry.get("miniwob.click-button")
    assert build_oracle_factory(OracleSettings(mode="none"))(spec) is None
    hints_oracle = build_oracle_factory(OracleSettings())(spec)
    assert isinstance(hints_oracle, HintsOracle) and hints_oracle.extra_hints == MINIWOB_HINTS[spec.id]
    assert build_oracle_factory(OracleSettings())(spec) is not hints_oracle  # one oracle per episode
    llm = build_oracle_factory(OracleSettings(mode="llm", url="http://127.0.0.1:9"))
    assert isinstance(llm(registry.get("custom.login-form")), LLMOracle)


def oracle_factory_from_env() -> OracleFactory:
    """The oracle factory `safebrowse serve` builds from the environment."""
    return build_oracle_factory(ServerSettings.from_env().oracle)


def test_factory_from_the_environment_reads_short_and_sectioned_names(monkeypatch):
    for name in ("SAFEBROWSE_ORACLE", "SAFEBROWSE_ORACLE_URL", "SAFEBROWSE_ORACLE_MODEL",
                 "SAFEBROWSE_ORACLE__MODE", "SAFEBROWSE_ORACLE__URL", "SAFEBROWSE_ORACLE__MODEL"):
        monkeypatch.delenv(name, raising=False)
    spec = default_registry().get("custom.login-form")
    assert isinstance(oracle_factory_from_env()(spec), HintsOracle)
    monkeypatch.setenv("SAFEBROWSE_ORACLE", "none")
    assert oracle_factory_from_env()(spec) is None
    monkeypatch.setenv("SAFEBROWSE_ORACLE", "LLM")
    monkeypatch.setenv("SAFEBROWSE_ORACLE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SAFEBROWSE_ORACLE_MODEL", "qwen")
    llm = oracle_factory_from_env()(spec)
    assert isinstance(llm, LLMOracle) and llm.model == "qwen"
    monkeypatch.setenv("SAFEBROWSE_ORACLE__MODEL", "llama")  # the sectioned name wins
    assert oracle_factory_from_env()(spec).model == "llama"
    monkeypatch.setenv("SAFEBROWSE_ORACLE__MODE", "hints")
    assert isinstance(oracle_factory_from_env()(spec), HintsOracle)
    monkeypatch.setenv("SAFEBROWSE_ORACLE", "magic")
    monkeypatch.delenv("SAFEBROWSE_ORACLE__MODE")
    with pytest.raises(SettingsInputError):
        oracle_factory_from_env()


# -- through the engine --------------------------------------------------------------------------


def test_hints_oracle_answers_from_the_task_hints_and_is_charged(harness):
    created = harness.create("custom.login-form", OracleSettings(mode="hints"))
    spec = harness.manager.registry.get("custom.login-form")
    answer = harness.ask(created, "how many wrong attempts do I get?")
    assert answer.startswith(spec.hints[2])
    assert "[" in answer  # points at elements of the page
    assert_no_trainer_words(answer)
    record = harness.manager.trajectory(created.episode_id)[-1]
    assert record.tool == "ask_oracle" and record.oracle_call and record.valid
    state = harness.manager.state(created.episode_id)
    assert state.oracle_calls == 1 and not state.done and state.step_index == 1


def test_miniwob_task_gets_miniwob_hints(harness):
    created = harness.create("miniwob.click-button", OracleSettings(mode="hints"))
    answer = harness.ask(created, "which button should I click?")
    assert answer.startswith(MINIWOB_HINTS["miniwob.click-button"][0])


def test_past_the_budget_the_oracle_refuses_and_the_episode_ends(harness):
    created = harness.create("miniwob.click-test", OracleSettings(mode="hints"), oracle_budget=2)
    answers = [harness.ask(created, f"hint number {n}?") for n in range(3)]
    assert answers[2] == "The oracle budget for this episode is used up; continue without hints."
    records = harness.manager.trajectory(created.episode_id)
    assert [r.oracle_call for r in records] == [True, True, True]
    assert records[-1].terminated and records[-1].failure_reason is FailureReason.ORACLE_BUDGET_EXCEEDED
    state = harness.manager.state(created.episode_id)
    assert state.failure_reason is FailureReason.ORACLE_BUDGET_EXCEEDED and state.oracle_calls == 3
    with pytest.raises(EpisodeOverError):
        harness.ask(created, "one more?")


def test_past_the_budget_the_oracle_only_refuses_when_told_not_to_end(harness):
    created = harness.create("miniwob.click-test", OracleSettings(mode="hints"),
                             oracle_budget=1, end_on_oracle_budget=False)
    harness.ask(created, "first?")
    refused = harness.ask(created, "second?")
    assert "budget" in refused
    state = harness.manager.state(created.episode_id)
    assert not state.done and state.oracle_calls == 2 and state.invalid_actions == 0
    button = next(e for e in created.observation.elements if e.role == "button")
    harness.act(created, "click", id=button.id)
    assert harness.manager.state(created.episode_id).success  # the episode carried on


def test_zero_budget_refuses_the_first_call(harness):
    created = harness.create("miniwob.click-test", OracleSettings(mode="hints"), oracle_budget=0)
    assert "budget" in harness.ask(created, "anything?")
    assert harness.manager.state(created.episode_id).failure_reason is FailureReason.ORACLE_BUDGET_EXCEEDED


def test_no_oracle_configured_is_not_charged(harness):
    created = harness.create("miniwob.click-test", OracleSettings(mode="none"))
    answer = harness.ask(created, "help?")
    assert answer.startswith("No oracle is configured")
    assert harness.manager.state(created.episode_id).oracle_calls == 0
    assert not harness.manager.trajectory(created.episode_id)[-1].oracle_call


def test_llm_oracle_sees_goal_page_hints_and_question_and_never_a_verdict(harness, chat_server):
    settings = OracleSettings(mode="llm", url=chat_server.url + "/v1", model="answer", timeout_s=10,
                              api_key="sk-test-key")
    created = harness.create("miniwob.click-button", settings)
    before = len(chat_server.requests)
    answer = harness.ask(created, "Which one is it?")
    assert answer == ("Press the Sign in button once both fields are filled. "
                      "Check the username for typos first. You asked: Which one is it?")
    assert_no_trainer_words(answer)
    (sent,) = chat_server.requests[before:]
    assert sent["authorization"] == "Bearer sk-test-key"
    body = sent["body"]
    assert body["model"] == "answer"
    prompt = body["messages"][-1]["content"]
    assert created.goal in prompt and "Which one is it?" in prompt
    assert MINIWOB_HINTS["miniwob.click-button"][0] in prompt
    button = next(e for e in created.observation.elements if e.role == "button")
    assert f"[{button.id}] button" in prompt  # the current page, as the agent sees it
    wire = json.dumps(body).lower()
    for word in ("reward", "task_done", "task_message", "validate", "success", "terminated"):
        assert word not in wire.replace("never mention rewards, scores, success or failure", "")
    state = harness.manager.state(created.episode_id)
    assert state.oracle_calls == 1 and harness.manager.trajectory(created.episode_id)[-1].oracle_call


def test_llm_answer_made_only_of_judging_talk_becomes_a_refusal(harness, chat_server):
    settings = OracleSettings(mode="llm", url=chat_server.url, model="all-judging")
    created = harness.create("custom.table-search", settings)
    assert harness.ask(created, "am I done?") == REFUSAL
    assert harness.manager.state(created.episode_id).oracle_calls == 1


@pytest.mark.parametrize("mode", ["error", "slow", "garbage", "empty", "closed-port"])
def test_unavailable_endpoint_is_not_charged(harness, chat_server, mode):
    url = chat_server.url
    if mode == "closed-port":
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        sock.close()
    created = harness.create("miniwob.click-test", OracleSettings(mode="llm", url=url, model=mode, timeout_s=0.5),
                             oracle_budget=1)
    for _ in range(2):  # never charged, so the budget of one is never used up
        assert harness.ask(created, f"help ({mode})?") == UNAVAILABLE
    records = harness.manager.trajectory(created.episode_id)
    assert [r.oracle_call for r in records] == [False, False]
    state = harness.manager.state(created.episode_id)
    assert state.oracle_calls == 0 and not state.done and state.invalid_actions == 0


def test_mcp_agent_asks_the_default_hints_oracle(live_server):
    from safebrowse.client import agent_client

    created = live_server.run(live_server.manager.create("custom.settings-toggles", seed=2))

    async def ask() -> tuple[bool, str]:
        async with agent_client(live_server.mcp_url, created.agent_token) as client:
            result = await client.call_tool("ask_oracle", {"question": "how do I save the settings dialog?"})
            return result.is_error, result.content[0].text

    try:
        is_error, text = asyncio.run(ask())
    finally:
        live_server.run(live_server.manager.close(created.episode_id))
    assert not is_error
    assert "dialog" in text.lower()
    assert_no_trainer_words(text)
    assert live_server.manager.state(created.episode_id).oracle_calls == 1


def test_mcp_agent_past_the_budget_gets_a_tool_error(live_server):
    from engine.records import EpisodeLimits
    from safebrowse.client import agent_client

    limits = EpisodeLimits(oracle_budget=1, end_on_oracle_budget=False)
    created = live_server.run(live_server.manager.create("custom.settings-toggles", seed=3, limits=limits))

    async def ask_twice() -> list[tuple[bool, str]]:
        async with agent_client(live_server.mcp_url, created.agent_token) as client:
            replies = []
            for _ in range(2):
                result = await client.call_tool("ask_oracle", {"question": "what should I toggle?"})
                replies.append((result.is_error, result.content[0].text))
            return replies

    try:
        (first_error, _), (second_error, second_text) = asyncio.run(ask_twice())
        state = live_server.manager.state(created.episode_id)
    finally:
        live_server.run(live_server.manager.close(created.episode_id))
    assert not first_error
    assert second_error and "budget" in second_text
    assert_no_trainer_words(second_text)
    assert not state.done and state.oracle_calls == 2
