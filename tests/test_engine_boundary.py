"""The engine keeps an episode on its own origin, its own context, and its own ids."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.engine import EngineHarness
from support.pages import page_task
from support.waiting import wait_for

ESCAPE = page_task("test.escape", "escape.html", "Try every way out of this page.", secret_selector="input.secret")


@pytest.fixture(scope="module")
def harness() -> Iterator[EngineHarness]:
    h = EngineHarness("boundary-tests", tasks=[ESCAPE])
    try:
        yield h
    finally:
        h.stop()


@pytest.mark.parametrize(
    "control, blocked_fragment",
    [
        ("external", "example.com"),
        ("loopback", "127.0.0.1:9"),
        ("newtab", "example.org"),
        ("popup", "evil.example"),
        ("beacon", "evil.example"),
    ],
)
def test_requests_to_other_origins_are_blocked_and_recorded(
    harness: EngineHarness, control: str, blocked_fragment: str
) -> None:
    created, session = harness.open("test.escape")
    origin = harness.manager.assets.origin
    result = harness.run(session.act("click", {"id": harness.element(created.observation, control)}))
    assert result.error is None
    later = harness.run(session.act("noop", {"wait_ms": 200})).observation
    for observation in (result.observation, later):
        assert observation.url.startswith(origin + "/")
        assert all(tab.url.startswith(origin + "/") or tab.url == "about:blank" for tab in observation.tabs)
    blocked = [b for record in harness.manager.trajectory(created.episode_id) for b in record.blocked]
    assert any(blocked_fragment in b.url for b in blocked), blocked
    harness.run(harness.manager.close(created.episode_id))


def test_a_warm_context_keeps_its_guard_and_reports_to_the_episode_that_takes_it(harness: EngineHarness) -> None:
    worker = harness.manager.pool.workers[0]
    wait_for(lambda: worker.has_spare, "the idle worker warmed no spare context")  # warmed, guarded, while idle
    warm = {id(spare.context) for spare in worker.warm_pool._spares}
    created, session = harness.open("test.escape")
    assert id(harness.manager.get(created.episode_id).browser.context) in warm  # this episode runs in one
    harness.run(session.act("click", {"id": harness.element(created.observation, "external")}))
    blocked = [b for record in harness.manager.trajectory(created.episode_id) for b in record.blocked]
    assert any("example.com" in b.url for b in blocked), blocked
    harness.run(harness.manager.close(created.episode_id))


def test_a_warm_context_preloaded_for_another_task_keeps_no_history_of_it(harness: EngineHarness) -> None:
    """go_back from a task's first page leads where it would in a fresh context: the blank page."""
    worker = harness.manager.pool.workers[0]
    click_test = harness.manager.assets.origin + "/miniwob/click-test.html"
    first, _ = harness.open("miniwob.click-test")  # the worker will preload click-test next
    harness.run(harness.manager.close(first.episode_id))
    wait_for(lambda: worker.has_spare_at(click_test), "the idle worker preloaded nothing")
    created, session = harness.open("miniwob.click-button")  # takes the click-test spare
    assert created.observation.url.endswith("/miniwob/click-button.html")
    back = harness.run(session.act("go_back", {})).observation
    assert back.url == "about:blank", back.url
    harness.run(harness.manager.close(created.episode_id))


@pytest.mark.parametrize("control", ["passwd", "data", "blankpopup"])
def test_file_and_data_pages_cannot_be_opened(harness: EngineHarness, control: str) -> None:
    created, session = harness.open("test.escape")
    origin = harness.manager.assets.origin
    result = harness.run(session.act("click", {"id": harness.element(created.observation, control)}))
    observation = harness.run(session.observe()).observation
    for tab in observation.tabs:
        assert tab.url.startswith(origin + "/") or tab.url == "about:blank", tab.url
    assert "root:" not in observation.model_dump_json()
    # A blank popup written by the page itself may stay open; it has no other origin.
    assert result.observation.url.startswith(origin + "/") or result.observation.url == "about:blank"
    harness.run(harness.manager.close(created.episode_id))


def test_downloads_are_refused_and_recorded(harness: EngineHarness) -> None:
    created, session = harness.open("test.escape")
    harness.run(session.act("click", {"id": harness.element(created.observation, "download")}))
    harness.run(session.act("noop", {"wait_ms": 300}))
    blocked = [b for r in harness.manager.trajectory(created.episode_id) for b in r.blocked]
    assert any(b.kind == "download" for b in blocked), blocked
    harness.run(harness.manager.close(created.episode_id))


def test_relative_links_on_the_same_origin_work_and_go_back_returns(harness: EngineHarness) -> None:
    created, session = harness.open("test.escape")
    result = harness.run(session.act("click", {"id": harness.element(created.observation, "inside")}))
    assert result.observation.url.endswith("/test-pages/second.html")
    assert "second page" in result.observation.to_text()
    back = harness.run(session.act("go_back", {}))
    assert back.observation.url.endswith("/test-pages/escape.html")
    harness.run(harness.manager.close(created.episode_id))


