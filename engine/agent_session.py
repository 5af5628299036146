"""The engine's side of the agent port: one episode, bound for its agent.

`AgentSession` implements `engine.agent_view.AgentPort`. It is what the manager
hands the agent door for a token (HTTP) or for the one episode of a stdio process.
It carries the episode id and the manager's job runner, and turns every engine
answer into agent-visible types before returning: a step's record goes to the
manager's step observers (metrics), never back to the caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.agent_view.observation import Observation
from engine.agent_view.port import AgentStepResult, OracleReply, Screen
from engine.episode import Episode
from engine.records import StepRecord

if TYPE_CHECKING:
    from engine.manager import EpisodeManager


class AgentSession:
    """Everything an agent may do to its one episode. Returns agent-visible types only."""

    def __init__(self, manager: EpisodeManager, episode_id: str) -> None:
        self._manager = manager
        self._episode_id = episode_id

    @property
    def episode_id(self) -> str:
        return self._episode_id

    @property
    def goal(self) -> str:
        return self._manager.state(self._episode_id).goal

    async def observe(self, screenshot: bool = False) -> Screen:
        def job(episode: Episode) -> Screen:
            observation, image = episode.observe(screenshot)
            return Screen(observation=observation, image_png=image)

        return await self._manager.run_for_agent(self._episode_id, job)

    async def act(self, tool: str, arguments: dict[str, Any]) -> AgentStepResult:
        def job(episode: Episode) -> tuple[Observation, StepRecord]:
            return episode.step(tool, arguments)

        observation, record = await self._manager.run_for_agent(self._episode_id, job)
        self._manager.after_step(self._episode_id, record)
        return AgentStepResult(observation=observation, error=record.error)

    async def consult_oracle(self, question: str) -> OracleReply:
        def job(episode: Episode) -> tuple[str, StepRecord]:
            return episode.ask_oracle(question)

        answer, record = await self._manager.run_for_agent(self._episode_id, job)
        self._manager.after_step(self._episode_id, record)
        return OracleReply(answer=answer, refused=not record.valid)


__all__ = ["AgentSession"]
