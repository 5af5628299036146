"""Cheaper call-site capture for Playwright's Python client.

Playwright 1.44 (the version BrowserGym pins) records where every API call came
from: each sync call runs `inspect.stack()` twice and
`traceback.extract_stack()` twice, and both read the source line of every frame
on the stack (`linecache`, `os.stat`). Measured on a worker thread, that was a
quarter of the Python time of an agent's step, for information Playwright only
uses to name the API in error messages ("Locator.fill: Timeout ...") and to
show a stack if a call fails.

`install()` hands Playwright's modules stand-ins for those two functions that
collect the same fields (frame, file name, line number, function name) without
reading source lines. Called from inside Playwright, they also stop where Playwright
stops looking: at its call site, and at the ten frames a failed call's error shows.
`extract_stack` goes further: every message to the driver captures a stack (twice, in
the sync API) that is read only if the call fails, so it keeps each frame's code and
line, and builds the `FrameSummary` entries (and `traceback`'s checks of `linecache`)
only when the stack is first read. Nothing else in Playwright changes, and nothing
outside Playwright's own modules sees the stand-ins.
"""

from __future__ import annotations

import inspect
import linecache
import sys
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import playwright
from playwright._impl import _connection, _network, _sync_base

# Playwright names its own frames by this prefix (`_extract_stack_trace_information_from_stack`).
_PLAYWRIGHT_DIR = str(Path(playwright.__file__).parents[0])
# A failed call's error carries the innermost frames of its stack, this many (`Connection.dispatch`).
PLAYWRIGHT_STACK_FRAMES = 10


def stack(context: int = 1) -> list[inspect.FrameInfo]:
    """`inspect.stack()` without source context: the caller's frame first, outermost last.

    Called from inside Playwright, it stops at the first frame outside Playwright that
    follows Playwright's own: that frame is the call site Playwright reports, and the
    Playwright frames before it name the API. Playwright reads every frame's locals (to name
    its method), and a worker thread's stack is dozens of frames deep, so a full walk cost
    more than the call's own messaging.
    """
    frames: list[inspect.FrameInfo] = []
    frame: types.FrameType | None = sys._getframe(1)
    seen_playwright = False
    while frame is not None:
        code = frame.f_code
        frames.append(inspect.FrameInfo(frame, code.co_filename, frame.f_lineno, code.co_name, None, None))
        if _in_playwright(code.co_filename):
            seen_playwright = True
        elif seen_playwright:
            break
        frame = frame.f_back
    return frames


def extract_stack(f: types.FrameType | None = None, limit: int | None = None) -> traceback.StackSummary:
    """`traceback.extract_stack()`, its entries built when first read (see `DeferredStack`).

    Called from inside Playwright, it keeps only the innermost `PLAYWRIGHT_STACK_FRAMES`
    frames: a failing call's stack is the only use, and Playwright shows only that many.
    """
    frame: types.FrameType | None = f if f is not None else sys._getframe(1)
    assert frame is not None
    if limit is None and _in_playwright(frame.f_code.co_filename):
        limit = PLAYWRIGHT_STACK_FRAMES
    if limit is None:
        limit = getattr(sys, "tracebacklimit", None)
    places: list[tuple[types.CodeType, int]] = []
    while frame is not None and (limit is None or limit < 0 or len(places) < limit):
        places.append((frame.f_code, frame.f_lineno))
        frame = frame.f_back
    if limit is not None and limit < 0:
        places = places[limit:]  # as `traceback`: the outermost frames
    places.reverse()
    return DeferredStack(places)


class DeferredStack(traceback.StackSummary):
    """A `StackSummary` that holds each frame's code and line until it is first used.

    Holding codes rather than frames keeps no caller's locals alive, and makes no reference
    cycle through the frame that captured it. Any use of it as a list (every method `list`
    defines, and formatting) first builds the same `FrameSummary` entries `traceback` would
    have, then works on them.
    """

    def __init__(self, places: list[tuple[types.CodeType, int]]) -> None:
        super().__init__()
        self._places: list[tuple[types.CodeType, int]] | None = places

    def _build(self) -> None:
        places, self._places = self._places, None
        if places is None:
            return
        summaries = [traceback.FrameSummary(code.co_filename, lineno, code.co_name, lookup_line=False)
                     for code, lineno in places]
        for filename in {summary.filename for summary in summaries}:
            linecache.checkcache(filename)  # what `traceback` checks before it reads lines
        list.extend(self, summaries)


def _building(name: str) -> Callable[..., Any]:
    """`list.<name>`, run once the deferred stack has built its entries."""
    method = getattr(list, name)

    def built(self: DeferredStack, *args: Any, **kwargs: Any) -> Any:
        self._build()
        return method(self, *args, **kwargs)

    built.__name__ = name
    return built


for _name in (
    "__iter__", "__len__", "__getitem__", "__reversed__", "__contains__", "__repr__", "__str__", "__eq__",
    "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__add__", "__mul__", "__rmul__", "__iadd__", "__imul__",
    "__setitem__", "__delitem__", "append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear",
    "copy", "count", "index",
):
    setattr(DeferredStack, _name, _building(_name))  # formatting iterates, so it builds too


def _in_playwright(filename: str) -> bool:
    return filename.startswith(_PLAYWRIGHT_DIR)


class _ModuleView(types.ModuleType):
    """A module with a few functions replaced; every other name comes from the original."""

    def __init__(self, module: types.ModuleType, **replacements: Any) -> None:
        super().__init__(module.__name__, module.__doc__)
        self._module = module
        self.__dict__.update(replacements)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def install() -> None:
    """Point Playwright's stack capture at the cheap versions (idempotent)."""
    if installed():
        return
    fast_inspect = _ModuleView(inspect, stack=stack)
    fast_traceback = _ModuleView(traceback, extract_stack=extract_stack)
    _sync_base.inspect = fast_inspect  # type: ignore[attr-defined]
    _sync_base.traceback = fast_traceback  # type: ignore[attr-defined]
    _connection.inspect = fast_inspect  # type: ignore[attr-defined]
    _connection.traceback = fast_traceback  # type: ignore[attr-defined]
    _network.inspect = fast_inspect  # type: ignore[attr-defined]


def installed() -> bool:
    return isinstance(_sync_base.inspect, _ModuleView)  # type: ignore[attr-defined]
