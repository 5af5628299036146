"""The accessibility tree's ids stay right when the DOM-snapshot index is reused.

After every action, the observation an agent got is compared with one rendered
from a fresh DOM snapshot of the same page: any reuse of a stale index would
show up as a different `[id]` somewhere in the tree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from engine.actions import BID_ATTRIBUTE
from engine.observation import ATTRIBUTE_ALLOW_LIST, snapshot_page
from engine.worker import BrowserWorker
from safebrowse.scripted import POLICIES

from support.engine import EngineHarness
from support.pages import page_task

MARKER = re.compile(r"\[(\d+)\]")
CHURN = page_task("test.churn", "churn.html", "Change the page.")


def mark_arguments(max_elements: int) -> list[object]:
    """The marking script's arguments as `snapshot_page` passes them, for a page with no secret
    field, numbering from 0, not read while loading."""
    return [BID_ATTRIBUTE, max_elements, list(ATTRIBUTE_ALLOW_LIST), "", 0, False]


def fresh_axtree(harness: EngineHarness, episode_id: str) -> str:
    """The accessibility tree rendered from a new DOM snapshot, on the episode's worker."""
    episode = harness.manager.get(episode_id)

    def read(_worker: BrowserWorker) -> str:
        browser = episode.browser
        page = browser.active_page()
        snapshot = snapshot_page(page, browser.page_session(page), episode.config.max_elements, None, browser._next_bid)
        assert snapshot is not None
        return snapshot.axtree

    return harness.run(episode.worker.run(read))


@pytest.fixture(scope="module")
def harness() -> Iterator[EngineHarness]:
    h = EngineHarness("observation-index-tests", tasks=[CHURN])
    try:
        yield h
    finally:
        h.stop()


def test_ids_in_the_tree_follow_every_kind_of_dom_change(harness: EngineHarness) -> None:
    created = harness.run(harness.manager.create("test.churn", seed=1))
    session = harness.manager.agent_session(created.agent_token)
    observation = created.observation
    plan = ["grow", "fill", "clone", "grow", "rewrite", "fill", "swap", "shrink", "clone", "shrink", "rewrite"]
    for control in plan:
        if control == "fill":
            result = harness.run(session.act("fill", {"id": harness.element(observation, "text"), "text": control}))
        else:
            result = harness.run(session.act("click", {"id": harness.element(observation, control)}))
        assert result.error is None, (control, result.error)
        observation = result.observation
        assert observation.axtree == fresh_axtree(harness, created.episode_id), control
        shown = set(MARKER.findall(observation.axtree))
        assert shown <= {e.id for e in observation.elements}, (control, shown)
    harness.run(harness.manager.close(created.episode_id))


@pytest.mark.parametrize("task_id", sorted(POLICIES))
def test_scripted_miniwob_episodes_see_the_same_tree_as_a_fresh_snapshot(harness: EngineHarness, task_id: str) -> None:
    created = harness.run(harness.manager.create(task_id, seed=2))
    session = harness.manager.agent_session(created.agent_token)
    observation = created.observation.model_dump()
    for _ in range(12):
        action = POLICIES[task_id](observation)
        if action is None or observation["episode_over"]:
            break
        result = harness.run(session.act(*action))
        if result.observation.episode_over:
            break  # a finished MiniWoB episode starts redrawing its next problem
        assert result.observation.axtree == fresh_axtree(harness, created.episode_id), (task_id, action)
        observation = result.observation.model_dump()
    harness.run(harness.manager.close(created.episode_id))


