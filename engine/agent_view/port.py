"""The agent port: everything the agent door may ask of one episode.

The MCP door holds nothing but an `AgentPort` per call. Its methods return only
the agent-visible types of this package, so a tool handler has no reference
through which to reach a reward, a step record, the episode's internals or the
manager: the door cannot leak what it cannot name. The engine implements the
port (`engine.agent_session.AgentSession`); the door only sees this protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from engine.agent_view.observation import Observation


class EpisodeOverError(Exception):
    """The episode accepts no further actions. The message never says why."""

    def __init__(self) -> None:
        super().__init__("The episode is over: no further actions are accepted.")


class EvaluationOverError(EpisodeOverError):
    """Every episode of the agent's evaluation (a suite) has been run. Like its parent, the
    message says nothing about how any of them went."""

    MESSAGE = "The evaluation is over: every task of it has been run. No further actions are accepted."

    def __init__(self) -> None:
        Exception.__init__(self, self.MESSAGE)


class StepNotRecordedError(Exception):
    """The server cannot record the call now (its episode book refuses writes): the agent
    should try again later. The message says only that."""

    MESSAGE = "The server cannot record this step now; try again later."

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


@dataclass(frozen=True)
class AgentStepResult:
    """What an agent gets back from an action: the new page and, if any, why the action failed."""

    observation: Observation
    error: str | None
    text: str
    """The result as the agent reads it (`page_text` of the page and the error), rendered once:
    the door sends it and the episode's transcript keeps it."""


@dataclass(frozen=True)
class OracleReply:
    """What an agent gets back from ask_oracle: a hint, or why there is none (`refused`)."""

    answer: str
    refused: bool


@dataclass(frozen=True)
class Screen:
    """An observation without acting, with the viewport's PNG when one was asked for."""

    observation: Observation
    image_png: bytes | None
    text: str
    """The page as the agent reads it (`page_text`), rendered once for the door and the transcript."""


class AgentPort(Protocol):
    """One episode, as its agent may use it. Every method raises `EpisodeOverError` once the
    episode accepts no more actions (ended, closed or forgotten), and says nothing about why;
    and `StepNotRecordedError` while the server cannot record the call (it keeps what it has)."""

    @property
    def episode_id(self) -> str:
        """Which episode this port opens: the door's rate limits are kept per episode."""
        ...

    @property
    def goal(self) -> str:
        """The task's goal, as the agent's observations show it."""
        ...

    async def observe(self, screenshot: bool = False) -> Screen:
        """Read the page without acting; not a step."""
        ...

    async def act(self, tool: str, arguments: dict[str, Any]) -> AgentStepResult:
        """Run one action by its tool name, with the arguments as the agent sent them.

        The engine parses them: a malformed call is a recorded invalid step, answered
        with an error the model can act on."""
        ...

    async def consult_oracle(self, arguments: dict[str, Any]) -> OracleReply:
        """Ask the operator's oracle for a hint (`arguments` as the agent sent them, with its
        `question`); a step, charged against the oracle budget. Malformed arguments are a
        recorded invalid step, answered as a refusal that says what was wrong."""
        ...
