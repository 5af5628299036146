"""How the front is pointed at a cluster, and what it says when it cannot use one.

No cluster is started here: these are the refusals an operator meets before any.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.fleet import slots_of
from cluster.settings import ClusterSettings
from safebrowse.cluster_server import head_endpoint, node_engine
from safebrowse.settings import ServerSettings, SettingsInputError

from support.listener import closed_port
from support.process import refused_serve


def test_the_ray_flag_and_variable_set_the_cluster_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEBROWSE_RAY_ADDRESS", "10.0.0.5:6379")
    assert ServerSettings.from_env().cluster.address == "10.0.0.5:6379"
    assert ServerSettings.from_env(cluster={"address": "auto"}).cluster.address == "auto"  # the flag wins
    monkeypatch.delenv("SAFEBROWSE_RAY_ADDRESS")
    assert ServerSettings.from_env().cluster.address is None  # a single server


def test_bad_cluster_settings_are_refused_with_their_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEBROWSE_CLUSTER__NODE_CPUS", "0")
    with pytest.raises(SettingsInputError, match=r"cluster\.node_cpus from SAFEBROWSE_CLUSTER__NODE_CPUS"):
        ServerSettings.from_env()


def test_an_unreachable_head_stops_serve_at_once_with_one_line(tmp_path: Path) -> None:
    port = closed_port()
    result = refused_serve(tmp_path / "data", env={"SAFEBROWSE_RAY_ADDRESS": f"127.0.0.1:{port}"}, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"cannot reach the Ray cluster's head at '127.0.0.1:{port}'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("address", "endpoint"), [
    ("10.0.0.5:6379", ("10.0.0.5", 6379)),
    ("[::1]:6379", ("::1", 6379)),
    ("auto", None),
    ("ray://10.0.0.5:10001", None),
])
def test_only_a_host_and_port_is_probed_before_ray_is_asked(address: str, endpoint: tuple[str, int] | None) -> None:
    assert head_endpoint(address) == endpoint


@pytest.mark.parametrize(("resources", "settings", "slots"), [
    ({"CPU": 0.0}, {}, 0),                                          # a head without CPUs hosts no browsers
    ({"CPU": 8.0}, {}, 1),                                          # one per Ray node by default
    ({"CPU": 8.0}, {"nodes_per_machine": 4, "node_cpus": 2}, 4),
    ({"CPU": 5.0}, {"nodes_per_machine": 4, "node_cpus": 2}, 2),    # as many as its CPUs allow
    ({"CPU": 8.0}, {"node_resource": "browser"}, 0),                # not marked for browsers
    ({"CPU": 8.0, "browser": 2.0}, {"node_resource": "browser", "nodes_per_machine": 4}, 2),
])
def test_browser_nodes_per_ray_node(resources: dict[str, float], settings: dict[str, object], slots: int) -> None:
    assert slots_of(resources, ClusterSettings.model_validate(settings)) == slots


def test_nodes_run_one_browser_worker_per_reserved_cpu_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    reserved = ServerSettings.from_env(cluster={"address": "auto", "node_cpus": 3})
    assert node_engine(reserved).workers == 3  # not the front machine's CPU count
    assert node_engine(ServerSettings.from_env(cluster={"address": "auto", "node_cpus": 0.5})).workers == 1
    monkeypatch.setenv("SAFEBROWSE_WORKERS", "5")
    assert node_engine(ServerSettings.from_env(cluster={"address": "auto", "node_cpus": 3})).workers == 5
