"""The agent door cannot reach the trainer's side: proved on what Python actually loads.

Every module of `mcp_server` is imported in a fresh interpreter, and the modules that
came with them are compared against the wall: of the engine, only the agent-visible
package `engine.agent_view` may load; nothing of the reward rubric, step records,
episode internals, manager, oracle back-ends, control API, tasks or the `safebrowse`
composition root. A transitive import counts as much as a direct one.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import mcp_server

REPO = Path(__file__).resolve().parents[2]

ALLOWED_ENGINE = "engine.agent_view"
"""The only engine package the door may load (with `engine` itself, whose __init__ is a docstring)."""

FORBIDDEN_PREFIXES = ("control_api", "tasks", "safebrowse", "cluster", "ray", "browsergym", "playwright")
"""Trainer code, task code (validators), the composition roots (a single server's and a cluster's),
Ray, and the browser itself."""


def door_modules() -> list[str]:
    """Every module of the agent door, found on disk so a new one is covered without a list to keep."""
    return sorted(f"mcp_server.{info.name}" for info in pkgutil.iter_modules(mcp_server.__path__))


def loaded_after_importing(modules: list[str]) -> list[str]:
    """The modules a fresh interpreter holds after importing `modules`, and nothing else."""
    probe = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def crossings(loaded: list[str]) -> list[str]:
    """The loaded modules that are on the wrong side of the wall."""
    wrong = []
    for name in loaded:
        top = name.split(".")[0]
        if top == "engine" and name != "engine" and not (
            name == ALLOWED_ENGINE or name.startswith(ALLOWED_ENGINE + ".")
        ) or top in FORBIDDEN_PREFIXES:
            wrong.append(name)
    return wrong


def test_the_door_has_the_modules_this_test_expects():
    assert {"mcp_server.tools", "mcp_server.http", "mcp_server.auth", "mcp_server.limits", "mcp_server.stdio"} <= set(
        door_modules()
    )


def test_importing_every_door_module_loads_nothing_of_the_trainers_side():
    loaded = loaded_after_importing(door_modules())
    assert "mcp_server.tools" in loaded and "engine.agent_view.port" in loaded  # the probe really ran
    assert crossings(loaded) == []


def test_the_check_catches_a_trainer_side_import():
    """The same check, given the door plus one trainer-side module, names it: it can fail."""
    for trainer_side in ("engine.records", "engine.manager", "control_api.app", "tasks", "safebrowse.server",
                         "cluster.front"):
        loaded = loaded_after_importing([*door_modules(), trainer_side])
        assert trainer_side in crossings(loaded), trainer_side


# -- the other walls: the room knows neither door, and the trainer's door not the agent's ------


def package_modules(package: str) -> list[str]:
    """Every module of a top-level package of this repository, subpackages included."""
    return sorted(info.name for info in pkgutil.walk_packages([str(REPO / package)], prefix=f"{package}."))


def under(loaded: list[str], *packages: str) -> list[str]:
    return [name for name in loaded if name.split(".")[0] in packages]


def test_the_engine_loads_neither_door_nor_the_composition_root():
    loaded = loaded_after_importing(package_modules("engine"))
    assert "engine.manager" in loaded
    assert under(loaded, "mcp_server", "control_api", "safebrowse", "cluster", "ray") == []


def test_the_control_api_does_not_load_the_agent_door():
    loaded = loaded_after_importing(package_modules("control_api"))
    assert "control_api.routes" in loaded
    assert under(loaded, "mcp_server", "cluster", "ray") == []


def test_a_cluster_front_does_not_load_the_agent_door():
    """The front serves the control API only; agents reach the doors of the browser nodes."""
    loaded = loaded_after_importing(["cluster.front", "safebrowse.cluster_server"])
    assert "cluster.fleet" in loaded and "ray" in loaded
    assert "cluster.node" in loaded
    # Only the door's settings model and what it rests on (`mcp_server.limits`): no tools, no server.
    assert {"mcp_server.tools", "mcp_server.http", "mcp_server.stdio"} & set(loaded) == set()