def test_observation_hides_hidden_elements_scripts_and_masks_secrets(harness: EngineHarness) -> None:
    created, session = harness.open("test.escape")
    dumped = created.observation.model_dump_json()
    assert "hunter2-secret" not in dumped
    # Secret fields this pass does not list still reach the accessibility tree: masked there too.
    assert "transparent-secret" not in dumped and "zero-size-secret" not in dumped
    assert "hidden-value" not in dumped
    assert "invisible text" not in dumped
    assert "script text" not in dumped
    assert "color: red" not in dumped
    secret = next(e for e in created.observation.elements if e.attributes.get("id") == "secret")
    assert secret.attributes["value"] == "********"
    harness.run(harness.manager.close(created.episode_id))


def test_two_episodes_of_one_task_keep_separate_state(harness: EngineHarness) -> None:
    first, first_session = harness.open("miniwob.enter-text", seed=5)
    second, second_session = harness.open("miniwob.enter-text", seed=5)
    box = next(e.id for e in first.observation.elements if e.role == "textbox")
    assert box == next(e.id for e in second.observation.elements if e.role == "textbox")

    harness.run(first_session.act("fill", {"id": box, "text": "only in the first"}))
    second_view = harness.run(second_session.observe()).observation
    first_view = harness.run(first_session.observe()).observation
    assert "only in the first" in first_view.model_dump_json()
    assert "only in the first" not in second_view.model_dump_json()

    # Storage and cookies are per browser context.
    def write_storage(_worker):
        page = harness.manager.get(first.episode_id).browser.active_page()
        page.evaluate("() => { localStorage.setItem('k', 'first'); document.cookie = 'c=first'; }")

    def read_storage(_worker):
        page = harness.manager.get(second.episode_id).browser.active_page()
        return page.evaluate("() => [localStorage.getItem('k'), document.cookie]")

    worker = harness.manager.get(first.episode_id).worker
    harness.run(worker.run(write_storage))
    assert harness.run(worker.run(read_storage)) == [None, ""]
    assert len(harness.manager.get(second.episode_id).browser.context.pages) == 1
    for created in (first, second):
        harness.run(harness.manager.close(created.episode_id))


def test_ids_act_only_on_their_own_episode(harness: EngineHarness) -> None:
    first, first_session = harness.open("miniwob.click-test-2", seed=2)
    second, _second_session = harness.open("miniwob.click-test-2", seed=2)
    button = next(e.id for e in first.observation.elements if e.role == "button")
    harness.run(first_session.act("click", {"id": button}))
    assert harness.manager.state(first.episode_id).done
    assert harness.manager.state(second.episode_id).step_index == 0
    assert not harness.manager.state(second.episode_id).done
    for created in (first, second):
        harness.run(harness.manager.close(created.episode_id))


@pytest.mark.parametrize(
    "tool, arguments, fragment",
    [
        ("click", {"id": "#subbtn"}, "Invalid arguments"),
        ("click", {"id": "//button[1]"}, "Invalid arguments"),
        ("click", {"id": "99999"}, "not on the current page"),
        ("click", {"id": "1", "selector": "button"}, "Invalid arguments"),
        ("fill", {"id": "1", "text": "x" * 20_000}, "Invalid arguments"),
        ("press", {"key": "Ctrl+w"}, "Invalid arguments"),
        ("scroll", {"delta_y": 10**9}, "Invalid arguments"),
        ("noop", {"wait_ms": 60_000}, "Invalid arguments"),
        ("tab_focus", {"index": 5}, "no tab 5"),
        ("goto", {"url": "http://example.com"}, "Invalid arguments"),
    ],
)
def test_bad_arguments_give_errors_and_the_episode_keeps_working(
    harness: EngineHarness, tool: str, arguments: dict[str, object], fragment: str
) -> None:
    created, session = harness.open("miniwob.enter-text", seed=4)
    result = harness.run(session.act(tool, arguments))
    assert result.error is not None and fragment in result.error, result.error
    record = harness.manager.trajectory(created.episode_id)[-1]
    assert record.valid is False
    assert harness.manager.state(created.episode_id).invalid_actions == 1
    box = next(e.id for e in result.observation.elements if e.role == "textbox")
    ok = harness.run(session.act("fill", {"id": box, "text": "still works"}))
    assert ok.error is None
    assert any(e.attributes.get("value") == "still works" for e in ok.observation.elements)
    harness.run(harness.manager.close(created.episode_id))


def test_stale_ids_from_a_previous_page_are_refused(harness: EngineHarness) -> None:
    created, session = harness.open("test.escape")
    old_ids = {e.id for e in created.observation.elements}
    moved = harness.run(session.act("click", {"id": harness.element(created.observation, "inside")}))
    new_ids = {e.id for e in moved.observation.elements}
    assert not (old_ids & new_ids), "ids must not be reused across documents of one episode"
    stale = harness.run(session.act("click", {"id": sorted(old_ids)[0]}))
    assert stale.error is not None and "observe" in stale.error
    harness.run(harness.manager.close(created.episode_id))


def test_ended_episode_refuses_actions(harness: EngineHarness) -> None:
    from engine.agent_view import EpisodeOverError

    created, session = harness.open("miniwob.click-test", seed=1)
    button = next(e.id for e in created.observation.elements if e.role == "button")
    harness.run(session.act("click", {"id": button}))
    with pytest.raises(EpisodeOverError, match="no further actions"):
        harness.run(session.act("click", {"id": button}))
    harness.run(harness.manager.close(created.episode_id))
