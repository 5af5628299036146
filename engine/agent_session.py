"""The engine's side of the agent port: one episode, bound for its agent.

`AgentSession` implements `engine.agent_view.AgentPort`. It is what the manager
hands the agent door for a token (HTTP) or for the one episode of a stdio process.
It carries the episode id and the manager's job runner, and turns every engine
answer into agent-visible types before returning: a step's record goes to the
manager's step observers (metrics), never back to the caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.agent_view.observation import page_text
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
            text = page_text(observation)
            episode.transcript.note("observe", {"screenshot": screenshot}, text, False, None)
            return Screen(observation=observation, image_png=image, text=text)

        return await self._manager.run_for_agent(self._episode_id, job)

    async def act(self, tool: str, arguments: dict[str, Any]) -> AgentStepResult:
        def job(episode: Episode) -> tuple[AgentStepResult, StepRecord]:
            observation, record = episode.step(tool, arguments)
            text = page_text(observation, record.error)
            episode.transcript.note(tool, record.arguments, text, record.error is not None, record.index)
            return AgentStepResult(observation=observation, error=record.error, text=text), record

        result, record = await self._manager.run_for_agent(self._episode_id, job)
        self._manager.after_step(self._episode_id, record)
        return result

    async def consult_oracle(self, arguments: dict[str, Any]) -> OracleReply:
        def job(episode: Episode) -> tuple[str, StepRecord]:
            question = arguments.get("question")
            if set(arguments) != {"question"} or not isinstance(question, str):
                # Malformed: parsed, refused and recorded by the episode like any invalid action.
                _observation, record = episode.step("ask_oracle", arguments)
                answer = record.error or "Invalid arguments for ask_oracle."
            else:
                answer, record = episode.ask_oracle(question)
            episode.transcript.note("ask_oracle", record.arguments, answer, not record.valid, record.index)
            return answer, record

        answer, record = await self._manager.run_for_agent(self._episode_id, job)
        self._manager.after_step(self._episode_id, record)
        return OracleReply(answer=answer, refused=not record.valid)


__all__ = ["AgentSession"]
