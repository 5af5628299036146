"""The progress bar: redrawn in place on a terminal, a few plain lines elsewhere, nothing unless wanted."""

from __future__ import annotations

import io

import pytest

from safebrowse.progress import ProgressBar, format_duration


class Stream(io.StringIO):
    """A text stream that says whether it is a terminal."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames are cut to the terminal's width; make it wide unless a test says otherwise."""
    monkeypatch.setenv("COLUMNS", "200")


def lines(stream: Stream) -> list[str]:
    return stream.getvalue().splitlines()


def test_off_by_default_when_the_stream_is_not_a_terminal() -> None:
    stream = Stream(tty=False)
    with ProgressBar(5, "run", stream=stream) as bar:
        for _ in range(5):
            bar.advance(note="x")
    assert bar.enabled is False
    assert stream.getvalue() == ""


def test_on_by_default_on_a_terminal_and_off_when_forced_off() -> None:
    assert ProgressBar(3, stream=Stream(tty=True)).enabled is True
    quiet = Stream(tty=True)
    with ProgressBar(3, stream=quiet, enabled=False) as bar:
        bar.advance(3)
    assert quiet.getvalue() == ""


def test_a_terminal_gets_one_line_redrawn_in_place() -> None:
    stream, clock = Stream(tty=True), Clock()
    with ProgressBar(4, "rollout", stream=stream, clock=clock, redraw_interval_s=0.0) as bar:
        for k in range(4):
            clock.now += 2.0
            bar.advance(note=f"task-{k}")
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one row, ended when the bar closes
    frames = text.rstrip("\n").split("\r")[1:]
    assert len(frames) == 4
    assert frames[0].startswith("rollout  [") and "1/4" in frames[0] and "25%" in frames[0]
    assert "eta 0:06" in frames[0] and "task-0" in frames[0]  # 2 s per unit, 3 units to go
    last = frames[-1].rstrip()
    assert "4/4" in last and "100%" in last and "elapsed 0:08" in last and "task-3" in last
    assert "eta" not in last
    # A shorter frame blanks what is left of a longer one.
    assert len(frames[-1]) >= len(frames[-2].rstrip())


def test_terminal_redraws_are_throttled_but_the_last_unit_is_always_drawn() -> None:
    stream, clock = Stream(tty=True), Clock()
    with ProgressBar(1000, stream=stream, clock=clock, redraw_interval_s=0.1) as bar:
        for _ in range(1000):
            clock.now += 0.001  # a unit every millisecond: 1 s in all
            bar.advance()
    frames = stream.getvalue().rstrip("\n").split("\r")[1:]
    assert 5 <= len(frames) <= 12
    assert "1000/1000" in frames[-1]


def test_a_narrow_terminal_loses_the_bar_then_the_end_of_the_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "41")
    stream = Stream(tty=True)
    with ProgressBar(4, "rollout", stream=stream) as bar:
        bar.advance(note="miniwob.click-test ok, 1/1 ok")
    frame = stream.getvalue().rstrip("\n").split("\r")[1]
    assert frame == "rollout  1/4   25%  elapsed 0:00  eta 0:"  # 40 columns: one short of the edge
    assert len(frame) == 40
    assert "[" not in frame


def test_forced_on_a_plain_stream_prints_whole_lines_every_few_percent() -> None:
    stream, clock = Stream(tty=False), Clock()
    with ProgressBar(1000, "bench", stream=stream, enabled=True, clock=clock,
                     line_percent=10.0, line_interval_s=1e9) as bar:
        for k in range(1000):
            clock.now += 0.01
            bar.advance(note=f"n={k + 1}")
    out = lines(stream)
    assert "\r" not in stream.getvalue() and "[" not in stream.getvalue()
    # The first unit, then one line per 10 %: bounded whatever the total.
    assert 10 <= len(out) <= 12
    assert all(line.startswith("bench  ") for line in out)
    assert out[-1].startswith("bench  1000/1000  100%") and out[-1].endswith("n=1000")


def test_forced_on_a_plain_stream_prints_at_most_every_interval() -> None:
    stream, clock = Stream(tty=False), Clock()
    bar = ProgressBar(100_000, stream=stream, enabled=True, clock=clock, line_percent=50.0, line_interval_s=5.0)
    for _ in range(3000):
        clock.now += 0.01  # 30 s of work, well under 50 %
        bar.advance()
    out = lines(stream)
    assert 6 <= len(out) <= 7  # the first line, then one per 5 s
    assert not out[-1].startswith("3000/")
    bar.close()
    assert len(lines(stream)) == len(out) + 1
    assert lines(stream)[-1].startswith("3000/100000  3%  elapsed 0:30  eta ")


def test_close_writes_the_final_line_once() -> None:
    stream, clock = Stream(tty=False), Clock()
    bar = ProgressBar(10, "run", stream=stream, enabled=True, clock=clock, line_percent=80.0, line_interval_s=1e9)
    for _ in range(7):
        bar.advance()
    assert [line.split("  ")[1] for line in lines(stream)] == ["1/10"]  # the first unit, then < 80 % more
    clock.now += 65
    bar.close()
    bar.close()
    bar.advance()  # after close: nothing
    assert lines(stream)[-1] == "run  7/10  70%  elapsed 1:05  eta 0:28"
    assert len(lines(stream)) == 2


def test_write_puts_text_above_the_bar_on_a_terminal() -> None:
    stream, clock = Stream(tty=True), Clock()
    with ProgressBar(2, "run", stream=stream, clock=clock) as bar:
        bar.advance()
        bar.write("an episode line")
        bar.advance()
    rows = stream.getvalue().split("\n")
    # The bar row is blanked, the text gets its own row, the bar comes back beneath it.
    assert rows[0].endswith("an episode line") and rows[0].split("\r")[-1] == "an episode line"
    assert "2/2" in rows[1] and rows[2] == ""


def test_write_is_a_plain_line_when_the_bar_is_off() -> None:
    stream = Stream(tty=False)
    with ProgressBar(2, stream=stream) as bar:
        bar.write("round 1: 12.5 actions/s")
        bar.advance(2)
    assert stream.getvalue() == "round 1: 12.5 actions/s\n"


def test_durations_and_bad_totals() -> None:
    assert format_duration(0) == "0:00"
    assert format_duration(65.4) == "1:05"
    assert format_duration(3 * 3600 + 7) == "3:00:07"
    assert format_duration(float("nan")) == "?"
    with pytest.raises(ValueError):
        ProgressBar(-1)