def test_pages_that_change_json_are_read_the_same(harness: EngineHarness) -> None:
    """The page read leaves the page as a JSON string; a page whose objects carry `toJSON`, or
    whose `JSON.stringify` answers anything else, is read the plain way, to the same result."""
    from engine.observation import _mark_script, _marked

    created = harness.run(harness.manager.create("test.churn", seed=3))
    episode = harness.manager.get(created.episode_id)
    tamperings = {
        "array toJSON": "() => { Array.prototype.toJSON = function () { return 'tampered'; }; }",
        "object toJSON": "() => { Object.prototype.toJSON = function () { return 1; }; }",
        "stringify not JSON": "() => { JSON.stringify = () => 'not json'; }",
        "stringify not an object": "() => { JSON.stringify = () => '[1, 2]'; }",
        "stringify another object": "() => { JSON.stringify = () => '{\"loading\": false}'; }",
        "stringify throws": "() => { JSON.stringify = () => { throw new Error('no'); }; }",
    }
    restore = ("() => { delete Array.prototype.toJSON; delete Object.prototype.toJSON;"
               " JSON.stringify = window.__stringify; }")

    def reads(_worker: BrowserWorker) -> tuple[bool, dict[str, tuple[object, ...]]]:
        browser = episode.browser
        page = browser.active_page()
        page.evaluate("() => { window.__stringify = JSON.stringify; }")
        args = mark_arguments(episode.config.max_elements)
        first = page.evaluate(_mark_script(None, as_json=True), args)
        as_json = "json" in first and _marked(first) is not None

        def read() -> tuple[object, ...]:
            snapshot = snapshot_page(page, browser.page_session(page), episode.config.max_elements, None,
                                     browser._next_bid)
            assert snapshot is not None
            return ([e.model_dump() for e in snapshot.elements], snapshot.axtree, snapshot.title,
                    snapshot.focused_id, snapshot.next_bid)

        seen = {"clean": read()}
        for name, script in tamperings.items():
            page.evaluate(script)
            try:
                seen[name] = read()
            finally:
                page.evaluate(restore)
        return as_json, seen

    try:
        as_json, seen = harness.run(episode.worker.run(reads))
    finally:
        harness.run(harness.manager.close(created.episode_id))
    assert as_json  # an ordinary page is read as one JSON string
    assert seen["clean"][0] and "[" in str(seen["clean"][1])
    for name in tamperings:
        assert seen[name] == seen["clean"], name


def test_text_with_broken_surrogates_reads_as_the_plain_conversion_reads_it(harness: EngineHarness) -> None:
    """Half an emoji cut at a length cap, or a lone surrogate in the page, comes out as U+FFFD on
    the JSON read as on Playwright's own conversion, and the observation still serializes."""
    from engine.observation import _mark_script

    created = harness.run(harness.manager.create("test.churn", seed=4))
    episode = harness.manager.get(created.episode_id)

    def reads(_worker: BrowserWorker) -> tuple[list[str], list[str], str]:
        page = episode.browser.active_page()
        page.evaluate("""() => {
            const cut = document.createElement('button');
            cut.textContent = 'a'.repeat(196) + '\\u{1F600}' + 'b'.repeat(10);
            const lone = document.createElement('button');
            lone.textContent = 'lone \\ud800 and \\udfff end';
            document.body.prepend(cut, lone);
        }""")
        args = mark_arguments(episode.config.max_elements)
        as_json = page.evaluate(_mark_script(None, as_json=True), args)
        plain = page.evaluate(_mark_script(None, as_json=False), args)["marked"]
        texts = [element["text"] for element in json.loads(as_json["json"])["elements"]]
        plain_texts = [element["text"] for element in plain["elements"]]
        snapshot = snapshot_page(page, episode.browser.page_session(page), episode.config.max_elements, None,
                                 episode.browser._next_bid)
        assert snapshot is not None
        elements = [e.model_dump(mode="json") for e in snapshot.elements]
        return texts, plain_texts, json.dumps(elements, ensure_ascii=False)

    try:
        texts, plain_texts, dumped = harness.run(episode.worker.run(reads))
    finally:
        harness.run(harness.manager.close(created.episode_id))
    assert texts == plain_texts
    assert "lone \ufffd and \ufffd end" in texts
    assert any(text.startswith("a" * 196 + "\ufffd") for text in texts), texts[:3]
    dumped.encode("utf-8")  # no lone surrogate is left to refuse encoding
