"""The agent's side of an episode: every call it made and the text it got back.

Step records say what happened for the trainer; the transcript says what the agent
saw, so that an episode can become training data in the chat format a model is
trained on (the goal and the page, then each tool call and its result). The text is
rendered by the same function the door uses (`engine.agent_view.page_text`), so it is
exactly what the agent read. The episode collects exchanges on its worker thread and
hands them to the episode book, which keeps them; nothing here reaches the agent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AgentExchange:
    """One tool call of the agent and the text result it received."""

    seq: int
    """Order within the episode, from 1."""
    tool: str
    """`observe`, or the action tool the agent called."""
    arguments: dict[str, Any]
    """The arguments as recorded (JSON-safe, long strings cut), as in step records."""
    result_text: str
    is_error: bool
    step_index: int | None
    """The step this call was, or None for `observe` (not a step)."""
    at: float
    """When the answer was ready (seconds since the epoch)."""


class Transcript:
    """An episode's exchanges, collected on its worker thread while something keeps them.

    Off until `keep()` is called (by the episode book): with nothing to hand them to, an
    episode would only grow. `drain()` hands each exchange over exactly once.
    """

    def __init__(self) -> None:
        self.kept = False
        self._pending: list[AgentExchange] = []
        self._count = 0

    def keep(self) -> None:
        self.kept = True

    def note(self, tool: str, arguments: dict[str, Any], result_text: str, is_error: bool,
             step_index: int | None) -> None:
        """One call of the agent and the text it got back."""
        if not self.kept:
            return
        self._count += 1
        self._pending.append(AgentExchange(
            seq=self._count, tool=tool, arguments=arguments, result_text=result_text,
            is_error=is_error, step_index=step_index, at=time.time(),
        ))

    def drain(self) -> list[AgentExchange]:
        """The exchanges noted since the last drain."""
        drained, self._pending = self._pending, []
        return drained
