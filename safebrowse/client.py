"""A Python client for the trainer door, and a rollout helper that speaks MCP to the agent door.

`ControlClient` (sync) and `AsyncControlClient` wrap the control API one method per
route and return the same pydantic models the server validates against
(`control_api.schemas`). Failures raise `ControlAPIError` with the server's
`{error, detail}`.

`arollout` / `rollout` run a policy through whole episodes the way a trainer does:
create each episode on the control API, connect to the MCP door with the episode's
agent token, feed the policy the agent-visible observation, send the tool calls it
picks, then read the server-side rewards from the control API. The result has the
shape TRL's GRPO `rollout_func` forwards to reward functions (see `RolloutBatch`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import BaseModel

from control_api.schemas import (
    CreatedEpisodeResponse,
    CreateEpisodeRequest,
    EpisodeList,
    EpisodeStateResponse,
    EpisodeSummary,
    HealthResponse,
    TaskInfo,
    TaskList,
    TrajectoryResponse,
    TrajectoryStep,
)
from engine.reward import RewardWeights

if TYPE_CHECKING:
    from mcp import Client

M = TypeVar("M", bound=BaseModel)
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)

Observation = dict[str, Any]
"""What the agent sees: the structured content of an MCP tool result (`Observation.model_dump()`)."""
ToolCall = tuple[str, dict[str, Any]]
Policy = Callable[[Observation], "ToolCall | None | Awaitable[ToolCall | None]"]
"""Picks the next tool call from an observation; None means the policy has nothing more to do."""


class ControlAPIError(Exception):
    """An error answer of the control API."""

    def __init__(self, status: int, error: str, detail: str, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.body = dict(body or {})


def _raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    raise ControlAPIError(
        response.status_code,
        str(body.get("error", "http_error")),
        str(body.get("detail", response.text[:500])),
        body,
    )


def _create_body(
    task_id: str,
    seed: int | None,
    difficulty: str | None,
    reward_weights: RewardWeights | Mapping[str, float] | None,
    limits: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON of a create request, validated here first so mistakes fail before the network."""
    weights = RewardWeights.model_validate(reward_weights) if reward_weights is not None else None
    request = CreateEpisodeRequest(task_id=task_id, seed=seed, difficulty=difficulty,
                                   reward_weights=weights, **limits)
    return request.model_dump(mode="json", exclude_none=True)


