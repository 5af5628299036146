"""Where an episode is served, and what a cluster's front counts of each browser node.

A single server serves every episode itself: `Placement(None, None)`, and no nodes.
A Ray cluster's front (`cluster.front`) places episodes on browser nodes, each with
its own MCP door; the control API reports both through these types.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Placement:
    """Where an episode is served: its browser node and the MCP door its agent talks to."""

    node: str | None
    """The Ray node id of a cluster's browser node; None on a single server."""
    mcp_url: str | None
    """The node's MCP door; None means the server's own door."""


HERE = Placement(node=None, mcp_url=None)
"""An episode served by the server that answers for it."""


@dataclass(frozen=True)
class NodeLoad:
    """One browser node of a cluster, as the front counts it (for metrics)."""

    node: str
    mcp_url: str
    alive: bool
    open_episodes: int
    steps: int


__all__ = ["HERE", "NodeLoad", "Placement"]
