"""`safebrowse serve` as a real child process, as it is deployed: its own session, its own data dir.

The server listens on ports it picks (`--port 0 --control-port 0`) and says which in its
log; `ServeProcess` reads them from there. It runs in a session of its own, so `kill`
can SIGKILL its whole process group at once, as a crash would, leaving the data dir as
such an end leaves it. Chromium puts itself in process groups of its own, so `kill`
also SIGKILLs every process the server had started, as killing its container would.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

SAFEBROWSE = [sys.executable, "-m", "safebrowse.cli"]
READY_WITHIN_S = 120.0
EXIT_WITHIN_S = 30.0
URL_PATTERNS = {"mcp": r"MCP door \(agents\):\s+(\S+)", "control": r"control API \(trainers\):\s+(\S+)"}


def serve_environment(data_dir: Path, token: str | None = None,
                      extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a test's `safebrowse serve`: this one without SAFEBROWSE_* settings,
    the state home in `data_dir`'s parent (so nothing reaches the user's own), and `extra`."""
    environment = {key: value for key, value in os.environ.items() if not key.upper().startswith("SAFEBROWSE_")}
    environment.update({"XDG_STATE_HOME": str(data_dir.parent / "state"), "PYTHONUNBUFFERED": "1"})
    if "SAFEBROWSE_CHROMIUM" in os.environ:
        environment["SAFEBROWSE_CHROMIUM"] = os.environ["SAFEBROWSE_CHROMIUM"]
    if token is not None:
        environment["SAFEBROWSE_CONTROL_TOKEN"] = token
    environment.update(extra or {})
    return environment


class ServeProcess:
    """One `safebrowse serve --data-dir D` child; its combined output is collected as it comes."""

    def __init__(self, data_dir: Path, *, workers: int = 1, env: Mapping[str, str] | None = None,
                 args: tuple[str, ...] = (), ready_on: tuple[str, ...] = ("mcp", "control")) -> None:
        self.data_dir = data_dir
        self.ready_on = ready_on
        """The URLs whose log lines say it is ready (a cluster's front has no MCP door of its own)."""
        self.control_token = "ctl_" + secrets.token_urlsafe(24)
        command = [*SAFEBROWSE, "serve", "--data-dir", str(data_dir), "--port", "0", "--control-port", "0",
                   "--workers", str(workers), *args]
        self.process = subprocess.Popen(
            command, env=serve_environment(data_dir, self.control_token, env), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self._lines: list[str] = []
        assert self.process.stdout is not None
        stdout = self.process.stdout
        self._reader = threading.Thread(target=lambda: self._lines.extend(iter(stdout.readline, "")), daemon=True)
        self._reader.start()
        self.mcp_url = ""
        self.control_url = ""

    @property
    def output(self) -> str:
        return "".join(self._lines)

    @property
    def control_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.control_token}"}

    def wait_ready(self, timeout: float = READY_WITHIN_S) -> ServeProcess:
        """Wait until both doors are up (their URLs are in the log); fail with the log if it exits."""
        deadline = time.monotonic() + timeout
        urls: dict[str, str] = {}
        while len(urls) < len(self.ready_on):
            assert self.process.poll() is None, f"safebrowse serve exited ({self.process.returncode}):\n{self.output}"
            assert time.monotonic() < deadline, f"safebrowse serve was not ready in {timeout:g} s:\n{self.output}"
            for name in self.ready_on:
                match = re.search(URL_PATTERNS[name], self.output)
                if match:
                    urls[name] = match.group(1)
            time.sleep(0.1)
        self.mcp_url, self.control_url = urls.get("mcp", ""), urls["control"]
        return self

    def wait_exit(self, timeout: float = EXIT_WITHIN_S) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        """SIGKILL the whole process group, and every other process the server had started."""
        started = descendants(self.process.pid)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.wait_exit()

    def stop(self) -> None:
        """SIGTERM (a clean stop), then SIGKILL of the group if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.wait_exit()
                return
            except subprocess.TimeoutExpired:
                pass
        self.kill()


def descendants(root: int) -> list[int]:
    """Every live process whose parent chain leads to `root`, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found: list[int] = []
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in found]
        found.extend(children)
        frontier.extend(children)
    return found


def refused_serve(data_dir: Path, *, env: Mapping[str, str] | None = None,
                  timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `safebrowse serve --data-dir D` expecting it to refuse to start; returns how it ended."""
    return subprocess.run(
        [*SAFEBROWSE, "serve", "--data-dir", str(data_dir), "--port", "0", "--control-port", "0", "--workers", "1"],
        env=serve_environment(data_dir, "ctl_" + secrets.token_urlsafe(16), env), capture_output=True, text=True,
        timeout=timeout,
    )