class ControlClient:
    """Synchronous client of the control API."""

    def __init__(self, base_url: str, token: str, *, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> "ControlClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.disconnect()

    def disconnect(self) -> None:
        """Release the HTTP connections (episodes stay as they are)."""
        self._http.close()

    def _call(self, method: str, path: str, model: type[M], **kwargs: Any) -> M:
        response = self._http.request(method, path, **kwargs)
        _raise_for_error(response)
        return model.model_validate_json(response.content)

    def health(self) -> HealthResponse:
        return self._call("GET", "/v1/health", HealthResponse)

    def tasks(self) -> list[TaskInfo]:
        return self._call("GET", "/v1/tasks", TaskList).tasks

    def create_episode(
        self,
        task_id: str,
        *,
        seed: int | None = None,
        difficulty: str | None = None,
        reward_weights: RewardWeights | Mapping[str, float] | None = None,
        **limits: Any,
    ) -> CreatedEpisodeResponse:
        """Reset: a new episode. `limits` are the create request's limit fields (max_steps, ...)."""
        body = _create_body(task_id, seed, difficulty, reward_weights, limits)
        return self._call("POST", "/v1/episodes", CreatedEpisodeResponse, json=body)

    def episodes(self, status: str | None = None) -> list[EpisodeSummary]:
        params = {"status": status} if status else None
        return self._call("GET", "/v1/episodes", EpisodeList, params=params).episodes

    def state(self, episode_id: str) -> EpisodeStateResponse:
        return self._call("GET", f"/v1/episodes/{episode_id}", EpisodeStateResponse)

    def trajectory(self, episode_id: str, *, screenshots: bool = False) -> TrajectoryResponse:
        params = {"screenshots": "true"} if screenshots else None
        return self._call("GET", f"/v1/episodes/{episode_id}/trajectory", TrajectoryResponse, params=params)

    def end(self, episode_id: str) -> EpisodeStateResponse:
        """End a running episode now, with failure reason client_step_cap."""
        return self._call("POST", f"/v1/episodes/{episode_id}/end", EpisodeStateResponse, json={})

    def close(self, episode_id: str) -> EpisodeStateResponse:
        """Close an episode and free its browser context; its record stays readable."""
        return self._call("DELETE", f"/v1/episodes/{episode_id}", EpisodeStateResponse)

    def metrics(self) -> str:
        response = self._http.get("/metrics")
        _raise_for_error(response)
        return response.text


class AsyncControlClient:
    """Asynchronous client of the control API; the same methods as `ControlClient`, awaited."""

    def __init__(self, base_url: str, token: str, *, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> "AsyncControlClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    async def disconnect(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, model: type[M], **kwargs: Any) -> M:
        response = await self._http.request(method, path, **kwargs)
        _raise_for_error(response)
        return model.model_validate_json(response.content)

    async def health(self) -> HealthResponse:
        return await self._call("GET", "/v1/health", HealthResponse)

    async def tasks(self) -> list[TaskInfo]:
        return (await self._call("GET", "/v1/tasks", TaskList)).tasks

    async def create_episode(
        self,
        task_id: str,
        *,
        seed: int | None = None,
        difficulty: str | None = None,
        reward_weights: RewardWeights | Mapping[str, float] | None = None,
        **limits: Any,
    ) -> CreatedEpisodeResponse:
        body = _create_body(task_id, seed, difficulty, reward_weights, limits)
        return await self._call("POST", "/v1/episodes", CreatedEpisodeResponse, json=body)

    async def episodes(self, status: str | None = None) -> list[EpisodeSummary]:
        params = {"status": status} if status else None
        return (await self._call("GET", "/v1/episodes", EpisodeList, params=params)).episodes

    async def state(self, episode_id: str) -> EpisodeStateResponse:
        return await self._call("GET", f"/v1/episodes/{episode_id}", EpisodeStateResponse)

    async def trajectory(self, episode_id: str, *, screenshots: bool = False) -> TrajectoryResponse:
        params = {"screenshots": "true"} if screenshots else None
        return await self._call("GET", f"/v1/episodes/{episode_id}/trajectory", TrajectoryResponse, params=params)

    async def end(self, episode_id: str) -> EpisodeStateResponse:
        return await self._call("POST", f"/v1/episodes/{episode_id}/end", EpisodeStateResponse, json={})

    async def close(self, episode_id: str) -> EpisodeStateResponse:
        return await self._call("DELETE", f"/v1/episodes/{episode_id}", EpisodeStateResponse)

    async def metrics(self) -> str:
        response = await self._http.get("/metrics")
        _raise_for_error(response)
        return response.text


# -- rollouts -------------------------------------------------------------------------------


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
    """Rollouts in the order their episodes were given.

    `trl_fields()` is what a TRL GRPO `rollout_func` adds to its return value. TRL
    wants `rollout_func(prompts, trainer) -> dict` with `prompt_ids`,
    `completion_ids` and `logprobs` (which only the trainer's own generation can
    produce) and forwards every other key, one value per prompt, to the reward
    functions as keyword arguments. So a trainer returns
    `{"prompt_ids": ..., "completion_ids": ..., "logprobs": ..., **batch.trl_fields()}`
    and passes `reward_funcs=[env_reward]`.
    """

    episodes: list[EpisodeRollout]

    def __len__(self) -> int:
        return len(self.episodes)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.episodes)

    def __getitem__(self, index: int) -> EpisodeRollout:
        return self.episodes[index]

    @property
    def rewards(self) -> list[float]:
        """Each episode's return (sum of its step totals)."""
        return [episode.total_reward for episode in self.episodes]

    def trl_fields(self) -> dict[str, list[Any]]:
        return {
            "env_reward": self.rewards,
            "env_step_rewards": [list(episode.step_rewards) for episode in self.episodes],
            "env_success": [episode.success for episode in self.episodes],
            "env_failure_reason": [episode.failure_reason for episode in self.episodes],
            "env_episode_id": [episode.episode_id for episode in self.episodes],
            "env_task_id": [episode.task_id for episode in self.episodes],
        }


def env_reward(completions: Sequence[Any], env_reward: Sequence[float], **kwargs: Any) -> list[float]:
    """A TRL reward function that passes the server-side episode returns through."""
    return [float(value) for value in env_reward]


@asynccontextmanager
async def agent_client(mcp_url: str, agent_token: str, **client_options: Any) -> AsyncIterator[Client]:
    """An `mcp` SDK client connected to the MCP door as one episode's agent.

    The agent token goes in the `Authorization` header of every request, over
    streamable HTTP. `client_options` go to `mcp.Client` unchanged.
    """
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {agent_token}"})
    async with http, Client(streamable_http_client(mcp_url, http_client=http), **client_options) as client:
        yield client


async def _decide(policy: Policy, observation: Observation) -> ToolCall | None:
    decision = policy(observation)
    if inspect.isawaitable(decision):
        decision = await decision
    return decision  # type: ignore[return-value]


async def _run_episode(
    control: AsyncControlClient, spec: EpisodeSpec, policy: Policy, max_steps: int | None, close: bool
) -> EpisodeRollout:
    created = await control.create_episode(spec.task_id, seed=spec.seed, **dict(spec.options))
    actions: list[ToolCall] = []
    try:
        async with agent_client(created.mcp_url, created.agent_token) as agent:
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
        state = await control.state(created.episode_id)
        if not state.done:
            # The policy stopped or hit the client-side cap: the trainer ends the episode.
            await control.end(created.episode_id)
        trajectory = await control.trajectory(created.episode_id)
    finally:
        if close:
            try:
                await control.close(created.episode_id)
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
    gate = asyncio.Semaphore(concurrency)

    async def one(spec: EpisodeSpec) -> EpisodeRollout:
        async with gate:
            return await _run_episode(control, spec, policy, max_steps, close)

    return RolloutBatch(list(await asyncio.gather(*(one(spec) for spec in specs))))


def rollout(
    control: ControlClient,
    episodes: Sequence[str | EpisodeSpec],
    policy: Policy,
    *,
    max_steps: int | None = None,
    concurrency: int = 1,
    close: bool = True,
) -> RolloutBatch:
    """`arollout` for synchronous callers (a TRL `rollout_func`). Not for use inside a running event loop."""

    async def run() -> RolloutBatch:
        async with AsyncControlClient(control.base_url, control.token, timeout=control.timeout) as client:
            return await arollout(client, episodes, policy, max_steps=max_steps,
                                  concurrency=concurrency, close=close)

    return asyncio.run(run())


__all__ = [
    "AsyncControlClient",
    "ControlAPIError",
    "ControlClient",
    "EpisodeRollout",
    "EpisodeSpec",
    "Policy",
    "RolloutBatch",
    "agent_client",
    "arollout",
    "env_reward",
    "rollout",
]
