"""The accessibility tree's ids stay right when the DOM-snapshot index is reused.

After every action, the observation an agent got is compared with one rendered
from a fresh DOM snapshot of the same page: any reuse of a stale index would
show up as a different `[id]` somewhere in the tree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import playwright.sync_api as pw
import pytest
from browsergym.core.task import AbstractBrowserTask

from engine.config import EngineConfig
from engine.manager import EpisodeManager
from engine.observation import snapshot_page
from safebrowse.loop import BackgroundLoop
from safebrowse.scripted import POLICIES
from tasks import miniwob
from tasks.registry import TaskRegistry, TaskSpec

PAGES = Path(__file__).parent / "pages"
MARKER = re.compile(r"\[(\d+)\]")


class ChurnPageTask(AbstractBrowserTask):
    """A page whose buttons add, copy, rewrite, reorder and remove elements."""

    def __init__(self, seed: int, origin: str) -> None:
        super().__init__(seed)
        self.url = origin + "/test-pages/churn.html"

    def setup(self, page: pw.Page) -> tuple[str, dict]:
        page.goto(self.url)
        return "Change the page.", {}

    def validate(self, page: pw.Page, chat_messages: list) -> tuple[float, bool, str, dict]:
        return 0.0, False, "", {}


CHURN = TaskSpec(
    id="test.churn",
    family="test",
    description="A page that rewrites its own DOM.",
    factory=lambda ctx: ChurnPageTask(ctx.seed, ctx.asset_origin),
    asset_mounts=(("/test-pages/", PAGES),),
)


class Harness:
    def __init__(self) -> None:
        self.loop = BackgroundLoop("observation-index-tests")
        self.manager = EpisodeManager(EngineConfig(workers=1), TaskRegistry([*miniwob.specs(), CHURN]))
        self.loop.run(self.manager.start())

    def run(self, coroutine):
        return self.loop.run(coroutine)

    def fresh_axtree(self, episode_id: str) -> str:
        """The accessibility tree rendered from a new DOM snapshot, on the episode's worker."""
        episode = self.manager.get(episode_id)

        def read(_worker) -> str:
            page = episode._active_page()
            snapshot = snapshot_page(page, episode._cdp[page], episode.config.max_elements, None, episode._next_bid)
            assert snapshot is not None
            return snapshot.axtree

        return self.run(episode.worker.run(read))


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness()
    try:
        yield h
    finally:
        h.run(h.manager.stop())
        h.loop.close()


def element_id(observation, id_attribute: str) -> str:
    return next(e.id for e in observation.elements if e.attributes.get("id") == id_attribute)


def test_ids_in_the_tree_follow_every_kind_of_dom_change(harness: Harness) -> None:
    created = harness.run(harness.manager.create("test.churn", seed=1))
    session = harness.manager.agent_session(created.agent_token)
    observation = created.observation
    plan = ["grow", "fill", "clone", "grow", "rewrite", "fill", "swap", "shrink", "clone", "shrink", "rewrite"]
    for control in plan:
        if control == "fill":
            result = harness.run(session.act("fill", {"id": element_id(observation, "text"), "text": control}))
        else:
            result = harness.run(session.act("click", {"id": element_id(observation, control)}))
        assert result.error is None, (control, result.error)
        observation = result.observation
        assert observation.axtree == harness.fresh_axtree(created.episode_id), control
        shown = set(MARKER.findall(observation.axtree))
        assert shown <= {e.id for e in observation.elements}, (control, shown)
    harness.run(harness.manager.close(created.episode_id))


@pytest.mark.parametrize("task_id", sorted(POLICIES))
def test_scripted_miniwob_episodes_see_the_same_tree_as_a_fresh_snapshot(harness: Harness, task_id: str) -> None:
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
        assert result.observation.axtree == harness.fresh_axtree(created.episode_id), (task_id, action)
        observation = result.observation.model_dump()
    harness.run(harness.manager.close(created.episode_id))
