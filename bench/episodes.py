"""What one benchmarked episode produced, whichever side ran it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_STEPS = 10
"""Both sides stop an episode after this many actions; the scripted policies need at most 4."""


@dataclass
class EpisodeResult:
    side: str
    task_id: str
    seed: int
    goal: str = ""
    reset_s: float = float("nan")
    step_s: list[float] = field(default_factory=list)
    policy_s: list[float] = field(default_factory=list)
    wall_s: float = float("nan")
    success: bool = False
    actions: list[Any] = field(default_factory=list)
    error: str | None = None
    # Where the time went, in seconds, as each side reports it (lists are per step).
    reset_parts: dict[str, float] = field(default_factory=dict)
    step_parts: dict[str, list[float]] = field(default_factory=dict)

    @property
    def completed(self) -> bool:
        """Reset and played to the end (won or lost) without a harness or browser error."""
        return self.error is None

    def add_step_part(self, name: str, seconds: float) -> None:
        self.step_parts.setdefault(name, []).append(seconds)
