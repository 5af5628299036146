"""The whole safebrowse server (both doors, real Chromium) on free loopback ports.

`start_server` runs it on a background event loop of this process, exactly as
`safebrowse serve` composes it (`SafebrowseServer`); `start_server_process`
runs `safebrowse serve` itself as a child process, as it is deployed, so the
benchmark's clients share no interpreter (and no GIL) with it. Either way the
clients reach it only over HTTP, like a trainer and an agent on the same host, and
the server records its episodes in a temporary data dir of its own, removed when it
stops (a benchmark never writes to the user's book).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.config import EngineConfig
from safebrowse.loop import BackgroundLoop
from safebrowse.server import SafebrowseServer
from safebrowse.settings import ServerSettings

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0


@dataclass
class LiveServer:
    server: SafebrowseServer
    loop: BackgroundLoop
    task: concurrent.futures.Future[None]

    @property
    def mcp_url(self) -> str:
        return self.server.mcp_url

    @property
    def control_url(self) -> str:
        return self.server.control_url

    @property
    def control_token(self) -> str:
        return self.server.control_token

    def stop(self) -> None:
        self.loop.loop.call_soon_threadsafe(self.server.request_stop)
        try:
            self.task.result(STOP_TIMEOUT_S)
        finally:
            self.loop.close()
            shutil.rmtree(self.server.settings.data_dir, ignore_errors=True)


def temporary_data_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="safebrowse-bench-"))


def start_server(**engine_overrides: object) -> LiveServer:
    """Start a `SafebrowseServer` with a fresh control token and wait until both doors listen."""
    loop = BackgroundLoop("bench-server")
    settings = ServerSettings(
        mcp_port=0,
        control_port=0,
        control_token="ctl_" + secrets.token_urlsafe(24),
        data_dir=temporary_data_dir(),
        engine=EngineConfig(**engine_overrides),  # type: ignore[arg-type]
    )

    async def create() -> SafebrowseServer:
        return SafebrowseServer(settings)

    server = loop.run(create())
    task = asyncio.run_coroutine_threadsafe(server.serve(), loop.loop)

    async def wait_started() -> None:
        await asyncio.wait_for(server.started.wait(), START_TIMEOUT_S)

    try:
        loop.run(wait_started(), START_TIMEOUT_S + 5)
    except BaseException:
        if task.done() and task.exception() is not None:
            loop.close()
            raise task.exception() from None  # type: ignore[misc]
        raise
    if task.done():
        loop.close()
        raise RuntimeError(f"the server stopped while starting: {task.exception()!r}")
    return LiveServer(server, loop, task)


@dataclass
class ServerProcess:
    """`safebrowse serve` in a child process."""

    process: subprocess.Popen[bytes]
    mcp_url: str
    control_url: str
    control_token: str
    data_dir: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stop_child(self.process)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def stop_child(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a clean stop: episodes closed, browsers stopped), then SIGKILL if it takes too long."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server_process(workers: int | None = None, max_warm_contexts: int | None = None) -> ServerProcess:
    """Start `python -m safebrowse.cli serve` on free loopback ports and wait for its health check."""
    mcp_port, control_port = _free_port(), _free_port()
    token = "ctl_" + secrets.token_urlsafe(24)
    data_dir = temporary_data_dir()
    command = [sys.executable, "-m", "safebrowse.cli", "--log-level", "WARNING", "serve",
               "--port", str(mcp_port), "--control-port", str(control_port)]
    if workers:
        command += ["--workers", str(workers)]
    env = {**os.environ, "SAFEBROWSE_CONTROL_TOKEN": token, "SAFEBROWSE_DATA_DIR": str(data_dir)}
    if max_warm_contexts is not None:
        env["SAFEBROWSE_MAX_WARM_CONTEXTS"] = str(max_warm_contexts)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    server = ServerProcess(process, f"http://127.0.0.1:{mcp_port}/mcp", f"http://127.0.0.1:{control_port}", token,
                           data_dir)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            shutil.rmtree(data_dir, ignore_errors=True)
            raise RuntimeError(f"safebrowse serve exited with status {process.returncode} while starting")
        try:
            with urllib.request.urlopen(server.control_url + "/v1/health", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("safebrowse serve did not answer its health check in time")
        time.sleep(0.2)


@contextmanager
def server_process(workers: int | None = None, max_warm_contexts: int | None = None) -> Iterator[ServerProcess]:
    """`start_server_process` for a `with` block: the server stops when the block ends."""
    server = start_server_process(workers, max_warm_contexts)
    try:
        yield server
    finally:
        server.stop()
