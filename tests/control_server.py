"""A private control API for tests that need their own engine configuration.

The shared `live_server` fixture serves both doors with defaults; some tests need an
oracle, test-only tasks, a low episode cap or a curriculum window of their own, and
must not disturb it. This starts the control API alone over such an engine, on a
free loopback port, with an HTTP client that carries the control token.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from typing import Any

import httpx
import uvicorn

from control_api.app import build_app
from engine.manager import EpisodeManager
from safebrowse.loop import BackgroundLoop


class PrivateControlServer:
    def __init__(self, name: str, manager: EpisodeManager, **app_options: Any) -> None:
        self.loop = BackgroundLoop(name)
        self.manager = manager
        self.token = "ctl_" + secrets.token_urlsafe(16)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

        async def start() -> uvicorn.Server:
            await self.manager.start()
            app = build_app(self.manager, control_token=self.token, mcp_url="http://127.0.0.1:9/mcp", **app_options)
            server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
            self._serving = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started:
                await asyncio.sleep(0.02)
            return server

        self.server = self.loop.run(start(), 90)
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60)

    def stop(self) -> None:
        self.http.close()

        async def stop() -> None:
            self.server.should_exit = True
            await self._serving
            await self.manager.stop()

        self.loop.run(stop(), 60)
        self.loop.close()

    def state(self, episode_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/episodes/{episode_id}")
        assert response.status_code == 200, response.text
        return response.json()
