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

from engine.warm_pool import RECENT_BURSTS

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
    wait_for(lambda: len(worker.warm_pool._spares) == 1, "the pool did not shrink back to one warm context")


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
    close_all(harness, burst(harness, 2, seed=70))  # two warm contexts showing click-test
    wait_for(lambda: len(worker.warm_pool._spares) >= 2, "the pool did not fill up")
    created, _session = harness.open(other, seed=80)
    harness.run(manager.close(created.episode_id))
    # Every warm context now shows the new task's page; none is left on the old one.
    pool = worker.warm_pool
    wait_for(lambda: len(pool.spare_urls) >= 2 and set(pool.spare_urls) == {other_url},
             "the warm contexts stayed on the previous task's page")
