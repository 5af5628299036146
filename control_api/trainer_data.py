"""What the trainer's door keeps with each episode, in the episode book: its reward weights
and whether its difficulty was chosen by the curriculum.

Kept as JSON (`{"reward_weights": {...}, "auto_difficulty": bool}`) so rewards read after a
restart, and rewards in an export, are scored with the weights the trainer chose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from engine.reward import RewardWeights

DEFAULT_WEIGHTS = RewardWeights()
REWARD_WEIGHTS = "reward_weights"
AUTO_DIFFICULTY = "auto_difficulty"


def trainer_data(weights: RewardWeights, auto_difficulty: bool) -> dict[str, Any]:
    """What this door keeps with an episode, as JSON."""
    return {REWARD_WEIGHTS: weights.model_dump(mode="json"), AUTO_DIFFICULTY: auto_difficulty}


def weights_in(data: Mapping[str, Any]) -> RewardWeights:
    """The weights kept in an episode's trainer data; the defaults if there are none (stdio)."""
    chosen = data.get(REWARD_WEIGHTS)
    if not isinstance(chosen, Mapping):
        return DEFAULT_WEIGHTS
    try:
        return RewardWeights.model_validate(chosen)
    except ValidationError:
        return DEFAULT_WEIGHTS


__all__ = ["AUTO_DIFFICULTY", "DEFAULT_WEIGHTS", "REWARD_WEIGHTS", "trainer_data", "weights_in"]
