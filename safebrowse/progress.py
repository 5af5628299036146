"""A one-line progress bar on stderr for long local runs (rollouts, benchmarks).

Dependency-free on purpose: the CLI and the benchmarks should not pull in a
terminal library for one line of text. The bar is meant for a person watching a
terminal, so by default it shows only when its stream is a TTY; logs, CI output
and piped runs stay exactly as they were. `enabled=True` forces it on (the
`--progress` flag), and on a stream that is not a TTY it then prints plain,
throttled lines instead of carriage-return redraws, so a log file gets a
handful of lines rather than one per episode.

    with ProgressBar(total=40, label="rollout") as bar:
        for result in results:
            bar.advance(note=f"{result.task_id} ok {successes}/{done}")
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

Clock = Callable[[], float]


def stream_is_tty(stream: TextIO) -> bool:
    """Whether `stream` is an interactive terminal; False for closed or odd streams rather than an error."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def format_duration(seconds: float) -> str:
    """`m:ss`, or `h:mm:ss` past an hour: short enough to keep the line on one row."""
    if seconds != seconds or seconds < 0:  # NaN or negative: nothing sensible to show
        return "?"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressBar:
    """Progress of `total` units of work, drawn on `stream` (stderr by default).

    `enabled=None` turns the bar on only when the stream is a TTY. On a TTY the
    line is redrawn in place with `\\r` (at most every `redraw_interval_s`, and
    always for the last unit); elsewhere a plain line is printed when at least
    `line_interval_s` seconds or `line_percent` percent of the work have passed
    since the previous one, plus one final line, so the output stays bounded
    whatever `total` is. Safe to advance from several threads.
    """

    def __init__(
        self,
        total: int,
        label: str = "",
        stream: TextIO | None = None,
        enabled: bool | None = None,
        *,
        line_interval_s: float = 10.0,
        line_percent: float = 10.0,
        redraw_interval_s: float = 0.1,
        bar_width: int = 20,
        clock: Clock = time.monotonic,
    ) -> None:
        if total < 0:
            raise ValueError("total must be at least 0")
        self.total = total
        self.label = label
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self.tty = stream_is_tty(self.stream)
        self.enabled = self.tty if enabled is None else bool(enabled)
        self.line_interval_s = line_interval_s
        self.line_percent = line_percent
        self.redraw_interval_s = redraw_interval_s
        self.bar_width = bar_width
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self.done = 0
        self.note = ""
        self._last_draw_at: float | None = None
        self._last_drawn_done = -1
        self._last_line_width = 0
        self._closed = False

    # -- the public side ---------------------------------------------------------------------

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def advance(self, n: int = 1, note: str = "") -> None:
        """Count `n` more units done; `note` (the last task id, a success count) replaces the previous one."""
        with self._lock:
            if self._closed:
                return
            self.done = min(self.total, self.done + n) if self.total else self.done + n
            if note:
                self.note = note
            if self.enabled and self._due(self._clock()):
                self._draw()

    def write(self, text: str) -> None:
        """Print a line of text without garbling the bar: on a TTY the bar is cleared, then redrawn below it."""
        with self._lock:
            if self.enabled and self.tty and self._last_line_width and not self._closed:
                self.stream.write("\r" + " " * self._last_line_width + "\r")
                self.stream.write(text.rstrip("\n") + "\n")
                self._draw()
            else:
                self.stream.write(text.rstrip("\n") + "\n")
                self.stream.flush()

    def close(self) -> None:
        """Draw the final state (once) and end the line, so whatever is printed next starts on a fresh row."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if not self.enabled:
                return
            if self.done != self._last_drawn_done:
                self._draw()
            if self.tty and self._last_line_width:
                self.stream.write("\n")
                self.stream.flush()

    # -- what a line says --------------------------------------------------------------------

    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._started

    def render(self, now: float | None = None, *, bar: bool | None = None) -> str:
        """The text of one progress line (without `\\r` or newline); the `[###...]` bar only on a TTY by default."""
        elapsed = (self._clock() if now is None else now) - self._started
        parts = [self.label] if self.label else []
        if self.total:
            fraction = self.done / self.total
            if self.tty if bar is None else bar:
                filled = int(round(fraction * self.bar_width))
                parts.append("[" + "#" * filled + "." * (self.bar_width - filled) + "]")
            parts.append(f"{self.done}/{self.total}")
            parts.append(f"{fraction:4.0%}" if self.tty else f"{fraction:.0%}")  # fixed width where redrawn
        else:
            parts.append(f"{self.done}")
        parts.append(f"elapsed {format_duration(elapsed)}")
        if self.total and self.done < self.total:
            eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
            parts.append(f"eta {format_duration(eta)}")
        if self.note:
            parts.append(self.note)
        return "  ".join(parts)

    # -- drawing -------------------------------------------------------------------------------

    def _due(self, now: float) -> bool:
        finished = self.total > 0 and self.done >= self.total
        if self._last_draw_at is None:
            return True
        if self.tty:
            return finished or now - self._last_draw_at >= self.redraw_interval_s
        if finished:
            return True
        if now - self._last_draw_at >= self.line_interval_s:
            return True
        if self.total and self.line_percent > 0:
            moved = (self.done - max(self._last_drawn_done, 0)) * 100.0 / self.total
            return moved >= self.line_percent
        return False

    def _draw(self) -> None:
        now = self._clock()
        line = self.render(now)
        if self.tty:
            # A wrapped line cannot be redrawn with \r: drop the bar first, then cut the note.
            room = max(shutil.get_terminal_size((80, 24)).columns - 1, 10)
            if len(line) > room:
                line = self.render(now, bar=False)[:room]
            pad = max(self._last_line_width - len(line), 0)
            self.stream.write("\r" + line + " " * pad)
            self._last_line_width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._last_draw_at = now
        self._last_drawn_done = self.done
