"""Whole episodes the way a trainer runs them: the control API on one side, MCP on the other.

`arollout` / `rollout` create each episode on the control API, act as its agent on the
MCP door with the episode's agent token (one `AgentSeat` per concurrent episode), feed
the policy the agent-visible observation, send the tool calls it picks, then read the
server-side rewards from the control API.
For scripted play and evaluation; a model trains through `safebrowse.trl`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from control_api.schemas import TrajectoryResponse, TrajectoryStep
from safebrowse.client._async import AsyncControlClient
from safebrowse.client._errors import ControlAPIError
from safebrowse.client._seat import AgentSeat
from safebrowse.client._sync import ControlClient

Observation = dict[str, Any]
"""What the agent sees: the structured content of an MCP tool result (`Observation.model_dump()`)."""
ToolCall = tuple[str, dict[str, Any]]
Policy = Callable[[Observation], "ToolCall | None | Awaitable[ToolCall | None]"]
"""Picks the next tool call from an observation; None means the policy has nothing more to do."""


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to roll out: a task and, optionally, its seed and create options."""

    task_id: str
    seed: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class EpisodeRollout:
    """One finished episode: what the policy did and what the server made of it."""

    episode_id: str
    task_id: str
    seed: int
    goal: str
    actions: list[ToolCall]
    step_rewards: list[float]
    total_reward: float
    success: bool
    failure_reason: str
    trajectory: TrajectoryResponse

    @property
    def steps(self) -> list[TrajectoryStep]:
        return self.trajectory.steps


@dataclass
class RolloutBatch:
    """Rollouts in the order their episodes were given."""

    episodes: list[EpisodeRollout]

    def __len__(self) -> int:
        return len(self.episodes)

    def __iter__(self) -> Iterator[EpisodeRollout]:
        return iter(self.episodes)

    def __getitem__(self, index: int) -> EpisodeRollout:
        return self.episodes[index]

    @property
    def rewards(self) -> list[float]:
        """Each episode's return (sum of its step totals)."""
        return [episode.total_reward for episode in self.episodes]


async def _decide(policy: Policy, observation: Observation) -> ToolCall | None:
    decision = policy(observation)
    if inspect.isawaitable(decision):
        decision = await decision
    return decision


async def _run_episode(
    control: AsyncControlClient, seat: AgentSeat, spec: EpisodeSpec, policy: Policy, max_steps: int | None,
    close: bool,
) -> EpisodeRollout:
    created = await control.create_episode(spec.task_id, seed=spec.seed, **dict(spec.options))
    actions: list[ToolCall] = []
    try:
        agent = await seat.take(created.mcp_url, created.agent_token)
        result = await agent.call_tool("observe", {})
        observation = result.structured_content
        while observation is not None and not observation.get("episode_over", False):
            if max_steps is not None and len(actions) >= max_steps:
                break
            decision = await _decide(policy, observation)
            if decision is None:
                break
            tool, arguments = decision
            actions.append((tool, dict(arguments)))
            result = await agent.call_tool(tool, dict(arguments))
            observation = result.structured_content
            if observation is None and not result.is_error:
                # A text-only answer (ask_oracle): show it with a fresh observation.
                answer = " ".join(getattr(block, "text", "") for block in result.content)
                fresh = await agent.call_tool("observe", {})
                observation = None if fresh.structured_content is None else {
                    **fresh.structured_content, "oracle_answer": answer}
        state = await control.get_episode(created.episode_id)
        if not state.done:
            # The policy stopped or hit the client-side cap: the trainer ends the episode.
            await control.end_episode(created.episode_id)
        trajectory = await control.get_trajectory(created.episode_id)
    finally:
        if close:
            try:
                await control.close_episode(created.episode_id)
            except (ControlAPIError, httpx.HTTPError):
                pass
    return EpisodeRollout(
        episode_id=created.episode_id,
        task_id=created.task_id,
        seed=created.seed,
        goal=created.goal,
        actions=actions,
        step_rewards=[step.reward.total for step in trajectory.steps],
        total_reward=trajectory.cumulative_reward,
        success=trajectory.success,
        failure_reason=trajectory.failure_reason.value,
        trajectory=trajectory,
    )


async def arollout(
    control: AsyncControlClient,
    episodes: Sequence[str | EpisodeSpec],
    policy: Policy,
    *,
    max_steps: int | None = None,
    concurrency: int = 1,
    close: bool = True,
) -> RolloutBatch:
    """Run `policy` through one episode per entry of `episodes`, at most `concurrency` at a time.

    An episode stops when the agent's observation says it is over, when the policy
    returns None, or after `max_steps` policy actions; in the last two cases the
    episode is ended through the control API (failure reason client_step_cap).
    Episodes are closed afterwards unless `close` is False.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    specs = [EpisodeSpec(item) if isinstance(item, str) else item for item in episodes]
    # One agent seat per concurrent episode: each plays one episode after another with one
    # MCP client, and the free seats bound how many run at once.
    seats: list[AgentSeat] = [AgentSeat() for _ in range(min(concurrency, len(specs)))]
    free: asyncio.Queue[AgentSeat] = asyncio.Queue()
    for seat in seats:
        free.put_nowait(seat)

    async def one(spec: EpisodeSpec) -> EpisodeRollout:
        seat = await free.get()
        try:
            return await _run_episode(control, seat, spec, policy, max_steps, close)
        finally:
            free.put_nowait(seat)

    try:
        # Every episode runs to its end before the seats close, even when one fails; the first
        # failure is then raised.
        outcomes = await asyncio.gather(*(one(spec) for spec in specs), return_exceptions=True)
    finally:
        for seat in seats:
            await seat.aclose()
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return RolloutBatch([outcome for outcome in outcomes if isinstance(outcome, EpisodeRollout)])


def rollout(
    control: ControlClient,
    episodes: Sequence[str | EpisodeSpec],
    policy: Policy,
    *,
    max_steps: int | None = None,
    concurrency: int = 1,
    close: bool = True,
) -> RolloutBatch:
    """`arollout` for synchronous callers (a TRL `rollout_func`). Not for use inside a running event loop.

    The episodes run on an `AsyncControlClient` with `control`'s server, token and timeouts.
    """

    async def run() -> RolloutBatch:
        async with AsyncControlClient(control.base_url, control.token, timeout=control.timeout) as client:
            return await arollout(client, episodes, policy, max_steps=max_steps,
                                  concurrency=concurrency, close=close)

    return asyncio.run(run())


__all__ = [
    "EpisodeRollout",
    "EpisodeSpec",
    "Observation",
    "Policy",
    "RolloutBatch",
    "ToolCall",
    "arollout",
    "rollout",
]
