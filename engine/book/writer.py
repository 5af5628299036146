"""What a live episode's jobs write to: the book, or anything that keeps what the book would.

`BookCursor` hands each job's changes to a `BookWriter` on the episode's worker thread,
before anyone is answered. A single server writes to its `EpisodeBook`. A browser node
of a cluster (`cluster.node`) writes to an outbox the front drains into its own book, and
its `save` returns once the front holds the change, so an answered step survives the node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from engine.recorder import Recording, StepMedia
from engine.records import EpisodeState, StepRecord
from engine.transcript import AgentExchange


class BookWriter(Protocol):
    def save(
        self,
        state: EpisodeState,
        recording: Recording,
        records: Sequence[StepRecord] = (),
        exchanges: Sequence[AgentExchange] = (),
        media: Mapping[int, StepMedia] | None = None,
    ) -> None:
        """Keep the episode's state and what changed since its last save (records by index,
        new exchanges, new steps' media), all or nothing; raises `BookWriteError`."""


__all__ = ["BookWriter"]
