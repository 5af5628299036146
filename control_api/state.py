"""What the control API keeps for itself, next to the engine's episodes.

Reward weights belong to the trainer door, not to the engine: the engine records
what happened, and this door scores it with the weights its trainer chose. The
curriculum behind `difficulty: "auto"` is the trainer's too.

Both outlive the process with the episodes: what the trainer chose at creation is
kept with the episode in the engine's episode book as its "trainer data"
(`{"reward_weights": {...}, "auto_difficulty": bool}`), so rewards read after a
restart are scored with the same weights, and the curriculum is rebuilt from the
outcomes the book holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from control_api.curriculum import Curriculum
from control_api.metrics import Metrics
from control_api.room import SuiteService, TrainerRoom
from control_api.trainer_data import AUTO_DIFFICULTY, DEFAULT_WEIGHTS, REWARD_WEIGHTS, trainer_data, weights_in
from engine.records import EpisodeState
from engine.reward import RewardWeights


@dataclass
class ControlState:
    manager: TrainerRoom
    mcp_url: str
    metrics: Metrics = field(default_factory=Metrics)
    weights: dict[str, RewardWeights] = field(default_factory=dict)
    curriculum: Curriculum = field(default_factory=Curriculum)
    auto_difficulty: set[str] = field(default_factory=set)
    suites: SuiteService | None = None
    """The room's suites; None where the room cannot walk an agent through one (a cluster's front)."""

    def restore(self) -> None:
        """Take up what the manager remembers of earlier episodes (an earlier run's, from the
        book): each episode's weights and how its difficulty was chosen, and the curriculum's
        history, replayed in the order the episodes ended."""
        for episode_id, data in self.manager.trainer_data_items():
            if REWARD_WEIGHTS in data:
                self.weights[episode_id] = weights_in(data)
            if data.get(AUTO_DIFFICULTY) is True:
                self.auto_difficulty.add(episode_id)
        for state in self.manager.history():
            self.count_ended(state)

    def count_ended(self, state: EpisodeState) -> None:
        """The room's `on_end` callback: every way an episode can end counts for the curriculum."""
        registry = self.manager.registry
        if state.task_id in registry:
            self.curriculum.count(registry.get(state.task_id).difficulties, state)

    def weights_for(self, episode_id: str) -> RewardWeights:
        """The episode's weights; episodes created elsewhere (stdio) get the defaults."""
        return self.weights.get(episode_id, DEFAULT_WEIGHTS)

    def remember(self, episode_id: str, weights: RewardWeights, auto_difficulty: bool) -> None:
        """Keep what the trainer chose at creation, with the episode in the book, and forget
        episodes the manager no longer holds. Raises `BookWriteError` if the book refuses it."""
        known = self.manager.episode_ids()
        for stale in [eid for eid in self.weights if eid not in known]:
            del self.weights[stale]
        self.auto_difficulty &= known
        self.weights[episode_id] = weights
        if auto_difficulty:
            self.auto_difficulty.add(episode_id)
        self.manager.keep_trainer_data(episode_id, trainer_data(weights, auto_difficulty))


def control_state(request: Request) -> ControlState:
    state: ControlState = request.app.state.control
    return state
