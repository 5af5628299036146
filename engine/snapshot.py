"""What the rest of the server reads of an episode: one immutable moment of it.

An episode changes only on its worker's thread. At the end of every job the
manager runs on it (setup, a step, an observation, an oracle call, an end, a
close), that thread publishes an `EpisodeSnapshot` with one reference
assignment. The event loop (the manager, the control API, metrics) reads only
snapshots, so every read sees the state, the step records and the recorded media
of the same moment: never a step counted whose record is missing, or a record
that changes after it was read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.recorder import Recording, StepMedia
from engine.records import EpisodeState, StepRecord


@dataclass(frozen=True)
class EpisodeSnapshot:
    """One episode as it was at the end of a job; nothing in it changes afterwards."""

    state: EpisodeState
    records: tuple[StepRecord, ...]
    media: Mapping[int, StepMedia]  # read-only; the bytes are shared, not copied
    recording: Recording


__all__ = ["EpisodeSnapshot"]
