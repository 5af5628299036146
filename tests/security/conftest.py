"""One server for the whole security suite.

It is started like an operator would start it for their own tasks: the task folder
`task_folders/` is mounted with `extra_tasks_dir` (SAFEBROWSE_TASKS_DIR), and the escape
page, whose links need the ports of the loopback servers below, is added to the running
server's registry as a server-side task spec.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from security.harness import TASKS_DIR, RecordingServer, UdpSink, escape_spec
from support.control import Control
from support.live import LiveServer, start_live_server, stop_live_server

ESCAPE_TASK = "test.sec-escape"


@dataclass
class SecurityServer:
    live: LiveServer
    control: Control
    sink: RecordingServer
    """An undeclared origin: no request may ever reach it."""
    redirector: RecordingServer
    """An undeclared origin that redirects to the sink: requests to it are blocked."""
    chain: RecordingServer
    """A declared origin (the escape task's extra origin) that redirects to the sink."""
    stun: UdpSink
    """An undeclared UDP port, for WebRTC's STUN."""

    @property
    def mcp_url(self) -> str:
        return self.live.mcp_url


@pytest.fixture(scope="package")
def sec() -> Iterator[SecurityServer]:
    live = start_live_server(extra_tasks_dir=str(TASKS_DIR), workers=1)
    sink = RecordingServer()
    servers = SecurityServer(
        live=live,
        control=Control(live),
        sink=sink,
        redirector=RecordingServer(redirect_to=sink.origin + "/via-redirector"),
        chain=RecordingServer(redirect_to=sink.origin + "/via-chain"),
        stun=UdpSink(),
    )
    live.add_task(escape_spec(ESCAPE_TASK, live.manager.assets.origin, sink, servers.redirector,
                              servers.chain, servers.stun))
    try:
        yield servers
    finally:
        servers.control.http.close()
        stop_live_server(live)
        for server in (servers.sink, servers.redirector, servers.chain, servers.stun):
            server.stop()


@pytest.fixture
def episodes(sec: SecurityServer) -> Iterator[Any]:
    """Creates episodes over the control API and closes them after the test."""
    created: list[dict[str, Any]] = []

    def create(task_id: str, **fields: Any) -> dict[str, Any]:
        episode = sec.control.create(task_id, **fields)
        created.append(episode)
        return episode

    yield create
    for episode in created:
        response = sec.control.http.delete(f"/v1/episodes/{episode['episode_id']}")
        assert response.status_code in (200, 404), response.text
