"""`safebrowse serve` stops cleanly on SIGTERM: browsers closed, no Chromium left behind, and
the open episode recorded in the episode book as closed by the shutdown.

The server runs as a real subprocess on free ports with its control token from the
environment; its processes are found through /proc by their parent chain.
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
from typing import Any

import httpx
import pytest

from engine.book import EpisodeBook

from security.harness import TASKS_DIR, descendants, survivors
from support.agent import connect, play

READY_WITHIN_S = 120
EXIT_WITHIN_S = 15


@pytest.mark.slow
def test_sigterm_closes_browsers_and_exits_within_seconds(tmp_path):
    token = "ctl_" + secrets.token_urlsafe(24)
    env = {**os.environ, "SAFEBROWSE_CONTROL_TOKEN": token, "XDG_STATE_HOME": str(tmp_path),
           "SAFEBROWSE_TASKS_DIR": str(TASKS_DIR), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "safebrowse.cli", "serve", "--port", "0", "--control-port", "0", "--workers", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + READY_WITHIN_S
        urls: dict[str, str] = {}
        while time.monotonic() < deadline and len(urls) < 2 and process.poll() is None:
            text = "".join(output)
            for name, pattern in (("mcp", r"MCP door \(agents\):\s+(\S+)"),
                                  ("control", r"control API \(trainers\):\s+(\S+)")):
                match = re.search(pattern, text)
                if match:
                    urls[name] = match.group(1)
            time.sleep(0.2)
        assert len(urls) == 2, "".join(output)[-3000:]

        headers = {"Authorization": f"Bearer {token}"}
        created = httpx.post(urls["control"] + "/v1/episodes", json={"task_id": "custom.sec-forms"},
                             headers=headers, timeout=120)
        assert created.status_code == 201, created.text
        episode: dict[str, Any] = created.json()

        async def use() -> None:
            async with connect(urls["mcp"], episode["agent_token"]) as client:
                await client.act("observe", {})
                await client.act("fill", {"id": client.id_of("notes"), "text": "mid-episode"})

        play(use())  # an episode is open, with its page loaded, when the signal comes
        children = descendants(process.pid)
        browsers = {pid: info for pid, info in children.items() if "chrom" in info[2].lower()}
        assert browsers, children

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(EXIT_WITHIN_S)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(5)

    assert code == 0, "".join(output)[-3000:]
    assert took < EXIT_WITHIN_S
    time.sleep(0.5)  # orphans would have been re-parented by now, not gone
    left = survivors(children)
    assert left == {}, f"left behind after exit: {left}"
    log = "".join(output)
    assert token not in log, "the control token reached the server's output"
    assert episode["agent_token"] not in log
    book = EpisodeBook.open(tmp_path / "safebrowse", read_only=True)  # the default data dir, under XDG_STATE_HOME
    try:
        (entry,) = list(book.entries())
    finally:
        book.close()
    assert entry.state.episode_id == episode["episode_id"] and entry.state.closed_by == "shutdown"
    assert [record.tool for record in entry.records] == ["fill"]
    assert episode["agent_token"] not in (tmp_path / "safebrowse" / "book.sqlite3").read_bytes().decode("latin-1")
    print(f"\nshutdown: SIGTERM to exit in {took:.2f} s; {len(children)} child processes "
          f"({len(browsers)} Chromium) before, 0 after")
