"""Episodes through safebrowse's real doors, as a trainer and its agent run them.

Reset is what a trainer waits for before its policy can act: `POST /v1/episodes`
on the control API, taking the side's MCP client for the episode's agent token
(`AgentSeat`: one client plays the side's episodes one after another, as a trainer's
agent slot does) and the first `observe`. A step is one MCP `tools/call` round trip over streamable
HTTP; its structured content is the next observation. After the episode the
trainer reads the server-side verdict (`GET /v1/episodes/{id}`) and closes the
episode (`DELETE`), both inside the episode's wall time. The server's own step
records (action, validation and observation times) are read afterwards,
outside every timer, to show where the time goes.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from bench.episodes import MAX_STEPS, EpisodeResult
from safebrowse.client import AgentSeat, AsyncControlClient
from safebrowse.scripted import Policy

SIDE = "safebrowse"


class SafebrowseSide:
    """Runs episodes against a live server; one instance per client event loop."""

    def __init__(self, control_url: str, control_token: str, max_steps: int = MAX_STEPS) -> None:
        self.control = AsyncControlClient(control_url, control_token)
        self.seat = AgentSeat()
        self.max_steps = max_steps

    async def aclose(self) -> None:
        await self.seat.aclose()
        await self.control.aclose()

    async def episode(self, task_id: str, seed: int, policy: Policy) -> EpisodeResult:
        result = EpisodeResult(SIDE, task_id, seed)
        started = time.perf_counter()
        episode_id: str | None = None
        try:
            t0 = time.perf_counter()
            created = await self.control.create_episode(task_id, seed=seed, max_steps=self.max_steps)
            episode_id = created.episode_id
            t1 = time.perf_counter()
            agent = await self.seat.take(created.mcp_url, created.agent_token)
            t2 = time.perf_counter()
            first = await agent.call_tool("observe", {})
            t3 = time.perf_counter()
            result.reset_s = t3 - t0
            result.reset_parts = {"create": t1 - t0, "connect": t2 - t1, "observe": t3 - t2}
            observation: dict[str, Any] | None = first.structured_content
            if observation is None:
                raise RuntimeError(f"the first observe returned no observation: {first.content}")
            result.goal = observation["goal"]
            while not observation.get("episode_over") and len(result.actions) < self.max_steps:
                p0 = time.perf_counter()
                decision = policy(observation)
                result.policy_s.append(time.perf_counter() - p0)
                if decision is None:
                    break
                tool, arguments = decision
                result.actions.append((tool, dict(arguments)))
                s0 = time.perf_counter()
                answer = await agent.call_tool(tool, dict(arguments))
                result.step_s.append(time.perf_counter() - s0)
                observation = answer.structured_content
                if observation is None:  # "the episode is over": nothing more to do
                    break
            state = await self.control.get_episode(episode_id)
            if not state.done:
                await self.control.end_episode(episode_id)
            result.success = state.success
        except Exception as error:  # noqa: BLE001 - reported in the summary, the run goes on
            result.error = f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=3)}"
        finally:
            if episode_id is not None:
                try:
                    await self.control.close_episode(episode_id)
                except Exception as error:  # noqa: BLE001
                    result.error = result.error or f"close failed: {error}"
            result.wall_s = time.perf_counter() - started
        if episode_id is not None and result.error is None:
            await self._read_breakdown(episode_id, result)
        return result

    async def _read_breakdown(self, episode_id: str, result: EpisodeResult) -> None:
        """The engine's own timings of each step, from the trajectory (not timed)."""
        state = await self.control.get_episode(episode_id)
        result.reset_parts["engine_setup"] = state.setup_ms / 1000
        trajectory = await self.control.get_trajectory(episode_id)
        for step, round_trip in zip(trajectory.steps, result.step_s):
            engine = (step.action_ms + step.validate_ms + step.observation_ms) / 1000
            result.add_step_part("engine_action", step.action_ms / 1000)
            result.add_step_part("engine_settle_validate", step.validate_ms / 1000)
            result.add_step_part("engine_observe", step.observation_ms / 1000)
            result.add_step_part("transport_and_queue", max(0.0, round_trip - engine))
