"""The progress bar as a person sees it: on stderr when stderr is a terminal (a real pty),
off on a pipe unless forced, never on stdout; first in a small program, then in a real
`safebrowse rollout` against a live server."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TERMINAL_COLUMNS = 120
# A tqdm frame: "label:  50%|█████     | 1/2 [00:01<00:01, 1.00s/episode, note]".
FRAME = re.compile(r"(?P<label>[\w.-]+): +(?P<percent>\d+)%\|[^|]*\| (?P<done>\d+)/(?P<total>\d+) \[(?P<rest>[^\]]*)\]")

# Ten units, each with a note, a line written through the bar, then a report on stdout.
PROGRAM = textwrap.dedent("""
    import sys
    from safebrowse.progress import progress_bar

    enabled = {"auto": None, "on": True, "off": False}[sys.argv[1]]
    with progress_bar(10, "demo", enabled=enabled, unit="episode") as bar:
        for k in range(10):
            bar.set_postfix_str(f"task-{k} ok", refresh=False)
            bar.update()
        bar.write("a line of its own", file=sys.stderr)
    print("report: 10 episodes")
""")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def frames(self) -> list[re.Match[str]]:
        """Every bar drawing on stderr, in order (a pty turns newlines into \\r\\n)."""
        return [match for piece in re.split(r"[\r\n]", self.stderr) if (match := FRAME.search(piece))]


def run(args: list[str], terminal: bool, env: dict[str, str] | None = None, timeout: float = 180) -> Run:
    """Run `args` with stdout on a pipe and stderr on a pipe or, if `terminal`, on a real pty."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("COLUMNS", None)  # the width comes from the terminal itself
    if not terminal:
        done = subprocess.run(args, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)
        return Run(done.returncode, done.stdout, done.stderr)
    controller, terminal_fd = pty.openpty()
    fcntl.ioctl(terminal_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, TERMINAL_COLUMNS, 0, 0))
    process = subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=terminal_fd,
                               stdin=subprocess.DEVNULL, text=True)
    os.close(terminal_fd)
    chunks: list[bytes] = []

    def read_terminal() -> None:
        while True:
            try:
                data = os.read(controller, 4096)
            except OSError:  # EIO once the last writer has gone
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        stdout, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
        reader.join(10)
        os.close(controller)
    return Run(process.returncode, stdout, b"".join(chunks).decode("utf-8", "replace"))


def demo(setting: str, terminal: bool) -> Run:
    result = run([sys.executable, "-c", PROGRAM, setting], terminal)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "report: 10 episodes\n"  # whatever the bar does
    return result


# -- the on/off decision, in a small program ----------------------------------------------------


@pytest.mark.parametrize(("setting", "terminal"), [("auto", True), ("on", True), ("on", False)])
def test_the_bar_draws_on_stderr_when_on(setting: str, terminal: bool) -> None:
    result = demo(setting, terminal)
    frames = result.frames()
    assert frames, result.stderr
    assert all(frame["label"] == "demo" and frame["total"] == "10" for frame in frames)
    last = frames[-1]
    assert (last["percent"], last["done"]) == ("100", "10")
    assert "episode" in last["rest"] and last["rest"].endswith("task-9 ok")
    assert "a line of its own" in result.stderr
    # Ended on a row of its own, so what follows starts on a fresh one.
    assert result.stderr.rstrip(" ").endswith("\n")


def test_on_a_terminal_the_bar_is_redrawn_in_place() -> None:
    result = demo("auto", terminal=True)
    bar_rows = [row for row in result.stderr.split("\n") if FRAME.search(row)]
    # The written line gets its own row; the bar is redrawn with carriage returns on its row.
    assert "\r" in result.stderr and len(bar_rows) <= 3
    assert all(len(piece) <= TERMINAL_COLUMNS for piece in re.split(r"[\r\n]", result.stderr))


def test_forced_onto_a_pipe_it_draws_the_start_and_the_end_only() -> None:
    # Ten quick units are well under LOG_INTERVAL_S: no frame in between.
    frames = demo("on", terminal=False).frames()
    assert [frame["done"] for frame in frames] == ["0", "10", "10"]  # start; redrawn after the line; closed


@pytest.mark.parametrize(("setting", "terminal"), [("auto", False), ("off", True), ("off", False)])
def test_the_bar_stays_off_otherwise(setting: str, terminal: bool) -> None:
    result = demo(setting, terminal)
    assert not result.frames()
    assert result.stderr.replace("\r\n", "\n") == "a line of its own\n"  # lines written through it still show


# -- a real rollout ---------------------------------------------------------------------------------


def rollout(live_server, *flags: str, terminal: bool) -> Run:
    args = [sys.executable, "-m", "safebrowse.cli", "rollout", "--control-url", live_server.control_url,
            "--tasks", "miniwob.click-test", "--episodes", "2", "--seed", "11", *flags]
    result = run(args, terminal, env={"SAFEBROWSE_CONTROL_TOKEN": live_server.control_token})
    assert result.returncode == 0, result.stdout + result.stderr
    # The report is the same with or without the bar: no frame and no carriage return on stdout.
    assert result.stdout.startswith("rollout: 1 task(s) x 2 episode(s), seeds 11..12, concurrency 1, ")
    assert re.search(r"^overall\s+2\s+0\s+2/2 \(100%\)", result.stdout, re.MULTILINE), result.stdout
    assert "\r" not in result.stdout and "%|" not in result.stdout
    return result


def test_rollout_on_a_terminal_shows_the_bar_by_default(live_server) -> None:
    frames = rollout(live_server, terminal=True).frames()
    assert frames and all(frame["label"] == "rollout" and frame["total"] == "2" for frame in frames)
    last = frames[-1]
    assert (last["percent"], last["done"]) == ("100", "2")
    assert "episode" in last["rest"] and last["rest"].endswith("miniwob.click-test ok, 2/2 ok")


def test_rollout_flags_force_the_bar_on_a_pipe_and_off_on_a_terminal(live_server) -> None:
    forced = rollout(live_server, "--progress", terminal=False).frames()
    assert forced and forced[0]["done"] == "0" and forced[-1]["done"] == "2"
    assert rollout(live_server, "--no-progress", terminal=True).stderr == ""
    assert rollout(live_server, terminal=False).stderr == ""
