"""A real multi-node Ray cluster on this machine, and `safebrowse serve --ray` as its front.

`ray.cluster_utils.Cluster` starts a head and worker nodes as separate raylets, each
with its own node id and resources; the head gets no CPUs, so browser nodes run on
the worker nodes only. The front is a child process (`ServeProcess` with `--ray`),
as an operator runs it, and this test process joins the cluster as a second driver
only to look at it (which actors are alive).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ray
from ray.cluster_utils import Cluster

from cluster.fleet import ACTOR_PREFIX

from support.process import ServeProcess, descendants

NODE_CPUS = 1
PROBE_NAMESPACE = "safebrowse-tests"


class RayCluster:
    """A head without CPUs plus `nodes` worker nodes of one CPU each."""

    def __init__(self, nodes: int) -> None:
        self.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        self.workers: list[Any] = [self.add_node() for _ in range(nodes)]
        self.cluster.wait_for_nodes()
        ray.init(address=self.cluster.address, namespace=PROBE_NAMESPACE, logging_level=logging.WARNING)

    @property
    def address(self) -> str:
        address: str = self.cluster.address
        return address

    def add_node(self) -> Any:
        """A new worker node (a raylet of its own); returns its handle (`.node_id`)."""
        node = self.cluster.add_node(num_cpus=NODE_CPUS)
        self.cluster.wait_for_nodes()
        return node

    def browsers_on(self, node: Any) -> set[int]:
        """The Chromium processes running under the node's raylet (its browser node's)."""
        raylet = node.all_processes["raylet"][0].process.pid
        return {pid for pid in descendants(raylet) if _is_chromium(pid)}

    def remove_node(self, node: Any) -> None:
        """Kill the node's raylet and every worker process on it, as a lost machine."""
        self.cluster.remove_node(node, allow_graceful=False)
        self.workers.remove(node)

    def browser_actors(self) -> list[str]:
        """The browser node actors alive in the cluster, any front's."""
        named = ray.util.list_named_actors(all_namespaces=True)
        return [entry["name"] for entry in named if entry["name"].startswith(ACTOR_PREFIX)]

    def shutdown(self) -> None:
        ray.shutdown()
        self.cluster.shutdown()  # type: ignore[no-untyped-call]


def start_front(cluster: RayCluster, data_dir: Path, env: Mapping[str, str] | None = None) -> ServeProcess:
    """`safebrowse serve --ray ADDRESS` on `data_dir`, ready once its control API listens."""
    settings = {"SAFEBROWSE_CLUSTER__WATCH_INTERVAL_S": "0.5", **(env or {})}
    front = ServeProcess(data_dir, env=settings, args=("--ray", cluster.address), ready_on=("control",))
    return front.wait_ready()


def node_doors(front: ServeProcess) -> dict[str, str]:
    """Each browser node the front said it started, with its MCP door (from the front's log)."""
    return dict(re.findall(r"browser node (\S+) up: MCP door (\S+),", front.output))


def chromium_processes() -> set[int]:
    """The Chromium processes this test process started, through the cluster's raylets (whose
    workers run the browser nodes) or its own engines: its descendants, by executable name."""
    return {pid for pid in descendants(os.getpid()) if _is_chromium(pid)}


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (not zombies), whoever their parent is now."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            running.add(pid)
    return running


def _is_chromium(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return command.endswith((b"chromium", b"chrome")) or b"/chromium/" in command
