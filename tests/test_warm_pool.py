"""A worker keeps as many warm contexts as its recent bursts of resets asked for.

A trainer that resets a group of episodes at once (GRPO's group of rollouts of
one task) gets every one of them from a warm context with the task's page
already loaded, once it has done so before; the pool shrinks back when the
bursts stop, and never grows past the configured limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from engine.warm_pool import MIN_SPARES, RECENT_BURSTS, close_quietly

from support.engine import EngineHarness
from support.waiting import wait_for

TASK = "miniwob.click-test"


@pytest.fixture(scope="module")
def harness() -> Iterator[EngineHarness]:
    h = EngineHarness("warm-pool-tests", max_warm_contexts=3)
    try:
        yield h
    finally:
        h.stop()


def burst(harness: EngineHarness, count: int, seed: int) -> list[str]:
    """Create `count` episodes at once and return their ids."""

    async def create_all():
        return await asyncio.gather(*(harness.manager.create(TASK, seed=seed + k) for k in range(count)))

    return [created.episode_id for created in harness.run(create_all())]


def close_all(harness: EngineHarness, episode_ids: list[str]) -> None:
    for episode_id in episode_ids:
        harness.run(harness.manager.close(episode_id))


def test_a_burst_of_resets_is_served_warm_the_next_time(harness: EngineHarness) -> None:
    manager = harness.manager
    worker = manager.pool.workers[0]
    url = manager.assets.origin + manager.registry.get(TASK).preload_path
    close_all(harness, burst(harness, 3, seed=10))  # teaches the worker: three at once

    wait_for(lambda: sum(spare.url == url for spare in worker.warm_pool._spares) == 3,
             "the worker did not warm three contexts with the task's page after a burst of three")
    warm = {id(spare.context) for spare in worker.warm_pool._spares}
    episode_ids = burst(harness, 3, seed=20)
    try:
        taken = {id(manager.get(episode_id).browser.context) for episode_id in episode_ids}
        assert taken == warm  # every episode of the second burst got one of the warm contexts
        assert all(manager.get(episode_id).goal.startswith("Click") for episode_id in episode_ids)
    finally:
        close_all(harness, episode_ids)


def test_the_pool_never_exceeds_its_limit_and_shrinks_when_bursts_stop(harness: EngineHarness) -> None:
    worker = harness.manager.pool.workers[0]
    close_all(harness, burst(harness, 5, seed=30))  # more than the limit of 3
    wait_for(lambda: len(worker.warm_pool._spares) == 3, "the pool did not fill up to its limit")
    time.sleep(1.0)
    assert len(worker.warm_pool._spares) == 3  # and no further

    for k in range(RECENT_BURSTS):  # one reset at a time, with pauses: bursts of one
        close_all(harness, burst(harness, 1, seed=40 + k))
        wait_for(lambda: worker.warm_pool._taken_since_idle == 0, "the worker never went idle")
    wait_for(lambda: len(worker.warm_pool._spares) == MIN_SPARES,
             "the pool did not shrink back to the warm contexts kept for resets one at a time")


def test_a_limit_of_zero_turns_warming_off() -> None:
    harness = EngineHarness("warm-pool-off", max_warm_contexts=0)
    try:
        worker = harness.manager.pool.workers[0]
        close_all(harness, burst(harness, 2, seed=50))
        wait_for(lambda: worker.warm_pool._taken_since_idle == 0, "the worker never went idle")
        time.sleep(1.0)
        assert worker.warm_pool._spares == []
        created, _session = harness.open(TASK, seed=60)  # still served, from a new context
        assert created.goal.startswith("Click")
        harness.run(harness.manager.close(created.episode_id))
    finally:
        harness.stop()


def test_the_pool_follows_a_trainer_to_another_task(harness: EngineHarness) -> None:
    manager = harness.manager
    worker = manager.pool.workers[0]
    other = "miniwob.click-button"
    other_url = manager.assets.origin + manager.registry.get(other).preload_path
    pool = worker.warm_pool
    close_all(harness, burst(harness, 2, seed=70))  # two warm contexts showing click-test
    wait_for(lambda: len(pool.spare_urls) >= 2 and not pool.has_unverified, "the pool did not fill up")

    def spare_contexts(_worker: object) -> list[object]:
        """On the worker's thread: the warm contexts (held here, so none is collected meanwhile)."""
        return [spare.context for spare in pool._spares]

    before = worker.submit(spare_contexts).result(timeout=30)
    created, _session = harness.open(other, seed=80)
    harness.run(manager.close(created.episode_id))
    # Every warm context now shows the new task's page; none is left on the old one.
    wait_for(lambda: len(pool.spare_urls) >= 2 and set(pool.spare_urls) == {other_url},
             "the warm contexts stayed on the previous task's page")
    # They are the same contexts, reset and aimed at the new page: no renderer was started for it.
    after = worker.submit(spare_contexts).result(timeout=30)
    assert all(any(context is kept for kept in after) for context in before)


def test_a_closed_episodes_context_is_reset_and_serves_the_next_episode(harness: EngineHarness) -> None:
    """A trainer's tight loop (create, act, close, create again at once) gets the context it
    just closed, reset in place with the task's page loading, instead of a new one."""
    manager = harness.manager
    pool = manager.pool.workers[0].warm_pool
    first, session = harness.open(TASK, seed=90)
    context = manager.get(first.episode_id).browser.context
    screen = harness.run(session.observe())
    harness.run(session.act("click", {"id": screen.observation.elements[-1].id}))
    harness.run(manager.close(first.episode_id))
    wait_for(lambda: any(spare.context is context for spare in pool._spares),
             "the closed episode's context did not become a warm spare")
    recycled = next(spare for spare in pool._spares if spare.context is context)
    assert recycled.url == manager.assets.origin + manager.registry.get(TASK).preload_path

    def keep_only_the_recycled_spare(_worker: object) -> None:
        """On the worker's thread: any spare warmed from now on is newer, so the next episode
        (which takes the spare that has loaded longest) must take the recycled one."""
        for spare in [spare for spare in pool._spares if spare is not recycled]:
            pool._spares.remove(spare)
            close_quietly(spare.context)

    manager.pool.workers[0].submit(keep_only_the_recycled_spare).result(timeout=30)
    second, _ = harness.open(TASK, seed=91)
    try:
        assert manager.get(second.episode_id).browser.context is context
        assert second.goal.startswith("Click")
        assert len(context.pages) == 1
    finally:
        harness.run(manager.close(second.episode_id))


def test_a_context_a_task_has_scripted_is_closed_not_reused(harness: EngineHarness) -> None:
    """A custom task adds an init script and a binding to its context: nothing may carry them
    into another episode, so its context is closed when the episode is."""
    manager = harness.manager
    pool = manager.pool.workers[0].warm_pool
    created, _session = harness.open("custom.login-form", seed=1)
    context = manager.get(created.episode_id).browser.context
    harness.run(manager.close(created.episode_id))
    wait_for(lambda: context.browser is None or context not in context.browser.contexts,
             "the custom task's context was not closed")
    assert all(spare.context is not context for spare in pool._spares)
