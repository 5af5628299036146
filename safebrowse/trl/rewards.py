"""TRL reward functions that read each episode's reward from the control API, computed server-side."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from control_api.schemas import TrajectoryResponse
from safebrowse.trl.environment import SafebrowseEnvironment

CHANNELS = ("task_completion", "action_validity", "efficiency", "non_repetition", "help_independence",
            "trajectory_quality")
"""The rubric channels of a step's reward breakdown (each 0..1), for `channel_reward`."""


def _finished(environment: SafebrowseEnvironment) -> TrajectoryResponse:
    """The episode's trajectory after the rollout: a running episode is ended first
    (`client_step_cap`: the model stopped calling tools), so its reward is final."""
    episode_id = environment.episode_id
    if episode_id is None:
        raise ValueError("the environment has no episode: was reset() called?")
    control = environment._control
    if control.get_episode(episode_id).status.value == "running":
        control.end_episode(episode_id)
    return control.get_trajectory(episode_id)


def env_reward(environments: Sequence[SafebrowseEnvironment], **kwargs: Any) -> list[float]:
    """TRL reward function: each episode's return as the server scored it (its `reward_weights`)."""
    trajectories = [_finished(environment) for environment in environments]
    log_metric = kwargs.get("log_metric")
    if callable(log_metric) and trajectories:
        count = len(trajectories)
        log_metric("safebrowse/success", sum(trajectory.success for trajectory in trajectories) / count)
        log_metric("safebrowse/steps", sum(len(trajectory.steps) for trajectory in trajectories) / count)
    return [float(trajectory.cumulative_reward) for trajectory in trajectories]


def channel_reward(weights: Mapping[str, float]) -> Callable[..., list[float]]:
    """A TRL reward function over the rubric's channels (`CHANNELS`, each 0..1) at the episode's
    last step, weighted: `channel_reward({"task_completion": 1.0, "efficiency": 0.2})`."""
    unknown = set(weights) - set(CHANNELS)
    if unknown:
        raise ValueError(f"unknown channels {sorted(unknown)}; the channels are {list(CHANNELS)}")

    def reward(environments: Sequence[SafebrowseEnvironment], **kwargs: Any) -> list[float]:
        rewards = []
        for environment in environments:
            steps = _finished(environment).steps
            last = steps[-1].reward.model_dump() if steps else dict.fromkeys(CHANNELS, 0.0)
            rewards.append(sum(weight * float(last[channel]) for channel, weight in weights.items()))
        return rewards

    reward.__name__ = "channel_reward_" + "_".join(sorted(weights))
    return reward


def reward_breakdown(environment: SafebrowseEnvironment) -> list[dict[str, Any]]:
    """Each step's reward breakdown of the environment's episode, for logging."""
    if environment.episode_id is None:
        return []
    trajectory = environment._control.get_trajectory(environment.episode_id)
    return [step.reward.model_dump(mode="json") for step in trajectory.steps]


__all__ = ["CHANNELS", "channel_reward", "env_reward", "reward_breakdown"]
