"""The progress bar of long local runs (rollouts, benchmarks): tqdm on stderr.

The bar is for a person watching a terminal, so by default it shows only when
stderr is one; logs, CI output and piped runs stay as they were. `--progress`
(`enabled=True`) forces it on: on a stream that is not a terminal tqdm then
redraws at most every `LOG_INTERVAL_S` seconds, and once more at the end, so a
log file gets a handful of frames rather than one per episode. `--no-progress`
(`enabled=False`) turns it off. Reports go to stdout and never meet the bar.

Callers use the tqdm object as it is:

    with progress_bar(len(specs), "rollout", enabled=args.progress, unit="episode") as bar:
        for result in results:
            bar.set_postfix_str(f"{result.task_id} ok, {successes}/{done} ok", refresh=False)
            bar.update()
            bar.write("a line of its own", file=sys.stderr)  # not stdout, tqdm's default

This module only decides where the bar goes and when it is on, in one place for
the CLI and the benchmarks.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from tqdm import tqdm

# How often a bar forced onto a pipe or a file may redraw.
LOG_INTERVAL_S = 10.0


def progress_bar(total: int, label: str, enabled: bool | None = None, unit: str = "it") -> tqdm[NoReturn]:
    """A tqdm bar of `total` units on stderr; `enabled=None` means on only when stderr is a terminal.

    It is a `with` block's bar: leaving the block draws the final state on a row of its own.
    """
    stream = sys.stderr
    return tqdm(
        total=total,
        desc=label,
        unit=unit,
        file=stream,
        disable=None if enabled is None else not enabled,  # None: tqdm's own "off unless a terminal"
        mininterval=0.1 if hasattr(stream, "isatty") and stream.isatty() else LOG_INTERVAL_S,
        dynamic_ncols=True,  # follow the terminal's width, so a resized window never wraps the bar
    )
