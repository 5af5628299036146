"""What the control API keeps for itself, next to the engine's episodes.

Reward weights belong to the trainer door, not to the engine: the engine records
what happened, and this door scores it with the weights its trainer chose. The
curriculum behind `difficulty: "auto"` is the trainer's too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from control_api.curriculum import Curriculum
from control_api.metrics import Metrics
from engine.manager import EpisodeManager
from engine.reward import RewardWeights

DEFAULT_WEIGHTS = RewardWeights()


@dataclass
class ControlState:
    manager: EpisodeManager
    mcp_url: str
    metrics: Metrics = field(default_factory=Metrics)
    weights: dict[str, RewardWeights] = field(default_factory=dict)
    curriculum: Curriculum = field(default_factory=Curriculum)
    auto_difficulty: set[str] = field(default_factory=set)

    def weights_for(self, episode_id: str) -> RewardWeights:
        """The episode's weights; episodes created elsewhere (stdio) get the defaults."""
        return self.weights.get(episode_id, DEFAULT_WEIGHTS)

    def remember(self, episode_id: str, weights: RewardWeights, auto_difficulty: bool) -> None:
        """Keep what the trainer chose at creation, forgetting episodes the manager no longer holds."""
        known = {episode.id for episode in self.manager.episodes()}
        for stale in [eid for eid in self.weights if eid not in known]:
            del self.weights[stale]
        self.auto_difficulty &= known
        self.weights[episode_id] = weights
        if auto_difficulty:
            self.auto_difficulty.add(episode_id)


def control_state(request: Request) -> ControlState:
    state: ControlState = request.app.state.control
    return state
