"""What the manager answers besides episodes: its refusals, and what a creation returns.

Kept apart from `engine.manager` so the doors' handlers and the book can name them
without the manager's machinery.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.agent_view.observation import Observation


class EpisodeNotFoundError(KeyError):
    def __str__(self) -> str:
        return f"no episode {self.args[0]!r}"


class TooManyEpisodesError(RuntimeError):
    pass


class NoCapacityError(RuntimeError):
    """No browser node can take another episode now (a cluster whose nodes are all full or
    gone); the caller may retry later."""


class EpisodeSetupError(RuntimeError):
    """The task's setup failed or timed out; nothing was left open."""


@dataclass(frozen=True)
class CreatedEpisode:
    episode_id: str
    agent_token: str
    task_id: str
    goal: str
    observation: Observation | None
    node: str | None = None
    """The cluster node that holds the episode (its Ray node id); None on a single server."""
    mcp_url: str | None = None
    """The MCP door that serves the episode, when it is not the server's own."""


__all__ = ["CreatedEpisode", "EpisodeNotFoundError", "EpisodeSetupError", "NoCapacityError", "TooManyEpisodesError"]
