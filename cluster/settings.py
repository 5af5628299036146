"""The `[cluster]` settings: how the front finds and uses a Ray cluster.

Kept free of Ray imports, so `safebrowse.settings` loads where the `ray` extra is not
installed; only `address` being set makes `safebrowse serve` need it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ClusterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        default=None,
        description="The Ray cluster to run browser nodes on: \"auto\", HOST:PORT of its head or ray://HOST:PORT. "
                    "Unset: a single server, no Ray.")
    namespace: str = Field(default="safebrowse", description="The Ray namespace of the front's actors.")
    node_cpus: float = Field(
        default=1.0, gt=0, le=1024,
        description="CPUs one browser node reserves on its Ray node; a Ray node gets as many browser nodes as it "
                    "has CPUs for, up to nodes_per_machine.")
    nodes_per_machine: int = Field(default=1, ge=1, le=64,
                                   description="Browser nodes at most on one Ray node.")
    node_resource: str | None = Field(
        default=None,
        description="A custom Ray resource (as in `ray start --resources='{\"browser\": 1}'`) that marks the Ray "
                    "nodes meant for browsers; each browser node takes 1 of it. Unset: any node with the CPUs.")
    door_host: str | None = Field(
        default=None, description="The address nodes bind their MCP door to; unset: the node's own IP address. "
                                  "With 0.0.0.0 or ::, agents are still given the node's IP address.")
    door_port: int = Field(default=0, ge=0, le=65535,
                           description="The port of each node's MCP door (0: any free port).")
    watch_interval_s: float = Field(default=2.0, gt=0, le=300,
                                    description="How often the front looks for Ray nodes that joined or left.")
    record_timeout_s: float = Field(
        default=10.0, gt=0, le=600,
        description="How long a node waits for the front to hold a step's records before it answers the agent "
                    "that the step could not be recorded.")
    node_start_timeout_s: float = Field(default=120.0, gt=0, le=3600,
                                        description="How long a browser node may take to start its browsers.")


__all__ = ["ClusterSettings"]
