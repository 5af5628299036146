"""An episode's access to the operator's oracle, within the episode's budget.

The oracle itself (`engine.oracle` builds the configured back-end) only turns a
question into a hint. The desk decides whether the question is asked at all:
no oracle configured, or the budget used up, is answered here; an oracle that
fails is not charged. The episode records the call and applies its limits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# An oracle answers (question, goal, observation text, hints) with a hint.
Oracle = Callable[[str, str, str, tuple[str, ...]], str]

NO_ORACLE = "No oracle is configured for this episode; continue from the observation."
BUDGET_USED_UP = "The oracle budget for this episode is used up; continue without hints."
UNAVAILABLE = "The oracle is unavailable right now; this call was not charged."


class OracleUnavailableError(Exception):
    """The oracle back-end failed; the call is not charged."""


@dataclass(frozen=True)
class OracleAnswer:
    """What the agent is told (`text`), or why it was refused (`refusal`); whether it was charged."""

    text: str
    refusal: str | None
    charged: bool


class OracleDesk:
    """Asks the oracle for one episode and counts the calls charged to its budget."""

    def __init__(self, oracle: Oracle | None, budget: int) -> None:
        self._oracle = oracle
        self._budget = budget
        self.calls = 0

    def consult(self, question: str, goal: str, page_text: Callable[[], str], hints: tuple[str, ...]) -> OracleAnswer:
        """Ask `question`; `page_text` reads the page only when the oracle is really asked."""
        if self._oracle is None:
            return OracleAnswer(NO_ORACLE, None, charged=False)
        if self.calls >= self._budget:
            self.calls += 1
            return OracleAnswer("", BUDGET_USED_UP, charged=True)
        try:
            answer = self._oracle(question, goal, page_text(), hints)
        except OracleUnavailableError:
            return OracleAnswer(UNAVAILABLE, None, charged=False)
        self.calls += 1
        return OracleAnswer(answer, None, charged=True)


__all__ = ["Oracle", "OracleAnswer", "OracleDesk", "OracleUnavailableError"]
