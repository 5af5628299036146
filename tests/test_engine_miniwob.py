"""MiniWoB++ through the engine: real Chromium, BrowserGym's own task validation."""

from __future__ import annotations

import pytest

from engine.records import FailureReason
from safebrowse.scripted import POLICIES, wrong_click

SOLVED_TASKS = sorted(POLICIES)


def play(engine, task_id: str, seed: int, policy, max_steps: int = 12):
    created = engine.run(engine.manager.create(task_id, seed=seed))
    session = engine.manager.agent_session(created.agent_token)
    observation = created.observation.model_dump()
    for _ in range(max_steps):
        action = policy(observation)
        if action is None or observation["episode_over"]:
            break
        result = engine.run(session.act(*action))
        assert result.error is None, result.error
        observation = result.observation.model_dump()
    state = engine.manager.state(created.episode_id)
    engine.run(engine.manager.close(created.episode_id))
    return state, observation


@pytest.mark.parametrize("task_id", SOLVED_TASKS)
@pytest.mark.parametrize("seed", [1, 7])
def test_scripted_policy_reaches_browsergym_success(engine, task_id: str, seed: int) -> None:
    state, observation = play(engine, task_id, seed, POLICIES[task_id])
    assert state.success, (task_id, state.failure_reason)
    assert state.failure_reason is FailureReason.SUCCESS
    assert observation["episode_over"] is True
    records = engine.manager.trajectory(state.episode_id)
    assert records[-1].task_reward > 0 and records[-1].task_done


@pytest.mark.parametrize("task_id", ["miniwob.click-button", "miniwob.click-test-2"])
def test_wrong_action_gives_task_failure(engine, task_id: str) -> None:
    state, observation = play(engine, task_id, 3, wrong_click, max_steps=1)
    assert not state.success
    assert state.done
    assert state.failure_reason is not FailureReason.SUCCESS
    assert engine.manager.trajectory(state.episode_id)[-1].task_reward <= 0
    assert observation["episode_over"] is True
