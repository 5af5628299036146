"""What the running Chromium was started with, read from /proc: the flags docs/security.md
names, including the one it says is not a boundary (no renderer sandbox)."""

from __future__ import annotations

from pathlib import Path

from engine.config import CHROMIUM_FLAGS
from engine.launch import HOST_RESOLVER_RULES as RESOLVER_RULES


def _command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")


def test_chromium_runs_with_the_documented_flags(sec):
    worker = sec.live.manager.pool.workers[0]
    pid = sec.live.run(worker.run(lambda w: w.browser_pid()))
    arguments = _command_line(pid)
    for flag in CHROMIUM_FLAGS:
        assert flag in arguments, flag
    assert RESOLVER_RULES in arguments
    # Everything goes to the worker's egress proxy, loopback included; WebRTC sends no UDP.
    assert f"--proxy-server={worker._deny_gate.proxy_server}" in arguments
    assert "--proxy-bypass-list=<-loopback>" in arguments
    assert "--webrtc-ip-handling-policy=disable_non_proxied_udp" in arguments
    assert "--headless" in arguments or any(a.startswith("--headless=") for a in arguments)
    # Playwright adds --no-sandbox unless asked for the sandbox; the engine does not ask.
    assert "--no-sandbox" in arguments
    # Playwright drives it over a pipe: no remote debugging port listens for anyone else.
    assert not any(a.startswith("--remote-debugging-port") for a in arguments)
    assert "--remote-debugging-pipe" in arguments
